//! SMART resource access (checklist cases 25–35 of `shared/reference/smart-consent-abdm-audit.md`
//! §7): what the FHIR API answers to no token, bad tokens, and the tokens of real standalone
//! launches by the set-up's patient, with resource-level, granular, read-only, v1 and write
//! scopes. Test data is written with the suite's backend token (`system/*.cruds`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::unique;
use crate::smart::{Decision, TokenReply, jwt_parts, launch, now};
use crate::{Client, Outcome, cases, ensure};

cases!("smart-access";
    no_token_gets_401,
    garbage_and_tampered_tokens_get_401_with_a_bearer_challenge,
    id_token_is_not_an_access_token,
    patient_token_sees_only_its_own_patient,
    patient_token_reaches_no_other_patient_by_any_route,
    ungranted_resource_type_is_refused,
    granular_category_scope_returns_exactly_the_lab_subset,
    granular_category_scope_holds_for_history_includes_and_operations,
    read_without_search_cannot_search,
    v1_read_scope_reads_and_searches,
    read_search_scope_cannot_create,
    transaction_with_a_forbidden_entry_commits_nothing_and_batch_refuses_only_it,
    fhir_user_is_readable_and_id_token_verifies,
);

const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// The granular scope the consent page offers beside a resource-level `patient/Observation.rs`.
fn lab_scope() -> String {
    format!("patient/Observation.rs?category={OBSERVATION_CATEGORY}|laboratory")
}

/// A standalone launch of the public app by the set-up's patient asking for
/// `launch/patient openid fhirUser {clinical}`, approving what the page pre-selects or exactly
/// `only` among the offered scopes. Returns a client sending the access token, the patient in
/// context and the token reply.
async fn patient_session(
    c: &Client,
    clinical: &str,
    only: Option<Vec<String>>,
) -> Result<(Client, String, TokenReply), String> {
    let s = c.smart()?;
    let decision = Decision {
        only,
        ..Decision::default()
    };
    let scope = format!("launch/patient openid fhirUser {clinical}");
    let (_, reply) = launch(c, &s.app, &s.patient, &scope, &decision).await?;
    let token = reply.field("access_token");
    let patient = reply.field("patient");
    ensure!(!token.is_empty(), "no access token: {}", reply.json);
    ensure!(!patient.is_empty(), "no patient in context: {}", reply.json);
    Ok((c.with_token(&token), patient, reply))
}

/// The granted scopes of a token reply.
fn granted(reply: &TokenReply) -> Vec<String> {
    reply
        .field("scope")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A Observation of `patient` in `category`, coded with a code unique to the check (`tag`), so
/// a search by that code finds only what the check wrote.
fn observation(patient: &str, category: &str, tag: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": "urn:curanet:conformance", "code": tag}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "valueQuantity": {"value": 5.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}
    })
}

/// Creates `resource` with the backend token; its id.
async fn create(c: &Client, resource: &Value) -> Result<String, String> {
    let reply = c.create(resource).await?;
    reply.expect(201)?;
    let id = reply.id();
    ensure!(!id.is_empty(), "created without an id: {}", reply.text);
    Ok(id)
}

/// A search path for the check's Observations of `patient` (by the unique code `tag`).
fn tagged_search(patient: &str, tag: &str) -> String {
    format!("Observation?patient={patient}&code=urn:curanet:conformance%7C{tag}")
}

