//! SMART App Launch: the authorization code flow with PKCE (checklist cases 6–24 of
//! `shared/reference/smart-consent-abdm-audit.md` §7), driven through the server's own sign-in
//! and consent pages as a browser would.

use crate::smart::{
    AuthRequest, Decision, Outcome as Flow, PATIENT_LAUNCH_SCOPES, authorize, exchange, jwt_parts,
    now, patient_launch, post_form, random, s256,
};
use crate::{Client, Outcome, cases, ensure};

cases!("smart-launch";
    standalone_patient_launch_redirects_with_code_and_state,
    authorization_request_by_post_works_the_same,
    wrong_aud_gets_no_code,
    unregistered_redirect_uri_gets_a_page_not_a_redirect,
    unknown_client_gets_a_page_not_a_redirect,
    plain_pkce_is_refused_with_state,
    missing_code_challenge_is_refused,
    denial_redirects_with_access_denied,
    token_response_has_everything_an_app_needs,
    exchange_without_verifier_fails,
    exchange_with_empty_verifier_fails,
    exchange_with_wrong_verifier_fails,
    exchange_with_challenge_as_verifier_fails,
    unknown_code_fails,
    code_presented_by_another_client_fails,
    code_reuse_fails_and_revokes_the_first_tokens,
    redirect_uri_must_match_at_exchange,
    token_endpoint_allows_the_public_apps_origin,
    confidential_client_authenticates_with_basic,
    clinician_picks_the_patient_in_a_standalone_launch,
);

/// A request for the standard patient launch by the public app.
fn request(c: &Client) -> Result<AuthRequest, String> {
    let s = c.smart()?;
    Ok(AuthRequest::new(&s.app, PATIENT_LAUNCH_SCOPES, c.base()))
}

/// Runs `request` with the patient's login, approving.
async fn run(c: &Client, request: &AuthRequest) -> Result<Flow, String> {
    let s = c.smart()?;
    authorize(
        &c.oauth("authorize"),
        request,
        &s.patient,
        &Decision::default(),
        None,
    )
    .await
}

/// A fresh code and its request (approved by the patient).
async fn code(c: &Client) -> Result<(AuthRequest, String), String> {
    let request = request(c)?;
    let code = run(c, &request).await?.code()?;
    Ok((request, code))
}

/// The `error` of a redirect; fails when a code came back or the flow stopped on a page.
fn redirect_error(flow: &Flow, state: &str) -> Result<String, String> {
    match flow {
        Flow::Redirected(q) => {
            ensure!(!q.contains_key("code"), "a code was issued: {q:?}");
            ensure!(
                q.get("state").map(String::as_str) == Some(state),
                "the state did not come back unchanged: {q:?}"
            );
            Ok(q.get("error").cloned().unwrap_or_default())
        }
        Flow::Stopped(p) => Err(format!(
            "expected an error redirect, got a page (HTTP {})",
            p.status
        )),
    }
}

async fn standalone_patient_launch_redirects_with_code_and_state(c: Client) -> Outcome {
    let request = request(&c)?;
    match run(&c, &request).await? {
        Flow::Redirected(q) => {
            ensure!(q.contains_key("code"), "no code: {q:?}");
            ensure!(!q.contains_key("error"), "an error: {q:?}");
            ensure!(q["state"] == request.state, "state changed: {q:?}");
            Ok(())
        }
        other => Err(format!("no redirect: {other:?}")),
    }
}

async fn authorization_request_by_post_works_the_same(c: Client) -> Outcome {
    let mut request = request(&c)?;
    request.post = true;
    let code = run(&c, &request).await?.code()?;
    let s = c.smart()?;
    let reply = exchange(&c.oauth("token"), &s.app, &code, &request.verifier).await?;
    ensure!(
        reply.status == 200,
        "exchange: {} {}",
        reply.status,
        reply.json
    );
    Ok(())
}

async fn wrong_aud_gets_no_code(c: Client) -> Outcome {
    let request = request(&c)?.with("aud", Some("https://evil.example/fhir"));
    match run(&c, &request).await? {
        Flow::Redirected(q) => ensure!(!q.contains_key("code"), "a code for a wrong aud: {q:?}"),
        Flow::Stopped(p) => ensure!(p.status >= 400, "HTTP {} for a wrong aud", p.status),
    }
    Ok(())
}

