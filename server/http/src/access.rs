//! The resource-server check on `/fhir` (with `--require-auth`): the bearer token is verified
//! against the Authority's key ring and its `system/` scopes are enforced per interaction.
//! The decisions are `curanet_auth::access`; this module only maps requests onto them.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use curanet_auth::access::{
    authorize_operation, authorize_request, missing_scope, single_condition_set, unsupported_token,
};
use curanet_auth::scope::{Conditions, Decision, Interaction, Level, OperationTarget, Scopes};
use curanet_auth::token::AccessClaims;
use curanet_fhir::{Issue, IssueType, OperationOutcome};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;
use crate::handlers::read_body;
use crate::server::unix_now;

/// The verified token of a request, for handlers that need it (audit, later consents).
#[derive(Debug, Clone)]
pub struct VerifiedAccess {
    /// The token's claims.
    pub claims: AccessClaims,
    /// Its parsed scopes.
    pub scopes: Scopes,
}

/// What a request (or a Bundle entry) asks to do, as far as scopes are concerned.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    /// Needs no token.
    Public,
    /// One interaction on a type (`*` at system level), with the instance id when there is one.
    Interaction(Interaction, String, Option<String>),
    /// A conditional write: the write and a search of the type.
    Conditional(Interaction, String),
    /// `$name` on the system, a type or an instance.
    Operation(String, Option<String>, Option<String>),
    /// `POST /fhir` with a batch or transaction Bundle.
    Bundle,
    /// Nothing we can decide (an unknown route, a percent-encoded path): refused, never guessed.
    Unknown,
}

/// Maps a method and the path below `/fhir` onto what it asks to do.
fn classify(method: &Method, path: &str) -> Target {
    use Interaction::*;
    // Types, ids and operation names never need escapes; an escaped path could name a type
    // other than the one we would check.
    if path.contains('%') {
        return Target::Unknown;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // axum answers HEAD with the GET route.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let t = |s: &str| s.to_string();
    let op = |s: &str| s.strip_prefix('$').map(str::to_string);
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["metadata"]) | (_, [".well-known", ..]) => Target::Public,
        ("POST", []) => Target::Bundle,
        ("GET", []) | ("POST", ["_search"]) => Target::Interaction(SearchSystem, t("*"), None),
        ("GET", ["_history"]) => Target::Interaction(HistorySystem, t("*"), None),
        (_, [name]) if name.starts_with('$') => Target::Operation(op(name).unwrap(), None, None),
        ("POST", [ty]) => Target::Interaction(Create, t(ty), None),
        ("GET", [ty]) | ("POST", [ty, "_search"]) => Target::Interaction(SearchType, t(ty), None),
        ("PUT", [ty]) => Target::Conditional(Update, t(ty)),
        ("DELETE", [ty]) => Target::Conditional(Delete, t(ty)),
        ("PATCH", [ty]) => Target::Conditional(Patch, t(ty)),
        ("GET", [ty, "_history"]) => Target::Interaction(HistoryType, t(ty), None),
        (_, [ty, name]) if name.starts_with('$') => {
            Target::Operation(op(name).unwrap(), Some(t(ty)), None)
        }
        ("GET", [ty, id]) => Target::Interaction(Read, t(ty), Some(t(id))),
        ("PUT", [ty, id]) => Target::Interaction(Update, t(ty), Some(t(id))),
        ("DELETE", [ty, id]) => Target::Interaction(Delete, t(ty), Some(t(id))),
        ("PATCH", [ty, id]) => Target::Interaction(Patch, t(ty), Some(t(id))),
        (_, [ty, id, name]) if name.starts_with('$') => {
            Target::Operation(op(name).unwrap(), Some(t(ty)), Some(t(id)))
        }
        ("GET", [ty, id, "_history"]) => Target::Interaction(HistoryInstance, t(ty), Some(t(id))),
        ("GET", [ty, id, "_history", _]) => Target::Interaction(Vread, t(ty), Some(t(id))),
        _ => Target::Unknown,
    }
}

/// A refusal: 403 with an OperationOutcome (code `forbidden`).
fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, IssueType::Forbidden, message)
}

