//! Request handlers: each extracts, calls the engine, and maps the result.

pub mod accounts;
pub mod authorize;
pub mod consent;
pub mod discovery;
pub mod emergency;
pub mod fallback;
pub mod health;
pub mod history;
pub mod metadata;
pub mod oauth;
pub mod operations;
pub mod patch;
mod path;
pub mod resources;
pub mod search;
pub mod validate;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, RawQuery};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use curanet_fhir::json::to_bytes;
use curanet_storage::StoredVersion;
use serde_json::Value;

use crate::app::AppState;
use crate::error::ApiError;
use crate::fhir_headers::{etag, http_date};
use crate::negotiation::{Format, negotiate};

/// What every FHIR handler needs from a request besides its path and body.
pub struct FhirContext {
    pub headers: HeaderMap,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub format: Format,
    /// The FHIR base URL for links and Location headers.
    pub base: String,
}

impl FhirContext {
    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FromRequestParts<AppState> for FhirContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .unwrap_or(RawQuery(None));
        let query: Vec<(String, String)> = raw
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let find = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let format = negotiate(&parts.headers, find("_format"), find("_pretty"))?;
        let base = match &state.base_url {
            Some(b) => b.to_string(),
            None => {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}/fhir")
            }
        };
        Ok(FhirContext {
            headers: parts.headers.clone(),
            query,
            format,
            base,
        })
    }
}

/// Reads a request body up to the configured limit (413 beyond it).
/// Largest form accepted by the OAuth endpoints and pages (an assertion is a few KiB at most).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// Why a form body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormError {
    /// The Content-Type is not `application/x-www-form-urlencoded`.
    NotForm,
    /// The body is larger than the limit (bytes).
    TooLarge(usize),
}

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormError::NotForm => f.write_str("the body must be application/x-www-form-urlencoded"),
            FormError::TooLarge(max) => write!(f, "the body is larger than {max} bytes"),
        }
    }
}

/// The pairs of an `application/x-www-form-urlencoded` body of at most `max` bytes (the OAuth
/// endpoints and the authorization pages).
pub async fn form_pairs(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<Vec<(String, String)>, FormError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(FormError::NotForm);
    }
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|_| FormError::TooLarge(max))?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

pub async fn read_body(state: &AppState, body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                curanet_fhir::IssueType::TooLong,
                format!(
                    "the request body is larger than {} bytes",
                    state.max_body_bytes
                ),
            )
        })
}

/// A JSON response in the negotiated format.
pub fn json_response(status: StatusCode, format: Format, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        to_bytes(value, format.pretty),
    )
        .into_response()
}

/// A 200 response whose body is JSON text built elsewhere (indented when `_pretty` asks).
pub fn text_response(format: Format, text: String) -> Response {
    let body = if format.pretty {
        serde_json::from_str::<Value>(&text)
            .map(|v| to_bytes(&v, true))
            .unwrap_or_else(|_| text.into_bytes())
    } else {
        text.into_bytes()
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

/// A stored resource as a response, with its ETag and Last-Modified.
pub fn resource_response(status: StatusCode, format: Format, version: &StoredVersion) -> Response {
    let body: Vec<u8> = match (&version.content, format.pretty) {
        // The stored text is already compact JSON: send it as it is.
        (Some(content), false) => content.clone().into_bytes(),
        (Some(_), true) => to_bytes(&version.resource().unwrap_or_default(), true),
        (None, _) => Vec::new(),
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response();
    add_version_headers(response.headers_mut(), version);
    response
}

/// Adds `ETag` and `Last-Modified` for a version.
pub fn add_version_headers(headers: &mut HeaderMap, version: &StoredVersion) {
    headers.insert(header::ETAG, etag(version.version));
    headers.insert(header::LAST_MODIFIED, http_date(version.last_updated));
}

/// The absolute URL of a version: `{base}/{type}/{id}/_history/{v}`.
pub fn version_url(base: &str, version: &StoredVersion) -> String {
    format!(
        "{base}/{}/{}/_history/{}",
        version.resource_type, version.id, version.version
    )
}

/// A header value from a URL we built (always valid ASCII after percent-encoding of ids).
pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}
