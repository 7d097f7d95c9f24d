//! Consent-governed access (checklist cases 58–74 of `shared/reference/smart-consent-abdm-audit.md`
//! §7), black-box: the set-up's second patient (P) writes CuraNetConsent resources with their own
//! token, and the set-up's second clinician (D1, the consents' actor) and first clinician (D2,
//! never named) use tokens of real standalone launches of the public app (`user/*.cruds`, or
//! narrower for case 74). Records of P are written with the suite's backend token.
//!
//! The checks of this group and of `audit` change P's consents, so they run one at a time (per
//! server), and each starts by withdrawing whatever consents of P an earlier check left in
//! force.
//!
//! Not run: case 69 (purpose of use: tokens carry no purpose yet) and case 75 (ABDM-style data
//! requests: no ABDM gateway yet). Case 67's "refresh → 400" part does not apply: consents are
//! checked on every request, and a consent revocation does not revoke the OAuth grant (its tokens
//! keep working for what is still consented). The consent operations (`$approve`, `$reject`,
//! `$revoke`, `$request-consent`) and break-the-glass (cases 81–82) are not used; approval and
//! revocation are the patient's `PUT Consent/{id}`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::smart::{Decision, Login, jwt_parts, launch};
use crate::{Client, Outcome, cases, ensure};

cases!("consent";
    no_consent_refuses_searches_and_hides_records,
    a_proposal_by_the_doctor_grants_nothing,
    the_doctor_cannot_activate_or_remove_a_consent,
    approval_grants_the_consented_classes_only,
    a_rejected_request_grants_nothing,
    read_basic_and_read_full,
    writes_need_write_and_deletes_need_delete,
    an_expired_consent_grants_nothing,
    a_consent_starting_later_grants_nothing_yet,
    revocation_applies_to_the_next_request_of_the_same_token,
    a_consent_to_another_clinician_grants_nothing,
    a_clinician_sees_only_consents_naming_them,
    nested_denies_by_label_and_by_reference_withhold_records,
    a_data_period_keeps_records_dated_inside_it,
    includes_outside_the_consent_are_absent,
    draft_and_entered_in_error_consents_grant_nothing,
    token_scopes_and_the_consent_intersect,
);

const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

/// The people of the `consent` and `audit` checks, signed in once per server.
#[derive(Clone)]
pub(super) struct People {
    /// P, with a token of their own (`patient/*.rs patient/Consent.cu`).
    pub patient: Client,
    pub patient_id: String,
    /// D1, the consents' actor (`user/*.cruds`), and their `Practitioner/{id}`.
    pub doctor: Client,
    pub doctor_ref: String,
    /// D2, whom P's consents never name (`user/*.cruds`).
    pub other_doctor: Client,
}

type Shared<T> = Mutex<HashMap<String, T>>;

fn people_cache() -> &'static Shared<People> {
    static PEOPLE: OnceLock<Shared<People>> = OnceLock::new();
    PEOPLE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn locks() -> &'static Shared<Arc<Mutex<()>>> {
    static LOCKS: OnceLock<Shared<Arc<Mutex<()>>>> = OnceLock::new();
    LOCKS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `Type/id` of an absolute or relative reference.
pub(super) fn relative(reference: &str) -> String {
    let mut parts = reference.trim_end_matches('/').rsplit('/');
    let id = parts.next().unwrap_or_default();
    let ty = parts.next().unwrap_or_default();
    format!("{ty}/{id}")
}

/// A standalone launch of the public app by `login` for `scope`: a client with its token and
/// the token's claims.
pub(super) async fn session(
    c: &Client,
    login: &Login,
    scope: &str,
) -> Result<(Client, Value), String> {
    let s = c.smart()?;
    let (_, reply) = launch(c, &s.app, login, scope, &Decision::default())
        .await
        .map_err(|e| format!("launch of {} for {scope}: {e}", login.identifier))?;
    let token = reply.field("access_token");
    ensure!(!token.is_empty(), "no access token: {}", reply.json);
    let (_, claims) = jwt_parts(&token)?;
    let mut claims = claims;
    if let Some(p) = reply.json["patient"].as_str() {
        claims["patient"] = json!(p);
    }
    Ok((c.with_token(&token), claims))
}

/// The clinical scopes of the clinicians' launches.
pub(super) const CLINICIAN_SCOPES: &str = "openid fhirUser user/*.cruds";

