//! Consent-governed access: a clinician's, pharmacist's or administrator's token (and an app's
//! acting for them) reaches a patient's records only as far as the token's scopes **and** the
//! patient's Consents in force allow (`curanet_auth::consent`). A request about one patient is
//! decided as if the token were a patient-level token for that patient whose scopes are that
//! intersection, so the confinement rules of patient tokens apply unchanged (reads of what it
//! may not see answer 404, searches are narrowed in the query, includes are filtered). A search
//! that names no patient is narrowed to the patients who consented.
//!
//! Backend services (`system/` tokens without a user) and patients acting on their own records
//! are not governed by consents: the scopes decide.

use axum::http::{StatusCode, Uri};
use axum::response::Response;
use curanet_auth::compartment::Confinement;
use std::sync::Arc;

use curanet_auth::consent::{Residual, actor_references, effective_scopes, patient_access};
use curanet_auth::scope::{Interaction, Level};
use curanet_auth::token::AccessClaims;
use curanet_engine::EngineError;
use serde_json::{Value, json};

use super::{
    ConsentBasis, InstanceCheck, Narrowing, Refusal, Target, TokenAccess, forbidden, not_found,
};
use crate::app::AppState;
use crate::consents::Decided;
use crate::error::ApiError;
use crate::server::unix_now;

/// How consents bear on one request.
pub(super) enum Mediation {
    /// Not about a patient's records (or not governed): the token's scopes decide alone.
    Unmediated,
    /// About one patient's records: decided at patient level with these scopes.
    Patient(Box<PatientGrant>),
    /// A search across patients, or of the requester's own consent requests: decided by the
    /// token's scopes and narrowed by these pairs; includes of patients' records are dropped.
    Narrowed(Vec<(String, String)>),
    /// A search that consent leaves nothing to find: an empty searchset.
    Nothing,
    /// A lookup of patients by an exact Health ID, other identifier or phone number, to request
    /// their consent: answered with each match's id, identifiers and name only.
    Lookup,
}

/// The elements a patient lookup returns.
pub(super) const LOOKUP_ELEMENTS: &str = "identifier,name";

/// Whether a Patient search is a lookup by an exact identifier (`system|value` or a Health ID)
/// or phone number, and nothing else that could filter or widen it.
fn is_lookup(pairs: &[(String, String)]) -> bool {
    let exact = |(name, value): &(String, String)| {
        matches!(name.as_str(), "identifier" | "telecom" | "phone")
            && !value.contains(',')
            && !value.is_empty()
    };
    pairs.iter().any(exact)
        && pairs.iter().all(|p| {
            exact(p)
                || matches!(
                    p.0.as_str(),
                    "_count" | "_elements" | "_summary" | "_format"
                )
        })
}

/// A request about one patient, with what their consents grant the requester.
pub(super) struct PatientGrant {
    pub patient: String,
    /// What the consents grant and the effective scopes (the token's ∩ the consented ones).
    pub decided: Arc<Decided>,
    /// The token's claims with the patient in context.
    pub claims: AccessClaims,
}

impl PatientGrant {
    fn residual(&self) -> Option<&Residual> {
        self.decided.access.as_ref().map(|a| &a.residual)
    }
}

impl PatientGrant {
    /// The token access to decide the request with.
    pub fn token_access<'a>(&'a self, outer: &TokenAccess<'a>) -> TokenAccess<'a> {
        TokenAccess {
            scopes: &self.decided.scopes,
            claims: &self.claims,
            levels: vec![Level::Patient],
            defs: outer.defs,
        }
    }
}

/// Whether the patients' consents govern this token: a person's token (it names the grant the
/// person approved) unless the person is a patient (their own records are theirs).
pub(super) fn governed(claims: &AccessClaims) -> bool {
    claims.grant_id.is_some()
        && !claims
            .fhir_user
            .as_deref()
            .and_then(relative_reference)
            .is_some_and(|r| r.starts_with("Patient/"))
}

