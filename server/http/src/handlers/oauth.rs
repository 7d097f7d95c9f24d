//! The OAuth 2 endpoints: `POST /oauth/token` and `POST /oauth/introspect` (form-encoded).
//! Every answer carries `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use curanet_auth::{OAuthError, TokenRequest};
use serde_json::Value;

use crate::app::AppState;
use crate::error::OAuthFailure;
use crate::server::unix_now;

/// Largest form accepted at the OAuth endpoints (an assertion is a few KiB at most).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OAuthFailure> {
    let pairs = read_form(&headers, body).await?;
    let request = TokenRequest::from_pairs(&pairs)?;
    let response = state.authority.token(&request, unix_now()).await?;
    Ok(no_store_json(StatusCode::OK, &response.to_json()))
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

/// The form pairs of an `application/x-www-form-urlencoded` body.
async fn read_form(headers: &HeaderMap, body: Body) -> Result<Vec<(String, String)>, OAuthFailure> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::InvalidRequest {
            description: "the body must be application/x-www-form-urlencoded".into(),
        }
        .into());
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| OAuthError::InvalidRequest {
            description: format!("the body is larger than {MAX_FORM_BYTES} bytes"),
        })?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
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
