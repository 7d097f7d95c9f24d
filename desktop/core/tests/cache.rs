//! The desktop core against a real CuraNet server started in-process (SQLite): a read fills the
//! cache, a second read is confirmed by a 304, a change on the server is fetched, a stopped
//! server leaves the cached copy readable (stale), a record gone from the server is evicted
//! with its patient's data, the cache stays within its bound, and sign-out wipes it.

mod common;

use common::create;
use curanet_desktop_core::{Cache, DesktopError, FhirClient, Freshness};
use curanet_http::testing::{TestBackend, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_cached_revalidated_and_survive_the_server() {
    let server = TestServer::start(TestBackend::Sqlite, "desktop_cache")
        .await
        .expect("a SQLite server");
    let base = server.base_url.clone();
    let dir = std::env::temp_dir().join(format!("curanet-desktop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = Cache::open(&dir.join("cache.db"), "acct-1", 1_000_000)
        .await
        .unwrap();
    let client = FhirClient::new(&base, None, cache.clone()).unwrap();

    let patient = create(
        &base,
        json!({"resourceType": "Patient", "name": [{"family": "Rao"}]}),
    )
    .await;
    let vital = create(
        &base,
        json!({"resourceType": "Observation", "status": "final",
               "subject": {"reference": format!("Patient/{patient}")},
               "code": {"text": "heart rate"}}),
    )
    .await;

    // First read: from the server, into the cache; the second is confirmed by a 304.
    let first = client.read("Patient", &patient).await.unwrap();
    assert_eq!(first.freshness, Freshness::Fresh);
    assert_eq!(
        client.cached("Patient", &patient).await.unwrap(),
        Some(first.resource.clone())
    );
    let again = client.read("Patient", &patient).await.unwrap();
    assert_eq!(again.freshness, Freshness::Confirmed);
    assert_eq!(again.resource, first.resource);
    client.read("Observation", &vital).await.unwrap();

    // A change on the server replaces the cached copy.
    let mut changed = first.resource.clone();
    changed["name"][0]["family"] = json!("Rao-Iyer");
    let r = reqwest::Client::new()
        .put(format!("{base}/Patient/{patient}"))
        .header("content-type", "application/fhir+json")
        .body(changed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let fresh = client.read("Patient", &patient).await.unwrap();
    assert_eq!(fresh.freshness, Freshness::Fresh);
    assert_eq!(fresh.resource["name"][0]["family"], "Rao-Iyer");
    assert_eq!(fresh.resource["meta"]["versionId"], "2");

    // A record deleted on the server is evicted, with everything of its patient.
    let other = create(
        &base,
        json!({"resourceType": "Patient", "name": [{"family": "Gone"}]}),
    )
    .await;
    let other_vital = create(
        &base,
        json!({"resourceType": "Observation", "status": "final",
               "subject": {"reference": format!("Patient/{other}")}, "code": {"text": "bp"}}),
    )
    .await;
    client.read("Patient", &other).await.unwrap();
    client.read("Observation", &other_vital).await.unwrap();
    let r = reqwest::Client::new()
        .delete(format!("{base}/Patient/{other}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let gone = client.read("Patient", &other).await.unwrap_err();
    assert!(matches!(gone, DesktopError::NotAvailable(_)), "{gone}");
    assert_eq!(gone.code(), "not_available");
    assert_eq!(
        client.cached("Observation", &other_vital).await.unwrap(),
        None
    );

    // The server stops: what was cached stays readable, marked stale; the rest is offline.
    server.stop().await;
    let offline = client.read("Patient", &patient).await.unwrap();
    assert!(matches!(offline.freshness, Freshness::Stale { .. }));
    assert_eq!(offline.resource["name"][0]["family"], "Rao-Iyer");
    let vital_offline = client.read("Observation", &vital).await.unwrap();
    assert_eq!(vital_offline.resource["code"]["text"], "heart rate");
    let missing = client
        .read("Observation", "never-fetched")
        .await
        .unwrap_err();
    assert!(matches!(missing, DesktopError::Offline(_)), "{missing}");

    // Sign-out wipes the account's cache.
    cache.wipe().await.unwrap();
    assert_eq!(client.cached("Patient", &patient).await.unwrap(), None);
    assert_eq!(cache.bytes().await.unwrap(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_cache_keeps_within_its_bound_least_recently_used_first() {
    let dir = std::env::temp_dir().join(format!("curanet-desktop-lru-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body =
        |id: &str| json!({"resourceType": "Basic", "id": id, "code": {"text": "x".repeat(300)}});
    let one = body("a").to_string().len() as i64;
    let cache = Cache::open(&dir.join("lru.db"), "acct-1", one * 2 + 10)
        .await
        .unwrap();
    cache.put(&body("a"), None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    cache.put(&body("b"), None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Using "a" makes "b" the least recently used.
    assert!(cache.get("Basic", "a").await.unwrap().is_some());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    cache.put(&body("c"), None).await.unwrap();
    assert!(
        cache.get("Basic", "b").await.unwrap().is_none(),
        "b was evicted"
    );
    assert!(cache.get("Basic", "a").await.unwrap().is_some());
    assert!(cache.get("Basic", "c").await.unwrap().is_some());
    assert!(cache.bytes().await.unwrap() <= one * 2 + 10);
    let _ = std::fs::remove_dir_all(&dir);
}
