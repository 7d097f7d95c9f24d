//! SMART Backend Services (checklist cases 46–57 of `shared/reference/smart-consent-abdm-audit.md`
//! §7): the client-credentials grant with a signed client assertion (`private_key_jwt`), and
//! every way an assertion can be wrong — each answered with 401 `invalid_client` and no token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::smart::{Backend, TokenReply, client_assertion, now, post_form, random};
use crate::{Client, Outcome, cases, ensure};

cases!("smart-backend";
    client_credentials_grant_issues_a_short_lived_token,
    unknown_grant_type_is_unsupported,
    unknown_assertion_type_is_refused,
    assertion_with_a_bad_signature_is_refused,
    assertion_for_another_audience_is_refused,
    assertion_expiring_too_late_or_already_expired_is_refused,
    replayed_assertion_is_refused,
    assertion_with_wrong_iss_or_sub_is_refused,
    client_id_parameter_must_match_the_assertion,
    unregistered_jku_or_unknown_kid_is_refused,
    unsigned_or_hmac_assertion_is_refused,
    scopes_beyond_the_registration_are_not_granted,
    symmetric_client_cannot_use_client_credentials,
    bulk_export_without_a_token_is_refused,
);

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The backend client of the set-up and the token endpoint.
fn backend(c: &Client) -> Result<(Backend, String), String> {
    Ok((c.smart()?.backend.clone(), c.oauth("token")))
}

/// A client-credentials token request for `scope` with `assertion`.
async fn token_request(
    token_url: &str,
    scope: &str,
    assertion: &str,
) -> Result<TokenReply, String> {
    post_form(
        token_url,
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
        None,
        &[],
    )
    .await
}

