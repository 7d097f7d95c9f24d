//! The doctor's desktop against a real server (tokens required): find a patient by Health ID,
//! request consent, the patient approves, the chart opens with the record (allergy,
//! medication, blood pressures, an out-of-range lab, a self-reported reading to verify);
//! record vitals, start an encounter, write a note, prescribe, work the day's appointments;
//! then offline, a reading is queued and the chart shows it pending.

mod common;

use common::Clinic;
use curanet_desktop_core::appointments::{
    AppointmentAction, appointment_action, appointments_today,
};
use curanet_desktop_core::chart::{LabFlag, open_chart};
use curanet_desktop_core::consents::{ConsentState, pending_consents, request_consent};
use curanet_desktop_core::encounters::{add_note, start_encounter};
use curanet_desktop_core::patients::find_patients;
use curanet_desktop_core::prescriptions::{RxInput, prescribe};
use curanet_desktop_core::vitals::{VitalInput, VitalKind, record_vital, verify_observation};
use serde_json::{Value, json};

const LOINC: &str = "http://loinc.org";

fn bp(patient: &str, doctor: &str, time: &str, systolic: u32, diastolic: u32) -> Value {
    let component = |code: &str, value: u32| {
        json!({"code": {"coding": [{"system": LOINC, "code": code}]},
               "valueQuantity": {"value": value, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}})
    };
    json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}], "text": "Blood pressure"},
        "subject": {"reference": patient}, "performer": [{"reference": doctor}],
        "effectiveDateTime": time,
        "component": [component("8480-6", systolic), component("8462-4", diastolic)]})
}