/// `Type/id` of an absolute or relative reference URL.
pub(super) fn relative_reference(url: &str) -> Option<String> {
    let mut segments = url.trim_end_matches('/').rsplit('/');
    let id = segments.next()?;
    let ty = segments.next()?;
    (ty.starts_with(|c: char| c.is_ascii_uppercase()) && !id.is_empty())
        .then(|| format!("{ty}/{id}"))
}

/// The patient id of a search value: `P`, `Patient/P` or an absolute URL ending so.
fn patient_of_value(value: &str) -> Option<String> {
    if value.contains(',') || value.is_empty() {
        return None;
    }
    match relative_reference(value) {
        Some(r) => r.strip_prefix("Patient/").map(str::to_string),
        None => Some(value.to_string()),
    }
}

/// The one patient a search of `resource_type` names (by its confining parameter, `patient`,
/// `subject` or, for Patient, `_id`), when it names exactly one.
fn searched_patient(confinement: &Confinement, pairs: &[(String, String)]) -> Option<String> {
    let mut named: Vec<String> = Vec::new();
    for (name, value) in pairs {
        let base = name.split(':').next().unwrap_or("");
        let modifier = name.split_once(':').map(|(_, m)| m);
        let confining = match confinement {
            Confinement::Owner => base == "_id",
            Confinement::Param(p) => {
                (base == p || base == "patient" || base == "subject")
                    && modifier.is_none_or(|m| m == "Patient")
            }
            _ => false,
        };
        if confining {
            match patient_of_value(value) {
                Some(p) => named.push(p),
                None => return None,
            }
        }
    }
    named.sort_unstable();
    named.dedup();
    (named.len() == 1).then(|| named.remove(0))
}

/// The patients a record (of `resource_type`) belongs to.
fn patients_of(access: &TokenAccess<'_>, resource_type: &str, resource: &Value) -> Vec<String> {
    match access.confinement(resource_type) {
        Confinement::Owner => resource["id"]
            .as_str()
            .map(|id| vec![id.to_string()])
            .unwrap_or_default(),
        Confinement::Param(param) => {
            let mut out: Vec<String> = super::indexer(access.defs)
                .extract(resource_type, resource)
                .references
                .iter()
                .filter(|r| r.param == param && r.target_type == "Patient")
                .map(|r| r.target_id.clone())
                .collect();
            out.dedup();
            out
        }
        Confinement::Shared | Confinement::Unconfinable => Vec::new(),
    }
}

