//! Consent scenarios: what consent enforcement costs a clinician's search (compared with the
//! same search by the patient, who is not governed by consents), and how long a revocation
//! takes to reach another server instance sharing the database.

use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

use crate::load::{self, LoadConfig};
use crate::report::Report;

const FHIR_JSON: &str = "application/fhir+json";

/// A signed-in account: its access token and FHIR identity.
pub struct Account {
    pub token: String,
    /// `Practitioner/…` or `Patient/…`.
    pub fhir_user: String,
    /// The patient in context (patients).
    pub patient: Option<String>,
}

fn root(base: &str) -> &str {
    base.strip_suffix("/fhir").unwrap_or(base)
}

/// `Type/id` of an absolute reference URL.
fn relative(url: &str) -> String {
    let mut parts = url.rsplit('/');
    let id = parts.next().unwrap_or_default();
    let ty = parts.next().unwrap_or_default();
    format!("{ty}/{id}")
}

/// Signs in once (`POST /api/auth/login`).
pub async fn sign_in(
    client: &Client,
    base: &str,
    identifier: &str,
    password: &str,
) -> Result<Account, String> {
    let r = client
        .post(format!("{}/api/auth/login", root(base)))
        .json(&json!({"identifier": identifier, "password": password}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("sign-in of {identifier}: {status} {body}"));
    }
    let text = |k: &str| body[k].as_str().map(str::to_string);
    Ok(Account {
        token: text("access_token").ok_or("no access_token")?,
        fhir_user: relative(&text("fhirUser").ok_or("no fhirUser")?),
        patient: text("patient"),
    })
}

/// A CuraNetConsent of `patient` granting `actor` READ_FULL and WRITE.
fn consent(patient: &str, actor: &str, status: &str) -> Value {
    curanet_conformance::resources::consent(patient, status, actor, &["READ_FULL", "WRITE"], &[])
}

/// Sends `body` with `method` as `token`; the answer's JSON on success.
async fn send(
    client: &Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        request = request
            .header("content-type", FHIR_JSON)
            .body(b.to_string());
    }
    let r = request.send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    let text = r.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{url}: {status} {text}"));
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// The patient consents to the doctor; returns the Consent's id.
async fn grant(
    client: &Client,
    base: &str,
    patient: &Account,
    doctor: &Account,
) -> Result<String, String> {
    let p = patient
        .patient
        .as_deref()
        .ok_or("the patient account has no patient")?;
    let created = send(
        client,
        reqwest::Method::POST,
        &format!("{base}/Consent"),
        &patient.token,
        Some(&consent(p, &doctor.fhir_user, "active")),
    )
    .await?;
    created["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no consent id".into())
}

/// The same search (`Observation?patient=P&_count=10` over `observations` records the doctor
/// writes under the patient's consent), by the doctor and then by the patient.
pub async fn search(
    client: Client,
    base: &str,
    patient: &Account,
    doctor: &Account,
    observations: usize,
    cfg: LoadConfig,
) -> Result<Vec<Report>, String> {
    let p = patient
        .patient
        .clone()
        .ok_or("the patient account has no patient")?;
    grant(&client, base, patient, doctor).await?;
    for n in 0..observations {
        let vital = json!({"resourceType": "Observation", "status": "final",
            "subject": {"reference": format!("Patient/{p}")},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "effectiveDateTime": format!("2026-01-{:02}", n % 28 + 1),
            "valueQuantity": {"value": 60 + n, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}});
        send(
            &client,
            reqwest::Method::POST,
            &format!("{base}/Observation"),
            &doctor.token,
            Some(&vital),
        )
        .await?;
    }
    let url = format!("{base}/Observation?patient={p}&_count=10");
    let mut reports = Vec::new();
    for (scenario, token) in [
        ("clinician-search", &doctor.token),
        ("patient-search", &patient.token),
    ] {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        reports.push(
            load::run(scenario, cfg, move |_| {
                let request = client
                    .get(&url)
                    .bearer_auth(&token)
                    .header("accept", FHIR_JSON);
                async move {
                    let r = request.send().await.map_err(|e| e.to_string())?;
                    let status = r.status();
                    r.bytes().await.map_err(|e| e.to_string())?;
                    if status.is_success() {
                        Ok(())
                    } else {
                        Err(format!("status {status}"))
                    }
                }
            })
            .await,
        );
    }
    Ok(reports)
}

/// Revokes the consent on `base` and times until `second` refuses the doctor (`rounds` times,
/// restoring it in between); returns the latencies in milliseconds, sorted.
pub async fn revocation(
    client: Client,
    base: &str,
    second: &str,
    patient: &Account,
    doctor: &Account,
    rounds: usize,
) -> Result<Vec<f64>, String> {
    let p = patient
        .patient
        .clone()
        .ok_or("the patient account has no patient")?;
    let id = grant(&client, base, patient, doctor).await?;
    let probe = format!("{second}/Observation?patient={p}&_count=1");
    let status_on_second = || {
        let request = client.get(&probe).bearer_auth(&doctor.token);
        async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        }
    };
    let set = |status: &'static str| {
        let mut body = consent(&p, &doctor.fhir_user, status);
        body["id"] = json!(id);
        let url = format!("{base}/Consent/{id}");
        let client = client.clone();
        let token = patient.token.clone();
        async move { send(&client, reqwest::Method::PUT, &url, &token, Some(&body)).await }
    };
    let wait_for = |expected: u16| async move {
        let started = Instant::now();
        loop {
            let got = status_on_second().await?;
            if got == expected {
                return Ok::<Duration, String>(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "the second instance answered {got}, not {expected}, for 10 s"
                ));
            }
        }
    };
    wait_for(200).await?;
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        set("inactive").await?;
        latencies.push(wait_for(403).await?.as_secs_f64() * 1000.0);
        set("active").await?;
        wait_for(200).await?;
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}
