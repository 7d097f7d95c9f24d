//! The resource-server check (`--require-auth`) against the real binary on both engines: 401
//! without a valid token, public metadata and discovery, `system/` scopes per interaction,
//! granular scopes narrowing searches and reads, and batch/transaction entries.

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use common::smart::{access_token, register};
use common::{Database, Process};
use curanet_http::testing::TestBackend;
use serde_json::{Value, json};

const PUBLIC: &str = "http://curanet.test";
const TOKEN_URL: &str = "http://curanet.test/oauth/token";
const LAB: &str = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";

on_both_backends!(require_auth_enforces_system_scopes, enforcement);

/// An Observation of one category (`laboratory` or `vital-signs`).
fn observation(category: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": category,
        }]}],
        "code": {"text": category},
    })
}

/// A request with an optional bearer token: (status, headers, body).
async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut r = client.request(method, url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r
            .header("content-type", "application/fhir+json")
            .body(b.to_string());
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

/// The issue code of an OperationOutcome answer.
fn issue_code(body: &Value) -> &str {
    body["issue"][0]["code"].as_str().unwrap_or("")
}

/// The ids of a searchset's matches.
fn match_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn enforcement(backend: TestBackend) {
    use reqwest::Method;
    let Some(db) = Database::create(backend, "authz").await else {
        return;
    };
    register(&db.url, "all", "system/*.cruds");
    register(&db.url, "patients", "system/Patient.rs");
    register(
        &db.url,
        "lab",
        &format!("system/Observation.rs?category={LAB}"),
    );
    let server = Process::start(
        &db.url,
        &["--require-auth", "--base-url", &format!("{PUBLIC}/fhir")],
    )
    .await;
    let base = server.base.clone();
    let root = base.trim_end_matches("/fhir").to_string();
    let client = reqwest::Client::new();
    let token = |id: &'static str, scope: &'static str| {
        let (client, root) = (client.clone(), root.clone());
        async move { access_token(&client, &root, TOKEN_URL, id, scope).await }
    };
    let all = token("all", "system/*.cruds").await;
    let patients = token("patients", "system/Patient.rs").await;
    let lab = token("lab", "system/Observation.rs").await;

    // No token: 401 with the Bearer challenge and `login`; garbage: `invalid_token`.
    let (status, headers, body) =
        call(&client, Method::GET, &format!("{base}/Patient"), None, None).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"curanet\"");
    assert_eq!(issue_code(&body), "login");
    for garbage in ["garbage", "a.b.c", &format!("{}x", &all[..all.len() - 1])] {
        let (status, headers, body) = call(
            &client,
            Method::GET,
            &format!("{base}/Patient"),
            Some(garbage),
            None,
        )
        .await;
        assert_eq!(status, 401, "{body}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""));
    }

    // Public even so: the CapabilityStatement, discovery, OAuth and the probes.
    for url in [
        format!("{base}/metadata"),
        format!("{base}/.well-known/smart-configuration"),
        format!("{root}/.well-known/openid-configuration"),
        format!("{root}/oauth/jwks"),
        format!("{root}/healthz"),
    ] {
        let (status, _, _) = call(&client, Method::GET, &url, None, None).await;
        assert_eq!(status, 200, "{url}");
    }

    // system/*.cruds does everything.
    let (status, _, patient) = call(
        &client,
        Method::POST,
        &format!("{base}/Patient"),
        Some(&all),
        Some(&common::patient(1)),
    )
    .await;
    assert_eq!(status, 201, "{patient}");
    let pid = patient["id"].as_str().unwrap().to_string();
    let (status, _, lab_obs) = call(
        &client,
        Method::POST,
        &format!("{base}/Observation"),
        Some(&all),
        Some(&observation("laboratory")),
    )
    .await;
    assert_eq!(status, 201, "{lab_obs}");
    let (status, _, vital) = call(
        &client,
        Method::POST,
        &format!("{base}/Observation"),
        Some(&all),
        Some(&observation("vital-signs")),
    )
    .await;
    assert_eq!(status, 201, "{vital}");
    let (lab_id, vital_id) = (
        lab_obs["id"].as_str().unwrap(),
        vital["id"].as_str().unwrap(),
    );
    for url in [
        format!("{base}?_type=Patient,Observation"),
        format!("{base}/_history"),
        format!("{base}/Observation/_history"),
        format!("{base}/Observation?category=vital-signs"),
    ] {
        let (status, _, body) = call(&client, Method::GET, &url, Some(&all), None).await;
        assert_eq!(status, 200, "{url}: {body}");
    }

    // system/Patient.rs reads and searches Patients, nothing else.
    let (status, _, body) = call(
        &client,
        Method::GET,
        &format!("{base}/Patient/{pid}"),
        Some(&patients),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = call(
        &client,
        Method::GET,
        &format!("{base}/Patient?_id={pid}"),
        Some(&patients),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(match_ids(&body), vec![pid.clone()]);
    let (status, _, body) = call(
        &client,
        Method::POST,
        &format!("{base}/Patient"),
        Some(&patients),
        Some(&common::patient(2)),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(issue_code(&body), "forbidden");
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("system/Patient.c"),
        "{body}"
    );
    for url in [
        format!("{base}/Observation"),
        format!("{base}?_type=Patient"),
        format!("{base}/_history"),
        format!("{base}/Patient?_has:Observation:subject:code=x"),
    ] {
        let (status, _, body) = call(&client, Method::GET, &url, Some(&patients), None).await;
        assert_eq!(status, 403, "{url}: {body}");
        assert_eq!(issue_code(&body), "forbidden");
    }
    // An include of a type the token cannot read is dropped and reported, not served.
    let (status, _, body) = call(
        &client,
        Method::GET,
        &format!("{base}/Patient?_revinclude=Observation:subject"),
        Some(&patients),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["resource"]["resourceType"] != "Observation")
    );
    assert!(
        body.to_string().contains("_revinclude=Observation:subject"),
        "{body}"
    );

    // Granular: the lab token searches exactly the lab Observations and cannot read the others.
    let (status, _, body) = call(
        &client,
        Method::GET,
        &format!("{base}/Observation"),
        Some(&lab),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(match_ids(&body), vec![lab_id.to_string()]);
    let (status, _, body) = call(
        &client,
        Method::GET,
        &format!("{base}/Observation/{lab_id}"),
        Some(&lab),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = call(
        &client,
        Method::GET,
        &format!("{base}/Observation/{vital_id}"),
        Some(&lab),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // A transaction with one forbidden entry commits nothing.
    let count = |token: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let (_, _, b) = call(
                &client,
                Method::GET,
                &format!("{base}/Patient?_summary=count"),
                Some(&token),
                None,
            )
            .await;
            b["total"].as_u64().unwrap()
        }
    };
    let before = count(all.clone()).await;
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0d8e2c1a-3b4f-4c5d-8e6f-7a8b9c0d1e2f", "resource": common::patient(3), "request": {"method": "POST", "url": "Patient"}},
        {"resource": observation("laboratory"), "request": {"method": "POST", "url": "Observation"}},
    ]});
    let writer = token("all", "system/Patient.cruds").await;
    let (status, _, body) = call(
        &client,
        Method::POST,
        &base,
        Some(&writer),
        Some(&transaction),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(count(all.clone()).await, before);

    // In a batch only the forbidden entry is refused.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Patient/{pid}")}},
        {"resource": observation("laboratory"), "request": {"method": "POST", "url": "Observation"}},
        {"resource": common::patient(4), "request": {"method": "POST", "url": "Patient"}},
    ]});
    let (status, _, body) = call(&client, Method::POST, &base, Some(&writer), Some(&batch)).await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<&str> = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 3, "{body}");
    assert!(statuses[0].starts_with("200"), "{body}");
    assert!(statuses[1].starts_with("403"), "{body}");
    assert!(statuses[2].starts_with("201"), "{body}");
    assert_eq!(count(all.clone()).await, before + 1);

    // A create-only token may create, but not conditionally (that would search and read).
    let create_only = token("all", "system/Patient.c").await;
    let url = format!("{base}/Patient");
    let (status, _, body) = call(
        &client,
        Method::POST,
        &url,
        Some(&create_only),
        Some(&common::patient(5)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let r = client
        .post(&url)
        .bearer_auth(&create_only)
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", format!("_id={pid}"))
        .body(common::patient(6).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // In a batch, a granular search is narrowed and a read outside the scope refused, also
    // when the entry's URL is absolute.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Observation"}},
        {"request": {"method": "GET", "url": format!("{PUBLIC}/fhir/Observation/{vital_id}")}},
    ]});
    let (status, _, body) = call(&client, Method::POST, &base, Some(&lab), Some(&batch)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        match_ids(&body["entry"][0]["resource"]),
        vec![lab_id.to_string()]
    );
    assert!(
        body["entry"][1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("403"),
        "{body}"
    );

    drop(server);
    db.remove().await;
}