/// Signs the people in (once per server) and takes the lock that keeps the checks changing
/// P's consents apart; withdraws whatever consents of P are still in force or pending.
pub(super) async fn people(c: &Client) -> Result<(People, OwnedMutexGuard<()>), String> {
    let lock = {
        let mut locks = locks().lock().await;
        locks
            .entry(c.base().to_string())
            .or_insert_with(|| Arc::new(Mutex::new(())))
            .clone()
    };
    let guard = lock.lock_owned().await;
    let people = {
        let mut cache = people_cache().lock().await;
        match cache.get(c.base()) {
            Some(p) => p.clone(),
            None => {
                let s = c.smart()?;
                let (Some(second_patient), Some(second_clinician)) =
                    (&s.second_patient, &s.second_clinician)
                else {
                    return Err(
                        "the SMART set-up names no second_patient and second_clinician \
                                (needed by the consent and audit groups)"
                            .into(),
                    );
                };
                let (patient, claims) = session(
                    c,
                    second_patient,
                    "launch/patient openid fhirUser patient/*.rs patient/Consent.cu",
                )
                .await?;
                let patient_id = claims["patient"].as_str().unwrap_or_default().to_string();
                ensure!(!patient_id.is_empty(), "no patient in context: {claims}");
                let (doctor, claims) = session(c, second_clinician, CLINICIAN_SCOPES).await?;
                let doctor_ref = relative(claims["fhirUser"].as_str().unwrap_or_default());
                ensure!(
                    doctor_ref.starts_with("Practitioner/"),
                    "the second clinician's token names no Practitioner: {claims}"
                );
                let (other_doctor, _) = session(c, &s.clinician, CLINICIAN_SCOPES).await?;
                let p = People {
                    patient,
                    patient_id,
                    doctor,
                    doctor_ref,
                    other_doctor,
                };
                cache.insert(c.base().to_string(), p.clone());
                p
            }
        }
    };
    withdraw_all(&people).await?;
    Ok((people, guard))
}

/// P marks every consent of theirs that is active, proposed or draft `inactive`.
async fn withdraw_all(p: &People) -> Outcome {
    let reply = p
        .patient
        .get(&format!("Consent?patient={}&_count=200", p.patient_id))
        .await?;
    reply.expect(200)?;
    for entry in reply.json["entry"].as_array().into_iter().flatten() {
        let consent = &entry["resource"];
        if consent["resourceType"] != "Consent"
            || !matches!(
                consent["status"].as_str(),
                Some("active" | "proposed" | "draft")
            )
        {
            continue;
        }
        let mut consent = consent.clone();
        consent["status"] = json!("inactive");
        if let Some(o) = consent.as_object_mut() {
            o.remove("meta");
        }
        p.patient.update(&consent).await?.expect(200)?;
    }
    Ok(())
}

/// A CuraNetConsent of P to `actor` with `status`, `levels` on `classes` (none: every type).
pub(super) fn consent(
    p: &People,
    status: &str,
    actor: &str,
    levels: &[&str],
    classes: &[&str],
) -> Value {
    crate::resources::consent(&p.patient_id, status, actor, levels, classes)
}

/// P writes a consent with their own token; its id.
pub(super) async fn grant(p: &People, consent: &Value) -> Result<String, String> {
    let reply = p.patient.create(consent).await?;
    reply.expect(201)?;
    Ok(reply.id())
}

/// P changes their consent `id` to `consent` (PUT with their own token).
pub(super) async fn change(p: &People, id: &str, consent: &Value) -> Outcome {
    let mut consent = consent.clone();
    consent["id"] = json!(id);
    p.patient.update(&consent).await?.expect(200)?;
    Ok(())
}

/// The records of P the checks look for, written with the suite's backend token.
pub(super) struct Records {
    pub allergy: String,
    pub vital: String,
    pub restricted: String,
    pub condition: String,
}

