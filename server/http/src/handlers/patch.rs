//! `PATCH /fhir/{type}/{id}` and conditional `PATCH /fhir/{type}?query`: JSON Patch or FHIRPath
//! Patch.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use curanet_engine::PatchFormat;

use super::path::FhirPath;
use super::resources::{conditional_query, write_response};
use super::{FhirContext, read_body};
use crate::app::AppState;
use crate::error::ApiError;
use crate::fhir_headers::if_match;

/// The media types a patch may be sent as.
const ACCEPTED: &str =
    "application/json-patch+json (JSON Patch) or application/fhir+json (FHIRPath Patch Parameters)";

/// `PATCH /fhir/{type}/{id}`: applies the patch to the current version; answers like an update.
pub async fn patch(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    let media = media_type(&ctx.headers)?;
    let version = if_match(&ctx.headers)?;
    let body = read_body(&state, body).await?;
    let format = patch_format(&media, &body);
    let written = state
        .engine
        .patch(&rtype, &id, &body, format, version)
        .await?;
    Ok(write_response(&ctx, written, "patched"))
}

/// `PATCH /fhir/{type}?query`: patches the single match (none: 404; several: 412).
pub async fn conditional_patch(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    let media = media_type(&ctx.headers)?;
    let version = if_match(&ctx.headers)?;
    let query = conditional_query(&ctx)?;
    let body = read_body(&state, body).await?;
    let format = patch_format(&media, &body);
    let written = state
        .engine
        .conditional_patch(&rtype, &query, &body, format, version, &ctx.base)
        .await?;
    Ok(write_response(&ctx, written, "patched"))
}

/// The kind of patch a body of an accepted media type is.
fn patch_format(media: &str, body: &[u8]) -> PatchFormat {
    match media {
        "application/json-patch+json" => PatchFormat::JsonPatch,
        "application/fhir+json" => PatchFormat::FhirPathPatch,
        // Plain JSON: a Parameters resource is a FHIRPath Patch; an array can only be a JSON Patch.
        _ if starts_with_array(body) => PatchFormat::JsonPatch,
        _ => PatchFormat::FhirPathPatch,
    }
}

/// The request's media type, lower-cased and without parameters (415 unless a patch type).
fn media_type(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::unsupported_media(format!(
            "a patch needs a Content-Type: {ACCEPTED}"
        )));
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json-patch+json" | "application/fhir+json" | "application/json" => Ok(media),
        _ => Err(ApiError::unsupported_media(format!(
            "Content-Type {ct} is not supported for PATCH: send {ACCEPTED}"
        ))),
    }
}

fn starts_with_array(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_type(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn patch_media_types() {
        assert_eq!(
            media_type(&with_type("application/json-patch+json")).unwrap(),
            "application/json-patch+json"
        );
        assert_eq!(
            media_type(&with_type("Application/FHIR+JSON; fhirVersion=4.0")).unwrap(),
            "application/fhir+json"
        );
        assert!(media_type(&with_type("application/json")).is_ok());
        assert!(media_type(&with_type("application/xml-patch+xml")).is_err());
        assert!(media_type(&with_type("text/plain")).is_err());
        assert!(media_type(&HeaderMap::new()).is_err());
        assert!(starts_with_array(b" \n[{}]"));
        assert!(!starts_with_array(b"{\"resourceType\":\"Parameters\"}"));
    }
}
