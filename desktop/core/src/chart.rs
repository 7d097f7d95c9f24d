//! A patient's chart: allergies, active medications, problems, encounters, vital-sign series,
//! labs (flagged against their reference range), documents, and the self-reported readings
//! waiting for verification.
//!
//! The chart is read from the local cache — everything cached of the patient — so it opens at
//! once and offline ([`cached_chart`]); [`open_chart`] first brings the cache up to date with
//! the patient's record (`Patient/{id}/$everything`, page by page) and says whether that
//! worked: `stale` (with `since`, when the record was last confirmed) when the server could not
//! be reached. Writes queued offline are in the cache too, marked `pending`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consents::ConsentState;
use crate::model::{
    OBSERVATION_CATEGORY, clinical_time, concept_text, in_category, number, opt_str, str_of,
};
use crate::patients::{PatientSummary, patient_summary};
use crate::vitals::{self, VitalKind, VitalPoint, VitalSeries};
use crate::{DesktopError, FhirClient, Result};

/// An allergy or intolerance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allergy {
    /// The AllergyIntolerance's id.
    pub id: String,
    /// To what.
    pub substance: String,
    /// `low`, `high`, `unable-to-assess`.
    pub criticality: Option<String>,
    /// The first reaction's first manifestation.
    pub reaction: Option<String>,
}

/// A medication the patient is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationItem {
    /// The MedicationRequest's (or MedicationStatement's) id.
    pub id: String,
    /// The medication, in words.
    pub medication: String,
    /// The dosage, in words.
    pub dosage: Option<String>,
    /// The request's status.
    pub status: String,
    /// When prescribed.
    pub authored_on: Option<String>,
}

/// A problem (Condition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The Condition's id.
    pub id: String,
    /// The problem, in words.
    pub text: String,
    /// Since when.
    pub onset: Option<String>,
    /// The clinical status (`active`, `resolved`, ...).
    pub status: Option<String>,
}

/// An encounter of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncounterItem {
    /// The Encounter's id.
    pub id: String,
    /// Its type (or reason, or class) in words.
    #[serde(rename = "type")]
    pub kind: String,
    /// The class code (`AMB`, `IMP`, `EMER`).
    pub class: Option<String>,
    /// Start.
    pub start: Option<String>,
    /// End.
    pub end: Option<String>,
    /// `in-progress`, `finished`, ...
    pub status: String,
}

/// A lab result's flag against its reference range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabFlag {
    /// Above the range.
    H,
    /// Below the range.
    L,
    /// Within it.
    N,
}

/// A lab result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lab {
    /// The Observation's id.
    pub id: String,
    /// The test, in words.
    pub name: String,
    /// A numeric result.
    pub value: Option<f64>,
    /// A result in words (`valueString`, `valueCodeableConcept`).
    pub text: Option<String>,
    /// The unit.
    pub unit: Option<String>,
    /// The reference range's low end.
    pub low: Option<f64>,
    /// Its high end.
    pub high: Option<f64>,
    /// The value against the range.
    pub flag: Option<LabFlag>,
    /// When.
    pub time: Option<String>,
}

/// A document (DocumentReference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The DocumentReference's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// When.
    pub date: Option<String>,
    /// The first attachment's type.
    pub content_type: Option<String>,
}

/// A patient's chart, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    /// The patient.
    pub patient: PatientSummary,
    /// Not confirmed by the server just now.
    pub stale: bool,
    /// When the record was last confirmed, if stale (RFC 3339).
    pub since: Option<String>,
    /// Allergies and intolerances.
    pub allergies: Vec<Allergy>,
    /// Active medications.
    pub medications: Vec<MedicationItem>,
    /// Problems.
    pub problems: Vec<Problem>,
    /// Encounters, newest first.
    pub encounters: Vec<EncounterItem>,
    /// Vital-sign series.
    pub vitals: Vec<VitalSeries>,
    /// Lab results, newest first.
    pub labs: Vec<Lab>,
    /// Documents, newest first.
    pub documents: Vec<Document>,
    /// Self-reported readings waiting for verification.
    pub unverified: Vec<VitalPoint>,
}

/// Whether a resource was recorded in error (or withdrawn) and must not be shown.
fn withdrawn(resource: &Value) -> bool {
    matches!(
        resource["status"].as_str(),
        Some("entered-in-error" | "cancelled")
    ) || resource["verificationStatus"]["coding"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["code"] == "entered-in-error"))
}

