//! CuraNet's own parts of the SMART flows, which a black-box suite for any server cannot know:
//! an EHR launch opened by a clinician's first-party token, and dynamic client registration by an
//! admin with two-factor authentication. Real server, real HTTP, on both engines.

use curanet_auth::registration::ClientRegistration;
use curanet_conformance::Client;
use curanet_conformance::smart::{
    App, AuthRequest, Decision, Login, authorize, exchange, jwt_parts,
};
use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::{ClientKind, Role};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple 42";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

async fn start(backend: TestBackend, label: &str) -> Option<TestServer> {
    TestServer::start_with(backend, label, |c| c.require_auth = true).await
}

fn root(server: &TestServer) -> String {
    server.base_url.trim_end_matches("/fhir").to_string()
}

/// `POST {root}{path}` with a JSON body and an optional bearer token: (status, body).
async fn post_json(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", root(server)))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = request.send().await.expect("request");
    let status = reply.status().as_u16();
    (status, reply.json().await.unwrap_or(Value::Null))
}

/// A first-party sign-in: the login answer.
async fn sign_in(server: &TestServer, email: &str, code: Option<&str>) -> Value {
    let mut body = json!({"identifier": email, "password": PASSWORD});
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    let (status, answer) = post_json(server, "/api/auth/login", None, &body).await;
    assert_eq!(status, 200, "login: {answer}");
    answer
}

