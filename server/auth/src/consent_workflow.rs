//! The consent workflow (issue 5) as plain rules, without HTTP or storage: who a token speaks
//! for, the proposed Consent a clinician's `$request-consent` makes, the patient's `$approve`
//! (which may only shorten the period and narrow the levels and classes), `$reject` and
//! `$revoke`, the sweeper's expiry, the break-the-glass Consent, and the plain-words
//! notifications to the patient (in-app `Communication` and mail).
//!
//! Every Consent made here conforms to the CuraNetConsent profile and reads as a grant through
//! [`ConsentGrant::from_resource`].

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use curanet_storage::Role;
use serde_json::{Map, Value, json};

use crate::consent::{ConsentGrant, GRANT_LEVEL_SYSTEM, GrantLevel};

/// The CuraNetConsent profile.
pub const CONSENT_PROFILE: &str = "https://curanet.in/fhir/StructureDefinition/curanet-consent";
/// Purposes of use (`provision.purpose`).
pub const PURPOSE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
/// The break-the-glass purpose.
pub const BREAK_GLASS: &str = "BTG";
/// Extension: the requesting clinician's message.
pub const REQUEST_MESSAGE_URL: &str =
    "https://curanet.in/fhir/StructureDefinition/consent-request-message";
/// Extension: why emergency access was claimed.
pub const BREAK_GLASS_REASON_URL: &str =
    "https://curanet.in/fhir/StructureDefinition/consent-break-glass-reason";
/// Extension: why the patient revoked the consent.
pub const REVOCATION_REASON_URL: &str =
    "https://curanet.in/fhir/StructureDefinition/consent-revocation-reason";
/// The CodeSystem of the notifications' `Communication.category`.
pub const NOTIFICATION_SYSTEM: &str = "https://curanet.in/fhir/CodeSystem/consent-notification";

/// A request's period when the clinician names no end.
pub const DEFAULT_REQUEST_SECONDS: i64 = 30 * 86_400;
/// Break-the-glass access when the clinician names no duration.
pub const DEFAULT_BREAK_GLASS_MINUTES: i64 = 60;
/// Longest free text kept (message, reasons).
const MAX_TEXT: usize = 2000;

const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";

/// The purposes of use a clinician may request (v3 PurposeOfUse codes of v3-ActReason);
/// `BTG` only through break-the-glass.
pub const REQUEST_PURPOSES: [(&str, &str); 10] = [
    ("TREAT", "treatment"),
    ("ETREAT", "emergency treatment"),
    ("CAREMGT", "care management"),
    ("CLINTRCH", "clinical trial research"),
    ("HPAYMT", "payment of your care"),
    ("HOPERAT", "healthcare operations"),
    ("HRESCH", "healthcare research"),
    ("PATRQT", "your own request"),
    ("PUBHLTH", "public health"),
    ("DSRCH", "disease-specific research"),
];

/// Why a workflow step is refused; the HTTP layer maps each to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// Malformed or out-of-range parameters (400).
    #[error("{0}")]
    Invalid(String),
    /// An approval that would widen what was requested, or a business rule (422).
    #[error("{0}")]
    BusinessRule(String),
    /// The consent is not in a state this step applies to (409).
    #[error("the consent is {status}: it cannot be {action}")]
    WrongState {
        /// The consent's status.
        status: String,
        /// The refused step, in words (`approved`, `revoked`, ...).
        action: &'static str,
    },
    /// The caller may not take this step (403).
    #[error("{0}")]
    Forbidden(String),
    /// The caller must not learn that the consent exists (404).
    #[error("not found")]
    Hidden,
}

type Result<T> = std::result::Result<T, WorkflowError>;

fn invalid(message: impl Into<String>) -> WorkflowError {
    WorkflowError::Invalid(message.into())
}

/// A FHIR `Parameters` body as `(name, value[x])` pairs.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, Value)>);

impl Params {
    /// Reads a `Parameters` resource (an empty body is [`Params::default`]).
    pub fn parse(body: &Value) -> Result<Params> {
        if body["resourceType"] != "Parameters" {
            return Err(invalid("the body must be a Parameters resource"));
        }
        let mut pairs = Vec::new();
        for p in body["parameter"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default();
            let value = p
                .as_object()
                .into_iter()
                .flatten()
                .find(|(k, _)| k.starts_with("value"))
                .map(|(_, v)| v.clone());
            match value {
                Some(v) if !name.is_empty() => pairs.push((name.to_string(), v)),
                _ => {
                    return Err(invalid(format!(
                        "parameter '{name}' needs a name and a value"
                    )));
                }
            }
        }
        Ok(Params(pairs))
    }

    /// Refuses parameters other than `known` (a typo must not pass silently).
    pub fn only(&self, known: &[&str]) -> Result<()> {
        match self.0.iter().find(|(n, _)| !known.contains(&n.as_str())) {
            Some((n, _)) => Err(invalid(format!(
                "unknown parameter '{n}' (expected {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Every string value of `name` (`valueCode`, `valueString`, ...).
    fn strings(&self, name: &str) -> Result<Vec<String>> {
        self.values(name)
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        invalid(format!(
                            "parameter '{name}' must be a non-empty code or string"
                        ))
                    })
            })
            .collect()
    }

    /// The one string value of `name`, if given.
    fn string(&self, name: &str) -> Result<Option<String>> {
        let mut all = self.strings(name)?;
        match all.len() {
            0 | 1 => Ok(all.pop()),
            _ => Err(invalid(format!("parameter '{name}' may be given once"))),
        }
    }

    /// A free text of at most [`MAX_TEXT`] characters.
    fn text(&self, name: &str) -> Result<Option<String>> {
        let text = self.string(name)?;
        if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
            return Err(invalid(format!(
                "parameter '{name}' is longer than {MAX_TEXT} characters"
            )));
        }
        Ok(text)
    }

