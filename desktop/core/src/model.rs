//! The FHIR shapes of the clinical screens: the resources the desktop writes, built with
//! fhir-sdk's models and builders, and small readers of the JSON the server sends.
//!
//! **Every use of fhir-sdk in the workspace is in this file.** Its serde impls are generic and
//! very costly to compile where they are instantiated, so they are instantiated once: every
//! builder below ends in [`encode`], the one call of `serde_json::to_value` on a fhir-sdk
//! type (through the `Resource` enum, so each resource's `Serialize` is instantiated once for
//! `serde_json::Value` and nothing else). Nothing is *parsed* with fhir-sdk: what the server
//! sends is read as plain JSON by the readers at the end, because
//! - the cache must keep each resource exactly as the server sent it (fhir-sdk's decimals are
//!   `f64`, it drops unknown elements silently, and parsing would instantiate every
//!   `Deserialize` impl as well);
//! - the screens need a handful of elements, which a few lines of JSON access read directly.
//!
//! ## R4B (fhir-sdk) versus R4 4.0.1 (our server)
//! fhir-sdk 0.16 models R4B (4.3.0); there is no R4 model. For the resources built here —
//! Observation, Encounter, DocumentReference, MedicationRequest, MedicationDispense and a
//! contained Medication — the R4 and R4B definitions have the same elements, types, choice
//! types and required code sets (`../shared/reference/build-notes.md` §1.4), and the tests
//! write every one of them through the real server, which validates against the R4
//! StructureDefinitions. What differs in practice:
//! - **Decimals are `f64`**: `120` is sent as `120.0`, `5.1` as `5.1`; a decimal's written
//!   precision (`5.10`) cannot be expressed. Both are valid R4 decimals; the server stores what
//!   it receives, so a value keeps the `.0`.
//! - `MedicationRequest.status`/`.intent` and `MedicationDispense.status` are plain `String`s
//!   in fhir-sdk (not checked); the codes used here are R4's (`active`, `order`, `completed`).
//! - `Medication.batch.expirationDate` is a dateTime in both; a `YYYY-MM-DD` date is sent as is.
//! - fhir-sdk would serialize R4B-only elements if they were set (none are, here), and cannot
//!   represent an R4-only extension value (`valueMeta`), which is not used either.

use std::str::FromStr;

use fhir_sdk::r4b::codes::{DocumentReferenceStatus, EncounterStatus, ObservationStatus};
use fhir_sdk::r4b::resources::{
    DocumentReference, DocumentReferenceContent, DocumentReferenceContext, Encounter,
    EncounterParticipant, Medication, MedicationBatch, MedicationDispense,
    MedicationDispenseMedication, MedicationDispensePerformer, MedicationRequest,
    MedicationRequestDispenseRequest, MedicationRequestMedication, Observation,
    ObservationComponent, ObservationComponentValue, ObservationEffective, ObservationValue,
    Resource,
};
use fhir_sdk::r4b::types::{
    Attachment, CodeableConcept, Coding, Dosage, DosageDoseAndRate, DosageDoseAndRateDose,
    Duration, Period, Quantity, Reference, Timing, TimingRepeat,
};
use fhir_sdk::{Base64Binary, BuilderError, DateTime, Instant};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{DesktopError, Result};

/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// UCUM, the units of measure.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// The Observation category code system.
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// Encounter classes (v3 ActCode).
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// CuraNet's Health IDs (`HID-YYYY-XXXXXXXX`).
pub const HEALTH_ID_SYSTEM: &str = "https://curanet.in/fhir/sid/health-id";

/// What became of a write, as the UI receives it (the contract's `Written`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    /// The resource type written.
    pub resource_type: String,
    /// Its id: the server's, or a local `local-…` id while it is queued.
    pub id: String,
    /// Queued offline, to be sent by the next sync.
    pub queued: bool,
}