async fn ehr_launch(backend: TestBackend) {
    let Some(server) = start(backend, "ehr_launch").await else {
        return;
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let doctor = format!("dr-{suffix}@example.in");
    let doctor_account = server
        .create_user(Role::Doctor, &doctor, PASSWORD, "Vikram Iyer")
        .await;
    let patient = server
        .create_user(
            Role::Patient,
            &format!("p-{suffix}@example.in"),
            PASSWORD,
            "Asha Rao",
        )
        .await;
    let patient_id = patient
        .fhir_user
        .unwrap()
        .trim_start_matches("Patient/")
        .to_string();
    server
        .register_client(ClientRegistration {
            client_id: Some("ehr-app".into()),
            name: "Growth chart".into(),
            kind: Some(ClientKind::Public),
            redirect_uris: vec![REDIRECT_URI.into()],
            scope: "patient/*.rs user/*.rs".into(),
            ..ClientRegistration::default()
        })
        .await;
    // The patient consents to the doctor seeing their records (issue 5): without it the
    // launch would open, but every read would find nothing.
    server
        .seed(&json!({
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": format!("Patient/{patient_id}")},
            "provision": {"type": "permit",
                "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                           "reference": {"reference": doctor_account.fhir_user.clone().unwrap()}}],
                "action": [{"coding": [{"system": "https://curanet.in/fhir/CodeSystem/consent-grant-level", "code": "READ_FULL"}]}]}
        }))
        .await;
    let first_party = sign_in(&server, &doctor, None).await;
    let token = first_party["access_token"].as_str().unwrap();

    // A patient cannot open launches; a missing patient is refused.
    let (status, _) = post_json(
        &server,
        "/api/launch",
        None,
        &json!({"patient": patient_id}),
    )
    .await;
    assert_eq!(status, 401, "a launch without a token");
    let (status, body) = post_json(
        &server,
        "/api/launch",
        Some(token),
        &json!({"patient": "nope"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, opened) = post_json(
        &server,
        "/api/launch",
        Some(token),
        &json!({"patient": patient_id}),
    )
    .await;
    assert_eq!(status, 201, "{opened}");
    assert_eq!(opened["iss"], server.base_url.as_str());
    let launch = opened["launch"].as_str().unwrap().to_string();

    let app = App {
        client_id: "ehr-app".into(),
        redirect_uri: REDIRECT_URI.into(),
        secret: None,
    };
    let login = Login {
        identifier: doctor.clone(),
        password: PASSWORD.into(),
    };
    let c = Client::new(&server.base_url);
    let request = AuthRequest::new(&app, "launch openid fhirUser patient/*.rs", c.base())
        .with("launch", Some(&launch));
    let code = authorize(
        &c.oauth("authorize"),
        &request,
        &login,
        &Decision::default(),
        None,
    )
    .await
    .unwrap()
    .code()
    .expect("a code for the EHR launch");
    let reply = exchange(&c.oauth("token"), &app, &code, &request.verifier)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["patient"], patient_id.as_str());
    assert_eq!(reply.json["need_patient_banner"], true);
    let style_url = reply.field("smart_style_url");
    let style: Value = reqwest::get(&style_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(style["color_background"].is_string(), "{style}");
    let (_, claims) = jwt_parts(&reply.field("access_token")).unwrap();
    assert_eq!(claims["patient"], patient_id.as_str());
    let read = c
        .with_token(&reply.field("access_token"))
        .get(&format!("Patient/{patient_id}"))
        .await
        .unwrap();
    assert_eq!(read.status, 200, "{}", read.text);

    // A launch value works once.
    let again = AuthRequest::new(&app, "launch openid fhirUser patient/*.rs", c.base())
        .with("launch", Some(&launch));
    let flow = authorize(
        &c.oauth("authorize"),
        &again,
        &login,
        &Decision::default(),
        None,
    )
    .await
    .unwrap();
    assert!(flow.code().is_err(), "a used launch gave a code: {flow:?}");
    server.stop().await;
}

async fn dynamic_registration(backend: TestBackend) {
    let Some(server) = start(backend, "registration").await else {
        return;
    };
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let admin = format!("admin-{suffix}@example.in");
    let doctor = format!("dr-{suffix}@example.in");
    server
        .create_user(Role::Admin, &admin, PASSWORD, "Meera Iyer")
        .await;
    server
        .create_user(Role::Doctor, &doctor, PASSWORD, "Vikram Iyer")
        .await;
    let metadata = json!({
        "client_name": "Pharmacy stock app",
        "redirect_uris": ["https://pharm.example/callback"],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "user/MedicationDispense.cruds",
    });

    // Without a token, with a doctor's token, and with an admin's enrollment-only token: refused.
    let (status, _) = post_json(&server, "/oauth/register", None, &metadata).await;
    assert_eq!(status, 401);
    let dr = sign_in(&server, &doctor, None).await;
    let (status, _) = post_json(
        &server,
        "/oauth/register",
        dr["access_token"].as_str(),
        &metadata,
    )
    .await;
    assert_eq!(status, 403);
    let enrolling = sign_in(&server, &admin, None).await;
    let enrolling_token = enrolling["access_token"].as_str().unwrap();
    let (status, _) = post_json(&server, "/oauth/register", Some(enrolling_token), &metadata).await;
    assert_eq!(status, 403, "an admin without 2FA registered a client");

    // The admin turns on 2FA, signs in with a recovery code and registers the app.
    let (status, enrollment) = post_json(
        &server,
        "/api/auth/2fa/enroll",
        Some(enrolling_token),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{enrollment}");
    let secret =
        curanet_auth::totp::TotpSecret::from_base32(enrollment["secret"].as_str().unwrap())
            .unwrap();
    let code = curanet_auth::totp::totp_code(&secret, chrono::Utc::now().timestamp()).unwrap();
    let (status, confirmed) = post_json(
        &server,
        "/api/auth/2fa/confirm",
        Some(enrolling_token),
        &json!({"enrollment": enrollment["enrollment"], "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    let recovery = confirmed["recovery_codes"][0]
        .as_str()
        .expect("recovery codes")
        .to_string();
    let full = sign_in(&server, &admin, Some(&recovery)).await;
    let (status, registered) = post_json(
        &server,
        "/oauth/register",
        full["access_token"].as_str(),
        &metadata,
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    let client_id = registered["client_id"].as_str().unwrap().to_string();
    let client_secret = registered["client_secret"].as_str().unwrap().to_string();
    assert_eq!(
        registered["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(
        registered["redirect_uris"][0],
        "https://pharm.example/callback"
    );

    // Bad metadata is 400 invalid_redirect_uri / invalid_client_metadata.
    let (status, bad) = post_json(
        &server,
        "/oauth/register",
        full["access_token"].as_str(),
        &json!({"client_name": "x", "redirect_uris": ["http://evil.example/cb"], "scope": "user/*.rs"}),
    )
    .await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (400, Some("invalid_redirect_uri")),
        "{bad}"
    );

    // The new client works: the doctor authorises it and it exchanges the code with Basic.
    let app = App {
        client_id,
        redirect_uri: "https://pharm.example/callback".into(),
        secret: Some(client_secret),
    };
    let c = Client::new(&server.base_url);
    let request = AuthRequest::new(&app, "openid fhirUser user/MedicationDispense.rs", c.base());
    let login = Login {
        identifier: doctor,
        password: PASSWORD.into(),
    };
    let code = authorize(
        &c.oauth("authorize"),
        &request,
        &login,
        &Decision::default(),
        None,
    )
    .await
    .unwrap()
    .code()
    .unwrap();
    let reply = exchange(&c.oauth("token"), &app, &code, &request.verifier)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.json);
    let mut granted: Vec<String> = reply
        .field("scope")
        .split(' ')
        .map(str::to_string)
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        ["fhirUser", "openid", "user/MedicationDispense.rs"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ehr_launch_on_sqlite() {
    ehr_launch(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ehr_launch_on_postgres() {
    ehr_launch(TestBackend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_registration_on_sqlite() {
    dynamic_registration(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_registration_on_postgres() {
    dynamic_registration(TestBackend::Postgres).await;
}
