//! The OAuth 2 endpoints: `POST /oauth/token`, `/oauth/introspect`, `/oauth/revoke`
//! (form-encoded), dynamic registration `POST /oauth/register` (JSON, admins), EHR launch values
//! `POST /api/launch` (clinicians) and the SMART style document. Every answer carries
//! `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use curanet_auth::{OAuthError, TokenRequest};
use serde_json::Value;

use crate::app::AppState;
use crate::error::OAuthFailure;
use crate::handlers::accounts::Authenticated;
use crate::server::unix_now;

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthFailure> {
    let request = token_request(&headers, body).await?;
    let response = state.authority.token(&request, unix_now()).await?;
    Ok(no_store_json(StatusCode::OK, &response.to_json()))
}

/// The form of a token or revocation request, with HTTP Basic client credentials if sent.
async fn token_request(headers: &HeaderMap, body: Body) -> Result<TokenRequest, OAuthFailure> {
    let pairs = read_form(headers, body).await?;
    let mut request = TokenRequest::from_pairs(&pairs)?;
    request.basic = basic_credentials(headers)?;
    Ok(request)
}

/// `Authorization: Basic` client credentials (RFC 6749 §2.3.1: both parts form-encoded).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthFailure> {
    use base64::Engine;
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::InvalidClient {
        description: "the Authorization header is not valid Basic client credentials".into(),
        reason: None,
    };
    let text = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(bad().into());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad().into());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthFailure> {
    let pairs = read_form(&headers, body).await?;
    let mut request = TokenRequest::from_pairs(&pairs)?;
    request.basic = basic_credentials(&headers)?;
    let token = pairs
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::InvalidRequest {
            description: "token is required".into(),
        })?;
    state.authority.revoke(&request, token, unix_now()).await?;
    Ok(no_store_json(StatusCode::OK, &serde_json::json!({})))
}

/// `POST /oauth/register` (RFC 7591), for admins: the bearer token must be an admin's.
pub async fn register(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: axum::body::Bytes,
) -> Response {
    let now = unix_now();
    let refuse = |status: StatusCode, error: &str, description: &str| {
        no_store_json(
            status,
            &serde_json::json!({"error": error, "error_description": description}),
        )
    };
    let admin = match state.authority.account(&caller.account_id).await {
        Ok(Some(a)) => a.role == curanet_storage::Role::Admin && !caller.enrollment_only,
        _ => false,
    };
    if !admin {
        return refuse(
            StatusCode::FORBIDDEN,
            "access_denied",
            "only administrators (with two-factor authentication) register clients",
        );
    }
    let Ok(metadata) = serde_json::from_slice::<Value>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "the body must be JSON client metadata (RFC 7591)",
        );
    };
    let registered = match curanet_auth::registration::from_metadata(&metadata)
        .and_then(|r| curanet_auth::registration::register(r, Some(caller.account_id.clone()), now))
    {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.code(), &e.to_string()),
    };
    if let Err(e) = state
        .authority
        .register_client(registered.client.clone())
        .await
    {
        tracing::error!(error = %e, "could not store a client registration");
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the registration could not be stored",
        );
    }
    tracing::info!(client_id = %registered.client.client_id, by = %caller.account_id, "client registered");
    no_store_json(
        StatusCode::CREATED,
        &curanet_auth::registration::metadata_response(&registered),
    )
}

/// What a clinician's client opens an EHR launch for.
#[derive(Debug, serde::Deserialize)]
pub struct LaunchBody {
    /// The Patient id in context.
    patient: Option<String>,
    /// The Encounter id in context.
    encounter: Option<String>,
}

/// `POST /api/launch`: a `launch` value for a SMART app started from CuraNet's own client, with
/// the patient (and encounter) in context. Clinicians and admins only.
pub async fn launch(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: axum::body::Bytes,
) -> Response {
    let now = unix_now();
    let refuse = |status: StatusCode, error: &str, description: String| {
        no_store_json(
            status,
            &serde_json::json!({"error": error, "error_description": description}),
        )
    };
    let account = match state.authority.account(&caller.account_id).await {
        Ok(Some(a)) if a.role != curanet_storage::Role::Patient && !caller.enrollment_only => a,
        _ => {
            return refuse(
                StatusCode::FORBIDDEN,
                "access_denied",
                "only clinicians open EHR launches".into(),
            );
        }
    };
    let Ok(request) = serde_json::from_slice::<LaunchBody>(&body) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be JSON: {\"patient\": id, \"encounter\": id}".into(),
        );
    };
    for (resource_type, id) in [
        ("Patient", &request.patient),
        ("Encounter", &request.encounter),
    ] {
        if let Some(id) = id
            && !state
                .engine
                .read(resource_type, id)
                .await
                .is_ok_and(|v| !v.deleted)
        {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("{resource_type}/{id} does not exist"),
            );
        }
    }
    match state
        .authority
        .open_launch(
            &account,
            curanet_auth::app_grants::LaunchRequest {
                patient: request.patient,
                encounter: request.encounter,
            },
            now,
        )
        .await
    {
        Ok(launch) => no_store_json(
            StatusCode::CREATED,
            &serde_json::json!({
                "launch": launch,
                "iss": state.authority.endpoints().fhir_base,
                "expires_in": curanet_auth::app_grants::LAUNCH_LIFETIME_SECONDS,
            }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not open a launch");
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the launch could not be stored".into(),
            )
        }
    }
}

/// `GET /oauth/smart-style.json`: the style an EHR launch points apps to.
pub async fn smart_style() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        curanet_auth::app_grants::smart_style().to_string(),
    )
        .into_response()
}

/// `POST /oauth/introspect` (RFC 7662).
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthFailure> {
    let pairs = read_form(&headers, body).await?;
    let mut tokens = pairs.iter().filter(|(k, _)| k == "token").map(|(_, v)| v);
    let token = match (tokens.next(), tokens.next()) {
        (Some(token), None) => token,
        _ => {
            return Err(OAuthError::InvalidRequest {
                description: "exactly one 'token' parameter is required".into(),
            }
            .into());
        }
    };
    let answer = state.authority.introspect(token, unix_now()).await;
    Ok(no_store_json(StatusCode::OK, &answer))
}

/// The form pairs of the request body.
async fn read_form(headers: &HeaderMap, body: Body) -> Result<Vec<(String, String)>, OAuthFailure> {
    crate::handlers::form_pairs(headers, body, crate::handlers::MAX_FORM_BYTES)
        .await
        .map_err(|e| {
            OAuthError::InvalidRequest {
                description: e.to_string(),
            }
            .into()
        })
}

/// A JSON answer that no cache may keep.
pub(crate) fn no_store_json(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        value.to_string(),
    )
        .into_response()
}
