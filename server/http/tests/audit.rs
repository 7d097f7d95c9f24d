//! The audit trail against the real binary on both engines: a read, a search, a refused read
//! (403), a request without a token (401) and sign-ins each leave a BALP-shaped AuditEvent; searches
//! record their query, never their results; no token is stored; AuditEvents cannot be
//! written through the API; a patient lists who accessed their records; SIGTERM flushes the
//! queue; `curanet audit verify` passes on the clean chain and names a record changed in the
//! database; two instances on one PostgreSQL extend one linear chain.

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::tokens::{Minter, server_args};
use common::{Database, Process};
use curanet_http::testing::TestBackend;
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(interactions_are_audited_and_chained, audit_trail);

/// Two instances on one PostgreSQL database append to one linear chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_extend_one_chain() {
    let Some(db) = Database::create(TestBackend::Postgres, "audit_two").await else {
        return;
    };
    let first = Process::start(&db.url, &server_args(&["--require-auth"])).await;
    let second = Process::start(&db.url, &server_args(&["--require-auth"])).await;
    let admin = Minter::open(&db.url).await.user("dr-admin", "user/*.cruds");
    let client = reqwest::Client::new();
    let reads = |base: String| {
        let (client, admin) = (client.clone(), admin.clone());
        async move {
            for round in 0..6 {
                let batch: Vec<_> = (0..20)
                    .map(|i| {
                        let (client, admin, base) = (client.clone(), admin.clone(), base.clone());
                        tokio::spawn(async move {
                            call(
                                &client,
                                Method::GET,
                                &format!("{base}/Patient?_count=1"),
                                Some(&admin),
                                &format!("two-{round}-{i}"),
                                None,
                            )
                            .await
                            .0
                        })
                    })
                    .collect();
                for status in batch {
                    assert_eq!(status.await.unwrap(), 200);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    tokio::join!(reads(first.base.clone()), reads(second.base.clone()));
    assert!(first.terminate().success());
    assert!(second.terminate().success());
    let (ok, out) = verify(&db.url);
    assert!(ok, "{out}");
    assert!(out.contains("(240 records)"), "{out}");
    db.remove().await;
}

/// The password of the clinician who signs in.
const PASSWORD: &str = "correct horse battery staple";

/// A request with an optional bearer token and request id: (status, body).
async fn call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    request_id: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = client
        .request(method, url)
        .header("x-request-id", request_id);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        let content_type = if b.is_array() {
            "application/json-patch+json"
        } else {
            "application/fhir+json"
        };
        r = r.header("content-type", content_type).body(b.to_string());
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The `jti` of a JWT (its payload, unverified).
fn jti(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

/// The request id an AuditEvent names.
fn request_id_of(ae: &Value) -> Option<&str> {
    ae["entity"]
        .as_array()?
        .iter()
        .find(|e| e["type"]["code"] == "XrequestId")?["what"]["identifier"]["value"]
        .as_str()
}

/// The entity with this `object-role` code.
fn entity<'a>(ae: &'a Value, role: &str) -> Option<&'a Value> {
    ae["entity"]
        .as_array()?
        .iter()
        .find(|e| e["role"]["code"] == role)
}

/// Every stored AuditEvent (as the admin sees them through the API).
async fn audit_events(client: &reqwest::Client, base: &str, admin: &str) -> Vec<Value> {
    let (status, bundle) = call(
        client,
        Method::GET,
        &format!("{base}/AuditEvent?_count=1000"),
        Some(admin),
        "audit-list",
        None,
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect()
}

/// Waits (up to 3 s, the flush interval and then some) until AuditEvents with these request ids
/// are stored; returns them in the same order.
async fn wait_for(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    request_ids: &[&str],
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let all = audit_events(client, base, admin).await;
        let found: Vec<Option<Value>> = request_ids
            .iter()
            .map(|id| all.iter().find(|ae| request_id_of(ae) == Some(id)).cloned())
            .collect();
        if found.iter().all(Option::is_some) {
            return found.into_iter().map(Option::unwrap).collect();
        }
        assert!(
            Instant::now() < deadline,
            "no AuditEvent within 3 s for {:?}",
            request_ids
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|(id, _)| id)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One text column of every row a statement returns, on either engine.
async fn texts(url: &str, statement: &'static str, binds: &[&str]) -> Vec<String> {
    use sqlx::{Connection, Row};
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let mut q = sqlx::query(statement);
        for b in binds {
            q = q.bind(b.to_string());
        }
        let rows = q.fetch_all(&mut conn).await.unwrap();
        rows.iter().map(|r| r.get::<String, _>(0)).collect()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        let mut q = sqlx::query(statement);
        for b in binds {
            q = q.bind(b.to_string());
        }
        let rows = q.fetch_all(&mut conn).await.unwrap();
        rows.iter().map(|r| r.get::<String, _>(0)).collect()
    }
}

/// Runs a changing statement on either engine.
async fn execute(url: &str, statement: &'static str, binds: &[&str]) {
    use sqlx::Connection;
    if url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let mut q = sqlx::query(statement);
        for b in binds {
            q = q.bind(b.to_string());
        }
        q.execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        let mut q = sqlx::query(statement);
        for b in binds {
            q = q.bind(b.to_string());
        }
        q.execute(&mut conn).await.unwrap();
    }
}

/// `curanet audit verify` on the database: (success, stdout).
fn verify(url: &str) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_curanet"))
        .args(["audit", "verify", "--database-url", url])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn audit_trail(backend: TestBackend) {
    let Some(db) = Database::create(backend, "audit").await else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_curanet"))
        .args(["user", "create", "--database-url", &db.url])
        .args([
            "--role",
            "doctor",
            "--email",
            "dr@audit.in",
            "--name",
            "Asha Rao",
        ])
        .env("CURANET_NEW_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = Process::start(&db.url, &server_args(&["--require-auth"])).await;
    let base = server.base.clone();
    let root = base.trim_end_matches("/fhir").to_string();
    let client = reqwest::Client::new();
    let minter = Minter::open(&db.url).await;
    let admin = minter.user("dr-admin", "user/*.cruds");

    let (status, patient) = call(
        &client,
        Method::POST,
        &format!("{base}/Patient"),
        Some(&admin),
        "audit-create-patient",
        Some(&common::patient(1)),
    )
    .await;
    assert_eq!(status, 201, "{patient}");
    let a = patient["id"].as_str().unwrap().to_string();
    let (status, obs) = call(
        &client,
        Method::POST,
        &format!("{base}/Observation"),
        Some(&admin),
        "audit-create-obs",
        Some(&json!({
            "resourceType": "Observation", "status": "final",
            "code": {"text": "glucose"}, "subject": {"reference": format!("Patient/{a}")},
        })),
    )
    .await;
    assert_eq!(status, 201, "{obs}");
    let o = obs["id"].as_str().unwrap().to_string();

    // A read by the patient, a search by the clinician, a refused read, a request without token.
    let reader = minter.patient(&a, "patient/*.rs");
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/Observation/{o}"),
        Some(&reader),
        "audit-read",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let query = format!("patient={a}&code:text=glucose");
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/Observation?{query}"),
        Some(&admin),
        "audit-search",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 1, "{body}");
    let narrow = minter.user("dr-narrow", "user/Patient.rs");
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/Observation/{o}"),
        Some(&narrow),
        "audit-denied",
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = call(
        &client,
        Method::GET,
        &format!("{base}/Patient/{a}"),
        None,
        "audit-anonymous",
        None,
    )
    .await;
    assert_eq!(status, 401);

    // A sign-in, and a failed one.
    let sign_in = |password: &'static str, request_id: &'static str| {
        let (client, root) = (client.clone(), root.clone());
        async move {
            let r = client
                .post(format!("{root}/api/auth/login"))
                .header("x-request-id", request_id)
                .json(&json!({"identifier": "dr@audit.in", "password": password}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, signed_in) = sign_in(PASSWORD, "audit-login").await;
    assert_eq!(status, 200, "{signed_in}");
    let (status, body) = sign_in("not the password at all", "audit-login-failed").await;
    assert_eq!(status, 401, "{body}");

    let found = wait_for(
        &client,
        &base,
        &admin,
        &[
            "audit-create-obs",
            "audit-read",
            "audit-search",
            "audit-denied",
            "audit-anonymous",
            "audit-login",
            "audit-login-failed",
        ],
    )
    .await;
    let [created, read, search, denied, anonymous, login, failed] = &found[..] else {
        unreachable!()
    };

    // Sign-ins: DCM 110114 / 110122, the user by fhirUser; nothing of the request or tokens.
    assert_eq!(login["type"]["code"], "110114");
    assert_eq!(login["subtype"][0]["code"], "110122");
    assert_eq!(login["outcome"], "0");
    assert_eq!(login["agent"][0]["who"]["reference"], signed_in["fhirUser"]);
    assert_eq!(failed["subtype"][0]["code"], "110122");
    assert_eq!(failed["outcome"], "8");
    assert!(failed["agent"][0].get("who").is_none());

    // Create: action C, the version written.
    assert_eq!(created["action"], "C");
    assert_eq!(created["subtype"][0]["code"], "create");
    assert_eq!(
        entity(created, "4").unwrap()["what"]["reference"],
        format!("Observation/{o}/_history/1")
    );

    // Read: BALP Read with the patient, the data, the user (fhirUser, jti), the client, the server.
    assert_eq!(read["type"]["code"], "rest");
    assert_eq!(read["subtype"][0]["code"], "read");
    assert_eq!(read["action"], "R");
    assert_eq!(read["outcome"], "0");
    assert!(read["recorded"].as_str().unwrap().ends_with('Z'));
    let user = &read["agent"][0];
    assert_eq!(user["who"]["reference"], format!("Patient/{a}"));
    assert_eq!(user["requestor"], true);
    assert_eq!(
        user["policy"][0],
        format!("urn:ietf:params:oauth:jti:{}", jti(&reader))
    );
    assert_eq!(user["network"]["address"], "127.0.0.1");
    let app = &read["agent"][1];
    assert_eq!(app["who"]["identifier"]["value"], "test-app");
    assert_eq!(app["type"]["coding"][0]["code"], "110152");
    assert_eq!(read["agent"][2]["type"]["coding"][0]["code"], "110153");
    assert_eq!(
        entity(read, "1").unwrap()["what"]["reference"],
        format!("Patient/{a}")
    );
    assert_eq!(
        entity(read, "4").unwrap()["what"]["reference"],
        format!("Observation/{o}")
    );

    // Search: the raw query, the patient searched for, never the results.
    assert_eq!(search["subtype"][0]["code"], "search-type");
    assert_eq!(search["action"], "E");
    assert_eq!(search["outcome"], "0");
    let q = entity(search, "24").unwrap();
    assert_eq!(
        STANDARD.decode(q["query"].as_str().unwrap()).unwrap(),
        query.as_bytes()
    );
    assert_eq!(
        entity(search, "1").unwrap()["what"]["reference"],
        format!("Patient/{a}")
    );
    assert!(
        !search.to_string().contains(&o),
        "the search's record names a result: {search}"
    );
    assert_eq!(
        search["agent"][0]["who"]["reference"],
        "Practitioner/dr-admin"
    );

    // Refused: serious failure with the reason, the user still named.
    assert_eq!(denied["subtype"][0]["code"], "read");
    assert_eq!(denied["outcome"], "8");
    assert!(
        denied["outcomeDesc"].as_str().unwrap().contains("403"),
        "{denied}"
    );
    assert_eq!(
        denied["agent"][0]["who"]["reference"],
        "Practitioner/dr-narrow"
    );
    // No token: serious failure, nobody named.
    assert_eq!(anonymous["outcome"], "8");
    assert_eq!(anonymous["agent"][0]["name"], "unauthenticated");
    assert!(anonymous["agent"][0].get("who").is_none());
    assert_eq!(
        entity(anonymous, "4").unwrap()["what"]["reference"],
        format!("Patient/{a}")
    );

    // AuditEvents are append-only, for everyone (the admin has user/*.cruds).
    let id = read["id"].as_str().unwrap().to_string();
    let mut changed = read.clone();
    changed["outcome"] = json!("4");
    for (method, url, body) in [
        (
            Method::PUT,
            format!("{base}/AuditEvent/{id}"),
            Some(changed),
        ),
        (Method::DELETE, format!("{base}/AuditEvent/{id}"), None),
        (
            Method::PATCH,
            format!("{base}/AuditEvent/{id}"),
            Some(json!([{"op": "replace", "path": "/outcome", "value": "4"}])),
        ),
        (
            Method::POST,
            format!("{base}/AuditEvent"),
            Some(json!({"resourceType": "AuditEvent"})),
        ),
        (Method::DELETE, format!("{base}/AuditEvent?_id={id}"), None),
        (
            Method::POST,
            base.clone(),
            Some(
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [
                    {"request": {"method": "DELETE", "url": format!("AuditEvent/{id}")}},
                ]}),
            ),
        ),
    ] {
        let (status, outcome) = call(
            &client,
            method.clone(),
            &url,
            Some(&admin),
            "audit-tamper",
            body.as_ref(),
        )
        .await;
        assert_eq!(status, 403, "{method} {url}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "forbidden");
    }

    // The patient lists who accessed their records; none of another patient's.
    let (status, mine) = call(
        &client,
        Method::GET,
        &format!("{base}/AuditEvent?patient={a}&_count=1000"),
        Some(&reader),
        "audit-mine",
        None,
    )
    .await;
    assert_eq!(status, 200, "{mine}");
    let mine: Vec<&Value> = mine["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    assert!(mine.iter().any(|ae| ae["id"] == id.as_str()));
    assert!(
        mine.iter()
            .any(|ae| request_id_of(ae) == Some("audit-search"))
    );
    let (status, others) = call(
        &client,
        Method::GET,
        &format!("{base}/AuditEvent?patient=someone-else"),
        Some(&reader),
        "audit-others",
        None,
    )
    .await;
    assert_eq!(status, 200, "{others}");
    assert_eq!(others["total"], 0, "{others}");

    // A patient reads their own record by id; another's is not found.
    let (status, own) = call(
        &client,
        Method::GET,
        &format!("{base}/AuditEvent/{id}"),
        Some(&reader),
        "audit-own",
        None,
    )
    .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["id"], id.as_str());
    assert_eq!(own["meta"]["versionId"], "1");
    let (status, _) = call(
        &client,
        Method::GET,
        &format!("{base}/AuditEvent/{id}/_history/1"),
        Some(&admin),
        "audit-vread",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let login_id = login["id"].as_str().unwrap();
    let (status, body) = call(
        &client,
        Method::GET,
        &format!("{base}/AuditEvent/{login_id}"),
        Some(&reader),
        "audit-not-own",
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // Writes are audited in their own transaction: the record is there as soon as the write is
    // acknowledged, before any flush. A failed write leaves no resource and a failure record.
    let (status, written) = call(
        &client,
        Method::POST,
        &format!("{base}/Patient"),
        Some(&admin),
        "audit-same-tx",
        Some(&common::patient(2)),
    )
    .await;
    assert_eq!(status, 201, "{written}");
    let w = written["id"].as_str().unwrap().to_string();
    let rows = texts(
        &db.url,
        "SELECT body FROM audit_block WHERE body LIKE '%audit-same-tx%'",
        &[],
    )
    .await;
    assert_eq!(
        rows.len(),
        1,
        "the write's record is not in its transaction"
    );
    let (status, by_entity) = call(
        &client,
        Method::GET,
        &format!("{base}/AuditEvent?entity=Patient/{w}&action=C"),
        Some(&admin),
        "audit-by-entity",
        None,
    )
    .await;
    assert_eq!(status, 200, "{by_entity}");
    assert_eq!(by_entity["total"], 1, "{by_entity}");
    let record = &by_entity["entry"][0]["resource"];
    assert_eq!(
        entity(record, "4").unwrap()["what"]["reference"],
        format!("Patient/{w}/_history/1")
    );
    assert_eq!(record["outcome"], "0");
    let (status, failed_write) = call(
        &client,
        Method::POST,
        &format!("{base}/Observation"),
        Some(&admin),
        "audit-failed-write",
        Some(&json!({"resourceType": "Observation", "status": "bogus", "code": {"text": "x"}})),
    )
    .await;
    assert_eq!(status, 422, "{failed_write}");
    let failed_write = &wait_for(&client, &base, &admin, &["audit-failed-write"]).await[0];
    assert_eq!(failed_write["outcome"], "4");
    assert_eq!(failed_write["action"], "C");
    assert!(
        failed_write["outcomeDesc"]
            .as_str()
            .unwrap()
            .contains("HTTP 422"),
        "{failed_write}"
    );

    // The search parameters of the audit log.
    let search_total = |query: String| {
        let (client, base, admin) = (client.clone(), base.clone(), admin.clone());
        async move {
            let (status, bundle) = call(
                &client,
                Method::GET,
                &format!("{base}/AuditEvent?{query}"),
                Some(&admin),
                "audit-params",
                None,
            )
            .await;
            assert_eq!(status, 200, "{query}: {bundle}");
            bundle
        }
    };
    let today = &read["recorded"].as_str().unwrap()[..10];
    let reads_of_a = search_total(format!("patient={a}&subtype=read&action=R")).await;
    assert!(reads_of_a["total"].as_u64().unwrap() >= 1, "{reads_of_a}");
    for e in reads_of_a["entry"].as_array().unwrap() {
        assert_eq!(e["resource"]["subtype"][0]["code"], "read");
    }
    let denials = search_total("outcome=8&agent=Practitioner/dr-narrow".into()).await;
    assert_eq!(denials["total"], 1, "{denials}");
    assert_eq!(denials["entry"][0]["resource"]["id"], denied["id"]);
    let by_altid = search_total("altid=acct-dr-narrow".into()).await;
    assert_eq!(by_altid["total"], 1, "{by_altid}");
    let sign_ins = search_total(
        "type=http://dicom.nema.org/resources/ontology/DCM|110114&subtype=110122".into(),
    )
    .await;
    assert_eq!(sign_ins["total"], 2, "{sign_ins}");
    let rest = search_total(format!(
        "type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest&date=ge{today}&_id={id}"
    ))
    .await;
    assert_eq!(rest["total"], 1, "{rest}");
    let none = search_total("date=lt2000-01-01".into()).await;
    assert_eq!(none["total"], 0, "{none}");
    let by_obs = search_total(format!("entity=Observation/{o}&_total=none")).await;
    assert!(by_obs.get("total").is_none(), "{by_obs}");
    // Its create, the patient's read and the refused read.
    assert_eq!(by_obs["entry"].as_array().unwrap().len(), 3, "{by_obs}");
    // Oldest first, one a page, following the next links.
    let mut url = format!("{base}/AuditEvent?_sort=date&_count=1&action=C");
    let mut seen = Vec::new();
    loop {
        let (status, page) =
            call(&client, Method::GET, &url, Some(&admin), "audit-page", None).await;
        assert_eq!(status, 200, "{page}");
        for e in page["entry"].as_array().into_iter().flatten() {
            seen.push(e["resource"]["recorded"].as_str().unwrap().to_string());
        }
        match page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(next) => {
                // The links name the public base; the test server listens elsewhere.
                let next = next["url"].as_str().unwrap();
                url = format!("{base}{}", next.split_once("/fhir").unwrap().1);
            }
            None => break,
        }
        assert!(seen.len() < 20, "paging does not end");
    }
    assert!(seen.len() >= 4, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    // What the log cannot search is refused, naming the parameter.
    for query in [
        "identity=x",
        "patient:missing=true",
        "_sort=address",
        "date=yesterday",
    ] {
        let (status, outcome) = call(
            &client,
            Method::GET,
            &format!("{base}/AuditEvent?{query}"),
            Some(&admin),
            "audit-unsupported",
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        let name = query.split('=').next().unwrap();
        assert!(outcome.to_string().contains(name), "{query}: {outcome}");
    }

    // A read just before SIGTERM is written by the shutdown.
    let (status, _) = call(
        &client,
        Method::GET,
        &format!("{base}/Patient/{a}"),
        Some(&admin),
        "audit-before-shutdown",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(server.terminate().success());
    // Blocks: their records' JSON, one a line.
    let stored = texts(&db.url, "SELECT body FROM audit_block", &[]).await;
    let records: usize = stored.iter().map(|b| b.lines().count()).sum();
    assert!(
        stored.iter().any(|c| c.contains("audit-before-shutdown")),
        "the last read was not flushed at shutdown"
    );
    // No token or password is stored, only the tokens' jti.
    assert!(stored.iter().all(|c| !c.contains(PASSWORD)));
    let issued = [
        signed_in["access_token"].as_str().unwrap().to_string(),
        signed_in["refresh_token"].as_str().unwrap().to_string(),
    ];
    for token in [&admin, &reader, &narrow, &issued[0], &issued[1]] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            stored.iter().all(|c| !c.contains(signature)),
            "a token is stored"
        );
    }

    // The chain: intact, then broken at the record changed in the database.
    let (ok, out) = verify(&db.url);
    assert!(ok, "{out}");
    assert!(out.starts_with("OK"), "{out}");
    assert!(out.contains(&format!("({records} records)")), "{out}");
    // The record read's block (the first record of a block is named by the block's number).
    let block = id.split('-').next().unwrap().to_string();
    execute(
        &db.url,
        "UPDATE audit_block SET body = replace(body, 'audit-read', 'audit-reaD') \
         WHERE block = CAST($1 AS BIGINT)",
        &[&block],
    )
    .await;
    let (ok, out) = verify(&db.url);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("AuditEvent/{block})")), "{out}");
    assert!(out.contains("changed"), "{out}");
    execute(
        &db.url,
        "UPDATE audit_block SET body = replace(body, 'audit-reaD', 'audit-read') \
         WHERE block = CAST($1 AS BIGINT)",
        &[&block],
    )
    .await;
    let (ok, out) = verify(&db.url);
    assert!(ok, "{out}");

    // A search column changed (the record would no longer list for its patient).
    execute(
        &db.url,
        "UPDATE audit_block_key SET key = 'patient|someone-else' \
         WHERE block = CAST($1 AS BIGINT) AND key = 'patient|' || $2",
        &[&block, &a],
    )
    .await;
    let (ok, out) = verify(&db.url);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("AuditEvent/{block})")), "{out}");
    assert!(out.contains("search columns"), "{out}");
    execute(
        &db.url,
        "UPDATE audit_block_key SET key = 'patient|' || $1 \
         WHERE block = CAST($2 AS BIGINT) AND key = 'patient|someone-else'",
        &[&a, &block],
    )
    .await;
    let (ok, out) = verify(&db.url);
    assert!(ok, "{out}");

    // Two blocks swapped: the chain no longer follows.
    let order = texts(
        &db.url,
        "SELECT CAST(block AS TEXT) FROM audit_block ORDER BY seq LIMIT 2",
        &[],
    )
    .await;
    execute(
        &db.url,
        "UPDATE audit_block SET seq = -seq WHERE block = CAST($1 AS BIGINT) OR block = CAST($2 AS BIGINT)",
        &[&order[0], &order[1]],
    )
    .await;
    execute(
        &db.url,
        "UPDATE audit_block SET seq = CASE WHEN seq = -1 THEN 2 ELSE 1 END WHERE seq < 0",
        &[],
    )
    .await;
    let (ok, out) = verify(&db.url);
    assert!(!ok, "{out}");
    assert!(out.contains("BROKEN at record 1"), "{out}");
    assert!(out.contains("removed or reordered"), "{out}");
    execute(
        &db.url,
        "UPDATE audit_block SET seq = -seq WHERE seq <= 2",
        &[],
    )
    .await;
    execute(
        &db.url,
        "UPDATE audit_block SET seq = CASE WHEN seq = -1 THEN 2 ELSE 1 END WHERE seq < 0",
        &[],
    )
    .await;
    let (ok, out) = verify(&db.url);
    assert!(ok, "{out}");

    // The last block unlinked: the head names it.
    let last = texts(
        &db.url,
        "SELECT CAST(block AS TEXT) FROM audit_block ORDER BY seq DESC LIMIT 1",
        &[],
    )
    .await
    .remove(0);
    let before_last = texts(
        &db.url,
        "SELECT prev_hash FROM audit_block ORDER BY seq DESC LIMIT 1",
        &[],
    )
    .await
    .remove(0);
    execute(
        &db.url,
        "UPDATE audit_block SET seq = NULL, prev_hash = NULL, hash = NULL \
         WHERE block = CAST($1 AS BIGINT)",
        &[&last],
    )
    .await;
    let (ok, out) = verify(&db.url);
    assert!(!ok, "{out}");
    assert!(out.contains("removed"), "{out}");
    // The head moved back too: the record is outside the chain (reported once it is older
    // than the minute a running server may take to link it).
    execute(
        &db.url,
        "UPDATE audit_log_head SET seq = seq - 1, hash = $1 WHERE id = 1",
        &[&before_last],
    )
    .await;
    let (ok, out) = verify(&db.url);
    assert!(ok, "{out}");
    execute(
        &db.url,
        "UPDATE audit_block SET first_recorded = 0 WHERE block = CAST($1 AS BIGINT)",
        &[&last],
    )
    .await;
    let (ok, out) = verify(&db.url);
    assert!(!ok, "{out}");
    assert!(out.contains("outside the chain"), "{out}");
    assert!(out.contains(&format!("AuditEvent/{last}")), "{out}");

    db.remove().await;
}