impl From<crate::Written> for Saved {
    fn from(written: crate::Written) -> Saved {
        let (resource, queued) = match &written {
            crate::Written::Sent(r) => (r, false),
            crate::Written::Queued { resource, .. } => (resource, true),
        };
        Saved {
            resource_type: str_of(&resource["resourceType"]),
            id: str_of(&resource["id"]),
            queued,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building (fhir-sdk)
// ---------------------------------------------------------------------------------------------

/// The one serialization of fhir-sdk types in the workspace (see the module doc).
fn encode(resource: Resource) -> Result<Value> {
    serde_json::to_value(&resource)
        .map_err(|e| DesktopError::Invalid(format!("the record cannot be encoded: {e}")))
}

/// A builder's result; a missing required element is a bug here, reported as invalid input.
fn built<T>(result: std::result::Result<T, BuilderError>) -> Result<T> {
    result.map_err(|e| DesktopError::Invalid(format!("incomplete FHIR resource: {e}")))
}

/// A measured amount in UCUM: `unit` is shown, `code` is the UCUM code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount<'a> {
    /// The number.
    pub value: f64,
    /// The unit as shown (`mmHg`).
    pub unit: &'a str,
    /// The UCUM code (`mm[Hg]`), when the unit is one.
    pub code: Option<&'a str>,
}

fn coding(system: &str, code: &str, display: Option<&str>) -> Result<Coding> {
    let mut b = Coding::builder()
        .system(system.to_string())
        .code(code.to_string());
    if let Some(d) = display {
        b = b.display(d.to_string());
    }
    built(b.build())
}

fn concept(system: &str, code: &str, display: &str) -> Result<CodeableConcept> {
    built(
        CodeableConcept::builder()
            .coding(vec![Some(coding(system, code, Some(display))?)])
            .text(display.to_string())
            .build(),
    )
}

fn text_concept(text: &str) -> Result<CodeableConcept> {
    built(CodeableConcept::builder().text(text.to_string()).build())
}

fn reference(to: &str) -> Result<Reference> {
    built(Reference::builder().reference(to.to_string()).build())
}

fn quantity(amount: Amount<'_>) -> Result<Quantity> {
    let mut b = Quantity::builder()
        .value(amount.value)
        .unit(amount.unit.to_string());
    if let Some(code) = amount.code {
        b = b.system(UCUM.to_string()).code(code.to_string());
    }
    built(b.build())
}

/// An RFC 3339 instant (`2026-12-05T09:30:00+05:30`).
fn instant(text: &str) -> Result<Instant> {
    Instant::from_str(text).map_err(|e| {
        DesktopError::Invalid(format!(
            "'{text}' is not a date and time with a zone (RFC 3339): {e}"
        ))
    })
}

/// A FHIR dateTime (a date, or an instant).
fn date_time(text: &str) -> Result<DateTime> {
    DateTime::from_str(text)
        .map_err(|e| DesktopError::Invalid(format!("'{text}' is not a FHIR date or dateTime: {e}")))
}

/// A LOINC-coded value or component of a vital sign.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured<'a> {
    /// The LOINC code.
    pub loinc: &'a str,
    /// Its display.
    pub display: &'a str,
    /// The value.
    pub amount: Amount<'a>,
}

/// A vital-signs Observation (category `vital-signs`, LOINC-coded, `final`) of `patient`,
/// measured by `performer` at `time`: `value` for a single measurement, `components` for a
/// panel (blood pressure: the panel code with systolic and diastolic components, no value).
pub fn vital_signs(
    patient: &str,
    performer: &str,
    code: (&str, &str),
    time: &str,
    value: Option<Amount<'_>>,
    components: &[Measured<'_>],
) -> Result<Value> {
    let mut b = Observation::builder()
        .status(ObservationStatus::Final)
        .category(vec![Some(concept(
            OBSERVATION_CATEGORY,
            "vital-signs",
            "Vital Signs",
        )?)])
        .code(concept(LOINC, code.0, code.1)?)
        .subject(reference(&format!("Patient/{patient}"))?)
        .effective(ObservationEffective::DateTime(DateTime::DateTime(instant(
            time,
        )?)))
        .performer(vec![Some(reference(performer)?)]);
    if let Some(v) = value {
        b = b.value(ObservationValue::Quantity(quantity(v)?));
    }
    let mut parts = Vec::with_capacity(components.len());
    for c in components {
        parts.push(Some(built(
            ObservationComponent::builder()
                .code(concept(LOINC, c.loinc, c.display)?)
                .value(ObservationComponentValue::Quantity(quantity(c.amount)?))
                .build(),
        )?));
    }
    if !parts.is_empty() {
        b = b.component(parts);
    }
    encode(Resource::Observation(built(b.build())?))
}

/// An ambulatory Encounter (class `AMB`) of `patient` with `practitioner`, `in-progress` since
/// `start`, for `reason` (free text).
pub fn ambulatory_encounter(
    patient: &str,
    practitioner: &str,
    reason: &str,
    start: &str,
) -> Result<Value> {
    let mut b = Encounter::builder()
        .status(EncounterStatus::InProgress)
        .class(coding(ACT_CODE, "AMB", Some("ambulatory"))?)
        .subject(reference(&format!("Patient/{patient}"))?)
        .participant(vec![Some(built(
            EncounterParticipant::builder()
                .individual(reference(practitioner)?)
                .build(),
        )?)])
        .period(built(
            Period::builder()
                .start(DateTime::DateTime(instant(start)?))
                .build(),
        )?);
    if !reason.trim().is_empty() {
        b = b.reason_code(vec![Some(text_concept(reason.trim())?)]);
    }
    encode(Resource::Encounter(built(b.build())?))
}

/// A clinical note as a DocumentReference (`current`, LOINC 11506-3 "Progress note") with the
/// text as a `text/plain` attachment, by `author`, about `patient`, within `encounter` if given.
///
/// Why a DocumentReference and not an Observation note: a note is a document of the record
/// (it has an author, a date and a text of any length), the chart lists DocumentReferences as
/// its documents, and `Observation.note` would need an observed `code` and value it does not
/// have.
pub fn progress_note(
    patient: &str,
    author: &str,
    encounter: Option<&str>,
    text: &str,
    date: &str,
) -> Result<Value> {
    let attachment = built(
        Attachment::builder()
            .content_type("text/plain; charset=utf-8".to_string())
            .data(Base64Binary(text.as_bytes().to_vec()))
            .title("Progress note".to_string())
            .creation(DateTime::DateTime(instant(date)?))
            .build(),
    )?;
    let mut b = DocumentReference::builder()
        .status(DocumentReferenceStatus::Current)
        .r#type(concept(LOINC, "11506-3", "Progress note")?)
        .subject(reference(&format!("Patient/{patient}"))?)
        .date(instant(date)?)
        .author(vec![Some(reference(author)?)])
        .description("Progress note".to_string())
        .content(vec![Some(built(
            DocumentReferenceContent::builder()
                .attachment(attachment)
                .build(),
        )?)]);
    if let Some(e) = encounter {
        b = b.context(built(
            DocumentReferenceContext::builder()
                .encounter(vec![Some(reference(&format!("Encounter/{e}"))?)])
                .build(),
        )?);
    }
    encode(Resource::DocumentReference(built(b.build())?))
}

/// What a prescription orders.
#[derive(Debug, Clone, PartialEq)]
pub struct Order<'a> {
    /// The patient's id.
    pub patient: &'a str,
    /// The prescriber (`Practitioner/x`).
    pub requester: &'a str,
    /// The medication, as free text.
    pub medication: &'a str,
    /// One dose.
    pub dose: f64,
    /// The dose's unit (`tablet`, `mg`).
    pub dose_unit: &'a str,
    /// Doses a day.
    pub times_per_day: u32,
    /// Days of treatment.
    pub days: u32,
    /// The dosage in words.
    pub instructions: &'a str,
    /// When prescribed (RFC 3339).
    pub authored_on: &'a str,
}

/// A MedicationRequest (`active`, `order`): the dosage as a timing (`times_per_day` a day),
/// one dose per intake, and a dispense request for the whole course.
pub fn medication_request(order: &Order<'_>) -> Result<Value> {
    let frequency = std::num::NonZeroU32::new(order.times_per_day).ok_or_else(|| {
        DesktopError::Invalid("a prescription is taken at least once a day".into())
    })?;
    if order.days == 0 || order.dose <= 0.0 || !order.dose.is_finite() {
        return Err(DesktopError::Invalid(
            "a prescription needs a positive dose and at least one day".into(),
        ));
    }
    let timing = built(
        Timing::builder()
            .repeat(built(
                TimingRepeat::builder()
                    .frequency(frequency)
                    .period(1.0)
                    .period_unit("d".to_string())
                    .build(),
            )?)
            .build(),
    )?;
    let dose = Amount {
        value: order.dose,
        unit: order.dose_unit,
        code: None,
    };
    let dosage = built(
        Dosage::builder()
            .text(order.instructions.to_string())
            .timing(timing)
            .dose_and_rate(vec![Some(built(
                DosageDoseAndRate::builder()
                    .dose(DosageDoseAndRateDose::Quantity(quantity(dose)?))
                    .build(),
            )?)])
            .build(),
    )?;
    let total = Amount {
        value: course_quantity(order.dose, order.times_per_day, order.days),
        ..dose
    };
    let supply = built(
        Duration::builder()
            .value(f64::from(order.days))
            .unit("days".to_string())
            .system(UCUM.to_string())
            .code("d".to_string())
            .build(),
    )?;
    let request = MedicationRequest::builder()
        .status("active".to_string())
        .intent("order".to_string())
        .medication(MedicationRequestMedication::CodeableConcept(text_concept(
            order.medication,
        )?))
        .subject(reference(&format!("Patient/{}", order.patient))?)
        .authored_on(date_time(order.authored_on)?)
        .requester(reference(order.requester)?)
        .dosage_instruction(vec![Some(dosage)])
        .dispense_request(built(
            MedicationRequestDispenseRequest::builder()
                .quantity(quantity(total)?)
                .expected_supply_duration(supply)
                .build(),
        )?);
    encode(Resource::MedicationRequest(built(request.build())?))
}

/// The quantity a course needs: `dose × times_per_day × days`.
pub fn course_quantity(dose: f64, times_per_day: u32, days: u32) -> f64 {
    dose * f64::from(times_per_day) * f64::from(days)
}

/// What a pharmacist hands over against a prescription.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover<'a> {
    /// The prescription (`MedicationRequest/x`).
    pub prescription: &'a str,
    /// The patient (`Patient/x`).
    pub patient: &'a str,
    /// The pharmacist (`Practitioner/x`).
    pub performer: &'a str,
    /// The medication, as free text (the prescription's).
    pub medication: &'a str,
    /// How much, in `unit`.
    pub quantity: f64,
    /// The unit.
    pub unit: &'a str,
    /// The batch's lot number.
    pub lot: &'a str,
    /// The batch's expiry (`YYYY-MM-DD`).
    pub expiry: &'a str,
    /// When handed over (RFC 3339).
    pub when: &'a str,
}