    /// The one `valueReference.reference` of `name`, if given.
    fn reference(&self, name: &str) -> Result<Option<String>> {
        let all: Vec<&Value> = self.values(name).collect();
        match all.as_slice() {
            [] => Ok(None),
            [v] => v["reference"]
                .as_str()
                .map(|r| Some(r.to_string()))
                .ok_or_else(|| invalid(format!("parameter '{name}' must be a Reference"))),
            _ => Err(invalid(format!("parameter '{name}' may be given once"))),
        }
    }

    /// The one integer value of `name`, if given.
    fn integer(&self, name: &str) -> Result<Option<i64>> {
        let all: Vec<&Value> = self.values(name).collect();
        match all.as_slice() {
            [] => Ok(None),
            [v] => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| invalid(format!("parameter '{name}' must be an integer"))),
            _ => Err(invalid(format!("parameter '{name}' may be given once"))),
        }
    }

    /// The one dateTime of `name` (with a time and a zone), in Unix seconds, if given.
    fn instant(&self, name: &str) -> Result<Option<i64>> {
        self.string(name)?
            .map(|text| {
                seconds(&text).ok_or_else(|| {
                    invalid(format!(
                        "parameter '{name}' must be a dateTime with time and zone, e.g. 2027-01-31T18:00:00+05:30"
                    ))
                })
            })
            .transpose()
    }

    /// The grant levels of `level` (`None` when not given).
    fn levels(&self) -> Result<Option<BTreeSet<GrantLevel>>> {
        let codes = self.strings("level")?;
        if codes.is_empty() {
            return Ok(None);
        }
        codes
            .iter()
            .map(|c| {
                GrantLevel::parse(c).ok_or_else(|| {
                    invalid(format!(
                        "level '{c}' is not a grant level (READ_BASIC, READ_FULL, WRITE, DELETE)"
                    ))
                })
            })
            .collect::<Result<BTreeSet<_>>>()
            .map(Some)
    }

    /// The resource types of `class` (`None` when not given).
    fn classes(&self, is_type: &dyn Fn(&str) -> bool) -> Result<Option<BTreeSet<String>>> {
        let names = self.strings("class")?;
        if names.is_empty() {
            return Ok(None);
        }
        if let Some(bad) = names.iter().find(|n| !is_type(n)) {
            return Err(invalid(format!("class '{bad}' is not a resource type")));
        }
        Ok(Some(names.into_iter().collect()))
    }
}

/// A dateTime with time and zone as Unix seconds.
fn seconds(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp())
}

/// The same moment a calendar year later (the longest period a clinician may request).
fn a_year_after(seconds: i64) -> i64 {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .and_then(|t| t.checked_add_months(chrono::Months::new(12)))
        .map_or(seconds + 365 * 86_400, |t| t.timestamp())
}

/// Unix seconds as a FHIR dateTime (UTC, whole seconds).
pub fn date_time(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `Type/id` of a `fhirUser` claim (an absolute URL or a relative reference).
pub fn fhir_user_reference(fhir_user: &str) -> Option<String> {
    let mut segments = fhir_user.trim_end_matches('/').rsplit('/');
    let id = segments.next().filter(|s| !s.is_empty())?;
    let ty = segments
        .next()
        .filter(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))?;
    Some(format!("{ty}/{id}"))
}

/// Who a token speaks for, as far as consents are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    /// The patient with this id.
    Patient(String),
    /// A clinician: `Practitioner/{id}` or `PractitionerRole/{id}`.
    Clinician(String),
    /// Anyone else (an app without a user, an unknown account).
    Other,
}

impl Person {
    /// From the token's `fhirUser` and `patient` claims and the account's role (when the
    /// account is known). A `patient` claim alone names the caller only for a patient's account:
    /// a clinician's app carries the patient in context too.
    pub fn of(fhir_user: Option<&str>, patient_claim: Option<&str>, role: Option<Role>) -> Person {
        let user = fhir_user.and_then(fhir_user_reference);
        let is_patient = role.is_none_or(|r| r == Role::Patient);
        match user.as_deref().and_then(|u| u.split_once('/')) {
            Some(("Patient", id)) if is_patient => Person::Patient(id.to_string()),
            Some(("Practitioner" | "PractitionerRole", _)) if role != Some(Role::Patient) => {
                Person::Clinician(user.unwrap_or_default())
            }
            Some(_) => Person::Other,
            None => match (patient_claim, role) {
                (Some(p), Some(Role::Patient)) => Person::Patient(p.to_string()),
                _ => Person::Other,
            },
        }
    }

    /// The clinician's reference, or 403.
    pub fn clinician(&self) -> Result<&str> {
        match self {
            Person::Clinician(r) => Ok(r),
            _ => Err(WorkflowError::Forbidden(
                "only a clinician (a token whose fhirUser is a Practitioner or PractitionerRole) may do this".into(),
            )),
        }
    }

    /// Only the consenting patient decides on their consent: anyone else but a patient is
    /// refused (403); another patient is told nothing (404).
    pub fn may_decide(&self, consent: &Value) -> Result<()> {
        let owner = consent["patient"]["reference"]
            .as_str()
            .and_then(|r| r.strip_prefix("Patient/"));
        match self {
            Person::Patient(p) if Some(p.as_str()) == owner => Ok(()),
            Person::Patient(_) => Err(WorkflowError::Hidden),
            _ => Err(WorkflowError::Forbidden(
                "only the consenting patient may approve, reject or revoke a consent".into(),
            )),
        }
    }
}

/// What a clinician asks a patient for (`Patient/[id]/$request-consent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRequest {
    /// The patient's id.
    pub patient: String,
    /// The levels asked for.
    pub levels: BTreeSet<GrantLevel>,
    /// The resource types (empty: every type the levels allow).
    pub classes: BTreeSet<String>,
    /// The purpose of use (a v3-ActReason code).
    pub purpose: String,
    /// The requested end, Unix seconds.
    pub end: i64,
    /// The clinician's message to the patient.
    pub message: Option<String>,
    /// The actor the consent would name (the clinician, their role or organization).
    pub actor: String,
}