/// The stored current version of `resource_type/id`, if any (deleted: none).
async fn stored(
    state: &AppState,
    resource_type: &str,
    id: &str,
) -> Result<Option<Value>, ApiError> {
    match state.engine.read(resource_type, id).await {
        Ok(v) => Ok(v.resource()),
        Err(EngineError::NotFound(_) | EngineError::Gone(_) | EngineError::BadRequest(_)) => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether the target is a search of one type (`$lastn` included).
fn searches(target: &Target) -> bool {
    matches!(target, Target::Interaction(Interaction::SearchType, ..))
        || matches!(target, Target::Operation(name, _, None) if name == "lastn")
}

/// Whether the target only reads (a refusal then answers 404, telling nothing).
fn reads(target: &Target) -> bool {
    use Interaction::*;
    match target {
        Target::Interaction(i, _, _) => matches!(i, Read | Vread | HistoryInstance),
        Target::Operation(name, _, Some(_)) => {
            matches!(name.as_str(), "everything" | "meta" | "validate")
        }
        _ => false,
    }
}

/// Decides how consents bear on `target` for a governed token; `body` is the resource of a
/// create or update. Records what consent decided in `basis`.
pub(super) async fn mediate(
    state: &AppState,
    access: &TokenAccess<'_>,
    target: &Target,
    query: &[(String, String)],
    body: Option<&Value>,
    basis: &mut Option<ConsentBasis>,
) -> Result<Mediation, ApiError> {
    use Interaction::*;
    let (ty, id) = match target {
        Target::Interaction(_, ty, id) => (ty.as_str(), id.as_deref()),
        Target::Conditional(_, ty) => (ty.as_str(), None),
        Target::Operation(name, _, _) if super::CONSENT_OPERATIONS.contains(&name.as_str()) => {
            return Ok(Mediation::Unmediated);
        }
        Target::Operation(_, Some(ty), id) => (ty.as_str(), id.as_deref()),
        Target::Operation(name, None, _) if name == "validate" => return Ok(Mediation::Unmediated),
        Target::Operation(name, None, _) => {
            return Err(forbidden(format!(
                "${name} on the whole server spans every patient's records, which a clinician's token reaches only through each patient's consent"
            )));
        }
        Target::Public | Target::Bundle | Target::Unknown | Target::NoRoute => {
            return Ok(Mediation::Unmediated);
        }
    };
    if ty == "*" {
        return Err(forbidden(
            "a clinician's token searches one type at a time: patients' records are reached through each patient's consent",
        ));
    }
    if ty == "Consent" {
        return consent_requests(state, access, target, id, body).await;
    }
    if ty == "AuditEvent" {
        // The accounting of disclosures: administrators search it all; clinicians none of it.
        let account = state
            .authority
            .account(&access.claims.sub)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "account lookup failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    curanet_fhir::IssueType::Exception,
                    "the account store did not answer",
                )
            })?;
        return match account {
            Some(a) if a.role == curanet_storage::Role::Admin => Ok(Mediation::Unmediated),
            _ => Err(forbidden(
                "audit records are read by administrators, and by each patient for their own records",
            )),
        };
    }
    let confinement = access.confinement(ty);
    match confinement {
        Confinement::Shared => return Ok(Mediation::Unmediated),
        Confinement::Unconfinable => {
            return Err(forbidden(format!(
                "{ty} resources may hold patients' data but name no patient, so no consent can grant them to a clinician's token"
            )));
        }
        Confinement::Owner | Confinement::Param(_) => {}
    }
    // The one patient the request is about, if it is about one.
    let patient = match target {
        Target::Interaction(SearchType, _, _) => searched_patient(&confinement, query),
        Target::Operation(name, _, None) if name == "lastn" => {
            searched_patient(&confinement, query)
        }
        Target::Interaction(Create, ..) if ty == "Patient" => return Ok(Mediation::Unmediated),
        Target::Interaction(Create, ..) => match body.map(|b| patients_of(access, ty, b)) {
            Some(p) if !p.is_empty() => Some(p[0].clone()),
            _ => return Ok(Mediation::Unmediated),
        },
        Target::Interaction(HistoryType | HistorySystem | SearchSystem, ..) => {
            return Err(forbidden(format!(
                "{} of {ty} spans every patient's records; a clinician's token reaches them only patient by patient",
                match target {
                    Target::Interaction(i, ..) => i.code(),
                    _ => "this",
                }
            )));
        }
        Target::Conditional(..) => match searched_patient(&confinement, query) {
            Some(p) => Some(p),
            None => {
                return Err(forbidden(format!(
                    "a clinician's conditional {ty} write must name the patient in its criteria"
                )));
            }
        },
        _ => {
            let id = id.unwrap_or_default();
            if ty == "Patient" {
                Some(id.to_string())
            } else {
                let current = stored(state, ty, id).await?;
                match current.as_ref().or(body) {
                    Some(resource) => patients_of(access, ty, resource).into_iter().next(),
                    // Absent: the handler answers 404 (or creates, with the body's patient).
                    None => return Ok(Mediation::Unmediated),
                }
            }
        }
    };
    let Some(patient) = patient else {
        if ty == "Patient"
            && matches!(target, Target::Interaction(SearchType, ..))
            && is_lookup(query)
        {
            return Ok(Mediation::Lookup);
        }
        if matches!(
            target,
            Target::Interaction(SearchType, ..) | Target::Operation(..)
        ) {
            return across_patients(state, access, ty, basis).await;
        }
        // A record of no patient: the scopes decide.
        return Ok(Mediation::Unmediated);
    };
    let references = references(state, access).await?;
    let decided = state
        .consents
        .decide(
            &state.engine,
            &access.claims.jti,
            access.scopes,
            &references,
            &patient,
        )
        .await?;
    let Some(granted) = decided.access.clone() else {
        let reason = format!(
            "Patient/{patient} has no consent in force that grants you access to their records"
        );
        *basis = Some(ConsentBasis {
            patient: Some(patient.clone()),
            refusal: Some(reason.clone()),
            ..ConsentBasis::default()
        });
        return Err(if reads(target) {
            not_found(ty, id.unwrap_or_default())
        } else {
            forbidden(format!(
                "{reason}; request it with POST Patient/{patient}/$request-consent"
            ))
        });
    };
    *basis = Some(ConsentBasis {
        patient: Some(patient.clone()),
        consents: granted.consents.clone(),
        break_glass: granted.break_glass,
        refusal: None,
    });
    let mut claims = access.claims.clone();
    claims.patient = Some(patient.clone());
    Ok(Mediation::Patient(Box::new(PatientGrant {
        patient,
        decided,
        claims,
    })))
}

