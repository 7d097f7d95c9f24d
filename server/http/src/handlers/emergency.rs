//! Emergency share links: the patient's API under `/api/emergency-links` (a first-party bearer
//! token of a patient) and the public view `/emergency/{token}` (no login; a FHIR Bundle, or a
//! page for browsers). The rules are in [`curanet_auth::sharing`], the slice in
//! [`crate::emergency`]; these handlers parse, call them and map the result.
//!
//! Every answer is `Cache-Control: no-store`; the view adds `Referrer-Policy: no-referrer` and
//! `X-Robots-Tag: noindex`. The link token is never logged (the request span shows
//! `/emergency/{token}` literally, see [`loggable_path`]).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use curanet_auth::accounts::AccountError;
use curanet_auth::sharing::{
    LinkRequest, OpenError, Opened, SharingError, Visitor, access_json, link_json,
};
use curanet_engine::EngineError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::MAX_FORM_BYTES;
use super::accounts::{AccountFailure, Authenticated, ClientMeta};
use super::oauth::no_store_json;
use crate::app::AppState;
use crate::emergency;
use crate::server::unix_now;

/// Largest JSON body accepted.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// The header that carries a link's passcode.
const PASSCODE_HEADER: &str = "x-passcode";
/// The header that names the recipient (the form field is `recipient`).
const RECIPIENT_HEADER: &str = "x-recipient";

/// The routes (outside `/fhir`: the FHIR access check leaves them alone).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/emergency-links", post(create).get(list))
        .route("/api/emergency-links/{id}", delete(revoke))
        .route("/api/emergency-links/{id}/accesses", get(accesses))
        .route("/emergency/{token}", get(view).post(view_with_form))
}

/// The path as the request log shows it: a link token is replaced by `{token}`.
pub fn loggable_path(path: &str) -> &str {
    if path.starts_with("/emergency/") {
        "/emergency/{token}"
    } else {
        path
    }
}

/// A [`SharingError`] as an answer of the patient's API.
struct Failure(SharingError);

impl From<SharingError> for Failure {
    fn from(e: SharingError) -> Self {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            SharingError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            SharingError::Forbidden(_) => StatusCode::FORBIDDEN,
            SharingError::NotFound => StatusCode::NOT_FOUND,
            SharingError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let description = if status.is_server_error() {
            tracing::error!(error = %self.0, "emergency link request failed");
            "the server could not complete the request".to_string()
        } else {
            self.0.to_string()
        };
        no_store_json(
            status,
            &json!({"error": self.0.code(), "error_description": description}),
        )
    }
}

type Answer = Result<Response, Response>;

/// The account behind the bearer token (a full token, not a 2FA-enrollment one).
fn caller(Authenticated(caller): Authenticated) -> Result<String, AccountFailure> {
    if caller.enrollment_only {
        return Err(AccountFailure(AccountError::Forbidden(
            "finish enrolling two-factor authentication first".into(),
        )));
    }
    Ok(caller.account_id)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    scope: Vec<String>,
    expires_in: i64,
    #[serde(default)]
    passcode: Option<String>,
    #[serde(default)]
    label: Option<String>,
}

/// A JSON body (a missing Content-Type is taken as JSON).
fn parse_json<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, SharingError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if let Some(ct) = content_type
        && ct != "application/json"
        && !ct.ends_with("+json")
    {
        return Err(SharingError::InvalidInput(
            "the body must be application/json".into(),
        ));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(SharingError::InvalidInput("the body is too large".into()));
    }
    serde_json::from_slice(body)
        .map_err(|e| SharingError::InvalidInput(format!("the body is not the expected JSON: {e}")))
}

/// `POST /api/emergency-links`: 201 `{shareUrl, shareId, expiresAt, scope, label}`.
async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let account_id = caller(auth).map_err(IntoResponse::into_response)?;
    let run = async {
        // Who may share is decided before the body is read.
        state.emergency.patient_of(&account_id).await?;
        let body: CreateBody = parse_json(&headers, &body)?;
        let request = LinkRequest {
            scope: body.scope,
            expires_in_hours: body.expires_in,
            passcode: body.passcode,
            label: body.label,
        };
        let now = unix_now();
        let created = state.emergency.create(&account_id, &request, now).await?;
        let share_url = format!(
            "{}/emergency/{}",
            state.authority.endpoints().issuer,
            created.token
        );
        let answer = json!({
            "shareUrl": share_url,
            "shareId": created.id,
            "expiresAt": created.expires_at,
            "scope": created.sections.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "label": created.label,
            "hasPasscode": request.passcode.is_some(),
        });
        let mut response = no_store_json(StatusCode::CREATED, &answer);
        if let Ok(location) = HeaderValue::from_str(&format!("/api/emergency-links/{}", created.id))
        {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok::<_, SharingError>(response)
    };
    run.await.map_err(|e| Failure(e).into_response())
}

