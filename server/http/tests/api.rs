//! Behaviour of the real server that a black-box FHIR suite cannot see: durability across a
//! crash, concurrency, graceful shutdown, limits, request ids, probes and the CLI — on both engines.

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use std::time::Duration;

use common::{Database, Process, patient, post};
use curanet_http::testing::TestBackend;
use serde_json::{Value, json};

on_both_backends!(acknowledged_writes_survive_a_crash, crash_durability);
on_both_backends!(concurrent_updates_lose_nothing, concurrent_updates);
on_both_backends!(concurrent_duplicate_health_ids_admit_one, health_id_race);
on_both_backends!(
    concurrent_conditional_writes_search_and_write_atomically,
    conditional_write_race
);
on_both_backends!(sigterm_finishes_in_flight_requests, graceful_shutdown);
on_both_backends!(limits_probes_and_request_ids, limits_and_probes);

async fn crash_durability(backend: TestBackend) {
    let Some(db) = Database::create(backend, "crash").await else {
        return;
    };
    let server = Process::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    // 200 concurrent creates: every acknowledged one must be readable after a SIGKILL.
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let (client, base) = (client.clone(), server.base.clone());
            tokio::spawn(async move { post(&client, &base, &patient(n)).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    server.crash();
    let server = Process::start(&db.url, &[]).await;
    for id in &ids {
        let r = client
            .get(format!("{}/Patient/{id}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "Patient/{id} lost after the crash");
    }
    drop(server);
    db.remove().await;
}

async fn concurrent_updates(backend: TestBackend) {
    let Some(db) = Database::create(backend, "concurrent").await else {
        return;
    };
    let server = Process::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let (_, created) = post(&client, &server.base, &patient(0)).await;
    let id = created["id"].as_str().unwrap().to_string();
    // 20 writers race with If-Match: W/"1": exactly one may win, the others get 412.
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let (client, base, mut body) = (client.clone(), server.base.clone(), created.clone());
            body["name"][0]["family"] = json!(format!("Writer{n}"));
            let id = id.clone();
            tokio::spawn(async move {
                client
                    .put(format!("{base}/Patient/{id}"))
                    .header("content-type", "application/fhir+json")
                    .header("if-match", "W/\"1\"")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        19,
        "{statuses:?}"
    );
    // 20 unconditional writers: all succeed, each in its own version.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (client, base, body, id) = (
                client.clone(),
                server.base.clone(),
                created.clone(),
                id.clone(),
            );
            tokio::spawn(async move {
                let r = client
                    .put(format!("{base}/Patient/{id}"))
                    .header("content-type", "application/fhir+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                r.json::<serde_json::Value>().await.unwrap()["meta"]["versionId"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().parse::<i64>().unwrap());
    }
    versions.sort();
    assert_eq!(
        versions,
        (3..23).collect::<Vec<_>>(),
        "versions must be distinct and gapless"
    );
    let history: serde_json::Value = client
        .get(format!("{}/Patient/{id}/_history?_count=100", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["entry"].as_array().unwrap().len(), 22);
    drop(server);
    db.remove().await;
}

async fn health_id_race(backend: TestBackend) {
    let Some(db) = Database::create(backend, "hidrace").await else {
        return;
    };
    let server = Process::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    // Ten clients claim the same free Health ID at once: exactly one may own it.
    let contested = curanet_fhir::HealthId::generate(2025, &mut rand::rng()).to_string();
    let claim = |rt: &str, n: usize| {
        json!({"resourceType": rt, "name": [{"family": format!("Claimant{n}")}],
               "identifier": [{"system": "https://curanet.in/fhir/sid/health-id", "value": contested}]})
    };
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let (client, base, body) = (client.clone(), server.base.clone(), claim("Patient", n));
            tokio::spawn(async move { post(&client, &base, &body).await.0 })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        9,
        "{statuses:?}"
    );
    // Uniqueness is server-wide, across resource types.
    assert_eq!(
        post(&client, &server.base, &claim("Practitioner", 99))
            .await
            .0,
        409
    );
    drop(server);
    db.remove().await;
}

/// Sends a write and returns (status, body).
async fn send(request: reqwest::RequestBuilder, content_type: &str, body: String) -> (u16, Value) {
    let r = request
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn conditional_write_race(backend: TestBackend) {
    let Some(db) = Database::create(backend, "condrace").await else {
        return;
    };
    let server = Process::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let criteria = "identifier=urn:test:race|1";
    // 20 conditional updates with the same criteria at once: the first creates, the others
    // update that one resource, each in its own version.
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let (client, base) = (client.clone(), server.base.clone());
            let body = json!({"resourceType": "Patient", "name": [{"family": format!("Racer{n}"), "given": ["R"]}],
                              "identifier": [{"system": "urn:test:race", "value": "1"}]});
            tokio::spawn(async move {
                let request = client.put(format!("{base}/Patient?{criteria}"));
                send(request, "application/fhir+json", body.to_string()).await
            })
        })
        .collect();
    let mut created = 0;
    let mut ids = Vec::new();
    let mut versions = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status == 200 || status == 201, "{status}: {body}");
        created += usize::from(status == 201);
        ids.push(body["id"].as_str().unwrap().to_string());
        versions.push(
            body["meta"]["versionId"]
                .as_str()
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
    }
    ids.sort();
    ids.dedup();
    versions.sort();
    assert_eq!(created, 1, "exactly one conditional update creates");
    assert_eq!(ids.len(), 1, "every update hit the same resource: {ids:?}");
    assert_eq!(versions, (1..=20).collect::<Vec<_>>());
    let bundle: Value = client
        .get(format!("{}/Patient?{criteria}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bundle["total"], 1, "one resource matches: {bundle}");
    let id = ids[0].clone();
    // 10 conditional patches without If-Match at once: each applies to the version current
    // inside its own write, so none is lost.
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let (client, base) = (client.clone(), server.base.clone());
            let ops = json!([{"op": "add", "path": "/name/0/given/-", "value": format!("G{n}")}]);
            tokio::spawn(async move {
                let request = client.patch(format!("{base}/Patient?{criteria}"));
                send(request, "application/json-patch+json", ops.to_string()).await
            })
        })
        .collect();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let patient: Value = client
        .get(format!("{}/Patient/{id}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patient["meta"]["versionId"], "30");
    let given = patient["name"][0]["given"].as_array().unwrap();
    assert_eq!(given.len(), 11, "a patch was lost: {given:?}");
    // 5 conditional deletes and 5 conditional creates of one criteria at once never leave two
    // live resources matching it.
    let other = "identifier=urn:test:race|2";
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let (client, base) = (client.clone(), server.base.clone());
            tokio::spawn(async move {
                if n % 2 == 0 {
                    let body = json!({"resourceType": "Patient",
                                      "identifier": [{"system": "urn:test:race", "value": "2"}]});
                    let request = client
                        .post(format!("{base}/Patient"))
                        .header("if-none-exist", other);
                    send(request, "application/fhir+json", body.to_string())
                        .await
                        .0
                } else {
                    let r = client
                        .delete(format!("{base}/Patient?{other}"))
                        .send()
                        .await
                        .unwrap();
                    r.status().as_u16()
                }
            })
        })
        .collect();
    for t in tasks {
        let status = t.await.unwrap();
        assert!(matches!(status, 200 | 201), "{status}");
    }
    let bundle: Value = client
        .get(format!("{}/Patient?{other}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(bundle["total"].as_u64().unwrap() <= 1, "{bundle}");
    drop(server);
    db.remove().await;
}

async fn graceful_shutdown(backend: TestBackend) {
    let Some(db) = Database::create(backend, "shutdown").await else {
        return;
    };
    let server = Process::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    // Large bodies keep requests in flight while the signal arrives.
    let big = |n: usize| {
        let mut p = patient(n);
        p["name"][0]["given"] = json!((0..2000).map(|i| format!("g{i}")).collect::<Vec<_>>());
        p
    };
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let (client, base, body) = (client.clone(), server.base.clone(), big(n));
            tokio::spawn(async move { post(&client, &base, &body).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "curanet exited with {status}");
    let mut acknowledged = Vec::new();
    for t in tasks {
        // A request either completed (201) or was never accepted (connection refused/reset).
        if let Ok((201, body)) = tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .unwrap()
        {
            acknowledged.push(body["id"].as_str().unwrap().to_string());
        }
    }
    let server = Process::start(&db.url, &[]).await;
    for id in &acknowledged {
        let r = client
            .get(format!("{}/Patient/{id}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "acknowledged Patient/{id} missing after shutdown"
        );
    }
    drop(server);
    db.remove().await;
}

async fn limits_and_probes(backend: TestBackend) {
    let Some(db) = Database::create(backend, "limits").await else {
        return;
    };
    let server = Process::start(&db.url, &["--max-body-bytes", "1000"]).await;
    let client = reqwest::Client::new();
    let root = server.base.trim_end_matches("/fhir").to_string();
    assert_eq!(
        client
            .get(format!("{root}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{root}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Too large: 413 with an OperationOutcome.
    let mut p = patient(0);
    p["name"][0]["given"] = json!((0..200).map(|i| format!("given{i}")).collect::<Vec<_>>());
    let (status, body) = post(&client, &server.base, &p).await;
    assert_eq!(status, 413);
    assert_eq!(body["resourceType"], "OperationOutcome");
    // Request ids: echoed when sent, generated when not.
    let r = client
        .get(format!("{}/metadata", server.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = client
        .get(format!("{}/metadata", server.base))
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()
            .get("x-request-id")
            .is_some_and(|v| v.len() >= 32)
    );
    drop(server);
    db.remove().await;
}

#[test]
fn migrate_command_prepares_a_database() {
    let dir =
        std::env::temp_dir().join(format!("curanet-migrate-{}", uuid::Uuid::new_v4().simple()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_curanet"))
        .args(["migrate", "--data-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("curanet.db").exists());
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_curanet"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--database-url",
        "--data-dir",
        "--base-url",
        "--log-format",
        "DATABASE_URL",
    ] {
        assert!(help.contains(flag), "serve --help does not explain {flag}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Two instances on one PostgreSQL: a change made through one is seen through the other at
/// once after its change notification (each instance caches reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_postgres_see_each_others_writes() {
    let Some(db) = Database::create(TestBackend::Postgres, "twoinst").await else {
        return;
    };
    let a = Process::start(&db.url, &[]).await;
    let b = Process::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let (_, created) = post(&client, &a.base, &patient(7)).await;
    let id = created["id"].as_str().unwrap().to_string();
    let version_on = |base: String| {
        let (client, id) = (client.clone(), id.clone());
        async move {
            let r = client
                .get(format!("{base}/Patient/{id}"))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap()["meta"]["versionId"].clone(),
            )
        }
    };
    assert_eq!(
        version_on(b.base.clone()).await,
        (200, json!("1")),
        "B reads (and caches) version 1"
    );
    let mut changed = created.clone();
    changed["active"] = json!(true);
    let r = client
        .put(format!("{}/Patient/{id}", a.base))
        .header("content-type", "application/fhir+json")
        .body(changed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = std::time::Instant::now();
    loop {
        if version_on(b.base.clone()).await == (200, json!("2")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "B still serves version 1 after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lag = started.elapsed();
    let d = client
        .delete(format!("{}/Patient/{id}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 200);
    let started = std::time::Instant::now();
    while version_on(b.base.clone()).await.0 != 410 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "B still serves the deleted Patient after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("update visible on the other instance after {lag:?}");
    drop((a, b));
    db.remove().await;
}

on_both_backends!(
    synthea_bundles_load_with_every_reference_resolved,
    synthea_ingest
);

/// Every Synthea bundle in `../shared/data/synthea` loads as a transaction, and no stored
/// reference still points at a `urn:uuid:` full URL. Skipped when the folder is absent.
async fn synthea_ingest(backend: TestBackend) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea");
    let Ok(listing) = std::fs::read_dir(&dir) else {
        eprintln!("skipping Synthea ingest: {} is absent", dir.display());
        return;
    };
    let mut files: Vec<_> = listing.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    let Some(server) = curanet_http::testing::TestServer::start(backend, "synthea").await else {
        return;
    };
    let client = reqwest::Client::new();
    let mut entries = 0;
    for chunk in files.chunks(2) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|f| {
                let (client, base, body) = (
                    client.clone(),
                    server.base_url.clone(),
                    std::fs::read(f).unwrap(),
                );
                tokio::spawn(async move {
                    let r = client
                        .post(&base)
                        .header("content-type", "application/fhir+json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    (
                        r.status().as_u16(),
                        r.json::<serde_json::Value>().await.unwrap(),
                    )
                })
            })
            .collect();
        for (t, f) in tasks.into_iter().zip(chunk) {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, 200, "{}: {body}", f.display());
            let statuses = body["entry"].as_array().unwrap();
            assert!(
                statuses
                    .iter()
                    .all(|e| e["response"]["status"] == "201 Created"),
                "{}",
                f.display()
            );
            entries += statuses.len();
        }
    }
    assert!(entries > 10_000, "only {entries} entries loaded");
    for rt in [
        "Observation",
        "Encounter",
        "Condition",
        "MedicationRequest",
        "Procedure",
        "Claim",
    ] {
        let mut url = format!("{}/{rt}?_count=1000", server.base_url);
        loop {
            let page: serde_json::Value =
                client.get(&url).send().await.unwrap().json().await.unwrap();
            let text = page.to_string();
            assert!(
                !text.contains("\"reference\":\"urn:uuid:"),
                "{rt} keeps an unresolved urn:uuid reference"
            );
            match page["link"]
                .as_array()
                .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
            {
                Some(next) => url = next["url"].as_str().unwrap().to_string(),
                None => break,
            }
        }
    }
    // References resolve to searchable patients.
    let patients: serde_json::Value = client
        .get(format!("{}/Patient?_count=1", server.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pid = patients["entry"][0]["resource"]["id"].as_str().unwrap();
    let obs: serde_json::Value = client
        .get(format!(
            "{}/Observation?patient={pid}&_summary=count",
            server.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        obs["total"].as_u64().unwrap() > 0,
        "no Observation found for Patient/{pid}"
    );
    println!("{backend:?}: {entries} Synthea entries loaded");
    server.stop().await;
}

/// `curanet reindex` rebuilds index rows that are missing (here: removed behind the server's back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_rebuilds_missing_index_rows() {
    let Some(db) = Database::create(TestBackend::Sqlite, "reindex").await else {
        return;
    };
    let server = Process::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    for n in 0..250 {
        post(&client, &server.base, &patient(n)).await;
    }
    let count = |base: String, query: &'static str| {
        let client = client.clone();
        async move {
            let r: serde_json::Value = client
                .get(format!("{base}/Patient?{query}&_summary=count"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["total"].as_u64().unwrap()
        }
    };
    assert_eq!(count(server.base.clone(), "family=Family12").await, 11);
    drop(server);
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query("DELETE FROM idx_string")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_curanet"))
        .args(["reindex", "--type", "Patient", "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Process::start(&db.url, &["--read-cache-mb", "0"]).await;
    assert_eq!(
        count(server.base.clone(), "family=Family12").await,
        11,
        "rows not rebuilt"
    );
    assert_eq!(
        count(server.base.clone(), "gender=other").await,
        250,
        "other params disturbed"
    );
    drop(server);
    db.remove().await;
}
