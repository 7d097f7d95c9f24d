//! The HTTP scenarios (`read`, `create`) against a FHIR base URL, and the checks that keep every
//! request on the loopback interface.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{Client, Url};

use crate::load::{self, LoadConfig, Outcome};
use crate::report::Report;

/// The FHIR JSON media type, sent and accepted on every request.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The Patient created once for the read scenario.
pub const READ_PATIENT: &str = r#"{"resourceType":"Patient","name":[{"family":"Bench","given":["Read"]}],"gender":"female","birthDate":"1980-01-01"}"#;

/// Longest a single set-up request (create the read Patient, fetch a body) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The Patient body the create scenario posts; `n` varies the family name so no two are equal.
pub fn create_body(n: u64) -> String {
    format!(
        r#"{{"resourceType":"Patient","name":[{{"family":"Bench{n}","given":["Create"]}}],"gender":"female","birthDate":"1980-01-01"}}"#
    )
}

/// True for the hosts this tool may talk to: 127.0.0.1, ::1 and localhost.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    matches!(host.parse::<IpAddr>(), Ok(ip) if ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]))
}

/// Parses an `http://` URL on a loopback host, with any trailing `/` removed; anything else is
/// refused, because load must never leave this machine.
pub fn loopback_url(raw: &str) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|e| format!("invalid URL {raw:?}: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "refusing {raw:?}: only plain http:// is supported (the bench is built without TLS)"
        ));
    }
    let host = url.host_str().unwrap_or_default();
    if !is_loopback_host(host) {
        return Err(format!(
            "refusing {raw:?}: host {host:?} is not loopback; the benchmark only targets 127.0.0.1, ::1 or localhost"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "refusing {raw:?}: a base URL has no query or fragment"
        ));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// The one client shared by all tasks of a run: HTTP/1.1 only, an idle pool as large as the
/// task count (so every task keeps its connection), no proxy, no redirects (a redirect could
/// lead off loopback). With `CURANET_BENCH_TOKEN` set, every request carries it as a bearer
/// token (for a server started with `--require-auth`).
pub fn client(connections: usize) -> Result<Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(token) = std::env::var("CURANET_BENCH_TOKEN") {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| format!("CURANET_BENCH_TOKEN is not a header value: {e}"))?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Client::builder()
        .default_headers(headers)
        .http1_only()
        .pool_max_idle_per_host(connections)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .timeout(SETUP_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build HTTP client: {e}"))
}

/// Creates the Patient the read scenario fetches and returns its id.
pub async fn create_read_patient(client: &Client, base: &str) -> Result<String, String> {
    let url = format!("{base}/Patient");
    let resp = client
        .post(&url)
        .header(CONTENT_TYPE, FHIR_JSON)
        .header(ACCEPT, FHIR_JSON)
        .body(READ_PATIENT)
        .timeout(SETUP_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {}", describe(&e)))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("POST {url}: reading body: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "POST {url}: status {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    // The body's id is authoritative; the Location header covers a `Prefer: return=minimal` server.
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_string))
        .or_else(|| location.as_deref().and_then(id_from_location))
        .ok_or_else(|| format!("POST {url}: no id in the response body nor in a Location header"))
}

/// The logical id in a Location such as `.../Patient/{id}/_history/1`.
pub fn id_from_location(location: &str) -> Option<String> {
    let mut parts = location.split('/');
    parts.by_ref().find(|p| *p == "Patient")?;
    parts.next().filter(|id| !id.is_empty()).map(str::to_string)
}

/// GETs `url` once and returns the body bytes (a 2xx answer is required).
pub async fn fetch_body(client: &Client, url: &str) -> Result<Bytes, String> {
    let resp = client
        .get(url)
        .header(ACCEPT, FHIR_JSON)
        .timeout(SETUP_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", describe(&e)))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: reading body: {e}"))?;
    if !status.is_success() {
        return Err(format!("GET {url}: status {status}"));
    }
    Ok(body)
}

/// An error with its causes, since reqwest's own message ("error sending request") hides the
/// reason (refused, reset, timed out) in the source chain.
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends one request and reads the whole body, so the latency includes the transfer and the
/// connection goes back to the pool ready for reuse.
async fn exchange(req: reqwest::RequestBuilder) -> Outcome {
    let resp = req.send().await.map_err(|e| describe(&e))?;
    let status = resp.status();
    resp.bytes().await.map_err(|e| describe(&e))?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

/// Runs the read loop: every task GETs `{base}/Patient/{id}` again and again.
pub async fn read(scenario: &str, client: Client, base: &str, id: &str, cfg: LoadConfig) -> Report {
    let url = format!("{base}/Patient/{id}");
    load::run(scenario, cfg, move |_| {
        exchange(client.get(&url).header(ACCEPT, FHIR_JSON))
    })
    .await
}

/// Runs the create loop: every task POSTs a new Patient again and again.
pub async fn create(client: Client, base: &str, cfg: LoadConfig) -> Report {
    let url = format!("{base}/Patient");
    load::run("create", cfg, move |n| {
        exchange(
            client
                .post(&url)
                .header(CONTENT_TYPE, FHIR_JSON)
                .header(ACCEPT, FHIR_JSON)
                .body(create_body(n)),
        )
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_loopback_http() {
        assert_eq!(
            loopback_url("http://127.0.0.1:8080/fhir/").unwrap(),
            "http://127.0.0.1:8080/fhir"
        );
        assert!(loopback_url("http://localhost:8080/fhir").is_ok());
        assert!(loopback_url("http://[::1]:8080/fhir").is_ok());
        assert!(loopback_url("http://10.0.0.1:8080/fhir").is_err());
        assert!(loopback_url("http://example.org/fhir").is_err());
        assert!(loopback_url("http://127.0.0.1.example.org/fhir").is_err());
        assert!(loopback_url("https://127.0.0.1/fhir").is_err());
        assert!(loopback_url("http://127.0.0.1/fhir?x=1").is_err());
        assert!(loopback_url("not a url").is_err());
    }

    #[test]
    fn id_from_location_handles_history_and_plain() {
        assert_eq!(
            id_from_location("http://127.0.0.1/fhir/Patient/abc/_history/1").as_deref(),
            Some("abc")
        );
        assert_eq!(id_from_location("Patient/xyz").as_deref(), Some("xyz"));
        assert_eq!(
            id_from_location("http://127.0.0.1/fhir/Observation/1"),
            None
        );
    }

    #[test]
    fn create_bodies_are_json_and_differ() {
        let a: serde_json::Value = serde_json::from_str(&create_body(1)).unwrap();
        let b: serde_json::Value = serde_json::from_str(&create_body(2)).unwrap();
        assert_eq!(a["resourceType"], "Patient");
        assert_ne!(a, b);
        serde_json::from_str::<serde_json::Value>(READ_PATIENT).unwrap();
    }
}