/// 403 naming the scope that would have permitted the interaction.
fn missing(interaction: Interaction, resource_type: &str) -> ApiError {
    forbidden(format!(
        "the token's scopes do not permit {} on {resource_type}: it needs {}",
        interaction.code(),
        missing_scope(interaction, resource_type)
    ))
}

/// What an allowed request must be narrowed by.
#[derive(Debug, Default)]
struct Narrowing {
    /// Search pairs ANDed into a type-level search (granular scopes).
    pairs: Vec<(String, String)>,
    /// A read allowed only if the resource matches the granular scopes.
    instance: Option<InstanceCheck>,
}

/// A read under granular scopes: allowed only if `type/id` matches one of the AND-sets.
#[derive(Debug)]
struct InstanceCheck {
    resource_type: String,
    id: String,
    sets: Vec<Conditions>,
}

/// Decides `target` for `scopes`: the narrowing to apply, or the 403.
fn decide(scopes: &Scopes, target: &Target) -> Result<Narrowing, ApiError> {
    use Interaction::*;
    let unrestricted = |i: Interaction, ty: &str| -> Result<(), ApiError> {
        match authorize_request(scopes, i, ty) {
            Decision::Unrestricted => Ok(()),
            Decision::Denied => Err(missing(i, ty)),
            // A write or a history cannot be filtered by search parameters: deny, never widen.
            Decision::Restricted(_) => Err(forbidden(format!(
                "the token's granular scopes on {ty} do not permit {} (only unrestricted scopes do)",
                i.code()
            ))),
        }
    };
    match target {
        Target::Public | Target::Bundle => Ok(Narrowing::default()),
        Target::Unknown => Err(forbidden(
            "this request is not an interaction the token's scopes can be checked for",
        )),
        Target::Interaction(i @ (SearchType | SearchSystem), ty, _) => {
            let decision = authorize_request(scopes, *i, ty);
            if decision.is_denied() {
                return Err(missing(*i, ty));
            }
            match single_condition_set(&decision) {
                Some(pairs) => Ok(Narrowing {
                    pairs,
                    instance: None,
                }),
                None => Err(forbidden(format!(
                    "the token's granular scopes on {ty} are several alternative restrictions, which one search cannot express; request one type-level search per scope"
                ))),
            }
        }
        Target::Interaction(Read, ty, Some(id)) => match authorize_request(scopes, Read, ty) {
            Decision::Unrestricted => Ok(Narrowing::default()),
            Decision::Denied => Err(missing(Read, ty)),
            Decision::Restricted(sets) => Ok(Narrowing {
                pairs: Vec::new(),
                instance: Some(InstanceCheck {
                    resource_type: ty.clone(),
                    id: id.clone(),
                    sets,
                }),
            }),
        },
        Target::Interaction(i, ty, _) => unrestricted(*i, ty).map(|()| Narrowing::default()),
        Target::Conditional(i, ty) => {
            unrestricted(*i, ty)?;
            unrestricted(SearchType, ty)?;
            Ok(Narrowing::default())
        }
        Target::Operation(name, ty, id) => {
            let on = match (ty, id) {
                (None, _) => OperationTarget::System,
                (Some(t), None) => OperationTarget::Type(t),
                (Some(t), Some(_)) => OperationTarget::Instance(t),
            };
            let shown = ty.as_deref().unwrap_or("*");
            if !authorize_operation(scopes, name, on).is_unrestricted() {
                return Err(forbidden(format!(
                    "the token's scopes do not permit ${name} on {shown}"
                )));
            }
            // Operations returning other types need those types too; we check them all at once.
            let results = curanet_auth::scope::operation_rule(name, on)
                .map(|r| r.on_results)
                .unwrap_or_default();
            let over = if matches!(name.as_str(), "lastn") {
                shown
            } else {
                "*"
            };
            if !results.is_empty()
                && !scopes
                    .decide_all(Level::System, over, results)
                    .is_unrestricted()
            {
                return Err(forbidden(format!(
                    "${name} returns resources of many types: it needs system/{over}.rs"
                )));
            }
            Ok(Narrowing::default())
        }
    }
}