/// The ids of the resources of a searchset (fails unless it is one, answered with 200).
fn entry_ids(reply: &crate::Reply) -> Result<Vec<String>, String> {
    reply.expect(200)?;
    ensure!(
        reply.json["resourceType"] == "Bundle" && reply.json["type"] == "searchset",
        "not a searchset: {}",
        reply.text
    );
    let mut ids: Vec<String> = reply.json["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] != "include" && e["search"]["mode"] != "outcome")
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Fails unless the reply is 401 and challenges with `WWW-Authenticate: Bearer`.
fn bearer_challenge(reply: &crate::Reply, what: &str) -> Outcome {
    ensure!(
        reply.status == 401,
        "{what}: HTTP {} (want 401): {}",
        reply.status,
        reply.text.chars().take(300).collect::<String>()
    );
    let challenge = reply.header("www-authenticate");
    ensure!(
        challenge.to_ascii_lowercase().starts_with("bearer"),
        "{what}: WWW-Authenticate is '{challenge}'"
    );
    // RFC 6750 §3.1: a token was sent and failed, so the challenge names the error.
    ensure!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: WWW-Authenticate '{challenge}' lacks error=\"invalid_token\""
    );
    Ok(())
}

async fn no_token_gets_401(c: Client) -> Outcome {
    let id = create(&c, &super::fixtures::patient()).await?;
    // The same read with the suite's token works: the 401 is about the missing token.
    c.get(&format!("Patient/{id}")).await?.expect(200)?;
    let reply = c.anonymous().get(&format!("Patient/{id}")).await?;
    ensure!(
        reply.status == 401,
        "GET Patient/{id} without a token: HTTP {} (want 401)",
        reply.status
    );
    ensure!(
        reply.json["resourceType"] != "Patient",
        "the Patient was served without a token"
    );
    let search = c.anonymous().get(&format!("Patient?_id={id}")).await?;
    ensure!(
        search.status == 401,
        "GET Patient?_id={id} without a token: HTTP {} (want 401)",
        search.status
    );
    let write = c.anonymous().create(&super::fixtures::patient()).await?;
    ensure!(
        write.status == 401,
        "POST Patient without a token: HTTP {} (want 401)",
        write.status
    );
    Ok(())
}

async fn garbage_and_tampered_tokens_get_401_with_a_bearer_challenge(c: Client) -> Outcome {
    let id = create(&c, &super::fixtures::patient()).await?;
    let path = format!("Patient/{id}");
    let garbage = c.with_token("not-a-token-at-all").get(&path).await?;
    bearer_challenge(&garbage, "a garbage token")?;
    // A real access token whose payload is changed to have expired an hour ago: the signature no
    // longer matches, and the claims say it expired (an expired token cannot be waited for here).
    let s = c.smart()?;
    let (_, reply) = launch(
        &c,
        &s.app,
        &s.patient,
        "launch/patient openid fhirUser patient/*.rs",
        &Decision::default(),
    )
    .await?;
    let token = reply.field("access_token");
    let patient = reply.field("patient");
    c.with_token(&token)
        .get(&format!("Patient/{patient}"))
        .await?
        .expect(200)?;
    let (_, mut claims) = jwt_parts(&token)?;
    claims["exp"] = json!(now() - 3600);
    let parts: Vec<&str> = token.split('.').collect();
    ensure!(parts.len() == 3, "the access token is not a JWS");
    let payload = base64_url(&serde_json::to_vec(&claims).map_err(|e| e.to_string())?);
    let expired = format!("{}.{payload}.{}", parts[0], parts[2]);
    let reply = c
        .with_token(&expired)
        .get(&format!("Patient/{patient}"))
        .await?;
    bearer_challenge(&reply, "an expired (re-written) token")?;
    Ok(())
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Case 27 (a token for another audience) cannot be produced from outside the server; the
/// closest black-box check is a signed token of the same server meant for someone else: the ID
/// token (audience: the app) presented as an access token.
async fn id_token_is_not_an_access_token(c: Client) -> Outcome {
    let (me, patient, reply) = patient_session(&c, "patient/*.rs", None).await?;
    let path = format!("Patient/{patient}");
    me.get(&path).await?.expect(200)?;
    let id_token = reply.field("id_token");
    ensure!(!id_token.is_empty(), "no id_token: {}", reply.json);
    let refused = c.with_token(&id_token).get(&path).await?;
    bearer_challenge(&refused, "the ID token as an access token")?;
    Ok(())
}

async fn patient_token_sees_only_its_own_patient(c: Client) -> Outcome {
    let (me, patient, _) = patient_session(&c, "patient/*.rs", None).await?;
    let own = me.get(&format!("Patient/{patient}")).await?;
    own.expect(200)?;
    ensure!(
        own.json["resourceType"] == "Patient" && own.id() == patient,
        "not the patient in context: {}",
        own.text
    );
    let other = create(&c, &super::fixtures::patient()).await?;
    let tag = unique();
    let theirs = create(&c, &observation(&other, "laboratory", &tag)).await?;
    // The backend sees the other patient's Observation, so an empty answer below is a refusal.
    ensure!(
        entry_ids(&c.get(&tagged_search(&other, &tag)).await?)?.len() == 1,
        "the backend does not find the other patient's Observation"
    );
    let read = me.get(&format!("Patient/{other}")).await?;
    ensure!(
        read.status == 404,
        "GET another patient's Patient: HTTP {} (want 404)",
        read.status
    );
    let read = me.get(&format!("Observation/{theirs}")).await?;
    ensure!(
        read.status == 404,
        "GET another patient's Observation: HTTP {} (want 404)",
        read.status
    );
    for path in [
        tagged_search(&other, &tag),
        format!("Observation?patient={other}"),
        format!("Observation?subject=Patient/{other}"),
        format!("Observation?_id={theirs}"),
        format!("Patient?_id={other}"),
        format!("Observation?patient={other}&_total=accurate"),
        format!("Observation?patient={other}&_summary=count"),
    ] {
        let search = me.get(&path).await?;
        let ids = entry_ids(&search)?;
        ensure!(ids.is_empty(), "{path} returned {ids:?}");
        let total = &search.json["total"];
        ensure!(
            total.is_null() || total == 0,
            "{path}: total {total} leaks the other patient's records"
        );
    }
    Ok(())
}

/// Checklist case 28 beyond reads and searches by patient: history (instance, type and
/// system level), `$everything`, system-level search and chained search never hand a patient
/// token another patient's records. Answers may be a refusal or a Bundle without them.
async fn patient_token_reaches_no_other_patient_by_any_route(c: Client) -> Outcome {
    let (me, patient, _) = patient_session(&c, "patient/*.rs", None).await?;
    let other_patient = super::fixtures::patient();
    let family = other_patient["name"][0]["family"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let other = create(&c, &other_patient).await?;
    let since = c.get(&format!("Patient/{other}")).await?;
    since.expect(200)?;
    let since = since.json["meta"]["lastUpdated"]
        .as_str()
        .ok_or("the created Patient has no meta.lastUpdated")?
        .replace('+', "%2B");
    let theirs = create(&c, &observation(&other, "laboratory", &unique())).await?;
    let mine = create(&c, &observation(&patient, "laboratory", &unique())).await?;
    let foreign = [format!("Patient/{other}"), format!("Observation/{theirs}")];
    let leaked = |bundle: &Value| -> Vec<String> {
        bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let r = &e["resource"];
                let key = format!("{}/{}", r["resourceType"].as_str()?, r["id"].as_str()?);
                foreign.contains(&key).then_some(key)
            })
            .collect()
    };

    for path in [
        format!("Patient/{other}/_history"),
        format!("Patient/{other}/_history/1"),
        format!("Observation/{theirs}/_history/1"),
        format!("Patient/{other}/$everything"),
    ] {
        let reply = me.get(&path).await?;
        ensure!(
            reply.status == 404 || reply.status == 403,
            "{path}: HTTP {} (want 404, or 403)",
            reply.status
        );
    }

    // The same routes work for the patient's own records, so the refusals above are targeted.
    me.get(&format!("Patient/{patient}/_history"))
        .await?
        .expect(200)?;
    let everything = me
        .get(&format!("Patient/{patient}/$everything?_count=500"))
        .await?;
    everything.expect(200)?;
    ensure!(
        observation_ids(&everything.json).contains(&mine),
        "the patient's own $everything lacks their new Observation"
    );
    let found = leaked(&everything.json);
    ensure!(
        found.is_empty(),
        "the patient's own $everything holds {found:?}"
    );

    for path in [
        format!("Observation/_history?_since={since}&_count=500"),
        format!("_history?_since={since}&_count=500"),
        format!("?_type=Patient,Observation&_count=500&_lastUpdated=ge{since}"),
        format!("Observation?subject:Patient.family={family}"),
        format!("Observation?patient.family={family}"),
    ] {
        let reply = me.get(&path).await?;
        match reply.status {
            200 => {
                let found = leaked(&reply.json);
                ensure!(found.is_empty(), "{path} returned {found:?}");
            }
            400 | 403 => {}
            other => return Err(format!("{path}: HTTP {other}")),
        }
    }
    Ok(())
}

async fn ungranted_resource_type_is_refused(c: Client) -> Outcome {
    let (me, patient, reply) = patient_session(&c, "patient/Observation.rs", None).await?;
    let scopes = granted(&reply);
    ensure!(
        !scopes
            .iter()
            .any(|s| s.contains("Condition") || s.starts_with("patient/*")),
        "granted more than asked: {scopes:?}"
    );
    me.get(&format!("Observation?patient={patient}"))
        .await?
        .expect(200)?;
    let refused = me.get(&format!("Condition?patient={patient}")).await?;
    ensure!(
        refused.status == 401 || refused.status == 403,
        "Condition search without a Condition scope: HTTP {} (want 401/403)",
        refused.status
    );
    let condition = create(
        &c,
        &json!({
            "resourceType": "Condition",
            "subject": {"reference": format!("Patient/{patient}")},
            "code": {"text": "Seasonal allergic rhinitis"}
        }),
    )
    .await?;
    let read = me.get(&format!("Condition/{condition}")).await?;
    ensure!(
        read.status == 401 || read.status == 403,
        "reading the patient's own Condition without a Condition scope: HTTP {} (want 401/403)",
        read.status
    );
    Ok(())
}

async fn granular_category_scope_returns_exactly_the_lab_subset(c: Client) -> Outcome {
    let lab_scope = lab_scope();
    let (me, patient, reply) =
        patient_session(&c, "patient/Observation.rs", Some(vec![lab_scope.clone()])).await?;
    let scopes = granted(&reply);
    ensure!(
        scopes.contains(&lab_scope),
        "the laboratory scope was not granted: {scopes:?}"
    );
    ensure!(
        !scopes.iter().any(|s| s == "patient/Observation.rs"),
        "the resource-level scope was granted although unchecked: {scopes:?}"
    );
    let tag = unique();
    let lab = create(&c, &observation(&patient, "laboratory", &tag)).await?;
    let lab2 = create(&c, &observation(&patient, "laboratory", &tag)).await?;
    let vital = create(&c, &observation(&patient, "vital-signs", &tag)).await?;
    // The unrestricted result (backend token) holds all three, so the filter has work to do.
    let all = entry_ids(&c.get(&tagged_search(&patient, &tag)).await?)?;
    let mut want = vec![lab.clone(), lab2];
    want.sort();
    let mut everything = [want.clone(), vec![vital.clone()]].concat();
    everything.sort();
    ensure!(
        all == everything,
        "the unrestricted search found {all:?}, want {everything:?}"
    );
    let got = entry_ids(&me.get(&tagged_search(&patient, &tag)).await?)?;
    ensure!(
        got == want,
        "under the laboratory scope the search found {got:?}, want exactly the lab subset {want:?}"
    );
    // Asking for the other category, or for the vital-signs record by id, finds nothing.
    for path in [
        format!(
            "{}&category={OBSERVATION_CATEGORY}%7Cvital-signs",
            tagged_search(&patient, &tag)
        ),
        format!("Observation?_id={vital}"),
    ] {
        let reply = me.get(&path).await?;
        if reply.status != 403 {
            let ids = entry_ids(&reply)?;
            ensure!(
                ids.is_empty(),
                "{path} under the laboratory scope found {ids:?}"
            );
        }
    }
    me.get(&format!("Observation/{lab}")).await?.expect(200)?;
    let read = me.get(&format!("Observation/{vital}")).await?;
    ensure!(
        read.status != 200,
        "a vital-signs Observation was readable under the laboratory scope"
    );
    Ok(())
}

/// The ids of the Observations anywhere in a Bundle.
fn observation_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["resource"]["resourceType"] == "Observation")
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

