//! Fixtures shared by the desktop core's tests: a real server with a patient, a doctor and a
//! pharmacist; resources created on it; a scratch directory; the desktop's OAuth client; the
//! browser's part of a sign-in; the patient's consents; a desktop client with its own cache.

// Each test file uses a part of these.
#![allow(dead_code)]

use std::path::PathBuf;

use curanet_auth::registration::{ClientRegistration, desktop_client};
use curanet_conformance::resources::consent;
use curanet_conformance::smart::{App, AuthRequest, Decision, Login, Outcome, authorize, query_of};
use curanet_desktop_core::{Cache, FhirClient};
use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::Role;
use serde_json::{Value, json};

/// The password of every test account.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates `resource` on the open server of `base` (no token); returns its id.
pub async fn create(base: &str, resource: Value) -> String {
    let ty = resource["resourceType"].as_str().unwrap().to_string();
    let r = reqwest::Client::new()
        .post(format!("{base}/{ty}"))
        .header("content-type", "application/fhir+json")
        .body(resource.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A fresh scratch directory for this test process.
pub fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("curanet-desktop-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Registers the desktop app (`curanet-desktop`, as the server does at start-up) for `scope`.
pub async fn register_desktop(server: &TestServer, scope: &str) {
    server
        .register_client(ClientRegistration {
            scope: scope.into(),
            ..desktop_client()
        })
        .await;
}

/// The browser's part of a sign-in: opens the app's `authorize_url`, signs in as `email` and
/// allows on the server's pages, and follows the redirect back to the app's loopback listener.
pub async fn browser_sign_in(authorize_url: &str, email: &str) {
    let (endpoint, _) = authorize_url.split_once('?').unwrap();
    let params = query_of(authorize_url);
    let app = App {
        client_id: params["client_id"].clone(),
        redirect_uri: params["redirect_uri"].clone(),
        secret: None,
    };
    // The app's request exactly as it made it (its state and PKCE challenge).
    let request = params.iter().fold(
        AuthRequest::new(&app, &params["scope"], &params["aud"]),
        |r, (k, v)| r.with(k, Some(v)),
    );
    let login = Login {
        identifier: email.into(),
        password: PASSWORD.into(),
    };
    let outcome = authorize(endpoint, &request, &login, &Decision::default(), None)
        .await
        .unwrap();
    let Outcome::Redirected(query) = outcome else {
        panic!("the sign-in did not come back: {outcome:?}");
    };
    let back = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&query)
        .finish();
    let page = reqwest::Client::new()
        .get(format!("{}?{back}", app.redirect_uri))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("signed in"));
}

/// Someone signed in: their access token and FHIR reference (`Patient/x`, `Practitioner/y`).
#[derive(Debug, Clone)]
pub struct Person {
    pub token: String,
    pub reference: String,
}

impl Person {
    /// The id part of the reference.
    pub fn id(&self) -> &str {
        self.reference.rsplit('/').next().unwrap_or_default()
    }
}

/// A server with Asha Rao (patient), Dr Meera Iyer (doctor) and Ravi Kumar (pharmacist at
/// "Test Pharmacy").
pub struct Clinic {
    pub server: TestServer,
    pub base: String,
    pub patient: Person,
    pub doctor: Person,
    pub pharmacist: Person,
    /// The pharmacy's Organization reference.
    pub pharmacy: String,
    dir: std::path::PathBuf,
}

/// `Type/id` of a reference that may be absolute.
fn relative(reference: &str) -> String {
    let mut parts = reference.trim_end_matches('/').rsplit('/');
    let id = parts.next().unwrap_or_default();
    let ty = parts.next().unwrap_or_default();
    format!("{ty}/{id}")
}

async fn sign_in(base: &str, email: &str) -> Value {
    let root = base.trim_end_matches("/fhir");
    let r = reqwest::Client::new()
        .post(format!("{root}/api/auth/login"))
        .json(&json!({"identifier": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "sign-in of {email}: {}",
        r.status()
    );
    r.json().await.unwrap()
}

impl Clinic {
    /// Starts the server (SQLite, tokens required) and signs everyone in.
    pub async fn start(label: &str) -> Clinic {
        let server = TestServer::start_with(TestBackend::Sqlite, label, |c| c.require_auth = true)
            .await
            .expect("a SQLite server");
        let base = server.base_url.clone();
        server
            .create_user(Role::Patient, "asha@example.in", PASSWORD, "Asha Rao")
            .await;
        let doctor = server
            .create_user(Role::Doctor, "dr@example.in", PASSWORD, "Meera Iyer")
            .await;
        let pharmacist = server
            .create_user(Role::Pharmacist, "rx@example.in", PASSWORD, "Ravi Kumar")
            .await;
        let asha = sign_in(&base, "asha@example.in").await;
        let patient = Person {
            token: asha["access_token"].as_str().unwrap().to_string(),
            reference: format!("Patient/{}", asha["patient"].as_str().unwrap()),
        };
        let signed = |v: &Value, account: &curanet_storage::Account| Person {
            token: v["access_token"].as_str().unwrap().to_string(),
            reference: relative(account.fhir_user.as_deref().unwrap()),
        };
        let doctor = signed(&sign_in(&base, "dr@example.in").await, &doctor);
        let pharmacist = signed(&sign_in(&base, "rx@example.in").await, &pharmacist);
        let pharmacy = format!("Organization/{}", server.test_pharmacy().await);
        let dir = std::env::temp_dir().join(format!("curanet-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Clinic {
            server,
            base,
            patient,
            doctor,
            pharmacist,
            pharmacy,
            dir,
        }
    }

    /// A desktop client signed in as `person`, with a cache of its own.
    pub async fn desktop(&self, person: &Person) -> FhirClient {
        let name = person.reference.replace('/', "-");
        let cache = Cache::open(&self.dir.join(format!("{name}.db")), &name, 50_000_000)
            .await
            .unwrap();
        FhirClient::new(&self.base, Some(person.token.clone()), cache).unwrap()
    }

    /// Sends `body` to `path` (relative to the FHIR base) with `person`'s token; the answer.
    pub async fn send(
        &self,
        person: &Person,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Value {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}/{path}", self.base))
            .bearer_auth(&person.token)
            .header("content-type", "application/fhir+json");
        if let Some(b) = body {
            request = request.body(b.to_string());
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The patient's Patient resource (read with their own token).
    pub async fn patient_resource(&self) -> Value {
        let path = self.patient.reference.clone();
        self.send(&self.patient, reqwest::Method::GET, &path, None)
            .await
    }

    /// The patient's Health ID.
    pub async fn health_id(&self) -> String {
        self.patient_resource().await["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["system"] == "https://curanet.in/fhir/sid/health-id")
            .and_then(|i| i["value"].as_str())
            .unwrap()
            .to_string()
    }

    /// The patient grants `actor` reading and writing their record (an active Consent they
    /// write themselves); the Consent's id.
    pub async fn grant(&self, actor: &str) -> String {
        let granted = consent(
            self.patient.id(),
            "active",
            actor,
            &["READ_FULL", "WRITE"],
            &[],
        );
        let created = self
            .send(
                &self.patient,
                reqwest::Method::POST,
                "Consent",
                Some(&granted),
            )
            .await;
        created["id"].as_str().unwrap().to_string()
    }

    /// The patient approves a proposed Consent (`$approve`).
    pub async fn approve(&self, consent_id: &str) -> Value {
        self.send(
            &self.patient,
            reqwest::Method::POST,
            &format!("Consent/{consent_id}/$approve"),
            None,
        )
        .await
    }

    /// Creates `resource` directly (no token, no consent), as records made elsewhere; its id.
    pub async fn seed(&self, resource: Value) -> String {
        self.server.seed(&resource).await
    }

    /// Stops the server: the desktops are offline from now on. Their caches stay until the
    /// returned guard is dropped.
    pub async fn stop(self) -> Files {
        self.server.stop().await;
        Files(self.dir)
    }
}

/// The desktops' caches of a test, removed on drop.
pub struct Files(std::path::PathBuf);

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