/// `_include` / `_revinclude` values whose resources the token may not read: removed from
/// `pairs` and returned, so the searchset reports them instead of leaking them.
fn drop_unreadable_includes(scopes: &Scopes, pairs: &mut Vec<(String, String)>) -> Vec<String> {
    let mut dropped = Vec::new();
    pairs.retain(|(name, value)| {
        let base = name.split(':').next().unwrap_or("");
        let parts: Vec<&str> = value.split(':').collect();
        let returned = match base {
            // `Source:param:Target` returns Target; without one, any type it references.
            "_include" => parts.get(2).copied().unwrap_or("*"),
            "_revinclude" => parts.first().copied().unwrap_or("*"),
            _ => return true,
        };
        let returned = if returned.is_empty() { "*" } else { returned };
        if authorize_request(scopes, Interaction::Read, returned).is_unrestricted() {
            true
        } else {
            dropped.push(format!("{name}={value}"));
            false
        }
    });
    dropped
}

/// A conditional create also searches (and answers the match it finds), so it needs an
/// unrestricted search and read of the type as well.
fn conditional_create_search(scopes: &Scopes, resource_type: &str) -> Result<(), ApiError> {
    for i in [Interaction::SearchType, Interaction::Read] {
        if !authorize_request(scopes, i, resource_type).is_unrestricted() {
            return Err(missing(i, resource_type));
        }
    }
    Ok(())
}

/// Chains (`subject:Patient.name=`) and `_has` (`_has:Observation:patient:code=`) filter by
/// other types' data, so those types must be searchable without restriction too; a chain link
/// without a `:Type` may reach any type and needs `system/*.s`.
fn check_other_types(scopes: &Scopes, pairs: &[(String, String)]) -> Result<(), ApiError> {
    let searchable = |ty: &str| -> Result<(), ApiError> {
        if authorize_request(scopes, Interaction::SearchType, ty).is_unrestricted() {
            Ok(())
        } else if ty == "*" {
            Err(forbidden(
                "a chain without a :Type modifier may reach any type: name the type (e.g. subject:Patient.name) or use a token with system/*.s",
            ))
        } else {
            Err(missing(Interaction::SearchType, ty))
        }
    };
    for (name, _) in pairs {
        let mut rest = name.as_str();
        while let Some(tail) = rest.strip_prefix("_has:") {
            let mut parts = tail.splitn(3, ':');
            searchable(parts.next().unwrap_or("*"))?;
            parts.next();
            rest = parts.next().unwrap_or("");
        }
        let links: Vec<&str> = rest.split('.').collect();
        for link in &links[..links.len().saturating_sub(1)] {
            searchable(link.split_once(':').map_or("*", |(_, ty)| ty))?;
        }
    }
    Ok(())
}

/// Whether a path below the server root is served without a token.
fn is_public(path: &str) -> bool {
    !(path == "/fhir" || path.starts_with("/fhir/"))
        || path == "/fhir/metadata"
        || path.starts_with("/fhir/.well-known/")
}

/// 401 without a usable token: `login` when none was sent, `invalid_token` otherwise.
fn unauthorized(sent: bool, message: &str) -> Response {
    let (challenge, code) = if sent {
        (
            "Bearer realm=\"curanet\", error=\"invalid_token\"",
            IssueType::Login,
        )
    } else {
        ("Bearer realm=\"curanet\"", IssueType::Login)
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// The middleware: passes public paths and (with the setting off) everything; otherwise verifies
/// the bearer token, decides the request and narrows it.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.require_auth || is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    let Some(bearer) = bearer else {
        return unauthorized(
            false,
            "this endpoint needs an access token (Authorization: Bearer)",
        );
    };
    let token = match bearer.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return unauthorized(true, "the Authorization header is not a Bearer token"),
    };
    let claims = match state.authority.verify(token, unix_now()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(reason = %e, "access token refused");
            return unauthorized(
                true,
                "the access token is invalid, expired or not for this server",
            );
        }
    };
    let Ok(scopes) = Scopes::parse(&claims.scope) else {
        return unauthorized(true, "the access token's scopes are malformed");
    };
    if let Some(message) = unsupported_token(&scopes) {
        return forbidden(message).into_response();
    }
    match authorize(&state, request, &scopes).await {
        Ok(Admitted {
            mut request,
            dropped,
            refused,
        }) => {
            request
                .extensions_mut()
                .insert(VerifiedAccess { claims, scopes });
            let response = next.run(request).await;
            if !dropped.is_empty() {
                report_dropped(response, &dropped).await
            } else if !refused.is_empty() {
                splice_refused(response, refused).await
            } else {
                response
            }
        }
        Err(Refusal::Error(e)) => e.into_response(),
        Err(Refusal::Response(r)) => *r,
    }
}

