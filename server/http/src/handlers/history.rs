//! The history interactions, as `history` Bundles with keyset paging links.

use axum::extract::State;

use super::path::FhirPath;
use axum::http::StatusCode;
use axum::response::Response;
use curanet_engine::{HistoryPage, HistoryParams};
use curanet_fhir::bundle::{Link, bundle};
use curanet_storage::HistoryScope;
use serde_json::{Map, Value, json};

use super::{FhirContext, json_response, version_url};
use crate::app::AppState;
use crate::error::ApiError;

/// `GET /fhir/_history`.
pub async fn system(State(state): State<AppState>, ctx: FhirContext) -> Result<Response, ApiError> {
    respond(&state, &ctx, HistoryScope::System, "_history").await
}

/// `GET /fhir/{type}/_history`.
pub async fn type_level(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let path = format!("{rtype}/_history");
    respond(&state, &ctx, HistoryScope::Type(rtype), &path).await
}

/// `GET /fhir/{type}/{id}/_history`.
pub async fn instance(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let path = format!("{rtype}/{id}/_history");
    respond(&state, &ctx, HistoryScope::Instance(rtype, id), &path).await
}

async fn respond(
    state: &AppState,
    ctx: &FhirContext,
    scope: HistoryScope,
    path: &str,
) -> Result<Response, ApiError> {
    let params =
        HistoryParams::from_pairs(ctx.query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let page = state.engine.history(scope, &params).await?;
    let link = |cursor: Option<i64>| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.to_pairs(cursor))
            .finish();
        format!("{}/{path}?{query}", ctx.base)
    };
    let mut links = vec![
        Link {
            relation: "self",
            url: link(params.cursor),
        },
        Link {
            relation: "first",
            url: link(None),
        },
    ];
    if let Some(next) = page.next_cursor {
        links.push(Link {
            relation: "next",
            url: link(Some(next)),
        });
    }
    let entries = entries(&ctx.base, page);
    Ok(json_response(
        StatusCode::OK,
        ctx.format,
        &bundle("history", None, &links, entries),
    ))
}

fn entries(base: &str, page: HistoryPage) -> Vec<Value> {
    page.versions
        .into_iter()
        .map(|v| {
            let full_url = format!("{base}/{}/{}", v.resource_type, v.id);
            let request_url = match v.method {
                curanet_storage::Method::Post => v.resource_type.clone(),
                _ => format!("{}/{}", v.resource_type, v.id),
            };
            let mut entry = Map::new();
            entry.insert("fullUrl".into(), json!(full_url));
            if let Some(resource) = v.resource() {
                entry.insert("resource".into(), resource);
            }
            entry.insert(
                "request".into(),
                json!({"method": v.method.as_str(), "url": request_url}),
            );
            entry.insert(
                "response".into(),
                json!({
                    "status": match v.method {
                        curanet_storage::Method::Post => "201 Created",
                        curanet_storage::Method::Delete => "204 No Content",
                        curanet_storage::Method::Put => "200 OK",
                    },
                    "etag": format!("W/\"{}\"", v.version),
                    "lastModified": v.last_updated.to_fhir(),
                    "location": version_url(base, &v),
                }),
            );
            Value::Object(entry)
        })
        .collect()
}