/// The policy under which a clinician who registers a patient may keep their record.
pub const REGISTRATION_POLICY: &str = "https://curanet.in/fhir/policy/registration";

/// After a clinician registers a patient (a Patient created with their token): records the
/// Consent that lets them keep that patient's record (READ_FULL and WRITE, from now, until the
/// patient revokes it), so that a patient without an account yet can be treated, and so that
/// the grant is visible to the patient and revocable like any other.
pub(super) fn after_registration<'a>(
    state: &'a AppState,
    claims: &AccessClaims,
    response: &Response,
) -> impl std::future::Future<Output = ()> + Send + 'a {
    let created = response.status() == StatusCode::CREATED;
    let actor = claims.fhir_user.as_deref().and_then(relative_reference);
    // The Response (its body) is not Sync: only owned values cross the await below.
    let patient = response
        .headers()
        .get(axum::http::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.split("/_history").next())
        .and_then(relative_reference);
    record_registration(state, actor, created.then_some(patient).flatten())
}

async fn record_registration(state: &AppState, actor: Option<String>, patient: Option<String>) {
    let (Some(actor), Some(patient)) = (actor, patient) else {
        return;
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let levels: Vec<Value> = ["READ_FULL", "WRITE"]
        .iter()
        .map(|l| json!({"system": curanet_auth::consent::GRANT_LEVEL_SYSTEM, "code": l}))
        .collect();
    let consent = json!({
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient},
        "dateTime": now,
        "policy": [{"uri": REGISTRATION_POLICY}],
        "provision": {
            "type": "permit",
            "period": {"start": now},
            "actor": [{
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                "reference": {"reference": actor}
            }],
            "action": [{"coding": levels}],
        }
    });
    if let Err(e) = state
        .engine
        .create("Consent", consent.to_string().as_bytes(), None, "")
        .await
    {
        tracing::error!(error = %e, %patient, "the registering clinician's consent was not recorded");
    }
}

/// The requester's references (fhirUser, roles, organizations); none without a fhirUser.
async fn references(state: &AppState, access: &TokenAccess<'_>) -> Result<Vec<String>, ApiError> {
    match access
        .claims
        .fhir_user
        .as_deref()
        .and_then(relative_reference)
    {
        Some(user) => Ok(state
            .consents
            .references(&state.engine, &user)
            .await?
            .as_ref()
            .clone()),
        None => Ok(Vec::new()),
    }
}

