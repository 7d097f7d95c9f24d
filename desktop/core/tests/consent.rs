//! A doctor's desktop cache follows the patient's consent (a real server, tokens required):
//! under the consent the chart is read and cached; once the patient revokes it, the next read
//! is refused and everything cached of that patient is evicted at once.

use curanet_conformance::resources::consent;
use curanet_desktop_core::{Cache, DesktopError, FhirClient};
use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::Role;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

async fn sign_in(base: &str, email: &str) -> Value {
    let root = base.trim_end_matches("/fhir");
    let r = reqwest::Client::new()
        .post(format!("{root}/api/auth/login"))
        .json(&json!({"identifier": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json().await.unwrap()
}

async fn send(method: reqwest::Method, url: String, token: &str, body: &Value) -> Value {
    let r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_consent_evicts_the_patients_cached_chart() {
    let server = TestServer::start_with(TestBackend::Sqlite, "desktop_consent", |c| {
        c.require_auth = true
    })
    .await
    .expect("a SQLite server");
    let base = server.base_url.clone();
    server
        .create_user(Role::Patient, "asha@example.in", PASSWORD, "Asha Rao")
        .await;
    let doctor = server
        .create_user(Role::Doctor, "dr@example.in", PASSWORD, "Meera Iyer")
        .await;
    let asha = sign_in(&base, "asha@example.in").await;
    let patient_token = asha["access_token"].as_str().unwrap().to_string();
    let p = asha["patient"].as_str().unwrap().to_string();
    let dr = sign_in(&base, "dr@example.in").await;
    let doctor_token = dr["access_token"].as_str().unwrap().to_string();

    // Asha consents; the doctor records a vital and opens her chart on the desktop.
    let doctor_ref = doctor.fhir_user.unwrap();
    let mut granted = consent(&p, "active", &doctor_ref, &["READ_FULL", "WRITE"], &[]);
    let created = send(
        reqwest::Method::POST,
        format!("{base}/Consent"),
        &patient_token,
        &granted,
    )
    .await;
    let consent_id = created["id"].as_str().unwrap().to_string();
    let vital = send(
        reqwest::Method::POST,
        format!("{base}/Observation"),
        &doctor_token,
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
                "subject": {"reference": format!("Patient/{p}")}}),
    )
    .await;
    let vital_id = vital["id"].as_str().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("curanet-desktop-consent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = Cache::open(&dir.join("cache.db"), "dr", 1_000_000)
        .await
        .unwrap();
    let client = FhirClient::new(&base, Some(doctor_token), cache).unwrap();
    client.read("Patient", &p).await.unwrap();
    client.read("Observation", &vital_id).await.unwrap();
    assert!(client.cached("Patient", &p).await.unwrap().is_some());

    // Asha revokes: the next read is refused and her whole chart leaves the doctor's machine.
    granted["id"] = json!(consent_id);
    granted["status"] = json!("inactive");
    send(
        reqwest::Method::PUT,
        format!("{base}/Consent/{consent_id}"),
        &patient_token,
        &granted,
    )
    .await;
    let refused = client.read("Observation", &vital_id).await.unwrap_err();
    assert!(
        matches!(refused, DesktopError::NotAvailable(_)),
        "{refused}"
    );
    assert_eq!(client.cached("Observation", &vital_id).await.unwrap(), None);
    assert_eq!(client.cached("Patient", &p).await.unwrap(), None);

    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
