//! The whole suite against CuraNet started in-process, on SQLite and on PostgreSQL, with access
//! tokens required: the FHIR checks use a backend service's tokens, the SMART checks drive the
//! sign-in and consent pages with a patient and a doctor account and three registered clients.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use curanet_auth::registration::ClientRegistration;
use curanet_conformance::Target;
use curanet_conformance::smart::{App, Backend, Login, SmartSetup};
use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::{ClientKind, Role};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::json;

/// Where the apps say they live; the browser stops at the redirect and never fetches it.
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "correct horse battery staple 42";

/// Accounts and clients for the SMART checks, created directly in the server's storage.
async fn provision(server: &TestServer) -> SmartSetup {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let patient_email = format!("patient-{suffix}@example.in");
    let doctor_email = format!("doctor-{suffix}@example.in");
    server
        .create_user(Role::Patient, &patient_email, PASSWORD, "Asha Rao")
        .await;
    server
        .create_user(Role::Doctor, &doctor_email, PASSWORD, "Vikram Iyer")
        .await;
    // The consent and audit groups' patient and the clinician their consents name.
    let second_patient_email = format!("patient2-{suffix}@example.in");
    let second_doctor_email = format!("doctor2-{suffix}@example.in");
    server
        .create_user(
            Role::Patient,
            &second_patient_email,
            PASSWORD,
            "Priya Sharma",
        )
        .await;
    server
        .create_user(Role::Doctor, &second_doctor_email, PASSWORD, "Anil Rao")
        .await;
    let app = |id: &str, kind: ClientKind| ClientRegistration {
        client_id: Some(id.into()),
        name: format!("Conformance app {id}"),
        kind: Some(kind),
        redirect_uris: vec![REDIRECT_URI.into()],
        scope: "patient/*.cruds user/*.cruds".into(),
        ..ClientRegistration::default()
    };
    server
        .register_client(app("conformance-public", ClientKind::Public))
        .await;
    let confidential = server
        .register_client(app(
            "conformance-confidential",
            ClientKind::ConfidentialSymmetric,
        ))
        .await;
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("RSA key");
    let public = key.as_public_key();
    let jwks = json!({"keys": [{
        "kty": "RSA", "kid": "conformance-1", "alg": "RS384", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.n_bytes()),
        "e": URL_SAFE_NO_PAD.encode(public.e_bytes()),
    }]});
    server
        .register_client(ClientRegistration {
            client_id: Some("conformance-backend".into()),
            name: "Conformance backend".into(),
            kind: Some(ClientKind::Backend),
            jwks: Some(jwks),
            scope: "system/*.cruds".into(),
            ..ClientRegistration::default()
        })
        .await;
    SmartSetup {
        patient: Login {
            identifier: patient_email,
            password: PASSWORD.into(),
        },
        clinician: Login {
            identifier: doctor_email,
            password: PASSWORD.into(),
        },
        app: App {
            client_id: "conformance-public".into(),
            redirect_uri: REDIRECT_URI.into(),
            secret: None,
        },
        confidential_app: App {
            client_id: "conformance-confidential".into(),
            redirect_uri: REDIRECT_URI.into(),
            secret: confidential.secret,
        },
        backend: Backend {
            client_id: "conformance-backend".into(),
            key_pem: key.to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string(),
            kid: "conformance-1".into(),
        },
        second_patient: Some(Login {
            identifier: second_patient_email,
            password: PASSWORD.into(),
        }),
        second_clinician: Some(Login {
            identifier: second_doctor_email,
            password: PASSWORD.into(),
        }),
    }
}

async fn run_suite(backend: TestBackend) {
    let Some(server) =
        TestServer::start_with(backend, "conformance", |c| c.require_auth = true).await
    else {
        return;
    };
    let setup = provision(&server).await;
    let filter = std::env::var("CONFORMANCE_FILTER").unwrap_or_default();
    let results =
        curanet_conformance::run_with(&Target::smart(&server.base_url, setup), &filter).await;
    let report = curanet_conformance::summary(&results);
    println!("{backend:?}:\n{report}");
    server.stop().await;
    if filter.is_empty() {
        assert!(results.len() >= 85, "only {} cases ran", results.len());
    }
    assert!(
        results.iter().all(|r| r.outcome.is_ok()),
        "{backend:?} failures:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_sqlite() {
    run_suite(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_postgres() {
    run_suite(TestBackend::Postgres).await;
}