/// Checklist case 30 beyond the plain search: under a laboratory-only scope (with
/// `patient/Patient.rs` too), no other way of reading reaches a vital-signs Observation —
/// vread and instance history, `_revinclude`, `POST _search`, `$everything`, `$lastn`.
async fn granular_category_scope_holds_for_history_includes_and_operations(c: Client) -> Outcome {
    let lab_scope = lab_scope();
    let (me, patient, reply) = patient_session(
        &c,
        "patient/Patient.rs patient/Observation.rs",
        Some(vec!["patient/Patient.rs".to_string(), lab_scope.clone()]),
    )
    .await?;
    let scopes = granted(&reply);
    ensure!(
        scopes.contains(&lab_scope) && scopes.iter().any(|s| s == "patient/Patient.rs"),
        "granted {scopes:?}, want patient/Patient.rs and the laboratory scope"
    );
    let tag = unique();
    let lab = create(&c, &observation(&patient, "laboratory", &tag)).await?;
    let vital = create(&c, &observation(&patient, "vital-signs", &tag)).await?;

    for path in [
        format!("Observation/{vital}/_history/1"),
        format!("Observation/{vital}/_history"),
    ] {
        let reply = me.get(&path).await?;
        ensure!(
            reply.status != 200 || observation_ids(&reply.json).is_empty(),
            "{path} under the laboratory scope: HTTP 200 {}",
            reply.text.chars().take(300).collect::<String>()
        );
        ensure!(
            reply.json["resourceType"] != "Observation",
            "{path} served the vital-signs Observation"
        );
    }
    // (A vread of the matching laboratory record is not asserted: CuraNet refuses vread and
    // history under granular scopes altogether — 403, "only unrestricted scopes do" — which
    // is conservative and allowed, since scopes only delegate.)

    let posted = me
        .write_raw(
            Method::POST,
            "Observation/_search",
            format!("patient={patient}&code=urn:curanet:conformance%7C{tag}").into_bytes(),
            vec![(
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            )],
        )
        .await?;
    let ids = entry_ids(&posted)?;
    ensure!(
        ids == vec![lab.clone()],
        "POST Observation/_search under the laboratory scope found {ids:?}, want [{lab}]"
    );

    let revinclude = me
        .get(&format!(
            "Patient?_id={patient}&_revinclude=Observation:subject&_count=500"
        ))
        .await?;
    revinclude.expect(200)?;
    let included = observation_ids(&revinclude.json);
    ensure!(
        !included.contains(&vital),
        "_revinclude brought in the vital-signs Observation under the laboratory scope"
    );

    for path in [
        format!("Patient/{patient}/$everything?_count=500"),
        format!("Observation/$lastn?patient={patient}&code=urn:curanet:conformance%7C{tag}"),
        format!(
            "Observation/$lastn?patient={patient}&category={OBSERVATION_CATEGORY}%7Cvital-signs"
        ),
    ] {
        let reply = me.get(&path).await?;
        if reply.status == 200 {
            ensure!(
                !observation_ids(&reply.json).contains(&vital),
                "{path} returned the vital-signs Observation under the laboratory scope"
            );
        } else {
            ensure!(
                reply.status == 403,
                "{path}: HTTP {} (want 200 without the vital signs, or 403)",
                reply.status
            );
        }
    }
    Ok(())
}

