//! The resource-server check (`--require-auth`) against the real binary on both engines: 401
//! without a valid token, public metadata and discovery, `system/` scopes per interaction,
//! granular scopes narrowing searches and reads, and batch/transaction entries; `patient/`
//! tokens confined to their patient's records and `user/` tokens across patients (tokens
//! minted with the server's keys, `common::tokens`); CORS.

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use common::smart::{access_token, register};
use common::tokens::{Minter, server_args};
use common::{Database, Process};
use curanet_http::testing::TestBackend;
use serde_json::{Value, json};

const PUBLIC: &str = "http://curanet.test";
const TOKEN_URL: &str = "http://curanet.test/oauth/token";
const LAB: &str = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";

on_both_backends!(require_auth_enforces_system_scopes, enforcement);
on_both_backends!(patient_and_user_scopes, patient_and_user);
on_both_backends!(cors_for_browser_apps, cors);

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

/// `GET url` with a bearer token: (status, headers, body).
async fn get(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    call(client, reqwest::Method::GET, url, Some(token), None).await
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
        let (status, headers, body) = get(&client, &format!("{base}/Patient"), garbage).await;
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
    let (status, _, body) = get(&client, &format!("{base}/Patient/{pid}"), &patients).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get(&client, &format!("{base}/Patient?_id={pid}"), &patients).await;
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
    let (status, _, body) = get(
        &client,
        &format!("{base}/Patient?_revinclude=Observation:subject"),
        &patients,
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
    let (status, _, body) = get(&client, &format!("{base}/Observation"), &lab).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(match_ids(&body), vec![lab_id.to_string()]);
    let (status, _, body) = get(&client, &format!("{base}/Observation/{lab_id}"), &lab).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get(&client, &format!("{base}/Observation/{vital_id}"), &lab).await;
    assert_eq!(status, 403, "{body}");

    // A transaction with one forbidden entry commits nothing.
    let count = |token: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let (_, _, b) = get(&client, &format!("{base}/Patient?_summary=count"), &token).await;
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

/// An Observation of `category` about `subject`, optionally performed by `performer`.
fn observation_of(category: &str, subject: &str, performer: Option<&str>) -> Value {
    let mut o = observation(category);
    o["subject"] = json!({"reference": subject});
    if let Some(p) = performer {
        o["performer"] = json!([{"reference": p}]);
    }
    o
}

/// The ids of every entry of a Bundle, whatever its mode.
fn all_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str())
        .map(str::to_string)
        .collect()
}