/// A request allowed through, as narrowed.
struct Admitted {
    request: Request,
    /// Includes dropped from a search, to be reported in its Bundle.
    dropped: Vec<String>,
    /// A batch's refused entries (position, 403 response entry), to be put back in its answer.
    refused: Vec<(usize, Value)>,
}

impl Admitted {
    fn unchanged(request: Request) -> Self {
        Admitted {
            request,
            dropped: Vec::new(),
            refused: Vec::new(),
        }
    }
}

/// Why a request does not reach its handler.
enum Refusal {
    Error(ApiError),
    /// A complete answer (a batch whose every entry was refused).
    Response(Box<Response>),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Error(e)
    }
}

/// Decides the request and rewrites it as its narrowing needs; returns it with the includes
/// dropped from it.
async fn authorize(
    state: &AppState,
    request: Request,
    scopes: &Scopes,
) -> Result<Admitted, Refusal> {
    let path = request.uri().path().strip_prefix("/fhir").unwrap_or("");
    let target = classify(request.method(), path);
    if target == Target::Bundle {
        return authorize_bundle(state, request, scopes).await;
    }
    let narrowing = decide(scopes, &target)?;
    if let Target::Interaction(Interaction::Create, ty, _) = &target
        && request.headers().contains_key("if-none-exist")
    {
        conditional_create_search(scopes, ty)?;
    }
    if let Target::Conditional(..) = &target {
        let pairs: Vec<(String, String)> = request
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        check_other_types(scopes, &pairs)?;
    }
    if let Some(check) = &narrowing.instance {
        check_instance(state, check).await?;
    }
    let searching = matches!(
        target,
        Target::Interaction(Interaction::SearchType | Interaction::SearchSystem, ..)
    );
    if !searching {
        return Ok(Admitted::unchanged(request));
    }
    // Searches: the URL's pairs and a form body's, narrowed, all moved into the URL.
    let (mut parts, body) = request.into_parts();
    let mut pairs: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let body = if parts.method == Method::POST {
        let bytes = read_body(state, body).await?;
        pairs.extend(form_urlencoded::parse(&bytes).into_owned());
        Body::empty()
    } else {
        body
    };
    pairs.extend(narrowing.pairs);
    check_other_types(scopes, &pairs)?;
    let dropped = drop_unreadable_includes(scopes, &mut pairs);
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish();
    let uri = format!("{}?{query}", parts.uri.path());
    parts.uri = uri
        .parse()
        .map_err(|_| ApiError::bad_request("the search URL cannot be rebuilt".into()))?;
    Ok(Admitted {
        request: Request::from_parts(parts, body),
        dropped,
        refused: Vec::new(),
    })
}

/// Refuses a read outside the granular scopes: the resource must be found by the restricted
/// search `_id=<id>&<pairs>` of one of the AND-sets.
async fn check_instance(state: &AppState, check: &InstanceCheck) -> Result<(), ApiError> {
    for set in &check.sets {
        let mut pairs = vec![("_id".to_string(), check.id.clone())];
        pairs.extend(set.iter().cloned());
        let result = state
            .engine
            .search(&check.resource_type, &pairs, "", false)
            .await?;
        if !result.page.resources.is_empty() {
            return Ok(());
        }
    }
    Err(forbidden(format!(
        "{}/{} is outside what the token's granular scopes permit to read",
        check.resource_type, check.id
    )))
}