async fn read_without_search_cannot_search(c: Client) -> Outcome {
    let (me, patient, reply) = patient_session(&c, "patient/Observation.r", None).await?;
    let scopes = granted(&reply);
    ensure!(
        scopes.iter().any(|s| s == "patient/Observation.r"),
        "patient/Observation.r was not granted: {scopes:?}"
    );
    let id = create(&c, &observation(&patient, "laboratory", &unique())).await?;
    let read = me.get(&format!("Observation/{id}")).await?;
    read.expect(200)?;
    ensure!(read.id() == id, "another resource came back: {}", read.text);
    // `r` covers vread and instance history too (SMART scope letters).
    let version = read.version_id();
    me.get(&format!("Observation/{id}/_history/{version}"))
        .await?
        .expect(200)?;
    me.get(&format!("Observation/{id}/_history"))
        .await?
        .expect(200)?;
    let search = me.get(&format!("Observation?patient={patient}")).await?;
    ensure!(
        search.status == 403,
        "a search with a read-only scope: HTTP {} (want 403)",
        search.status
    );
    let posted = me
        .write_raw(
            Method::POST,
            "Observation/_search",
            format!("patient={patient}").into_bytes(),
            vec![(
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            )],
        )
        .await?;
    ensure!(
        posted.status == 403,
        "POST Observation/_search with a read-only scope: HTTP {} (want 403)",
        posted.status
    );
    // Type-level history is a search (`s`), not a read.
    let history = me.get("Observation/_history").await?;
    ensure!(
        history.status == 403,
        "GET Observation/_history with a read-only scope: HTTP {} (want 403)",
        history.status
    );
    Ok(())
}