/// The flag of `value` against `low`–`high` (either may be missing; none: no flag).
pub fn lab_flag(value: Option<f64>, low: Option<f64>, high: Option<f64>) -> Option<LabFlag> {
    let value = value?;
    match (low, high) {
        (None, None) => None,
        (_, Some(h)) if value > h => Some(LabFlag::H),
        (Some(l), _) if value < l => Some(LabFlag::L),
        _ => Some(LabFlag::N),
    }
}

/// The medication of a request or statement, in words.
fn medication_text(resource: &Value) -> String {
    concept_text(&resource["medicationCodeableConcept"])
        .or_else(|| opt_str(&resource["medicationReference"]["display"]))
        .or_else(|| {
            // A contained Medication (`#id`).
            let local = resource["medicationReference"]["reference"]
                .as_str()?
                .strip_prefix('#')?;
            resource["contained"]
                .as_array()?
                .iter()
                .find(|c| c["id"] == local)
                .and_then(|m| concept_text(&m["code"]))
        })
        .unwrap_or_else(|| "Medication".to_string())
}

/// A dosage in words: its `text`, else the dose and how often.
pub fn dosage_text(dosage: &Value) -> Option<String> {
    if let Some(text) = opt_str(&dosage["text"]) {
        return Some(text);
    }
    let dose = &dosage["doseAndRate"][0]["doseQuantity"];
    let repeat = &dosage["timing"]["repeat"];
    let amount = number(&dose["value"]).map(|v| {
        format!("{v} {}", dose["unit"].as_str().unwrap_or_default())
            .trim()
            .to_string()
    })?;
    match (
        repeat["frequency"].as_u64(),
        number(&repeat["period"]),
        repeat["periodUnit"].as_str(),
    ) {
        (Some(f), Some(p), Some(u)) => Some(format!("{amount}, {f} times every {p} {u}")),
        _ => Some(amount),
    }
}

fn allergy(r: &Value) -> Allergy {
    Allergy {
        id: str_of(&r["id"]),
        substance: concept_text(&r["code"]).unwrap_or_else(|| "Allergy".into()),
        criticality: opt_str(&r["criticality"]),
        reaction: concept_text(&r["reaction"][0]["manifestation"][0]),
    }
}

fn medication(r: &Value) -> MedicationItem {
    MedicationItem {
        id: str_of(&r["id"]),
        medication: medication_text(r),
        dosage: dosage_text(&r["dosageInstruction"][0]).or_else(|| dosage_text(&r["dosage"][0])),
        status: str_of(&r["status"]),
        authored_on: opt_str(&r["authoredOn"]).or_else(|| opt_str(&r["dateAsserted"])),
    }
}

fn problem(r: &Value) -> Problem {
    Problem {
        id: str_of(&r["id"]),
        text: concept_text(&r["code"]).unwrap_or_else(|| "Problem".into()),
        onset: opt_str(&r["onsetDateTime"]).or_else(|| opt_str(&r["onsetPeriod"]["start"])),
        status: r["clinicalStatus"]["coding"][0]["code"]
            .as_str()
            .map(str::to_string),
    }
}

fn encounter(r: &Value) -> EncounterItem {
    EncounterItem {
        id: str_of(&r["id"]),
        kind: concept_text(&r["type"][0])
            .or_else(|| concept_text(&r["reasonCode"][0]))
            .or_else(|| opt_str(&r["class"]["display"]))
            .unwrap_or_else(|| "Encounter".into()),
        class: opt_str(&r["class"]["code"]),
        start: opt_str(&r["period"]["start"]),
        end: opt_str(&r["period"]["end"]),
        status: str_of(&r["status"]),
    }
}

fn lab(r: &Value) -> Lab {
    let q = &r["valueQuantity"];
    let range = &r["referenceRange"][0];
    let value = number(&q["value"]);
    let low = number(&range["low"]["value"]);
    let high = number(&range["high"]["value"]);
    Lab {
        id: str_of(&r["id"]),
        name: concept_text(&r["code"]).unwrap_or_else(|| "Lab result".into()),
        value,
        text: opt_str(&r["valueString"]).or_else(|| concept_text(&r["valueCodeableConcept"])),
        unit: opt_str(&q["unit"]).or_else(|| opt_str(&q["code"])),
        low,
        high,
        flag: lab_flag(value, low, high),
        time: clinical_time(r),
    }
}

fn document(r: &Value) -> Document {
    let attachment = &r["content"][0]["attachment"];
    Document {
        id: str_of(&r["id"]),
        title: opt_str(&r["description"])
            .or_else(|| opt_str(&attachment["title"]))
            .or_else(|| concept_text(&r["type"]))
            .unwrap_or_else(|| "Document".into()),
        date: opt_str(&r["date"]).or_else(|| opt_str(&attachment["creation"])),
        content_type: opt_str(&attachment["contentType"]),
    }
}

