//! Consents as the clinician sees them: asking a patient for access (the server's
//! `Patient/{id}/$request-consent`, which makes a `proposed` Consent and tells the patient),
//! the requests still waiting for the patient, and whether a Consent in force names the
//! signed-in user. The server narrows a clinician's Consent searches to the Consents that name
//! them (or their roles and organizations), so "mine" needs no filtering here.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{opt_str, person_name, reference_id, str_of};
use crate::{DesktopError, FhirClient, Result};

/// The grant levels a request asks for: reading the full record and writing to it (vitals,
/// notes, prescriptions, dispenses all write).
const REQUESTED_LEVELS: [&str; 2] = ["READ_FULL", "WRITE"];
/// The longest period the server lets a clinician request.
const MAX_DAYS: u32 = 365;

/// Where the signed-in user stands with a patient's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ConsentState {
    /// A Consent in force names them.
    Active,
    /// They asked; the patient has not decided yet (a `proposed` Consent).
    Pending,
    /// Neither.
    None,
}

/// A consent as the UI lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentSummary {
    /// The Consent's id.
    pub id: String,
    /// The consenting patient's id.
    pub patient_id: String,
    /// Their name, when known on this machine.
    pub patient_name: Option<String>,
    /// `proposed`, `active`, `rejected`, `inactive`, ...
    pub status: String,
    /// When access starts (`provision.period.start`).
    pub start: Option<String>,
    /// When access ends (`provision.period.end`).
    pub end: Option<String>,
}

/// A moment of a FHIR dateTime (a date alone counts from its midnight, UTC).
fn moment(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc())
        })
}

/// Whether a Consent is in force at `now`: `active`, started and not ended.
pub fn in_force(consent: &Value, now: DateTime<Utc>) -> bool {
    let period = &consent["provision"]["period"];
    consent["status"] == "active"
        && period["start"]
            .as_str()
            .and_then(moment)
            .is_none_or(|s| s <= now)
        && period["end"]
            .as_str()
            .and_then(moment)
            .is_none_or(|e| e > now)
}

/// The user's standing with `patient` among `consents` (those naming the user).
pub fn consent_state(consents: &[Value], patient: &str, now: DateTime<Utc>) -> ConsentState {
    let theirs = || {
        consents
            .iter()
            .filter(move |c| reference_id(&c["patient"], "Patient").as_deref() == Some(patient))
    };
    if theirs().any(|c| in_force(c, now)) {
        ConsentState::Active
    } else if theirs().any(|c| c["status"] == "proposed") {
        ConsentState::Pending
    } else {
        ConsentState::None
    }
}

/// A Consent as the UI lists it; `patient_name` from wherever the caller knows it.
pub fn summary(consent: &Value, patient_name: Option<String>) -> ConsentSummary {
    let period = &consent["provision"]["period"];
    ConsentSummary {
        id: str_of(&consent["id"]),
        patient_id: reference_id(&consent["patient"], "Patient").unwrap_or_default(),
        patient_name,
        status: str_of(&consent["status"]),
        start: opt_str(&period["start"]),
        end: opt_str(&period["end"]),
    }
}

/// The `$request-consent` parameters: the requested levels, ending `days` after `now`.
pub fn request_parameters(days: u32, now: DateTime<Utc>) -> Result<Value> {
    if days == 0 || days > MAX_DAYS {
        return Err(DesktopError::Invalid(format!(
            "access can be requested for 1 to {MAX_DAYS} days"
        )));
    }
    let end = now + chrono::Duration::days(i64::from(days));
    let mut parameter: Vec<Value> = REQUESTED_LEVELS
        .iter()
        .map(|l| json!({"name": "level", "valueCode": l}))
        .collect();
    parameter.push(json!({
        "name": "end",
        "valueDateTime": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }));
    Ok(json!({"resourceType": "Parameters", "parameter": parameter}))
}

/// The name of a cached patient, if this machine has their Patient.
pub(crate) async fn cached_name(client: &FhirClient, patient: &str) -> Result<Option<String>> {
    Ok(client
        .cached("Patient", patient)
        .await?
        .as_ref()
        .and_then(person_name))
}

/// Asks the patient for access to their record (reading and writing) for `days` days: the
/// server makes a `proposed` Consent naming the signed-in clinician and tells the patient.
pub async fn request_consent(
    client: &FhirClient,
    patient_id: &str,
    days: u32,
) -> Result<ConsentSummary> {
    let parameters = request_parameters(days, Utc::now())?;
    let consent = client
        .operation(
            &format!("Patient/{patient_id}/$request-consent"),
            &parameters,
        )
        .await?;
    Ok(summary(&consent, cached_name(client, patient_id).await?))
}

/// The user's consent requests the patients have not decided yet (`proposed` Consents naming
/// `user`), newest first.
pub async fn pending_consents(client: &FhirClient, user: &str) -> Result<Vec<ConsentSummary>> {
    let found = client
        .search(
            "Consent",
            &[("status", "proposed"), ("actor", user), ("_count", "100")],
        )
        .await?;
    let mut out = Vec::with_capacity(found.matches.len());
    for consent in &found.matches {
        let patient = reference_id(&consent["patient"], "Patient").unwrap_or_default();
        out.push(summary(consent, cached_name(client, &patient).await?));
    }
    out.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(out)
}

/// The Consents that name the signed-in user and are active or proposed (the server narrows
/// a clinician's Consent search to those naming them).
pub(crate) async fn my_consents(client: &FhirClient) -> Result<Vec<Value>> {
    Ok(client
        .search(
            "Consent",
            &[("status", "active,proposed"), ("_count", "500")],
        )
        .await?
        .matches)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        moment(text).unwrap()
    }

    fn consent(patient: &str, status: &str, start: &str, end: &str) -> Value {
        json!({"resourceType": "Consent", "id": "c", "status": status,
               "patient": {"reference": format!("Patient/{patient}")},
               "provision": {"period": {"start": start, "end": end}}})
    }

    #[test]
    fn a_consent_counts_while_it_is_in_force() {
        let now = at("2026-12-05T10:00:00Z");
        let active = consent(
            "p1",
            "active",
            "2026-12-01T00:00:00Z",
            "2027-01-01T00:00:00Z",
        );
        let ended = consent("p2", "active", "2026-11-01T00:00:00Z", "2026-12-01");
        let asked = consent("p3", "proposed", "", "2027-01-01T00:00:00Z");
        let all = [active, ended, asked];
        assert_eq!(consent_state(&all, "p1", now), ConsentState::Active);
        assert_eq!(consent_state(&all, "p2", now), ConsentState::None);
        assert_eq!(consent_state(&all, "p3", now), ConsentState::Pending);
        assert_eq!(consent_state(&all, "p4", now), ConsentState::None);
        assert!(!in_force(&all[0], at("2026-11-30T23:59:59Z")));
    }

    #[test]
    fn a_request_asks_for_reading_and_writing_until_its_end() {
        let p = request_parameters(30, at("2026-12-05T10:00:00Z")).unwrap();
        assert_eq!(p["parameter"][0]["valueCode"], "READ_FULL");
        assert_eq!(p["parameter"][1]["valueCode"], "WRITE");
        assert_eq!(p["parameter"][2]["valueDateTime"], "2027-01-04T10:00:00Z");
        assert!(request_parameters(0, Utc::now()).is_err());
        assert!(request_parameters(400, Utc::now()).is_err());
        let s = summary(&consent("p1", "proposed", "", "2027-01-04T10:00:00Z"), None);
        assert_eq!((s.patient_id.as_str(), s.start), ("p1", None));
    }
}