/// `GET /api/emergency-links`: `{"links": [...]}`, newest first.
async fn list(State(state): State<AppState>, auth: Authenticated) -> Answer {
    let account_id = caller(auth).map_err(IntoResponse::into_response)?;
    let now = unix_now();
    let run = async {
        let links = state.emergency.list(&account_id).await?;
        let links: Vec<Value> = links.iter().map(|l| link_json(l, now)).collect();
        Ok::<_, SharingError>(no_store_json(StatusCode::OK, &json!({"links": links})))
    };
    run.await.map_err(|e| Failure(e).into_response())
}

/// `DELETE /api/emergency-links/{id}`: 204 (also when it was revoked already).
async fn revoke(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Answer {
    let account_id = caller(auth).map_err(IntoResponse::into_response)?;
    state
        .emergency
        .revoke(&account_id, &id, unix_now())
        .await
        .map_err(|e| Failure(e).into_response())?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::CACHE_CONTROL, "no-store")],
    )
        .into_response())
}

/// `GET /api/emergency-links/{id}/accesses`: `{"shareId", "accesses": [...]}`, newest first.
async fn accesses(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Answer {
    let account_id = caller(auth).map_err(IntoResponse::into_response)?;
    let uses = state
        .emergency
        .accesses(&account_id, &id)
        .await
        .map_err(|e| Failure(e).into_response())?;
    let uses: Vec<Value> = uses.iter().map(access_json).collect();
    Ok(no_store_json(
        StatusCode::OK,
        &json!({"shareId": id, "accesses": uses}),
    ))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `GET /emergency/{token}`: the passcode in `X-Passcode`, a recipient name in `X-Recipient`.
async fn view(
    State(state): State<AppState>,
    Path(token): Path<String>,
    meta: ClientMeta,
    headers: HeaderMap,
) -> Response {
    let passcode = header_text(&headers, PASSCODE_HEADER);
    let recipient = header_text(&headers, RECIPIENT_HEADER);
    open(&state, &token, passcode, recipient, meta, &headers).await
}

#[derive(Deserialize, Default)]
struct PasscodeBody {
    #[serde(default)]
    passcode: Option<String>,
    #[serde(default)]
    recipient: Option<String>,
}

/// `POST /emergency/{token}`: the page's form (`passcode`, `recipient`), or the same fields
/// as JSON.
async fn view_with_form(
    State(state): State<AppState>,
    Path(token): Path<String>,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|ct| ct == "application/json" || ct.ends_with("+json"));
    let fields = if is_json {
        let parsed = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => parse_json::<PasscodeBody>(&headers, &bytes),
            Err(_) => Err(SharingError::InvalidInput("the body is too large".into())),
        };
        match parsed {
            Ok(fields) => fields,
            Err(e) => {
                return refused(StatusCode::BAD_REQUEST, &e.to_string(), None, &headers);
            }
        }
    } else {
        match super::form_pairs(&headers, body, MAX_FORM_BYTES).await {
            Ok(pairs) => {
                let field = |name: &str| {
                    pairs
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                PasscodeBody {
                    passcode: field("passcode"),
                    recipient: field("recipient"),
                }
            }
            Err(e) => {
                let status = match e {
                    super::FormError::NotForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    super::FormError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                };
                return refused(status, &e.to_string(), None, &headers);
            }
        }
    };
    open(
        &state,
        &token,
        fields
            .passcode
            .or_else(|| header_text(&headers, PASSCODE_HEADER)),
        fields
            .recipient
            .or_else(|| header_text(&headers, RECIPIENT_HEADER)),
        meta,
        &headers,
    )
    .await
}

/// Opens the link and answers with the slice, or refuses.
async fn open(
    state: &AppState,
    token: &str,
    passcode: Option<String>,
    recipient: Option<String>,
    meta: ClientMeta,
    headers: &HeaderMap,
) -> Response {
    let visitor = Visitor {
        ip: meta.ip,
        user_agent: meta.device,
        recipient,
    };
    let opened = state
        .emergency
        .open(token, passcode.as_deref(), &visitor, unix_now())
        .await;
    match opened {
        Ok(opened) => {
            // The patient is told of every opening (in the app and by mail).
            let notice = curanet_auth::consent_workflow::Notice::share_link_opened(
                &opened.patient_id,
                visitor.recipient.as_deref(),
                visitor.ip.as_deref().unwrap_or("an unknown address"),
            );
            state.notifier.send(notice).await;
            show(state, &opened, headers).await
        }
        Err(OpenError::NotFound) => not_found(headers),
        Err(OpenError::PasscodeRequired { remaining }) => passcode_refused(
            "passcode_required",
            "this link needs a passcode",
            remaining,
            false,
            headers,
        ),
        Err(OpenError::WrongPasscode { remaining: 0 }) => {
            // The attempt that locked the link: from now on it is not found.
            passcode_refused(
                "invalid_passcode",
                "wrong passcode; the link is locked now",
                0,
                true,
                headers,
            )
        }
        Err(OpenError::WrongPasscode { remaining }) => passcode_refused(
            "invalid_passcode",
            "wrong passcode",
            remaining,
            true,
            headers,
        ),
        Err(OpenError::Busy) => {
            let mut response = refused(
                StatusCode::TOO_MANY_REQUESTS,
                "other passcode attempts are being checked; try again shortly",
                Some(emergency::busy_page()),
                headers,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Err(OpenError::Failed(e)) => {
            tracing::error!(error = %e, "an emergency link could not be opened");
            server_error(headers)
        }
    }
}

/// The slice as a Bundle or a page.
async fn show(state: &AppState, opened: &Opened, headers: &HeaderMap) -> Response {
    let base = state.authority.endpoints().fhir_base.clone();
    let bundle = match emergency::slice(&state.engine, opened, &base).await {
        Ok(bundle) => bundle,
        Err(EngineError::NotFound(_) | EngineError::Gone(_)) => return not_found(headers),
        Err(e) => {
            tracing::error!(error = %e, link = %opened.link_id, "the emergency slice failed");
            return server_error(headers);
        }
    };
    if emergency::prefers_html(headers) {
        html(StatusCode::OK, emergency::page(&bundle, opened))
    } else {
        protect(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
                bundle.to_string(),
            )
                .into_response(),
        )
    }
}

/// 404, the same for unknown, expired, revoked and locked links.
fn not_found(headers: &HeaderMap) -> Response {
    refused(
        StatusCode::NOT_FOUND,
        "this link is not valid",
        Some(emergency::not_found_page()),
        headers,
    )
}

fn server_error(headers: &HeaderMap) -> Response {
    refused(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the server could not complete the request",
        Some(crate::pages::error(
            "The server could not show this information.",
        )),
        headers,
    )
}

/// 401 with the remaining attempts: JSON, or the passcode form.
fn passcode_refused(
    code: &str,
    description: &str,
    remaining: i64,
    wrong: bool,
    headers: &HeaderMap,
) -> Response {
    let mut response = if emergency::prefers_html(headers) {
        html(
            StatusCode::UNAUTHORIZED,
            emergency::passcode_page(remaining, wrong),
        )
    } else {
        protect(no_store_json(
            StatusCode::UNAUTHORIZED,
            &json!({
                "error": code,
                "error_description": description,
                "remainingAttempts": remaining,
            }),
        ))
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Passcode realm=\"emergency\""),
    );
    response
}

/// A refusal as JSON `{"error", "error_description"}`, or as `page` for browsers.
fn refused(
    status: StatusCode,
    description: &str,
    page: Option<String>,
    headers: &HeaderMap,
) -> Response {
    match page {
        Some(page) if emergency::prefers_html(headers) => html(status, page),
        _ => {
            let code = match status {
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::TOO_MANY_REQUESTS => "slow_down",
                s if s.is_server_error() => "server_error",
                _ => "invalid_request",
            };
            protect(no_store_json(
                status,
                &json!({"error": code, "error_description": description}),
            ))
        }
    }
}

/// An HTML page that no cache keeps, no other site frames and no script runs in.
fn html(status: StatusCode, page: String) -> Response {
    let response = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
            ),
        ],
        page,
    )
        .into_response();
    protect(response)
}

/// The headers of every answer of the view: not cached, not indexed, no referrer.
fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_never_reaches_the_request_log() {
        assert_eq!(
            loggable_path("/emergency/abcDEF123_-secret"),
            "/emergency/{token}"
        );
        assert_eq!(loggable_path("/fhir/Patient/1"), "/fhir/Patient/1");
        assert_eq!(
            loggable_path("/api/emergency-links/x"),
            "/api/emergency-links/x"
        );
    }
}
