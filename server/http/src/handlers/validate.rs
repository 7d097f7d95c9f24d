//! `$validate` at type and instance level: always 200 with an OperationOutcome (the spec's
//! convention), unless the validation itself cannot run.

use axum::body::Body;
use axum::extract::State;

use super::path::FhirPath;
use axum::http::StatusCode;
use axum::response::Response;
use curanet_engine::ValidateMode;

use super::{FhirContext, json_response, read_body};
use crate::app::AppState;
use crate::error::ApiError;
use crate::negotiation::check_body_type;

/// `POST /fhir/{type}/$validate`.
pub async fn type_level(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    check_body_type(&ctx.headers, &[])?;
    let body = read_body(&state, body).await?;
    let mode = ValidateMode::parse(ctx.param("mode").unwrap_or(""))?;
    let oo = state
        .engine
        .validate(&rtype, None, Some(&body), mode)
        .await?;
    Ok(json_response(StatusCode::OK, ctx.format, &oo.to_json()))
}

/// `GET|POST /fhir/{type}/{id}/$validate` (GET validates the stored resource).
pub async fn instance(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body).await?;
    let body = if body.is_empty() {
        None
    } else {
        check_body_type(&ctx.headers, &[])?;
        Some(body)
    };
    let mode = ValidateMode::parse(ctx.param("mode").unwrap_or(""))?;
    let oo = state
        .engine
        .validate(&rtype, Some(&id), body.as_deref(), mode)
        .await?;
    Ok(json_response(StatusCode::OK, ctx.format, &oo.to_json()))
}