/// A Bundle entry's request as a target (its URL relative to the base, or absolute under it,
/// as the engine reads it).
fn entry_target(entry: &Value, base: &str) -> Option<(Target, bool)> {
    let request = entry.get("request")?;
    let method: Method = request.get("method")?.as_str()?.parse().ok()?;
    let url = request.get("url")?.as_str()?;
    let url = url.strip_prefix(base).unwrap_or(url);
    let path = url.split_once('?').map_or(url, |(p, _)| p);
    let conditional_create = method == Method::POST && request.get("ifNoneExist").is_some();
    Some((classify(&method, &format!("/{path}")), conditional_create))
}

/// Decides one Bundle entry; a granular search gets its pairs appended to the entry's URL.
async fn decide_entry(
    state: &AppState,
    scopes: &Scopes,
    base: &str,
    entry: &mut Value,
) -> Result<(), ApiError> {
    let Some((target, conditional_create)) = entry_target(entry, base) else {
        // Malformed entries are the engine's to refuse.
        return Ok(());
    };
    if target == Target::Bundle {
        return Err(forbidden("a Bundle entry cannot be another Bundle"));
    }
    let narrowing = decide(scopes, &target)?;
    if conditional_create && let Target::Interaction(_, ty, _) = &target {
        conditional_create_search(scopes, ty)?;
    }
    if let Some(check) = &narrowing.instance {
        check_instance(state, check).await?;
    }
    if !narrowing.pairs.is_empty()
        && let Some(url) = entry.pointer_mut("/request/url")
    {
        let extra = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&narrowing.pairs)
            .finish();
        let text = url.as_str().unwrap_or("");
        let sep = if text.contains('?') { '&' } else { '?' };
        *url = Value::String(format!("{text}{sep}{extra}"));
    }
    if let Some(url) = entry.pointer_mut("/request/url")
        && let Some(text) = url.as_str()
        && let Some((_, query)) = text.split_once('?')
        && matches!(
            target,
            Target::Interaction(Interaction::SearchType | Interaction::SearchSystem, ..)
                | Target::Conditional(..)
        )
    {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        check_other_types(scopes, &pairs)?;
        let dropped = drop_unreadable_includes(scopes, &mut pairs);
        if !dropped.is_empty() {
            return Err(forbidden(format!(
                "the token's scopes do not permit reading what {} would include",
                dropped.join(", ")
            )));
        }
    }
    Ok(())
}

