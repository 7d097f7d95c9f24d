//! create, read, vread, update and delete.

use axum::body::Body;
use axum::extract::State;

use super::path::FhirPath;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use curanet_engine::{Deleted, Written};
use curanet_fhir::{Issue, OperationOutcome};

use super::{
    FhirContext, add_version_headers, header_value, json_response, read_body, resource_response,
    version_url,
};
use crate::app::AppState;
use crate::error::ApiError;
use crate::fhir_headers::{Return, if_match, none_match_hits, not_modified_since, prefer_return};
use crate::negotiation::check_body_type;

/// `POST /fhir/{type}`.
pub async fn create(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    check_body_type(&ctx.headers, &[])?;
    let body = read_body(&state, body).await?;
    let if_none_exist = ctx
        .headers
        .get("if-none-exist")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let written = state
        .engine
        .create(&rtype, &body, if_none_exist.as_deref(), &ctx.base)
        .await?;
    Ok(write_response(&ctx, written, "created"))
}

/// `PUT /fhir/{type}/{id}` (update, or update-as-create).
pub async fn update(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    check_body_type(&ctx.headers, &[])?;
    let version = if_match(&ctx.headers)?;
    let body = read_body(&state, body).await?;
    let written = state.engine.update(&rtype, &id, &body, version).await?;
    Ok(write_response(&ctx, written, "updated"))
}

pub(super) fn write_response(ctx: &FhirContext, written: Written, verb: &str) -> Response {
    let v = &written.version;
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = match prefer_return(&ctx.headers) {
        Return::Representation => resource_response(status, ctx.format, v),
        Return::Minimal => {
            let mut r = status.into_response();
            add_version_headers(r.headers_mut(), v);
            r
        }
        Return::OperationOutcome => {
            let oo = OperationOutcome::single(Issue::information(format!(
                "{}/{} {verb} (version {})",
                v.resource_type,
                v.id,
                if written.created && v.version == 1 {
                    "1".to_string()
                } else {
                    v.version.to_string()
                }
            )));
            let mut r = json_response(status, ctx.format, &oo.to_json());
            add_version_headers(r.headers_mut(), v);
            r
        }
    };
    response
        .headers_mut()
        .insert(header::LOCATION, header_value(&version_url(&ctx.base, v)));
    response
}

/// `GET /fhir/{type}/{id}`, with `If-None-Match` / `If-Modified-Since` → 304.
pub async fn read(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let mut v = crate::audit::read_current(&state, &rtype, &id).await?;
    state.engine.subset_read(&mut v, &ctx.query)?;
    if none_match_hits(&ctx.headers, v.version)
        || (ctx.headers.get(header::IF_NONE_MATCH).is_none()
            && not_modified_since(&ctx.headers, v.last_updated))
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        add_version_headers(r.headers_mut(), &v);
        return Ok(r);
    }
    Ok(resource_response(StatusCode::OK, ctx.format, &v))
}

/// `GET /fhir/{type}/{id}/_history/{vid}`.
pub async fn vread(
    State(state): State<AppState>,
    FhirPath((rtype, id, vid)): FhirPath<(String, String, String)>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let mut v = crate::audit::read_version(&state, &rtype, &id, &vid).await?;
    state.engine.subset_read(&mut v, &ctx.query)?;
    Ok(resource_response(StatusCode::OK, ctx.format, &v))
}

/// `DELETE /fhir/{type}/{id}`: 200 with an OperationOutcome saying what happened.
pub async fn delete(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let version = if_match(&ctx.headers)?;
    let (message, tombstone) = match state.engine.delete(&rtype, &id, version).await? {
        Deleted::Now(v) => (
            format!("{rtype}/{id} deleted (version {})", v.version),
            Some(v),
        ),
        Deleted::Already => (
            format!("{rtype}/{id} does not exist or was already deleted"),
            None,
        ),
    };
    let mut r = match prefer_return(&ctx.headers) {
        Return::Minimal => StatusCode::NO_CONTENT.into_response(),
        _ => json_response(
            StatusCode::OK,
            ctx.format,
            &OperationOutcome::single(Issue::information(message)).to_json(),
        ),
    };
    if let Some(v) = tombstone {
        r.headers_mut()
            .insert(header::ETAG, crate::fhir_headers::etag(v.version));
    }
    Ok(r)
}

/// `POST /fhir`: a batch or transaction Bundle.
pub async fn bundle(
    State(state): State<AppState>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    check_body_type(&ctx.headers, &[])?;
    let body = read_body(&state, body).await?;
    let response = state.engine.bundle(&body, &ctx.base).await?;
    Ok(json_response(StatusCode::OK, ctx.format, &response))
}

/// `PUT /fhir/{type}?query`: conditional update.
pub async fn conditional_update(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    check_body_type(&ctx.headers, &[])?;
    let query = conditional_query(&ctx)?;
    let body = read_body(&state, body).await?;
    let written = state
        .engine
        .conditional_update(&rtype, &query, &body, &ctx.base)
        .await?;
    Ok(write_response(&ctx, written, "updated"))
}

/// `DELETE /fhir/{type}?query`: conditional delete of every match (at most
/// [`curanet_engine::MAX_CONDITIONAL_DELETES`]; more is 412); 200 with an OperationOutcome naming
/// what was deleted, or 204 with `Prefer: return=minimal`.
pub async fn conditional_delete(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let query = conditional_query(&ctx)?;
    let tombstones = state
        .engine
        .conditional_delete(&rtype, &query, &ctx.base)
        .await?;
    let message = match tombstones.as_slice() {
        [] => format!("no {rtype} matched; nothing deleted"),
        [v] => format!("{rtype}/{} deleted (version {})", v.id, v.version),
        many => format!(
            "{} resources deleted: {}",
            many.len(),
            many.iter()
                .map(|v| format!("{rtype}/{}", v.id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok(match prefer_return(&ctx.headers) {
        Return::Minimal => StatusCode::NO_CONTENT.into_response(),
        _ => json_response(
            StatusCode::OK,
            ctx.format,
            &OperationOutcome::single(Issue::information(message)).to_json(),
        ),
    })
}

/// The search criteria of a conditional interaction (400 without any).
pub(super) fn conditional_query(ctx: &FhirContext) -> Result<String, ApiError> {
    let pairs: Vec<(String, String)> = ctx
        .query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_format" | "_pretty"))
        .cloned()
        .collect();
    if pairs.is_empty() {
        return Err(ApiError::bad_request(
            "a conditional update, delete or patch needs search criteria in the URL".into(),
        ));
    }
    Ok(form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish())
}
