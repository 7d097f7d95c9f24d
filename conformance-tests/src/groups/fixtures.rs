//! Sample resources the checks write.

use serde_json::{Value, json};

use crate::client::unique;

/// A valid Patient with a unique family name.
pub fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "name": [{"family": format!("Test{}", unique()), "given": ["Asha"]}],
        "gender": "female",
        "birthDate": "1985-04-12"
    })
}

/// A valid heart-rate Observation.
pub fn observation() -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}
    })
}

/// One minimal valid instance of each resource type CuraNet's users exchange most.
pub fn clinical_samples() -> Vec<Value> {
    let patient_ref = json!({"reference": "Patient/example"});
    let med = json!({"coding": [{"system": "http://snomed.info/sct", "code": "387517004", "display": "Paracetamol"}]});
    vec![
        json!({"resourceType": "Encounter", "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
               "subject": patient_ref}),
        observation(),
        json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
               "medicationCodeableConcept": med, "subject": patient_ref,
               "dosageInstruction": [{"text": "500 mg every 6 hours", "timing": {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}}}]}),
        json!({"resourceType": "MedicationDispense", "status": "completed",
               "medicationCodeableConcept": med, "subject": patient_ref,
               "quantity": {"value": 10, "unit": "tablet"}}),
        json!({"resourceType": "Consent", "status": "active",
               "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
               "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
               "patient": patient_ref,
               "provision": {"type": "permit", "period": {"start": "2026-01-01", "end": "2026-12-31"}}}),
        json!({"resourceType": "Appointment", "status": "booked",
               "start": "2026-12-05T10:00:00+05:30", "end": "2026-12-05T10:15:00+05:30",
               "participant": [{"actor": patient_ref, "status": "accepted"}]}),
        json!({"resourceType": "AllergyIntolerance", "patient": patient_ref,
               "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
               "code": {"text": "Penicillin"}, "criticality": "high"}),
        json!({"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "CBC"}, "subject": patient_ref}),
        json!({"resourceType": "DocumentReference", "status": "current",
               "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}]}),
        json!({"resourceType": "Practitioner", "name": [{"family": "Iyer", "prefix": ["Dr"]}]}),
        json!({"resourceType": "Organization", "name": "Sunrise Pharmacy",
               "type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov"}]}]}),
    ]
}

/// A `Binary` carrying a JSON Patch document, as a PATCH entry of a batch or transaction holds it.
pub fn json_patch_binary(ops: &Value) -> Value {
    json!({
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64(&serde_json::to_vec(ops).expect("json"))
    })
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}
