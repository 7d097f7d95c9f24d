//! Offline writes against a real CuraNet server (SQLite) that stops and comes back on the same
//! address and database: creates and updates made offline are queued and readable, replayed in
//! order when the link returns, local ids are replaced in later writes' references, and an
//! update the server has moved past is parked as a conflict until the user resolves it.

use curanet_desktop_core::{Cache, FhirClient, Resolution, Written};
use curanet_http::config::Config;
use curanet_http::server::{RunningServer, start};
use serde_json::{Value, json};

async fn serve(database_url: &str, port: u16) -> RunningServer {
    let mut config = Config::for_database(database_url.to_string());
    config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    start(config).await.expect("the server starts")
}

fn sent(w: Written) -> Value {
    match w {
        Written::Sent(v) => v,
        Written::Queued { .. } => panic!("queued while the server was up"),
    }
}

fn queued(w: Written) -> Value {
    match w {
        Written::Queued { resource, .. } => resource,
        Written::Sent(v) => panic!("sent while the server was down: {v}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_writes_replay_in_order_and_conflicts_wait_for_the_user() {
    let dir = std::env::temp_dir().join(format!("curanet-desktop-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite:{}", dir.join("server.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = serve(&database, port).await;
    let base = server.base_url();
    let cache = Cache::open(&dir.join("cache.db"), "acct-1", 10_000_000)
        .await
        .unwrap();
    let client = FhirClient::new(&base, None, cache.clone()).unwrap();

    let patient = sent(
        client
            .create(json!({"resourceType": "Patient", "name": [{"family": "Rao"}]}))
            .await
            .unwrap(),
    );
    let p = patient["id"].as_str().unwrap().to_string();
    // Someone else changes the patient on the server meanwhile (version 2).
    let mut theirs = patient.clone();
    theirs["name"][0]["family"] = json!("Rao (server)");
    let r = reqwest::Client::new()
        .put(format!("{base}/Patient/{p}"))
        .header("content-type", "application/fhir+json")
        .body(theirs.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // The link drops.
    server.stop().await.unwrap();
    let encounter = queued(
        client
            .create(json!({"resourceType": "Encounter", "status": "in-progress",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": format!("Patient/{p}")}}))
            .await
            .unwrap(),
    );
    let local_encounter = encounter["id"].as_str().unwrap().to_string();
    assert!(local_encounter.starts_with("local-"));
    let vital = queued(
        client
            .create(json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "pulse"},
                "subject": {"reference": format!("Patient/{p}")},
                "encounter": {"reference": format!("Encounter/{local_encounter}")}}))
            .await
            .unwrap(),
    );
    let local_vital = vital["id"].as_str().unwrap();
    // Readable offline, as entered.
    assert_eq!(
        client.cached("Observation", local_vital).await.unwrap(),
        Some(vital.clone())
    );
    // An edit of the patient, made from version 1.
    let mut mine = patient.clone();
    mine["name"][0]["family"] = json!("Rao (mine)");
    queued(client.update(mine).await.unwrap());
    assert_eq!(cache.outbox().pending().await.unwrap().len(), 3);
    // Still offline: nothing is sent, nothing is lost.
    let report = client.sync().await.unwrap();
    assert_eq!((report.sent, report.remaining), (0, 3));

    // The link returns (same address, same database).
    let server = serve(&database, port).await;
    let report = client.sync().await.unwrap();
    assert_eq!(
        (report.sent, report.conflicts, report.remaining),
        (2, 1, 1),
        "{report:?}"
    );
    // The Observation reached the server pointing at the Encounter's server id.
    let found: Value = reqwest::Client::new()
        .get(format!("{base}/Observation?patient={p}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let encounter_ref = found["entry"][0]["resource"]["encounter"]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(encounter_ref.starts_with("Encounter/"), "{found}");
    assert!(!encounter_ref.contains("local-"), "{found}");
    assert_eq!(
        client.cached("Encounter", &local_encounter).await.unwrap(),
        None
    );

    // The patient's edit met the server's newer version: both are kept for the user.
    let pending = cache.outbox().pending().await.unwrap();
    let conflict = &pending[0];
    assert_eq!(
        conflict.conflict.as_ref().unwrap()["name"][0]["family"],
        "Rao (server)"
    );
    assert_eq!(conflict.resource["name"][0]["family"], "Rao (mine)");
    client
        .resolve(conflict.seq, Resolution::KeepMine)
        .await
        .unwrap();
    let report = client.sync().await.unwrap();
    assert_eq!((report.sent, report.remaining), (1, 0), "{report:?}");
    let now = client.read("Patient", &p).await.unwrap().resource;
    assert_eq!(now["name"][0]["family"], "Rao (mine)");
    assert_eq!(now["meta"]["versionId"], "3");

    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
