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

use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::Role;
use harness::{
    Display, Driver, Tools, click, element, screenshot, scroll_to, text_until, type_into,
};
use serde_json::{Value, json};

const EMAIL: &str = "vikram@example.in";
const PASSWORD: &str = "correct horse battery staple";

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

/// A doctor's access token from the account API (the app itself never sees a password).
async fn doctor_token(http: &reqwest::Client, server: &TestServer) -> String {
    let origin = server.base_url.trim_end_matches("/fhir");
    let answer: Value = http
        .post(format!("{origin}/api/auth/login"))
        .json(&json!({"identifier": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().expect("a token").to_string()
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
async fn blood_pressures(http: &reqwest::Client, base: &str, token: &str, patient: &str) -> Vec<String> {
    let bundle: Value = http
        .get(format!("{base}/Observation?patient={patient}&code=http://loinc.org|85354-9"))
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

fn screenshots() -> Option<PathBuf> {
    std::env::var_os("CURANET_E2E_SCREENSHOTS").map(PathBuf::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_records_vitals_online_and_offline_and_they_sync() {
    let Some(tools) = tools() else { return };
    let server = TestServer::start_with(TestBackend::Sqlite, "desktop_e2e", |c| {
        c.require_auth = true;
        c.desktop_client = true;
    })
    .await
    .expect("a SQLite server");
    let base = server.base_url.clone();
    server.create_user(Role::Doctor, EMAIL, PASSWORD, "Vikram Iyer").await;
    let http = reqwest::Client::new();
    let token = doctor_token(&http, &server).await;
    let (patient, health_id) = registered_patient(&http, &base, &token).await;

    let display = Display::start(&tools);
    let data = std::env::temp_dir().join(format!("curanet-desktop-e2e-{}", std::process::id()));
    let driver = Driver::start(&tools, &display, &[("CURANET_DESKTOP_DATA_DIR", &data)]);
    let app = driver
        .session(Path::new(env!("CARGO_BIN_EXE_curanet-desktop")))
        .await;
    let shots = screenshots();
    let shot = |name: &str| screenshot(&tools, &display, shots.as_deref(), name);

    // Sign in on the server's own page, in the window the app opens for it.
    type_into(&app, "#server-url", &base).await;
    shot("01-sign-in");
    let main = app.window().await.unwrap();
    click(&app, "#sign-in").await;
    let sign_in = loop {
        let windows = app.windows().await.unwrap();
        if let Some(w) = windows.into_iter().find(|w| *w != main) {
            break w;
        }
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    };
    app.switch_to_window(sign_in).await.unwrap();
    type_into(&app, "#identifier", EMAIL).await;
    type_into(&app, "#password", PASSWORD).await;
    shot("02-server-sign-in");
    click(&app, "button[type=submit]").await;
    click(&app, "button[value=approve]").await;
    app.switch_to_window(main).await.unwrap();
    text_until(&app, "#status", |t| t.contains("Online")).await;

    // Open the patient by Health ID and record a blood pressure.
    type_into(&app, "#patient-query", &health_id).await;
    click(&app, "#patient-search").await;
    click(&app, &format!(".patient-result[data-id='{patient}']")).await;
    element(&app, "#chart").await;
    text_until(&app, "#chart-health-id", |t| t.contains(&health_id)).await;
    app.find(fantoccini::Locator::Css("#vital-kind"))
        .await
        .unwrap()
        .select_by_value("bloodPressure")
        .await
        .unwrap();
    type_into(&app, "#vital-value", "128").await;
    type_into(&app, "#vital-value2", "84").await;
    click(&app, "#vital-save").await;
    let readings = text_until(&app, "#readings-bloodPressure", |t| t.contains("128/84")).await;
    assert!(!readings.contains("queued"), "sent while online: {readings}");
    scroll_to(&app, "#chart-bloodPressure").await;
    shot("03-chart");

    // The link drops: the chart reopens from the cache, marked stale; a reading is queued.
    let offline = server.go_offline().await;
    click(&app, "#chart-back").await;
    click(&app, &format!(".patient-result[data-id='{patient}']")).await;
    element(&app, "#stale-badge").await;
    text_until(&app, "#status", |t| t.contains("Offline")).await;
    type_into(&app, "#vital-value", "135").await;
    type_into(&app, "#vital-value2", "88").await;
    click(&app, "#vital-save").await;
    text_until(&app, "#readings-bloodPressure", |t| {
        t.lines().any(|l| l.contains("135/88") && l.contains("queued"))
    })
    .await;
    assert!(
        text_until(&app, "#readings-bloodPressure", |_| true).await.contains("128/84"),
        "the reading from before stays readable offline"
    );
    scroll_to(&app, "#readings-bloodPressure").await;
    shot("04-offline");

    // The server comes back: the queued reading is sent.
    let server = offline.come_back().await;
    click(&app, "#sync-now").await;
    text_until(&app, "#status", |t| t.contains("Online")).await;
    click(&app, "#chart-back").await;
    click(&app, &format!(".patient-result[data-id='{patient}']")).await;
    text_until(&app, "#readings-bloodPressure", |t| {
        t.contains("135/88") && !t.contains("queued")
    })
    .await;
    assert_eq!(
        blood_pressures(&http, &base, &token, &patient).await,
        vec!["128/84".to_string(), "135/88".to_string()],
        "both readings are on the server"
    );
    scroll_to(&app, "#readings-bloodPressure").await;
    shot("05-synced");

    app.close().await.unwrap();
    drop(driver);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&data);
}
