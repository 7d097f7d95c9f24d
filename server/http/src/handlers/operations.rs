//! Operations: those that answer with a `searchset` Bundle (`Patient/[id]/$everything`,
//! `Patient/$everything`, `Observation/$lastn`) and the `$meta` family, which answer with
//! `Parameters`.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use curanet_engine::{EntryMode, EverythingParams};
use curanet_fhir::bundle::{Link, bundle};
use curanet_fhir::{Issue, IssueType, OperationOutcome};
use curanet_storage::StoredVersion;
use serde_json::{Map, Value, json};

use super::path::FhirPath;
use super::{FhirContext, json_response, read_body};
use crate::app::AppState;
use crate::error::ApiError;
use crate::negotiation::check_body_type;

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

fn entry(base: &str, v: &StoredVersion, mode: &str) -> Value {
    let mut e = Map::new();
    e.insert(
        "fullUrl".into(),
        json!(format!("{base}/{}/{}", v.resource_type, v.id)),
    );
    if let Some(resource) = v.resource() {
        e.insert("resource".into(), resource);
    }
    e.insert("search".into(), json!({"mode": mode}));
    Value::Object(e)
}

/// An `outcome` entry warning about what was not applied (none when all was).
fn outcome_entry(issues: Vec<Issue>) -> Option<Value> {
    (!issues.is_empty()).then(|| {
        json!({
            "resource": OperationOutcome { issues }.to_json(),
            "search": {"mode": "outcome"}
        })
    })
}

fn not_applied(ignored: &[(String, String)]) -> Vec<Issue> {
    ignored
        .iter()
        .map(|(name, reason)| {
            Issue::warning(
                IssueType::NotSupported,
                format!("parameter {name} was not applied: {reason}"),
            )
        })
        .collect()
}

/// The URL's parameters plus those of a `Parameters` body (a POST may have none).
async fn pairs_with_body(
    state: &AppState,
    ctx: &FhirContext,
    body: Body,
) -> Result<Vec<(String, String)>, ApiError> {
    let body = read_body(state, body).await?;
    let mut pairs = ctx.query.clone();
    if !body.iter().all(u8::is_ascii_whitespace) {
        check_body_type(&ctx.headers, &[])?;
        pairs.extend(curanet_engine::parameters_to_pairs(&body)?);
    }
    Ok(pairs)
}

/// `GET|POST /fhir/{type}/{id}/$everything`.
pub async fn everything_instance(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs = pairs_with_body(&state, &ctx, body).await?;
    let path = format!("{rtype}/{id}/$everything");
    everything(&state, &ctx, &rtype, Some(&id), &pairs, &path).await
}

/// `GET|POST /fhir/{type}/$everything`: every patient's compartment together.
pub async fn everything_type(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    let pairs = pairs_with_body(&state, &ctx, body).await?;
    let path = format!("{rtype}/$everything");
    everything(&state, &ctx, &rtype, None, &pairs, &path).await
}

async fn everything(
    state: &AppState,
    ctx: &FhirContext,
    rtype: &str,
    id: Option<&str>,
    pairs: &[(String, String)],
    path: &str,
) -> Result<Response, ApiError> {
    let params = EverythingParams::from_pairs(pairs)?;
    if strict(ctx) && !params.ignored.is_empty() {
        let names: Vec<&str> = params.ignored.iter().map(|(n, _)| n.as_str()).collect();
        return Err(ApiError::bad_request(format!(
            "cannot apply: {}",
            names.join(", ")
        )));
    }
    let page = state.engine.everything(rtype, id, &params).await?;
    let base = &ctx.base;
    let link = |cursor: Option<&str>| {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.to_pairs(cursor))
            .finish();
        format!("{base}/{path}?{query}")
    };
    let mut links = vec![Link {
        relation: "self",
        url: link(params.cursor.as_deref()),
    }];
    if let Some(next) = &page.next_cursor {
        links.push(Link {
            relation: "next",
            url: link(Some(next)),
        });
    }
    let mut entries: Vec<Value> = page
        .entries
        .iter()
        .map(|(v, mode)| {
            let mode = match mode {
                EntryMode::Match => "match",
                EntryMode::Include => "include",
            };
            entry(base, v, mode)
        })
        .collect();
    entries.extend(outcome_entry(not_applied(&params.ignored)));
    Ok(json_response(
        StatusCode::OK,
        ctx.format,
        &bundle("searchset", page.total, &links, entries),
    ))
}

/// `GET /fhir/{type}/$lastn`.
pub async fn lastn(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let result = state
        .engine
        .lastn(&rtype, &ctx.query, &ctx.base, strict(&ctx))
        .await?;
    Ok(super::text_response(
        ctx.format,
        super::search::searchset(&ctx.base, &format!("{rtype}/$lastn"), result),
    ))
}

/// `GET|POST /fhir/$meta`: the tags, security labels and profiles in use on the server.
pub async fn meta_system(
    State(state): State<AppState>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let parameters = state.engine.meta_in_use(None).await?;
    Ok(json_response(StatusCode::OK, ctx.format, &parameters))
}

/// `GET|POST /fhir/{type}/$meta`: those in use on one type.
pub async fn meta_type(
    State(state): State<AppState>,
    FhirPath(rtype): FhirPath<String>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let parameters = state.engine.meta_in_use(Some(&rtype)).await?;
    Ok(json_response(StatusCode::OK, ctx.format, &parameters))
}

/// `GET|POST /fhir/{type}/{id}/$meta`: the resource's meta.
pub async fn meta_instance(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
) -> Result<Response, ApiError> {
    let parameters = state.engine.meta_of(&rtype, &id).await?;
    Ok(json_response(StatusCode::OK, ctx.format, &parameters))
}

/// `POST /fhir/{type}/{id}/$meta-add` with a `Parameters` `meta`: writes a new version.
pub async fn meta_add(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    check_body_type(&ctx.headers, &[])?;
    let body = read_body(&state, body).await?;
    let parameters = state.engine.meta_add(&rtype, &id, &body).await?;
    Ok(json_response(StatusCode::OK, ctx.format, &parameters))
}

/// `POST /fhir/{type}/{id}/$meta-delete` with a `Parameters` `meta`: writes a new version.
pub async fn meta_delete(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
    body: Body,
) -> Result<Response, ApiError> {
    check_body_type(&ctx.headers, &[])?;
    let body = read_body(&state, body).await?;
    let parameters = state.engine.meta_delete(&rtype, &id, &body).await?;
    Ok(json_response(StatusCode::OK, ctx.format, &parameters))
}
