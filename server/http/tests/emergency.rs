//! Emergency share links against the real binary on both engines, with access tokens required:
//! a patient's link shows exactly the chosen sections (JSON and HTML), passcodes count down and
//! lock, revoked and expired links are 404, the patient lists links and their uses, a doctor
//! cannot make links, and the link token never reaches the log.

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Database;
use common::smart::now;
use curanet_http::testing::TestBackend;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

on_both_backends!(emergency_links, emergency_links_end_to_end);

const PASSWORD: &str = "correct horse battery";
const PASSCODE: &str = "Zq7-pass";
const USER_AGENT: &str = "ambulance-tablet/2.1";

/// `curanet serve` with tokens required, its log (at debug) written to a file.
struct Server {
    child: Child,
    root: String,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Server {
    async fn start(database_url: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!(
            "curanet-emergency-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_curanet"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database_url,
            ])
            .env("CURANET_REQUIRE_AUTH", "true")
            .env("RUST_LOG", "debug")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn curanet");
        let server = Server {
            child,
            root: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/readyz", server.root)).send().await
                && r.status() == 200
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("curanet did not become ready");
    }

    /// Stops with SIGTERM (so the log is complete) and returns the log.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `curanet user create` with the password from the environment.
fn user_create(database_url: &str, role: &str, email: &str, name: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_curanet"))
        .args(["user", "create", "--database-url", database_url])
        .args(["--role", role, "--email", email, "--name", name])
        .env("CURANET_NEW_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

struct Env {
    server: Server,
    client: reqwest::Client,
}

impl Env {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.root)
    }

    async fn login(&self, email: &str) -> Value {
        let r = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&json!({"identifier": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Creates a FHIR resource with a token; its id.
    async fn create(&self, token: &str, resource: Value) -> String {
        let rt = resource["resourceType"].as_str().unwrap().to_string();
        let r = self
            .client
            .post(self.url(&format!("/fhir/{rt}")))
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(resource.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{rt}: {body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// `POST /api/emergency-links`: (status, body).
    async fn make_link(&self, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/api/emergency-links"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn api_get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Opens a link without login: (status, headers, body text).
    async fn open(
        &self,
        share_url: &str,
        accept: &str,
        passcode: Option<&str>,
    ) -> (u16, HeaderMap, String) {
        let mut request = self
            .client
            .get(share_url)
            .header("accept", accept)
            .header("user-agent", USER_AGENT);
        if let Some(p) = passcode {
            request = request.header("x-passcode", p);
        }
        let r = request.send().await.unwrap();
        (
            r.status().as_u16(),
            r.headers().clone(),
            r.text().await.unwrap(),
        )
    }

    async fn link_status(&self, token: &str, id: &str) -> Value {
        let (status, body) = self.api_get(token, "/api/emergency-links").await;
        assert_eq!(status, 200, "{body}");
        body["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["shareId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("link {id} listed: {body}"))
    }
}

fn types(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_string())
        .collect()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";

async fn emergency_links_end_to_end(backend: TestBackend) {
    let Some(db) = Database::create(backend, "emergency").await else {
        return;
    };
    user_create(&db.url, "patient", "asha@example.in", "Asha Rao");
    user_create(&db.url, "doctor", "dr@example.in", "Meera Iyer");
    let env = Env {
        server: Server::start(&db.url).await,
        client: reqwest::Client::new(),
    };
    let patient_login = env.login("asha@example.in").await;
    let patient_token = patient_login["access_token"].as_str().unwrap().to_string();
    let patient_id = patient_login["patient"].as_str().unwrap().to_string();
    let doctor = env.login("dr@example.in").await;
    let doctor_token = doctor["access_token"].as_str().unwrap().to_string();
    let subject = json!({"reference": format!("Patient/{patient_id}")});
    // The doctor writes the record under the patient's consent.
    let doctor_ref = doctor["fhirUser"]
        .as_str()
        .unwrap()
        .rsplitn(3, '/')
        .take(2)
        .collect::<Vec<_>>();
    let grant = common::consent(
        &patient_id,
        "active",
        &format!("{}/{}", doctor_ref[1], doctor_ref[0]),
        &["READ_FULL", "WRITE"],
        &[],
    );
    env.create(&patient_token, grant).await;

    // The record: what each section shows, and what no link may show.
    let r = env
        .client
        .get(env.url(&format!("/fhir/Patient/{patient_id}")))
        .bearer_auth(&doctor_token)
        .send()
        .await
        .unwrap();
    let mut patient: Value = r.json().await.unwrap();
    patient["contact"] = json!([{
        "relationship": [{"text": "Brother"}],
        "name": {"text": "Ravi Rao"},
        "telecom": [{"system": "phone", "value": "+91 98450 00001"}]
    }]);
    patient["telecom"] = json!([{"system": "phone", "value": "+91 90000 00000"}]);
    let r = env
        .client
        .put(env.url(&format!("/fhir/Patient/{patient_id}")))
        .bearer_auth(&doctor_token)
        .header("content-type", "application/fhir+json")
        .body(patient.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let allergy = env
        .create(
            &doctor_token,
            json!({"resourceType": "AllergyIntolerance", "patient": subject,
                   "clinicalStatus": coding(ALLERGY_CLINICAL, "active"),
                   "code": {"text": "Peanut <b>bold</b>"}, "criticality": "high",
                   "reaction": [{"manifestation": [{"text": "Anaphylaxis"}]}]}),
        )
        .await;
    let resolved = env
        .create(
            &doctor_token,
            json!({"resourceType": "AllergyIntolerance", "patient": subject,
                   "clinicalStatus": coding(ALLERGY_CLINICAL, "resolved"),
                   "code": {"text": "Cat dander"}}),
        )
        .await;
    let medication = env
        .create(
            &doctor_token,
            json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                   "subject": subject,
                   "medicationCodeableConcept": {"text": "Metformin 500 mg"},
                   "dosageInstruction": [{"text": "twice a day"}]}),
        )
        .await;
    let condition = env
        .create(
            &doctor_token,
            json!({"resourceType": "Condition", "subject": subject,
                   "clinicalStatus": coding(CONDITION_CLINICAL, "active"),
                   "code": {"text": "Type 2 diabetes"}}),
        )
        .await;
    let related = env
        .create(
            &doctor_token,
            json!({"resourceType": "RelatedPerson", "patient": subject, "active": true,
                   "name": [{"given": ["Lata"], "family": "Rao"}],
                   "relationship": [{"text": "Mother"}],
                   "telecom": [{"system": "phone", "value": "+91 98450 00002"}]}),
        )
        .await;
    let blood = |value: &str, when: &str| {
        json!({"resourceType": "Observation", "status": "final",
               "code": {"coding": [{"system": "http://loinc.org", "code": "882-1",
                                    "display": "ABO and Rh group"}]},
               "subject": subject, "effectiveDateTime": when,
               "valueCodeableConcept": {"text": value}})
    };
    let old_blood = env
        .create(&doctor_token, blood("A negative", "2019-01-01"))
        .await;
    let blood_group = env
        .create(&doctor_token, blood("B positive", "2024-06-01"))
        .await;
    let vital = env
        .create(
            &doctor_token,
            json!({"resourceType": "Observation", "status": "final",
                   "category": [{"coding": [{"system":
                       "http://terminology.hl7.org/CodeSystem/observation-category",
                       "code": "vital-signs"}]}],
                   "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                   "subject": subject, "effectiveDateTime": "2024-06-01",
                   "valueQuantity": {"value": 72, "unit": "/min",
                                     "system": "http://unitsofmeasure.org", "code": "/min"}}),
        )
        .await;
    let other = env
        .create(
            &doctor_token,
            json!({"resourceType": "Patient", "name": [{"family": "Other"}]}),
        )
        .await;
    let other_allergy = env
        .create(
            &doctor_token,
            json!({"resourceType": "AllergyIntolerance",
                   "patient": {"reference": format!("Patient/{other}")},
                   "clinicalStatus": coding(ALLERGY_CLINICAL, "active"),
                   "code": {"text": "Shellfish"}}),
        )
        .await;

    // Who may make links, and what a request may ask.
    let (status, body) = env
        .make_link(
            &doctor_token,
            json!({"scope": ["ALLERGIES"], "expiresIn": 24}),
        )
        .await;
    assert_eq!(status, 403, "a doctor makes no links: {body}");
    let r = env
        .client
        .post(env.url("/api/emergency-links"))
        .json(&json!({"scope": ["ALLERGIES"], "expiresIn": 24}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for bad in [
        json!({"scope": ["ALLERGIES"], "expiresIn": 73}),
        json!({"scope": ["ALLERGIES"], "expiresIn": 0}),
        json!({"scope": ["VITALS"], "expiresIn": 24}),
        json!({"scope": [], "expiresIn": 24}),
        json!({"scope": ["ALLERGIES"], "expiresIn": 24, "passcode": "123"}),
    ] {
        let (status, body) = env.make_link(&patient_token, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // A link to allergies and the blood group shows exactly those.
    let before = now();
    let (status, link) = env
        .make_link(
            &patient_token,
            json!({"scope": ["ALLERGIES", "BLOOD_GROUP"], "expiresIn": 24, "label": "Trek"}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    let expires_at = link["expiresAt"].as_i64().unwrap();
    assert!(
        (before + 24 * 3600..=now() + 24 * 3600).contains(&expires_at),
        "{link}"
    );
    let share_url = link["shareUrl"].as_str().unwrap().to_string();
    let share_id = link["shareId"].as_str().unwrap().to_string();
    let token = share_url.rsplit('/').next().unwrap().to_string();
    assert!(share_url.starts_with(&env.url("/emergency/")));
    assert_eq!(token.len(), 43, "256 random bits in base64url");
    let (status, headers, text) = env.open(&share_url, "application/fhir+json", None).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "referrer-policy"), "no-referrer");
    assert!(header(&headers, "x-robots-tag").contains("noindex"));
    let bundle: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    assert_eq!(
        types(&bundle),
        ["Patient", "AllergyIntolerance", "Observation"]
    );
    let shown: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        shown,
        [patient_id.as_str(), allergy.as_str(), blood_group.as_str()]
    );
    for hidden in [
        &resolved,
        &medication,
        &condition,
        &related,
        &old_blood,
        &vital,
        &other,
        &other_allergy,
    ] {
        assert!(!text.contains(hidden.as_str()), "{hidden} leaked: {text}");
    }
    // The patient is told, in the app, that the link was opened.
    let r = env
        .client
        .get(env.url(&format!(
            "/fhir/Communication?recipient=Patient/{patient_id}"
        )))
        .bearer_auth(&patient_token)
        .send()
        .await
        .unwrap();
    let told: Value = r.json().await.unwrap();
    assert!(
        told["entry"].as_array().into_iter().flatten().any(|e| {
            e["resource"]["category"][0]["coding"][0]["code"] == "emergency-link-opened"
        }),
        "{told}"
    );
    let shown_patient = &bundle["entry"][0]["resource"];
    assert_eq!(shown_patient["name"][0]["family"], "Rao");
    assert!(shown_patient.get("contact").is_none(), "{shown_patient}");
    assert!(shown_patient.get("telecom").is_none(), "{shown_patient}");
    assert!(
        shown_patient["identifier"][0]["value"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "the Health ID: {shown_patient}"
    );

    // The same slice as a page for browsers, everything escaped.
    let (status, headers, page) = env
        .open(
            &share_url,
            "text/html,application/xhtml+xml,*/*;q=0.8",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").starts_with("text/html"));
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert!(header(&headers, "x-robots-tag").contains("noindex"));
    assert!(page.contains("Peanut &lt;b&gt;bold&lt;/b&gt;"), "{page}");
    assert!(!page.contains("<b>bold"));
    assert!(page.contains("B positive") && !page.contains("A negative"));
    assert!(page.contains("Anaphylaxis") && !page.contains("Cat dander"));
    assert!(!page.contains("Metformin") && !page.contains("Shellfish"));
    assert!(page.contains(r#"<h2 id="allergies">Allergies</h2>"#));

    // A link with every section and a passcode.
    let (status, full) = env
        .make_link(
            &patient_token,
            json!({"scope": ["ALLERGIES", "MEDICATIONS", "CONDITIONS", "EMERGENCY_CONTACT",
                             "BLOOD_GROUP"],
                   "expiresIn": 1, "passcode": PASSCODE}),
        )
        .await;
    assert_eq!(status, 201, "{full}");
    let full_url = full["shareUrl"].as_str().unwrap().to_string();
    let full_id = full["shareId"].as_str().unwrap().to_string();
    let full_token = full_url.rsplit('/').next().unwrap().to_string();
    let (status, headers, text) = env.open(&full_url, "application/fhir+json", None).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["remainingAttempts"], 5, "{body}");
    let (status, _, text) = env
        .open(&full_url, "application/fhir+json", Some(PASSCODE))
        .await;
    assert_eq!(status, 200, "{text}");
    let bundle: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        types(&bundle),
        [
            "Patient",
            "AllergyIntolerance",
            "MedicationRequest",
            "Condition",
            "RelatedPerson",
            "Observation"
        ]
    );
    assert_eq!(
        bundle["entry"][0]["resource"]["contact"][0]["name"]["text"],
        "Ravi Rao"
    );
    assert!(!text.contains(&vital) && !text.contains(&other_allergy));
    // The page asks for the passcode with a form, which opens it with a recipient's name.
    let (status, _, page) = env.open(&full_url, "text/html", None).await;
    assert_eq!(status, 401);
    assert!(page.contains(r#"<label for="passcode">"#), "{page}");
    let r = env
        .client
        .post(&full_url)
        .header("accept", "text/html")
        .header("user-agent", USER_AGENT)
        .form(&[("passcode", PASSCODE), ("recipient", "Dr Mehta, City ER")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(r.headers(), "referrer-policy"), "no-referrer");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Ravi Rao") && page.contains("Lata Rao"),
        "{page}"
    );
    assert!(page.contains("Metformin 500 mg") && page.contains("Type 2 diabetes"));
    // Five wrong passcodes lock it: then even the right one finds nothing.
    for remaining in [4, 3, 2, 1, 0] {
        let (status, _, text) = env
            .open(&full_url, "application/json", Some("wrong-one"))
            .await;
        assert_eq!(status, 401, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["remainingAttempts"], remaining, "{body}");
    }
    let (status, _, _) = env
        .open(&full_url, "application/json", Some(PASSCODE))
        .await;
    assert_eq!(status, 404);
    let listed = env.link_status(&patient_token, &full_id).await;
    assert_eq!(listed["status"], "locked", "{listed}");
    assert_eq!(listed["hasPasscode"], true);
    assert_eq!(listed["viewCount"], 2, "{listed}");

    // Every use is listed to the patient, with IP, user agent and recipient.
    let (status, uses) = env
        .api_get(
            &patient_token,
            &format!("/api/emergency-links/{full_id}/accesses"),
        )
        .await;
    assert_eq!(status, 200, "{uses}");
    let uses = uses["accesses"].as_array().unwrap().clone();
    assert_eq!(uses.len(), 10, "{uses:?}");
    assert!(uses.iter().all(|u| u["ip"] == "127.0.0.1"), "{uses:?}");
    assert!(
        uses.iter().all(|u| u["userAgent"] == USER_AGENT),
        "{uses:?}"
    );
    assert!(
        uses.iter()
            .any(|u| u["recipient"] == "Dr Mehta, City ER" && u["outcome"] == "granted"),
        "{uses:?}"
    );
    let outcomes: Vec<&str> = uses
        .iter()
        .map(|u| u["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes[0], "refused_locked");
    assert_eq!(outcomes[1], "locked");
    let (status, _) = env
        .api_get(
            &doctor_token,
            &format!("/api/emergency-links/{full_id}/accesses"),
        )
        .await;
    assert_eq!(status, 403, "a doctor has no links");

    // Revoked: 404, the same answer as for an unknown link.
    let r = env
        .client
        .delete(env.url(&format!("/api/emergency-links/{share_id}")))
        .bearer_auth(&patient_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _, revoked) = env.open(&share_url, "application/json", None).await;
    assert_eq!(status, 404);
    let unknown_url = env.url(&format!("/emergency/{}", "A".repeat(43)));
    let (status, _, unknown) = env.open(&unknown_url, "application/json", None).await;
    assert_eq!(status, 404);
    assert_eq!(revoked, unknown, "revoked and unknown links answer alike");
    assert_eq!(
        env.link_status(&patient_token, &share_id).await["status"],
        "revoked"
    );

    // Expired: the end moved into the past in the database.
    let (status, soon) = env
        .make_link(
            &patient_token,
            json!({"scope": ["CONDITIONS"], "expiresIn": 1}),
        )
        .await;
    assert_eq!(status, 201);
    let soon_url = soon["shareUrl"].as_str().unwrap().to_string();
    let soon_id = soon["shareId"].as_str().unwrap().to_string();
    assert_eq!(env.open(&soon_url, "application/json", None).await.0, 200);
    expire(&db.url, &soon_id).await;
    let (status, _, expired) = env.open(&soon_url, "application/json", None).await;
    assert_eq!(status, 404);
    assert_eq!(expired, unknown);
    assert_eq!(
        env.link_status(&patient_token, &soon_id).await["status"],
        "expired"
    );

    // Concurrent guesses: exactly five are checked, whatever the interleaving.
    let (status, guarded) = env
        .make_link(
            &patient_token,
            json!({"scope": ["ALLERGIES"], "expiresIn": 2, "passcode": PASSCODE}),
        )
        .await;
    assert_eq!(status, 201);
    let guarded_url = guarded["shareUrl"].as_str().unwrap().to_string();
    let guesses: Vec<_> = (0..10)
        .map(|i| {
            let (client, url) = (env.client.clone(), guarded_url.clone());
            tokio::spawn(async move {
                let r = client
                    .get(url)
                    .header("x-passcode", format!("guess-{i}"))
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 404, 429].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(
        env.open(&guarded_url, "application/json", Some(PASSCODE))
            .await
            .0,
        404
    );

    // The tokens never reach the log, though the requests do.
    let Env { server, .. } = env;
    let log = server.stop();
    assert!(log.contains("/emergency/{token}"), "requests are logged");
    for secret in [token.as_str(), full_token.as_str(), PASSCODE] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
    db.remove().await;
}

/// Moves a link's end one minute into the past.
async fn expire(database_url: &str, id: &str) {
    let past = (now() - 60) * 1_000_000;
    let changed = if database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        let done = sqlx::query("UPDATE emergency_links SET expires_at = $1 WHERE id = $2")
            .bind(past)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        done.rows_affected()
    } else {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        let done = sqlx::query("UPDATE emergency_links SET expires_at = ?1 WHERE id = ?2")
            .bind(past)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        done.rows_affected()
    };
    assert_eq!(changed, 1);
}
