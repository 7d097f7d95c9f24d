//! The generated access matrix of issue 5: every role × consent state × interaction against the
//! real server (tokens required, real accounts signed in through `/api/auth/login`, a real
//! backend service token), on both engines, compared with an oracle written here from the
//! specification alone — it calls no decision code of `curanet_auth` or `curanet_http`.
//!
//! One consent per governed actor (the doctor's Practitioner, the pharmacy's Organization) is
//! moved by the patient, with their own token (`PUT Consent/{id}`), through the states; each
//! state is tested with every role and interaction. Writes are tagged with an identifier and
//! counted afterwards through the backend token, so that a refused write that still wrote
//! something is caught, and then cleaned up so that searches always see the same records.
//!
//! An app acting for the doctor gets its token through the real authorization-code flow (the
//! conformance suite's browser signs in and approves on the server's pages), with narrower
//! scopes than the doctor's own sign-in. Not covered here: `dataPeriod` (covered by
//! `tests/consent.rs`), purposes and break-the-glass (not implemented yet).

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use curanet_auth::registration::ClientRegistration;
use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::{ClientKind, Role as AccountRole};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const MARKER: &str = "urn:curanet:access-matrix";
/// Where the doctor's app says it lives; the browser stops at the redirect.
const APP_REDIRECT: &str = "http://127.0.0.1:9/callback";

/// Mismatches tolerated (printed with their count, not failed): known limitations and bugs
/// reported to the lead. Each is a predicate over (role, state, interaction, kind, detail);
/// remove an entry once the server is fixed and the matrix passes without it.
struct Gap {
    what: &'static str,
    applies: fn(Role, State, &Interaction, Kind, &str) -> bool,
}

const KNOWN_GAPS: &[Gap] = &[
    Gap {
        what: "limitation: a nested deny by class under a consent without provision.class keeps \
               only the READ_BASIC types (and WRITE on them): server/auth/src/consent.rs \
               `scopes_for`, \"every type but the denied ones is not expressible as scopes\"",
        applies: |_, state, _, kind, _| state == State::DenyClass && kind == Kind::UnexpectedDeny,
    },
    Gap {
        what: "limitation (README: searches naming no patient reach only patients whose \
               consents allow the type \"without further restriction\"): a consent with nested \
               denies by label or instance drops that patient from searches naming no patient, \
               drops every _include/_revinclude of patients' records, and refuses $everything",
        applies: |role, state, i, kind, _| {
            governed(role)
                && state == State::DenyLabelData
                && kind == Kind::UnexpectedDeny
                && matches!(
                    i,
                    Interaction::SearchAll(_)
                        | Interaction::Include(..)
                        | Interaction::Revinclude(..)
                        | Interaction::Everything
                )
        },
    },
    Gap {
        what: "limitation (README, Consent table: $everything comes with READ_FULL): \
               $everything with a consent-governed token is refused (404) unless the effective \
               scopes read every type (not under READ_BASIC or a class-narrowed consent, never \
               for a pharmacist); the oracle expects the permitted part",
        applies: |role, _, i, kind, _| {
            governed(role) && *i == Interaction::Everything && kind == Kind::UnexpectedDeny
        },
    },
    Gap {
        what: "limitation (README, Consent): a JSON Patch of any record but the Patient by a \
               consent-governed token is refused (403), as for patient tokens: a patch's result \
               cannot be checked to stay the patient's record before it is written; use update",
        applies: |role, _, i, kind, _| {
            governed(role)
                && matches!(i, Interaction::Patch(r) if *r != Rec::PatientP)
                && kind == Kind::UnexpectedDeny
        },
    },
];

// ---------------------------------------------------------------------------------------------
// The model: roles, consent states, records, interactions.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Doctor,
    /// A public SMART app acting for the doctor, granted [`APP_SCOPES`] (read-only, three types).
    DoctorApp,
    Pharmacist,
    /// P, the patient whose consents are under test.
    Patient,
    /// Q, another patient, who never consents to anything.
    OtherPatient,
    /// A backend service with `system/*.cruds`.
    Backend,
}

const ROLES: [Role; 6] = [
    Role::Doctor,
    Role::DoctorApp,
    Role::Pharmacist,
    Role::Patient,
    Role::OtherPatient,
    Role::Backend,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    /// No consent at all.
    None,
    Proposed,
    Draft,
    /// READ_FULL, WRITE, DELETE on every type.
    Active,
    /// READ_FULL only.
    ActiveReadOnly,
    /// READ_BASIC and WRITE.
    Basic,
    /// READ_FULL, WRITE, DELETE on AllergyIntolerance, MedicationRequest, MedicationDispense.
    Class,
    /// READ_FULL, WRITE, DELETE minus nested denies: security label R, and the Condition by
    /// `data.reference`.
    DenyLabelData,
    /// READ_FULL, WRITE minus a nested deny of the class Observation.
    DenyClass,
    /// Active, READ_FULL/WRITE/DELETE, but `provision.period.end` is past.
    Expired,
    /// Active, READ_FULL/WRITE/DELETE, but `provision.period.start` is in 2099.
    Future,
    /// Active, READ_FULL/WRITE/DELETE, naming another doctor.
    OtherActor,
    /// `inactive` (revoked).
    Revoked,
    Rejected,
    EnteredInError,
}

/// In this order: statuses that cannot be left come last.
const STATES: [State; 15] = [
    State::None,
    State::Proposed,
    State::Draft,
    State::Active,
    State::ActiveReadOnly,
    State::Basic,
    State::Class,
    State::DenyLabelData,
    State::DenyClass,
    State::Expired,
    State::Future,
    State::OtherActor,
    State::Revoked,
    State::Rejected,
    State::EnteredInError,
];

/// The seeded records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rec {
    PatientP,
    PatientQ,
    Allergy,
    Vital,
    /// An Observation labelled v3-Confidentiality#R.
    Restricted,
    Condition,
    MedReq,
    Dispense,
    /// Q's allergy.
    OtherAllergy,
    /// P's consent to the doctor and to the pharmacy (not in [`RECORDS`]: read and searched
    /// by their own interactions).
    ConsentToDoctor,
    ConsentToPharmacy,
}

const RECORDS: [Rec; 9] = [
    Rec::PatientP,
    Rec::PatientQ,
    Rec::Allergy,
    Rec::Vital,
    Rec::Restricted,
    Rec::Condition,
    Rec::MedReq,
    Rec::Dispense,
    Rec::OtherAllergy,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    P,
    Q,
}