/// A search of `resource_type` naming no one patient: narrowed to the patients whose consents
/// let the requester search that type without further restriction (a consent restricted by
/// data period or labels is used by naming its patient).
async fn across_patients(
    state: &AppState,
    access: &TokenAccess<'_>,
    resource_type: &str,
    basis: &mut Option<ConsentBasis>,
) -> Result<Mediation, ApiError> {
    let references = references(state, access).await?;
    if references.is_empty() {
        return Ok(Mediation::Nothing);
    }
    let grants = state.consents.naming(&state.engine, &references).await?;
    let mut patients: Vec<&str> = grants.iter().map(|g| g.patient.as_str()).collect();
    patients.sort_unstable();
    patients.dedup();
    let now = unix_now();
    let mut allowed = Vec::new();
    let mut consents = Vec::new();
    for patient in patients {
        let theirs: Vec<_> = grants
            .iter()
            .filter(|g| g.patient == patient)
            .cloned()
            .collect();
        let Some(granted) = patient_access(&theirs, &references, now) else {
            continue;
        };
        let scopes = effective_scopes(access.scopes, &granted.scopes);
        let open = scopes
            .decide(Level::Patient, resource_type, Interaction::SearchType)
            .is_unrestricted()
            && granted.residual.is_empty();
        if open {
            allowed.push(patient.to_string());
            consents.extend(granted.consents);
        }
    }
    let confinement = access.confinement(resource_type);
    let Some((param, _)) = confinement.pair("") else {
        return Ok(Mediation::Unmediated);
    };
    if allowed.is_empty() {
        return Ok(Mediation::Nothing);
    }
    *basis = Some(ConsentBasis {
        consents,
        ..ConsentBasis::default()
    });
    let values: Vec<String> = allowed
        .iter()
        .map(|p| match confinement {
            Confinement::Owner => p.clone(),
            _ => format!("Patient/{p}"),
        })
        .collect();
    Ok(Mediation::Narrowed(vec![(param, values.join(","))]))
}

/// The consent requests a clinician may make and see: they propose Consents naming themselves
/// (`status` proposed or draft), and see the Consents that name them; only the patient changes
/// a Consent (`$approve`, `$reject`, `$revoke`, or their own token).
async fn consent_requests(
    state: &AppState,
    access: &TokenAccess<'_>,
    target: &Target,
    id: Option<&str>,
    body: Option<&Value>,
) -> Result<Mediation, ApiError> {
    use Interaction::*;
    let references = references(state, access).await?;
    let names_requester = |consent: &Value| {
        let actors = actor_references(&consent["provision"]);
        references.iter().any(|own| actors.contains(own))
    };
    match target {
        Target::Interaction(SearchType, ..) => {
            if references.is_empty() {
                return Ok(Mediation::Nothing);
            }
            Ok(Mediation::Narrowed(vec![(
                "actor".into(),
                references.join(","),
            )]))
        }
        Target::Interaction(Read | Vread | HistoryInstance, ..) => {
            let id = id.unwrap_or_default();
            match stored(state, "Consent", id).await? {
                Some(c) if names_requester(&c) => Ok(Mediation::Unmediated),
                _ => Err(not_found("Consent", id)),
            }
        }
        Target::Interaction(Create, ..) => {
            let proposal = body.is_some_and(|c| {
                matches!(c["status"].as_str(), Some("proposed" | "draft")) && names_requester(c)
            });
            if proposal {
                Ok(Mediation::Unmediated)
            } else {
                Err(forbidden(
                    "a clinician may only propose a consent (status proposed or draft) that names them as its actor; only the patient can make it active",
                ))
            }
        }
        _ => Err(forbidden(
            "only the patient (or their delegate) may change a consent: the patient approves, rejects or revokes it ($approve, $reject, $revoke)",
        )),
    }
}

/// A refusal of a request about one patient as the client sees it: a read answers 404 (it
/// confirms nothing), a search the consents do not cover finds nothing, anything else keeps
/// its 403.
pub(super) fn refused(e: ApiError, target: &Target, uri: &Uri) -> Refusal {
    if e.status == StatusCode::NOT_FOUND {
        return Refusal::Error(e);
    }
    match target {
        Target::Interaction(_, ty, Some(id)) | Target::Operation(_, Some(ty), Some(id))
            if reads(target) =>
        {
            Refusal::Error(not_found(ty, id))
        }
        _ if searches(target) => Refusal::Response(Box::new(nothing_found(&uri.to_string()))),
        _ => Refusal::Error(e),
    }
}