impl ConsentRequest {
    /// Reads `$request-consent` parameters of `requester` (the clinician's reference);
    /// `is_type` tells resource types. Whether an `actor` belongs to the requester is for the
    /// caller to check against the directory ([`ConsentRequest::actor_needs_check`]).
    pub fn parse(
        patient: &str,
        params: &Params,
        requester: &str,
        now: i64,
        is_type: &dyn Fn(&str) -> bool,
    ) -> Result<ConsentRequest> {
        params.only(&["level", "class", "purpose", "end", "message", "actor"])?;
        let levels = params
            .levels()?
            .unwrap_or_else(|| BTreeSet::from([GrantLevel::ReadFull]));
        let classes = params.classes(is_type)?.unwrap_or_default();
        let purpose = params.string("purpose")?.unwrap_or_else(|| "TREAT".into());
        if purpose == BREAK_GLASS {
            return Err(invalid(
                "purpose BTG is claimed with Patient/[id]/$break-glass, not requested",
            ));
        }
        if !REQUEST_PURPOSES.iter().any(|(c, _)| *c == purpose) {
            let known: Vec<&str> = REQUEST_PURPOSES.iter().map(|(c, _)| *c).collect();
            return Err(invalid(format!(
                "purpose '{purpose}' is not one of {} (v3-ActReason)",
                known.join(", ")
            )));
        }
        let end = params
            .instant("end")?
            .unwrap_or(now + DEFAULT_REQUEST_SECONDS);
        if end <= now {
            return Err(invalid("the requested end is in the past"));
        }
        if end > a_year_after(now) {
            return Err(invalid("the requested end is more than a year away"));
        }
        let actor = params
            .reference("actor")?
            .unwrap_or_else(|| requester.to_string());
        match actor.split_once('/') {
            Some(("Practitioner" | "PractitionerRole" | "Organization", id)) if !id.is_empty() => {}
            _ => {
                return Err(invalid(
                    "actor must reference a Practitioner, PractitionerRole or Organization",
                ));
            }
        }
        Ok(ConsentRequest {
            patient: patient.to_string(),
            levels,
            classes,
            purpose,
            end,
            message: params.text("message")?,
            actor,
        })
    }

    /// Whether the actor is someone other than the requester (then it must be one of their
    /// PractitionerRoles or those roles' Organizations, which only the directory can tell).
    pub fn actor_needs_check(&self, requester: &str) -> bool {
        self.actor != requester
    }

    /// The proposed Consent.
    pub fn consent(&self, now: i64) -> Value {
        let mut consent = base_consent("proposed", &self.patient, now);
        consent["policyRule"] = json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"
        }]});
        consent["provision"] = provision(
            &self.actor,
            &self.levels,
            &self.classes,
            &self.purpose,
            json!({"end": date_time(self.end)}),
        );
        if let Some(m) = &self.message {
            set_extension(&mut consent, REQUEST_MESSAGE_URL, m);
        }
        consent
    }
}

/// What the patient's `$approve` may change: only shorten and narrow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    /// A new, earlier end.
    pub end: Option<i64>,
    /// Fewer levels.
    pub levels: Option<BTreeSet<GrantLevel>>,
    /// Fewer resource types.
    pub classes: Option<BTreeSet<String>>,
}

impl Approval {
    /// Reads `$approve` parameters.
    pub fn parse(params: &Params, is_type: &dyn Fn(&str) -> bool) -> Result<Approval> {
        params.only(&["end", "level", "class"])?;
        Ok(Approval {
            end: params.instant("end")?,
            levels: params.levels()?,
            classes: params.classes(is_type)?,
        })
    }

    /// The approved Consent: `active`, the period starting now (unless it names a start), the
    /// patient as performer, and the approval's narrowing. Anything wider than the request → 422.
    pub fn apply(&self, consent: &Value, now: i64) -> Result<Value> {
        expect_status(consent, &["proposed"], "approved")?;
        let requested = ConsentGrant::from_resource(consent).map_err(|e| {
            WorkflowError::BusinessRule(format!("the proposed consent cannot be approved: {e}"))
        })?;
        let mut out = consent.clone();
        let provision = &mut out["provision"];
        match self.end {
            Some(end) if end <= now => return Err(invalid("the approved end is in the past")),
            Some(end) if requested.end.is_some_and(|r| end > r) => {
                return Err(WorkflowError::BusinessRule(
                    "an approval may shorten the requested period, not extend it".into(),
                ));
            }
            Some(end) => provision["period"]["end"] = json!(date_time(end)),
            None if requested.end.is_some_and(|r| r <= now) => {
                return Err(WorkflowError::BusinessRule(
                    "the requested period has already ended; ask for a new request".into(),
                ));
            }
            None => {}
        }
        if provision["period"]["start"].is_null() {
            provision["period"]["start"] = json!(date_time(now));
        }
        if let Some(levels) = &self.levels {
            let covered = |l: &GrantLevel| {
                requested.levels.contains(l)
                    || (*l == GrantLevel::ReadBasic
                        && requested.levels.contains(&GrantLevel::ReadFull))
            };
            if let Some(wider) = levels.iter().find(|l| !covered(l)) {
                return Err(WorkflowError::BusinessRule(format!(
                    "an approval may narrow the requested levels, not add {}",
                    level_code(*wider)
                )));
            }
            provision["action"] = actions(levels);
        }
        if let Some(classes) = &self.classes {
            if !requested.classes.is_empty() && !classes.is_subset(&requested.classes) {
                return Err(WorkflowError::BusinessRule(
                    "an approval may narrow the requested resource types, not add others".into(),
                ));
            }
            provision["class"] = class_codings(classes);
        }
        out["status"] = json!("active");
        out["dateTime"] = json!(date_time(now));
        out["performer"] = json!([{"reference": format!("Patient/{}", requested.patient)}]);
        Ok(out)
    }
}

