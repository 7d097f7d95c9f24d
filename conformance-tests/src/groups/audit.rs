//! The audit trail (checklist cases 83–90 of `shared/reference/smart-consent-abdm-audit.md` §7),
//! black-box: requests made with a unique `X-Request-Id`, then the AuditEvent naming that
//! request id looked up (records are written off the request path, within about a second, so
//! the lookups poll for a few seconds). AuditEvents are searched with the suite's backend token
//! (`system/*.cruds` reaches them all); the people are those of the `consent` group.
//!
//! As far as the server records today: case 86 checks the REST record of the refusal, not the
//! AuthZ-Consent Security Alert (not recorded yet); case 87 is run with the widest tokens the
//! set-up has (the backend's `system/*.cruds`, a patient, a clinician) since it names no
//! administrator (an administrator's sign-in needs two-factor authentication); case 88 checks
//! creation, approval, rejection and revocation done by the patient's `PUT` (the consent
//! operations are not used).

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use super::consent::{consent, grant, people, relative};
use crate::client::unique;
use crate::{Client, Outcome, cases, ensure};

cases!("audit";
    a_read_is_recorded_balp_style,
    a_search_is_recorded_with_its_query_and_without_results,
    creates_updates_and_deletes_are_recorded_as_c_u_d,
    a_refusal_is_recorded_as_a_failure,
    audit_events_are_append_only_for_everyone,
    consent_changes_are_recorded_with_their_version,
    sign_in_and_sign_out_are_recorded,
    a_patient_lists_who_accessed_their_record,
);

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// A search window start: a little before now (RFC 3339, UTC).
fn since() -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(120))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The AuditEvent of `search` (an AuditEvent query) whose request-id entity is `request_id`,
/// waiting up to 8 s for the writer; searched with `auditor`'s token.
async fn event(auditor: &Client, search: &str, request_id: &str) -> Result<Value, String> {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let reply = auditor.get(search).await?;
        reply.expect(200)?;
        let found = reply.json["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["resource"])
            .find(|ae| {
                ae["entity"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|en| en["what"]["identifier"]["value"] == json!(request_id))
            });
        if let Some(ae) = found {
            return Ok(ae.clone());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no AuditEvent names the request id {request_id} after 8 s ({search})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GET `path` with `X-Request-Id: id`.
async fn get_as(c: &Client, path: &str, id: &str) -> Result<crate::Reply, String> {
    c.get_with(path, vec![("x-request-id", id.to_string())])
        .await
}

fn codes(v: &Value) -> Vec<String> {
    let list: Vec<&Value> = match v.as_array() {
        Some(a) => a.iter().collect(),
        None => vec![v],
    };
    list.into_iter()
        .flat_map(|c| {
            c["coding"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![c.clone()])
        })
        .filter_map(|c| c["code"].as_str().map(str::to_string))
        .collect()
}

/// The entities of `ae` whose `what.reference` is `reference`.
fn entity<'a>(ae: &'a Value, reference: &str) -> Option<&'a Value> {
    ae["entity"].as_array()?.iter().find(|e| {
        e["what"]["reference"].as_str().map(relative_or_versioned) == Some(reference.to_string())
    })
}

/// `Type/id` or `Type/id/_history/v` of a reference, made relative.
fn relative_or_versioned(reference: &str) -> String {
    match reference.split_once("/_history/") {
        Some((head, version)) => format!("{}/_history/{version}", relative(head)),
        None => relative(reference),
    }
}

async fn a_read_is_recorded_balp_style(c: Client) -> Outcome {
    let (p, guard) = people(&c).await?;
    drop(guard);
    let pid = &p.patient_id;
    let id = format!("conf-{}", unique());
    get_as(&p.patient, &format!("Patient/{pid}"), &id)
        .await?
        .expect(200)?;
    let ae = event(
        &c,
        &format!("AuditEvent?patient={pid}&date=ge{}&_count=200", since()),
        &id,
    )
    .await?;
    ensure!(codes(&ae["type"]) == ["rest"], "type {}", ae["type"]);
    ensure!(
        codes(&ae["subtype"]).contains(&"read".to_string()),
        "subtype {}",
        ae["subtype"]
    );
    ensure!(ae["action"] == "R", "action {}", ae["action"]);
    ensure!(ae["outcome"] == "0", "outcome {}", ae["outcome"]);
    ensure!(ae["recorded"].is_string(), "no recorded time");
    let agents = ae["agent"].as_array().cloned().unwrap_or_default();
    let user = agents
        .iter()
        .find(|a| a["requestor"] == true)
        .ok_or("no requesting (user) agent")?;
    ensure!(
        relative(user["who"]["reference"].as_str().unwrap_or_default()) == format!("Patient/{pid}"),
        "the user agent is {} (want the token's fhirUser Patient/{pid})",
        user["who"]
    );
    ensure!(
        user["policy"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("urn:ietf:params:oauth:jti:")),
        "the user agent's policy is {} (want urn:ietf:params:oauth:jti:<jti>)",
        user["policy"]
    );
    let roles: Vec<Vec<String>> = agents.iter().map(|a| codes(&a["type"])).collect();
    let client = agents
        .iter()
        .find(|a| codes(&a["type"]).contains(&"110152".to_string()))
        .ok_or(format!("no client agent with DCM 110152: {roles:?}"))?;
    ensure!(
        client["network"]["address"].is_string(),
        "the client agent has no network address"
    );
    ensure!(
        agents
            .iter()
            .any(|a| codes(&a["type"]).contains(&"110153".to_string())),
        "no server agent with DCM 110153: {roles:?}"
    );
    ensure!(
        entity(&ae, &format!("Patient/{pid}")).is_some(),
        "no entity for Patient/{pid}"
    );
    ensure!(
        ae["entity"].as_array().into_iter().flatten().any(|e| {
            e["what"]["reference"].as_str().map(relative) == Some(format!("Patient/{pid}"))
                && codes(&e["role"]) == ["1"]
        }),
        "no patient entity (object-role 1) for Patient/{pid}"
    );
    Ok(())
}

async fn a_search_is_recorded_with_its_query_and_without_results(c: Client) -> Outcome {
    let (p, guard) = people(&c).await?;
    drop(guard);
    let pid = &p.patient_id;
    let id = format!("conf-{}", unique());
    let query = format!("patient={pid}&category=laboratory");
    get_as(&p.patient, &format!("Observation?{query}"), &id)
        .await?
        .expect(200)?;
    let ae = event(
        &c,
        &format!("AuditEvent?patient={pid}&date=ge{}&_count=200", since()),
        &id,
    )
    .await?;
    ensure!(ae["action"] == "E", "action {}", ae["action"]);
    ensure!(
        codes(&ae["subtype"]).contains(&"search-type".to_string()),
        "subtype {}",
        ae["subtype"]
    );
    let recorded: Vec<String> = ae["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["query"].as_str())
        .filter_map(|q| STANDARD.decode(q).ok())
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .collect();
    ensure!(
        recorded.iter().any(|q| q == &query),
        "entity.query holds {recorded:?} (want base64 of {query})"
    );
    ensure!(
        ae["entity"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| !e["what"]["reference"]
                .as_str()
                .unwrap_or_default()
                .contains("Observation/")),
        "the search's results are recorded: {}",
        ae["entity"]
    );
    ensure!(
        entity(&ae, &format!("Patient/{pid}")).is_some(),
        "no patient entity for P"
    );
    Ok(())
}

async fn creates_updates_and_deletes_are_recorded_as_c_u_d(c: Client) -> Outcome {
    let patient = c.create(&super::fixtures::patient()).await?;
    patient.expect(201)?;
    let pid = patient.id();
    let mut observation = super::fixtures::observation();
    observation["subject"] = json!({"reference": format!("Patient/{pid}")});
    let ids: Vec<String> = (0..3).map(|_| format!("conf-{}", unique())).collect();
    let header = |i: usize| vec![("x-request-id", ids[i].clone())];
    let created = c
        .write(Method::POST, "Observation", &observation, header(0))
        .await?;
    created.expect(201)?;
    let oid = created.id();
    observation["id"] = json!(oid);
    observation["status"] = json!("amended");
    c.write(
        Method::PUT,
        &format!("Observation/{oid}"),
        &observation,
        header(1),
    )
    .await?
    .expect(200)?;
    let deleted = c
        .send(crate::client::Request {
            method: Method::DELETE,
            path: &format!("Observation/{oid}"),
            body: None,
            headers: header(2),
        })
        .await?;
    ensure!(
        matches!(deleted.status, 200 | 204),
        "DELETE: HTTP {}",
        deleted.status
    );
    // Writes with a backend token name no patient: the records are found by the resource.
    let search = format!("AuditEvent?entity=Observation/{oid}&_count=200");
    for (i, (action, what)) in [
        ("C", format!("Observation/{oid}/_history/1")),
        ("U", format!("Observation/{oid}/_history/2")),
        ("D", format!("Observation/{oid}")),
    ]
    .iter()
    .enumerate()
    {
        let ae = event(&c, &search, &ids[i]).await?;
        ensure!(
            ae["action"] == *action,
            "action {} (want {action})",
            ae["action"]
        );
        ensure!(
            entity(&ae, what).is_some(),
            "action {action}: no entity {what}: {}",
            ae["entity"]
        );
    }
    Ok(())
}

async fn a_refusal_is_recorded_as_a_failure(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let pid = &p.patient_id;
    let id = format!("conf-{}", unique());
    let reply = get_as(&p.doctor, &format!("Observation?patient={pid}"), &id).await?;
    ensure!(reply.status == 403, "no consent: HTTP {}", reply.status);
    let ae = event(
        &c,
        &format!("AuditEvent?patient={pid}&date=ge{}&_count=200", since()),
        &id,
    )
    .await?;
    ensure!(
        ae["outcome"] != "0" && ae["outcome"].is_string(),
        "the refusal's outcome is {}",
        ae["outcome"]
    );
    ensure!(
        ae["outcomeDesc"].as_str().is_some_and(|d| !d.is_empty()),
        "the refusal has no outcomeDesc"
    );
    let user = ae["agent"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["requestor"] == true)
        .ok_or("no user agent")?;
    ensure!(
        relative(user["who"]["reference"].as_str().unwrap_or_default()) == p.doctor_ref,
        "the refused user is {} (want {})",
        user["who"],
        p.doctor_ref
    );
    Ok(())
}

async fn audit_events_are_append_only_for_everyone(c: Client) -> Outcome {
    let (p, guard) = people(&c).await?;
    drop(guard);
    let reply = c
        .get(&format!("AuditEvent?patient={}&_count=1", p.patient_id))
        .await?;
    reply.expect(200)?;
    let ae = reply.json["entry"][0]["resource"].clone();
    let id = ae["id"].as_str().ok_or("no AuditEvent to try")?.to_string();
    let mut changed = ae.clone();
    changed["outcome"] = json!("0");
    for (who, client) in [
        ("the backend (system/*.cruds)", &c),
        ("the patient", &p.patient),
        ("a clinician", &p.doctor),
    ] {
        let put = client
            .write(Method::PUT, &format!("AuditEvent/{id}"), &changed, vec![])
            .await?;
        ensure!(
            matches!(put.status, 403 | 405),
            "{who}: PUT AuditEvent/{id}: HTTP {}",
            put.status
        );
        let delete = client.delete(&format!("AuditEvent/{id}")).await?;
        ensure!(
            matches!(delete.status, 403 | 405),
            "{who}: DELETE AuditEvent/{id}: HTTP {}",
            delete.status
        );
    }
    c.get(&format!("AuditEvent/{id}")).await?.expect(200)?;
    Ok(())
}

async fn consent_changes_are_recorded_with_their_version(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let pid = &p.patient_id;
    let search = format!("AuditEvent?patient={pid}&date=ge{}&_count=200", since());
    let ids: Vec<String> = (0..4).map(|_| format!("conf-{}", unique())).collect();
    let body = consent(&p, "proposed", &p.doctor_ref, &["READ_BASIC"], &[]);
    // Create (the patient's own request), approve, revoke.
    let created = p
        .patient
        .write(
            Method::POST,
            "Consent",
            &body,
            vec![("x-request-id", ids[0].clone())],
        )
        .await?;
    created.expect(201)?;
    let cid = created.id();
    let mut steps = vec![("C", format!("Consent/{cid}/_history/1"))];
    for (i, status) in [(1, "active"), (2, "inactive")] {
        let mut next = body.clone();
        next["id"] = json!(cid);
        next["status"] = json!(status);
        p.patient
            .write(
                Method::PUT,
                &format!("Consent/{cid}"),
                &next,
                vec![("x-request-id", ids[i].clone())],
            )
            .await?
            .expect(200)?;
        steps.push(("U", format!("Consent/{cid}/_history/{}", i + 1)));
    }
    // A clinician's request that the patient rejects.
    let request = p.doctor.create(&body).await?;
    request.expect(201)?;
    let rid = request.id();
    let mut rejected = body.clone();
    rejected["id"] = json!(rid);
    rejected["status"] = json!("rejected");
    p.patient
        .write(
            Method::PUT,
            &format!("Consent/{rid}"),
            &rejected,
            vec![("x-request-id", ids[3].clone())],
        )
        .await?
        .expect(200)?;
    steps.push(("U", format!("Consent/{rid}/_history/2")));
    for (i, (action, what)) in steps.iter().enumerate() {
        let ae = event(&c, &search, &ids[i]).await?;
        ensure!(ae["action"] == *action, "{what}: action {}", ae["action"]);
        ensure!(
            entity(&ae, what).is_some(),
            "no entity {what}: {}",
            ae["entity"]
        );
    }
    Ok(())
}

async fn sign_in_and_sign_out_are_recorded(c: Client) -> Outcome {
    let s = c.smart()?;
    let login = s
        .second_patient
        .as_ref()
        .ok_or("the SMART set-up names no second_patient")?;
    let http = reqwest::Client::new();
    let root = c.root();
    let (login_id, logout_id) = (format!("conf-{}", unique()), format!("conf-{}", unique()));
    let reply = http
        .post(format!("{root}/api/auth/login"))
        .header("x-request-id", &login_id)
        .json(&json!({"identifier": login.identifier, "password": login.password}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    ensure!(reply.status() == 200, "sign-in: HTTP {}", reply.status());
    let answer: Value = reply.json().await.map_err(|e| e.to_string())?;
    let refresh = answer["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let reply = http
        .post(format!("{root}/api/auth/logout"))
        .header("x-request-id", &logout_id)
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        reply.status().is_success(),
        "sign-out: HTTP {}",
        reply.status()
    );
    for (id, subtype) in [(&login_id, "110122"), (&logout_id, "110123")] {
        let ae = event(
            &c,
            &format!("AuditEvent?subtype={subtype}&date=ge{}&_count=200", since()),
            id,
        )
        .await?;
        ensure!(
            codes(&ae["type"]) == ["110114"] && ae["type"]["system"] == DCM,
            "type {} (want DCM 110114)",
            ae["type"]
        );
        ensure!(
            codes(&ae["subtype"]).contains(&subtype.to_string()),
            "subtype {} (want {subtype})",
            ae["subtype"]
        );
    }
    Ok(())
}

async fn a_patient_lists_who_accessed_their_record(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let pid = &p.patient_id;
    grant(
        &p,
        &consent(&p, "active", &p.doctor_ref, &["READ_BASIC"], &[]),
    )
    .await?;
    let id = format!("conf-{}", unique());
    get_as(&p.doctor, &format!("Patient/{pid}"), &id)
        .await?
        .expect(200)?;
    // The patient finds the clinician's read in their own list.
    let ae = event(
        &p.patient,
        &format!("AuditEvent?patient={pid}&date=ge{}&_count=200", since()),
        &id,
    )
    .await?;
    let who: Vec<String> = ae["agent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["who"]["reference"].as_str().map(relative))
        .collect();
    ensure!(
        who.contains(&p.doctor_ref),
        "the patient's list does not name {} as the reader: {who:?}",
        p.doctor_ref
    );
    // Another patient's list: nothing of theirs.
    let other = c.create(&super::fixtures::patient()).await?;
    other.expect(201)?;
    let reply = p
        .patient
        .get(&format!("AuditEvent?patient={}", other.id()))
        .await?;
    ensure!(
        reply.status == 403
            || (reply.status == 200 && reply.json["entry"].as_array().is_none_or(Vec::is_empty)),
        "another patient's audit list: HTTP {} with {}",
        reply.status,
        reply.json["entry"]
    );
    // Clinicians do not read the audit trail.
    let reply = p.doctor.get(&format!("AuditEvent?patient={pid}")).await?;
    ensure!(
        reply.status == 403,
        "a clinician's AuditEvent search: HTTP {}",
        reply.status
    );
    Ok(())
}