pub(super) async fn records(c: &Client, p: &People) -> Result<Records, String> {
    let subject = json!({"reference": format!("Patient/{}", p.patient_id)});
    let mut ids = Vec::new();
    for resource in [
        json!({"resourceType": "AllergyIntolerance", "patient": subject,
            "recordedDate": "2024-03-01", "code": {"text": "penicillin"}}),
        json!({"resourceType": "Observation", "status": "final", "subject": subject,
            "code": {"text": "heart rate"}, "effectiveDateTime": "2024-06-01"}),
        json!({"resourceType": "Observation", "status": "final", "subject": subject,
            "meta": {"security": [{"system": CONFIDENTIALITY, "code": "R"}]},
            "code": {"text": "HIV test"}, "effectiveDateTime": "2023-01-01"}),
        json!({"resourceType": "Condition", "subject": subject, "code": {"text": "asthma"},
            "recordedDate": "2024-02-02"}),
    ] {
        let reply = c.create(&resource).await?;
        reply.expect(201)?;
        ids.push(reply.id());
    }
    Ok(Records {
        allergy: ids[0].clone(),
        vital: ids[1].clone(),
        restricted: ids[2].clone(),
        condition: ids[3].clone(),
    })
}

/// The ids of a searchset's matches (fails unless the answer is 200).
pub(super) async fn found(c: &Client, path: &str) -> Result<Vec<String>, String> {
    let reply = c.get(path).await?;
    reply.expect(200)?;
    let mut ids: Vec<String> = reply.json["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Fails unless `path` answers `want` to `who`.
async fn expect_status(c: &Client, path: &str, want: u16, who: &str) -> Outcome {
    let reply = c.get(path).await?;
    ensure!(
        reply.status == want,
        "{who} GET {path}: HTTP {} (want {want}): {}",
        reply.status,
        reply.text.chars().take(300).collect::<String>()
    );
    Ok(())
}

async fn no_consent_refuses_searches_and_hides_records(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let r = records(&c, &p).await?;
    let pid = &p.patient_id;
    let reply = p.doctor.get(&format!("Observation?patient={pid}")).await?;
    reply.expect_outcome(403)?;
    ensure!(
        reply.json["issue"][0]["code"] == "forbidden",
        "the refusal's issue code is not 'forbidden': {}",
        reply.text
    );
    expect_status(&p.doctor, &format!("Observation/{}", r.vital), 404, "D1").await?;
    expect_status(&p.doctor, &format!("Patient/{pid}"), 404, "D1").await?;
    // A search naming no patient finds nothing of P's.
    let all = found(&p.doctor, "AllergyIntolerance?_count=200").await?;
    ensure!(
        !all.contains(&r.allergy),
        "a search naming no patient found P's allergy"
    );
    Ok(())
}

async fn a_proposal_by_the_doctor_grants_nothing(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    records(&c, &p).await?;
    let pid = &p.patient_id;
    let proposal = consent(
        &p,
        "proposed",
        &p.doctor_ref,
        &["READ_FULL"],
        &["AllergyIntolerance", "MedicationRequest"],
    );
    p.doctor.create(&proposal).await?.expect(201)?;
    expect_status(
        &p.doctor,
        &format!("AllergyIntolerance?patient={pid}"),
        403,
        "D1 after proposing",
    )
    .await?;
    // Only proposals (or drafts) naming themself.
    let mut active = proposal.clone();
    active["status"] = json!("active");
    let reply = p.doctor.create(&active).await?;
    ensure!(
        reply.status == 403,
        "D1 created an active consent: HTTP {}",
        reply.status
    );
    let mut other = proposal.clone();
    other["provision"]["actor"][0]["reference"]["reference"] = json!("Practitioner/someone-else");
    let reply = p.doctor.create(&other).await?;
    ensure!(
        reply.status == 403,
        "D1 proposed a consent naming someone else: HTTP {}",
        reply.status
    );
    Ok(())
}

async fn the_doctor_cannot_activate_or_remove_a_consent(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let proposal = consent(&p, "proposed", &p.doctor_ref, &["READ_FULL"], &[]);
    let reply = p.doctor.create(&proposal).await?;
    reply.expect(201)?;
    let id = reply.id();
    let mut approve = proposal.clone();
    approve["id"] = json!(id);
    approve["status"] = json!("active");
    let reply = p.doctor.update(&approve).await?;
    ensure!(
        reply.status == 403,
        "D1 activated their own request: HTTP {}",
        reply.status
    );
    let reply = p.doctor.delete(&format!("Consent/{id}")).await?;
    ensure!(
        reply.status == 403,
        "D1 deleted a consent: HTTP {}",
        reply.status
    );
    let stored = p.patient.get(&format!("Consent/{id}")).await?;
    stored.expect(200)?;
    ensure!(
        stored.json["status"] == "proposed",
        "the consent is now {}",
        stored.json["status"]
    );
    Ok(())
}

async fn approval_grants_the_consented_classes_only(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let r = records(&c, &p).await?;
    let pid = &p.patient_id;
    let proposal = consent(
        &p,
        "proposed",
        &p.doctor_ref,
        &["READ_FULL"],
        &["AllergyIntolerance", "MedicationRequest"],
    );
    let reply = p.doctor.create(&proposal).await?;
    reply.expect(201)?;
    let mut active = proposal.clone();
    active["status"] = json!("active");
    change(&p, &reply.id(), &active).await?;
    let allergies = found(&p.doctor, &format!("AllergyIntolerance?patient={pid}")).await?;
    ensure!(
        allergies.contains(&r.allergy),
        "the approved consent does not show P's allergy: {allergies:?}"
    );
    let observations = found(&p.doctor, &format!("Observation?patient={pid}")).await?;
    ensure!(
        observations.is_empty(),
        "Observations were found under a consent to allergies and medication requests: {observations:?}"
    );
    expect_status(
        &p.doctor,
        &format!("AllergyIntolerance/{}", r.allergy),
        200,
        "D1",
    )
    .await?;
    expect_status(&p.doctor, &format!("Observation/{}", r.vital), 404, "D1").await?;
    Ok(())
}

async fn a_rejected_request_grants_nothing(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    records(&c, &p).await?;
    let proposal = consent(&p, "proposed", &p.doctor_ref, &["READ_FULL"], &[]);
    let reply = p.doctor.create(&proposal).await?;
    reply.expect(201)?;
    let mut rejected = proposal.clone();
    rejected["status"] = json!("rejected");
    change(&p, &reply.id(), &rejected).await?;
    expect_status(
        &p.doctor,
        &format!("AllergyIntolerance?patient={}", p.patient_id),
        403,
        "D1 after the rejection",
    )
    .await
}

async fn read_basic_and_read_full(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let r = records(&c, &p).await?;
    let pid = &p.patient_id;
    let id = grant(
        &p,
        &consent(&p, "active", &p.doctor_ref, &["READ_BASIC"], &[]),
    )
    .await?;
    expect_status(
        &p.doctor,
        &format!("Condition/{}", r.condition),
        404,
        "READ_BASIC",
    )
    .await?;
    expect_status(&p.doctor, &format!("Patient/{pid}"), 200, "READ_BASIC").await?;
    change(
        &p,
        &id,
        &consent(&p, "active", &p.doctor_ref, &["READ_FULL"], &[]),
    )
    .await?;
    expect_status(
        &p.doctor,
        &format!("Condition/{}", r.condition),
        200,
        "READ_FULL",
    )
    .await?;
    expect_status(&p.doctor, &format!("Patient/{pid}"), 200, "READ_FULL").await
}

async fn writes_need_write_and_deletes_need_delete(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let pid = &p.patient_id;
    let id = grant(
        &p,
        &consent(&p, "active", &p.doctor_ref, &["READ_FULL"], &[]),
    )
    .await?;
    let vital = json!({"resourceType": "Observation", "status": "final",
        "subject": {"reference": format!("Patient/{pid}")}, "code": {"text": "weight"}});
    let reply = p.doctor.create(&vital).await?;
    ensure!(
        reply.status == 403,
        "POST Observation without WRITE: HTTP {}",
        reply.status
    );
    change(
        &p,
        &id,
        &consent(&p, "active", &p.doctor_ref, &["READ_FULL", "WRITE"], &[]),
    )
    .await?;
    let reply = p.doctor.create(&vital).await?;
    reply.expect(201)?;
    let path = format!("Observation/{}", reply.id());
    let reply = p.doctor.delete(&path).await?;
    ensure!(
        reply.status == 403,
        "DELETE without DELETE: HTTP {}",
        reply.status
    );
    change(
        &p,
        &id,
        &consent(
            &p,
            "active",
            &p.doctor_ref,
            &["READ_FULL", "WRITE", "DELETE"],
            &[],
        ),
    )
    .await?;
    let reply = p.doctor.delete(&path).await?;
    ensure!(
        matches!(reply.status, 200 | 204),
        "DELETE with DELETE: HTTP {}: {}",
        reply.status,
        reply.text
    );
    Ok(())
}

/// Fails unless D1's search of P's Observations is refused under a consent with `period`.
async fn refused_with_period(c: &Client, period: Value) -> Outcome {
    let (p, _guard) = people(c).await?;
    let mut timed = consent(&p, "active", &p.doctor_ref, &["READ_FULL"], &[]);
    timed["provision"]["period"] = period.clone();
    grant(&p, &timed).await?;
    expect_status(
        &p.doctor,
        &format!("Observation?patient={}", p.patient_id),
        403,
        &format!("D1 under an active consent with the period {period}"),
    )
    .await
}

async fn an_expired_consent_grants_nothing(c: Client) -> Outcome {
    refused_with_period(
        &c,
        json!({"start": "2024-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}),
    )
    .await
}

async fn a_consent_starting_later_grants_nothing_yet(c: Client) -> Outcome {
    refused_with_period(&c, json!({"start": "2099-01-01T00:00:00Z"})).await
}

async fn revocation_applies_to_the_next_request_of_the_same_token(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let path = format!("Observation?patient={}", p.patient_id);
    let id = grant(
        &p,
        &consent(&p, "active", &p.doctor_ref, &["READ_FULL"], &[]),
    )
    .await?;
    expect_status(&p.doctor, &path, 200, "D1 before the revocation").await?;
    change(
        &p,
        &id,
        &consent(&p, "inactive", &p.doctor_ref, &["READ_FULL"], &[]),
    )
    .await?;
    expect_status(&p.doctor, &path, 403, "D1 right after the revocation").await
}

async fn a_consent_to_another_clinician_grants_nothing(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let path = format!("Observation?patient={}", p.patient_id);
    grant(
        &p,
        &consent(&p, "active", &p.doctor_ref, &["READ_FULL"], &[]),
    )
    .await?;
    expect_status(&p.doctor, &path, 200, "D1 (named)").await?;
    expect_status(&p.other_doctor, &path, 403, "D2 (not named)").await
}

async fn a_clinician_sees_only_consents_naming_them(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let id = grant(
        &p,
        &consent(&p, "active", &p.doctor_ref, &["READ_BASIC"], &[]),
    )
    .await?;
    let path = format!("Consent?patient={}", p.patient_id);
    let named = found(&p.doctor, &path).await?;
    ensure!(
        named.contains(&id),
        "D1 does not see the consent naming them: {named:?}"
    );
    let reply = p.other_doctor.get(&path).await?;
    ensure!(
        reply.status == 403 || (reply.status == 200 && !reply.text.contains(&id)),
        "D2 sees a consent that names D1: HTTP {}",
        reply.status
    );
    let reply = p.other_doctor.get(&format!("Consent/{id}")).await?;
    ensure!(
        matches!(reply.status, 403 | 404),
        "D2 reads a consent that names D1: HTTP {}",
        reply.status
    );
    Ok(())
}

async fn nested_denies_by_label_and_by_reference_withhold_records(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let r = records(&c, &p).await?;
    let pid = &p.patient_id;
    let search = format!("Observation?patient={pid}&_count=200");
    let mut labelled = consent(&p, "active", &p.doctor_ref, &["READ_FULL"], &[]);
    labelled["provision"]["provision"] = json!([{"type": "deny",
        "securityLabel": [{"system": CONFIDENTIALITY, "code": "R"}]}]);
    let id = grant(&p, &labelled).await?;
    let seen = found(&p.doctor, &search).await?;
    ensure!(
        seen.contains(&r.vital) && !seen.contains(&r.restricted),
        "a deny of label R: the search found {seen:?} (vital {}, restricted {})",
        r.vital,
        r.restricted
    );
    expect_status(
        &p.doctor,
        &format!("Observation/{}", r.restricted),
        404,
        "deny by label",
    )
    .await?;
    let mut by_reference = consent(&p, "active", &p.doctor_ref, &["READ_FULL"], &[]);
    by_reference["provision"]["provision"] = json!([{"type": "deny",
        "data": [{"meaning": "instance", "reference": {"reference": format!("Observation/{}", r.vital)}}]}]);
    change(&p, &id, &by_reference).await?;
    let seen = found(&p.doctor, &search).await?;
    ensure!(
        !seen.contains(&r.vital) && seen.contains(&r.restricted),
        "a deny by data.reference: the search found {seen:?}"
    );
    expect_status(
        &p.doctor,
        &format!("Observation/{}", r.vital),
        404,
        "deny by reference",
    )
    .await
}

async fn a_data_period_keeps_records_dated_inside_it(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let r = records(&c, &p).await?;
    let mut period = consent(&p, "active", &p.doctor_ref, &["READ_FULL"], &[]);
    period["provision"]["dataPeriod"] = json!({"start": "2024-01-01", "end": "2024-12-31"});
    grant(&p, &period).await?;
    let seen = found(
        &p.doctor,
        &format!("Observation?patient={}&_count=200", p.patient_id),
    )
    .await?;
    ensure!(
        seen.contains(&r.vital) && !seen.contains(&r.restricted),
        "dataPeriod 2024: found {seen:?} (2024: {}, 2023: {})",
        r.vital,
        r.restricted
    );
    expect_status(
        &p.doctor,
        &format!("Observation/{}", r.restricted),
        404,
        "outside the data period",
    )
    .await
}

async fn includes_outside_the_consent_are_absent(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let r = records(&c, &p).await?;
    let pid = &p.patient_id;
    grant(
        &p,
        &consent(&p, "active", &p.doctor_ref, &["READ_BASIC"], &[]),
    )
    .await?;
    let reply = p
        .doctor
        .get(&format!(
            "Patient?_id={pid}&_revinclude=Observation:subject&_revinclude=AllergyIntolerance:patient"
        ))
        .await?;
    reply.expect(200)?;
    ensure!(
        !reply.text.contains(&r.vital) && !reply.text.contains(&r.restricted),
        "an Observation came through _revinclude under READ_BASIC"
    );
    let entries = reply.json["entry"].as_array().cloned().unwrap_or_default();
    ensure!(
        entries.iter().any(|e| e["resource"]["id"] == json!(pid)),
        "P's Patient is not in the answer"
    );
    // An _include of the Patient from a type the consent does not cover finds nothing.
    let reply = p
        .doctor
        .get(&format!(
            "Condition?patient={pid}&_include=Condition:subject:Patient"
        ))
        .await?;
    reply.expect(200)?;
    ensure!(
        !reply.text.contains(&r.condition),
        "a Condition came back under READ_BASIC"
    );
    Ok(())
}

async fn draft_and_entered_in_error_consents_grant_nothing(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let path = format!("Observation?patient={}", p.patient_id);
    let id = grant(
        &p,
        &consent(&p, "draft", &p.doctor_ref, &["READ_FULL"], &[]),
    )
    .await?;
    expect_status(&p.doctor, &path, 403, "a draft consent").await?;
    change(
        &p,
        &id,
        &consent(&p, "entered-in-error", &p.doctor_ref, &["READ_FULL"], &[]),
    )
    .await?;
    expect_status(&p.doctor, &path, 403, "an entered-in-error consent").await
}

async fn token_scopes_and_the_consent_intersect(c: Client) -> Outcome {
    let (p, _guard) = people(&c).await?;
    let r = records(&c, &p).await?;
    let s = c.smart()?;
    let login = s.second_clinician.as_ref().ok_or("no second clinician")?;
    // A READ_FULL consent, and an app granted allergies and the Patient only.
    grant(
        &p,
        &consent(&p, "active", &p.doctor_ref, &["READ_FULL"], &[]),
    )
    .await?;
    let (narrow, _) = session(
        &c,
        login,
        "openid fhirUser user/AllergyIntolerance.rs user/Patient.rs",
    )
    .await?;
    expect_status(
        &narrow,
        &format!("AllergyIntolerance/{}", r.allergy),
        200,
        "the narrow app",
    )
    .await?;
    let reply = narrow.get(&format!("Condition/{}", r.condition)).await?;
    ensure!(
        matches!(reply.status, 403 | 404),
        "an app without Condition scopes read a Condition: HTTP {}",
        reply.status
    );
    // A wide token under READ_BASIC: the consent bounds it (case 74 with case 63's results).
    withdraw_all(&p).await?;
    grant(
        &p,
        &consent(&p, "active", &p.doctor_ref, &["READ_BASIC"], &[]),
    )
    .await?;
    expect_status(
        &p.doctor,
        &format!("Condition/{}", r.condition),
        404,
        "user/*.cruds under READ_BASIC",
    )
    .await?;
    expect_status(
        &p.doctor,
        &format!("Patient/{}", p.patient_id),
        200,
        "user/*.cruds under READ_BASIC",
    )
    .await?;
    Ok(())
}