/// The rejected Consent (only a proposed one).
pub fn reject(consent: &Value, now: i64) -> Result<Value> {
    expect_status(consent, &["proposed"], "rejected")?;
    let mut out = consent.clone();
    out["status"] = json!("rejected");
    out["dateTime"] = json!(date_time(now));
    Ok(out)
}

/// The revoked Consent (an active or proposed one becomes `inactive`), keeping the reason.
pub fn revoke(consent: &Value, params: &Params, now: i64) -> Result<Value> {
    params.only(&["reason"])?;
    let reason = params
        .text("reason")?
        .ok_or_else(|| invalid("parameter 'reason' is required"))?;
    expect_status(consent, &["active", "proposed"], "revoked")?;
    let mut out = consent.clone();
    out["status"] = json!("inactive");
    out["dateTime"] = json!(date_time(now));
    set_extension(&mut out, REVOCATION_REASON_URL, &reason);
    Ok(out)
}

/// The sweeper's record of an expiry: an active Consent whose period ended by `now` becomes
/// `inactive` (`None` when it is not active or still in its period).
pub fn expire(consent: &Value, now: i64) -> Option<Value> {
    let end = ConsentGrant::from_resource(consent).ok()?.end?;
    if consent["status"] != "active" || end > now {
        return None;
    }
    let mut out = consent.clone();
    out["status"] = json!("inactive");
    Some(out)
}

/// Who may claim emergency access and for how long (`--break-glass-roles`,
/// `--break-glass-max-minutes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassPolicy {
    /// The account roles allowed (empty: break-the-glass is off).
    pub roles: Vec<Role>,
    /// The longest access a claim may ask for.
    pub max_minutes: i64,
}

impl BreakGlassPolicy {
    /// The policy from role names (unknown names are an error; empty names are skipped).
    pub fn new(roles: &[String], max_minutes: i64) -> std::result::Result<Self, String> {
        let roles = roles
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
            .map(|r| Role::parse(r).ok_or_else(|| format!("unknown role '{r}'")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if max_minutes < 1 {
            return Err("the longest break-the-glass access must be at least a minute".into());
        }
        Ok(BreakGlassPolicy { roles, max_minutes })
    }

    /// A claim of `person` (account `role`), for `params` (`reason`, `minutes`): the reason
    /// and the minutes granted.
    pub fn claim(&self, role: Option<Role>, params: &Params) -> Result<(String, i64)> {
        if !role.is_some_and(|r| self.roles.contains(&r)) {
            return Err(WorkflowError::Forbidden(
                "the server's policy does not allow this account to claim emergency access".into(),
            ));
        }
        params.only(&["reason", "minutes"])?;
        let reason = params
            .text("reason")?
            .ok_or_else(|| invalid("parameter 'reason' is required"))?;
        let minutes = params
            .integer("minutes")?
            .unwrap_or(DEFAULT_BREAK_GLASS_MINUTES.min(self.max_minutes));
        if minutes < 1 || minutes > self.max_minutes {
            return Err(invalid(format!(
                "minutes must be between 1 and {}",
                self.max_minutes
            )));
        }
        Ok((reason, minutes))
    }
}

/// The active break-the-glass Consent: `clinician` may read the whole record for `minutes`.
pub fn break_glass_consent(
    patient: &str,
    clinician: &str,
    reason: &str,
    minutes: i64,
    now: i64,
) -> Value {
    let mut consent = base_consent("active", patient, now);
    consent["policy"] = json!([{"uri": "https://curanet.in/fhir/policy/break-the-glass"}]);
    consent["performer"] = json!([{"reference": clinician}]);
    consent["provision"] = provision(
        clinician,
        &BTreeSet::from([GrantLevel::ReadFull]),
        &BTreeSet::new(),
        BREAK_GLASS,
        json!({"start": date_time(now), "end": date_time(now + minutes * 60)}),
    );
    set_extension(&mut consent, BREAK_GLASS_REASON_URL, reason);
    consent
}

/// What a notification tells the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A clinician asked for access.
    Requested,
    /// The patient approved.
    Approved,
    /// The patient rejected.
    Rejected,
    /// The patient revoked.
    Revoked,
    /// The period ended (recorded by the sweeper).
    Expired,
    /// A clinician claimed emergency access.
    BreakGlass,
    /// Someone opened one of the patient's emergency share links (not about a consent).
    ShareLinkOpened,
}

impl Event {
    /// The code in [`NOTIFICATION_SYSTEM`].
    pub fn code(self) -> &'static str {
        match self {
            Event::Requested => "consent-requested",
            Event::Approved => "consent-approved",
            Event::Rejected => "consent-rejected",
            Event::Revoked => "consent-revoked",
            Event::Expired => "consent-expired",
            Event::BreakGlass => "break-the-glass",
            Event::ShareLinkOpened => "emergency-link-opened",
        }
    }

    /// The title (a mail's subject).
    pub fn title(self) -> &'static str {
        match self {
            Event::Requested => "A clinician asks for access to your health record",
            Event::Approved => "You approved access to your health record",
            Event::Rejected => "You rejected a request for access to your health record",
            Event::Revoked => "You revoked access to your health record",
            Event::Expired => "Access to your health record has ended",
            Event::BreakGlass => "Your health record was opened in an emergency",
            Event::ShareLinkOpened => "Your emergency information was opened",
        }
    }
}

/// A notification to a patient about one of their consents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What happened.
    pub event: Event,
    /// The patient's id.
    pub patient: String,
    /// The Consent's id.
    pub consent: String,
    /// The plain-words text.
    pub text: String,
}