/// The id of the contained Medication that carries the batch.
const BATCH_MEDICATION: &str = "batch";

/// A `completed` MedicationDispense authorized by the prescription.
///
/// Where the batch goes: in R4 the lot number and expiry live in `Medication.batch`
/// (`MedicationDispense` has no batch element), so the dispense names a *contained* Medication
/// (`#batch`) with the prescription's medication text and `batch.lotNumber` /
/// `batch.expirationDate`. This needs no server-side Medication catalogue and no extension the
/// server would have to know, and the batch travels with the dispense it belongs to.
pub fn medication_dispense(handover: &Handover<'_>) -> Result<Value> {
    if handover.quantity <= 0.0 || !handover.quantity.is_finite() {
        return Err(DesktopError::Invalid(
            "the quantity handed over must be positive".into(),
        ));
    }
    if handover.lot.trim().is_empty() {
        return Err(DesktopError::Invalid("the batch number is missing".into()));
    }
    let medication = built(
        Medication::builder()
            .id(BATCH_MEDICATION.to_string())
            .code(text_concept(handover.medication)?)
            .batch(built(
                MedicationBatch::builder()
                    .lot_number(handover.lot.trim().to_string())
                    .expiration_date(date_time(handover.expiry.trim())?)
                    .build(),
            )?)
            .build(),
    )?;
    let dispense = MedicationDispense::builder()
        .contained(vec![Resource::Medication(medication)])
        .status("completed".to_string())
        .medication(MedicationDispenseMedication::Reference(reference(
            &format!("#{BATCH_MEDICATION}"),
        )?))
        .subject(reference(handover.patient)?)
        .performer(vec![Some(built(
            MedicationDispensePerformer::builder()
                .actor(reference(handover.performer)?)
                .build(),
        )?)])
        .authorizing_prescription(vec![Some(reference(handover.prescription)?)])
        .quantity(quantity(Amount {
            value: handover.quantity,
            unit: handover.unit,
            code: None,
        })?)
        .when_handed_over(date_time(handover.when)?);
    encode(Resource::MedicationDispense(built(dispense.build())?))
}

