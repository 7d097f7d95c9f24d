//! The consent workflow against a real server with access tokens required, on both engines:
//! a clinician's request becomes a proposed Consent the patient sees; only the patient approves
//! (a clinician 403, another patient 404), possibly shorter and narrower but never wider (422);
//! reject, revoke with a reason, wrong-state transitions (409); break-the-glass allowed by the
//! configured roles only; the sweeper marking an expired consent inactive; and the patient's
//! notifications as Communications and as mail to a real SMTP listener.

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::mail::MailCatcher;
use common::smart::now;
use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::Role;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

on_both_backends!(consent_workflow, workflow);
on_both_backends!(break_the_glass_roles_are_configurable, configured_roles);

const PASSWORD: &str = "correct horse battery";
const ASHA: &str = "asha@example.in";
const RAVI: &str = "ravi@example.in";
const DOCTOR: &str = "dr.kumar@example.in";
const PHARMACIST: &str = "pharm@example.in";

/// A server requiring tokens, its mail going to a [`MailCatcher`].
struct Env {
    server: TestServer,
    mail: MailCatcher,
    client: reqwest::Client,
}

/// A signed-in person: their access token and FHIR identity.
struct Person {
    token: String,
    /// The patient id (patients only).
    patient: String,
    /// `Type/id` of the person's FHIR resource.
    fhir_user: String,
}

/// An answer: status, headers, JSON body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn issue_code(&self) -> &str {
        self.body["issue"][0]["code"].as_str().unwrap_or_default()
    }
}

impl Env {
    async fn start(
        backend: TestBackend,
        label: &str,
        configure: impl FnOnce(&mut curanet_http::Config),
    ) -> Option<Env> {
        let mail = MailCatcher::start().await;
        let url = mail.url.clone();
        let server = TestServer::start_with(backend, label, |c| {
            c.require_auth = true;
            c.accounts.smtp_url = Some(url);
            configure(c);
        })
        .await?;
        Some(Env {
            server,
            mail,
            client: reqwest::Client::new(),
        })
    }

    fn root(&self) -> String {
        self.server.base_url.trim_end_matches("/fhir").to_string()
    }