/// The first response of the authorization endpoint, without following anything.
async fn first_page(c: &Client, request: &AuthRequest) -> Result<crate::smart::Page, String> {
    let browser = crate::smart::Browser::new(&c.root());
    let url = format!(
        "{}?{}",
        c.oauth("authorize"),
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(request.pairs())
            .finish()
    );
    browser.get(&url).await
}

async fn unregistered_redirect_uri_gets_a_page_not_a_redirect(c: Client) -> Outcome {
    let request = request(&c)?.with("redirect_uri", Some("https://evil.example/callback"));
    let page = first_page(&c, &request).await?;
    ensure!(page.status == 400, "HTTP {} (want 400)", page.status);
    ensure!(page.location.is_none(), "redirected to {:?}", page.location);
    Ok(())
}

async fn unknown_client_gets_a_page_not_a_redirect(c: Client) -> Outcome {
    let request = request(&c)?.with("client_id", Some("no-such-client"));
    let page = first_page(&c, &request).await?;
    ensure!(page.status == 400, "HTTP {} (want 400)", page.status);
    ensure!(page.location.is_none(), "redirected to {:?}", page.location);
    Ok(())
}

async fn plain_pkce_is_refused_with_state(c: Client) -> Outcome {
    let request = request(&c)?
        .with("code_challenge_method", Some("plain"))
        .with("code_challenge", Some(&random(48)));
    let page = first_page(&c, &request).await?;
    let flow = match page.location {
        Some(l) => Flow::Redirected(crate::smart::query_of(&l)),
        None => Flow::Stopped(page),
    };
    let error = redirect_error(&flow, &request.state)?;
    ensure!(error == "invalid_request", "error={error}");
    Ok(())
}

async fn missing_code_challenge_is_refused(c: Client) -> Outcome {
    let request = request(&c)?.with("code_challenge", None);
    let page = first_page(&c, &request).await?;
    let flow = match page.location {
        Some(l) => Flow::Redirected(crate::smart::query_of(&l)),
        None => Flow::Stopped(page),
    };
    let error = redirect_error(&flow, &request.state)?;
    ensure!(error == "invalid_request", "error={error}");
    Ok(())
}

async fn denial_redirects_with_access_denied(c: Client) -> Outcome {
    let s = c.smart()?;
    let request = request(&c)?;
    let decision = Decision {
        deny: true,
        ..Decision::default()
    };
    let flow = authorize(&c.oauth("authorize"), &request, &s.patient, &decision, None).await?;
    let error = redirect_error(&flow, &request.state)?;
    ensure!(error == "access_denied", "error={error}");
    Ok(())
}

async fn token_response_has_everything_an_app_needs(c: Client) -> Outcome {
    let reply = patient_launch(&c).await?;
    let j = &reply.json;
    ensure!(
        !reply.field("access_token").is_empty(),
        "no access_token: {j}"
    );
    ensure!(
        reply.field("token_type").eq_ignore_ascii_case("bearer"),
        "token_type: {j}"
    );
    let expires = j["expires_in"]
        .as_i64()
        .ok_or(format!("expires_in not a number: {j}"))?;
    ensure!(expires > 0 && expires <= 3600, "expires_in {expires}");
    ensure!(!reply.field("scope").is_empty(), "no scope");
    ensure!(
        !reply.field("patient").is_empty(),
        "no patient in context: {j}"
    );
    ensure!(!reply.field("id_token").is_empty(), "no id_token");
    ensure!(
        !reply.field("refresh_token").is_empty(),
        "no refresh_token (offline_access)"
    );
    ensure!(
        reply.header("cache-control").contains("no-store"),
        "Cache-Control"
    );
    ensure!(reply.header("pragma").contains("no-cache"), "Pragma");
    let (header, claims) = jwt_parts(&reply.field("access_token"))?;
    ensure!(
        header["kid"].is_string(),
        "access token without kid: {header}"
    );
    ensure!(
        claims["aud"] == c.base(),
        "aud {} is not the FHIR base",
        claims["aud"]
    );
    ensure!(claims["patient"] == j["patient"], "patient claim differs");
    Ok(())
}

