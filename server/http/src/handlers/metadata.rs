//! `GET /fhir/metadata`: the CapabilityStatement.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{FhirContext, json_response};
use crate::app::AppState;

/// The CapabilityStatement generated from the definitions and the interactions implemented.
pub async fn capabilities(State(state): State<AppState>, ctx: FhirContext) -> Response {
    let mut cs = curanet_engine::capability_statement(state.engine.definitions(), &ctx.base);
    if state.require_auth {
        cs["rest"][0]["security"] =
            curanet_auth::discovery::capability_security(state.authority.endpoints());
    }
    json_response(StatusCode::OK, ctx.format, &cs)
}
