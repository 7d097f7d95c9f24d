//! The pharmacy's desk: the prescriptions the pharmacy may see, looking one up, dispensing
//! (partly or in full, each handover a MedicationDispense with its batch), holding or
//! completing a prescription, and the pharmacist's dispensing history.
//!
//! The server narrows a pharmacist's searches to the patients who consented to them or their
//! pharmacy, so a plain search of active MedicationRequests is the pharmacy's queue. What has
//! been dispensed against a prescription is the sum of its `completed` MedicationDispenses
//! (`authorizingPrescription`), in the prescription's unit.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chart::dosage_text;
use crate::consents::cached_name;
use crate::model::{
    self, Handover, Saved, concept_text, health_id, number, opt_str, person_name, reference_id,
    str_of,
};
use crate::patients::PatientQuery;
use crate::{DesktopError, FhirClient, Result};

/// How many prescriptions' dispenses are asked for in one search (the URL stays short).
const CHUNK: usize = 40;

/// A prescription as the pharmacy lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prescription {
    /// The MedicationRequest's id.
    pub id: String,
    /// The patient's id.
    pub patient_id: String,
    /// Their name, when known.
    pub patient_name: Option<String>,
    /// Their Health ID, when known.
    pub health_id: Option<String>,
    /// The medication, in words.
    pub medication: String,
    /// The dosage, in words.
    pub dosage: Option<String>,
    /// The quantity to dispense for the whole course.
    pub quantity: Option<f64>,
    /// Its unit.
    pub unit: Option<String>,
    /// How much has been dispensed so far.
    pub dispensed: f64,
    /// `active`, `on-hold`, `completed`, ...
    pub status: String,
    /// When prescribed.
    pub authored_on: Option<String>,
    /// Who prescribed (the requester's display, else reference).
    pub prescriber: Option<String>,
}

/// A handover as the history lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispense {
    /// The MedicationDispense's id.
    pub id: String,
    /// The prescription it was dispensed against.
    pub prescription_id: Option<String>,
    /// The patient's name, when known.
    pub patient_name: Option<String>,
    /// The medication, in words.
    pub medication: String,
    /// How much.
    pub quantity: Option<f64>,
    /// Its unit.
    pub unit: Option<String>,
    /// The batch's lot number.
    pub batch: Option<String>,
    /// The batch's expiry.
    pub expiry: Option<String>,
    /// When handed over.
    pub when: Option<String>,
    /// `completed`, `entered-in-error`, ...
    pub status: String,
}

/// What the pharmacist hands over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DispenseInput {
    /// How much.
    pub quantity: f64,
    /// Its unit (the prescription's).
    pub unit: String,
    /// The batch's lot number.
    pub batch: String,
    /// The batch's expiry, `YYYY-MM-DD`.
    pub expiry: String,
}

/// The statuses a pharmacist sets on a prescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrescriptionStatus {
    /// Fully dispensed, or not to be dispensed further.
    Completed,
    /// Paused (a question to the prescriber, stock...).
    OnHold,
}

impl PrescriptionStatus {
    /// The MedicationRequest status code.
    pub fn code(self) -> &'static str {
        match self {
            PrescriptionStatus::Completed => "completed",
            PrescriptionStatus::OnHold => "on-hold",
        }
    }
}

/// The medication of a request or dispense, in words (a contained Medication's code too).
fn medication_text(resource: &Value) -> String {
    concept_text(&resource["medicationCodeableConcept"])
        .or_else(|| contained_medication(resource).and_then(|m| concept_text(&m["code"])))
        .or_else(|| opt_str(&resource["medicationReference"]["display"]))
        .unwrap_or_else(|| "Medication".into())
}

/// The contained Medication a resource's `medicationReference` (`#id`) names.
fn contained_medication(resource: &Value) -> Option<&Value> {
    let local = resource["medicationReference"]["reference"]
        .as_str()?
        .strip_prefix('#')?;
    resource["contained"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == local)
}

/// How much has been dispensed against each prescription: the sum of the `completed`
/// dispenses' quantities, by MedicationRequest id.
pub fn dispensed_totals(dispenses: &[Value]) -> HashMap<String, f64> {
    let mut totals = HashMap::new();
    for d in dispenses.iter().filter(|d| d["status"] == "completed") {
        let quantity = number(&d["quantity"]["value"]).unwrap_or(0.0);
        for rx in d["authorizingPrescription"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(id) = reference_id(rx, "MedicationRequest") {
                *totals.entry(id).or_insert(0.0) += quantity;
            }
        }
    }
    totals
}

/// A MedicationRequest as the pharmacy lists it; `patient` when known.
pub fn prescription(request: &Value, patient: Option<&Value>, dispensed: f64) -> Prescription {
    let quantity = &request["dispenseRequest"]["quantity"];
    Prescription {
        id: str_of(&request["id"]),
        patient_id: reference_id(&request["subject"], "Patient").unwrap_or_default(),
        patient_name: patient.and_then(person_name),
        health_id: patient.and_then(health_id),
        medication: medication_text(request),
        dosage: dosage_text(&request["dosageInstruction"][0]),
        quantity: number(&quantity["value"]),
        unit: opt_str(&quantity["unit"]).or_else(|| opt_str(&quantity["code"])),
        dispensed,
        status: str_of(&request["status"]),
        authored_on: opt_str(&request["authoredOn"]),
        prescriber: opt_str(&request["requester"]["display"])
            .or_else(|| opt_str(&request["requester"]["reference"])),
    }
}

