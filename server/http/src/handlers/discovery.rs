//! Public discovery: `GET /fhir/.well-known/smart-configuration`,
//! `GET /.well-known/openid-configuration` and the JWKS at `GET /oauth/jwks`. Always JSON,
//! whatever the Accept header (SMART requires it), readable from any origin.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::app::AppState;

/// SMART App Launch's discovery document.
pub async fn smart_configuration(State(state): State<AppState>) -> Response {
    public_json(&curanet_auth::discovery::smart_configuration(
        state.authority.endpoints(),
    ))
}

/// OpenID Connect's discovery document.
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    public_json(&curanet_auth::discovery::openid_configuration(
        state.authority.endpoints(),
    ))
}

/// The public keys that verify the server's tokens.
pub async fn jwks(State(state): State<AppState>) -> Response {
    public_json(&state.authority.jwks())
}

fn public_json(value: &Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        value.to_string(),
    )
        .into_response()
}
