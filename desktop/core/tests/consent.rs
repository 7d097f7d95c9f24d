//! A doctor's desktop cache follows the patient's consent (a real server, tokens required):
//! under the consent the chart is read and cached; once the patient revokes it, the next read
//! is refused and everything cached of that patient is evicted at once.

mod common;

use common::Clinic;
use curanet_conformance::resources::consent;
use curanet_desktop_core::DesktopError;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_consent_evicts_the_patients_cached_chart() {
    let clinic = Clinic::start("desktop_consent").await;
    let p = clinic.patient.id().to_string();

    // Asha consents; the doctor records a vital and opens her chart on the desktop.
    let consent_id = clinic.grant(&clinic.doctor.reference).await;
    let vital = clinic
        .send(
            &clinic.doctor,
            Method::POST,
            "Observation",
            Some(&json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "pulse"}, "subject": {"reference": format!("Patient/{p}")}})),
        )
        .await;
    let vital_id = vital["id"].as_str().unwrap().to_string();
    let client = clinic.desktop(&clinic.doctor).await;
    client.read("Patient", &p).await.unwrap();
    client.read("Observation", &vital_id).await.unwrap();
    assert!(client.cached("Patient", &p).await.unwrap().is_some());

    // Asha revokes: the next read is refused and her whole chart leaves the doctor's machine.
    let mut revoked = consent(
        &p,
        "inactive",
        &clinic.doctor.reference,
        &["READ_FULL", "WRITE"],
        &[],
    );
    revoked["id"] = json!(consent_id);
    clinic
        .send(
            &clinic.patient,
            Method::PUT,
            &format!("Consent/{consent_id}"),
            Some(&revoked),
        )
        .await;
    let refused = client.read("Observation", &vital_id).await.unwrap_err();
    assert!(
        matches!(refused, DesktopError::NotAvailable(_)),
        "{refused}"
    );
    assert_eq!(client.cached("Observation", &vital_id).await.unwrap(), None);
    assert_eq!(client.cached("Patient", &p).await.unwrap(), None);

    drop(clinic.stop().await);
}
