//! The resource-server check on `/fhir` (with `--require-auth`): the bearer token is verified
//! against the Authority's key ring and its scopes are enforced per interaction, at each level
//! the token has (`system/`, `user/`, `patient/`; see `curanet_auth::access`). `patient/`
//! scopes are confined to the patient in context (`curanet_auth::compartment`): searches are
//! narrowed to the patient's records, reads of other records answer 404, writes outside them
//! 403, and included resources outside them are left out of the answer. The decisions are in
//! `curanet_auth`; this module maps requests onto them and runs the checks that need data.

use std::sync::{Arc, OnceLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use curanet_auth::access::{
    authorize_operation, authorize_request, missing_scope, single_condition_set, token_levels,
};
use curanet_auth::compartment::{Confinement, Membership, confine, confinement, names_patient};
use curanet_auth::scope::{Conditions, Decision, Interaction, Level, OperationTarget, Scopes};
use curanet_auth::token::AccessClaims;
use curanet_engine::EngineError;
use curanet_fhir::{Definitions, Issue, IssueType, OperationOutcome};
use curanet_fhir_profiles::SearchParamType;
use serde_json::{Value, json};

mod consent;

use crate::app::AppState;
use crate::error::ApiError;
use crate::handlers::read_body;
use crate::server::unix_now;

/// The verified token of a request, for handlers that need it (audit, later consents).
#[derive(Debug, Clone)]
pub struct VerifiedAccess {
    /// The token's claims (shared with the verified-token cache).
    pub claims: Arc<AccessClaims>,
    /// Its parsed scopes.
    pub scopes: Arc<Scopes>,
}

/// The operations of the consent workflow and break-the-glass, admitted for any person's token;
/// their handlers check who calls them.
pub const CONSENT_OPERATIONS: [&str; 5] = [
    "request-consent",
    "approve",
    "reject",
    "revoke",
    "break-glass",
];

/// What the patients' consents decided for a request, put in the response's extensions for the
/// audit trail (absent when no consent was involved: backend services, a patient's own records).
#[derive(Debug, Clone, Default)]
pub struct ConsentBasis {
    /// The patient whose consents were consulted (`Patient/{id}` id), when one was.
    pub patient: Option<String>,
    /// The ids of the Consents that permitted the request (`Consent/{id}`).
    pub consents: Vec<String>,
    /// Whether a break-the-glass grant (purpose `BTG`) permitted it.
    pub break_glass: bool,
    /// Why consent refused the request (the AuthZ-Consent security alert's `outcomeDesc`).
    pub refusal: Option<String>,
}

/// What a request (or a Bundle entry) asks to do, as far as scopes are concerned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// Needs no token.
    Public,
    /// One interaction on a type (`*` at system level), with the instance id when there is one.
    Interaction(Interaction, String, Option<String>),
    /// A conditional write: the write and a search of the type.
    Conditional(Interaction, String),
    /// `$name` on the system, a type or an instance.
    Operation(String, Option<String>, Option<String>),
    /// `POST /fhir` with a batch or transaction Bundle.
    Bundle,
    /// Nothing we can decide (a percent-encoded path): refused, never guessed.
    Unknown,
    /// A path no route serves: the router answers 404 (or 405), nothing is read or written.
    NoRoute,
}

/// Maps a method and the path below `/fhir` onto what it asks to do.
pub(crate) fn classify(method: &Method, path: &str) -> Target {
    use Interaction::*;
    // Types, ids and operation names never need escapes; an escaped path could name a type
    // other than the one we would check.
    if path.contains('%') {
        return Target::Unknown;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // axum answers HEAD with the GET route.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let t = |s: &str| s.to_string();
    let op = |s: &str| s.strip_prefix('$').map(str::to_string);
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["metadata"]) | (_, [".well-known", ..]) => Target::Public,
        ("POST", []) => Target::Bundle,
        ("GET", []) | ("POST", ["_search"]) => Target::Interaction(SearchSystem, t("*"), None),
        ("GET", ["_history"]) => Target::Interaction(HistorySystem, t("*"), None),
        (_, [name]) if name.starts_with('$') => Target::Operation(op(name).unwrap(), None, None),
        ("POST", [ty]) => Target::Interaction(Create, t(ty), None),
        ("GET", [ty]) | ("POST", [ty, "_search"]) => Target::Interaction(SearchType, t(ty), None),
        ("PUT", [ty]) => Target::Conditional(Update, t(ty)),
        ("DELETE", [ty]) => Target::Conditional(Delete, t(ty)),
        ("PATCH", [ty]) => Target::Conditional(Patch, t(ty)),
        ("GET", [ty, "_history"]) => Target::Interaction(HistoryType, t(ty), None),
        (_, [ty, name]) if name.starts_with('$') => {
            Target::Operation(op(name).unwrap(), Some(t(ty)), None)
        }
        ("GET", [ty, id]) => Target::Interaction(Read, t(ty), Some(t(id))),
        ("PUT", [ty, id]) => Target::Interaction(Update, t(ty), Some(t(id))),
        ("DELETE", [ty, id]) => Target::Interaction(Delete, t(ty), Some(t(id))),
        ("PATCH", [ty, id]) => Target::Interaction(Patch, t(ty), Some(t(id))),
        (_, [ty, id, name]) if name.starts_with('$') => {
            Target::Operation(op(name).unwrap(), Some(t(ty)), Some(t(id)))
        }
        ("GET", [ty, id, "_history"]) => Target::Interaction(HistoryInstance, t(ty), Some(t(id))),
        ("GET", [ty, id, "_history", _]) => Target::Interaction(Vread, t(ty), Some(t(id))),
        _ => Target::NoRoute,
    }
}

/// A refusal: 403 with an OperationOutcome (code `forbidden`).
fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, IssueType::Forbidden, message)
}

/// 404 exactly as for a resource that does not exist.
fn not_found(resource_type: &str, id: &str) -> ApiError {
    EngineError::NotFound(format!("{resource_type}/{id}")).into()
}

/// The token of a request: its scopes, the levels they use and the patient in context.
struct TokenAccess<'a> {
    scopes: &'a Scopes,
    claims: &'a AccessClaims,
    levels: Vec<Level>,
    defs: &'a Definitions,
}

impl TokenAccess<'_> {
    /// The patient in context (checked present when the token has `patient/` scopes).
    fn patient(&self) -> &str {
        self.claims.patient.as_deref().unwrap_or("")
    }

    /// How `resource_type` is tied to a patient.
    fn confinement(&self, resource_type: &str) -> Confinement {
        let compartment = self.defs.patient_compartment().params(resource_type);
        let has_patient_param = self.defs.search_parameters(resource_type).iter().any(|p| {
            p.code == "patient"
                && p.kind == SearchParamType::Reference
                && p.targets.iter().any(|t| t == "Patient")
        });
        confinement(resource_type, compartment, has_patient_param)
    }

    /// 403 naming the scope that would have permitted the interaction.
    fn missing(&self, interaction: Interaction, resource_type: &str) -> ApiError {
        forbidden(format!(
            "the token's scopes do not permit {} on {resource_type}: it needs {}",
            interaction.code(),
            missing_scope(&self.levels, interaction, resource_type)
        ))
    }

    /// Whether `level` permits `interaction` on every resource of `resource_type` the level
    /// can reach (at patient level: types outside the compartment only, unless `confined_ok`).
    fn open_at(
        &self,
        level: Level,
        interaction: Interaction,
        resource_type: &str,
        confined_ok: bool,
    ) -> bool {
        authorize_request(self.scopes, level, interaction, resource_type).is_unrestricted()
            && (level != Level::Patient
                || confined_ok
                || (resource_type != "*" && !self.confinement(resource_type).is_confined()))
    }
}

/// What an allowed request must be narrowed by or checked for, as granted by one level.
#[derive(Debug)]
struct Narrowing {
    /// The level that granted it.
    level: Level,
    /// Pairs ANDed into a type-level search, a conditional write's criteria, or the
    /// `If-None-Exist` of a create.
    pairs: Vec<(String, String)>,
    /// Reads allowed only if the resource passes one of these checks.
    instances: Vec<InstanceCheck>,
    /// A write confined to the patient's records.
    write: Option<WriteCheck>,
    /// The answer may only hold this patient's records (patient level): included resources of
    /// other patients are left out (every entry's, with `all_entries`, for `$everything`).
    confine_to: Option<String>,
    all_entries: bool,
}