impl Rec {
    fn ty(self) -> &'static str {
        match self {
            Rec::PatientP | Rec::PatientQ => "Patient",
            Rec::Allergy | Rec::OtherAllergy => "AllergyIntolerance",
            Rec::Vital | Rec::Restricted => "Observation",
            Rec::Condition => "Condition",
            Rec::MedReq => "MedicationRequest",
            Rec::Dispense => "MedicationDispense",
            Rec::ConsentToDoctor | Rec::ConsentToPharmacy => "Consent",
        }
    }
    fn owner(self) -> Owner {
        match self {
            Rec::PatientQ | Rec::OtherAllergy => Owner::Q,
            _ => Owner::P,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Search,
    Create,
    Update,
    Delete,
}

/// One request of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Interaction {
    Read(Rec),
    Vread(Rec),
    History(Rec),
    /// `{type}?patient=P` (`Patient?_id=P`).
    SearchP(&'static str),
    /// `{type}` with no parameter.
    SearchAll(&'static str),
    /// `{type}?patient=P&_include={type}:{param}` (the Patient).
    Include(&'static str, &'static str),
    /// `Patient?_id=P&_revinclude={type}:{param}`.
    Revinclude(&'static str, &'static str),
    Everything,
    /// POST of a new record of this type, about P or Q.
    Create(&'static str, Owner),
    Update(Rec),
    Patch(Rec),
    /// DELETE of a freshly seeded record of this type about P.
    Delete(&'static str),
    /// DELETE of a freshly seeded Observation about P labelled v3-Confidentiality#R.
    DeleteLabelled,
    /// A read of one of P's consents.
    ReadConsent(Rec),
    /// `Consent?patient=P`.
    SearchConsent,
    /// `{type}?patient=P&_summary=count`: the total must not count what the caller cannot see.
    Count(&'static str),
    /// `Patient?_id=P&_has:Observation:subject:_id={restricted}`: `_has` must not reveal a
    /// record the caller cannot see.
    HasRestricted,
    /// `{type}/_history`: spans every patient.
    TypeHistory(&'static str),
    /// A transaction creating an Observation about P (and, when true, another about Q).
    Transaction(bool),
}

fn interactions() -> Vec<Interaction> {
    use Interaction::*;
    let mut out = Vec::new();
    for r in RECORDS {
        out.push(Read(r));
        out.push(Vread(r));
        out.push(History(r));
    }
    for ty in [
        "Patient",
        "AllergyIntolerance",
        "Observation",
        "Condition",
        "MedicationRequest",
        "MedicationDispense",
    ] {
        out.push(SearchP(ty));
    }
    for ty in ["Patient", "AllergyIntolerance", "Observation"] {
        out.push(SearchAll(ty));
    }
    out.push(Include("AllergyIntolerance", "patient"));
    out.push(Include("Observation", "subject"));
    out.push(Revinclude("AllergyIntolerance", "patient"));
    out.push(Revinclude("Observation", "subject"));
    out.push(Revinclude("MedicationRequest", "subject"));
    out.push(Everything);
    out.push(Create("Observation", Owner::P));
    out.push(Create("AllergyIntolerance", Owner::P));
    out.push(Create("MedicationDispense", Owner::P));
    out.push(Create("Observation", Owner::Q));
    for r in [
        Rec::PatientP,
        Rec::Allergy,
        Rec::Vital,
        Rec::Restricted,
        Rec::Condition,
        Rec::MedReq,
    ] {
        out.push(Update(r));
    }
    out.push(Patch(Rec::PatientP));
    out.push(Patch(Rec::Allergy));
    out.push(Delete("Observation"));
    out.push(Delete("AllergyIntolerance"));
    out.push(Delete("MedicationDispense"));
    out.push(DeleteLabelled);
    out.push(ReadConsent(Rec::ConsentToDoctor));
    out.push(ReadConsent(Rec::ConsentToPharmacy));
    out.push(SearchConsent);
    out.push(Count("Observation"));
    out.push(Count("AllergyIntolerance"));
    out.push(HasRestricted);
    out.push(TypeHistory("Observation"));
    out.push(Transaction(false));
    out.push(Transaction(true));
    out
}

// ---------------------------------------------------------------------------------------------
// The oracle: the specification, written out. No server code is consulted.
// ---------------------------------------------------------------------------------------------

/// What the specification says a request should get.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    /// 2xx; for searches and `$everything`, exactly these matches and included records.
    Ok {
        matches: Option<BTreeSet<Rec>>,
        included: Option<BTreeSet<Rec>>,
    },
    Forbidden,
    NotFound,
    /// 200 with `total` = this many.
    Total(usize),
    /// Nothing shown: a 200 with no match, or a refusal (403/404); either is right.
    Hidden,
}

impl Expected {
    fn ok() -> Expected {
        Expected::Ok {
            matches: None,
            included: None,
        }
    }
    fn found(matches: BTreeSet<Rec>, included: BTreeSet<Rec>) -> Expected {
        Expected::Ok {
            matches: Some(matches),
            included: Some(included),
        }
    }
}

/// The types READ_BASIC covers (the CuraNetConsent profile's list).
const READ_BASIC: [&str; 5] = [
    "Patient",
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationStatement",
    "Immunization",
];

/// What the doctor's app asks for and is granted.
const APP_SCOPES: &str =
    "openid fhirUser user/Patient.rs user/AllergyIntolerance.rs user/Observation.rs";

/// What the token of each role carries (the role ceilings of the README, at the role's natural
/// level; the app: [`APP_SCOPES`]).
fn token_allows(role: Role, ty: &str, op: Op) -> bool {
    match role {
        Role::Doctor | Role::Backend => true,
        Role::DoctorApp => {
            matches!(ty, "Patient" | "AllergyIntolerance" | "Observation")
                && matches!(op, Op::Read | Op::Search)
        }
        Role::Pharmacist => match ty {
            "MedicationDispense" => true,
            // A prescription's status is theirs to update (completed, on hold).
            "MedicationRequest" => matches!(op, Op::Read | Op::Search | Op::Update),
            "Patient" | "AllergyIntolerance" | "Medication" => {
                matches!(op, Op::Read | Op::Search)
            }
            _ => false,
        },
        // patient/*.rs patient/Consent.cu patient/Patient.u
        Role::Patient | Role::OtherPatient => match op {
            Op::Read | Op::Search => true,
            Op::Update => ty == "Patient",
            _ => false,
        },
    }
}

/// The grant the consent in `state` gives its actor: levels, classes, denied classes.
struct Grant {
    read_full: bool,
    read_basic: bool,
    write: bool,
    delete: bool,
    classes: Option<&'static [&'static str]>,
    denied_classes: &'static [&'static str],
    /// Records withheld by nested deny provisions (security label, data reference).
    denied: &'static [Rec],
}

const FULL: Grant = Grant {
    read_full: true,
    read_basic: false,
    write: true,
    delete: true,
    classes: None,
    denied_classes: &[],
    denied: &[],
};

/// The grant in force for the doctor and the pharmacy in `state` (both consents are moved
/// together); `None`: no consent in force names them.
fn grant(state: State) -> Option<Grant> {
    match state {
        State::Active => Some(FULL),
        State::ActiveReadOnly => Some(Grant {
            write: false,
            delete: false,
            ..FULL
        }),
        State::Basic => Some(Grant {
            read_full: false,
            read_basic: true,
            delete: false,
            ..FULL
        }),
        State::Class => Some(Grant {
            classes: Some(&[
                "AllergyIntolerance",
                "MedicationRequest",
                "MedicationDispense",
            ]),
            ..FULL
        }),
        State::DenyLabelData => Some(Grant {
            denied: &[Rec::Restricted, Rec::Condition],
            ..FULL
        }),
        State::DenyClass => Some(Grant {
            delete: false,
            denied_classes: &["Observation"],
            ..FULL
        }),
        // Not in force (status, period) or not naming them.
        State::None
        | State::Proposed
        | State::Draft
        | State::Expired
        | State::Future
        | State::OtherActor
        | State::Revoked
        | State::Rejected
        | State::EnteredInError => None,
    }
}

fn consent_allows(g: &Grant, ty: &str, op: Op) -> bool {
    let level = match op {
        Op::Read | Op::Search => g.read_full || (g.read_basic && READ_BASIC.contains(&ty)),
        Op::Create | Op::Update => g.write,
        Op::Delete => g.delete,
    };
    level && g.classes.is_none_or(|c| c.contains(&ty)) && !g.denied_classes.contains(&ty)
}

fn governed(role: Role) -> bool {
    matches!(role, Role::Doctor | Role::DoctorApp | Role::Pharmacist)
}

/// Whether `role` may do `op` on records of type `ty` about P (for governed roles: token ∩
/// consent; for the others: the token alone, on their own records).
fn may(role: Role, state: State, ty: &str, op: Op) -> bool {
    token_allows(role, ty, op)
        && (!governed(role) || grant(state).is_some_and(|g| consent_allows(&g, ty, op)))
}

/// Whether `role` may read the record `rec`.
fn visible(role: Role, state: State, rec: Rec) -> bool {
    match role {
        Role::Backend => true,
        Role::Patient => rec.owner() == Owner::P,
        Role::OtherPatient => rec.owner() == Owner::Q,
        Role::Doctor | Role::DoctorApp | Role::Pharmacist => {
            rec.owner() == Owner::P
                && may(role, state, rec.ty(), Op::Read)
                && grant(state).is_some_and(|g| !g.denied.contains(&rec))
        }
    }
}

/// Whether the consent `c` names the actor of `role` in `state`.
fn consent_names(role: Role, state: State, c: Rec) -> bool {
    state != State::None
        && state != State::OtherActor
        && match role {
            Role::Doctor | Role::DoctorApp => c == Rec::ConsentToDoctor,
            Role::Pharmacist => c == Rec::ConsentToPharmacy,
            _ => false,
        }
}

/// Whether `role` may read P's consent `c` (to the doctor or to the pharmacy) in `state`:
/// the patient and the backend always; a clinician only a consent naming them, whatever its
/// status (their own requests), and only with a Consent scope (the pharmacist's token and the
/// app's carry none).
fn consent_visible(role: Role, state: State, c: Rec) -> bool {
    let exists = state != State::None;
    exists
        && match role {
            Role::Backend | Role::Patient => true,
            Role::OtherPatient => false,
            _ => token_allows(role, "Consent", Op::Read) && consent_names(role, state, c),
        }
}

/// Whether a write may touch the existing record `rec`.
fn writable(role: Role, state: State, rec: Rec, op: Op) -> bool {
    match role {
        Role::Backend => true,
        Role::Patient => rec.owner() == Owner::P && token_allows(role, rec.ty(), op),
        Role::OtherPatient => rec.owner() == Owner::Q && token_allows(role, rec.ty(), op),
        Role::Doctor | Role::DoctorApp | Role::Pharmacist => {
            rec.owner() == Owner::P
                && may(role, state, rec.ty(), op)
                && grant(state).is_some_and(|g| !g.denied.contains(&rec))
        }
    }
}

/// The records of `ty` about P that `role` finds.
fn found_of_p(role: Role, state: State, ty: &str) -> BTreeSet<Rec> {
    RECORDS
        .into_iter()
        .filter(|r| r.ty() == ty && r.owner() == Owner::P && visible(role, state, *r))
        .collect()
}

/// A search naming P: for a governed role, refused without a token scope for the type or
/// without any consent in force; otherwise what they may see.
fn search_p(role: Role, state: State, ty: &str) -> Result<BTreeSet<Rec>, Expected> {
    if governed(role) && (!token_allows(role, ty, Op::Search) || grant(state).is_none()) {
        return Err(Expected::Forbidden);
    }
    Ok(found_of_p(role, state, ty))
}

fn oracle(role: Role, state: State, interaction: &Interaction) -> Expected {
    use Interaction::*;
    let read = |rec: Rec| {
        // A governed token's own scopes come first: a type they do not cover is 403 (the
        // refusal names the missing scope, which says nothing about the record).
        if governed(role) && !token_allows(role, rec.ty(), Op::Read) {
            Expected::Forbidden
        } else if visible(role, state, rec) {
            Expected::ok()
        } else {
            Expected::NotFound
        }
    };
    let allowed = |yes: bool| {
        if yes {
            Expected::ok()
        } else {
            Expected::Forbidden
        }
    };
    match interaction {
        Read(r) | Vread(r) | History(r) => read(*r),
        SearchP(ty) => match search_p(role, state, ty) {
            Ok(m) => Expected::found(m, BTreeSet::new()),
            Err(e) => e,
        },
        SearchAll(ty) => {
            if governed(role) && !token_allows(role, ty, Op::Search) {
                return Expected::Forbidden;
            }
            let m = RECORDS
                .into_iter()
                .filter(|r| r.ty() == *ty && visible(role, state, *r))
                .collect();
            Expected::found(m, BTreeSet::new())
        }
        Include(ty, _) => match search_p(role, state, ty) {
            Ok(m) => {
                let inc = if !m.is_empty() && visible(role, state, Rec::PatientP) {
                    BTreeSet::from([Rec::PatientP])
                } else {
                    BTreeSet::new()
                };
                Expected::found(m, inc)
            }
            Err(e) => e,
        },
        Revinclude(ty, _) => match search_p(role, state, "Patient") {
            Ok(m) => {
                let inc = if m.is_empty() {
                    BTreeSet::new()
                } else {
                    found_of_p(role, state, ty)
                };
                Expected::found(m, inc)
            }
            Err(e) => e,
        },
        // $everything needs read and search on every type in the token's own scopes.
        Everything if governed(role) && role != Role::Doctor => Expected::Forbidden,
        Everything => {
            if !visible(role, state, Rec::PatientP) {
                return Expected::NotFound;
            }
            let all: BTreeSet<Rec> = RECORDS
                .into_iter()
                .filter(|r| {
                    r.owner() == Owner::P
                        && visible(role, state, *r)
                        && (!governed(role) || may(role, state, r.ty(), Op::Search))
                })
                .collect();
            Expected::found(all, BTreeSet::new())
        }
        Create(ty, owner) => allowed(match role {
            Role::Backend => true,
            Role::Patient | Role::OtherPatient => false,
            _ => *owner == Owner::P && may(role, state, ty, Op::Create),
        }),
        // A record the consent withholds (by label or reference) is hidden from a writer who
        // may otherwise write: 404, as for a read.
        Update(r)
            if governed(role)
                && r.owner() == Owner::P
                && may(role, state, r.ty(), Op::Update)
                && grant(state).is_some_and(|g| g.denied.contains(r)) =>
        {
            Expected::NotFound
        }
        Update(r) => allowed(writable(role, state, *r, Op::Update)),
        Patch(r) => allowed(writable(role, state, *r, Op::Update)),
        Delete(ty) => allowed(match role {
            Role::Backend => true,
            Role::Patient | Role::OtherPatient => false,
            _ => may(role, state, ty, Op::Delete),
        }),
        // The label withholds the record as the seeded restricted Observation is withheld.
        DeleteLabelled
            if governed(role)
                && may(role, state, "Observation", Op::Delete)
                && grant(state).is_some_and(|g| g.denied.contains(&Rec::Restricted)) =>
        {
            Expected::NotFound
        }
        DeleteLabelled => allowed(match role {
            Role::Backend => true,
            Role::Patient | Role::OtherPatient => false,
            _ => may(role, state, "Observation", Op::Delete),
        }),
        // A token without a Consent scope is refused by the scope check (README: a refusal
        // names the missing scope), whichever consent it asks for.
        ReadConsent(_) if governed(role) && !token_allows(role, "Consent", Op::Read) => {
            Expected::Forbidden
        }
        Count(ty) => match search_p(role, state, ty) {
            Ok(m) => Expected::Total(m.len()),
            Err(e) => e,
        },
        // Patient-level and consent-governed tokens may not reach the compartment's types
        // through `_has` (README: refused); whatever the answer, P must not show through it
        // unless the caller sees the restricted record.
        HasRestricted => match search_p(role, state, "Patient") {
            Err(e) => e,
            Ok(m) if role == Role::Backend => Expected::found(m, BTreeSet::new()),
            Ok(_) => Expected::Hidden,
        },
        // Type history spans every patient: only the backend may.
        TypeHistory(_) => allowed(role == Role::Backend),
        ReadConsent(c) => {
            if consent_visible(role, state, *c) {
                Expected::ok()
            } else {
                Expected::NotFound
            }
        }
        SearchConsent => {
            if !token_allows(role, "Consent", Op::Search) {
                return Expected::Forbidden;
            }
            let m = [Rec::ConsentToDoctor, Rec::ConsentToPharmacy]
                .into_iter()
                .filter(|c| consent_visible(role, state, *c))
                .collect();
            Expected::found(m, BTreeSet::new())
        }
        Transaction(with_q) => allowed(match role {
            Role::Backend => true,
            Role::Patient | Role::OtherPatient => false,
            _ => !with_q && may(role, state, "Observation", Op::Create),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The server side: accounts, records, consents, requests.
// ---------------------------------------------------------------------------------------------

struct World {
    server: TestServer,
    http: reqwest::Client,
    tokens: BTreeMap<Role, String>,
    p: String,
    q: String,
    doctor: String,
    second_doctor: String,
    pharmacy: String,
    ids: BTreeMap<Rec, String>,
    /// The consent to the doctor and the one to the pharmacy, once created.
    consents: Option<(String, String)>,
    /// The consent state entered last.
    state: State,
    marker: usize,
}

fn reference(url: &str) -> String {
    let mut parts = url.rsplit('/');
    let id = parts.next().unwrap();
    let ty = parts.next().unwrap();
    format!("{ty}/{id}")
}

/// What a request got.
struct Got {
    status: u16,
    body: Value,
}

impl World {
    async fn start(backend: TestBackend) -> Option<World> {
        let server = TestServer::start_with(backend, "access_matrix", |c| {
            c.require_auth = true;
            // The matrix is about decisions; the audit trail has its own tests.
            c.audit = false;
        })
        .await?;
        let mut signed = Vec::new();
        for (role, email, name) in [
            (AccountRole::Patient, "p@example.in", "Priya Sharma"),
            (AccountRole::Patient, "q@example.in", "Qamar Ali"),
            (AccountRole::Doctor, "d1@example.in", "Anil Rao"),
            (AccountRole::Doctor, "d2@example.in", "Bela Sen"),
            (AccountRole::Pharmacist, "ph@example.in", "Chetan Das"),
        ] {
            server.create_user(role, email, PASSWORD, name).await;
            signed.push(common::sign_in(&server.base_url, email, PASSWORD).await);
        }
        let token = |i: usize| signed[i]["access_token"].as_str().unwrap().to_string();
        let p = signed[0]["patient"].as_str().unwrap().to_string();
        let q = signed[1]["patient"].as_str().unwrap().to_string();
        let doctor = reference(signed[2]["fhirUser"].as_str().unwrap());
        let second_doctor = reference(signed[3]["fhirUser"].as_str().unwrap());
        let pharmacist = reference(signed[4]["fhirUser"].as_str().unwrap());
        let roles = server
            .server
            .state
            .engine
            .search(
                "PractitionerRole",
                &[("practitioner".into(), pharmacist)],
                "",
                false,
            )
            .await
            .unwrap();
        let pharmacy = roles.page.resources[0].resource().unwrap()["organization"]["reference"]
            .as_str()
            .unwrap()
            .to_string();

        // The backend service: a registered key, a client-credentials token.
        server
            .register_client(ClientRegistration {
                client_id: Some("matrix-backend".into()),
                name: "Access matrix backend".into(),
                kind: Some(ClientKind::Backend),
                jwks: Some(common::smart::keys().jwks.clone()),
                scope: "system/*.cruds".into(),
                ..ClientRegistration::default()
            })
            .await;
        let root = server.base_url.trim_end_matches("/fhir").to_string();
        let http = reqwest::Client::new();
        let backend_token = common::smart::access_token(
            &http,
            &root,
            &format!("{root}/oauth/token"),
            "matrix-backend",
            "system/*.cruds",
        )
        .await;

        // The doctor's app: a public client, authorized by the doctor on the server's pages.
        server
            .register_client(ClientRegistration {
                client_id: Some("matrix-app".into()),
                name: "Access matrix app".into(),
                kind: Some(ClientKind::Public),
                redirect_uris: vec![APP_REDIRECT.into()],
                scope: "patient/*.cruds user/*.cruds".into(),
                ..ClientRegistration::default()
            })
            .await;
        let (_, reply) = curanet_conformance::smart::launch(
            &curanet_conformance::Client::new(&server.base_url),
            &curanet_conformance::smart::App {
                client_id: "matrix-app".into(),
                redirect_uri: APP_REDIRECT.into(),
                secret: None,
            },
            &curanet_conformance::smart::Login {
                identifier: "d1@example.in".into(),
                password: PASSWORD.into(),
            },
            APP_SCOPES,
            &curanet_conformance::smart::Decision::default(),
        )
        .await
        .expect("the doctor authorizes the app");
        let granted = reply.field("scope");
        assert!(
            granted.contains("user/Observation.rs") && !granted.contains("user/*"),
            "the app was granted {granted}"
        );
        let app_token = reply.field("access_token");

        let mut ids = BTreeMap::new();
        ids.insert(Rec::PatientP, p.clone());
        ids.insert(Rec::PatientQ, q.clone());
        for rec in RECORDS {
            if let Some(resource) = record(rec, &p, &q) {
                ids.insert(rec, server.seed(&resource).await);
            }
        }
        let tokens = BTreeMap::from([
            (Role::Doctor, token(2)),
            (Role::DoctorApp, app_token),
            (Role::Pharmacist, token(4)),
            (Role::Patient, token(0)),
            (Role::OtherPatient, token(1)),
            (Role::Backend, backend_token),
        ]);
        Some(World {
            server,
            http,
            tokens,
            p,
            q,
            doctor,
            second_doctor,
            pharmacy,
            ids,
            consents: None,
            state: State::None,
            marker: 0,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        role: Role,
        body: Option<(&str, String)>,
    ) -> Got {
        let url = if path.is_empty() {
            self.server.base_url.clone()
        } else {
            format!("{}/{path}", self.server.base_url)
        };
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&self.tokens[&role]);
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        Got {
            status,
            body: response.json().await.unwrap_or(Value::Null),
        }
    }

    async fn fhir(&self, method: Method, path: &str, role: Role, body: &Value) -> Got {
        self.send(
            method,
            path,
            role,
            Some(("application/fhir+json", body.to_string())),
        )
        .await
    }

    /// The consent bodies (to the doctor, to the pharmacy) of `state`; `None` for no consent.
    fn consent_bodies(&self, state: State) -> Option<(Value, Value)> {
        let full: &[&str] = &["READ_FULL", "WRITE", "DELETE"];
        let make = |actor: &str| -> Value {
            let (status, levels, classes): (&str, &[&str], &[&str]) = match state {
                State::Proposed => ("proposed", full, &[]),
                State::Draft => ("draft", full, &[]),
                State::ActiveReadOnly => ("active", &["READ_FULL"], &[]),
                State::Basic => ("active", &["READ_BASIC", "WRITE"], &[]),
                State::Class => (
                    "active",
                    full,
                    &[
                        "AllergyIntolerance",
                        "MedicationRequest",
                        "MedicationDispense",
                    ],
                ),
                State::DenyClass => ("active", &["READ_FULL", "WRITE"], &[]),
                State::Revoked => ("inactive", full, &[]),
                State::Rejected => ("rejected", full, &[]),
                State::EnteredInError => ("entered-in-error", full, &[]),
                _ => ("active", full, &[]),
            };
            let mut c = common::consent(&self.p, status, actor, levels, classes);
            match state {
                State::Expired => {
                    c["provision"]["period"] =
                        json!({"start": "2024-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"})
                }
                State::Future => {
                    c["provision"]["period"] = json!({"start": "2099-01-01T00:00:00Z"})
                }
                State::DenyLabelData => {
                    c["provision"]["provision"] = json!([
                        {"type": "deny", "securityLabel": [{"system": CONFIDENTIALITY, "code": "R"}]},
                        {"type": "deny", "data": [{"meaning": "instance",
                            "reference": {"reference": format!("Condition/{}", self.ids[&Rec::Condition])}}]},
                    ])
                }
                State::DenyClass => {
                    c["provision"]["provision"] = json!([{"type": "deny",
                        "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]}])
                }
                _ => {}
            }
            c
        };
        match state {
            State::None => None,
            State::OtherActor => Some((make(&self.second_doctor), make(&self.second_doctor))),
            _ => Some((make(&self.doctor), make(&self.pharmacy))),
        }
    }

    /// Moves both consents to `state`, with the patient's own token.
    async fn enter(&mut self, state: State) {
        self.state = state;
        let Some((to_doctor, to_pharmacy)) = self.consent_bodies(state) else {
            assert!(
                self.consents.is_none(),
                "the state without consent comes first"
            );
            return;
        };
        match self.consents.clone() {
            None => {
                let mut ids = Vec::new();
                for body in [to_doctor, to_pharmacy] {
                    let got = self
                        .fhir(Method::POST, "Consent", Role::Patient, &body)
                        .await;
                    assert_eq!(got.status, 201, "{state:?}: {}", got.body);
                    ids.push(got.body["id"].as_str().unwrap().to_string());
                }
                self.consents = Some((ids[0].clone(), ids[1].clone()));
                self.ids.insert(Rec::ConsentToDoctor, ids[0].clone());
                self.ids.insert(Rec::ConsentToPharmacy, ids[1].clone());
            }
            Some((a, b)) => {
                for (id, mut body) in [(a, to_doctor), (b, to_pharmacy)] {
                    body["id"] = json!(id);
                    let got = self
                        .fhir(Method::PUT, &format!("Consent/{id}"), Role::Patient, &body)
                        .await;
                    assert_eq!(got.status, 200, "{state:?}: {}", got.body);
                }
            }
        }
    }

    fn id(&self, rec: Rec) -> &str {
        &self.ids[&rec]
    }

    fn path(&self, rec: Rec) -> String {
        format!("{}/{}", rec.ty(), self.id(rec))
    }

    /// The record known by this id, if it is one of the seeded ones.
    fn rec_of(&self, ty: &str, id: &str) -> Option<Rec> {
        RECORDS
            .into_iter()
            .chain([Rec::ConsentToDoctor, Rec::ConsentToPharmacy])
            .find(|r| r.ty() == ty && self.ids.get(r).is_some_and(|i| i == id))
    }

    /// A new record of `ty` about `owner`, tagged with a fresh marker.
    fn new_record(&mut self, ty: &str, owner: Owner) -> (Value, String) {
        self.marker += 1;
        let marker = format!("case-{}", self.marker);
        let patient = match owner {
            Owner::P => &self.p,
            Owner::Q => &self.q,
        };
        let subject = json!({"reference": format!("Patient/{patient}")});
        let identifier = json!([{"system": MARKER, "value": marker}]);
        let resource = match ty {
            "Observation" => json!({"resourceType": "Observation", "status": "final",
                "identifier": identifier, "subject": subject, "code": {"text": "weight"},
                "effectiveDateTime": "2024-07-01"}),
            "AllergyIntolerance" => json!({"resourceType": "AllergyIntolerance",
                "identifier": identifier, "patient": subject, "code": {"text": "peanut"},
                "recordedDate": "2024-07-01"}),
            "MedicationDispense" => json!({"resourceType": "MedicationDispense",
                "identifier": identifier, "status": "completed", "subject": subject,
                "medicationCodeableConcept": {"text": "salbutamol"}}),
            other => panic!("no template for {other}"),
        };
        (resource, marker)
    }

    /// Counts (through the backend) the records carrying `marker`, and deletes them.
    async fn sweep(&self, marker: &str) -> usize {
        let mut n = 0;
        for ty in ["Observation", "AllergyIntolerance", "MedicationDispense"] {
            let got = self
                .send(
                    Method::GET,
                    &format!("{ty}?identifier={MARKER}|{marker}"),
                    Role::Backend,
                    None,
                )
                .await;
            assert_eq!(got.status, 200, "sweep: {}", got.body);
            for id in entry_ids(&got.body, "match") {
                n += 1;
                let deleted = self
                    .send(Method::DELETE, &format!("{ty}/{id}"), Role::Backend, None)
                    .await;
                assert!(deleted.status < 300, "sweep delete: {}", deleted.body);
            }
        }
        n
    }

    /// The current version id of `rec`, through the backend.
    async fn version(&self, rec: Rec) -> String {
        let got = self
            .send(Method::GET, &self.path(rec), Role::Backend, None)
            .await;
        got.body["meta"]["versionId"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The body of an update of `rec`: its current content, unchanged.
    async fn update_body(&self, rec: Rec) -> Value {
        let got = self
            .send(Method::GET, &self.path(rec), Role::Backend, None)
            .await;
        let mut body = got.body;
        let security = body["meta"]["security"].clone();
        body.as_object_mut().unwrap().remove("meta");
        if !security.is_null() {
            body["meta"] = json!({"security": security});
        }
        body
    }

    /// Runs one case; returns what was got, described, and the records found (for searches).
    async fn run(&mut self, role: Role, interaction: &Interaction) -> Observed {
        use Interaction::*;
        let p = self.p.clone();
        match interaction {
            Read(r) => self.observe_plain(Method::GET, &self.path(*r), role).await,
            Vread(r) => {
                self.observe_plain(Method::GET, &format!("{}/_history/1", self.path(*r)), role)
                    .await
            }
            History(r) => {
                self.observe_plain(Method::GET, &format!("{}/_history", self.path(*r)), role)
                    .await
            }
            SearchP(ty) => {
                let param = if *ty == "Patient" { "_id" } else { "patient" };
                self.observe_search(&format!("{ty}?{param}={p}"), role)
                    .await
            }
            SearchAll(ty) => self.observe_search(ty, role).await,
            Include(ty, param) => {
                self.observe_search(
                    &format!("{ty}?patient={p}&_include={ty}:{param}:Patient"),
                    role,
                )
                .await
            }
            Revinclude(ty, param) => {
                self.observe_search(&format!("Patient?_id={p}&_revinclude={ty}:{param}"), role)
                    .await
            }
            Everything => {
                self.observe_search(&format!("Patient/{p}/$everything"), role)
                    .await
            }
            Create(ty, owner) => {
                let (resource, marker) = self.new_record(ty, *owner);
                let got = self.fhir(Method::POST, ty, role, &resource).await;
                let written = self.sweep(&marker).await;
                Observed::write(got, written > 0)
            }
            Update(r) => {
                let body = self.update_body(*r).await;
                let before = self.version(*r).await;
                let got = self.fhir(Method::PUT, &self.path(*r), role, &body).await;
                let changed = self.version(*r).await != before;
                Observed::write(got, changed)
            }
            Patch(r) => {
                let patch = match r {
                    Rec::PatientP => json!([{"op": "add", "path": "/active", "value": true}]),
                    _ => json!([{"op": "replace", "path": "/code/text", "value": "penicillin"}]),
                };
                let before = self.version(*r).await;
                let got = self
                    .send(
                        Method::PATCH,
                        &self.path(*r),
                        role,
                        Some(("application/json-patch+json", patch.to_string())),
                    )
                    .await;
                let changed = self.version(*r).await != before;
                Observed::write(got, changed)
            }
            Delete(ty) => {
                let (resource, marker) = self.new_record(ty, Owner::P);
                let id = self.server.seed(&resource).await;
                let got = self
                    .send(Method::DELETE, &format!("{ty}/{id}"), role, None)
                    .await;
                let left = self.sweep(&marker).await;
                Observed::write(got, left == 0)
            }
            DeleteLabelled => {
                let (mut resource, marker) = self.new_record("Observation", Owner::P);
                resource["meta"] = json!({"security": [{"system": CONFIDENTIALITY, "code": "R"}]});
                let id = self.server.seed(&resource).await;
                let got = self
                    .send(Method::DELETE, &format!("Observation/{id}"), role, None)
                    .await;
                let left = self.sweep(&marker).await;
                Observed::write(got, left == 0)
            }
            ReadConsent(c) => {
                let id = self
                    .ids
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| "no-consent-yet".into());
                self.observe_plain(Method::GET, &format!("Consent/{id}"), role)
                    .await
            }
            SearchConsent => {
                self.observe_search(&format!("Consent?patient={p}"), role)
                    .await
            }
            Count(ty) => {
                let got = self
                    .send(
                        Method::GET,
                        &format!("{ty}?patient={p}&_summary=count"),
                        role,
                        None,
                    )
                    .await;
                Observed {
                    status: got.status,
                    matches: None,
                    included: None,
                    unknown: Vec::new(),
                    wrote: false,
                    detail: String::new(),
                    total: got.body["total"].as_u64().map(|t| t as usize),
                }
            }
            HasRestricted => {
                let restricted = self.id(Rec::Restricted).to_string();
                self.observe_search(
                    &format!("Patient?_id={p}&_has:Observation:subject:_id={restricted}"),
                    role,
                )
                .await
            }
            TypeHistory(ty) => {
                self.observe_plain(Method::GET, &format!("{ty}/_history"), role)
                    .await
            }
            Transaction(with_q) => {
                let (first, marker) = self.new_record("Observation", Owner::P);
                let mut entries = vec![
                    json!({"resource": first, "request": {"method": "POST", "url": "Observation"}}),
                ];
                if *with_q {
                    let (mut second, _) = self.new_record("Observation", Owner::Q);
                    second["identifier"][0]["value"] = json!(marker);
                    entries.push(
                        json!({"resource": second, "request": {"method": "POST", "url": "Observation"}}),
                    );
                }
                let bundle =
                    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
                let got = self.fhir(Method::POST, "", role, &bundle).await;
                let written = self.sweep(&marker).await;
                Observed::write(got, written > 0)
            }
        }
    }

    async fn observe_plain(&self, method: Method, path: &str, role: Role) -> Observed {
        let got = self.send(method, path, role, None).await;
        Observed {
            status: got.status,
            matches: None,
            included: None,
            unknown: Vec::new(),
            wrote: false,
            detail: String::new(),
            total: None,
        }
    }

    async fn observe_search(&self, path: &str, role: Role) -> Observed {
        let got = self.send(Method::GET, path, role, None).await;
        let mut observed = Observed {
            status: got.status,
            matches: None,
            included: None,
            unknown: Vec::new(),
            wrote: false,
            detail: String::new(),
            total: None,
        };
        if got.status != 200 {
            return observed;
        }
        let everything = path.contains("$everything");
        let mut matches = BTreeSet::new();
        let mut included = BTreeSet::new();
        for entry in got.body["entry"].as_array().into_iter().flatten() {
            let resource = &entry["resource"];
            let ty = resource["resourceType"].as_str().unwrap_or_default();
            let id = resource["id"].as_str().unwrap_or_default();
            // Shared directory data (the consents' actors) is not a patient's record.
            if matches!(
                ty,
                "OperationOutcome" | "Practitioner" | "PractitionerRole" | "Organization"
            ) {
                continue;
            }
            if ty == "Consent" && everything {
                // $everything returns the patient's consents; only those naming the caller
                // may reach a governed caller.
                if governed(role) && !self.names(id, role) {
                    observed.unknown.push(format!("Consent/{id}"));
                }
                continue;
            }
            let Some(rec) = self.rec_of(ty, id) else {
                observed.unknown.push(format!("{ty}/{id}"));
                continue;
            };
            if everything || entry["search"]["mode"] != "include" {
                matches.insert(rec);
            } else {
                included.insert(rec);
            }
        }
        observed.matches = Some(matches);
        observed.included = Some(included);
        observed
    }

    /// Whether `role` may see the consent `id` in the current state.
    fn names(&self, id: &str, role: Role) -> bool {
        self.rec_of("Consent", id)
            .is_some_and(|c| consent_visible(role, self.state, c))
    }
}

/// The seeded content of `rec` (`None` for the patients, made with their accounts).
fn record(rec: Rec, p: &str, q: &str) -> Option<Value> {
    let of_p = json!({"reference": format!("Patient/{p}")});
    let of_q = json!({"reference": format!("Patient/{q}")});
    Some(match rec {
        Rec::PatientP | Rec::PatientQ | Rec::ConsentToDoctor | Rec::ConsentToPharmacy => {
            return None;
        }
        Rec::Allergy => json!({"resourceType": "AllergyIntolerance", "patient": of_p,
            "recordedDate": "2024-03-01", "code": {"text": "penicillin"}}),
        Rec::OtherAllergy => json!({"resourceType": "AllergyIntolerance", "patient": of_q,
            "recordedDate": "2024-03-01", "code": {"text": "latex"}}),
        Rec::Vital => json!({"resourceType": "Observation", "status": "final", "subject": of_p,
            "code": {"text": "heart rate"}, "effectiveDateTime": "2024-06-01"}),
        Rec::Restricted => json!({"resourceType": "Observation", "status": "final",
            "subject": of_p, "meta": {"security": [{"system": CONFIDENTIALITY, "code": "R"}]},
            "code": {"text": "HIV test"}, "effectiveDateTime": "2023-01-01"}),
        Rec::Condition => json!({"resourceType": "Condition", "subject": of_p,
            "code": {"text": "asthma"}, "recordedDate": "2024-02-02"}),
        Rec::MedReq => json!({"resourceType": "MedicationRequest", "status": "active",
            "intent": "order", "subject": of_p, "medicationCodeableConcept": {"text": "salbutamol"},
            "authoredOn": "2024-05-05"}),
        Rec::Dispense => json!({"resourceType": "MedicationDispense", "status": "completed",
            "subject": of_p, "medicationCodeableConcept": {"text": "salbutamol"}}),
    })
}

fn entry_ids(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

/// What one case got.
struct Observed {
    status: u16,
    matches: Option<BTreeSet<Rec>>,
    included: Option<BTreeSet<Rec>>,
    /// Records in the answer that are none of the seeded ones (or consents not naming the
    /// caller): always a leak.
    unknown: Vec<String>,
    /// For writes: whether the server changed anything (created, updated, deleted).
    wrote: bool,
    detail: String,
    /// A searchset's `total`.
    total: Option<usize>,
}

impl Observed {
    fn write(got: Got, wrote: bool) -> Observed {
        Observed {
            status: got.status,
            matches: None,
            included: None,
            unknown: Vec::new(),
            wrote,
            total: None,
            detail: if got.status >= 300 {
                String::new()
            } else {
                got.body["resourceType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Something was allowed, written or shown that the specification refuses: the severe kind.
    UnexpectedPermit,
    /// Something the specification allows was refused or left out.
    UnexpectedDeny,
    /// A 2xx answer without any record where a refusal was due: allowed, but nothing revealed.
    EmptyPermit,
    /// Refused, but with 403 where 404 was due or the other way round.
    WrongRefusal,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::UnexpectedPermit => "UNEXPECTED PERMIT",
            Kind::UnexpectedDeny => "unexpected deny",
            Kind::EmptyPermit => "empty permit",
            Kind::WrongRefusal => "wrong refusal",
        })
    }
}

/// The mismatches of one case (several kinds may apply, e.g. a missing and an extra record).
fn compare(expected: &Expected, observed: &Observed) -> Vec<(Kind, String)> {
    let mut out = Vec::new();
    let ok = (200..300).contains(&observed.status);
    for leak in &observed.unknown {
        out.push((Kind::UnexpectedPermit, format!("{leak} in the answer")));
    }
    match expected {
        Expected::Ok { matches, included } => {
            if !ok {
                out.push((
                    Kind::UnexpectedDeny,
                    format!("expected 2xx, got {}", observed.status),
                ));
                return out;
            }
            for (what, want, got) in [
                ("matches", matches, &observed.matches),
                ("included", included, &observed.included),
            ] {
                if let (Some(want), Some(got)) = (want, got) {
                    let extra: Vec<_> = got.difference(want).collect();
                    let missing: Vec<_> = want.difference(got).collect();
                    if !extra.is_empty() {
                        out.push((Kind::UnexpectedPermit, format!("{what}: extra {extra:?}")));
                    }
                    if !missing.is_empty() {
                        out.push((Kind::UnexpectedDeny, format!("{what}: missing {missing:?}")));
                    }
                }
            }
        }
        Expected::Total(want) => {
            if !ok {
                out.push((
                    Kind::UnexpectedDeny,
                    format!("expected 2xx, got {}", observed.status),
                ));
            } else if observed.total.is_none_or(|t| t > *want) {
                out.push((
                    Kind::UnexpectedPermit,
                    format!("total {:?}, expected {want}", observed.total),
                ));
            } else if observed.total != Some(*want) {
                out.push((
                    Kind::UnexpectedDeny,
                    format!("total {:?}, expected {want}", observed.total),
                ));
            }
        }
        Expected::Hidden => {
            let shown = observed.matches.as_ref().is_some_and(|m| !m.is_empty())
                || observed.included.as_ref().is_some_and(|m| !m.is_empty());
            if ok && shown {
                out.push((
                    Kind::UnexpectedPermit,
                    format!("expected nothing shown, got {:?}", observed.matches),
                ));
            } else if !ok && !matches!(observed.status, 403 | 404) {
                out.push((
                    Kind::WrongRefusal,
                    format!("expected nothing shown, got {}", observed.status),
                ));
            }
        }
        Expected::Forbidden | Expected::NotFound => {
            let want = if *expected == Expected::Forbidden {
                403
            } else {
                404
            };
            let empty = (observed.matches.as_ref().is_some_and(BTreeSet::is_empty)
                && observed.included.as_ref().is_some_and(BTreeSet::is_empty)
                && observed.unknown.is_empty())
                || (observed.matches.is_none() && observed.total == Some(0));
            if ok && empty {
                out.push((
                    Kind::EmptyPermit,
                    format!("expected {want}, got {} with no record", observed.status),
                ));
            } else if ok {
                out.push((
                    Kind::UnexpectedPermit,
                    format!(
                        "expected {want}, got {} {}",
                        observed.status, observed.detail
                    ),
                ));
            } else if observed.status != want {
                out.push((
                    Kind::WrongRefusal,
                    format!("expected {want}, got {}", observed.status),
                ));
            }
            if observed.wrote {
                out.push((
                    Kind::UnexpectedPermit,
                    format!("refused with {} but the write happened", observed.status),
                ));
            }
        }
    }
    out
}

async fn access_matrix(backend: TestBackend) {
    let Some(mut w) = World::start(backend).await else {
        return;
    };
    let interactions = interactions();
    let mut cases = 0usize;
    let mut failures: Vec<String> = Vec::new();
    let mut tolerated: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut permits = 0usize;
    for state in STATES {
        w.enter(state).await;
        for role in ROLES {
            for interaction in &interactions {
                cases += 1;
                let expected = oracle(role, state, interaction);
                let observed = w.run(role, interaction).await;
                for (kind, detail) in compare(&expected, &observed) {
                    if let Some(gap) = KNOWN_GAPS
                        .iter()
                        .find(|g| (g.applies)(role, state, interaction, kind, &detail))
                    {
                        tolerated.entry(gap.what).or_default().push(format!(
                            "{kind}: {role:?} × {state:?} × {interaction:?}: {detail}"
                        ));
                        continue;
                    }
                    if kind == Kind::UnexpectedPermit {
                        permits += 1;
                    }
                    failures.push(format!(
                        "{kind}: {role:?} × {state:?} × {interaction:?}: {detail}"
                    ));
                }
            }
        }
    }
    println!(
        "{backend:?}: access matrix of {cases} cases ({} roles × {} consent states × {} interactions)",
        ROLES.len(),
        STATES.len(),
        interactions.len()
    );
    for (why, examples) in &tolerated {
        println!(
            "{backend:?}: KNOWN GAP, {} mismatches tolerated: {why}",
            examples.len()
        );
        for example in examples.iter().take(3) {
            println!("    e.g. {example}");
        }
    }
    w.server.stop().await;
    assert!(cases >= 2000, "only {cases} cases");
    assert!(
        failures.is_empty(),
        "{backend:?}: {} mismatches ({permits} unexpected permits) in {cases} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

on_both_backends!(matrix, access_matrix);

#[test]
fn the_oracle_agrees_with_the_checklist() {
    use Interaction::*;
    // 58: no consent → a search naming P is 403, a read 404.
    assert_eq!(
        oracle(Role::Doctor, State::None, &SearchP("Observation")),
        Expected::Forbidden
    );
    assert_eq!(
        oracle(Role::Doctor, State::None, &Read(Rec::Vital)),
        Expected::NotFound
    );
    // 63: READ_BASIC → Patient yes, Condition no.
    assert_eq!(
        oracle(Role::Doctor, State::Basic, &Read(Rec::Condition)),
        Expected::NotFound
    );
    assert_eq!(
        oracle(Role::Doctor, State::Basic, &Read(Rec::PatientP)),
        Expected::ok()
    );
    // 61: class narrowed → Observation search is empty, not refused.
    assert_eq!(
        oracle(Role::Doctor, State::Class, &SearchP("Observation")),
        Expected::found(BTreeSet::new(), BTreeSet::new())
    );
    // 70: the restricted record is withheld.
    assert_eq!(
        oracle(Role::Doctor, State::DenyLabelData, &SearchP("Observation")),
        Expected::found(BTreeSet::from([Rec::Vital]), BTreeSet::new())
    );
    // The pharmacist never reaches Observations, whatever the consent.
    assert_eq!(
        oracle(Role::Pharmacist, State::Active, &SearchP("Observation")),
        Expected::Forbidden
    );
    // The patient reads their own records whatever the consents say.
    assert_eq!(
        oracle(Role::Patient, State::None, &Read(Rec::Restricted)),
        Expected::ok()
    );
}