/// Newest first by an optional time (missing times last).
fn newest_first<T>(items: &mut [T], time: impl Fn(&T) -> Option<&str>) {
    items.sort_by(|a, b| time(b).cmp(&time(a)));
}

/// The chart of `patient_id` from their resources; `pending` tells queued writes.
pub fn chart_of(
    patient_id: &str,
    resources: &[Value],
    pending: &HashSet<(String, String)>,
    consent: ConsentState,
) -> Option<Chart> {
    let of = |ty: &'static str| {
        resources
            .iter()
            .filter(move |r| r["resourceType"] == ty && !withdrawn(r))
    };
    let patient = of("Patient").find(|p| p["id"] == patient_id)?;
    let allergies = of("AllergyIntolerance").map(allergy).collect();
    let mut medications: Vec<MedicationItem> = of("MedicationRequest")
        .chain(of("MedicationStatement"))
        .filter(|r| matches!(r["status"].as_str(), Some("active" | "on-hold")))
        .map(medication)
        .collect();
    newest_first(&mut medications, |m| m.authored_on.as_deref());
    let problems = of("Condition").map(problem).collect();
    let mut encounters: Vec<EncounterItem> = of("Encounter").map(encounter).collect();
    newest_first(&mut encounters, |e| e.start.as_deref());
    let (vitals, unverified) = vitals::series(resources, pending);
    let mut labs: Vec<Lab> = of("Observation")
        .filter(|o| {
            in_category(o, OBSERVATION_CATEGORY, "laboratory") && VitalKind::of(o).is_none()
        })
        .map(lab)
        .collect();
    newest_first(&mut labs, |l| l.time.as_deref());
    let mut documents: Vec<Document> = of("DocumentReference").map(document).collect();
    newest_first(&mut documents, |d| d.date.as_deref());
    Some(Chart {
        patient: patient_summary(patient, consent),
        stale: false,
        since: None,
        allergies,
        medications,
        problems,
        encounters,
        vitals,
        labs,
        documents,
        unverified,
    })
}