/// Batch and transaction: every entry is decided. A transaction with a refused entry is
/// refused whole (nothing is written); in a batch each refused entry answers 403 and the others
/// run.
async fn authorize_bundle(
    state: &AppState,
    request: Request,
    scopes: &Scopes,
) -> Result<Admitted, Refusal> {
    let (parts, body) = request.into_parts();
    // The base the engine resolves absolute entry URLs against (as the handlers compute it).
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
    let bytes = read_body(state, body).await?;
    let Ok(mut bundle) = serde_json::from_slice::<Value>(&bytes) else {
        // Not JSON: the handler answers 400 as usual.
        return Ok(Admitted::unchanged(Request::from_parts(
            parts,
            Body::from(bytes),
        )));
    };
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let transaction = kind == "transaction";
    if !transaction && kind != "batch" {
        return Ok(Admitted::unchanged(Request::from_parts(
            parts,
            Body::from(bytes),
        )));
    }
    let mut refused: Vec<(usize, ApiError)> = Vec::new();
    if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
        for (i, entry) in entries.iter_mut().enumerate() {
            if let Err(e) = decide_entry(state, scopes, &base, entry).await {
                if transaction {
                    let message = e
                        .outcome
                        .issues
                        .first()
                        .map(|i| i.diagnostics.clone())
                        .unwrap_or_default();
                    return Err(forbidden(format!(
                        "transaction entry {i} is not permitted, so nothing was written: {message}"
                    ))
                    .into());
                }
                refused.push((i, e));
            }
        }
    }
    if refused.is_empty() {
        let body = Body::from(Bytes::from(bundle.to_string()));
        return Ok(Admitted::unchanged(Request::from_parts(parts, body)));
    }
    // The batch runs without the refused entries; their 403s are put back in place after.
    let entries = bundle["entry"]
        .as_array_mut()
        .expect("entries were decided");
    let refused_at: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
    let kept: Vec<Value> = entries
        .drain(..)
        .enumerate()
        .filter(|(i, _)| !refused_at.contains(i))
        .map(|(_, e)| e)
        .collect();
    let refused: Vec<(usize, Value)> = refused
        .into_iter()
        .map(|(i, e)| (i, refused_entry(e)))
        .collect();
    if kept.is_empty() {
        let response = json!({
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": refused.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        });
        let format = crate::negotiation::Format {
            plain_json: false,
            pretty: false,
        };
        let response = crate::handlers::json_response(StatusCode::OK, format, &response);
        return Err(Refusal::Response(Box::new(response)));
    }
    *entries = kept;
    let body = Body::from(Bytes::from(bundle.to_string()));
    Ok(Admitted {
        request: Request::from_parts(parts, body),
        dropped: Vec::new(),
        refused,
    })
}

/// A batch-response entry for a refused entry.
fn refused_entry(e: ApiError) -> Value {
    json!({
        "response": {
            "status": "403 Forbidden",
            "outcome": e.outcome.to_json(),
        }
    })
}

/// Adds the dropped includes to the searchset's OperationOutcome entry (made if absent).
async fn report_dropped(response: Response, dropped: &[String]) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut bundle) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let issues: Vec<Value> = dropped
        .iter()
        .map(|d| {
            Issue::warning(
                IssueType::Forbidden,
                format!(
                    "{d} was not applied: the token's scopes do not permit reading what it includes"
                ),
            )
        })
        .map(|i| OperationOutcome::single(i).to_json()["issue"][0].clone())
        .collect();
    let entries = bundle
        .as_object_mut()
        .map(|b| b.entry("entry").or_insert_with(|| json!([])));
    if let Some(Value::Array(entries)) = entries {
        let outcome = entries
            .iter_mut()
            .find(|e| e.pointer("/search/mode").and_then(Value::as_str) == Some("outcome"));
        match outcome.and_then(|e| e.pointer_mut("/resource/issue")) {
            Some(Value::Array(existing)) => existing.extend(issues),
            _ => entries.push(json!({
                "resource": {"resourceType": "OperationOutcome", "issue": issues},
                "search": {"mode": "outcome"},
            })),
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bundle.to_string()))
}

