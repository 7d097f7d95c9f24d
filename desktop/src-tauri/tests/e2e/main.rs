//! CuraNet Desktop end to end, in a real window under Xvfb through WebDriver (tauri-driver with
//! WebKitGTK's driver), against a real server: a doctor signs in on the server's own page, opens
//! a patient by Health ID, records a blood pressure and sees it in the trend; the server stops,
//! the chart reopens from the cache marked stale and another reading is queued; the server comes
//! back and the reading syncs. Screenshots of the screens go to `CURANET_E2E_SCREENSHOTS`.
//!
//! Without the tools (tauri-driver, WebKitWebDriver, Xvfb) the test says what is missing and
//! skips; with `CURANET_REQUIRE_DESKTOP_E2E=1` (CI) it fails instead.

mod harness;

use std::path::{Path, PathBuf};

use curanet_conformance::resources::consent;
use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::Role;
use harness::{
    Display, Driver, Tools, click, element, screenshot, scroll_to, text_until, type_into,
};
use serde_json::{Value, json};

const EMAIL: &str = "vikram@example.in";
const PASSWORD: &str = "correct horse battery staple";
const PHARMACIST: &str = "ravi@example.in";

/// The tools, or `None` (with the reason printed) when the test may skip.
fn tools() -> Option<Tools> {
    match Tools::find() {
        Ok(tools) => Some(tools),
        Err(missing) if std::env::var("CURANET_REQUIRE_DESKTOP_E2E").as_deref() != Ok("1") => {
            eprintln!("SKIPPED: the desktop end-to-end test needs {missing}");
            None
        }
        Err(missing) => panic!("CURANET_REQUIRE_DESKTOP_E2E=1 but {missing} is missing"),
    }
}