// ---------------------------------------------------------------------------------------------
// Reading (plain JSON, as the server sent it)
// ---------------------------------------------------------------------------------------------

/// A JSON string, or empty.
pub fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// A JSON string, if it is one and not empty.
pub fn opt_str(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// A JSON number (decimals sent as numbers).
pub fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// The words of a CodeableConcept: its `text`, else its first coding's display, else code.
pub fn concept_text(concept: &Value) -> Option<String> {
    opt_str(&concept["text"]).or_else(|| {
        concept["coding"]
            .as_array()?
            .iter()
            .find_map(|c| opt_str(&c["display"]).or_else(|| opt_str(&c["code"])))
    })
}

/// Whether a CodeableConcept carries `system|code`.
pub fn has_code(concept: &Value, system: &str, code: &str) -> bool {
    concept["coding"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["system"] == system && c["code"] == code)
    })
}

/// Whether a CodeableConcept carries one of `codes` of `system`; the first that does.
pub fn code_in<'a>(concept: &Value, system: &str, codes: &[&'a str]) -> Option<&'a str> {
    codes.iter().copied().find(|c| has_code(concept, system, c))
}

/// Whether any of a resource's `category` concepts carries `system|code`.
pub fn in_category(resource: &Value, system: &str, code: &str) -> bool {
    resource["category"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| has_code(c, system, code)))
        || has_code(&resource["category"], system, code)
}