/// A MedicationDispense as the history lists it.
pub fn dispense_view(dispense: &Value, patient_name: Option<String>) -> Dispense {
    let batch = contained_medication(dispense).map(|m| &m["batch"]);
    Dispense {
        id: str_of(&dispense["id"]),
        prescription_id: reference_id(&dispense["authorizingPrescription"][0], "MedicationRequest"),
        patient_name,
        medication: medication_text(dispense),
        quantity: number(&dispense["quantity"]["value"]),
        unit: opt_str(&dispense["quantity"]["unit"]),
        batch: batch.and_then(|b| opt_str(&b["lotNumber"])),
        expiry: batch.and_then(|b| opt_str(&b["expirationDate"])),
        when: opt_str(&dispense["whenHandedOver"]).or_else(|| opt_str(&dispense["whenPrepared"])),
        status: str_of(&dispense["status"]),
    }
}

/// A patient for a listing: as included in the search, else read (cached and revalidated);
/// `None` when it cannot be had (not shared, or offline and not cached).
async fn patient_for(
    client: &FhirClient,
    included: &crate::search::Found,
    id: &str,
) -> Result<Option<Value>> {
    if let Some(p) = included.resource("Patient", id) {
        return Ok(Some(p.clone()));
    }
    match client.read("Patient", id).await {
        Ok(read) => Ok(Some(read.resource)),
        Err(
            DesktopError::NotAvailable(_) | DesktopError::Offline(_) | DesktopError::Refused { .. },
        ) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The prescriptions of a search, with their patients and what was dispensed.
async fn prescriptions(
    client: &FhirClient,
    found: &crate::search::Found,
) -> Result<Vec<Prescription>> {
    let requests: Vec<&Value> = found
        .matches
        .iter()
        .filter(|r| r["resourceType"] == "MedicationRequest")
        .collect();
    let ids: Vec<String> = requests.iter().map(|r| str_of(&r["id"])).collect();
    let mut dispenses = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let joined = chunk.join(",");
        let page = client
            .search(
                "MedicationDispense",
                &[("prescription", &joined), ("_count", "500")],
            )
            .await?;
        dispenses.extend(page.matches);
    }
    let totals = dispensed_totals(&dispenses);
    let mut patients: HashMap<String, Option<Value>> = HashMap::new();
    let mut out = Vec::with_capacity(requests.len());
    for request in requests {
        let patient_id = reference_id(&request["subject"], "Patient").unwrap_or_default();
        if !patients.contains_key(&patient_id) {
            let patient = patient_for(client, found, &patient_id).await?;
            patients.insert(patient_id.clone(), patient);
        }
        let id = str_of(&request["id"]);
        out.push(prescription(
            request,
            patients.get(&patient_id).and_then(Option::as_ref),
            totals.get(&id).copied().unwrap_or(0.0),
        ));
    }
    out.sort_by(|a, b| b.authored_on.cmp(&a.authored_on));
    Ok(out)
}

/// The pharmacy's queue: the active prescriptions of the patients who share them with the
/// pharmacist or their pharmacy, newest first, with what was dispensed so far.
pub async fn pharmacy_queue(client: &FhirClient) -> Result<Vec<Prescription>> {
    let found = client
        .search(
            "MedicationRequest",
            &[
                ("status", "active"),
                ("_include", "MedicationRequest:patient"),
                ("_count", "200"),
            ],
        )
        .await?;
    prescriptions(client, &found).await
}

/// Looks up prescriptions by the patient's Health ID (all their prescriptions the pharmacy
/// may see) or by a prescription's id.
pub async fn lookup_prescriptions(client: &FhirClient, query: &str) -> Result<Vec<Prescription>> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let found = match PatientQuery::parse(query) {
        Some(hid @ PatientQuery::HealthId(_)) => {
            let params = hid.params();
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let patients = client.search("Patient", &pairs).await?;
            let mut found = crate::search::Found::default();
            for patient in &patients.matches {
                let id = str_of(&patient["id"]);
                let page = client
                    .search("MedicationRequest", &[("patient", &id), ("_count", "200")])
                    .await?;
                found.matches.extend(page.matches);
            }
            found
        }
        _ => match client.read("MedicationRequest", query).await {
            Ok(read) => crate::search::Found {
                matches: vec![read.resource],
                included: Vec::new(),
            },
            Err(DesktopError::NotAvailable(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        },
    };
    prescriptions(client, &found).await
}

/// Dispenses against an active prescription: a `completed` MedicationDispense by `user`
/// (`Practitioner/x`) of `d.quantity` (part of the course, or the rest), with the batch in a
/// contained Medication (why: [`crate::model::medication_dispense`]). The prescription stays
/// active; [`set_prescription_status`] completes it.
pub async fn dispense(
    client: &FhirClient,
    user: &str,
    prescription_id: &str,
    d: &DispenseInput,
) -> Result<Saved> {
    let request = client
        .read("MedicationRequest", prescription_id)
        .await?
        .resource;
    if request["status"] != "active" {
        return Err(DesktopError::Invalid(format!(
            "the prescription is {}: only an active prescription is dispensed",
            str_of(&request["status"])
        )));
    }
    let patient = reference_id(&request["subject"], "Patient")
        .ok_or_else(|| DesktopError::Protocol("the prescription names no patient".into()))?;
    let medication = medication_text(&request);
    let dispense = model::medication_dispense(&Handover {
        prescription: &format!("MedicationRequest/{prescription_id}"),
        patient: &format!("Patient/{patient}"),
        performer: user,
        medication: &medication,
        quantity: d.quantity,
        unit: d.unit.trim(),
        lot: &d.batch,
        expiry: &d.expiry,
        when: &model::now(),
    })?;
    Ok(client.create(dispense).await?.into())
}

/// Completes or holds a prescription, with the reason in words (`statusReason.text`).
pub async fn set_prescription_status(
    client: &FhirClient,
    prescription_id: &str,
    status: PrescriptionStatus,
    reason: Option<&str>,
) -> Result<Saved> {
    let mut request = client
        .read("MedicationRequest", prescription_id)
        .await?
        .resource;
    request["status"] = Value::String(status.code().into());
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => request["statusReason"] = serde_json::json!({"text": r}),
        None => {
            if let Some(o) = request.as_object_mut() {
                o.remove("statusReason");
            }
        }
    }
    Ok(client.update(request).await?.into())
}

/// What `user` (`Practitioner/x`) dispensed, newest first.
pub async fn dispense_history(client: &FhirClient, user: &str) -> Result<Vec<Dispense>> {
    let found = client
        .search(
            "MedicationDispense",
            &[("performer", user), ("_count", "200")],
        )
        .await?;
    let mut out = Vec::with_capacity(found.matches.len());
    for d in &found.matches {
        let name = match reference_id(&d["subject"], "Patient") {
            Some(p) => cached_name(client, &p).await?,
            None => None,
        };
        out.push(dispense_view(d, name));
    }
    out.sort_by(|a, b| b.when.cmp(&a.when));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn handed(rx: &str, quantity: f64, status: &str) -> Value {
        let mut d = model::medication_dispense(&Handover {
            prescription: &format!("MedicationRequest/{rx}"),
            patient: "Patient/p1",
            performer: "Practitioner/ph",
            medication: "Amoxicillin",
            quantity,
            unit: "capsule",
            lot: "LOT-1",
            expiry: "2027-06-30",
            when: "2026-12-05T10:00:00Z",
        })
        .unwrap();
        d["status"] = json!(status);
        d
    }

    #[test]
    fn what_was_dispensed_adds_up_per_prescription() {
        let all = [
            handed("rx1", 6.0, "completed"),
            handed("rx1", 4.0, "completed"),
            handed("rx1", 5.0, "entered-in-error"),
            handed("rx2", 1.0, "completed"),
        ];
        let totals = dispensed_totals(&all);
        assert_eq!(totals.get("rx1"), Some(&10.0));
        assert_eq!(totals.get("rx2"), Some(&1.0));
        let view = dispense_view(&all[0], Some("Asha Rao".into()));
        assert_eq!(view.batch.as_deref(), Some("LOT-1"));
        assert_eq!(view.expiry.as_deref(), Some("2027-06-30"));
        assert_eq!(view.medication, "Amoxicillin");
        assert_eq!(view.prescription_id.as_deref(), Some("rx1"));
    }

    #[test]
    fn a_prescription_lists_its_course_and_patient() {
        let rx = model::medication_request(&model::Order {
            patient: "p1",
            requester: "Practitioner/d1",
            medication: "Amoxicillin 500 mg",
            dose: 1.0,
            dose_unit: "capsule",
            times_per_day: 3,
            days: 5,
            instructions: "1 capsule 3 times a day for 5 days",
            authored_on: "2026-12-05T09:30:00Z",
        })
        .unwrap();
        let patient = json!({"resourceType": "Patient", "id": "p1", "name": [{"text": "Asha Rao"}],
            "identifier": [{"system": model::HEALTH_ID_SYSTEM, "value": "HID-2026-ABCDEFGH"}]});
        let view = prescription(&rx, Some(&patient), 6.0);
        assert_eq!(view.patient_id, "p1");
        assert_eq!(view.health_id.as_deref(), Some("HID-2026-ABCDEFGH"));
        assert_eq!(
            (view.quantity, view.unit.as_deref()),
            (Some(15.0), Some("capsule"))
        );
        assert_eq!(view.dispensed, 6.0);
        assert_eq!(view.prescriber.as_deref(), Some("Practitioner/d1"));
        assert_eq!(
            serde_json::to_value(PrescriptionStatus::OnHold).unwrap(),
            "on-hold"
        );
    }
}