impl Notice {
    /// The notice of `event` on `consent` (as written), naming the actor as `who` (e.g.
    /// "Dr Anil Kumar"; the reference when no name is known).
    pub fn new(event: Event, consent: &Value, who: &str) -> Notice {
        let grant = ConsentGrant::from_resource(consent).ok();
        let until = grant
            .as_ref()
            .and_then(|g| g.end)
            .map(readable_time)
            .unwrap_or_else(|| "further notice".into());
        let what = grant.as_ref().map(access_words).unwrap_or_default();
        let extension = |url: &str| extension_text(consent, url).unwrap_or_default();
        let text = match event {
            Event::Requested => {
                let purpose = consent["provision"]["purpose"][0]["code"]
                    .as_str()
                    .and_then(|c| REQUEST_PURPOSES.iter().find(|(p, _)| *p == c))
                    .map_or("treatment", |(_, words)| *words);
                let mut text = format!(
                    "{who} asks to {what}, for {purpose}, until {until}. You can approve the \
                     request (and shorten it or allow less) or reject it in CuraNet."
                );
                if let Some(m) = extension_text(consent, REQUEST_MESSAGE_URL) {
                    text.push_str(&format!(" Their message: \"{m}\""));
                }
                text
            }
            Event::Approved => format!(
                "You allowed {who} to {what} until {until}. You can revoke this at any time in CuraNet."
            ),
            Event::Rejected => {
                format!("You rejected the request of {who} for access to your health record.")
            }
            Event::Revoked => format!(
                "You revoked the access of {who} to your health record. Your reason: \"{}\"",
                extension(REVOCATION_REASON_URL)
            ),
            Event::Expired => format!(
                "The access of {who} to your health record ended at {until}. They can no longer {what}."
            ),
            Event::BreakGlass => format!(
                "{who} claimed emergency access to your health record and may read all of it \
                 until {until}. The reason they gave: \"{}\". If you did not expect this, \
                 contact your care provider; every access is recorded.",
                extension(BREAK_GLASS_REASON_URL)
            ),
            // Not about a consent: see [`Notice::share_link_opened`].
            Event::ShareLinkOpened => format!("{who} opened one of your emergency links."),
        };
        Notice {
            event,
            patient: grant
                .map(|g| g.patient)
                .unwrap_or_else(|| patient_of(consent)),
            consent: consent["id"].as_str().unwrap_or_default().to_string(),
            text,
        }
    }

    /// The notice that one of `patient`'s emergency share links was opened, by `recipient`
    /// (the name the visitor gave, if any) from `ip`.
    pub fn share_link_opened(patient: &str, recipient: Option<&str>, ip: &str) -> Notice {
        let who = recipient.map_or_else(
            || "Someone who gave no name".to_string(),
            |r| format!("Someone who named themselves \"{r}\""),
        );
        Notice {
            event: Event::ShareLinkOpened,
            patient: patient.to_string(),
            consent: String::new(),
            text: format!(
                "{who} opened one of your emergency links (from {ip}) and saw what it shares. \
                 You can see every opening and revoke the link in CuraNet."
            ),
        }
    }

    /// The in-app notification: a completed `Communication` to and about the patient (and the
    /// Consent, when it is about one).
    pub fn communication(&self, now: i64) -> Value {
        let patient = json!({"reference": format!("Patient/{}", self.patient)});
        let mut communication = json!({
            "resourceType": "Communication",
            "status": "completed",
            "category": [{"coding": [{"system": NOTIFICATION_SYSTEM, "code": self.event.code()}],
                          "text": self.event.title()}],
            "subject": patient,
            "recipient": [patient],
            "sent": date_time(now),
            "payload": [{"contentString": self.text}],
        });
        if !self.consent.is_empty() {
            communication["about"] = json!([{"reference": format!("Consent/{}", self.consent)}]);
        }
        communication
    }

    /// The mail's body: the text and where to act on it.
    pub fn mail_body(&self) -> String {
        format!(
            "{}\n\nSign in to CuraNet to see and manage who may access your health record.\n",
            self.text
        )
    }
}

/// A person's or organization's name for a notice, from its resource.
pub fn display_name(resource: &Value) -> Option<String> {
    if let Some(name) = resource["name"].as_str() {
        return Some(name.to_string());
    }
    let name = &resource["name"][0];
    if let Some(text) = name["text"].as_str() {
        return Some(text.to_string());
    }
    let parts: Vec<&str> = name["given"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&name["family"]))
        .filter_map(Value::as_str)
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// `2027-01-31 18:00 UTC`.
fn readable_time(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map(|t| t.format("%-d %B %Y %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// What a grant lets its actor do, in words ("read your whole health record and add to it").
fn access_words(grant: &ConsentGrant) -> String {
    let words: Vec<&str> = grant
        .levels
        .iter()
        .map(|l| match l {
            GrantLevel::ReadBasic => {
                "read the basics of your health record (demographics, allergies, medications and immunizations)"
            }
            GrantLevel::ReadFull => "read your whole health record",
            GrantLevel::Write => "add and change records",
            GrantLevel::Delete => "delete records",
        })
        .collect();
    let mut text = words.join(", ");
    if !grant.classes.is_empty() {
        let classes: Vec<&str> = grant.classes.iter().map(String::as_str).collect();
        text.push_str(&format!(" (only: {})", classes.join(", ")));
    }
    text
}

fn level_code(level: GrantLevel) -> &'static str {
    match level {
        GrantLevel::ReadBasic => "READ_BASIC",
        GrantLevel::ReadFull => "READ_FULL",
        GrantLevel::Write => "WRITE",
        GrantLevel::Delete => "DELETE",
    }
}

fn patient_of(consent: &Value) -> String {
    consent["patient"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Patient/"))
        .unwrap_or_default()
        .to_string()
}

fn expect_status(consent: &Value, allowed: &[&str], action: &'static str) -> Result<()> {
    let status = consent["status"].as_str().unwrap_or_default();
    if allowed.contains(&status) {
        Ok(())
    } else {
        Err(WorkflowError::WrongState {
            status: status.to_string(),
            action,
        })
    }
}

/// The parts every CuraNet consent shares.
fn base_consent(status: &str, patient: &str, now: i64) -> Value {
    json!({
        "resourceType": "Consent",
        "meta": {"profile": [CONSENT_PROFILE]},
        "status": status,
        "scope": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy"
        }]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": date_time(now),
    })
}

fn provision(
    actor: &str,
    levels: &BTreeSet<GrantLevel>,
    classes: &BTreeSet<String>,
    purpose: &str,
    period: Value,
) -> Value {
    let mut p = Map::new();
    p.insert("type".into(), json!("permit"));
    p.insert("period".into(), period);
    p.insert(
        "actor".into(),
        json!([{
            "role": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "code": "IRCP"
            }]},
            "reference": {"reference": actor}
        }]),
    );
    p.insert("action".into(), actions(levels));
    p.insert(
        "purpose".into(),
        json!([{"system": PURPOSE_SYSTEM, "code": purpose}]),
    );
    if !classes.is_empty() {
        p.insert("class".into(), class_codings(classes));
    }
    Value::Object(p)
}

