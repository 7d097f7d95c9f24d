//! Resources the checks write, shared with CuraNet's own integration tests.

use serde_json::{Value, json};

/// The CodeSystem of CuraNet's consent grant levels.
pub const GRANT_LEVELS: &str = "https://curanet.in/fhir/CodeSystem/consent-grant-level";

/// A CuraNetConsent of `patient` (an id) to `actor` (`Practitioner/1`, `Organization/2`, ...)
/// with `status`, granting `levels` (READ_BASIC, READ_FULL, WRITE, DELETE) on `classes` (none:
/// every type).
pub fn consent(
    patient: &str,
    status: &str,
    actor: &str,
    levels: &[&str],
    classes: &[&str],
) -> Value {
    let mut consent = json!({
        "resourceType": "Consent",
        "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": "2026-01-01T00:00:00Z",
        "provision": {
            "type": "permit",
            "actor": [{
                "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                "reference": {"reference": actor}
            }],
            "action": [{"coding": levels.iter().map(|l| json!({"system": GRANT_LEVELS, "code": l})).collect::<Vec<_>>()}],
        }
    });
    if !classes.is_empty() {
        consent["provision"]["class"] = classes
            .iter()
            .map(|c| json!({"system": "http://hl7.org/fhir/resource-types", "code": c}))
            .collect();
    }
    consent
}
