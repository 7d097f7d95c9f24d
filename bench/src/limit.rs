//! The "HTTP limit": an in-process axum server that answers `GET /fhir/Patient/{id}` with fixed
//! bytes from memory. Reading from it costs only HTTP and the load generator itself, so its
//! throughput is the ceiling a real read on this machine can approach.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http::FHIR_JSON;

/// A sample stored Patient (about 600 bytes) served when no real body is given.
pub const SAMPLE_PATIENT: &str = concat!(
    r#"{"resourceType":"Patient","id":"0192f3a4-7b1c-7d2e-9f10-112233445566","#,
    r#""meta":{"versionId":"1","lastUpdated":"2025-01-01T00:00:00.000000Z"},"#,
    r#""identifier":[{"system":"urn:oid:2.16.840.1.113883.2.4.6.3","value":"999911120"}],"active":true,"#,
    r#""name":[{"use":"official","family":"Bench","given":["Read","Sample"]}],"#,
    r#""telecom":[{"system":"phone","value":"+31 20 555 0100","use":"home"},"#,
    r#"{"system":"email","value":"read.bench@example.org"}],"gender":"female","birthDate":"1980-01-01","#,
    r#""address":[{"use":"home","line":["Benchmarkstraat 1"],"city":"Amsterdam","postalCode":"1011 AB","country":"NL"}]}"#,
);

/// A running limit server; it stops when dropped.
pub struct LimitServer {
    /// The FHIR base URL to point the read load at.
    pub base_url: String,
    task: JoinHandle<()>,
}

impl Drop for LimitServer {
    fn drop(&mut self) {
        // Aborting rather than a graceful shutdown: pooled keep-alive connections would keep a
        // graceful one waiting, and nothing is in flight once the load has finished.
        self.task.abort();
    }
}

async fn patient(State(body): State<Bytes>) -> impl IntoResponse {
    // Bytes clones share the buffer, so each answer costs no copy, as close to "free" as it gets.
    ([(CONTENT_TYPE, FHIR_JSON)], body)
}

/// Starts the server on 127.0.0.1 with an ephemeral port.
pub async fn start(body: Bytes) -> Result<LimitServer, String> {
    let app = Router::new()
        .route("/fhir/Patient/{id}", get(patient))
        .with_state(body);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("cannot bind the limit server: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("limit server address: {e}"))?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("limit server stopped: {e}");
        }
    });
    Ok(LimitServer {
        base_url: format!("http://{addr}/fhir"),
        task,
    })
}

/// The id to read from the limit server: the one in the body when it has one (so the URL looks
/// like the real read's), else a placeholder (the route answers any id).
pub fn id_in(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_string))
        .unwrap_or_else(|| "bench".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_a_patient_of_about_600_bytes() {
        let v: serde_json::Value = serde_json::from_str(SAMPLE_PATIENT).unwrap();
        assert_eq!(v["resourceType"], "Patient");
        assert!(
            (550..=650).contains(&SAMPLE_PATIENT.len()),
            "{}",
            SAMPLE_PATIENT.len()
        );
        assert_eq!(
            id_in(SAMPLE_PATIENT.as_bytes()),
            "0192f3a4-7b1c-7d2e-9f10-112233445566"
        );
        assert_eq!(id_in(b"not json"), "bench");
    }

    #[tokio::test]
    async fn serves_the_fixed_bytes() {
        let server = start(Bytes::from_static(b"{\"x\":1}")).await.unwrap();
        let client = crate::http::client(1).unwrap();
        let url = format!("{}/Patient/abc", server.base_url);
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.headers()[CONTENT_TYPE.as_str()], FHIR_JSON);
        assert_eq!(resp.bytes().await.unwrap().as_ref(), b"{\"x\":1}");
    }
}