/// Exchanges a fresh code with `verifier` in place of the right one; the status.
async fn exchange_with(c: &Client, verifier: Option<String>) -> Result<u16, String> {
    let s = c.smart()?;
    let (request, code) = code(c).await?;
    let mut pairs = vec![
        ("grant_type", "authorization_code".to_string()),
        ("code", code),
        ("redirect_uri", request.app.redirect_uri.clone()),
        ("client_id", s.app.client_id.clone()),
    ];
    let verifier = verifier.map(|v| {
        if v == "=challenge" {
            s256(&request.verifier)
        } else {
            v
        }
    });
    if let Some(v) = verifier {
        pairs.push(("code_verifier", v));
    }
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reply = post_form(&c.oauth("token"), &pairs, None, &[]).await?;
    ensure!(
        reply.json["access_token"].is_null(),
        "a token was issued: {}",
        reply.json
    );
    Ok(reply.status)
}

async fn exchange_without_verifier_fails(c: Client) -> Outcome {
    let status = exchange_with(&c, None).await?;
    ensure!(status == 400, "HTTP {status}");
    Ok(())
}

async fn exchange_with_empty_verifier_fails(c: Client) -> Outcome {
    let status = exchange_with(&c, Some(String::new())).await?;
    ensure!(status == 400 || status == 401, "HTTP {status}");
    Ok(())
}

async fn exchange_with_wrong_verifier_fails(c: Client) -> Outcome {
    let wrong: String = random(60).chars().take(73).collect();
    let status = exchange_with(&c, Some(wrong)).await?;
    ensure!(status == 400 || status == 401, "HTTP {status}");
    Ok(())
}

async fn exchange_with_challenge_as_verifier_fails(c: Client) -> Outcome {
    let status = exchange_with(&c, Some("=challenge".into())).await?;
    ensure!(status == 400 || status == 401, "HTTP {status}");
    Ok(())
}

async fn unknown_code_fails(c: Client) -> Outcome {
    let s = c.smart()?;
    let reply = exchange(&c.oauth("token"), &s.app, "BAD_CODE", &random(48)).await?;
    ensure!(reply.status == 400, "HTTP {}", reply.status);
    ensure!(reply.field("error") == "invalid_grant", "{}", reply.json);
    Ok(())
}

async fn code_presented_by_another_client_fails(c: Client) -> Outcome {
    let (request, code) = code(&c).await?;
    let reply = post_form(
        &c.oauth("token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &request.app.redirect_uri),
            ("code_verifier", &request.verifier),
            ("client_id", "BAD_CLIENT_ID"),
        ],
        None,
        &[],
    )
    .await?;
    ensure!(
        reply.status == 400 || reply.status == 401,
        "HTTP {}",
        reply.status
    );
    ensure!(reply.json["access_token"].is_null(), "a token was issued");
    Ok(())
}

async fn code_reuse_fails_and_revokes_the_first_tokens(c: Client) -> Outcome {
    let s = c.smart()?;
    let (request, code) = code(&c).await?;
    let first = exchange(&c.oauth("token"), &s.app, &code, &request.verifier).await?;
    ensure!(
        first.status == 200,
        "first exchange: {} {}",
        first.status,
        first.json
    );
    let second = exchange(&c.oauth("token"), &s.app, &code, &request.verifier).await?;
    ensure!(
        second.status == 400,
        "second exchange: HTTP {}",
        second.status
    );
    ensure!(second.field("error") == "invalid_grant", "{}", second.json);
    let info = post_form(
        &c.oauth("introspect"),
        &[("token", &first.field("access_token"))],
        None,
        &[],
    )
    .await?;
    ensure!(
        info.json["active"] == false,
        "the first exchange's token is still active: {}",
        info.json
    );
    Ok(())
}

async fn redirect_uri_must_match_at_exchange(c: Client) -> Outcome {
    let s = c.smart()?;
    let (request, code) = code(&c).await?;
    let reply = post_form(
        &c.oauth("token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example/other"),
            ("code_verifier", &request.verifier),
            ("client_id", &s.app.client_id),
        ],
        None,
        &[],
    )
    .await?;
    ensure!(reply.status == 400, "HTTP {}", reply.status);
    ensure!(reply.field("error") == "invalid_grant", "{}", reply.json);
    Ok(())
}