/// Unix seconds as RFC 3339.
fn rfc3339(seconds: i64) -> Option<String> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(seconds, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The writes waiting in the outbox, as `(resourceType, id)`.
async fn pending_writes(client: &FhirClient) -> Result<HashSet<(String, String)>> {
    Ok(client
        .cache()
        .outbox()
        .pending()
        .await?
        .into_iter()
        .map(|p| (p.resource_type, p.id))
        .collect())
}

/// The chart as cached, at once (no request): `None` when nothing of the patient is cached.
/// It is `stale` — not yet confirmed — with `since` when the Patient was last confirmed.
pub async fn cached_chart(client: &FhirClient, patient_id: &str) -> Result<Option<Chart>> {
    let Some(cached) = client.cache().get("Patient", patient_id).await? else {
        return Ok(None);
    };
    let resources = client.cache().of_patient(patient_id).await?;
    let pending = pending_writes(client).await?;
    // Whoever could cache the chart had a consent in force; revalidation tells otherwise.
    Ok(
        chart_of(patient_id, &resources, &pending, ConsentState::Active).map(|mut chart| {
            chart.stale = true;
            chart.since = rfc3339(cached.fetched_at);
            chart
        }),
    )
}

/// Opens the chart: brings the patient's record into the cache (`$everything`), then reads the
/// chart from the cache. Offline, the cached chart, `stale` since its last confirmation
/// ([`DesktopError::Offline`] if nothing is cached). A patient who no longer shares their
/// record with the user is [`DesktopError::NotAvailable`], and their cached data is gone.
pub async fn open_chart(client: &FhirClient, patient_id: &str) -> Result<Chart> {
    let patient = [patient_id.to_string()];
    match client.sync_patients(&patient, None, &|_| {}).await {
        Ok(report) if report.evicted.iter().any(|p| p == patient_id) => {
            Err(DesktopError::NotAvailable(format!("Patient/{patient_id}")))
        }
        Ok(_) => {
            let resources = client.cache().of_patient(patient_id).await?;
            let pending = pending_writes(client).await?;
            chart_of(patient_id, &resources, &pending, ConsentState::Active).ok_or_else(|| {
                DesktopError::Protocol(format!(
                    "Patient/{patient_id}/$everything did not include the patient"
                ))
            })
        }
        Err(DesktopError::Offline(_)) => cached_chart(client, patient_id)
            .await?
            .ok_or_else(|| DesktopError::Offline(format!("Patient/{patient_id}"))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn labs_are_flagged_against_their_range() {
        assert_eq!(lab_flag(Some(7.9), Some(4.0), Some(5.6)), Some(LabFlag::H));
        assert_eq!(lab_flag(Some(3.1), Some(4.0), Some(5.6)), Some(LabFlag::L));
        assert_eq!(lab_flag(Some(5.0), Some(4.0), Some(5.6)), Some(LabFlag::N));
        assert_eq!(lab_flag(Some(5.0), None, Some(5.6)), Some(LabFlag::N));
        assert_eq!(lab_flag(Some(5.0), None, None), None);
        assert_eq!(lab_flag(None, Some(4.0), Some(5.6)), None);
        assert_eq!(serde_json::to_value(LabFlag::H).unwrap(), "H");
    }

    #[test]
    fn a_chart_gathers_the_patients_record() {
        let p = "p1";
        let subject = json!({"reference": "Patient/p1"});
        let resources = vec![
            json!({"resourceType": "Patient", "id": p, "name": [{"text": "Asha Rao"}], "gender": "female"}),
            json!({"resourceType": "AllergyIntolerance", "id": "a1", "patient": subject,
                   "code": {"text": "Penicillin"}, "criticality": "high",
                   "reaction": [{"manifestation": [{"text": "Hives"}]}]}),
            json!({"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
                   "subject": subject, "medicationCodeableConcept": {"text": "Metformin 500 mg"},
                   "authoredOn": "2026-11-01",
                   "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                          "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}]}),
            json!({"resourceType": "MedicationRequest", "id": "m2", "status": "stopped", "intent": "order",
                   "subject": subject, "medicationCodeableConcept": {"text": "Old"}}),
            json!({"resourceType": "Condition", "id": "c1", "subject": subject,
                   "code": {"text": "Type 2 diabetes"}, "onsetDateTime": "2020-01-01",
                   "clinicalStatus": {"coding": [{"code": "active"}]}}),
            json!({"resourceType": "Encounter", "id": "e1", "status": "finished", "subject": subject,
                   "class": {"code": "AMB", "display": "ambulatory"}, "period": {"start": "2026-10-01T09:00:00Z"}}),
            json!({"resourceType": "Encounter", "id": "e2", "status": "in-progress", "subject": subject,
                   "class": {"code": "AMB"}, "reasonCode": [{"text": "Follow-up"}],
                   "period": {"start": "2026-12-01T09:00:00Z"}}),
            json!({"resourceType": "Observation", "id": "l1", "status": "final", "subject": subject,
                   "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
                   "code": {"text": "HbA1c"}, "effectiveDateTime": "2026-11-20",
                   "valueQuantity": {"value": 7.9, "unit": "%"},
                   "referenceRange": [{"low": {"value": 4.0}, "high": {"value": 5.6}}]}),
            json!({"resourceType": "DocumentReference", "id": "d1", "status": "current", "subject": subject,
                   "description": "Discharge summary", "date": "2026-10-02T10:00:00Z",
                   "content": [{"attachment": {"contentType": "application/pdf"}}]}),
        ];
        let chart = chart_of(p, &resources, &HashSet::new(), ConsentState::Active).unwrap();
        assert_eq!(chart.patient.name, "Asha Rao");
        assert_eq!(chart.allergies[0].substance, "Penicillin");
        assert_eq!(chart.allergies[0].reaction.as_deref(), Some("Hives"));
        assert_eq!(chart.medications.len(), 1);
        assert_eq!(
            chart.medications[0].dosage.as_deref(),
            Some("1 tablet, 2 times every 1 d")
        );
        assert_eq!(chart.problems[0].status.as_deref(), Some("active"));
        let encounters: Vec<&str> = chart.encounters.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(encounters, ["e2", "e1"]);
        assert_eq!(chart.encounters[0].kind, "Follow-up");
        assert_eq!(chart.labs[0].flag, Some(LabFlag::H));
        assert_eq!(chart.documents[0].title, "Discharge summary");
        let ui = serde_json::to_value(&chart).unwrap();
        assert_eq!(ui["encounters"][1]["type"], "ambulatory");
        assert_eq!(ui["documents"][0]["contentType"], "application/pdf");
        assert_eq!(ui["medications"][0]["authoredOn"], "2026-11-01");
        assert!(chart_of("p9", &resources, &HashSet::new(), ConsentState::None).is_none());
    }
}
