//! Consent-governed access (issue 5, checklist cases 58–74), on both engines, against the real
//! server with tokens required: clinicians and pharmacists sign in with real accounts, and
//! their access to a patient's records follows the patient's Consents, request by request.

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use std::time::{Duration, Instant};

use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::Role;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

/// The people of the tests and their tokens.
struct World {
    server: TestServer,
    http: reqwest::Client,
    patient: String,
    patient_token: String,
    other_patient: String,
    doctor: String,
    doctor_token: String,
    second_doctor_token: String,
    pharmacy: String,
    pharmacist_token: String,
    /// P's records.
    allergy: String,
    vital_2024: String,
    restricted_2023: String,
    condition: String,
    medication_request: String,
    /// Q's allergy.
    other_allergy: String,
}

fn reference(url: &str) -> String {
    let mut parts = url.rsplit('/');
    let id = parts.next().unwrap();
    let ty = parts.next().unwrap();
    format!("{ty}/{id}")
}

impl World {
    /// Starts the server; `shared`: with a fixed public base URL and key-encryption key, so
    /// that a second instance on the same database accepts the same tokens.
    async fn start(backend: TestBackend, label: &str, shared: bool) -> Option<World> {
        let server = TestServer::start_with(backend, label, |c| {
            c.require_auth = true;
            if shared {
                c.base_url = Some("http://curanet.test/fhir".into());
                c.key_encryption_key = Some("Y3VyYW5ldC10ZXN0LWtleS1lbmNyeXB0aW9uLWtleSE=".into());
            }
        })
        .await?;
        let mut tokens = Vec::new();
        for (role, email, name) in [
            (Role::Patient, "priya@example.in", "Priya Sharma"),
            (Role::Patient, "quasar@example.in", "Qamar Ali"),
            (Role::Doctor, "d1@example.in", "Anil Rao"),
            (Role::Doctor, "d2@example.in", "Bela Sen"),
            (Role::Pharmacist, "ph@example.in", "Chetan Das"),
        ] {
            server.create_user(role, email, PASSWORD, name).await;
            tokens.push(common::sign_in(&server.base_url, email, PASSWORD).await);
        }
        let patient = tokens[0]["patient"].as_str().unwrap().to_string();
        let other_patient = tokens[1]["patient"].as_str().unwrap().to_string();
        let doctor = reference(tokens[2]["fhirUser"].as_str().unwrap());
        // The pharmacist works at the test pharmacy.
        let pharmacy = format!("Organization/{}", server.test_pharmacy().await);
        let p = format!("Patient/{patient}");
        let allergy = server
            .seed(
                &json!({"resourceType": "AllergyIntolerance", "patient": {"reference": p},
                "recordedDate": "2024-03-01", "code": {"text": "penicillin"}}),
            )
            .await;
        let vital_2024 = server
            .seed(&json!({"resourceType": "Observation", "status": "final", "subject": {"reference": p},
                "code": {"text": "heart rate"}, "effectiveDateTime": "2024-06-01"}))
            .await;
        let restricted_2023 = server
            .seed(&json!({"resourceType": "Observation", "status": "final", "subject": {"reference": p},
                "meta": {"security": [{"system": CONFIDENTIALITY, "code": "R"}]},
                "code": {"text": "HIV test"}, "effectiveDateTime": "2023-01-01"}))
            .await;
        let condition = server
            .seed(
                &json!({"resourceType": "Condition", "subject": {"reference": p},
                "code": {"text": "asthma"}, "recordedDate": "2024-02-02"}),
            )
            .await;
        let medication_request = server
            .seed(
                &json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
                "subject": {"reference": p}, "medicationCodeableConcept": {"text": "salbutamol"},
                "authoredOn": "2024-05-05"}),
            )
            .await;
        let other_allergy = server
            .seed(&json!({"resourceType": "AllergyIntolerance",
                "patient": {"reference": format!("Patient/{other_patient}")}, "code": {"text": "latex"}}))
            .await;
        let token = |i: usize| tokens[i]["access_token"].as_str().unwrap().to_string();
        Some(World {
            http: reqwest::Client::new(),
            patient_token: token(0),
            doctor_token: token(2),
            second_doctor_token: token(3),
            pharmacist_token: token(4),
            patient,
            other_patient,
            doctor,
            pharmacy,
            allergy,
            vital_2024,
            restricted_2023,
            condition,
            medication_request,
            other_allergy,
            server,
        })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/{path}", self.server.base_url))
            .bearer_auth(token);
        if let Some(b) = body {
            request = request
                .header("content-type", "application/fhir+json")
                .body(b.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// The ids of a searchset's matches.
    async fn found(&self, path: &str, token: &str) -> Vec<String> {
        let (status, bundle) = self.get(path, token).await;
        assert_eq!(status, 200, "{path}: {bundle}");
        matches(&bundle)
    }

    /// A consent of P to `actor`, written by P with their own token; returns its id.
    async fn grant(&self, consent: Value) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "Consent",
                &self.patient_token,
                Some(&consent),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// P changes their consent (with their own token).
    async fn change(&self, id: &str, mut consent: Value) {
        consent["id"] = json!(id);
        let (status, body) = self
            .send(
                reqwest::Method::PUT,
                &format!("Consent/{id}"),
                &self.patient_token,
                Some(&consent),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// A CuraNetConsent of P to `actor`.
    fn consent(&self, status: &str, actor: &str, levels: &[&str], classes: &[&str]) -> Value {
        common::consent(&self.patient, status, actor, levels, classes)
    }
}

fn matches(bundle: &Value) -> Vec<String> {
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

async fn consent_governs_clinicians(backend: TestBackend) {
    let Some(w) = World::start(backend, "consent_governs", false).await else {
        return;
    };
    let p = w.patient.clone();
    let dr = w.doctor_token.clone();

    // 58: no consent at all → a search naming P is refused, a read says nothing exists, a
    // search naming no patient finds nothing.
    let (status, body) = w.get(&format!("Observation?patient={p}"), &dr).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["issue"][0]["code"], "forbidden");
    assert_eq!(
        w.get(&format!("Observation/{}", w.vital_2024), &dr).await.0,
        404
    );
    assert_eq!(w.get(&format!("Patient/{p}"), &dr).await.0, 404);
    let (status, bundle) = w.get("AllergyIntolerance", &dr).await;
    assert_eq!(
        (status, bundle["total"].as_i64()),
        (200, Some(0)),
        "{bundle}"
    );

    // Before any consent, the doctor can look the patient up by an exact identifier (to
    // request consent), and sees who they are, not their record.
    let (_, patient) = w.get(&format!("Patient/{p}"), &w.patient_token).await;
    let hid = patient["identifier"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, found) = w.get(&format!("Patient?identifier={hid}"), &dr).await;
    assert_eq!(status, 200, "{found}");
    let shown = &found["entry"][0]["resource"];
    assert_eq!(shown["id"], p.as_str(), "{found}");
    let only_who = |r: &Value| {
        r.as_object().unwrap().keys().all(|k| {
            matches!(
                k.as_str(),
                "resourceType" | "id" | "meta" | "identifier" | "name"
            )
        })
    };
    assert!(only_who(shown), "{shown}");
    let (_, asked) = w
        .get(
            &format!("Patient?identifier={hid}&_elements=gender,birthDate"),
            &dr,
        )
        .await;
    assert!(only_who(&asked["entry"][0]["resource"]), "{asked}");
    // The full resource carries more than that (so the check above means something).
    assert!(!only_who(&patient), "{patient}");
    assert_eq!(w.get("Patient?name=Sharma", &dr).await.1["total"], 0);

    // 59: the doctor proposes a consent naming themself → 201, and nothing changes.
    let proposal = w.consent(
        "proposed",
        &w.doctor,
        &["READ_FULL"],
        &["AllergyIntolerance", "MedicationRequest"],
    );
    let (status, created) = w
        .send(reqwest::Method::POST, "Consent", &dr, Some(&proposal))
        .await;
    assert_eq!(status, 201, "{created}");
    let consent = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.get(&format!("AllergyIntolerance?patient={p}"), &dr)
            .await
            .0,
        403
    );
    // ...a proposal naming someone else, or an active one, is refused.
    let mut active = proposal.clone();
    active["status"] = json!("active");
    assert_eq!(
        w.send(reqwest::Method::POST, "Consent", &dr, Some(&active))
            .await
            .0,
        403
    );
    // The doctor sees their own requests, not others'.
    assert_eq!(w.found("Consent", &dr).await, vec![consent.clone()]);
    assert!(w.found("Consent", &w.second_doctor_token).await.is_empty());

    // 60: the doctor cannot make it active.
    let mut approve = active.clone();
    approve["id"] = json!(consent);
    let (status, _) = w
        .send(
            reqwest::Method::PUT,
            &format!("Consent/{consent}"),
            &dr,
            Some(&approve),
        )
        .await;
    assert_eq!(status, 403);

    // 61: the patient approves → allergies readable, observations found empty (class not
    // granted), the other patient's allergy never.
    w.change(&consent, active.clone()).await;
    assert_eq!(
        w.found(&format!("AllergyIntolerance?patient={p}"), &dr)
            .await,
        vec![w.allergy.clone()]
    );
    assert!(
        w.found(&format!("Observation?patient={p}"), &dr)
            .await
            .is_empty()
    );
    assert_eq!(
        w.get(&format!("AllergyIntolerance/{}", w.allergy), &dr)
            .await
            .0,
        200
    );
    assert_eq!(
        w.get(&format!("AllergyIntolerance/{}", w.other_allergy), &dr)
            .await
            .0,
        404
    );
    // A search naming no patient is narrowed to the consenting ones.
    assert_eq!(
        w.found("AllergyIntolerance", &dr).await,
        vec![w.allergy.clone()]
    );
    // 68: another doctor is not the consent's actor.
    assert_eq!(
        w.get(
            &format!("AllergyIntolerance?patient={p}"),
            &w.second_doctor_token
        )
        .await
        .0,
        403
    );

    // 63/74: READ_BASIC → Patient and allergies, not conditions; READ_FULL → both.
    w.change(
        &consent,
        w.consent("active", &w.doctor, &["READ_BASIC"], &[]),
    )
    .await;
    assert_eq!(w.get(&format!("Patient/{p}"), &dr).await.0, 200);
    assert_eq!(
        w.get(&format!("Condition/{}", w.condition), &dr).await.0,
        404
    );
    assert_eq!(
        w.get(&format!("MedicationRequest/{}", w.medication_request), &dr)
            .await
            .0,
        200
    );
    // 72: a revinclude of records the consent does not cover is dropped and reported.
    let (status, bundle) = w
        .get(
            &format!("Patient?_id={p}&_revinclude=Observation:subject"),
            &dr,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        !bundle.to_string().contains(&w.vital_2024),
        "an Observation leaked through _revinclude: {bundle}"
    );
    w.change(
        &consent,
        w.consent("active", &w.doctor, &["READ_FULL"], &[]),
    )
    .await;
    assert_eq!(
        w.get(&format!("Condition/{}", w.condition), &dr).await.0,
        200
    );
    assert_eq!(
        w.found(&format!("Observation?patient={p}"), &dr).await,
        sorted(&[&w.vital_2024, &w.restricted_2023])
    );

    // 64: writing needs WRITE, deleting needs DELETE.
    let new_vital = json!({"resourceType": "Observation", "status": "final",
        "subject": {"reference": format!("Patient/{p}")}, "code": {"text": "weight"}});
    assert_eq!(
        w.send(reqwest::Method::POST, "Observation", &dr, Some(&new_vital))
            .await
            .0,
        403
    );
    w.change(
        &consent,
        w.consent("active", &w.doctor, &["READ_FULL", "WRITE"], &[]),
    )
    .await;
    let allergy = json!({"resourceType": "AllergyIntolerance",
        "patient": {"reference": format!("Patient/{p}")}, "code": {"text": "peanut"}});
    let (status, body) = w
        .send(
            reqwest::Method::POST,
            "AllergyIntolerance",
            &dr,
            Some(&allergy),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, written) = w
        .send(reqwest::Method::POST, "Observation", &dr, Some(&new_vital))
        .await;
    assert_eq!(status, 201, "{written}");
    let written = written["id"].as_str().unwrap().to_string();
    // A write about another patient is not covered by P's consent.
    let mut elsewhere = new_vital.clone();
    elsewhere["subject"]["reference"] = json!(format!("Patient/{}", w.other_patient));
    assert_eq!(
        w.send(reqwest::Method::POST, "Observation", &dr, Some(&elsewhere))
            .await
            .0,
        403
    );
    let delete = format!("Observation/{written}");
    assert_eq!(
        w.send(reqwest::Method::DELETE, &delete, &dr, None).await.0,
        403
    );
    w.change(
        &consent,
        w.consent("active", &w.doctor, &["READ_FULL", "WRITE", "DELETE"], &[]),
    )
    .await;
    assert!(matches!(
        w.send(reqwest::Method::DELETE, &delete, &dr, None).await.0,
        200 | 204
    ));

    // A transaction with one entry the consent does not cover writes nothing.
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": new_vital, "request": {"method": "POST", "url": "Observation"}},
        {"resource": elsewhere, "request": {"method": "POST", "url": "Observation"}},
    ]});
    let before = w
        .found(&format!("Observation?patient={p}"), &dr)
        .await
        .len();
    assert_eq!(
        w.send(reqwest::Method::POST, "", &dr, Some(&transaction))
            .await
            .0,
        403
    );
    assert_eq!(
        w.found(&format!("Observation?patient={p}"), &dr)
            .await
            .len(),
        before
    );

    // 70: a nested deny by security label hides the restricted record from search and read.
    let mut labelled = w.consent("active", &w.doctor, &["READ_FULL"], &[]);
    labelled["provision"]["provision"] = json!([{"type": "deny",
        "securityLabel": [{"system": CONFIDENTIALITY, "code": "R"}]}]);
    w.change(&consent, labelled).await;
    assert_eq!(
        w.found(&format!("Observation?patient={p}"), &dr).await,
        vec![w.vital_2024.clone()]
    );
    assert_eq!(
        w.get(&format!("Observation/{}", w.restricted_2023), &dr)
            .await
            .0,
        404
    );
    assert_eq!(
        w.get(&format!("Observation/{}", w.vital_2024), &dr).await.0,
        200
    );

    // 71: a data period keeps only records dated inside it.
    let mut period = w.consent("active", &w.doctor, &["READ_FULL"], &[]);
    period["provision"]["dataPeriod"] = json!({"start": "2024-01-01", "end": "2024-12-31"});
    w.change(&consent, period).await;
    assert_eq!(
        w.found(&format!("Observation?patient={p}"), &dr).await,
        vec![w.vital_2024.clone()]
    );
    assert_eq!(
        w.get(&format!("Observation/{}", w.restricted_2023), &dr)
            .await
            .0,
        404
    );

    // 65/66: an active consent outside its period grants nothing.
    for period in [
        json!({"end": "2025-01-01T00:00:00Z"}),
        json!({"start": "2099-01-01T00:00:00Z"}),
    ] {
        let mut timed = w.consent("active", &w.doctor, &["READ_FULL"], &[]);
        timed["provision"]["period"] = period.clone();
        w.change(&consent, timed).await;
        assert_eq!(
            w.get(&format!("Observation?patient={p}"), &dr).await.0,
            403,
            "{period}"
        );
    }

    // 73: draft and entered-in-error consents grant nothing; 67: revocation takes effect on
    // the very next request with the same token.
    w.change(
        &consent,
        w.consent("active", &w.doctor, &["READ_FULL"], &[]),
    )
    .await;
    assert_eq!(w.get(&format!("Observation?patient={p}"), &dr).await.0, 200);
    for status in ["inactive", "draft", "entered-in-error", "rejected"] {
        w.change(&consent, w.consent(status, &w.doctor, &["READ_FULL"], &[]))
            .await;
        assert_eq!(
            w.get(&format!("Observation?patient={p}"), &dr).await.0,
            403,
            "{status}"
        );
    }

    // A pharmacy: a consent to its Organization reaches its pharmacists, within their role.
    let pharmacist = w.pharmacist_token.clone();
    assert_eq!(
        w.get(&format!("MedicationRequest?patient={p}"), &pharmacist)
            .await
            .0,
        403
    );
    w.grant(w.consent(
        "active",
        &w.pharmacy,
        &["READ_FULL"],
        &["MedicationRequest"],
    ))
    .await;
    assert_eq!(
        w.found(&format!("MedicationRequest?patient={p}"), &pharmacist)
            .await,
        vec![w.medication_request.clone()]
    );
    // A type their token covers but the consent does not: hidden (404); a type their token
    // does not cover: refused by the scope check (403).
    assert_eq!(
        w.get(&format!("AllergyIntolerance/{}", w.allergy), &pharmacist)
            .await
            .0,
        404
    );
    assert_eq!(
        w.get(&format!("Condition/{}", w.condition), &pharmacist)
            .await
            .0,
        403
    );

    // The audit trail names the consent that let the pharmacist in, and records the consent
    // refusal as a security alert (the patient lists both with their own token).
    let pharmacy_consent = w
        .found(
            &format!("Consent?patient={p}&actor={}", w.pharmacy),
            &w.patient_token,
        )
        .await;
    let named_consent = format!("Consent/{}", pharmacy_consent[0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, events) = w
            .get(
                &format!("AuditEvent?patient={p}&_count=1000"),
                &w.patient_token,
            )
            .await;
        let text = events.to_string();
        let alert = events["entry"].as_array().into_iter().flatten().any(|e| {
            e["resource"]["subtype"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["code"] == "AuthZ-Consent")
        });
        if text.contains(&named_consent) && alert {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no AuditEvent names {named_consent}, or no consent alert: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A clinician who registers a patient keeps their record under a recorded consent (the
    // registration policy) that the patient can see and revoke like any other.
    let (status, created) = w
        .send(
            reqwest::Method::POST,
            "Patient",
            &dr,
            Some(&json!({"resourceType": "Patient", "name": [{"family": "Walk-in"}]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let walk_in = created["id"].as_str().unwrap().to_string();
    let vital = json!({"resourceType": "Observation", "status": "final",
        "subject": {"reference": format!("Patient/{walk_in}")}, "code": {"text": "pulse"}});
    assert_eq!(
        w.send(reqwest::Method::POST, "Observation", &dr, Some(&vital))
            .await
            .0,
        201
    );
    let (_, registered) = w.get(&format!("Consent?patient={walk_in}"), &dr).await;
    assert_eq!(
        registered["entry"][0]["resource"]["policy"][0]["uri"],
        "https://curanet.in/fhir/policy/registration"
    );
    assert_eq!(
        w.get(
            &format!("Observation?patient={walk_in}"),
            &w.second_doctor_token
        )
        .await
        .0,
        403
    );

    // The patient always reaches their own records, consents or not.
    assert_eq!(
        w.found(&format!("Observation?patient={p}"), &w.patient_token)
            .await
            .len(),
        2
    );
    w.server.stop().await;
}

on_both_backends!(consent_governs, consent_governs_clinicians);

/// Two instances on one PostgreSQL: a revocation on one is enforced by the other within one
/// second (the consent cache is invalidated through LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_other_instances() {
    let Some(w) = World::start(TestBackend::Postgres, "consent_instances", true).await else {
        return;
    };
    let mut config = w.server.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let second = curanet_http::server::start(config)
        .await
        .expect("second instance");
    let other = format!("http://{}/fhir", second.addr);
    let p = w.patient.clone();
    let consent = w
        .grant(w.consent("active", &w.doctor, &["READ_FULL"], &[]))
        .await;
    let read = |base: String| {
        let http = w.http.clone();
        let token = w.doctor_token.clone();
        let p = p.clone();
        async move {
            http.get(format!("{base}/Observation?patient={p}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Warm both instances' caches with the consent in force.
    assert_eq!(read(other.clone()).await, 200);
    assert_eq!(read(w.server.base_url.clone()).await, 200);
    w.change(
        &consent,
        w.consent("inactive", &w.doctor, &["READ_FULL"], &[]),
    )
    .await;
    let revoked = Instant::now();
    loop {
        if read(other.clone()).await == 403 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "the other instance still serves the revoked consent after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    second.stop().await.unwrap();
    w.server.stop().await;
}