async fn v1_read_scope_reads_and_searches(c: Client) -> Outcome {
    let (me, patient, reply) = patient_session(&c, "patient/Observation.read", None).await?;
    let scopes = granted(&reply);
    ensure!(
        scopes
            .iter()
            .any(|s| s == "patient/Observation.read" || s == "patient/Observation.rs"),
        "no Observation read scope granted for a v1 request: {scopes:?}"
    );
    let tag = unique();
    let id = create(&c, &observation(&patient, "vital-signs", &tag)).await?;
    me.get(&format!("Observation/{id}")).await?.expect(200)?;
    let ids = entry_ids(&me.get(&tagged_search(&patient, &tag)).await?)?;
    ensure!(
        ids == vec![id.clone()],
        "the search found {ids:?}, want [{id}]"
    );
    Ok(())
}

async fn read_search_scope_cannot_create(c: Client) -> Outcome {
    let (me, patient, _) = patient_session(&c, "patient/Observation.rs", None).await?;
    let tag = unique();
    let reply = me
        .create(&observation(&patient, "laboratory", &tag))
        .await?;
    reply.expect_outcome(403)?;
    let ids = entry_ids(&c.get(&tagged_search(&patient, &tag)).await?)?;
    ensure!(
        ids.is_empty(),
        "the refused Observation was stored: {ids:?}"
    );
    // Nor may it change or delete one of the patient's Observations.
    let mut existing = observation(&patient, "laboratory", &tag);
    let id = create(&c, &existing).await?;
    existing["id"] = json!(id);
    existing["status"] = json!("amended");
    me.update(&existing).await?.expect_outcome(403)?;
    let patch = json!([{"op": "replace", "path": "/status", "value": "amended"}]);
    me.write(
        Method::PATCH,
        &format!("Observation/{id}"),
        &patch,
        vec![("content-type", "application/json-patch+json".into())],
    )
    .await?
    .expect_outcome(403)?;
    me.delete(&format!("Observation/{id}"))
        .await?
        .expect_outcome(403)?;
    let after = c.get(&format!("Observation/{id}")).await?;
    after.expect(200)?;
    ensure!(
        after.version_id() == "1" && after.json["status"] == "final",
        "the Observation changed under a read/search token: {}",
        after.text
    );
    Ok(())
}