/// The sorted form of a list of ids.
fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// The `response.status` of each entry of a batch- or transaction-response.
fn statuses(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["response"]["status"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn patient_and_user(backend: TestBackend) {
    use reqwest::Method;
    let Some(db) = Database::create(backend, "authz_patient").await else {
        return;
    };
    register(&db.url, "all", "system/*.cruds");
    let server = Process::start(&db.url, &server_args(&["--require-auth"])).await;
    let base = server.base.clone();
    let root = base.trim_end_matches("/fhir").to_string();
    let client = reqwest::Client::new();
    let all = access_token(&client, &root, TOKEN_URL, "all", "system/*.cruds").await;
    let minter = Minter::open(&db.url).await;
    let send = |method: Method, path: String, token: String, body: Option<Value>| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let url = if path.is_empty() {
                base.clone()
            } else {
                format!("{base}/{path}")
            };
            let (status, _, body) = call(&client, method, &url, Some(&token), body.as_ref()).await;
            (status, body)
        }
    };
    let create = |resource: Value| {
        let all = all.clone();
        async move {
            let ty = resource["resourceType"].as_str().unwrap().to_string();
            let (status, body) = send(Method::POST, ty, all, Some(resource)).await;
            assert_eq!(status, 201, "{body}");
            body["id"].as_str().unwrap().to_string()
        }
    };

    // Two patients, a practitioner, and their records.
    let a = create(common::patient(1)).await;
    let b = create(common::patient(2)).await;
    let dr = create(json!({"resourceType": "Practitioner", "name": [{"family": "Rao"}]})).await;
    let (pa, pb, pdr) = (
        format!("Patient/{a}"),
        format!("Patient/{b}"),
        format!("Practitioner/{dr}"),
    );
    let a_lab = create(observation_of("laboratory", &pa, Some(&pdr))).await;
    let a_vital = create(observation_of("vital-signs", &pa, None)).await;
    let b_lab = create(observation_of("laboratory", &pb, Some(&pdr))).await;
    // About B, performed by A: in A's compartment by the definition, but not A's record.
    let b_by_a = create(observation_of("vital-signs", &pb, Some(&pa))).await;
    let a_condition =
        create(json!({"resourceType": "Condition", "subject": {"reference": pa}})).await;

    // Case 28: own Patient 200; another 404; another's Observations: an empty Bundle.
    let reader = minter.patient(&a, "patient/*.rs");
    let (status, body) = send(Method::GET, pa.clone(), reader.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], a.as_str());
    for path in [
        pb.clone(),
        format!("{pb}/_history"),
        format!("Observation/{b_lab}"),
        format!("Observation/{b_by_a}"),
    ] {
        let (status, body) = send(Method::GET, path.clone(), reader.clone(), None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    for path in [
        format!("Observation?patient={b}"),
        format!("Observation?subject={pb}"),
        format!("Patient?_id={b}"),
    ] {
        let (status, body) = send(Method::GET, path.clone(), reader.clone(), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(match_ids(&body).is_empty(), "{path}: {body}");
        assert_eq!(body["total"], 0, "{path}: {body}");
    }
    // The patient's searches are exactly their records.
    let (_, body) = send(
        Method::GET,
        format!("Observation?patient={a}"),
        reader.clone(),
        None,
    )
    .await;
    assert_eq!(
        sorted(match_ids(&body)),
        sorted(vec![a_lab.clone(), a_vital.clone()])
    );
    let (_, body) = send(Method::GET, "Observation".into(), reader.clone(), None).await;
    assert_eq!(
        sorted(match_ids(&body)),
        sorted(vec![a_lab.clone(), a_vital.clone()])
    );
    assert_eq!(body["total"], 2, "{body}");
    let (_, body) = send(Method::GET, "Patient".into(), reader.clone(), None).await;
    assert_eq!(match_ids(&body), vec![a.clone()]);
    // Shared data is readable.
    let (status, body) = send(Method::GET, pdr.clone(), reader.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    // Includes never bring in other patients' records.
    for path in [
        format!("Patient?_revinclude=Observation:performer&_id={a}"),
        "Patient?_revinclude=Observation:subject".to_string(),
        format!("Practitioner?_id={dr}&_revinclude=Observation:performer"),
        "Observation?_include=Observation:subject&_include=Observation:performer".to_string(),
    ] {
        let (status, body) = send(Method::GET, path.clone(), reader.clone(), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let ids = all_ids(&body);
        for foreign in [&b, &b_lab, &b_by_a] {
            assert!(!ids.contains(foreign), "{path} leaked {foreign}: {body}");
        }
    }
    let (_, body) = send(
        Method::GET,
        "Observation?_include=Observation:performer".into(),
        reader.clone(),
        None,
    )
    .await;
    assert!(all_ids(&body).contains(&dr), "{body}");
    // Provenance of the patient's records comes along; of another patient's, not.
    let provenance = |target: &str| {
        json!({"resourceType": "Provenance", "target": [{"reference": target}],
               "recorded": "2024-01-01T00:00:00Z", "agent": [{"who": {"reference": pdr}}]})
    };
    let prov_a = create(provenance(&format!("Observation/{a_lab}"))).await;
    let prov_b = create(provenance(&format!("Observation/{b_lab}"))).await;
    let (status, body) = send(
        Method::GET,
        "Observation?_revinclude=Provenance:target".into(),
        reader.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ids = all_ids(&body);
    assert!(ids.contains(&prov_a) && !ids.contains(&prov_b), "{body}");
    // $everything: own only, and only the patient's records.
    let (status, body) = send(
        Method::GET,
        format!("{pa}/$everything"),
        reader.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ids = all_ids(&body);
    assert!(ids.contains(&a_lab) && ids.contains(&a_condition), "{body}");
    assert!(!ids.contains(&b_by_a) && !ids.contains(&b_lab), "{body}");
    let (status, _) = send(
        Method::GET,
        format!("{pb}/$everything"),
        reader.clone(),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Across all patients: refused.
    for path in [
        "Observation/_history",
        "_history",
        "?_type=Observation",
        "Patient/$everything",
    ] {
        let (status, body) = send(Method::GET, path.into(), reader.clone(), None).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // patient/ scopes without a patient in context: refused, saying why.
    let no_patient = minter.token("acct-x", "patient/*.rs", None, None);
    let (status, body) = send(Method::GET, pa.clone(), no_patient, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("no patient in context"), "{body}");

    // Case 29: a scope for another type.
    let obs_only = minter.patient(&a, "patient/Observation.rs");
    let (status, body) = send(
        Method::GET,
        format!("Condition?patient={a}"),
        obs_only.clone(),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(issue_code(&body), "forbidden");

    // Case 30: granular category: exactly the lab subset; a vital sign is not readable.
    let labs = minter.patient(&a, &format!("patient/Observation.rs?category={LAB}"));
    let (status, body) = send(
        Method::GET,
        format!("Observation?patient={a}"),
        labs.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(match_ids(&body), vec![a_lab.clone()]);
    let (status, _) = send(
        Method::GET,
        format!("Observation/{a_lab}"),
        labs.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        Method::GET,
        format!("Observation/{a_vital}"),
        labs.clone(),
        None,
    )
    .await;
    assert_ne!(status, 200);

    // Case 31: read without search.
    let r_only = minter.patient(&a, "patient/Observation.r");
    let (status, _) = send(
        Method::GET,
        format!("Observation?patient={a}"),
        r_only.clone(),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        Method::GET,
        format!("Observation/{a_lab}"),
        r_only.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200);

    // Case 32: v1 `.read`.
    let v1 = minter.patient(&a, "patient/Observation.read");
    let (status, body) = send(
        Method::GET,
        format!("Observation?patient={a}"),
        v1.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(match_ids(&body).len(), 2);
    let (status, _) = send(
        Method::GET,
        format!("Observation/{a_vital}"),
        v1.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200);

    // Case 33: `.rs` only cannot write.
    let body = observation_of("laboratory", &pa, None);
    let (status, outcome) = send(
        Method::POST,
        "Observation".into(),
        reader.clone(),
        Some(body),
    )
    .await;
    assert_eq!(status, 403, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(issue_code(&outcome), "forbidden");

    // Writes: only the patient's own records.
    let writer = minter.patient(&a, "patient/Observation.cruds patient/Patient.rs");
    let own = observation_of("vital-signs", &pa, None);
    let (status, created) = send(
        Method::POST,
        "Observation".into(),
        writer.clone(),
        Some(own.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let mine = created["id"].as_str().unwrap().to_string();
    let (status, body) = send(
        Method::POST,
        "Observation".into(),
        writer.clone(),
        Some(observation_of("vital-signs", &pb, None)),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Taking over another patient's record, or giving one's own away: refused.
    let mut takeover = observation_of("laboratory", &pa, None);
    takeover["id"] = json!(b_lab);
    let (status, body) = send(
        Method::PUT,
        format!("Observation/{b_lab}"),
        writer.clone(),
        Some(takeover),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let mut away = observation_of("vital-signs", &pb, None);
    away["id"] = json!(mine);
    let (status, body) = send(
        Method::PUT,
        format!("Observation/{mine}"),
        writer.clone(),
        Some(away),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let mut edit = own.clone();
    edit["id"] = json!(mine);
    edit["status"] = json!("amended");
    let (status, body) = send(
        Method::PUT,
        format!("Observation/{mine}"),
        writer.clone(),
        Some(edit),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for (method, path) in [
        (Method::DELETE, format!("Observation/{b_lab}")),
        (Method::DELETE, format!("Observation/{b_by_a}")),
        (Method::POST, "Practitioner".to_string()),
    ] {
        let body = (method == Method::POST).then(|| json!({"resourceType": "Practitioner"}));
        let (status, outcome) = send(method, path.clone(), writer.clone(), body).await;
        assert_eq!(status, 403, "{path}: {outcome}");
    }
    // Conditional creates and updates search only the patient's records: another patient's
    // match is neither answered nor overwritten.
    let r = client
        .post(format!("{base}/Observation"))
        .bearer_auth(&writer)
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", format!("_id={b_lab}"))
        .body(observation_of("laboratory", &pa, None).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    assert_ne!(created["id"], b_lab.as_str());
    let (status, body) = send(
        Method::PUT,
        format!("Observation?_id={b_lab}"),
        writer.clone(),
        Some(observation_of("laboratory", &pa, None)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(body["id"], b_lab.as_str());
    let (_, body) = send(
        Method::GET,
        format!("Observation/{b_lab}"),
        all.clone(),
        None,
    )
    .await;
    assert_eq!(body["subject"]["reference"], pb.as_str(), "{body}");
    // A patch could move a record out of the patient's: refused (update is checked).
    let (status, body) = send(
        Method::PATCH,
        format!("Observation/{a_lab}"),
        writer.clone(),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // A conditional delete reaches only the patient's records.
    let (status, body) = send(
        Method::DELETE,
        format!("Observation?_id={b_lab}"),
        writer.clone(),
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let (status, _) = send(
        Method::GET,
        format!("Observation/{b_lab}"),
        all.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200, "another patient's record was deleted");
    let (status, body) = send(
        Method::DELETE,
        format!("Observation/{mine}"),
        writer.clone(),
        None,
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {body}");

    // Case 34: a transaction with one forbidden entry commits nothing; in a batch only that
    // entry is refused.
    let count_a = || {
        let all = all.clone();
        let a = a.clone();
        async move {
            let (_, b) = send(
                Method::GET,
                format!("Observation?patient={a}&_summary=count"),
                all,
                None,
            )
            .await;
            b["total"].as_u64().unwrap()
        }
    };
    let before = count_a().await;
    let condition = json!({"resourceType": "Condition", "subject": {"reference": pa}});
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation_of("laboratory", &pa, None), "request": {"method": "POST", "url": "Observation"}},
        {"resource": condition, "request": {"method": "POST", "url": "Condition"}},
    ]});
    let (status, body) = send(
        Method::POST,
        String::new(),
        writer.clone(),
        Some(transaction),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(count_a().await, before);
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": observation_of("laboratory", &pa, None), "request": {"method": "POST", "url": "Observation"}},
        {"resource": condition, "request": {"method": "POST", "url": "Condition"}},
        {"resource": observation_of("laboratory", &pb, None), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": format!("Observation/{b_lab}")}},
        {"request": {"method": "GET", "url": "Observation"}},
    ]});
    let (status, body) = send(Method::POST, String::new(), writer.clone(), Some(batch)).await;
    assert_eq!(status, 200, "{body}");
    let got = statuses(&body);
    assert_eq!(got.len(), 5, "{body}");
    assert!(got[0].starts_with("201"), "{body}");
    assert!(got[1].starts_with("403"), "{body}");
    assert!(got[2].starts_with("403"), "{body}");
    assert!(got[3].starts_with("404"), "{body}");
    assert!(got[4].starts_with("200"), "{body}");
    let found = match_ids(&body["entry"][4]["resource"]);
    assert!(!found.contains(&b_lab) && found.contains(&a_lab), "{body}");
    assert_eq!(count_a().await, before + 1);

    // $lastn: a search of the patient's records only.
    let heart_rate = |subject: &str| {
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
               "subject": {"reference": subject}, "effectiveDateTime": "2024-01-02T10:00:00Z",
               "valueQuantity": {"value": 72, "unit": "/min"}})
    };
    let a_hr = create(heart_rate(&pa)).await;
    let b_hr = create(heart_rate(&pb)).await;
    let (status, body) = send(
        Method::GET,
        "Observation/$lastn?code=http://loinc.org|8867-4".into(),
        reader.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(match_ids(&body), vec![a_hr.clone()]);
    let (_, body) = send(
        Method::GET,
        "Observation/$lastn?code=http://loinc.org|8867-4".into(),
        all.clone(),
        None,
    )
    .await;
    assert!(match_ids(&body).contains(&b_hr), "{body}");

    // user/ tokens: the letters and granular conditions, across patients.
    let clinician = minter.user("dr1", "user/*.cruds");
    let (status, body) = send(Method::GET, "Observation".into(), clinician.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    let ids = match_ids(&body);
    assert!(
        ids.contains(&a_lab) && ids.contains(&b_lab) && ids.contains(&b_by_a),
        "{body}"
    );
    let (status, _) = send(Method::GET, pb.clone(), clinician.clone(), None).await;
    assert_eq!(status, 200);
    let (status, body) = send(
        Method::POST,
        "Observation".into(),
        clinician.clone(),
        Some(observation_of("laboratory", &pb, None)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = send(
        Method::GET,
        "Observation/_history".into(),
        clinician.clone(),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let lab_user = minter.user("dr2", &format!("user/Observation.rs?category={LAB}"));
    let (status, body) = send(Method::GET, "Observation".into(), lab_user.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    let ids = match_ids(&body);
    assert!(ids.contains(&a_lab) && ids.contains(&b_lab), "{body}");
    assert!(!ids.contains(&a_vital) && !ids.contains(&b_by_a), "{body}");
    let (status, _) = send(
        Method::GET,
        format!("Observation/{a_vital}"),
        lab_user.clone(),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        Method::POST,
        "Observation".into(),
        lab_user,
        Some(observation_of("laboratory", &pa, None)),
    )
    .await;
    assert_eq!(status, 403);

    // Mixed levels: the union.
    let mixed = minter.token(
        "acct-m",
        "patient/Observation.rs user/Practitioner.cruds",
        Some(&a),
        None,
    );
    let (status, body) = send(Method::GET, "Observation".into(), mixed.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(!match_ids(&body).contains(&b_lab), "{body}");
    let (status, body) = send(
        Method::POST,
        "Practitioner".into(),
        mixed,
        Some(json!({"resourceType": "Practitioner"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    drop(server);
    db.remove().await;
}

async fn cors(backend: TestBackend) {
    let Some(db) = Database::create(backend, "authz_cors").await else {
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_curanet"))
        .args(["client", "add", "--database-url", &db.url])
        .args([
            "--client-id",
            "web",
            "--name",
            "Web app",
            "--kind",
            "public",
        ])
        .args(["--redirect-uri", "https://app.example/callback"])
        .args(["--origin", "https://app.example"])
        .args(["--scope", "patient/*.rs launch/patient openid fhirUser"])
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
    let acao = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };

    // Any origin on the public documents.
    for url in [
        format!("{base}/metadata"),
        format!("{base}/.well-known/smart-configuration"),
        format!("{root}/.well-known/openid-configuration"),
        format!("{root}/oauth/jwks"),
    ] {
        let r = client
            .get(&url)
            .header("origin", "https://elsewhere.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(acao(&r).as_deref(), Some("*"), "{url}");
    }

    // The API and the token endpoint: the registered origin only, with Vary: Origin.
    for (url, method) in [
        (format!("{base}/Patient"), reqwest::Method::GET),
        (format!("{root}/oauth/token"), reqwest::Method::POST),
        (format!("{root}/oauth/introspect"), reqwest::Method::POST),
    ] {
        let r = client
            .request(method.clone(), &url)
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(acao(&r).as_deref(), Some("https://app.example"), "{url}");
        let vary = r
            .headers()
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            vary.to_ascii_lowercase().contains("origin"),
            "{url}: {vary}"
        );
        let r = client
            .request(method, &url)
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(acao(&r), None, "{url}");
    }
    // The 401 without a token is readable by the registered app.
    let r = client
        .get(format!("{base}/Patient"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Preflights: answered without a token.
    let r = client
        .request(reqwest::Method::OPTIONS, format!("{base}/Observation"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(acao(&r).as_deref(), Some("https://app.example"));
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "if-match", "prefer"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    assert!(r.headers().contains_key("access-control-max-age"));
    let r = client
        .request(reqwest::Method::OPTIONS, format!("{root}/oauth/token"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(acao(&r), None);
    assert!(!r.headers().contains_key("access-control-allow-methods"));

    drop(server);
    db.remove().await;
}
