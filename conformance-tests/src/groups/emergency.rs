//! Emergency share links (checklist cases 76–79 of `shared/reference/smart-consent-abdm-audit.md`
//! §7), as CuraNet implements them: the set-up's second patient signs in through the account
//! API (`POST /api/auth/login`, a first-party token), makes links with `POST
//! /api/emergency-links`, and anyone holding `shareUrl` opens it without login (`GET`, passcode
//! in `X-Passcode`). CuraNet's links are plain URLs answering a FHIR Bundle rather than SMART
//! Health Links, so the `shlink:/` payload, the encrypted manifest and its files (case 80) do not
//! apply; the link's 256-bit token and the passcode rules are checked instead.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Client, Outcome, cases, ensure};

cases!("emergency";
    a_patient_makes_a_link_with_a_passcode,
    the_link_shows_only_the_chosen_slice_without_login,
    wrong_passcodes_lock_the_link,
    a_revoked_link_is_gone,
);

/// A first-party token of the set-up's second patient and their patient id.
async fn sign_in(c: &Client) -> Result<(String, String), String> {
    let s = c.smart()?;
    let login = s
        .second_patient
        .as_ref()
        .ok_or("the SMART set-up names no second_patient (needed by the emergency group)")?;
    let reply = reqwest::Client::new()
        .post(format!("{}/api/auth/login", c.root()))
        .json(&json!({"identifier": login.identifier, "password": login.password}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = reply.status().as_u16();
    let body: Value = reply.json().await.map_err(|e| e.to_string())?;
    ensure!(status == 200, "sign-in: HTTP {status}: {body}");
    let token = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let patient = body["patient"].as_str().unwrap_or_default().to_string();
    ensure!(
        !token.is_empty() && !patient.is_empty(),
        "the sign-in answer has no token or patient: {body}"
    );
    Ok((token, patient))
}

/// `POST /api/emergency-links` with `body`: (status, answer).
async fn make_link(c: &Client, token: &str, body: Value) -> Result<(u16, Value), String> {
    let reply = reqwest::Client::new()
        .post(format!("{}/api/emergency-links", c.root()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = reply.status().as_u16();
    Ok((status, reply.json().await.unwrap_or(Value::Null)))
}

/// Opens a link without any login: (status, answer).
async fn open(url: &str, passcode: Option<&str>) -> Result<(u16, Value), String> {
    let mut request = reqwest::Client::new()
        .request(Method::GET, url)
        .header("accept", "application/fhir+json");
    if let Some(p) = passcode {
        request = request.header("x-passcode", p);
    }
    let reply = request.send().await.map_err(|e| e.to_string())?;
    let status = reply.status().as_u16();
    Ok((status, reply.json().await.unwrap_or(Value::Null)))
}

const PASSCODE: &str = "4321-ok";

/// A link of the second patient to allergies and medications with the passcode: (url, id).
async fn link(c: &Client, token: &str) -> Result<(String, String), String> {
    let (status, link) = make_link(
        c,
        token,
        json!({"scope": ["ALLERGIES", "MEDICATIONS"], "expiresIn": 24, "passcode": PASSCODE}),
    )
    .await?;
    ensure!(
        status == 201,
        "POST /api/emergency-links: HTTP {status}: {link}"
    );
    Ok((
        link["shareUrl"].as_str().unwrap_or_default().to_string(),
        link["shareId"].as_str().unwrap_or_default().to_string(),
    ))
}

async fn a_patient_makes_a_link_with_a_passcode(c: Client) -> Outcome {
    let (token, _) = sign_in(&c).await?;
    let (status, link) = make_link(
        &c,
        &token,
        json!({"scope": ["ALLERGIES"], "expiresIn": 24, "passcode": PASSCODE}),
    )
    .await?;
    ensure!(status == 201, "HTTP {status}: {link}");
    let url = link["shareUrl"].as_str().unwrap_or_default();
    let secret = url.rsplit('/').next().unwrap_or_default();
    ensure!(
        secret.len() >= 43
            && secret
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'),
        "the link's token '{secret}' is not 256 bits of base64url"
    );
    let expires = link["expiresAt"].as_i64().unwrap_or_default();
    let now = crate::smart::now();
    ensure!(
        (now + 23 * 3600..=now + 25 * 3600).contains(&expires),
        "expiresAt {expires} is not 24 h ahead of {now}"
    );
    ensure!(
        link["hasPasscode"] == true,
        "the link does not say it has a passcode: {link}"
    );
    // More than 72 hours is refused.
    let (status, _) =
        make_link(&c, &token, json!({"scope": ["ALLERGIES"], "expiresIn": 73})).await?;
    ensure!(status == 400, "a 73-hour link: HTTP {status}");
    Ok(())
}

async fn the_link_shows_only_the_chosen_slice_without_login(c: Client) -> Outcome {
    let (token, patient) = sign_in(&c).await?;
    let subject = json!({"reference": format!("Patient/{patient}")});
    let active = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]});
    for resource in [
        json!({"resourceType": "AllergyIntolerance", "patient": subject, "clinicalStatus": active,
            "code": {"text": "penicillin"}}),
        json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "subject": subject, "medicationCodeableConcept": {"text": "salbutamol"}}),
        json!({"resourceType": "Condition", "subject": subject, "code": {"text": "asthma"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}}),
        json!({"resourceType": "Observation", "status": "final", "subject": subject,
            "code": {"text": "heart rate"}}),
    ] {
        c.create(&resource).await?.expect(201)?;
    }
    let (url, _) = link(&c, &token).await?;
    let (status, bundle) = open(&url, Some(PASSCODE)).await?;
    ensure!(
        status == 200,
        "open with the passcode: HTTP {status}: {bundle}"
    );
    let types: Vec<&str> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    for want in ["Patient", "AllergyIntolerance", "MedicationRequest"] {
        ensure!(types.contains(&want), "no {want} in the slice: {types:?}");
    }
    for unwanted in ["Observation", "Condition", "DocumentReference"] {
        ensure!(
            !types.contains(&unwanted),
            "{unwanted} in a slice of allergies and medications: {types:?}"
        );
    }
    Ok(())
}

async fn wrong_passcodes_lock_the_link(c: Client) -> Outcome {
    let (token, _) = sign_in(&c).await?;
    let (url, _) = link(&c, &token).await?;
    let (status, answer) = open(&url, Some("wrong-one")).await?;
    ensure!(status == 401, "a wrong passcode: HTTP {status}");
    let first = answer["remainingAttempts"].as_i64().ok_or(format!(
        "a wrong passcode's answer has no remainingAttempts: {answer}"
    ))?;
    for _ in 0..first {
        open(&url, Some("wrong-one")).await?;
    }
    let (status, _) = open(&url, Some(PASSCODE)).await?;
    ensure!(
        status == 404,
        "the right passcode after the lockout: HTTP {status} (want 404)"
    );
    Ok(())
}

async fn a_revoked_link_is_gone(c: Client) -> Outcome {
    let (token, _) = sign_in(&c).await?;
    let (url, id) = link(&c, &token).await?;
    let (status, _) = open(&url, Some(PASSCODE)).await?;
    ensure!(status == 200, "before the revocation: HTTP {status}");
    let reply = reqwest::Client::new()
        .delete(format!("{}/api/emergency-links/{id}", c.root()))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    ensure!(
        reply.status().is_success(),
        "DELETE /api/emergency-links/{id}: HTTP {}",
        reply.status()
    );
    let (status, _) = open(&url, Some(PASSCODE)).await?;
    ensure!(
        status == 404,
        "after the revocation: HTTP {status} (want 404)"
    );
    Ok(())
}