/// A draft Consent of `patient` with an identifier unique to the check (a patient may write
/// consents; a draft grants nobody anything).
fn draft_consent(patient: &str, tag: &str) -> Value {
    json!({
        "resourceType": "Consent",
        "status": "draft",
        "identifier": [{"system": "urn:curanet:conformance", "value": tag}],
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": format!("Patient/{patient}")}
    })
}

/// A transaction or batch of two creates: one the token may do, one it may not.
fn two_creates(kind: &str, allowed: &Value, forbidden: &Value) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": allowed,
             "request": {"method": "POST", "url": allowed["resourceType"]}},
            {"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": forbidden,
             "request": {"method": "POST", "url": forbidden["resourceType"]}}
        ]
    })
}

async fn transaction_with_a_forbidden_entry_commits_nothing_and_batch_refuses_only_it(
    c: Client,
) -> Outcome {
    let (me, patient, reply) =
        patient_session(&c, "patient/Consent.cu patient/Observation.rs", None).await?;
    let scopes = granted(&reply);
    ensure!(
        scopes.iter().any(|s| s == "patient/Consent.cu"),
        "patient/Consent.cu was not granted: {scopes:?}"
    );
    let count = |tag: String| {
        let c = c.clone();
        let patient = patient.clone();
        async move {
            let consents = entry_ids(
                &c.get(&format!(
                    "Consent?identifier=urn:curanet:conformance%7C{tag}"
                ))
                .await?,
            )?;
            let observations = entry_ids(&c.get(&tagged_search(&patient, &tag)).await?)?;
            Ok::<_, String>((consents.len(), observations.len()))
        }
    };
    // The allowed entry alone goes through, so a refusal below is about the other entry.
    let alone = unique();
    me.create(&draft_consent(&patient, &alone))
        .await?
        .expect(201)?;
    ensure!(
        count(alone.clone()).await? == (1, 0),
        "the Consent created alone is not found by its identifier"
    );

    let tag = unique();
    let bundle = two_creates(
        "transaction",
        &draft_consent(&patient, &tag),
        &observation(&patient, "laboratory", &tag),
    );
    let reply = me.write(Method::POST, "", &bundle, vec![]).await?;
    reply.expect_outcome(403)?;
    let stored = count(tag).await?;
    ensure!(
        stored == (0, 0),
        "the refused transaction committed (Consents, Observations) = {stored:?}"
    );

    let tag = unique();
    let bundle = two_creates(
        "batch",
        &draft_consent(&patient, &tag),
        &observation(&patient, "laboratory", &tag),
    );
    let reply = me.write(Method::POST, "", &bundle, vec![]).await?;
    reply.expect(200)?;
    ensure!(
        reply.json["type"] == "batch-response",
        "not a batch-response: {}",
        reply.text
    );
    let status = |i: usize| {
        reply.json["entry"][i]["response"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    ensure!(
        status(0).starts_with("201"),
        "the allowed entry: status '{}'",
        status(0)
    );
    ensure!(
        status(1).starts_with("403"),
        "the forbidden entry: status '{}' (want 403)",
        status(1)
    );
    let stored = count(tag).await?;
    ensure!(
        stored == (1, 0),
        "after the batch (Consents, Observations) = {stored:?}, want (1, 0)"
    );
    Ok(())
}

async fn fhir_user_is_readable_and_id_token_verifies(c: Client) -> Outcome {
    let s = c.smart()?;
    let (me, _, reply) = patient_session(&c, "patient/*.rs", None).await?;
    let id_token = reply.field("id_token");
    ensure!(!id_token.is_empty(), "no id_token: {}", reply.json);
    let (header, claims) = jwt_parts(&id_token)?;
    let fhir_user = claims["fhirUser"]
        .as_str()
        .ok_or_else(|| format!("no fhirUser claim: {claims}"))?;
    let user = me.get(fhir_user).await?;
    user.expect(200)?;
    let kind = user.json["resourceType"].as_str().unwrap_or_default();
    ensure!(
        ["Patient", "Practitioner", "RelatedPerson", "Person"].contains(&kind),
        "fhirUser {fhir_user} is a '{kind}'"
    );
    ensure!(
        fhir_user.ends_with(&format!("{kind}/{}", user.id())),
        "fhirUser {fhir_user} served {kind}/{}",
        user.id()
    );

    ensure!(header["alg"] == "RS256", "id_token alg {}", header["alg"]);
    let smart = c
        .anonymous()
        .get_with(
            ".well-known/smart-configuration",
            vec![("accept", "application/json".into())],
        )
        .await?;
    smart.expect(200)?;
    let issuer = smart.json["issuer"].as_str().unwrap_or_default();
    let jwks_uri = smart.json["jwks_uri"].as_str().unwrap_or_default();
    ensure!(
        !jwks_uri.is_empty(),
        "no jwks_uri in the SMART configuration"
    );
    let jwks = c
        .anonymous()
        .get_with(jwks_uri, vec![("accept", "application/json".into())])
        .await?;
    jwks.expect(200)?;
    let kid = header["kid"].as_str().unwrap_or_default();
    let keys = jwks.json["keys"].as_array().cloned().unwrap_or_default();
    ensure!(
        (keys.len() == 1 && kid.is_empty()) || keys.iter().any(|k| k["kid"] == kid),
        "the id_token kid '{kid}' is not in the JWKS"
    );
    ensure!(
        keys.iter()
            .any(|k| k["kty"] == "RSA" && (kid.is_empty() || k["kid"] == kid)),
        "the id_token's key is not an RSA key"
    );
    ensure!(
        claims["iss"].as_str() == Some(issuer),
        "id_token iss {} is not the issuer {issuer}",
        claims["iss"]
    );
    let aud_ok = match &claims["aud"] {
        Value::String(a) => *a == s.app.client_id,
        Value::Array(a) => a.iter().any(|x| *x == s.app.client_id.as_str()),
        _ => false,
    };
    ensure!(
        aud_ok,
        "id_token aud {} is not the client_id",
        claims["aud"]
    );
    ensure!(
        claims["exp"].as_i64().is_some_and(|e| e > now()),
        "id_token exp {} is not in the future",
        claims["exp"]
    );
    ensure!(claims["iat"].is_number(), "id_token without iat");
    let sub = claims["sub"].as_str().unwrap_or_default();
    ensure!(
        !sub.trim().is_empty() && sub.chars().count() <= 255,
        "id_token sub '{sub}'"
    );
    Ok(())
}
