//! Finding a patient: by Health ID (`HID-YYYY-XXXXXXXX`), phone number or name, with where the
//! signed-in user stands with their consent.
//!
//! The server decides what a clinician may find. Without a consent, a patient can be looked up
//! only by an exact identifier or phone number, and the answer carries their identifiers and
//! name only (`_elements=identifier,name`, tagged `SUBSETTED`): enough to request consent. A
//! name search finds only patients who consented. So a lookup's summary has no gender, birth
//! date or phone unless a consent is in force, in which case the full Patient is read.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consents::{ConsentState, consent_state, my_consents};
use crate::model::{HEALTH_ID_SYSTEM, health_id, opt_str, person_name, phone, str_of};
use crate::search::subsetted;
use crate::{DesktopError, FhirClient, Result};

/// How many patients a search lists.
const LIMIT: &str = "50";

/// A patient as the UI lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientSummary {
    /// The Patient's id.
    pub id: String,
    /// Their Health ID.
    pub health_id: Option<String>,
    /// Their name as shown.
    pub name: String,
    /// `male`, `female`, `other`, `unknown`.
    pub gender: Option<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// Their first phone number.
    pub phone: Option<String>,
    /// Where the signed-in user stands with their consent.
    pub consent: ConsentState,
}

/// What the user typed in the search box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientQuery {
    /// A Health ID, upper-cased.
    HealthId(String),
    /// A phone number, as typed (trimmed).
    Phone(String),
    /// Anything else: part of a name.
    Name(String),
}

impl PatientQuery {
    /// Reads the search box: `HID-…` is a Health ID; digits (with `+`, spaces, dashes,
    /// parentheses; at least six digits) a phone number; anything else a name.
    pub fn parse(query: &str) -> Option<PatientQuery> {
        let q = query.trim();
        if q.is_empty() {
            return None;
        }
        if q.len() > 4 && q.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("HID-")) {
            return Some(PatientQuery::HealthId(q.to_ascii_uppercase()));
        }
        let digits = q.chars().filter(char::is_ascii_digit).count();
        let phone_like = q
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'));
        if phone_like && digits >= 6 {
            return Some(PatientQuery::Phone(q.to_string()));
        }
        Some(PatientQuery::Name(q.to_string()))
    }

    /// The search parameters. Lookups (Health ID, phone) carry nothing but the identifier or
    /// phone and `_count`: anything more and the server would not treat them as lookups.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let count = ("_count", LIMIT.to_string());
        match self {
            PatientQuery::HealthId(id) => {
                vec![("identifier", format!("{HEALTH_ID_SYSTEM}|{id}")), count]
            }
            PatientQuery::Phone(p) => vec![("telecom", p.clone()), count],
            PatientQuery::Name(n) => vec![("name", n.clone()), count],
        }
    }
}

/// A Patient as the UI lists them.
pub fn patient_summary(patient: &Value, consent: ConsentState) -> PatientSummary {
    let id = str_of(&patient["id"]);
    PatientSummary {
        health_id: health_id(patient),
        name: person_name(patient).unwrap_or_else(|| format!("Patient/{id}")),
        gender: opt_str(&patient["gender"]),
        birth_date: opt_str(&patient["birthDate"]),
        phone: phone(patient),
        consent,
        id,
    }
}

/// Finds patients by Health ID, phone number or name (see the module doc for what the server
/// lets a clinician find).
pub async fn find_patients(client: &FhirClient, query: &str) -> Result<Vec<PatientSummary>> {
    let Some(query) = PatientQuery::parse(query) else {
        return Ok(Vec::new());
    };
    let params = query.params();
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let found = client.search("Patient", &pairs).await?;
    if found.matches.is_empty() {
        return Ok(Vec::new());
    }
    let consents = my_consents(client).await?;
    let now = Utc::now();
    let mut out = Vec::with_capacity(found.matches.len());
    for patient in &found.matches {
        let id = str_of(&patient["id"]);
        let consent = consent_state(&consents, &id, now);
        // A lookup's partial answer: the whole Patient when the consent lets us read it.
        let full = if subsetted(patient) && consent == ConsentState::Active {
            match client.read("Patient", &id).await {
                Ok(read) => Some(read.resource),
                Err(DesktopError::NotAvailable(_) | DesktopError::Refused { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        out.push(patient_summary(full.as_ref().unwrap_or(patient), consent));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_search_box_tells_health_ids_phones_and_names_apart() {
        assert_eq!(
            PatientQuery::parse(" hid-2026-abcdefgh "),
            Some(PatientQuery::HealthId("HID-2026-ABCDEFGH".into()))
        );
        assert_eq!(
            PatientQuery::parse("+91 98765-43210"),
            Some(PatientQuery::Phone("+91 98765-43210".into()))
        );
        assert_eq!(
            PatientQuery::parse("Asha"),
            Some(PatientQuery::Name("Asha".into()))
        );
        assert_eq!(
            PatientQuery::parse("123"),
            Some(PatientQuery::Name("123".into()))
        );
        assert_eq!(PatientQuery::parse("  "), None);
        assert_eq!(
            PatientQuery::HealthId("HID-2026-ABCDEFGH".into()).params()[0].1,
            format!("{HEALTH_ID_SYSTEM}|HID-2026-ABCDEFGH")
        );
    }

    #[test]
    fn a_lookup_answer_lists_what_it_has() {
        let p = json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": HEALTH_ID_SYSTEM, "value": "HID-2026-ABCDEFGH"}],
            "name": [{"given": ["Asha"], "family": "Rao"}]});
        let s = patient_summary(&p, ConsentState::None);
        assert_eq!(s.name, "Asha Rao");
        assert_eq!(s.health_id.as_deref(), Some("HID-2026-ABCDEFGH"));
        assert_eq!((&s.gender, &s.birth_date, &s.phone), (&None, &None, &None));
        let ui = serde_json::to_value(&s).unwrap();
        assert_eq!(ui["healthId"], "HID-2026-ABCDEFGH");
        assert_eq!(ui["consent"], "none");
    }
}