    /// Creates an account and signs in through `/api/auth/login`.
    async fn person(&self, role: Role, email: &str, name: &str) -> Person {
        self.server.create_user(role, email, PASSWORD, name).await;
        let r = self
            .client
            .post(format!("{}/api/auth/login", self.root()))
            .json(&json!({"identifier": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        Person {
            token: body["access_token"].as_str().unwrap().to_string(),
            patient: body["patient"].as_str().unwrap_or_default().to_string(),
            fhir_user: body["fhirUser"]
                .as_str()
                .unwrap()
                .rsplitn(3, '/')
                .take(2)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("/"),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, who: &Person) -> Answer {
        let r = request.bearer_auth(&who.token).send().await.unwrap();
        Answer {
            status: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.json().await.unwrap_or(Value::Null),
        }
    }

    async fn get(&self, who: &Person, path: &str) -> Answer {
        let url = format!("{}/{path}", self.server.base_url);
        self.send(self.client.get(url), who).await
    }

    /// `POST /fhir/{path}` with a Parameters body of `parameters`.
    async fn operation(&self, who: &Person, path: &str, parameters: Value) -> Answer {
        let body = json!({"resourceType": "Parameters", "parameter": parameters});
        let request = self
            .client
            .post(format!("{}/{path}", self.server.base_url))
            .header("content-type", "application/fhir+json")
            .body(body.to_string());
        self.send(request, who).await
    }

    async fn request_consent(&self, who: &Person, patient: &str, parameters: Value) -> Answer {
        self.operation(
            who,
            &format!("Patient/{patient}/$request-consent"),
            parameters,
        )
        .await
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

fn code(name: &str, code: &str) -> Value {
    json!({"name": name, "valueCode": code})
}

fn string(name: &str, text: &str) -> Value {
    json!({"name": name, "valueString": text})
}

fn end_in(seconds: i64) -> Value {
    let at = chrono::DateTime::from_timestamp(now() + seconds, 0).unwrap();
    json!({"name": "end", "valueDateTime": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
}

fn codes(consent: &Value, field: &str) -> Vec<String> {
    consent["provision"][field]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            c["coding"][0]["code"]
                .as_str()
                .or(c["code"].as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn workflow(backend: TestBackend) {
    let Some(env) = Env::start(backend, "consent_workflow", |c| {
        c.consents.consent_sweep_seconds = 1;
    })
    .await
    else {
        return;
    };
    let asha = env.person(Role::Patient, ASHA, "Asha Rao").await;
    let ravi = env.person(Role::Patient, RAVI, "Ravi Shah").await;
    let doctor = env.person(Role::Doctor, DOCTOR, "Anil Kumar").await;
    let pharmacist = env.person(Role::Pharmacist, PHARMACIST, "Meena Iyer").await;
    let p = asha.patient.clone();

    // Enforcement reads what the workflow writes: nothing before a consent is in force.
    let observations = format!("Observation?patient={p}");
    let reads = |answer: Answer| answer.status;
    assert_eq!(reads(env.get(&doctor, &observations).await), 403);

    // The clinician asks; the patient sees the pending request.
    let asked = env
        .request_consent(
            &doctor,
            &p,
            json!([
                code("level", "READ_FULL"),
                code("level", "WRITE"),
                code("class", "Observation"),
                code("class", "Condition"),
                code("purpose", "TREAT"),
                end_in(10 * 86_400),
                string("message", "Follow-up of your blood tests"),
            ]),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.body);
    assert_eq!(asked.headers["etag"], "W/\"1\"");
    let id = asked.body["id"].as_str().unwrap().to_string();
    assert!(
        asked.headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/Consent/{id}/_history/1"))
    );
    assert_eq!(asked.body["status"], "proposed");
    assert_eq!(asked.body["patient"]["reference"], format!("Patient/{p}"));
    assert!(
        asked.body["provision"]["actor"][0]["reference"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );
    let pending = env
        .get(&asha, &format!("Consent?patient={p}&status=proposed"))
        .await;
    assert_eq!(pending.status, 200, "{}", pending.body);
    assert_eq!(ids(&pending.body), [id.as_str()]);

    // Requests the server refuses.
    for (who, patient, parameters, status) in [
        (&doctor, p.as_str(), json!([end_in(-60)]), 400),
        (&doctor, p.as_str(), json!([end_in(400 * 86_400)]), 400),
        (&doctor, p.as_str(), json!([code("level", "ALL")]), 400),
        (&doctor, "no-such-patient", json!([]), 404),
        (&ravi, p.as_str(), json!([]), 403),
    ] {
        let answer = env.request_consent(who, patient, parameters.clone()).await;
        assert_eq!(answer.status, status, "{parameters}: {}", answer.body);
        assert_eq!(answer.body["resourceType"], "OperationOutcome");
    }

    // Only the consenting patient decides.
    let approve = format!("Consent/{id}/$approve");
    let by_doctor = env.operation(&doctor, &approve, json!([])).await;
    assert_eq!(by_doctor.status, 403, "{}", by_doctor.body);
    assert_eq!(by_doctor.issue_code(), "forbidden");
    let by_other = env.operation(&ravi, &approve, json!([])).await;
    assert_eq!(by_other.status, 404, "{}", by_other.body);
    assert_eq!(by_other.issue_code(), "not-found");

    // Widening is refused; shortening and narrowing are applied.
    for widening in [
        json!([end_in(20 * 86_400)]),
        json!([code("level", "DELETE")]),
        json!([code("class", "AllergyIntolerance")]),
    ] {
        let answer = env.operation(&asha, &approve, widening.clone()).await;
        assert_eq!(answer.status, 422, "{widening}: {}", answer.body);
        assert_eq!(answer.issue_code(), "business-rule");
    }
    let approved = env
        .operation(
            &asha,
            &approve,
            json!([
                end_in(5 * 86_400),
                code("level", "READ_FULL"),
                code("class", "Observation")
            ]),
        )
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.headers["etag"], "W/\"2\"");
    let consent = &approved.body;
    assert_eq!(consent["status"], "active");
    assert_eq!(codes(consent, "action"), ["READ_FULL"]);
    assert_eq!(codes(consent, "class"), ["Observation"]);
    let end = chrono::DateTime::parse_from_rfc3339(
        consent["provision"]["period"]["end"].as_str().unwrap(),
    )
    .unwrap()
    .timestamp();
    assert!((end - (now() + 5 * 86_400)).abs() < 60, "{consent}");
    assert!(consent["provision"]["period"]["start"].is_string());

    assert_eq!(reads(env.get(&doctor, &observations).await), 200);
    let conditions = format!("Condition?patient={p}");
    let narrowed = env.get(&doctor, &conditions).await;
    assert_eq!(narrowed.body["total"], 0, "Condition was not approved");

    // Wrong states: 409.
    for (operation, parameters) in [("approve", json!([])), ("reject", json!([]))] {
        let answer = env
            .operation(&asha, &format!("Consent/{id}/${operation}"), parameters)
            .await;
        assert_eq!(answer.status, 409, "{operation}: {}", answer.body);
    }

    // Revoke needs a reason and keeps it.
    let revoke = format!("Consent/{id}/$revoke");
    assert_eq!(env.operation(&asha, &revoke, json!([])).await.status, 400);
    let revoked = env
        .operation(
            &asha,
            &revoke,
            json!([string("reason", "I changed my doctor")]),
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.body["status"], "inactive");
    assert!(revoked.body.to_string().contains("I changed my doctor"));
    let again = env
        .operation(&asha, &revoke, json!([string("reason", "twice")]))
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(reads(env.get(&doctor, &observations).await), 403);
    let history = env.get(&asha, &format!("Consent/{id}/_history")).await;
    let versions = history.body["entry"].as_array().map(Vec::len);
    assert_eq!(versions, Some(3), "{}", history.body);

    // Reject a second request; a rejected one cannot be approved.
    let second = env.request_consent(&doctor, &p, json!([])).await;
    assert_eq!(second.status, 201, "{}", second.body);
    let second = second.body["id"].as_str().unwrap().to_string();
    let rejected = env
        .operation(&asha, &format!("Consent/{second}/$reject"), json!([]))
        .await;
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    assert_eq!(rejected.body["status"], "rejected");
    let late = env
        .operation(&asha, &format!("Consent/{second}/$approve"), json!([]))
        .await;
    assert_eq!(late.status, 409, "{}", late.body);

    // Break-the-glass: doctors by default, not pharmacists nor patients.
    let glass = format!("Patient/{p}/$break-glass");
    let reason = string("reason", "Unconscious in the emergency room");
    let claimed = env
        .operation(
            &doctor,
            &glass,
            json!([reason.clone(), {"name": "minutes", "valueInteger": 30}]),
        )
        .await;
    assert_eq!(claimed.status, 201, "{}", claimed.body);
    assert_eq!(claimed.body["status"], "active");
    assert_eq!(claimed.body["provision"]["purpose"][0]["code"], "BTG");
    assert_eq!(codes(&claimed.body, "action"), ["READ_FULL"]);
    for who in [&pharmacist, &asha] {
        let refused = env.operation(who, &glass, json!([reason.clone()])).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
    }
    assert_eq!(reads(env.get(&doctor, &conditions).await), 200);
    let too_long = env
        .operation(
            &doctor,
            &glass,
            json!([reason.clone(), {"name": "minutes", "valueInteger": 100000}]),
        )
        .await;
    assert_eq!(too_long.status, 400, "{}", too_long.body);
    assert_eq!(env.operation(&doctor, &glass, json!([])).await.status, 400);

    // The sweeper marks an active consent past its end inactive.
    let short = env.request_consent(&doctor, &p, json!([end_in(2)])).await;
    assert_eq!(short.status, 201, "{}", short.body);
    let short = short.body["id"].as_str().unwrap().to_string();
    let approved = env
        .operation(&asha, &format!("Consent/{short}/$approve"), json!([]))
        .await;
    assert_eq!(approved.status, 200, "{}", approved.body);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let read = env.get(&asha, &format!("Consent/{short}")).await;
        if read.body["status"] == "inactive" {
            assert_eq!(read.headers["etag"], "W/\"3\"");
            break;
        }
        assert!(Instant::now() < deadline, "not swept: {}", read.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The patient's notifications, in the app (the expiry's is written right after it)...
    let listed = loop {
        let listed = env
            .get(
                &asha,
                &format!("Communication?recipient=Patient/{p}&_count=100"),
            )
            .await;
        assert_eq!(listed.status, 200, "{}", listed.body);
        if listed.body.to_string().contains("consent-expired") {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "no expiry notice: {}",
            listed.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut events: Vec<String> = listed.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let c = &e["resource"];
            assert_eq!(c["status"], "completed");
            assert_eq!(c["subject"]["reference"], format!("Patient/{p}"));
            assert!(c["payload"][0]["contentString"].as_str().unwrap().len() > 20);
            c["category"][0]["coding"][0]["code"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    events.sort();
    assert_eq!(
        events,
        [
            "break-the-glass",
            "consent-approved",
            "consent-approved",
            "consent-expired",
            "consent-rejected",
            "consent-requested",
            "consent-requested",
            "consent-requested",
            "consent-revoked",
        ],
        "{}",
        listed.body
    );
    let requested = listed.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|c| c["about"][0]["reference"] == format!("Consent/{id}"))
        .unwrap();
    let text = requested["payload"][0]["contentString"].as_str().unwrap();
    assert!(text.contains("Anil Kumar"), "{text}");
    assert!(text.contains("Follow-up of your blood tests"), "{text}");
    // ...never to another patient...
    let others = env
        .get(&ravi, &format!("Communication?recipient=Patient/{p}"))
        .await;
    assert_eq!(ids(&others.body), Vec::<String>::new(), "{}", others.body);
    // ...and by mail.
    let last = env.mail.nth_to(ASHA, 9).await;
    assert!(last.header("subject").is_some());
    let subjects: Vec<String> = env
        .mail
        .messages()
        .iter()
        .filter(|m| m.to.iter().any(|t| t == ASHA))
        .map(|m| m.header("subject").unwrap_or_default())
        .collect();
    assert!(
        subjects.iter().any(|s| s.contains("emergency")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|s| s.contains("asks for access")),
        "{subjects:?}"
    );
    assert_eq!(env.mail.count_to(RAVI), 0);
    env.stop().await;
}

async fn configured_roles(backend: TestBackend) {
    let Some(env) = Env::start(backend, "consent_roles", |c| {
        c.consents.break_glass_roles = vec!["pharmacist".into()];
    })
    .await
    else {
        return;
    };
    let asha = env.person(Role::Patient, ASHA, "Asha Rao").await;
    let doctor = env.person(Role::Doctor, DOCTOR, "Anil Kumar").await;
    let pharmacist = env.person(Role::Pharmacist, PHARMACIST, "Meena Iyer").await;
    let glass = format!("Patient/{}/$break-glass", asha.patient);
    let reason = json!([string("reason", "Severe allergic reaction at the counter")]);
    let claimed = env.operation(&pharmacist, &glass, reason.clone()).await;
    assert_eq!(claimed.status, 201, "{}", claimed.body);
    let end = chrono::DateTime::parse_from_rfc3339(
        claimed.body["provision"]["period"]["end"].as_str().unwrap(),
    )
    .unwrap()
    .timestamp();
    assert!((end - (now() + 3600)).abs() < 60, "default 60 minutes");
    assert_eq!(env.operation(&doctor, &glass, reason).await.status, 403);

    // A request may name the clinician's pharmacy as the actor, not someone else's.
    let roles = env
        .get(
            &pharmacist,
            &format!("PractitionerRole?practitioner={}", pharmacist.fhir_user),
        )
        .await;
    let pharmacy = roles.body["entry"][0]["resource"]["organization"]["reference"]
        .as_str()
        .unwrap_or_else(|| panic!("the pharmacist's role: {}", roles.body))
        .to_string();
    let actor =
        |reference: &str| json!({"name": "actor", "valueReference": {"reference": reference}});
    let asked = env
        .request_consent(
            &pharmacist,
            &asha.patient,
            json!([code("level", "READ_BASIC"), actor(&pharmacy)]),
        )
        .await;
    assert_eq!(asked.status, 201, "{}", asked.body);
    assert_eq!(
        asked.body["provision"]["actor"][0]["reference"]["reference"],
        pharmacy.as_str()
    );
    let foreign = env
        .request_consent(&doctor, &asha.patient, json!([actor(&pharmacy)]))
        .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    env.mail.nth_to(ASHA, 2).await;
    // Long lines may be wrapped in transit.
    let bodies: Vec<String> = env
        .mail
        .messages()
        .iter()
        .map(|m| m.body().split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains("claimed emergency access")
            && b.contains("Severe allergic reaction at the counter")),
        "{bodies:?}"
    );
    env.stop().await;
}

/// Two instances on one PostgreSQL database both sweep: each expiry is recorded once (one
/// new version, one notification); the other instance's lost race is silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_record_each_expiry_once() {
    let Some(env) = Env::start(TestBackend::Postgres, "consent_sweep_two", |c| {
        c.consents.consent_sweep_seconds = 1;
    })
    .await
    else {
        return;
    };
    let second = curanet_http::start(env.server.config.clone())
        .await
        .expect("a second instance starts");
    let asha = env.person(Role::Patient, ASHA, "Asha Rao").await;
    let doctor = env.person(Role::Doctor, DOCTOR, "Anil Kumar").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let asked = env
            .request_consent(&doctor, &asha.patient, json!([end_in(2)]))
            .await;
        assert_eq!(asked.status, 201, "{}", asked.body);
        let id = asked.body["id"].as_str().unwrap().to_string();
        let approved = env
            .operation(&asha, &format!("Consent/{id}/$approve"), json!([]))
            .await;
        assert_eq!(approved.status, 200, "{}", approved.body);
        ids.push(id);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for id in &ids {
        while env.get(&asha, &format!("Consent/{id}")).await.body["status"] != "inactive" {
            assert!(Instant::now() < deadline, "Consent/{id} not swept");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Both instances have swept at least twice more.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for id in &ids {
        let history = env.get(&asha, &format!("Consent/{id}/_history")).await;
        let versions = history.body["entry"].as_array().map(Vec::len);
        assert_eq!(versions, Some(3), "{}", history.body);
    }
    let expired = env
        .get(&asha, "Communication?category=consent-expired&_count=100")
        .await;
    let mut about: Vec<String> = expired.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["about"][0]["reference"].as_str())
        .map(|r| r.trim_start_matches("Consent/").to_string())
        .collect();
    about.sort();
    ids.sort();
    assert_eq!(about, ids, "{}", expired.body);
    second.stop().await.expect("the second instance stops");
    env.stop().await;
}
