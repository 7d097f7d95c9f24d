//! Content negotiation: JSON only (`application/fhir+json`, `application/json`), `_format`,
//! `_pretty`, and the request Content-Type of writes.

use axum::http::{HeaderMap, header};

use crate::error::ApiError;

/// The representation a response uses.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// Answer with `application/json` instead of `application/fhir+json` (the client asked so).
    pub plain_json: bool,
    /// Indent the JSON (`_pretty=true`).
    pub pretty: bool,
}

impl Format {
    /// The response Content-Type.
    pub fn content_type(self) -> &'static str {
        if self.plain_json {
            "application/json; charset=utf-8"
        } else {
            "application/fhir+json; charset=utf-8"
        }
    }
}

/// The media type of a header value without parameters, lower-cased.
fn essence(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json(media: &str) -> bool {
    matches!(
        media,
        "application/fhir+json" | "application/json" | "json" | "text/json"
    )
}

/// Decides the response format from `_format`, `_pretty` and `Accept` (406 when only XML or
/// another unsupported type is acceptable).
pub fn negotiate(
    headers: &HeaderMap,
    format_param: Option<&str>,
    pretty: Option<&str>,
) -> Result<Format, ApiError> {
    let pretty = matches!(pretty, Some("true"));
    if let Some(f) = format_param {
        let media = essence(f);
        return if is_json(&media) {
            Ok(Format {
                plain_json: media == "application/json",
                pretty,
            })
        } else {
            Err(ApiError::not_acceptable(format!(
                "_format={f} is not supported: this server speaks JSON (application/fhir+json)"
            )))
        };
    }
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Format {
            plain_json: false,
            pretty,
        });
    };
    let mut plain_json = false;
    let mut acceptable = false;
    for range in accept.split(',') {
        let quality_zero = range.split(';').skip(1).any(|p| {
            let p = p.trim();
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        if quality_zero {
            continue;
        }
        match essence(range).as_str() {
            "application/fhir+json" | "*/*" | "application/*" | "" => acceptable = true,
            "application/json" | "text/json" => {
                acceptable = true;
                plain_json = !accept.contains("application/fhir+json");
            }
            _ => {}
        }
    }
    if acceptable {
        Ok(Format { plain_json, pretty })
    } else {
        Err(ApiError::not_acceptable(format!(
            "Accept: {accept} cannot be satisfied: this server answers application/fhir+json"
        )))
    }
}

/// Checks the Content-Type of a request body (415 unless it is FHIR JSON or JSON).
pub fn check_body_type(headers: &HeaderMap, allowed_extra: &[&str]) -> Result<(), ApiError> {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::unsupported_media(
            "a request body needs Content-Type: application/fhir+json".into(),
        ));
    };
    let media = essence(ct);
    if is_json(&media) || allowed_extra.contains(&media.as_str()) {
        Ok(())
    } else {
        Err(ApiError::unsupported_media(format!(
            "Content-Type {ct} is not supported: send application/fhir+json"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accepts_json_flavours() {
        assert!(negotiate(&HeaderMap::new(), None, None).is_ok());
        assert!(
            negotiate(
                &accept("application/fhir+json; fhirVersion=4.3"),
                None,
                None
            )
            .is_ok()
        );
        assert!(negotiate(&accept("text/html, */*;q=0.8"), None, None).is_ok());
        assert!(
            negotiate(&accept("application/json"), None, None)
                .unwrap()
                .plain_json
        );
        assert!(negotiate(&accept("application/fhir+xml"), None, None).is_err());
        assert!(negotiate(&accept("application/json;q=0"), None, None).is_err());
        assert!(negotiate(&accept("application/fhir+xml"), Some("json"), None).is_ok());
        assert!(negotiate(&HeaderMap::new(), Some("xml"), None).is_err());
        assert!(
            negotiate(&HeaderMap::new(), None, Some("true"))
                .unwrap()
                .pretty
        );
    }
}