/// Fails unless the reply is 401 `invalid_client` without a token.
fn invalid_client(reply: &TokenReply, what: &str) -> Outcome {
    ensure!(
        reply.json["access_token"].is_null(),
        "{what}: a token was issued (HTTP {}, scope '{}', token client_id '{}')",
        reply.status,
        reply.field("scope"),
        crate::smart::jwt_parts(&reply.field("access_token"))
            .map(|(_, claims)| claims["client_id"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    );
    ensure!(
        reply.status == 401,
        "{what}: HTTP {} (want 401): {}",
        reply.status,
        reply.json
    );
    ensure!(
        reply.field("error") == "invalid_client",
        "{what}: error {} (want invalid_client)",
        reply.json
    );
    Ok(())
}

/// Sends a valid assertion first (so the refusals below are about what was changed), then
/// `assertion` (same request otherwise); fails unless the latter gets 401 `invalid_client`.
async fn refused(c: &Client, assertion: &str, what: &str) -> Outcome {
    let (backend, token_url) = backend(c)?;
    let good = client_assertion(&backend, &token_url, json!({}))?;
    let ok = token_request(&token_url, "system/Patient.rs", &good).await?;
    ensure!(
        ok.status == 200,
        "a valid assertion was refused: HTTP {} {}",
        ok.status,
        ok.json
    );
    let reply = token_request(&token_url, "system/Patient.rs", assertion).await?;
    invalid_client(&reply, what)
}

/// The standard claims of an assertion for `backend` at `token_url`.
fn claims(backend: &Backend, token_url: &str) -> Value {
    json!({
        "iss": backend.client_id,
        "sub": backend.client_id,
        "aud": token_url,
        "exp": now() + 240,
        "jti": random(16),
    })
}

/// base64url of a JSON value.
fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn client_credentials_grant_issues_a_short_lived_token(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let assertion = client_assertion(&backend, &token_url, json!({}))?;
    let reply = token_request(&token_url, "system/Patient.rs", &assertion).await?;
    ensure!(reply.status == 200, "HTTP {}: {}", reply.status, reply.json);
    let token = reply.field("access_token");
    ensure!(!token.is_empty(), "no access_token: {}", reply.json);
    ensure!(
        reply.field("token_type").eq_ignore_ascii_case("bearer"),
        "token_type {}",
        reply.json["token_type"]
    );
    let expires = reply.json["expires_in"]
        .as_i64()
        .ok_or_else(|| format!("expires_in is not a number: {}", reply.json))?;
    ensure!(
        expires > 0 && expires <= 300,
        "expires_in {expires} (want ≤ 300)"
    );
    let scope = reply.field("scope");
    ensure!(
        scope.split_whitespace().collect::<Vec<_>>() == ["system/Patient.rs"],
        "scope '{scope}' (asked for system/Patient.rs)"
    );
    ensure!(
        reply.json["refresh_token"].is_null(),
        "a refresh token was issued to a backend service"
    );
    ensure!(
        reply.header("cache-control").contains("no-store"),
        "Cache-Control '{}'",
        reply.header("cache-control")
    );
    // The token works for what it grants, and for nothing more.
    let me = c.with_token(&token);
    me.get("Patient?_count=1").await?.expect(200)?;
    let other = me.get("Observation?_count=1").await?;
    ensure!(
        other.status == 403 || other.status == 401,
        "an Observation search with system/Patient.rs: HTTP {}",
        other.status
    );
    Ok(())
}

async fn unknown_grant_type_is_unsupported(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let assertion = client_assertion(&backend, &token_url, json!({}))?;
    let reply = post_form(
        &token_url,
        &[
            ("grant_type", "not_a_grant_type"),
            ("scope", "system/Patient.rs"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
        None,
        &[],
    )
    .await?;
    ensure!(reply.json["access_token"].is_null(), "a token was issued");
    ensure!(reply.status == 400, "HTTP {} (want 400)", reply.status);
    ensure!(
        reply.field("error") == "unsupported_grant_type",
        "error {} (want unsupported_grant_type)",
        reply.json
    );
    Ok(())
}

async fn unknown_assertion_type_is_refused(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let assertion = client_assertion(&backend, &token_url, json!({}))?;
    let reply = post_form(
        &token_url,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
            ("client_assertion_type", "not_an_assertion_type"),
            ("client_assertion", &assertion),
        ],
        None,
        &[],
    )
    .await?;
    ensure!(reply.json["access_token"].is_null(), "a token was issued");
    ensure!(
        reply.status == 400 || reply.status == 401,
        "HTTP {} (want 400/401): {}",
        reply.status,
        reply.json
    );
    ensure!(
        !reply.field("error").is_empty(),
        "no OAuth error code: {}",
        reply.json
    );
    Ok(())
}

/// An assertion "signed with a key that is not registered". The suite has no second RSA key
/// (generating one needs the `rsa` crate, only a dev-dependency), so the signature of a valid
/// assertion is altered instead: one character in the middle of the signature is changed, which
/// no registered key verifies — to the server it is indistinguishable from a foreign key. (The
/// last character is left alone: part of its bits are padding.)
async fn assertion_with_a_bad_signature_is_refused(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let good = client_assertion(&backend, &token_url, json!({}))?;
    let (signed, signature) = good.rsplit_once('.').ok_or("not a JWS")?;
    let mut chars: Vec<char> = signature.chars().collect();
    ensure!(chars.len() > 40, "a short signature: {signature}");
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let forged = format!("{signed}.{}", chars.into_iter().collect::<String>());
    refused(&c, &forged, "a bad signature").await
}

async fn assertion_for_another_audience_is_refused(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    for aud in [
        "https://evil.example/oauth/token".to_string(),
        c.base().to_string(),
    ] {
        let assertion = client_assertion(&backend, &token_url, json!({ "aud": aud }))?;
        refused(&c, &assertion, &format!("aud {aud}")).await?;
    }
    Ok(())
}

async fn assertion_expiring_too_late_or_already_expired_is_refused(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let late = client_assertion(&backend, &token_url, json!({ "exp": now() + 600 }))?;
    refused(&c, &late, "exp 10 minutes ahead").await?;
    let past = client_assertion(&backend, &token_url, json!({ "exp": now() - 120 }))?;
    refused(&c, &past, "exp 2 minutes ago").await?;
    let none = {
        let mut claims = claims(&backend, &token_url);
        claims.as_object_mut().map(|o| o.remove("exp"));
        sign_rs384(&backend, &claims, Some(&backend.kid), None)?
    };
    refused(&c, &none, "no exp").await
}

async fn replayed_assertion_is_refused(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let assertion = client_assertion(&backend, &token_url, json!({}))?;
    let first = token_request(&token_url, "system/Patient.rs", &assertion).await?;
    ensure!(
        first.status == 200,
        "first use: HTTP {} {}",
        first.status,
        first.json
    );
    let again = token_request(&token_url, "system/Patient.rs", &assertion).await?;
    invalid_client(&again, "the same assertion again")?;
    // A new assertion reusing the jti of the first (another exp, so only the jti repeats;
    // RS384 signatures are deterministic).
    let (_, claims) = crate::smart::jwt_parts(&assertion)?;
    let exp = claims["exp"].as_i64().unwrap_or_else(now) - 30;
    let reused = client_assertion(
        &backend,
        &token_url,
        json!({ "jti": claims["jti"], "exp": exp }),
    )?;
    ensure!(reused != assertion, "the re-signed assertion is identical");
    let reply = token_request(&token_url, "system/Patient.rs", &reused).await?;
    invalid_client(&reply, "a new assertion with a used jti")?;
    // One fresh assertion sent four times at once: exactly one request may win.
    let racing = client_assertion(&backend, &token_url, json!({}))?;
    let replies = futures::future::join_all(
        (0..4).map(|_| token_request(&token_url, "system/Patient.rs", &racing)),
    )
    .await;
    let mut statuses = Vec::new();
    for reply in replies {
        statuses.push(reply?.status);
    }
    let won = statuses.iter().filter(|s| **s == 200).count();
    ensure!(
        won == 1 && statuses.iter().all(|s| *s == 200 || *s == 401),
        "one assertion sent 4 times at once: statuses {statuses:?} (want one 200, the rest 401)"
    );
    Ok(())
}

async fn assertion_with_wrong_iss_or_sub_is_refused(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let other_sub = client_assertion(
        &backend,
        &token_url,
        json!({ "sub": "conformance-someone-else" }),
    )?;
    refused(&c, &other_sub, "sub differs from iss").await?;
    let unknown = client_assertion(
        &backend,
        &token_url,
        json!({ "iss": "no-such-client", "sub": "no-such-client" }),
    )?;
    refused(&c, &unknown, "an unknown iss").await?;
    let other_iss = client_assertion(&backend, &token_url, json!({ "iss": "no-such-client" }))?;
    refused(&c, &other_iss, "iss differs from sub").await?;
    // A registered client without keys (the public app) named as iss and sub.
    let app = c.smart()?.app.client_id.clone();
    let keyless = client_assertion(&backend, &token_url, json!({ "iss": app, "sub": app }))?;
    refused(&c, &keyless, "iss and sub of a client without keys").await
}

/// A valid assertion sent with a `client_id` parameter naming another registered client: RFC
/// 7521 §4.2 says the parameter, when present, MUST identify the client of the assertion, and
/// SMART says the server checks that the `client_id` equals `iss`.
async fn client_id_parameter_must_match_the_assertion(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let app = c.smart()?.app.client_id.clone();
    let assertion = client_assertion(&backend, &token_url, json!({}))?;
    let reply = post_form(
        &token_url,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
            ("client_id", &app),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
        None,
        &[],
    )
    .await?;
    invalid_client(&reply, "client_id differs from the assertion's iss")
}

/// An RS384 assertion with the backend's key, `kid` and `jku` as given.
fn sign_rs384(
    backend: &Backend,
    claims: &Value,
    kid: Option<&str>,
    jku: Option<&str>,
) -> Result<String, String> {
    let key = EncodingKey::from_rsa_pem(backend.key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut header = Header::new(Algorithm::RS384);
    header.kid = kid.map(str::to_string);
    header.jku = jku.map(str::to_string);
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| e.to_string())
}

async fn unregistered_jku_or_unknown_kid_is_refused(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let jku = sign_rs384(
        &backend,
        &claims(&backend, &token_url),
        Some(&backend.kid),
        Some("https://evil.example/.well-known/jwks.json"),
    )?;
    refused(&c, &jku, "an unregistered jku").await?;
    let kid = sign_rs384(
        &backend,
        &claims(&backend, &token_url),
        Some("no-such-kid"),
        None,
    )?;
    refused(&c, &kid, "a kid not in the JWKS").await
}

async fn unsigned_or_hmac_assertion_is_refused(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": backend.kid})),
        b64(&claims(&backend, &token_url))
    );
    refused(&c, &none, "alg none").await?;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(backend.kid.clone());
    header.typ = Some("JWT".into());
    let secret =
        EncodingKey::from_secret(backend.client_id.as_bytes()).map_err(|e| e.to_string())?;
    let hmac = jsonwebtoken::encode(&header, &claims(&backend, &token_url), &secret)
        .map_err(|e| e.to_string())?;
    refused(&c, &hmac, "alg HS256").await
}

/// The backend is registered for `system/*.cruds` only: a request adding `user/*.rs` must be
/// refused (`invalid_scope`) or narrowed to what is registered, and the narrowing stated.
async fn scopes_beyond_the_registration_are_not_granted(c: Client) -> Outcome {
    let (backend, token_url) = backend(&c)?;
    let assertion = client_assertion(&backend, &token_url, json!({}))?;
    let reply = token_request(&token_url, "system/*.cruds user/*.rs", &assertion).await?;
    match reply.status {
        400 => {
            ensure!(
                reply.field("error") == "invalid_scope",
                "error {} (want invalid_scope)",
                reply.json
            );
            ensure!(reply.json["access_token"].is_null(), "a token with a 400");
        }
        200 => {
            let scope = reply.field("scope");
            let scopes: Vec<&str> = scope.split_whitespace().collect();
            ensure!(
                !scopes.is_empty() && scopes.iter().all(|s| s.starts_with("system/")),
                "granted '{scope}': want only system/ scopes"
            );
        }
        other => return Err(format!("HTTP {other}: {}", reply.json)),
    }
    Ok(())
}

/// Backend services authenticate asymmetrically only (SMART: the symmetric profile is not for
/// backend services): the confidential symmetric app gets no client-credentials token, whatever
/// it asks for.
async fn symmetric_client_cannot_use_client_credentials(c: Client) -> Outcome {
    let app = &c.smart()?.confidential_app;
    let secret = app
        .secret
        .clone()
        .ok_or("the confidential app has no secret")?;
    for scope in ["system/Patient.rs", "user/*.rs", "patient/*.rs"] {
        let reply = post_form(
            &c.oauth("token"),
            &[("grant_type", "client_credentials"), ("scope", scope)],
            Some((&app.client_id, &secret)),
            &[],
        )
        .await?;
        ensure!(
            reply.json["access_token"].is_null(),
            "a client-credentials token for {scope} to a symmetric client: {}",
            reply.json
        );
        ensure!(
            reply.status == 400 || reply.status == 401,
            "{scope}: HTTP {} (want 400/401): {}",
            reply.status,
            reply.json
        );
        let error = reply.field("error");
        ensure!(
            [
                "unauthorized_client",
                "invalid_client",
                "invalid_scope",
                "invalid_grant"
            ]
            .contains(&error.as_str()),
            "{scope}: error '{error}'"
        );
    }
    Ok(())
}

async fn bulk_export_without_a_token_is_refused(c: Client) -> Outcome {
    let reply = c
        .anonymous()
        .get_with("Patient/$export", vec![("prefer", "respond-async".into())])
        .await?;
    ensure!(
        reply.status == 401 || reply.status == 400,
        "GET Patient/$export without a token: HTTP {} (want 401; 400 accepted)",
        reply.status
    );
    Ok(())
}
