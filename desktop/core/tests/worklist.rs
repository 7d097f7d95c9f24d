//! The worklist sync against a real server (in-process, SQLite): every patient's record comes
//! into the cache page by page with progress, stays readable with the server stopped, and the
//! next sync brings only what changed since.

mod common;

use std::sync::Mutex;

use common::create;
use curanet_desktop_core::{Cache, FhirClient, Freshness, Progress};
use curanet_http::testing::{TestBackend, TestServer};
use serde_json::{Value, json};

fn vital(patient: &str, n: usize) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": format!("pulse {n}")},
           "subject": {"reference": format!("Patient/{patient}")}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worklist_is_synced_with_progress_then_incrementally() {
    let server = TestServer::start(TestBackend::Sqlite, "desktop_worklist")
        .await
        .expect("a SQLite server");
    let base = server.base_url.clone();
    let mut patients = Vec::new();
    for i in 0..3 {
        let p = create(
            &base,
            json!({"resourceType": "Patient", "name": [{"family": format!("P{i}")}]}),
        )
        .await;
        for n in 0..5 {
            create(&base, vital(&p, n)).await;
        }
        patients.push(p);
    }
    let dir = std::env::temp_dir().join(format!("curanet-desktop-worklist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = Cache::open(&dir.join("cache.db"), "acct-1", 10_000_000)
        .await
        .unwrap();
    let client = FhirClient::new(&base, None, cache).unwrap();

    let seen = Mutex::new(Vec::new());
    let report = client
        .sync_patients(&patients, None, &|p: Progress| seen.lock().unwrap().push(p))
        .await
        .unwrap();
    assert_eq!(report.resources, 18, "3 patients with 5 Observations each");
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!((seen[2].done, seen[2].total, seen[2].resources), (3, 3, 18));
    let since = report.since.clone().expect("the server's time");
    // The chart: everything cached of one patient.
    assert_eq!(
        client.cache().of_patient(&patients[0]).await.unwrap().len(),
        6
    );

    // Something changes on the server; the next sync brings only that.
    let added = create(&base, vital(&patients[1], 9)).await;
    let again = client
        .sync_patients(&patients, Some(&since), &|_| {})
        .await
        .unwrap();
    assert_eq!(again.resources, 1, "{again:?}");
    assert!(
        client
            .cached("Observation", &added)
            .await
            .unwrap()
            .is_some()
    );

    // Everything synced is readable with the server gone.
    server.stop().await;
    let offline = client.read("Observation", &added).await.unwrap();
    assert!(matches!(offline.freshness, Freshness::Stale { .. }));
    let _ = std::fs::remove_dir_all(&dir);
}