impl Narrowing {
    fn open(level: Level) -> Self {
        Narrowing {
            level,
            pairs: Vec::new(),
            instances: Vec::new(),
            write: None,
            confine_to: None,
            all_entries: false,
        }
    }

    fn is_open(&self) -> bool {
        self.pairs.is_empty()
            && self.instances.is_empty()
            && self.write.is_none()
            && self.confine_to.is_none()
    }
}

/// A read allowed only if `type/id` is the patient's (when `patient` is set; else 404) and
/// matches one of the granular AND-sets (when there are any; else 403, or 404 when confined).
#[derive(Debug)]
struct InstanceCheck {
    resource_type: String,
    id: String,
    sets: Vec<Conditions>,
    patient: Option<(Confinement, String)>,
}

/// A write confined to the patient's records: the stored version and/or the new body must be
/// the patient's.
#[derive(Debug)]
struct WriteCheck {
    resource_type: String,
    id: Option<String>,
    confinement: Confinement,
    patient: String,
    member: Option<Membership>,
    body: bool,
}

/// Decides `target` at every level of the token and combines the grants (the union; see
/// `curanet_auth::access`).
fn decide(access: &TokenAccess<'_>, target: &Target) -> Result<Narrowing, ApiError> {
    let mut grants = Vec::new();
    let mut refusal = None;
    for level in &access.levels {
        match decide_at(access, *level, target) {
            Ok(n) => grants.push(n),
            // A 404 (another patient's record) is kept over a 403: it tells nothing.
            Err(e) if e.status == StatusCode::NOT_FOUND => refusal = Some(e),
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    if grants.is_empty() {
        return Err(refusal.unwrap_or_else(|| forbidden("the token has no clinical scopes")));
    }
    if let Some(i) = grants.iter().position(Narrowing::is_open) {
        return Ok(grants.swap_remove(i));
    }
    if grants.len() == 1 {
        return Ok(grants.remove(0));
    }
    // Several levels each allow a narrowed form: a read passes when any of their checks does.
    let reads_only = grants
        .iter()
        .all(|g| g.pairs.is_empty() && g.write.is_none() && !g.instances.is_empty());
    if reads_only {
        let mut first = grants.remove(0);
        for g in grants {
            first.instances.extend(g.instances);
        }
        return Ok(first);
    }
    Err(forbidden(
        "the token's scope levels each permit a differently narrowed part of this request, and one request cannot express their union; use a token with one level, or narrow the request",
    ))
}

/// Decides `target` at one level: the scopes' letters and granular conditions, and the
/// confinement to the patient (`patient/`).
fn decide_at(
    access: &TokenAccess<'_>,
    level: Level,
    target: &Target,
) -> Result<Narrowing, ApiError> {
    if let Target::Operation(name, _, _) = target
        && CONSENT_OPERATIONS.contains(&name.as_str())
    {
        // The consent workflow acts for a person: its handlers decide who may do what (the
        // patient approves, a clinician requests), from the token's fhirUser and patient.
        return match level {
            Level::System => Err(forbidden(format!(
                "${name} acts for a patient or a clinician: a backend service's token cannot call it"
            ))),
            _ => Ok(Narrowing::open(level)),
        };
    }
    let mut narrowing = decide_scopes(access, level, target)?;
    match level {
        Level::System => {}
        // Consents are applied before (`consent::mediate`): a governed request about a
        // patient is decided at patient level.
        Level::User => {}
        Level::Patient => confine_to_patient(access, target, &mut narrowing)?,
    }
    Ok(narrowing)
}

/// The scopes of `level` alone: letters, granular conditions, operation rules.
fn decide_scopes(
    access: &TokenAccess<'_>,
    level: Level,
    target: &Target,
) -> Result<Narrowing, ApiError> {
    use Interaction::*;
    let scopes = access.scopes;
    let unrestricted = |i: Interaction, ty: &str| -> Result<(), ApiError> {
        match authorize_request(scopes, level, i, ty) {
            Decision::Unrestricted => Ok(()),
            Decision::Denied => Err(access.missing(i, ty)),
            // A write or a history cannot be filtered by search parameters: deny, never widen.
            Decision::Restricted(_) => Err(forbidden(format!(
                "the token's granular scopes on {ty} do not permit {} (only unrestricted scopes do)",
                i.code()
            ))),
        }
    };
    let open = Narrowing::open(level);
    match target {
        Target::Public | Target::Bundle | Target::NoRoute => Ok(open),
        Target::Unknown => Err(forbidden(
            "this request is not an interaction the token's scopes can be checked for",
        )),
        Target::Interaction(i @ (SearchType | SearchSystem), ty, _) => {
            let decision = authorize_request(scopes, level, *i, ty);
            if decision.is_denied() {
                return Err(access.missing(*i, ty));
            }
            match single_condition_set(&decision) {
                Some(pairs) => Ok(Narrowing { pairs, ..open }),
                None => Err(forbidden(format!(
                    "the token's granular scopes on {ty} are several alternative restrictions, which one search cannot express; request one type-level search per scope"
                ))),
            }
        }
        Target::Interaction(Read, ty, Some(id)) => {
            match authorize_request(scopes, level, Read, ty) {
                Decision::Unrestricted => Ok(open),
                Decision::Denied => Err(access.missing(Read, ty)),
                Decision::Restricted(sets) => Ok(Narrowing {
                    instances: vec![InstanceCheck {
                        resource_type: ty.clone(),
                        id: id.clone(),
                        sets,
                        patient: None,
                    }],
                    ..open
                }),
            }
        }
        Target::Interaction(i, ty, _) => unrestricted(*i, ty).map(|()| open),
        Target::Conditional(i, ty) => {
            unrestricted(*i, ty)?;
            unrestricted(SearchType, ty)?;
            Ok(open)
        }
        Target::Operation(name, ty, id) => {
            let on = match (ty, id) {
                (None, _) => OperationTarget::System,
                (Some(t), None) => OperationTarget::Type(t),
                (Some(t), Some(_)) => OperationTarget::Instance(t),
            };
            let shown = ty.as_deref().unwrap_or("*");
            if !authorize_operation(scopes, level, name, on).is_unrestricted() {
                return Err(forbidden(format!(
                    "the token's scopes do not permit ${name} on {shown}"
                )));
            }
            // Operations returning other types need those types too; we check them all at once.
            let results = curanet_auth::scope::operation_rule(name, on)
                .map(|r| r.on_results)
                .unwrap_or_default();
            let over = if matches!(name.as_str(), "lastn") {
                shown
            } else {
                "*"
            };
            if !results.is_empty() && !scopes.decide_all(level, over, results).is_unrestricted() {
                return Err(forbidden(format!(
                    "${name} returns resources of many types: it needs {level}/{over}.rs"
                )));
            }
            Ok(open)
        }
    }
}

/// Confines a patient-level grant to the patient's records.
fn confine_to_patient(
    access: &TokenAccess<'_>,
    target: &Target,
    narrowing: &mut Narrowing,
) -> Result<(), ApiError> {
    let patient = access.patient().to_string();
    match target {
        Target::Public | Target::Bundle | Target::Unknown | Target::NoRoute => Ok(()),
        Target::Interaction(i, ty, id) => {
            let c = access.confinement(ty);
            let confined = confine(&c, *i, false, &patient).map_err(forbidden)?;
            if *i == Interaction::SearchType {
                // Included resources of patients' record types are filtered from the answer.
                narrowing.confine_to = Some(patient.clone());
            }
            apply_confined(narrowing, c, confined, ty, id.as_deref(), &patient)
        }
        Target::Conditional(i, ty) => {
            let c = access.confinement(ty);
            let confined = confine(&c, *i, true, &patient).map_err(forbidden)?;
            apply_confined(narrowing, c, confined, ty, None, &patient)
        }
        Target::Operation(name, ty, id) => match (name.as_str(), ty.as_deref(), id.as_deref()) {
            ("validate", Some(_), None) => Ok(()),
            // `$lastn` is a search of its type: narrowed like one.
            ("lastn", Some(ty), None) => match access.confinement(ty).pair(&patient) {
                Some(pair) => {
                    narrowing.pairs.push(pair);
                    narrowing.confine_to = Some(patient);
                    Ok(())
                }
                None => Err(forbidden(format!(
                    "$lastn on {ty} cannot be confined to the patient's records"
                ))),
            },
            ("everything", Some("Patient"), Some(id)) => {
                if id != patient {
                    return Err(not_found("Patient", id));
                }
                narrowing.confine_to = Some(patient);
                narrowing.all_entries = true;
                Ok(())
            }
            (op @ ("validate" | "meta" | "meta-add" | "meta-delete"), Some(ty), Some(id)) => {
                let c = access.confinement(ty);
                let writes = op.starts_with("meta-");
                if c.is_confined() {
                    narrowing.instances.push(InstanceCheck {
                        resource_type: ty.to_string(),
                        id: id.to_string(),
                        sets: Vec::new(),
                        patient: Some((c, patient)),
                    });
                    Ok(())
                } else if writes {
                    Err(forbidden(
                        "a patient-level token writes only the patient's own records, and resources of this type are not about one patient",
                    ))
                } else {
                    Ok(())
                }
            }
            (op, _, _) => Err(forbidden(format!(
                "${op} here spans more than the patient's records: a patient-level token may call $everything on Patient/{patient} only"
            ))),
        },
    }
}

/// Adds what a patient-level interaction needs to its grant.
fn apply_confined(
    narrowing: &mut Narrowing,
    c: Confinement,
    confined: curanet_auth::compartment::Confined,
    ty: &str,
    id: Option<&str>,
    patient: &str,
) -> Result<(), ApiError> {
    if let Some(pair) = confined.narrow {
        narrowing.pairs.push(pair);
        narrowing.confine_to = Some(patient.to_string());
    }
    match confined.member {
        Some(Membership::ToRead) => {
            let id = id.unwrap_or_default();
            if c == Confinement::Owner && id != patient {
                return Err(not_found(ty, id));
            }
            let member = Some((c.clone(), patient.to_string()));
            if narrowing.instances.is_empty() {
                narrowing.instances.push(InstanceCheck {
                    resource_type: ty.to_string(),
                    id: id.to_string(),
                    sets: Vec::new(),
                    patient: member,
                });
            } else {
                for check in &mut narrowing.instances {
                    check.patient = member.clone();
                }
            }
        }
        Some(member @ (Membership::ToWrite | Membership::ToReplace)) => {
            let id = id.unwrap_or_default();
            if c == Confinement::Owner && id != patient {
                return Err(forbidden(format!(
                    "a patient-level token writes only Patient/{patient}"
                )));
            }
            narrowing.write = Some(WriteCheck {
                resource_type: ty.to_string(),
                id: Some(id.to_string()),
                confinement: c.clone(),
                patient: patient.to_string(),
                member: Some(member),
                body: confined.body,
            });
        }
        None if confined.body => {
            narrowing.write = Some(WriteCheck {
                resource_type: ty.to_string(),
                id: None,
                confinement: c.clone(),
                patient: patient.to_string(),
                member: None,
                body: true,
            });
        }
        None => {}
    }
    // A create confined to the patient narrows its If-None-Exist search too.
    if narrowing
        .write
        .as_ref()
        .is_some_and(|w| w.member.is_none() && w.id.is_none())
        && let Some(pair) = c.pair(patient)
        && narrowing.pairs.is_empty()
    {
        narrowing.pairs.push(pair);
    }
    Ok(())
}

/// The search-index extractor, for the patient's references in request bodies and answers.
fn indexer(defs: &Definitions) -> &'static curanet_search::Indexer {
    static INDEXER: OnceLock<curanet_search::Indexer> = OnceLock::new();
    INDEXER.get_or_init(|| curanet_search::Indexer::new(defs))
}

/// Whether `resource` (of `resource_type`) is one of the patient's records (`to_write`: and
/// names no other patient; see [`names_patient`]).
fn is_patients(
    defs: &Definitions,
    resource_type: &str,
    resource: &Value,
    c: &Confinement,
    patient: &str,
    to_write: bool,
) -> bool {
    match c {
        Confinement::Owner => {
            resource_type == "Patient"
                && resource.get("id").and_then(Value::as_str) == Some(patient)
        }
        Confinement::Param(param) => {
            let rows = indexer(defs).extract(resource_type, resource);
            names_patient(
                rows.references
                    .iter()
                    .filter(|r| &r.param == param)
                    .map(|r| (r.target_type.as_str(), r.target_id.as_str())),
                patient,
                to_write,
            )
        }
        Confinement::Shared | Confinement::Unconfinable => false,
    }
}

/// `_include` / `_revinclude` values whose resources the granting level may not read: removed
/// from `pairs` and returned, so the searchset reports them instead of leaking them. At patient
/// level the includes of the patient's record types stay: the answer is filtered afterwards.
fn drop_unreadable_includes(
    access: &TokenAccess<'_>,
    level: Level,
    pairs: &mut Vec<(String, String)>,
) -> Vec<String> {
    let mut dropped = Vec::new();
    pairs.retain(|(name, value)| {
        let base = name.split(':').next().unwrap_or("");
        let parts: Vec<&str> = value.split(':').collect();
        let returned = match base {
            // `Source:param:Target` returns Target; without one, any type it references.
            "_include" => parts.get(2).copied().unwrap_or("*"),
            "_revinclude" => parts.first().copied().unwrap_or("*"),
            _ => return true,
        };
        let returned = if returned.is_empty() { "*" } else { returned };
        if access.open_at(level, Interaction::Read, returned, true) {
            true
        } else {
            dropped.push(format!("{name}={value}"));
            false
        }
    });
    dropped
}

/// `_include` / `_revinclude` values that may return patients' records: removed from `pairs`
/// and returned, for searches whose answer consent confines beyond one patient's compartment
/// (across patients, or within a data period or label restriction the includes would escape).
fn drop_record_includes(
    access: &TokenAccess<'_>,
    pairs: &mut Vec<(String, String)>,
) -> Vec<String> {
    let mut dropped = Vec::new();
    pairs.retain(|(name, value)| {
        let base = name.split(':').next().unwrap_or("");
        let parts: Vec<&str> = value.split(':').collect();
        let returned = match base {
            "_include" => parts.get(2).copied().unwrap_or("*"),
            "_revinclude" => parts.first().copied().unwrap_or("*"),
            _ => return true,
        };
        if returned.is_empty() || returned == "*" || access.confinement(returned).is_confined() {
            dropped.push(format!("{name}={value}"));
            false
        } else {
            true
        }
    });
    dropped
}

/// A conditional create also searches (and answers the match it finds), so it needs an
/// unrestricted search and read of the type as well.
fn conditional_create_search(
    access: &TokenAccess<'_>,
    level: Level,
    resource_type: &str,
) -> Result<(), ApiError> {
    for i in [Interaction::SearchType, Interaction::Read] {
        if !authorize_request(access.scopes, level, i, resource_type).is_unrestricted() {
            return Err(access.missing(i, resource_type));
        }
    }
    Ok(())
}

/// Chains (`subject:Patient.name=`) and `_has` (`_has:Observation:patient:code=`) filter by
/// other types' data, so those types must be searchable without restriction too; a chain link
/// without a `:Type` may reach any type and needs `*.s`. At patient level they may reach only
/// types outside the compartment (other patients' records must not decide what is returned).
fn check_other_types(
    access: &TokenAccess<'_>,
    level: Level,
    pairs: &[(String, String)],
) -> Result<(), ApiError> {
    let searchable = |ty: &str| -> Result<(), ApiError> {
        if access.open_at(level, Interaction::SearchType, ty, false) {
            Ok(())
        } else if ty == "*" {
            Err(forbidden(format!(
                "a chain without a :Type modifier may reach any type: name the type (e.g. subject:Practitioner.name) or use a token with {level}/*.s"
            )))
        } else if level == Level::Patient && access.confinement(ty).is_confined() {
            Err(forbidden(format!(
                "a patient-level token cannot chain into {ty}: its resources are patients' records"
            )))
        } else {
            Err(access.missing(Interaction::SearchType, ty))
        }
    };
    for (name, _) in pairs {
        let mut rest = name.as_str();
        while let Some(tail) = rest.strip_prefix("_has:") {
            let mut parts = tail.splitn(3, ':');
            searchable(parts.next().unwrap_or("*"))?;
            parts.next();
            rest = parts.next().unwrap_or("");
        }
        let links: Vec<&str> = rest.split('.').collect();
        for link in &links[..links.len().saturating_sub(1)] {
            searchable(link.split_once(':').map_or("*", |(_, ty)| ty))?;
        }
    }
    Ok(())
}

/// Whether a path below the server root is served without a token.
fn is_public(path: &str) -> bool {
    !(path == "/fhir" || path.starts_with("/fhir/"))
        || path == "/fhir/metadata"
        || path.starts_with("/fhir/.well-known/")
}

/// 401 without a usable token: `login` when none was sent, `invalid_token` otherwise.
fn unauthorized(sent: bool, message: &str) -> Response {
    let (challenge, code) = if sent {
        (
            "Bearer realm=\"curanet\", error=\"invalid_token\"",
            IssueType::Login,
        )
    } else {
        ("Bearer realm=\"curanet\"", IssueType::Login)
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// The middleware: passes public paths and (with the setting off) everything; otherwise verifies
/// the bearer token, decides the request and narrows it.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.require_auth || is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let Some(bearer) = bearer else {
        return unauthorized(
            false,
            "this endpoint needs an access token (Authorization: Bearer)",
        );
    };
    let token = match bearer.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return unauthorized(true, "the Authorization header is not a Bearer token"),
    };
    let verified = match state.authority.verify_token(token, unix_now()).await {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(reason = %e, "access token refused");
            return unauthorized(
                true,
                "the access token is invalid, expired or not for this server",
            );
        }
    };
    let (claims, scopes) = (verified.claims, verified.scopes);
    let levels = match token_levels(&scopes, claims.patient.as_deref()) {
        Ok(levels) => levels,
        Err(message) => {
            let mut response = forbidden(message).into_response();
            response
                .extensions_mut()
                .insert(VerifiedAccess { claims, scopes });
            return response;
        }
    };
    let defs = state.engine.definitions().clone();
    let access = TokenAccess {
        scopes: &scopes,
        claims: &claims,
        levels,
        defs: &defs,
    };
    let mut basis = None;
    let mut response = match authorize(&state, request, &access, &mut basis).await {
        Ok(Admitted {
            mut request,
            dropped,
            refused,
            confine_to,
            registers_patient,
        }) => {
            request.extensions_mut().insert(VerifiedAccess {
                claims: Arc::clone(&claims),
                scopes: Arc::clone(&scopes),
            });
            // A write's record is made inside the handler's transaction: it needs the basis too.
            if let Some(basis) = &basis {
                request.extensions_mut().insert(basis.clone());
            }
            let mut response = next.run(request).await;
            if registers_patient {
                consent::after_registration(&state, &claims, &response).await;
            }
            if let Some(confined) = confine_to {
                response = confine_answer(response, &access, &confined).await;
            }
            if !dropped.is_empty() {
                report_dropped(response, &dropped).await
            } else if !refused.is_empty() {
                splice_refused(response, refused).await
            } else {
                response
            }
        }
        Err(Refusal::Error(e)) => e.into_response(),
        Err(Refusal::Response(r)) => *r,
    };
    // The audit trail (outside this layer) names the token's user and client, allowed or not,
    // and what consent decided.
    response
        .extensions_mut()
        .insert(VerifiedAccess { claims, scopes });
    if let Some(basis) = basis {
        response.extensions_mut().insert(basis);
    }
    response
}