/// Asha's record as other systems left it.
async fn seed_record(clinic: &Clinic) -> String {
    let p = clinic.patient.reference.as_str();
    let dr = clinic.doctor.reference.as_str();
    clinic
        .seed(json!({"resourceType": "AllergyIntolerance", "patient": {"reference": p},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "code": {"text": "Penicillin"}, "criticality": "high",
            "reaction": [{"manifestation": [{"text": "Hives"}]}]}))
        .await;
    clinic
        .seed(json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "subject": {"reference": p}, "medicationCodeableConcept": {"text": "Metformin 500 mg tablet"},
            "authoredOn": "2026-11-01", "dosageInstruction": [{"text": "1 tablet twice a day"}]}))
        .await;
    clinic
        .seed(json!({"resourceType": "Condition", "subject": {"reference": p},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"text": "Type 2 diabetes mellitus"}, "onsetDateTime": "2020-03-01"}))
        .await;
    clinic
        .seed(bp(p, dr, "2026-11-20T09:00:00Z", 142, 92))
        .await;
    clinic
        .seed(bp(p, dr, "2026-11-27T09:00:00Z", 136, 88))
        .await;
    clinic
        .seed(json!({"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": "4548-4"}], "text": "HbA1c"},
            "subject": {"reference": p}, "effectiveDateTime": "2026-11-20T08:00:00Z",
            "valueQuantity": {"value": 7.9, "unit": "%"},
            "referenceRange": [{"low": {"value": 4.0, "unit": "%"}, "high": {"value": 5.6, "unit": "%"}}]}))
        .await;
    // Asha's own glucose reading from her phone: preliminary, performed by herself.
    clinic
        .seed(json!({"resourceType": "Observation", "status": "preliminary",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": "2339-0"}], "text": "Glucose"},
            "subject": {"reference": p}, "performer": [{"reference": p}],
            "effectiveDateTime": "2026-12-01T07:30:00Z",
            "valueQuantity": {"value": 148, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_finds_asks_charts_records_and_keeps_working_offline() {
    let clinic = Clinic::start("desktop_hospital").await;
    let glucose_id = seed_record(&clinic).await;
    let hid = clinic.health_id().await;
    let p = clinic.patient.id().to_string();
    let dr = clinic.doctor.reference.clone();
    let desk = clinic.desktop(&clinic.doctor).await;

    // Found by Health ID without consent: the lookup tells who it is, nothing more.
    let found = find_patients(&desk, &hid.to_lowercase()).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, p);
    assert_eq!(found[0].name, "Asha Rao");
    assert_eq!(found[0].health_id.as_deref(), Some(hid.as_str()));
    assert_eq!(found[0].consent, ConsentState::None);
    // A name search finds only patients who consented.
    assert!(find_patients(&desk, "Asha").await.unwrap().is_empty());
    assert!(open_chart(&desk, &p).await.is_err());

    // The doctor asks; the request waits for Asha.
    let asked = request_consent(&desk, &p, 30).await.unwrap();
    assert_eq!(
        (asked.status.as_str(), asked.patient_id.as_str()),
        ("proposed", p.as_str())
    );
    assert!(asked.end.is_some());
    // The refused chart evicted what was cached of her; the lookup brings her name back.
    let found = find_patients(&desk, &hid).await.unwrap();
    assert_eq!(found[0].consent, ConsentState::Pending);
    let pending = pending_consents(&desk, &dr).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].patient_name.as_deref(), Some("Asha Rao"));

    // Asha approves: the chart opens with her record.
    let approved = clinic.approve(&asked.id).await;
    assert_eq!(approved["status"], "active");
    assert!(pending_consents(&desk, &dr).await.unwrap().is_empty());
    let found = find_patients(&desk, &hid).await.unwrap();
    assert_eq!(found[0].consent, ConsentState::Active);
    assert_eq!(find_patients(&desk, "Asha").await.unwrap().len(), 1);

    let chart = open_chart(&desk, &p).await.unwrap();
    assert!(!chart.stale);
    assert_eq!(chart.patient.name, "Asha Rao");
    assert_eq!(chart.allergies.len(), 1);
    assert_eq!(chart.allergies[0].substance, "Penicillin");
    assert_eq!(chart.medications.len(), 1);
    assert_eq!(chart.medications[0].medication, "Metformin 500 mg tablet");
    assert_eq!(chart.problems[0].text, "Type 2 diabetes mellitus");
    let pressure = &chart.vitals[0];
    assert_eq!(pressure.kind, VitalKind::BloodPressure);
    let readings: Vec<(f64, Option<f64>)> = pressure
        .points
        .iter()
        .map(|p| (p.value, p.value2))
        .collect();
    assert_eq!(readings, [(142.0, Some(92.0)), (136.0, Some(88.0))]);
    assert_eq!(chart.labs.len(), 1);
    assert_eq!(chart.labs[0].name, "HbA1c");
    assert_eq!(chart.labs[0].flag, Some(LabFlag::H));
    assert_eq!(
        (chart.labs[0].low, chart.labs[0].high),
        (Some(4.0), Some(5.6))
    );
    assert_eq!(chart.unverified.len(), 1);
    assert_eq!(chart.unverified[0].id, glucose_id);
    assert!(
        chart.vitals[1].points.is_empty(),
        "unverified readings are not drawn"
    );

    // A blood pressure is recorded and joins the series; the self-report is accepted.
    let recorded = record_vital(
        &desk,
        &dr,
        &p,
        &VitalInput {
            kind: VitalKind::BloodPressure,
            value: 128.0,
            value2: Some(84.0),
            time: None,
        },
    )
    .await
    .unwrap();
    assert!(!recorded.queued);
    assert_eq!(recorded.resource_type, "Observation");
    let verified = verify_observation(&desk, &glucose_id, true).await.unwrap();
    assert!(!verified.queued);
    let chart = open_chart(&desk, &p).await.unwrap();
    assert_eq!(chart.vitals[0].points.len(), 3);
    assert_eq!(chart.vitals[0].points[2].id, recorded.id);
    assert_eq!(chart.vitals[0].points[2].value2, Some(84.0));
    assert!(chart.unverified.is_empty());
    assert_eq!(chart.vitals[1].points[0].value, 148.0);
    assert_eq!(chart.vitals[1].points[0].status, "final");

    // An encounter with a note and a prescription.
    let encounter = start_encounter(&desk, &dr, &p, "Diabetes review")
        .await
        .unwrap();
    assert_eq!(encounter.resource_type, "Encounter");
    let note = add_note(
        &desk,
        &dr,
        &p,
        Some(&encounter.id),
        "HbA1c high; diet advice given.",
    )
    .await
    .unwrap();
    assert_eq!(note.resource_type, "DocumentReference");
    let rx = prescribe(
        &desk,
        &dr,
        &p,
        &RxInput {
            medication: "Metformin 1000 mg tablet".into(),
            dose: 1.0,
            dose_unit: "tablet".into(),
            times_per_day: 2,
            duration_days: 30,
            instructions: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(rx.resource_type, "MedicationRequest");
    let chart = open_chart(&desk, &p).await.unwrap();
    assert_eq!(chart.encounters.len(), 1);
    assert_eq!(chart.encounters[0].kind, "Diabetes review");
    assert_eq!(chart.encounters[0].class.as_deref(), Some("AMB"));
    assert_eq!(chart.documents.len(), 1);
    assert_eq!(
        chart.documents[0].content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(chart.medications.len(), 2);
    assert_eq!(
        chart.medications[0].dosage.as_deref(),
        Some("1 tablet twice a day for 30 days")
    );

    // Today's appointment, confirmed.
    let noon = chrono::Local::now()
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_local_timezone(chrono::Local)
        .unwrap();
    let start = noon.to_rfc3339();
    let end = (noon + chrono::Duration::minutes(20)).to_rfc3339();
    let appointment = clinic
        .seed(
            json!({"resourceType": "Appointment", "status": "proposed", "start": start, "end": end,
            "description": "Diabetes follow-up",
            "participant": [
                {"actor": {"reference": dr}, "status": "accepted"},
                {"actor": {"reference": format!("Patient/{p}")}, "status": "accepted"}]}),
        )
        .await;
    let today = appointments_today(&desk, &dr).await.unwrap();
    assert_eq!(today.len(), 1, "{today:?}");
    assert_eq!(today[0].patient_name.as_deref(), Some("Asha Rao"));
    appointment_action(&desk, &appointment, AppointmentAction::Confirm)
        .await
        .unwrap();
    assert_eq!(
        appointments_today(&desk, &dr).await.unwrap()[0].status,
        "booked"
    );

    // The link drops: the reading is queued and the chart, stale, shows it pending.
    let _files = clinic.stop().await;
    let queued = record_vital(
        &desk,
        &dr,
        &p,
        &VitalInput {
            kind: VitalKind::BloodPressure,
            value: 124.0,
            value2: Some(80.0),
            time: None,
        },
    )
    .await
    .unwrap();
    assert!(queued.queued);
    assert!(queued.id.starts_with("local-"));
    let chart = open_chart(&desk, &p).await.unwrap();
    assert!(chart.stale);
    assert!(chart.since.is_some());
    let points = &chart.vitals[0].points;
    assert_eq!(points.len(), 4);
    let offline = points.iter().find(|p| p.id == queued.id).unwrap();
    assert!(offline.pending);
    assert_eq!(points.iter().filter(|p| p.pending).count(), 1);
}