/// Puts a batch's refused entries back in their places in the batch-response.
async fn splice_refused(response: Response, refused: Vec<(usize, Value)>) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut bundle) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
        for (i, entry) in refused {
            let at = i.min(entries.len());
            entries.insert(at, entry);
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bundle.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(text: &str) -> Scopes {
        Scopes::parse(text).unwrap()
    }

    #[test]
    fn requests_map_onto_interactions() {
        use Interaction::*;
        let i = |i, t: &str, id: Option<&str>| Target::Interaction(i, t.into(), id.map(Into::into));
        let cases = [
            (Method::GET, "/Patient/1", i(Read, "Patient", Some("1"))),
            (Method::HEAD, "/Patient/1", i(Read, "Patient", Some("1"))),
            (
                Method::GET,
                "/Patient/1/_history/2",
                i(Vread, "Patient", Some("1")),
            ),
            (
                Method::GET,
                "/Patient/1/_history",
                i(HistoryInstance, "Patient", Some("1")),
            ),
            (
                Method::GET,
                "/Patient/_history",
                i(HistoryType, "Patient", None),
            ),
            (Method::GET, "/_history", i(HistorySystem, "*", None)),
            (Method::GET, "/Patient", i(SearchType, "Patient", None)),
            (
                Method::POST,
                "/Patient/_search",
                i(SearchType, "Patient", None),
            ),
            (Method::GET, "/", i(SearchSystem, "*", None)),
            (Method::POST, "/Patient", i(Create, "Patient", None)),
            (Method::PUT, "/Patient/1", i(Update, "Patient", Some("1"))),
            (Method::PATCH, "/Patient/1", i(Patch, "Patient", Some("1"))),
            (
                Method::DELETE,
                "/Patient/1",
                i(Delete, "Patient", Some("1")),
            ),
            (
                Method::PUT,
                "/Patient",
                Target::Conditional(Update, "Patient".into()),
            ),
            (Method::POST, "/", Target::Bundle),
            (Method::GET, "/metadata", Target::Public),
            (
                Method::GET,
                "/Patient/1/$everything",
                Target::Operation(
                    "everything".into(),
                    Some("Patient".into()),
                    Some("1".into()),
                ),
            ),
            (Method::GET, "/Pati%65nt/1", Target::Unknown),
            (Method::GET, "/a/b/c/d/e", Target::Unknown),
        ];
        for (method, path, expected) in cases {
            assert_eq!(classify(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn decisions_name_the_missing_scope_and_never_widen() {
        let patients = scopes("system/Patient.rs");
        let create = Target::Interaction(Interaction::Create, "Patient".into(), None);
        let e = decide(&patients, &create).unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.outcome.issues[0].diagnostics.contains("system/Patient.c"));
        assert!(decide(&patients, &Target::Unknown).is_err());
        let everything = Target::Operation("everything".into(), Some("Patient".into()), None);
        assert!(decide(&patients, &everything).is_err());

        let lab = scopes("system/Observation.rs?category=laboratory");
        let search = Target::Interaction(Interaction::SearchType, "Observation".into(), None);
        assert_eq!(
            decide(&lab, &search).unwrap().pairs,
            vec![("category".to_string(), "laboratory".to_string())]
        );
        let two = scopes(
            "system/Observation.rs?category=laboratory system/Observation.rs?category=vital-signs",
        );
        assert!(decide(&two, &search).is_err());
        let history = Target::Interaction(Interaction::HistoryType, "Observation".into(), None);
        assert!(decide(&lab, &history).is_err());
        let read = Target::Interaction(Interaction::Read, "Observation".into(), Some("1".into()));
        assert!(decide(&lab, &read).unwrap().instance.is_some());
    }

    #[test]
    fn chains_and_has_need_the_other_types() {
        let pair = |n: &str| vec![(n.to_string(), "x".to_string())];
        let obs = scopes("system/Observation.rs");
        assert!(check_other_types(&obs, &pair("code")).is_ok());
        assert!(check_other_types(&obs, &pair("subject.name")).is_err());
        assert!(check_other_types(&obs, &pair("subject:Patient.name")).is_err());
        assert!(check_other_types(&obs, &pair("_has:Observation:patient:code")).is_ok());
        let both = scopes("system/Observation.rs system/Patient.rs");
        assert!(check_other_types(&both, &pair("subject:Patient.name")).is_ok());
        assert!(check_other_types(&both, &pair("subject.name")).is_err());
        assert!(
            check_other_types(&both, &pair("_has:Observation:patient:_has:Encounter:x:y")).is_err()
        );
        let lab = scopes("system/Patient.rs system/Observation.rs?category=laboratory");
        assert!(check_other_types(&lab, &pair("_has:Observation:patient:code")).is_err());
        assert!(check_other_types(&scopes("system/*.rs"), &pair("subject.name")).is_ok());
    }

    #[test]
    fn includes_of_unreadable_types_are_dropped() {
        let mut pairs = vec![
            ("_revinclude".to_string(), "Observation:subject".to_string()),
            ("_include".to_string(), "Patient:organization".to_string()),
            (
                "_include:iterate".to_string(),
                "Patient:link:Patient".to_string(),
            ),
            ("name".to_string(), "x".to_string()),
        ];
        let dropped = drop_unreadable_includes(&scopes("system/Patient.rs"), &mut pairs);
        assert_eq!(
            dropped,
            vec![
                "_revinclude=Observation:subject",
                "_include=Patient:organization"
            ]
        );
        assert_eq!(pairs.len(), 2);
    }
}
