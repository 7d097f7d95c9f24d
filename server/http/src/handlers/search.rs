//! Type-level search (`GET /fhir/{type}`, `POST /fhir/{type}/_search`) as a `searchset` Bundle.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use curanet_engine::SearchResult;
use curanet_fhir::bundle::{Link, bundle_text, entry_text};
use curanet_fhir::{Issue, IssueType, OperationOutcome};
use serde_json::json;

use super::path::FhirPath;
use super::{FhirContext, read_body, text_response};
use crate::app::AppState;
use crate::error::ApiError;

/// Whether the client asked for `Prefer: handling=strict`.
fn strict(ctx: &FhirContext) -> bool {
    ctx.headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split([',', ';'])
                .any(|p| p.trim().eq_ignore_ascii_case("handling=strict"))
        })
}

/// `GET /fhir/{type}?params`.
pub async fn get(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    respond(&state, &ctx, &rtype, ctx.query.clone()).await
}

/// `POST /fhir/{type}/_search` with form-encoded parameters (and any in the URL).
pub async fn post(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs = form_pairs(&state, &ctx, body).await?;
    respond(&state, &ctx, &rtype, pairs).await
}

/// `GET /fhir?params`: system-level search (`_type` names the types; all when absent).
pub async fn system_get(
    State(state): State<AppState>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let result = state
        .engine
        .search_system(&ctx.query, &ctx.base, strict(&ctx))
        .await?;
    Ok(text_response(ctx.format, searchset(&ctx.base, "", result)))
}

/// `POST /fhir/_search`: system-level search with form-encoded parameters.
pub async fn system_post(
    State(state): State<AppState>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs = form_pairs(&state, &ctx, body).await?;
    let result = state
        .engine
        .search_system(&pairs, &ctx.base, strict(&ctx))
        .await?;
    Ok(text_response(ctx.format, searchset(&ctx.base, "", result)))
}

/// The URL's parameters and those of a form-encoded body.
async fn form_pairs(
    state: &AppState,
    ctx: &FhirContext,
    body: Body,
) -> Result<Vec<(String, String)>, ApiError> {
    let form = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Err(ApiError::unsupported_media(
            "_search takes Content-Type: application/x-www-form-urlencoded".into(),
        ));
    }
    let body = read_body(state, body).await?;
    let mut pairs = ctx.query.clone();
    pairs.extend(form_urlencoded::parse(&body).into_owned());
    Ok(pairs)
}

async fn respond(
    state: &AppState,
    ctx: &FhirContext,
    rtype: &str,
    pairs: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    // The audit trail is searched in its own log, not in the resource tables.
    if rtype == "AuditEvent" {
        let bundle = crate::audit::search(state, &ctx.base, &pairs).await?;
        return Ok(text_response(ctx.format, bundle));
    }
    let result = state
        .engine
        .search(rtype, &pairs, &ctx.base, strict(ctx))
        .await?;
    Ok(text_response(
        ctx.format,
        searchset(&ctx.base, rtype, result),
    ))
}

/// The searchset Bundle of a search (or of an operation that searches) at `{base}/{path}`
/// (`path` empty: a system-level search).
pub(super) fn searchset(base: &str, path: &str, result: SearchResult) -> String {
    let SearchResult {
        page,
        parsed,
        next_cursor,
        previous_cursor,
    } = result;
    let link = |cursor: Option<String>| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &parsed.applied {
            if k != "_count" {
                s.append_pair(k, v);
            }
        }
        s.append_pair("_count", &parsed.spec.count.to_string());
        if let Some(c) = cursor {
            s.append_pair("_cursor", &c);
        }
        if path.is_empty() {
            format!("{base}?{}", s.finish())
        } else {
            format!("{base}/{path}?{}", s.finish())
        }
    };
    let mut links = vec![
        Link {
            relation: "self",
            url: link(None),
        },
        Link {
            relation: "first",
            url: link(None),
        },
    ];
    if let Some(previous) = previous_cursor {
        links.push(Link {
            relation: "previous",
            url: link(Some(previous)),
        });
    }
    if let Some(next) = next_cursor {
        links.push(Link {
            relation: "next",
            url: link(Some(next)),
        });
    }
    let entry = |v: &curanet_storage::StoredVersion, mode: &str| {
        let full_url = format!("{base}/{}/{}", v.resource_type, v.id);
        entry_text(&full_url, v.content.as_deref(), Some(mode))
    };
    let mut entries: Vec<String> = page.resources.iter().map(|v| entry(v, "match")).collect();
    entries.extend(page.included.iter().map(|v| entry(v, "include")));
    let mut issues: Vec<Issue> = parsed
        .ignored
        .iter()
        .map(|(name, reason)| {
            Issue::warning(
                IssueType::NotSupported,
                format!("parameter {name} was not applied: {reason}"),
            )
        })
        .collect();
    if page.included_truncated {
        issues.push(Issue::warning(
            IssueType::TooLong,
            format!(
                "included resources were cut at {}",
                curanet_storage::MAX_INCLUDED
            ),
        ));
    }
    if !issues.is_empty() {
        let outcome = json!({
            "resource": OperationOutcome { issues }.to_json(),
            "search": {"mode": "outcome"}
        });
        entries.push(outcome.to_string());
    }
    bundle_text("searchset", page.total, &links, &entries)
}
