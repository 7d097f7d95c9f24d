//! FHIR's use of HTTP headers: ETag/If-Match version tags, `Prefer`, and HTTP dates.

use axum::http::{HeaderMap, HeaderValue, header};
use curanet_fhir::Instant;

use crate::error::ApiError;

/// `W/"3"` for version 3.
pub fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("W/\"{version}\"")).expect("an ETag is ASCII")
}

/// The HTTP date of an instant (`Last-Modified`).
pub fn http_date(instant: Instant) -> HeaderValue {
    let time = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(instant.unix_seconds().max(0) as u64);
    HeaderValue::from_str(&httpdate::fmt_http_date(time)).expect("an HTTP date is ASCII")
}

/// Parses a version tag: `W/"3"`, `"3"` or `3`.
pub fn parse_version_tag(tag: &str) -> Option<i64> {
    let t = tag.trim();
    let t = t.strip_prefix("W/").unwrap_or(t);
    let t = t
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t);
    t.parse().ok()
}

/// The version an `If-Match` header demands (400 when it is not a version tag).
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    match headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => Ok(None),
        Some(tag) => parse_version_tag(tag).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "If-Match must be a version ETag such as W/\"1\", not '{tag}'"
            ))
        }),
    }
}

/// Whether `If-None-Match` names the current version (or `*`), so a read can answer 304.
pub fn none_match_hits(headers: &HeaderMap, version: i64) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == "*" || parse_version_tag(tag) == Some(version))
        })
}

/// Whether the resource is unchanged since `If-Modified-Since` (second precision).
pub fn not_modified_since(headers: &HeaderMap, last_updated: Instant) -> bool {
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some_and(|since| last_updated.unix_seconds() <= since.as_secs() as i64)
}

/// What a client wants back from a write (`Prefer: return=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    Minimal,
    Representation,
    OperationOutcome,
}

/// Reads `Prefer: return=...` (default: the representation).
pub fn prefer_return(headers: &HeaderMap) -> Return {
    for value in headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for part in value.split([',', ';']) {
            match part.trim().to_ascii_lowercase().as_str() {
                "return=minimal" => return Return::Minimal,
                "return=operationoutcome" => return Return::OperationOutcome,
                "return=representation" => return Return::Representation,
                _ => {}
            }
        }
    }
    Return::Representation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_tags() {
        assert_eq!(parse_version_tag("W/\"3\""), Some(3));
        assert_eq!(parse_version_tag("\"12\""), Some(12));
        assert_eq!(parse_version_tag("7"), Some(7));
        assert_eq!(parse_version_tag("W/\"x\""), None);
    }

    #[test]
    fn prefer() {
        let mut h = HeaderMap::new();
        assert_eq!(prefer_return(&h), Return::Representation);
        h.insert("prefer", HeaderValue::from_static("return=minimal"));
        assert_eq!(prefer_return(&h), Return::Minimal);
        h.insert(
            "prefer",
            HeaderValue::from_static("handling=strict, return=OperationOutcome"),
        );
        assert_eq!(prefer_return(&h), Return::OperationOutcome);
    }

    #[test]
    fn http_dates_round_trip() {
        let i = Instant(1_700_000_000_500_000);
        let mut h = HeaderMap::new();
        h.insert(header::IF_MODIFIED_SINCE, http_date(i));
        assert!(not_modified_since(&h, i));
        assert!(!not_modified_since(&h, Instant(i.0 + 1_000_000)));
    }
}