/// The id of a reference to `resource_type` (`Patient/x`, an absolute URL, or `…/_history/n`).
pub fn reference_id(reference: &Value, resource_type: &str) -> Option<String> {
    let r = reference["reference"].as_str()?;
    let (_, rest) = r.rsplit_once(&format!("{resource_type}/"))?;
    let id = rest.split('/').next().unwrap_or(rest);
    (!id.is_empty()).then(|| id.to_string())
}

/// When a clinical resource happened: `effective[x]`, `onset[x]`, `period.start`, `issued`,
/// `authoredOn`, `recordedDate` or `date`, the first present.
pub fn clinical_time(resource: &Value) -> Option<String> {
    [
        &resource["effectiveDateTime"],
        &resource["effectiveInstant"],
        &resource["effectivePeriod"]["start"],
        &resource["onsetDateTime"],
        &resource["onsetPeriod"]["start"],
        &resource["period"]["start"],
        &resource["issued"],
        &resource["authoredOn"],
        &resource["recordedDate"],
        &resource["date"],
    ]
    .into_iter()
    .find_map(opt_str)
}

/// A person's name as shown: the `text` of their first name, else given names and family.
pub fn person_name(person: &Value) -> Option<String> {
    let names = person["name"].as_array()?;
    let name = names
        .iter()
        .find(|n| n["use"] == "official")
        .or_else(|| names.first())?;
    if let Some(text) = opt_str(&name["text"]) {
        return Some(text);
    }
    let mut parts: Vec<&str> = name["given"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if let Some(family) = name["family"].as_str() {
        parts.push(family);
    }
    let joined = parts.join(" ");
    (!joined.trim().is_empty()).then(|| joined.trim().to_string())
}

/// A Patient's Health ID.
pub fn health_id(patient: &Value) -> Option<String> {
    patient["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == HEALTH_ID_SYSTEM)
        .and_then(|i| opt_str(&i["value"]))
}

/// A person's first phone number.
pub fn phone(person: &Value) -> Option<String> {
    person["telecom"]
        .as_array()?
        .iter()
        .find(|t| t["system"] == "phone")
        .and_then(|t| opt_str(&t["value"]))
}

/// Now, as a FHIR instant (UTC, whole seconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_blood_pressure_is_a_panel_with_two_components_in_ucum() {
        let mm = |value| Amount {
            value,
            unit: "mmHg",
            code: Some("mm[Hg]"),
        };
        let v = vital_signs(
            "p1",
            "Practitioner/d1",
            ("85354-9", "Blood pressure panel"),
            "2026-12-05T09:30:00Z",
            None,
            &[
                Measured {
                    loinc: "8480-6",
                    display: "Systolic blood pressure",
                    amount: mm(128.0),
                },
                Measured {
                    loinc: "8462-4",
                    display: "Diastolic blood pressure",
                    amount: mm(84.0),
                },
            ],
        )
        .unwrap();
        assert_eq!(v["resourceType"], "Observation");
        assert_eq!(v["status"], "final");
        assert!(in_category(&v, OBSERVATION_CATEGORY, "vital-signs"));
        assert!(has_code(&v["code"], LOINC, "85354-9"));
        assert_eq!(v["subject"]["reference"], "Patient/p1");
        assert_eq!(v["performer"][0]["reference"], "Practitioner/d1");
        assert_eq!(v["effectiveDateTime"], "2026-12-05T09:30:00Z");
        assert_eq!(
            number(&v["component"][0]["valueQuantity"]["value"]),
            Some(128.0)
        );
        assert_eq!(v["component"][1]["valueQuantity"]["code"], "mm[Hg]");
        assert_eq!(v["component"][1]["valueQuantity"]["system"], UCUM);
        assert!(v.get("valueQuantity").is_none());
    }

    #[test]
    fn a_prescription_orders_the_whole_course() {
        let v = medication_request(&Order {
            patient: "p1",
            requester: "Practitioner/d1",
            medication: "Amoxicillin 500 mg capsule",
            dose: 1.0,
            dose_unit: "capsule",
            times_per_day: 3,
            days: 5,
            instructions: "1 capsule 3 times a day for 5 days",
            authored_on: "2026-12-05T09:30:00Z",
        })
        .unwrap();
        assert_eq!(v["status"], "active");
        assert_eq!(v["intent"], "order");
        assert_eq!(
            v["medicationCodeableConcept"]["text"],
            "Amoxicillin 500 mg capsule"
        );
        let dosage = &v["dosageInstruction"][0];
        assert_eq!(dosage["timing"]["repeat"]["frequency"], 3);
        assert_eq!(number(&dosage["timing"]["repeat"]["period"]), Some(1.0));
        assert_eq!(dosage["timing"]["repeat"]["periodUnit"], "d");
        assert_eq!(
            number(&dosage["doseAndRate"][0]["doseQuantity"]["value"]),
            Some(1.0)
        );
        assert_eq!(
            number(&v["dispenseRequest"]["quantity"]["value"]),
            Some(15.0)
        );
        assert_eq!(v["dispenseRequest"]["expectedSupplyDuration"]["code"], "d");
        assert!(matches!(
            medication_request(&Order {
                times_per_day: 0,
                ..Order {
                    patient: "p1",
                    requester: "Practitioner/d1",
                    medication: "x",
                    dose: 1.0,
                    dose_unit: "tablet",
                    times_per_day: 1,
                    days: 1,
                    instructions: "",
                    authored_on: "2026-12-05T09:30:00Z",
                }
            }),
            Err(DesktopError::Invalid(_))
        ));
    }

    #[test]
    fn a_dispense_carries_its_batch_in_a_contained_medication() {
        let v = medication_dispense(&Handover {
            prescription: "MedicationRequest/rx1",
            patient: "Patient/p1",
            performer: "Practitioner/ph1",
            medication: "Amoxicillin 500 mg capsule",
            quantity: 6.0,
            unit: "capsule",
            lot: "LOT-42",
            expiry: "2027-06-30",
            when: "2026-12-05T10:00:00Z",
        })
        .unwrap();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["medicationReference"]["reference"], "#batch");
        assert_eq!(v["contained"][0]["resourceType"], "Medication");
        assert_eq!(v["contained"][0]["id"], "batch");
        assert_eq!(v["contained"][0]["batch"]["lotNumber"], "LOT-42");
        assert_eq!(v["contained"][0]["batch"]["expirationDate"], "2027-06-30");
        assert_eq!(
            v["authorizingPrescription"][0]["reference"],
            "MedicationRequest/rx1"
        );
        assert_eq!(number(&v["quantity"]["value"]), Some(6.0));
    }

    #[test]
    fn a_note_is_a_plain_text_document() {
        let v = progress_note(
            "p1",
            "Practitioner/d1",
            Some("e1"),
            "Feels better.",
            "2026-12-05T10:00:00Z",
        )
        .unwrap();
        assert_eq!(v["resourceType"], "DocumentReference");
        assert_eq!(v["status"], "current");
        assert_eq!(
            v["content"][0]["attachment"]["contentType"],
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            v["content"][0]["attachment"]["data"],
            "RmVlbHMgYmV0dGVyLg=="
        );
        assert_eq!(v["context"]["encounter"][0]["reference"], "Encounter/e1");
    }

    #[test]
    fn readers_take_what_the_screens_show() {
        let p = json!({"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": HEALTH_ID_SYSTEM, "value": "HID-2026-ABCDEFGH"}],
            "name": [{"given": ["Asha", "K"], "family": "Rao"}],
            "telecom": [{"system": "email", "value": "a@x"}, {"system": "phone", "value": "+91 98"}]});
        assert_eq!(person_name(&p).as_deref(), Some("Asha K Rao"));
        assert_eq!(health_id(&p).as_deref(), Some("HID-2026-ABCDEFGH"));
        assert_eq!(phone(&p).as_deref(), Some("+91 98"));
        assert_eq!(
            reference_id(
                &json!({"reference": "http://x/fhir/Patient/p1/_history/2"}),
                "Patient"
            )
            .as_deref(),
            Some("p1")
        );
        assert_eq!(
            concept_text(&json!({"coding": [{"code": "x", "display": "Peanut"}]})).as_deref(),
            Some("Peanut")
        );
        assert!(instant("yesterday").is_err());
    }
}