async fn token_endpoint_allows_the_public_apps_origin(c: Client) -> Outcome {
    let s = c.smart()?;
    let (request, code) = code(&c).await?;
    let origin = crate::smart::origin_of(&s.app.redirect_uri);
    let reply = post_form(
        &c.oauth("token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &request.app.redirect_uri),
            ("code_verifier", &request.verifier),
            ("client_id", &s.app.client_id),
        ],
        None,
        &[("origin", &origin)],
    )
    .await?;
    ensure!(reply.status == 200, "HTTP {}: {}", reply.status, reply.json);
    let allowed = reply.header("access-control-allow-origin");
    ensure!(
        allowed == origin || allowed == "*",
        "Access-Control-Allow-Origin is '{allowed}' for {origin}"
    );
    Ok(())
}

async fn confidential_client_authenticates_with_basic(c: Client) -> Outcome {
    let s = c.smart()?;
    let app = &s.confidential_app;
    let request = AuthRequest::new(app, "openid fhirUser patient/*.rs", c.base());
    let code = authorize(
        &c.oauth("authorize"),
        &request,
        &s.patient,
        &Decision::default(),
        None,
    )
    .await?
    .code()?;
    let secret = app
        .secret
        .clone()
        .ok_or("the confidential app has no secret")?;
    let wrong = post_form(
        &c.oauth("token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &app.redirect_uri),
            ("code_verifier", &request.verifier),
        ],
        Some((&app.client_id, "not-the-secret")),
        &[],
    )
    .await?;
    ensure!(
        wrong.status == 401,
        "a wrong secret got HTTP {}",
        wrong.status
    );
    ensure!(wrong.field("error") == "invalid_client", "{}", wrong.json);
    // The failed attempt did not spend the code.
    let reply = exchange(&c.oauth("token"), app, &code, &request.verifier).await?;
    ensure!(reply.status == 200, "HTTP {}: {}", reply.status, reply.json);
    let (_, id) = jwt_parts(&reply.field("id_token"))?;
    ensure!(
        id["aud"] == app.client_id.as_str(),
        "id_token aud {}",
        id["aud"]
    );
    ensure!(secret.len() >= 32, "a short client secret");
    Ok(())
}

async fn clinician_picks_the_patient_in_a_standalone_launch(c: Client) -> Outcome {
    let s = c.smart()?;
    // The patient's own launch tells us their Patient id.
    let mine = patient_launch(&c).await?;
    let patient = mine.field("patient");
    let request = AuthRequest::new(
        &s.app,
        "launch/patient openid fhirUser patient/*.rs",
        c.base(),
    );
    let without = authorize(
        &c.oauth("authorize"),
        &request,
        &s.clinician,
        &Decision::default(),
        None,
    )
    .await?;
    ensure!(
        without.code().is_err(),
        "a clinician got a code without picking a patient"
    );
    let request = AuthRequest::new(
        &s.app,
        "launch/patient openid fhirUser patient/*.rs",
        c.base(),
    );
    let decision = Decision {
        patient: Some(patient.clone()),
        ..Decision::default()
    };
    let code = authorize(
        &c.oauth("authorize"),
        &request,
        &s.clinician,
        &decision,
        None,
    )
    .await?
    .code()?;
    let reply = exchange(&c.oauth("token"), &s.app, &code, &request.verifier).await?;
    ensure!(reply.status == 200, "HTTP {}: {}", reply.status, reply.json);
    ensure!(
        reply.field("patient") == patient,
        "patient {} (picked {patient})",
        reply.field("patient")
    );
    let (_, id) = jwt_parts(&reply.field("id_token"))?;
    ensure!(
        id["fhirUser"]
            .as_str()
            .is_some_and(|u| u.contains("/Practitioner/")),
        "the clinician's fhirUser: {}",
        id["fhirUser"]
    );
    ensure!(id["exp"].as_i64().unwrap_or(0) > now(), "id_token expired");
    Ok(())
}