/// A request allowed through, as narrowed.
struct Admitted {
    request: Request,
    /// Includes dropped from a search, to be reported in its Bundle.
    dropped: Vec<String>,
    /// A batch's refused entries (position, 403 response entry), to be put back in its answer.
    refused: Vec<(usize, Value)>,
    /// The patient whose records alone the answer may hold.
    confine_to: Option<Confined>,
    /// A clinician creates a Patient: they keep the record under a registration consent.
    registers_patient: bool,
}

/// How an answer is confined to one patient's records.
struct Confined {
    patient: String,
    /// Every entry is checked (`$everything`), not only the included ones.
    all_entries: bool,
    /// The caller is governed by consents: the patient's Consents and AuditEvents are left out
    /// too (a clinician reads only the consents that name them, and no audit records).
    private: bool,
}

impl Admitted {
    fn unchanged(request: Request) -> Self {
        Admitted {
            request,
            dropped: Vec::new(),
            refused: Vec::new(),
            confine_to: None,
            registers_patient: false,
        }
    }
}

/// Why a request does not reach its handler.
enum Refusal {
    Error(ApiError),
    /// A complete answer (a batch whose every entry was refused).
    Response(Box<Response>),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Error(e)
    }
}

/// `pairs` as a query string.
fn query_of(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// `criteria` with `extra` appended (`&`-joined, either may be empty).
fn and_query(criteria: &str, extra: &[(String, String)]) -> String {
    let extra = query_of(extra);
    match (criteria.is_empty(), extra.is_empty()) {
        (_, true) => criteria.to_string(),
        (true, false) => extra,
        (false, false) => format!("{criteria}&{extra}"),
    }
}

/// Decides the request and rewrites it as its narrowing needs; returns it with the includes
/// dropped from it.
async fn authorize(
    state: &AppState,
    mut request: Request,
    access: &TokenAccess<'_>,
    basis: &mut Option<ConsentBasis>,
) -> Result<Admitted, Refusal> {
    let path = request.uri().path().strip_prefix("/fhir").unwrap_or("");
    let target = classify(request.method(), path);
    if target == Target::Bundle {
        return authorize_bundle(state, request, access).await;
    }
    // A clinician's token: the consents of the patient the request is about decide with it.
    let mut mediation = consent::Mediation::Unmediated;
    let governed = consent::governed(access.claims);
    if governed {
        // The token's own scopes first: what they do not permit is 403 whatever the consents.
        decide(access, &target)?;
        let query: Vec<(String, String)> = request
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let body = if matches!(
            target,
            Target::Interaction(Interaction::Create | Interaction::Update, ..)
        ) {
            let (parts, body) = request.into_parts();
            let bytes = read_body(state, body).await?;
            let json = serde_json::from_slice::<Value>(&bytes).ok();
            request = Request::from_parts(parts, Body::from(bytes));
            json
        } else {
            None
        };
        mediation = consent::mediate(state, access, &target, &query, body.as_ref(), basis).await?;
        if let consent::Mediation::Nothing = mediation {
            return Err(Refusal::Response(Box::new(consent::nothing_found(
                &request.uri().to_string(),
            ))));
        }
    }
    let derived = match &mediation {
        consent::Mediation::Patient(grant) => Some(grant.token_access(access)),
        _ => None,
    };
    let access = derived.as_ref().unwrap_or(access);
    let mut narrowing = match (decide(access, &target), &mediation) {
        (Ok(n), _) => n,
        (Err(e), consent::Mediation::Patient(_)) => {
            return Err(consent::refused(e, &target, request.uri()));
        }
        (Err(e), _) => return Err(e.into()),
    };
    let mut drop_records = false;
    match &mediation {
        consent::Mediation::Patient(grant) => {
            drop_records = consent::restrict(access, &target, grant, &mut narrowing)
                .map_err(|e| consent::refused(e, &target, request.uri()))?;
        }
        consent::Mediation::Narrowed(pairs) => {
            narrowing.pairs.extend(pairs.iter().cloned());
            drop_records = true;
        }
        _ => {}
    }
    let lookup = matches!(mediation, consent::Mediation::Lookup);
    let registers_patient = governed
        && matches!(&target, Target::Interaction(Interaction::Create, ty, _) if ty == "Patient");
    let level = narrowing.level;
    if let Target::Interaction(Interaction::Create, ty, _) = &target
        && let Some(criteria) = request.headers().get("if-none-exist").cloned()
    {
        conditional_create_search(access, level, ty)?;
        if !narrowing.pairs.is_empty() {
            let narrowed = and_query(criteria.to_str().unwrap_or(""), &narrowing.pairs);
            let value = HeaderValue::from_str(&narrowed)
                .map_err(|_| ApiError::bad_request("If-None-Exist cannot be narrowed".into()))?;
            request.headers_mut().insert("if-none-exist", value);
        }
    }
    if let Target::Conditional(..) = &target {
        let query = request.uri().query().unwrap_or("").to_string();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        check_other_types(access, level, &pairs)?;
        if !narrowing.pairs.is_empty() {
            let uri = format!(
                "{}?{}",
                request.uri().path(),
                and_query(&query, &narrowing.pairs)
            );
            *request.uri_mut() = uri
                .parse()
                .map_err(|_| ApiError::bad_request("the criteria cannot be narrowed".into()))?;
        }
    }
    check_instances(state, access, &narrowing.instances).await?;
    if let Some(write) = &narrowing.write {
        request = check_write_request(state, access, request, write).await?;
    }
    let confine_to = narrowing.confine_to.clone().map(|patient| Confined {
        patient,
        all_entries: narrowing.all_entries,
        private: governed,
    });
    // `$lastn` is a search too (with `max`): narrowed, chains and includes checked alike.
    let searching = matches!(
        &target,
        Target::Interaction(Interaction::SearchType | Interaction::SearchSystem, ..)
    ) || matches!(&target, Target::Operation(name, _, _) if name == "lastn");
    if !searching {
        return Ok(Admitted {
            confine_to,
            registers_patient,
            ..Admitted::unchanged(request)
        });
    }
    // Searches: the URL's pairs and a form body's, narrowed, all moved into the URL.
    let (mut parts, body) = request.into_parts();
    let mut pairs: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let body = if parts.method == Method::POST {
        let bytes = read_body(state, body).await?;
        pairs.extend(form_urlencoded::parse(&bytes).into_owned());
        Body::empty()
    } else {
        body
    };
    check_other_types(access, level, &pairs)?;
    pairs.extend(narrowing.pairs);
    if lookup {
        // Who the patient is, never what is in their record.
        pairs.retain(|(name, _)| !matches!(name.as_str(), "_elements" | "_summary"));
        pairs.push(("_elements".into(), consent::LOOKUP_ELEMENTS.into()));
    }
    let mut dropped = drop_unreadable_includes(access, level, &mut pairs);
    if drop_records {
        dropped.extend(drop_record_includes(access, &mut pairs));
    }
    let uri = format!("{}?{}", parts.uri.path(), query_of(&pairs));
    parts.uri = uri
        .parse()
        .map_err(|_| ApiError::bad_request("the search URL cannot be rebuilt".into()))?;
    Ok(Admitted {
        request: Request::from_parts(parts, body),
        dropped,
        refused: Vec::new(),
        confine_to,
        registers_patient,
    })
}

/// Passes when one of the checks passes (none: nothing to check). Otherwise 404 when a check
/// confined the read to the patient (another patient's record is indistinguishable from an
/// absent one), else 403.
async fn check_instances(
    state: &AppState,
    access: &TokenAccess<'_>,
    checks: &[InstanceCheck],
) -> Result<(), ApiError> {
    let Some(first) = checks.first() else {
        return Ok(());
    };
    for check in checks {
        if check_instance(state, access.defs, check).await? {
            return Ok(());
        }
    }
    if checks.iter().any(|c| c.patient.is_some()) {
        return Err(not_found(&first.resource_type, &first.id));
    }
    Err(forbidden(format!(
        "{}/{} is outside what the token's granular scopes permit to read",
        first.resource_type, first.id
    )))
}

/// Whether the resource is the patient's (when confined) and found by the restricted search
/// `_id=<id>&<pairs>` of one of the granular AND-sets (when there are any).
async fn check_instance(
    state: &AppState,
    defs: &Definitions,
    check: &InstanceCheck,
) -> Result<bool, ApiError> {
    if let Some((c, patient)) = &check.patient {
        let stored = match crate::audit::read_current(state, &check.resource_type, &check.id).await
        {
            Ok(v) => v.resource(),
            Err(EngineError::NotFound(_) | EngineError::Gone(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if !stored.is_some_and(|r| is_patients(defs, &check.resource_type, &r, c, patient, false)) {
            return Ok(false);
        }
    }
    for set in &check.sets {
        let mut pairs = vec![("_id".to_string(), check.id.clone())];
        pairs.extend(set.iter().cloned());
        let result = state
            .engine
            .search(&check.resource_type, &pairs, "", false)
            .await?;
        if !result.page.resources.is_empty() {
            return Ok(true);
        }
    }
    Ok(check.sets.is_empty())
}

/// A patient-level write: the stored version (when it must be the patient's) and the new
/// resource (when the write has one) must both be the patient's records; else 403.
async fn check_write(
    state: &AppState,
    defs: &Definitions,
    write: &WriteCheck,
    body: Option<&Value>,
) -> Result<(), ApiError> {
    let ty = write.resource_type.as_str();
    let outside = |what: &str| {
        let tie = match &write.confinement {
            Confinement::Param(p) => format!("its {p} must reference Patient/{}", write.patient),
            _ => format!("only Patient/{} itself", write.patient),
        };
        forbidden(format!(
            "{what} is not one of the patient's records ({tie}): a patient-level token writes only those"
        ))
    };
    if let (Some(member), Some(id)) = (write.member, write.id.as_deref()) {
        let stored = match state.engine.read(ty, id).await {
            Ok(v) => v.resource(),
            Err(EngineError::NotFound(_) | EngineError::Gone(_)) => None,
            Err(e) => return Err(e.into()),
        };
        match stored {
            Some(r) if is_patients(defs, ty, &r, &write.confinement, &write.patient, true) => {}
            None if member == Membership::ToReplace => {}
            _ => return Err(outside(&format!("{ty}/{id}"))),
        }
    }
    if write.body {
        let Some(resource) = body else {
            return Err(forbidden("the write has no resource to check"));
        };
        if resource.get("resourceType").and_then(Value::as_str) != Some(ty)
            || !is_patients(defs, ty, resource, &write.confinement, &write.patient, true)
        {
            return Err(outside(&format!("the {ty} in the request")));
        }
    }
    Ok(())
}

/// [`check_write`] for a request, whose body is read and put back.
async fn check_write_request(
    state: &AppState,
    access: &TokenAccess<'_>,
    request: Request,
    write: &WriteCheck,
) -> Result<Request, ApiError> {
    if !write.body {
        check_write(state, access.defs, write, None).await?;
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = read_body(state, body).await?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(resource) => check_write(state, access.defs, write, Some(&resource)).await?,
        // Not JSON: the handler refuses it (400/415) without writing anything; the stored
        // version is still checked.
        Err(_) => {
            let stored_only = WriteCheck {
                body: false,
                resource_type: write.resource_type.clone(),
                id: write.id.clone(),
                confinement: write.confinement.clone(),
                patient: write.patient.clone(),
                member: write.member,
            };
            check_write(state, access.defs, &stored_only, None).await?;
        }
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Leaves out of a Bundle answer the resources of patients' record types that are not the
/// patient's: included ones (their search was narrowed, its matches are the patient's), or every
/// entry (`$everything`, whose compartment is wider than the patient's records). A Provenance
/// all of whose targets are the patient's records in the answer stays. A `total` is lowered by
/// the matches left out.
async fn confine_answer(
    response: Response,
    access: &TokenAccess<'_>,
    confined: &Confined,
) -> Response {
    let (patient, all_entries) = (confined.patient.as_str(), confined.all_entries);
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut bundle) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut removed_matches = 0u64;
    if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
        // Which entries are the patient's (or shared, or not to be checked).
        let verdicts: Vec<Option<bool>> = entries
            .iter()
            .map(|e| {
                let resource = e.get("resource")?;
                let mode = e.pointer("/search/mode").and_then(Value::as_str);
                let ty = resource.get("resourceType").and_then(Value::as_str)?;
                let c = access.confinement(ty);
                if !c.is_confined() {
                    return None;
                }
                let checked = all_entries || mode == Some("include");
                if checked && confined.private && matches!(ty, "Consent" | "AuditEvent") {
                    return Some(false);
                }
                Some(!checked || is_patients(access.defs, ty, resource, &c, patient, false))
            })
            .collect();
        // A Provenance (`_revinclude=Provenance:target`) whose every target is among the
        // patient's records in this answer is theirs too, though it names no Patient.
        let records: std::collections::HashSet<String> = entries
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| **v == Some(true))
            .filter_map(|(e, _)| {
                let r = e.get("resource")?;
                Some(format!(
                    "{}/{}",
                    r.get("resourceType")?.as_str()?,
                    r.get("id")?.as_str()?
                ))
            })
            .collect();
        let mut verdicts = verdicts.into_iter();
        entries.retain(|e| {
            let keep = match verdicts.next().flatten() {
                None | Some(true) => true,
                Some(false) => e.get("resource").is_some_and(|r| {
                    r.get("resourceType").and_then(Value::as_str) == Some("Provenance")
                        && provenance_targets(r)
                            .is_some_and(|targets| targets.iter().all(|t| records.contains(t)))
                }),
            };
            if !keep && e.pointer("/search/mode").and_then(Value::as_str) != Some("include") {
                removed_matches += 1;
            }
            keep
        });
    }
    if removed_matches > 0
        && let Some(total) = bundle.get("total").and_then(Value::as_u64)
    {
        bundle["total"] = json!(total.saturating_sub(removed_matches));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bundle.to_string()))
}

/// The `Type/id` of each target of a Provenance (absolute and versioned references reduced);
/// `None` when it has none or one is not a literal reference.
fn provenance_targets(provenance: &Value) -> Option<Vec<String>> {
    let targets = provenance.get("target")?.as_array()?;
    if targets.is_empty() {
        return None;
    }
    targets
        .iter()
        .map(|t| {
            let reference = t.get("reference")?.as_str()?;
            let path = reference.split("/_history/").next()?;
            let mut parts = path.rsplit('/');
            let id = parts.next().filter(|s| !s.is_empty())?;
            let ty = parts.next().filter(|s| !s.is_empty())?;
            Some(format!("{ty}/{id}"))
        })
        .collect()
}

/// A Bundle entry's request as a target (its URL relative to the base, or absolute under it,
/// as the engine reads it).
fn entry_target(entry: &Value, base: &str) -> Option<(Target, bool)> {
    let request = entry.get("request")?;
    let method: Method = request.get("method")?.as_str()?.parse().ok()?;
    let url = request.get("url")?.as_str()?;
    let url = url.strip_prefix(base).unwrap_or(url);
    let path = url.split_once('?').map_or(url, |(p, _)| p);
    let conditional_create = method == Method::POST && request.get("ifNoneExist").is_some();
    Some((classify(&method, &format!("/{path}")), conditional_create))
}

/// Decides one Bundle entry; a granular or patient-level search gets its pairs appended to the
/// entry's URL (a conditional write its criteria, a conditional create its `ifNoneExist`).
async fn decide_entry(
    state: &AppState,
    access: &TokenAccess<'_>,
    base: &str,
    entry: &mut Value,
) -> Result<(), ApiError> {
    let Some((target, conditional_create)) = entry_target(entry, base) else {
        // Malformed entries are the engine's to refuse.
        return Ok(());
    };
    if target == Target::Bundle {
        return Err(forbidden("a Bundle entry cannot be another Bundle"));
    }
    // A clinician's token: as for a single request, but a refused entry answers its error
    // (a search consent leaves nothing to find is refused rather than answered empty).
    let mut mediation = consent::Mediation::Unmediated;
    if consent::governed(access.claims) {
        decide(access, &target)?;
        let url = entry
            .pointer("/request/url")
            .and_then(Value::as_str)
            .unwrap_or("");
        let query: Vec<(String, String)> = url
            .split_once('?')
            .map(|(_, q)| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let mut basis = None;
        mediation = consent::mediate(
            state,
            access,
            &target,
            &query,
            entry.get("resource"),
            &mut basis,
        )
        .await?;
        match mediation {
            consent::Mediation::Nothing => {
                return Err(forbidden(
                    "no patient's consent grants what this search would find",
                ));
            }
            consent::Mediation::Lookup => {
                return Err(forbidden("look patients up directly, not in a Bundle"));
            }
            _ => {}
        }
    }
    let derived = match &mediation {
        consent::Mediation::Patient(grant) => Some(grant.token_access(access)),
        _ => None,
    };
    let access = derived.as_ref().unwrap_or(access);
    let mut narrowing = decide(access, &target)?;
    let mut drop_records = false;
    match &mediation {
        consent::Mediation::Patient(grant) => {
            drop_records = consent::restrict(access, &target, grant, &mut narrowing)?;
        }
        consent::Mediation::Narrowed(pairs) => {
            narrowing.pairs.extend(pairs.iter().cloned());
            drop_records = true;
        }
        _ => {}
    }
    let level = narrowing.level;
    if narrowing.all_entries {
        return Err(forbidden(
            "with a patient-level token, call $everything directly rather than in a Bundle",
        ));
    }
    if conditional_create && let Target::Interaction(_, ty, _) = &target {
        conditional_create_search(access, level, ty)?;
        if !narrowing.pairs.is_empty()
            && let Some(criteria) = entry.pointer_mut("/request/ifNoneExist")
        {
            let narrowed = and_query(criteria.as_str().unwrap_or(""), &narrowing.pairs);
            *criteria = Value::String(narrowed);
        }
    }
    check_instances(state, access, &narrowing.instances).await?;
    if let Some(write) = &narrowing.write {
        check_write(state, access.defs, write, entry.get("resource")).await?;
    }
    let searching = matches!(
        &target,
        Target::Interaction(Interaction::SearchType | Interaction::SearchSystem, ..)
            | Target::Conditional(..)
    ) || matches!(&target, Target::Operation(name, _, _) if name == "lastn");
    if searching
        && !narrowing.pairs.is_empty()
        && let Some(url) = entry.pointer_mut("/request/url")
    {
        let text = url.as_str().unwrap_or("");
        let sep = if text.contains('?') { '&' } else { '?' };
        *url = Value::String(format!("{text}{sep}{}", query_of(&narrowing.pairs)));
    }
    if searching
        && let Some(url) = entry.pointer_mut("/request/url")
        && let Some(text) = url.as_str()
        && let Some((_, query)) = text.split_once('?')
    {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        check_other_types(access, level, &pairs)?;
        let includes = pairs
            .iter()
            .any(|(n, _)| n.starts_with("_include") || n.starts_with("_revinclude"));
        if includes && (narrowing.confine_to.is_some() || drop_records) {
            return Err(forbidden(
                "with a patient-level token, a search in a Bundle cannot use _include or _revinclude; search directly",
            ));
        }
        let dropped = drop_unreadable_includes(access, level, &mut pairs);
        if !dropped.is_empty() {
            return Err(forbidden(format!(
                "the token's scopes do not permit reading what {} would include",
                dropped.join(", ")
            )));
        }
    }
    Ok(())
}

/// Batch and transaction: every entry is decided. A transaction with a refused entry is
/// refused whole (nothing is written); in a batch each refused entry answers 403 (404 for a
/// read of what the token may not see) and the others run.
async fn authorize_bundle(
    state: &AppState,
    request: Request,
    access: &TokenAccess<'_>,
) -> Result<Admitted, Refusal> {
    let (parts, body) = request.into_parts();
    // The base the engine resolves absolute entry URLs against (as the handlers compute it).
    let base = match &state.base_url {
        Some(b) => b.to_string(),
        None => {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}/fhir")
        }
    };
    let bytes = read_body(state, body).await?;
    let Ok(mut bundle) = serde_json::from_slice::<Value>(&bytes) else {
        // Not JSON: the handler answers 400 as usual.
        return Ok(Admitted::unchanged(Request::from_parts(
            parts,
            Body::from(bytes),
        )));
    };
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let transaction = kind == "transaction";
    if !transaction && kind != "batch" {
        return Ok(Admitted::unchanged(Request::from_parts(
            parts,
            Body::from(bytes),
        )));
    }
    let mut refused: Vec<(usize, ApiError)> = Vec::new();
    if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
        for (i, entry) in entries.iter_mut().enumerate() {
            if let Err(e) = decide_entry(state, access, &base, entry).await {
                if transaction {
                    let message = e
                        .outcome
                        .issues
                        .first()
                        .map(|i| i.diagnostics.clone())
                        .unwrap_or_default();
                    return Err(forbidden(format!(
                        "transaction entry {i} is not permitted, so nothing was written: {message}"
                    ))
                    .into());
                }
                refused.push((i, e));
            }
        }
    }
    if refused.is_empty() {
        let body = Body::from(Bytes::from(bundle.to_string()));
        return Ok(Admitted::unchanged(Request::from_parts(parts, body)));
    }
    // The batch runs without the refused entries; their 403s are put back in place after.
    let entries = bundle["entry"]
        .as_array_mut()
        .expect("entries were decided");
    let refused_at: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
    let kept: Vec<Value> = entries
        .drain(..)
        .enumerate()
        .filter(|(i, _)| !refused_at.contains(i))
        .map(|(_, e)| e)
        .collect();
    let refused: Vec<(usize, Value)> = refused
        .into_iter()
        .map(|(i, e)| (i, refused_entry(e)))
        .collect();
    if kept.is_empty() {
        let response = json!({
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": refused.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        });
        let format = crate::negotiation::Format {
            plain_json: false,
            pretty: false,
        };
        let response = crate::handlers::json_response(StatusCode::OK, format, &response);
        return Err(Refusal::Response(Box::new(response)));
    }
    *entries = kept;
    let body = Body::from(Bytes::from(bundle.to_string()));
    Ok(Admitted {
        request: Request::from_parts(parts, body),
        dropped: Vec::new(),
        refused,
        confine_to: None,
        registers_patient: false,
    })
}

/// A batch-response entry for a refused entry.
fn refused_entry(e: ApiError) -> Value {
    json!({
        "response": {
            "status": format!("{} {}", e.status.as_u16(), e.status.canonical_reason().unwrap_or("")),
            "outcome": e.outcome.to_json(),
        }
    })
}

/// Adds the dropped includes to the searchset's OperationOutcome entry (made if absent).
async fn report_dropped(response: Response, dropped: &[String]) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut bundle) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let issues: Vec<Value> = dropped
        .iter()
        .map(|d| {
            Issue::warning(
                IssueType::Forbidden,
                format!(
                    "{d} was not applied: the token's scopes do not permit reading what it includes"
                ),
            )
        })
        .map(|i| OperationOutcome::single(i).to_json()["issue"][0].clone())
        .collect();
    let entries = bundle
        .as_object_mut()
        .map(|b| b.entry("entry").or_insert_with(|| json!([])));
    if let Some(Value::Array(entries)) = entries {
        let outcome = entries
            .iter_mut()
            .find(|e| e.pointer("/search/mode").and_then(Value::as_str) == Some("outcome"));
        match outcome.and_then(|e| e.pointer_mut("/resource/issue")) {
            Some(Value::Array(existing)) => existing.extend(issues),
            _ => entries.push(json!({
                "resource": {"resourceType": "OperationOutcome", "issue": issues},
                "search": {"mode": "outcome"},
            })),
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bundle.to_string()))
}

/// Puts a batch's refused entries back in their places in the batch-response.
async fn splice_refused(response: Response, refused: Vec<(usize, Value)>) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut bundle) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
        for (i, entry) in refused {
            let at = i.min(entries.len());
            entries.insert(at, entry);
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bundle.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verified token's parts, for [`TokenAccess`].
    struct Token {
        scopes: Scopes,
        claims: AccessClaims,
        defs: std::sync::Arc<Definitions>,
    }

    impl Token {
        fn access(&self) -> TokenAccess<'_> {
            TokenAccess {
                scopes: &self.scopes,
                claims: &self.claims,
                levels: token_levels(&self.scopes, self.claims.patient.as_deref()).unwrap(),
                defs: &self.defs,
            }
        }
    }

    fn token(scope: &str, patient: Option<&str>) -> Token {
        Token {
            scopes: Scopes::parse(scope).unwrap(),
            // From JSON, so that claims added later take their defaults.
            claims: serde_json::from_value(json!({
                "iss": "http://curanet.test", "sub": "acct", "aud": "http://curanet.test/fhir",
                "exp": 0, "iat": 0, "jti": "j", "scope": scope, "client_id": "app",
                "patient": patient,
            }))
            .unwrap(),
            defs: Definitions::shared(),
        }
    }

    fn system(scope: &str) -> Token {
        token(scope, None)
    }

    fn t(i: Interaction, ty: &str, id: Option<&str>) -> Target {
        Target::Interaction(i, ty.into(), id.map(Into::into))
    }

    #[test]
    fn requests_map_onto_interactions() {
        use Interaction::*;
        let i = |i, t: &str, id: Option<&str>| Target::Interaction(i, t.into(), id.map(Into::into));
        let cases = [
            (Method::GET, "/Patient/1", i(Read, "Patient", Some("1"))),
            (Method::HEAD, "/Patient/1", i(Read, "Patient", Some("1"))),
            (
                Method::GET,
                "/Patient/1/_history/2",
                i(Vread, "Patient", Some("1")),
            ),
            (
                Method::GET,
                "/Patient/1/_history",
                i(HistoryInstance, "Patient", Some("1")),
            ),
            (
                Method::GET,
                "/Patient/_history",
                i(HistoryType, "Patient", None),
            ),
            (Method::GET, "/_history", i(HistorySystem, "*", None)),
            (Method::GET, "/Patient", i(SearchType, "Patient", None)),
            (
                Method::POST,
                "/Patient/_search",
                i(SearchType, "Patient", None),
            ),
            (Method::GET, "/", i(SearchSystem, "*", None)),
            (Method::POST, "/Patient", i(Create, "Patient", None)),
            (Method::PUT, "/Patient/1", i(Update, "Patient", Some("1"))),
            (Method::PATCH, "/Patient/1", i(Patch, "Patient", Some("1"))),
            (
                Method::DELETE,
                "/Patient/1",
                i(Delete, "Patient", Some("1")),
            ),
            (
                Method::PUT,
                "/Patient",
                Target::Conditional(Update, "Patient".into()),
            ),
            (Method::POST, "/", Target::Bundle),
            (Method::GET, "/metadata", Target::Public),
            (
                Method::GET,
                "/Patient/1/$everything",
                Target::Operation(
                    "everything".into(),
                    Some("Patient".into()),
                    Some("1".into()),
                ),
            ),
            (Method::GET, "/Pati%65nt/1", Target::Unknown),
            (Method::GET, "/a/b/c/d/e", Target::NoRoute),
        ];
        for (method, path, expected) in cases {
            assert_eq!(classify(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn decisions_name_the_missing_scope_and_never_widen() {
        let patients = system("system/Patient.rs");
        let create = t(Interaction::Create, "Patient", None);
        let e = decide(&patients.access(), &create).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.outcome.issues[0].diagnostics.contains("system/Patient.c"));
        assert!(decide(&patients.access(), &Target::Unknown).is_err());
        let everything = Target::Operation("everything".into(), Some("Patient".into()), None);
        assert!(decide(&patients.access(), &everything).is_err());

        let lab = system("system/Observation.rs?category=laboratory");
        let search = t(Interaction::SearchType, "Observation", None);
        assert_eq!(
            decide(&lab.access(), &search).unwrap().pairs,
            vec![("category".to_string(), "laboratory".to_string())]
        );
        let two = system(
            "system/Observation.rs?category=laboratory system/Observation.rs?category=vital-signs",
        );
        assert!(decide(&two.access(), &search).is_err());
        let history = t(Interaction::HistoryType, "Observation", None);
        assert!(decide(&lab.access(), &history).is_err());
        let read = t(Interaction::Read, "Observation", Some("1"));
        assert_eq!(decide(&lab.access(), &read).unwrap().instances.len(), 1);
    }

    #[test]
    fn user_scopes_decide_like_system_scopes() {
        let user = token("user/*.cruds", None);
        for target in [
            t(Interaction::Create, "Observation", None),
            t(Interaction::Delete, "Patient", Some("p2")),
            t(Interaction::SearchType, "Observation", None),
            t(Interaction::HistorySystem, "*", None),
        ] {
            assert!(
                decide(&user.access(), &target).unwrap().is_open(),
                "{target:?}"
            );
        }
        let reader = token("user/Observation.crs?category=laboratory", None);
        let e = decide(
            &reader.access(),
            &t(Interaction::Create, "Observation", None),
        )
        .unwrap_err();
        assert!(
            e.outcome.issues[0]
                .diagnostics
                .contains("only unrestricted"),
            "{e:?}"
        );
        let e = decide(
            &reader.access(),
            &t(Interaction::SearchType, "Condition", None),
        )
        .unwrap_err();
        assert!(
            e.outcome.issues[0].diagnostics.contains("user/Condition.s"),
            "{e:?}"
        );
    }

    #[test]
    fn patient_scopes_are_confined_to_the_patient() {
        let p = token("patient/*.cruds", Some("p1"));
        let a = p.access();
        // Searches are narrowed by the parameter naming whom the record is about.
        let n = decide(&a, &t(Interaction::SearchType, "Observation", None)).unwrap();
        assert_eq!(n.pairs, vec![("subject".into(), "Patient/p1".into())]);
        assert_eq!(n.confine_to.as_deref(), Some("p1"));
        let n = decide(&a, &t(Interaction::SearchType, "Patient", None)).unwrap();
        assert_eq!(n.pairs, vec![("_id".into(), "p1".into())]);
        // Shared data is searched as is (includes still filtered).
        let n = decide(&a, &t(Interaction::SearchType, "Practitioner", None)).unwrap();
        assert!(n.pairs.is_empty());
        // Another Patient: 404 at once; an Observation: checked against the store.
        let e = decide(&a, &t(Interaction::Read, "Patient", Some("p2"))).unwrap_err();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert!(decide(&a, &t(Interaction::Read, "Patient", Some("p1"))).is_ok());
        let n = decide(&a, &t(Interaction::Read, "Observation", Some("o1"))).unwrap();
        assert!(n.instances[0].patient.is_some());
        // Writes: the body is checked; shared data and other Patients are not writable.
        let n = decide(&a, &t(Interaction::Create, "Observation", None)).unwrap();
        assert!(n.write.as_ref().is_some_and(|w| w.body));
        for target in [
            t(Interaction::Create, "Practitioner", None),
            t(Interaction::Update, "Patient", Some("p2")),
            t(Interaction::Create, "Patient", None),
            t(Interaction::Patch, "Observation", Some("o1")),
            t(Interaction::HistoryType, "Observation", None),
            t(Interaction::SearchSystem, "*", None),
            t(Interaction::HistorySystem, "*", None),
            t(Interaction::SearchType, "Binary", None),
            Target::Operation("everything".into(), Some("Patient".into()), None),
        ] {
            let e = decide(&a, &target).unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{target:?}");
        }
        let own = Target::Operation(
            "everything".into(),
            Some("Patient".into()),
            Some("p1".into()),
        );
        assert!(decide(&a, &own).unwrap().all_entries);
        let other = Target::Operation(
            "everything".into(),
            Some("Patient".into()),
            Some("p2".into()),
        );
        assert_eq!(
            decide(&a, &other).unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        // $lastn is a search: narrowed like one.
        let lastn = Target::Operation("lastn".into(), Some("Observation".into()), None);
        let n = decide(&a, &lastn).unwrap();
        assert_eq!(n.pairs, vec![("subject".into(), "Patient/p1".into())]);
        // Conditional writes: their criteria are narrowed too.
        let n = decide(
            &a,
            &Target::Conditional(Interaction::Delete, "Observation".into()),
        )
        .unwrap();
        assert_eq!(n.pairs, vec![("subject".into(), "Patient/p1".into())]);
    }

    #[test]
    fn patient_scopes_keep_letters_and_granular_conditions() {
        let lab = token(
            "patient/Observation.rs?category=laboratory patient/Patient.r",
            Some("p1"),
        );
        let a = lab.access();
        let n = decide(&a, &t(Interaction::SearchType, "Observation", None)).unwrap();
        assert_eq!(
            n.pairs,
            vec![
                ("category".into(), "laboratory".into()),
                ("subject".into(), "Patient/p1".into())
            ]
        );
        let n = decide(&a, &t(Interaction::Read, "Observation", Some("o1"))).unwrap();
        assert_eq!(n.instances[0].sets.len(), 1);
        assert!(n.instances[0].patient.is_some());
        let e = decide(&a, &t(Interaction::SearchType, "Patient", None)).unwrap_err();
        assert!(
            e.outcome.issues[0]
                .diagnostics
                .contains("patient/Patient.s"),
            "{e:?}"
        );
        assert!(decide(&a, &t(Interaction::SearchType, "Condition", None)).is_err());
    }

    #[test]
    fn mixed_levels_take_the_union() {
        let mixed = token("patient/*.rs user/Practitioner.cruds", Some("p1"));
        let a = mixed.access();
        // user/ opens Practitioner writes; patient/ confines Observation searches.
        assert!(
            decide(&a, &t(Interaction::Create, "Practitioner", None))
                .unwrap()
                .is_open()
        );
        let n = decide(&a, &t(Interaction::SearchType, "Observation", None)).unwrap();
        assert_eq!(n.level, Level::Patient);
        // A wider level wins over a narrowed one.
        let wide = token("patient/*.rs user/*.rs", Some("p1"));
        assert!(
            decide(
                &wide.access(),
                &t(Interaction::SearchType, "Observation", None)
            )
            .unwrap()
            .is_open()
        );
        // Two narrowed reads: either passes; two narrowed searches: refused.
        let two = token(
            "patient/Observation.rs user/Observation.rs?category=laboratory",
            Some("p1"),
        );
        let n = decide(
            &two.access(),
            &t(Interaction::Read, "Observation", Some("o1")),
        )
        .unwrap();
        assert_eq!(n.instances.len(), 2);
        assert!(
            decide(
                &two.access(),
                &t(Interaction::SearchType, "Observation", None)
            )
            .is_err()
        );
    }

    #[test]
    fn chains_and_has_need_the_other_types() {
        let pair = |n: &str| vec![(n.to_string(), "x".to_string())];
        let check = |tok: &Token, name: &str| {
            let a = tok.access();
            check_other_types(&a, a.levels[0], &pair(name))
        };
        let obs = system("system/Observation.rs");
        assert!(check(&obs, "code").is_ok());
        assert!(check(&obs, "subject.name").is_err());
        assert!(check(&obs, "subject:Patient.name").is_err());
        assert!(check(&obs, "_has:Observation:patient:code").is_ok());
        let both = system("system/Observation.rs system/Patient.rs");
        assert!(check(&both, "subject:Patient.name").is_ok());
        assert!(check(&both, "subject.name").is_err());
        assert!(check(&both, "_has:Observation:patient:_has:Encounter:x:y").is_err());
        let lab = system("system/Patient.rs system/Observation.rs?category=laboratory");
        assert!(check(&lab, "_has:Observation:patient:code").is_err());
        assert!(check(&system("system/*.rs"), "subject.name").is_ok());
        // Patient level: only into shared data.
        let p = token("patient/*.rs", Some("p1"));
        assert!(check(&p, "performer:Practitioner.name").is_ok());
        assert!(check(&p, "subject:Patient.name").is_err());
        assert!(check(&p, "_has:Observation:patient:code").is_err());
    }

    #[test]
    fn includes_of_unreadable_types_are_dropped() {
        let mut pairs = vec![
            ("_revinclude".to_string(), "Observation:subject".to_string()),
            ("_include".to_string(), "Patient:organization".to_string()),
            (
                "_include:iterate".to_string(),
                "Patient:link:Patient".to_string(),
            ),
            ("name".to_string(), "x".to_string()),
        ];
        let tok = system("system/Patient.rs");
        let dropped = drop_unreadable_includes(&tok.access(), Level::System, &mut pairs);
        assert_eq!(
            dropped,
            vec![
                "_revinclude=Observation:subject",
                "_include=Patient:organization"
            ]
        );
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn provenance_targets_are_relative_references() {
        let p = json!({"resourceType": "Provenance", "target": [
            {"reference": "Observation/1"},
            {"reference": "http://x.test/fhir/Condition/2/_history/3"}]});
        assert_eq!(
            provenance_targets(&p),
            Some(vec!["Observation/1".to_string(), "Condition/2".to_string()])
        );
        let logical =
            json!({"resourceType": "Provenance", "target": [{"identifier": {"value": "x"}}]});
        assert_eq!(provenance_targets(&logical), None);
        assert_eq!(provenance_targets(&json!({"target": []})), None);
    }

    #[test]
    fn a_record_is_the_patients_by_its_reference() {
        let defs = Definitions::shared();
        let subject = Confinement::Param("subject".into());
        let obs = |subject: &str| {
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                   "subject": {"reference": subject}})
        };
        let check = |ty: &str, r: &Value, c: &Confinement, p: &str, write: bool| {
            is_patients(&defs, ty, r, c, p, write)
        };
        for write in [false, true] {
            assert!(check(
                "Observation",
                &obs("Patient/p1"),
                &subject,
                "p1",
                write
            ));
            assert!(!check(
                "Observation",
                &obs("Patient/p2"),
                &subject,
                "p1",
                write
            ));
            assert!(!check(
                "Observation",
                &obs("Group/p1"),
                &subject,
                "p1",
                write
            ));
            let patient = json!({"resourceType": "Patient", "id": "p1"});
            assert!(check("Patient", &patient, &Confinement::Owner, "p1", write));
            assert!(!check(
                "Patient",
                &patient,
                &Confinement::Owner,
                "p2",
                write
            ));
        }
        // An Appointment with two patients: readable by either, writable by neither.
        let actor = Confinement::Param("actor".into());
        let appointment = json!({"resourceType": "Appointment", "status": "booked",
            "participant": [
                {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
                {"actor": {"reference": "Patient/p2"}, "status": "accepted"}]});
        assert!(check("Appointment", &appointment, &actor, "p1", false));
        assert!(!check("Appointment", &appointment, &actor, "p1", true));
    }
}