fn actions(levels: &BTreeSet<GrantLevel>) -> Value {
    levels
        .iter()
        .map(|l| json!({"coding": [{"system": GRANT_LEVEL_SYSTEM, "code": level_code(*l)}]}))
        .collect()
}

fn class_codings(classes: &BTreeSet<String>) -> Value {
    classes
        .iter()
        .map(|c| json!({"system": RESOURCE_TYPES, "code": c}))
        .collect()
}

/// Sets (or replaces) a string extension.
fn set_extension(resource: &mut Value, url: &str, text: &str) {
    let mut extensions: Vec<Value> = resource["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] != url)
        .cloned()
        .collect();
    extensions.push(json!({"url": url, "valueString": text}));
    resource["extension"] = Value::Array(extensions);
}

fn extension_text(resource: &Value, url: &str) -> Option<String> {
    resource["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"] == url)?["valueString"]
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000; // 2027-01-15T08:00:00Z
    const DAY: i64 = 86_400;

    fn is_type(t: &str) -> bool {
        matches!(
            t,
            "Observation" | "Condition" | "AllergyIntolerance" | "MedicationRequest"
        )
    }

    fn params(pairs: Value) -> Params {
        Params::parse(&json!({"resourceType": "Parameters", "parameter": pairs})).unwrap()
    }

    fn request(pairs: Value) -> Result<ConsentRequest> {
        ConsentRequest::parse("p1", &params(pairs), "Practitioner/d1", NOW, &is_type)
    }

    fn proposed(pairs: Value) -> Value {
        let mut c = request(pairs).unwrap().consent(NOW);
        c["id"] = json!("c1");
        c
    }

    #[test]
    fn a_request_becomes_a_proposed_consent_that_reads_as_a_grant() {
        let c = proposed(json!([]));
        assert_eq!(c["status"], "proposed");
        let grant = ConsentGrant::from_resource(&c).unwrap();
        assert_eq!(grant.patient, "p1");
        assert_eq!(grant.levels, BTreeSet::from([GrantLevel::ReadFull]));
        assert_eq!(grant.end, Some(NOW + DEFAULT_REQUEST_SECONDS));
        assert!(grant.names(&["Practitioner/d1".into()]));
        assert!(!grant.in_force(NOW), "proposed grants nothing");
        assert_eq!(c["provision"]["purpose"][0]["code"], "TREAT");
        assert_eq!(
            c["provision"]["actor"][0]["role"]["coding"][0]["code"],
            "IRCP"
        );
        assert_eq!(c["category"][0]["coding"][0]["code"], "59284-0");

        let c = proposed(json!([
            {"name": "level", "valueCode": "READ_BASIC"},
            {"name": "level", "valueCode": "WRITE"},
            {"name": "class", "valueCode": "Observation"},
            {"name": "purpose", "valueCode": "CAREMGT"},
            {"name": "end", "valueDateTime": "2027-02-01T00:00:00Z"},
            {"name": "message", "valueString": "Follow-up of your blood tests"},
        ]));
        let grant = ConsentGrant::from_resource(&c).unwrap();
        assert_eq!(
            grant.levels,
            BTreeSet::from([GrantLevel::ReadBasic, GrantLevel::Write])
        );
        assert_eq!(grant.classes, BTreeSet::from(["Observation".to_string()]));
        assert_eq!(c["provision"]["period"]["end"], "2027-02-01T00:00:00Z");
        assert_eq!(
            extension_text(&c, REQUEST_MESSAGE_URL).as_deref(),
            Some("Follow-up of your blood tests")
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let cases = [
            json!([{"name": "end", "valueDateTime": "2027-01-01T00:00:00Z"}]),
            json!([{"name": "end", "valueDateTime": "2028-03-01T00:00:00Z"}]),
            json!([{"name": "end", "valueDateTime": "2027-02-01"}]),
            json!([{"name": "level", "valueCode": "EVERYTHING"}]),
            json!([{"name": "class", "valueCode": "Nonsense"}]),
            json!([{"name": "purpose", "valueCode": "BTG"}]),
            json!([{"name": "purpose", "valueCode": "XYZ"}]),
            json!([{"name": "actor", "valueReference": {"reference": "Patient/p2"}}]),
            json!([{"name": "colour", "valueString": "blue"}]),
        ];
        for case in cases {
            assert!(
                matches!(request(case.clone()), Err(WorkflowError::Invalid(_))),
                "{case}"
            );
        }
    }

    #[test]
    fn an_actor_other_than_the_requester_needs_a_directory_check() {
        let r =
            request(json!([{"name": "actor", "valueReference": {"reference": "Organization/o1"}}]))
                .unwrap();
        assert_eq!(r.actor, "Organization/o1");
        assert!(r.actor_needs_check("Practitioner/d1"));
        assert!(
            !request(json!([]))
                .unwrap()
                .actor_needs_check("Practitioner/d1")
        );
    }

    #[test]
    fn approval_may_shorten_and_narrow_but_never_widen() {
        let c = proposed(json!([
            {"name": "level", "valueCode": "READ_FULL"},
            {"name": "level", "valueCode": "WRITE"},
            {"name": "class", "valueCode": "Observation"},
            {"name": "class", "valueCode": "Condition"},
            {"name": "end", "valueDateTime": "2027-02-01T00:00:00Z"},
        ]));
        let approve = |pairs: Value| {
            Approval::parse(&params(pairs), &is_type)
                .unwrap()
                .apply(&c, NOW)
        };
        let active = approve(json!([
            {"name": "end", "valueDateTime": "2027-01-20T00:00:00Z"},
            {"name": "level", "valueCode": "READ_BASIC"},
            {"name": "class", "valueCode": "Condition"},
        ]))
        .unwrap();
        assert_eq!(active["status"], "active");
        assert_eq!(active["performer"][0]["reference"], "Patient/p1");
        let grant = ConsentGrant::from_resource(&active).unwrap();
        assert_eq!(grant.start, Some(NOW));
        assert_eq!(grant.end, seconds("2027-01-20T00:00:00Z"));
        assert_eq!(grant.levels, BTreeSet::from([GrantLevel::ReadBasic]));
        assert_eq!(grant.classes, BTreeSet::from(["Condition".to_string()]));
        assert!(grant.in_force(NOW + 1));

        // Unchanged when nothing is narrowed.
        let same = approve(json!([])).unwrap();
        assert_eq!(same["provision"]["action"], c["provision"]["action"]);

        for widening in [
            json!([{"name": "end", "valueDateTime": "2027-03-01T00:00:00Z"}]),
            json!([{"name": "level", "valueCode": "DELETE"}]),
            json!([{"name": "class", "valueCode": "AllergyIntolerance"}]),
        ] {
            assert!(
                matches!(
                    approve(widening.clone()),
                    Err(WorkflowError::BusinessRule(_))
                ),
                "{widening}"
            );
        }
        assert!(matches!(
            approve(json!([{"name": "end", "valueDateTime": "2027-01-01T00:00:00Z"}])),
            Err(WorkflowError::Invalid(_))
        ));
        // A request that ended before the patient answered cannot be approved as it is.
        assert!(matches!(
            Approval::default().apply(&c, seconds("2027-02-02T00:00:00Z").unwrap()),
            Err(WorkflowError::BusinessRule(_))
        ));
    }

    #[test]
    fn any_classes_narrow_a_request_for_every_type() {
        let c = proposed(json!([]));
        let active = Approval::parse(
            &params(json!([{"name": "class", "valueCode": "AllergyIntolerance"}])),
            &is_type,
        )
        .unwrap()
        .apply(&c, NOW)
        .unwrap();
        assert_eq!(
            ConsentGrant::from_resource(&active).unwrap().classes,
            BTreeSet::from(["AllergyIntolerance".to_string()])
        );
    }

    #[test]
    fn transitions_follow_the_states() {
        let c = proposed(json!([]));
        let reason = params(json!([{"name": "reason", "valueString": "I changed my doctor"}]));
        let active = Approval::default().apply(&c, NOW).unwrap();
        let rejected = reject(&c, NOW).unwrap();
        assert_eq!(rejected["status"], "rejected");
        let revoked = revoke(&active, &reason, NOW).unwrap();
        assert_eq!(revoked["status"], "inactive");
        assert_eq!(
            extension_text(&revoked, REVOCATION_REASON_URL).as_deref(),
            Some("I changed my doctor")
        );
        assert_eq!(revoke(&c, &reason, NOW).unwrap()["status"], "inactive");

        let wrong = |r: Result<Value>| matches!(r, Err(WorkflowError::WrongState { .. }));
        assert!(wrong(Approval::default().apply(&rejected, NOW)));
        assert!(wrong(Approval::default().apply(&active, NOW)));
        assert!(wrong(reject(&active, NOW)));
        assert!(wrong(revoke(&revoked, &reason, NOW)));
        assert!(wrong(revoke(&rejected, &reason, NOW)));
        assert!(matches!(
            revoke(&active, &Params::default(), NOW),
            Err(WorkflowError::Invalid(_))
        ));
    }

    #[test]
    fn the_sweeper_expires_only_active_consents_past_their_end() {
        let c = proposed(json!([{"name": "end", "valueDateTime": "2027-01-16T00:00:00Z"}]));
        let active = Approval::default().apply(&c, NOW).unwrap();
        let end = seconds("2027-01-16T00:00:00Z").unwrap();
        assert!(expire(&active, end - 1).is_none());
        assert_eq!(expire(&active, end).unwrap()["status"], "inactive");
        assert!(expire(&c, end + DAY).is_none(), "proposed is not swept");
    }

    #[test]
    fn only_the_consenting_patient_decides() {
        let c = proposed(json!([]));
        let of = Person::of;
        let base = "http://127.0.0.1:8080/fhir";
        assert_eq!(
            of(
                Some(&format!("{base}/Patient/p1")),
                Some("p1"),
                Some(Role::Patient)
            )
            .may_decide(&c),
            Ok(())
        );
        assert_eq!(
            of(None, Some("p1"), Some(Role::Patient)).may_decide(&c),
            Ok(())
        );
        assert_eq!(
            of(Some("Patient/p2"), Some("p2"), Some(Role::Patient)).may_decide(&c),
            Err(WorkflowError::Hidden)
        );
        for clinician in [
            of(
                Some(&format!("{base}/Practitioner/d1")),
                None,
                Some(Role::Doctor),
            ),
            // A clinician's app with the patient in context is still the clinician.
            of(Some("Practitioner/d1"), Some("p1"), Some(Role::Doctor)),
            of(None, Some("p1"), Some(Role::Doctor)),
            of(None, Some("p1"), None),
            of(Some("Patient/p1"), Some("p1"), Some(Role::Admin)),
        ] {
            assert!(
                matches!(clinician.may_decide(&c), Err(WorkflowError::Forbidden(_))),
                "{clinician:?}"
            );
        }
        assert_eq!(
            of(Some(&format!("{base}/PractitionerRole/r1")), None, None).clinician(),
            Ok("PractitionerRole/r1")
        );
        assert!(of(Some("Patient/p1"), None, None).clinician().is_err());
    }

    #[test]
    fn break_glass_follows_the_policy() {
        let policy = BreakGlassPolicy::new(&["doctor".into()], 240).unwrap();
        let claim = params(json!([{"name": "reason", "valueString": "Unconscious in the ER"}]));
        assert_eq!(
            policy.claim(Some(Role::Doctor), &claim),
            Ok(("Unconscious in the ER".into(), 60))
        );
        assert!(matches!(
            policy.claim(Some(Role::Pharmacist), &claim),
            Err(WorkflowError::Forbidden(_))
        ));
        assert!(matches!(
            policy.claim(None, &claim),
            Err(WorkflowError::Forbidden(_))
        ));
        let long = params(json!([
            {"name": "reason", "valueString": "x"}, {"name": "minutes", "valueInteger": 241}
        ]));
        assert!(matches!(
            policy.claim(Some(Role::Doctor), &long),
            Err(WorkflowError::Invalid(_))
        ));
        assert!(matches!(
            policy.claim(Some(Role::Doctor), &Params::default()),
            Err(WorkflowError::Invalid(_))
        ));
        let both = BreakGlassPolicy::new(&["doctor".into(), " pharmacist".into()], 30).unwrap();
        assert_eq!(both.claim(Some(Role::Pharmacist), &claim).unwrap().1, 30);
        let off = BreakGlassPolicy::new(&[String::new()], 60).unwrap();
        assert!(off.roles.is_empty());
        assert!(BreakGlassPolicy::new(&["nurse".into()], 60).is_err());

        let mut c = break_glass_consent("p1", "Practitioner/d1", "Unconscious in the ER", 30, NOW);
        c["id"] = json!("b1");
        let grant = ConsentGrant::from_resource(&c).unwrap();
        assert!(grant.in_force(NOW) && !grant.in_force(NOW + 30 * 60));
        assert_eq!(grant.levels, BTreeSet::from([GrantLevel::ReadFull]));
        assert_eq!(c["provision"]["purpose"][0]["code"], "BTG");
        assert_eq!(c["performer"][0]["reference"], "Practitioner/d1");
        let notice = Notice::new(Event::BreakGlass, &c, "Dr Anil Kumar");
        assert!(
            notice
                .text
                .contains("Dr Anil Kumar claimed emergency access")
        );
        assert!(notice.text.contains("Unconscious in the ER"));
    }

    #[test]
    fn notices_say_what_happened_in_plain_words() {
        let c = proposed(json!([
            {"name": "level", "valueCode": "READ_BASIC"},
            {"name": "end", "valueDateTime": "2027-02-01T00:00:00Z"},
            {"name": "message", "valueString": "Before your surgery"},
        ]));
        let n = Notice::new(Event::Requested, &c, "Dr Anil Kumar");
        assert_eq!(n.patient, "p1");
        assert_eq!(n.consent, "c1");
        assert!(
            n.text.starts_with("Dr Anil Kumar asks to read the basics"),
            "{}",
            n.text
        );
        assert!(
            n.text
                .contains("for treatment, until 1 February 2027 00:00 UTC"),
            "{}",
            n.text
        );
        assert!(n.text.contains("\"Before your surgery\""));
        let comm = n.communication(NOW);
        assert_eq!(comm["status"], "completed");
        assert_eq!(comm["recipient"][0]["reference"], "Patient/p1");
        assert_eq!(comm["subject"]["reference"], "Patient/p1");
        assert_eq!(comm["about"][0]["reference"], "Consent/c1");
        assert_eq!(
            comm["category"][0]["coding"][0]["code"],
            "consent-requested"
        );
        assert_eq!(comm["payload"][0]["contentString"], n.text.as_str());

        let active = Approval::default().apply(&c, NOW).unwrap();
        let reason = params(json!([{"name": "reason", "valueString": "Surgery done"}]));
        let revoked = revoke(&active, &reason, NOW).unwrap();
        assert!(
            Notice::new(Event::Revoked, &revoked, "Dr Anil Kumar")
                .text
                .contains("\"Surgery done\"")
        );
        assert!(
            Notice::new(Event::Expired, &active, "Dr Anil Kumar")
                .text
                .contains("ended at 1 February 2027")
        );
    }

    #[test]
    fn names_and_references() {
        assert_eq!(
            display_name(&json!({"name": [{"given": ["Anil"], "family": "Kumar"}]})).as_deref(),
            Some("Anil Kumar")
        );
        assert_eq!(
            display_name(&json!({"name": "City Pharmacy"})).as_deref(),
            Some("City Pharmacy")
        );
        assert_eq!(display_name(&json!({})), None);
        assert_eq!(
            fhir_user_reference("http://127.0.0.1:9/fhir/Practitioner/9").as_deref(),
            Some("Practitioner/9")
        );
        assert_eq!(
            fhir_user_reference("Patient/p1").as_deref(),
            Some("Patient/p1")
        );
        assert_eq!(fhir_user_reference("p1"), None);
    }
}