/// ANDs what the consents withhold beyond types and interactions (a data period, denied
/// security labels and instances) into the decided request. Returns whether a search must
/// drop its includes of patients' records (they would escape the restriction).
pub(super) fn restrict(
    access: &TokenAccess<'_>,
    target: &Target,
    grant: &PatientGrant,
    narrowing: &mut Narrowing,
) -> Result<bool, ApiError> {
    use Interaction::*;
    let Some(residual) = grant.residual().filter(|r| !r.is_empty()) else {
        return Ok(false);
    };
    match target {
        Target::Interaction(_, ty, _) | Target::Operation(_, Some(ty), None)
            if searches(target) =>
        {
            search_residual(residual, ty, narrowing)
        }
        Target::Operation(name, _, _) if name == "everything" => Err(forbidden(
            "the consent restricts records by date or label, which $everything cannot apply; search each type",
        )),
        Target::Interaction(_, ty, Some(id)) | Target::Operation(_, Some(ty), Some(id))
            if reads(target) =>
        {
            let pairs = residual.pairs(ty).ok_or_else(|| not_found(ty, id))?;
            if pairs.is_empty() {
                return Ok(false);
            }
            if narrowing.instances.is_empty() {
                narrowing.instances.push(InstanceCheck {
                    resource_type: ty.clone(),
                    id: id.clone(),
                    sets: vec![pairs],
                    patient: Some((access.confinement(ty), grant.patient.clone())),
                });
            } else {
                for check in &mut narrowing.instances {
                    if check.sets.is_empty() {
                        check.sets.push(pairs.clone());
                    } else {
                        check
                            .sets
                            .iter_mut()
                            .for_each(|s| s.extend(pairs.iter().cloned()));
                    }
                }
            }
            Ok(false)
        }
        // A record withheld from reading is withheld from changing too: the stored version
        // must satisfy the restrictions (else 404, as for a read).
        Target::Interaction(Update | Patch | Delete, ty, Some(id)) => {
            let pairs = residual.pairs(ty).ok_or_else(|| not_found(ty, id))?;
            if !pairs.is_empty() {
                narrowing.instances.push(InstanceCheck {
                    resource_type: ty.clone(),
                    id: id.clone(),
                    sets: vec![pairs],
                    patient: Some((access.confinement(ty), grant.patient.clone())),
                });
            }
            Ok(false)
        }
        // Creates are governed by the WRITE level alone.
        _ => Ok(false),
    }
}

fn search_residual(
    residual: &Residual,
    resource_type: &str,
    narrowing: &mut Narrowing,
) -> Result<bool, ApiError> {
    match residual.pairs(resource_type) {
        Some(pairs) => {
            narrowing.pairs.extend(pairs);
            Ok(true)
        }
        None => Err(forbidden(format!(
            "the consent grants records of a data period, and {resource_type} records carry no date to compare with it"
        ))),
    }
}

/// An empty searchset, for a search that consent leaves nothing to find.
pub(super) fn nothing_found(self_link: &str) -> Response {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 0,
        "link": [{"relation": "self", "url": self_link}],
    });
    let format = crate::negotiation::Format {
        plain_json: false,
        pretty: false,
    };
    crate::handlers::json_response(StatusCode::OK, format, &bundle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_searched_patients() {
        assert_eq!(
            relative_reference("http://127.0.0.1:8080/fhir/Practitioner/9").as_deref(),
            Some("Practitioner/9")
        );
        assert_eq!(
            relative_reference("Patient/p1").as_deref(),
            Some("Patient/p1")
        );
        assert_eq!(relative_reference("p1"), None);
        let param = Confinement::Param("subject".into());
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            searched_patient(&param, &pairs(&[("patient", "p1"), ("code", "x")])).as_deref(),
            Some("p1")
        );
        assert_eq!(
            searched_patient(&param, &pairs(&[("subject", "Patient/p1")])).as_deref(),
            Some("p1")
        );
        assert_eq!(
            searched_patient(&param, &pairs(&[("subject:Patient", "p1")])).as_deref(),
            Some("p1")
        );
        assert_eq!(
            searched_patient(&param, &pairs(&[("patient", "p1,p2")])),
            None
        );
        assert_eq!(
            searched_patient(
                &param,
                &pairs(&[("patient", "p1"), ("subject", "Patient/p2")])
            ),
            None
        );
        assert_eq!(searched_patient(&param, &pairs(&[("code", "x")])), None);
        assert_eq!(
            searched_patient(&Confinement::Owner, &pairs(&[("_id", "p1")])).as_deref(),
            Some("p1")
        );
    }
}