/// The account API's answer to signing in as `email` (the test's own requests; the app itself
/// never sees a password): `access_token`, and `patient` for a patient.
async fn login(http: &reqwest::Client, server: &TestServer, email: &str) -> Value {
    let origin = server.base_url.trim_end_matches("/fhir");
    let answer: Value = http
        .post(format!("{origin}/api/auth/login"))
        .json(&json!({"identifier": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["access_token"].is_string(), "{email}: {answer}");
    answer
}

/// A server requiring tokens, with the desktop app registered.
async fn start_server(label: &str) -> TestServer {
    TestServer::start_with(TestBackend::Sqlite, label, |c| {
        c.require_auth = true;
        c.desktop_client = true;
    })
    .await
    .expect("a SQLite server")
}

/// The app on a display of its own, with an empty data folder, driven through WebDriver.
struct Launched {
    app: fantoccini::Client,
    driver: Driver,
    display: Display,
    data: PathBuf,
}

/// One app under WebDriver at a time: WebKit's automation does not take two sessions side by
/// side, and two WebKit instances would share the 2 cores of a CI machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Launched {
    async fn start(tools: &Tools, label: &str) -> Launched {
        let display = Display::start(tools);
        let data = std::env::temp_dir().join(format!("curanet-{label}-{}", std::process::id()));
        let driver = Driver::start(tools, &display, &[("CURANET_DESKTOP_DATA_DIR", &data)]);
        let app = driver
            .session(Path::new(env!("CARGO_BIN_EXE_curanet-desktop")))
            .await;
        Launched {
            app,
            driver,
            display,
            data,
        }
    }

    /// Closes the window and the driver; removes the data folder.
    async fn close(self) {
        self.app.close().await.unwrap();
        drop(self.driver);
        drop(self.display);
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// A patient the doctor registers (which records the registration consent); its id and Health ID.
async fn registered_patient(http: &reqwest::Client, base: &str, token: &str) -> (String, String) {
    let patient: Value = http
        .post(format!("{base}/Patient"))
        .bearer_auth(token)
        .header("content-type", "application/fhir+json")
        .header("prefer", "return=representation")
        .body(
            json!({"resourceType": "Patient", "name": [{"family": "Rao", "given": ["Asha"]}],
                   "gender": "female", "birthDate": "1980-04-12",
                   "telecom": [{"system": "phone", "value": "+919812345678"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = patient["id"].as_str().expect("an id").to_string();
    let health_id = patient["identifier"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["value"].as_str())
        .find(|v| v.starts_with("HID-"))
        .expect("a Health ID")
        .to_string();
    (id, health_id)
}

/// The blood pressures the server holds for the patient, as "systolic/diastolic".
async fn blood_pressures(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    patient: &str,
) -> Vec<String> {
    let bundle: Value = http
        .get(format!(
            "{base}/Observation?patient={patient}&code=http://loinc.org|85354-9"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut found: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let part = |code: &str| {
                e["resource"]["component"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["code"]["coding"][0]["code"] == code)
                    // As numbers: the desktop sends decimals as f64 (`128.0`).
                    .and_then(|c| c["valueQuantity"]["value"].as_f64())
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            };
            format!("{}/{}", part("8480-6"), part("8462-4"))
        })
        .collect();
    found.sort();
    found
}

/// Signs in as `email` on the server's own page, in the window the app opens for it; waits
/// until the app is online. `shot` takes the screenshots of the way.
async fn sign_in(app: &fantoccini::Client, base: &str, email: &str, shot: &dyn Fn(&str)) {
    type_into(app, "#server-url", base).await;
    shot("01-sign-in");
    let main = app.window().await.unwrap();
    click(app, "#sign-in").await;
    let sign_in = loop {
        let windows = app.windows().await.unwrap();
        if let Some(w) = windows.into_iter().find(|w| *w != main) {
            break w;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    };
    app.switch_to_window(sign_in).await.unwrap();
    type_into(app, "#identifier", email).await;
    type_into(app, "#password", PASSWORD).await;
    shot("02-server-sign-in");
    click(app, "button[type=submit]").await;
    click(app, "button[value=approve]").await;
    app.switch_to_window(main).await.unwrap();
    text_until(app, "#status", |t| t.contains("Online")).await;
}

fn screenshots() -> Option<PathBuf> {
    std::env::var_os("CURANET_E2E_SCREENSHOTS").map(PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_records_vitals_online_and_offline_and_they_sync() {
    let Some(tools) = tools() else { return };
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = start_server("desktop_e2e").await;
    let base = server.base_url.clone();
    server
        .create_user(Role::Doctor, EMAIL, PASSWORD, "Vikram Iyer")
        .await;
    let http = reqwest::Client::new();
    let token = login(&http, &server, EMAIL).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (patient, health_id) = registered_patient(&http, &base, &token).await;

    let launched = Launched::start(&tools, "desktop-e2e").await;
    let app = &launched.app;
    let shots = screenshots();
    let shot = |name: &str| screenshot(&tools, &launched.display, shots.as_deref(), name);

    sign_in(app, &base, EMAIL, &|name| shot(name)).await;

    // Open the patient by Health ID and record a blood pressure.
    type_into(app, "#patient-query", &health_id).await;
    click(app, "#patient-search").await;
    click(app, &format!(".patient-result[data-id='{patient}']")).await;
    element(app, "#chart").await;
    text_until(app, "#chart-health-id", |t| t.contains(&health_id)).await;
    app.find(fantoccini::Locator::Css("#vital-kind"))
        .await
        .unwrap()
        .select_by_value("bloodPressure")
        .await
        .unwrap();
    type_into(app, "#vital-value", "128").await;
    type_into(app, "#vital-value2", "84").await;
    click(app, "#vital-save").await;
    let readings = text_until(app, "#readings-bloodPressure", |t| t.contains("128/84")).await;
    assert!(
        !readings.contains("queued"),
        "sent while online: {readings}"
    );
    scroll_to(app, "#chart-bloodPressure").await;
    shot("03-chart");

    // The link drops: the chart reopens from the cache, marked stale; a reading is queued.
    let offline = server.go_offline().await;
    click(app, "#chart-back").await;
    click(app, &format!(".patient-result[data-id='{patient}']")).await;
    element(app, "#stale-badge").await;
    text_until(app, "#status", |t| t.contains("Offline")).await;
    type_into(app, "#vital-value", "135").await;
    type_into(app, "#vital-value2", "88").await;
    click(app, "#vital-save").await;
    text_until(app, "#readings-bloodPressure", |t| {
        t.lines()
            .any(|l| l.contains("135/88") && l.contains("queued"))
    })
    .await;
    assert!(
        text_until(app, "#readings-bloodPressure", |_| true)
            .await
            .contains("128/84"),
        "the reading from before stays readable offline"
    );
    scroll_to(app, "#readings-bloodPressure").await;
    shot("04-offline");

    // The server comes back: the queued reading is sent.
    let server = offline.come_back().await;
    click(app, "#sync-now").await;
    text_until(app, "#status", |t| t.contains("Online")).await;
    click(app, "#chart-back").await;
    click(app, &format!(".patient-result[data-id='{patient}']")).await;
    text_until(app, "#readings-bloodPressure", |t| {
        t.contains("135/88") && !t.contains("queued")
    })
    .await;
    assert_eq!(
        blood_pressures(&http, &base, &token, &patient).await,
        vec!["128/84".to_string(), "135/88".to_string()],
        "both readings are on the server"
    );
    scroll_to(app, "#readings-bloodPressure").await;
    shot("05-synced");

    launched.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pharmacist_dispenses_a_shared_prescription_in_parts() {
    let Some(tools) = tools() else { return };
    let _alone = ONE_AT_A_TIME.lock().await;
    let server = start_server("desktop_e2e_pharmacy").await;
    let base = server.base_url.clone();
    let http = reqwest::Client::new();
    server
        .create_user(Role::Patient, "asha@example.in", PASSWORD, "Asha Rao")
        .await;
    server
        .create_user(Role::Pharmacist, PHARMACIST, PASSWORD, "Ravi Kumar")
        .await;
    let asha = login(&http, &server, "asha@example.in").await;
    let patient = asha["patient"].as_str().expect("Asha's record").to_string();
    let pharmacy = server.test_pharmacy().await;
    // A prescription written elsewhere, then Asha shares her record with the pharmacy.
    let rx = server
        .seed(&json!({
            "resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "subject": {"reference": format!("Patient/{patient}")},
            "medicationCodeableConcept": {"text": "Amoxicillin 500 mg capsule"},
            "authoredOn": "2026-12-01",
            "dosageInstruction": [{"text": "1 capsule 3 times a day for 5 days"}],
            "dispenseRequest": {"quantity": {"value": 15, "unit": "capsule"}}
        }))
        .await;
    let shared = consent(
        &patient,
        "active",
        &format!("Organization/{pharmacy}"),
        &["READ_FULL", "WRITE"],
        &[],
    );
    let answer = http
        .post(format!("{base}/Consent"))
        .bearer_auth(asha["access_token"].as_str().unwrap())
        .header("content-type", "application/fhir+json")
        .body(shared.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status().as_u16(),
        201,
        "{}",
        answer.text().await.unwrap()
    );

    let launched = Launched::start(&tools, "desktop-e2e-pharmacy").await;
    let app = &launched.app;
    let shots = screenshots();
    let shot = |name: &str| screenshot(&tools, &launched.display, shots.as_deref(), name);
    sign_in(app, &base, PHARMACIST, &|_| {}).await;

    // The shared prescription is in the queue; five of the fifteen capsules are handed over.
    let row = format!(".queue-row[data-id='{rx}']");
    text_until(app, &row, |t| {
        t.contains("Amoxicillin") && t.contains("0/15")
    })
    .await;
    shot("06-pharmacy-queue");
    // A cell: WebKit's driver does not click a table row itself.
    click(app, &format!("{row} td")).await;
    type_into(app, "#dispense-quantity", "5").await;
    type_into(app, "#dispense-unit", "capsule").await;
    type_into(app, "#dispense-batch", "AMX-2611").await;
    type_into(app, "#dispense-expiry", "2027-06-30").await;
    click(app, "#dispense-save").await;
    text_until(app, "#dispense-result", |t| t.contains("saved")).await;
    text_until(app, &row, |t| t.contains("5/15")).await;
    text_until(app, "#history-slot", |t| t.contains("AMX-2611")).await;
    scroll_to(app, "#dispense-result").await;
    shot("07-dispensed");

    let ravi = login(&http, &server, PHARMACIST).await;
    let dispensed: Value = http
        .get(format!("{base}/MedicationDispense?prescription={rx}"))
        .bearer_auth(ravi["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = dispensed["entry"]
        .as_array()
        .expect("the dispense on the server");
    assert_eq!(entries.len(), 1, "{dispensed}");
    let handed = &entries[0]["resource"];
    assert_eq!(handed["quantity"]["value"].as_f64(), Some(5.0));
    assert_eq!(handed["status"], "completed");

    launched.close().await;
    server.stop().await;
}
