//! `GET|POST /oauth/authorize` and `GET|POST /oauth/manage`: the browser side of the
//! authorization server. The app's request is validated first (an untrusted client or redirect
//! URI gets an error page, other defects a redirect with `error` and `state`); then the user
//! signs in (a session cookie), chooses what to grant and, as a clinician in a standalone
//! launch, picks the patient. The request travels in hidden fields, so any instance can serve
//! any step. Forms are protected against CSRF by a cookie that must match a hidden field.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use curanet_auth::accounts::{AccountError, SignIn};
use curanet_auth::authorize::{
    Approval, AuthorizationRequest, AuthorizeError, AuthorizeParams, consent_choices,
};
use curanet_auth::token::new_opaque_token;
use curanet_storage::{Account, Role};
use serde_json::Value;

use crate::app::AppState;
use crate::handlers::accounts::ClientMeta;
use crate::pages::{self, AppRow, ConsentForm, PatientOption, SignInForm};
use crate::server::unix_now;

/// The browser session cookie (the opaque session token).
const SESSION_COOKIE: &str = "curanet_session";
/// The CSRF cookie, matched against the `csrf` field of every form post.
const CSRF_COOKIE: &str = "curanet_csrf";
/// How many patients the picker lists.
const PICKER_LIMIT: usize = 20;

/// `GET|POST /oauth/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    meta: ClientMeta,
    Query(query): Query<Vec<(String, String)>>,
    body: Body,
) -> Response {
    let form = match request_form(&method, &headers, query, body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let now = unix_now();
    let params = AuthorizeParams::from_pairs(&form);
    let request = match state.authority.authorization_request(params, now).await {
        Ok(request) => request,
        Err(e) => return refuse(&e, &method),
    };
    let field = |name: &str| field(&form, name);
    let csrf = Csrf::of(&headers, &state);
    let action = field("action");
    if action.is_some() && !csrf.matches(field("csrf")) {
        return page(
            StatusCode::FORBIDDEN,
            pages::error(
                "The form expired or did not come from this site. Start again from the app.",
            ),
        )
        .with_cookie(csrf.cookie());
    }
    let session = signed_in(&state, &headers, now).await;
    match (action, session) {
        (Some("login"), _) => {
            let identifier = field("identifier").unwrap_or_default().to_string();
            match sign_in(&state, &form, meta, now).await {
                Ok(signed) if signed.enrollment_only => page(
                    StatusCode::FORBIDDEN,
                    pages::error(
                        "Administrators must turn on two-factor authentication before authorising apps.",
                    ),
                ),
                Ok(signed) => {
                    let cookie = session_cookie(&state, &signed.session_token);
                    let signed_in = SignedIn {
                        account: signed.account,
                        session_id: signed.session_id,
                    };
                    consent_page(&state, &request, &signed_in, &csrf, &form, None)
                        .await
                        .with_cookie(cookie)
                        .with_cookie(csrf.cookie())
                }
                Err(e) => {
                    let ask_code = asks_second_factor(&e);
                    let message = match e {
                        AccountError::SecondFactorRequired => {
                            "Enter the code from your authenticator app.".to_string()
                        }
                        other => other.to_string(),
                    };
                    let status = if ask_code {
                        StatusCode::OK
                    } else {
                        StatusCode::UNAUTHORIZED
                    };
                    sign_in_page(
                        &request,
                        &csrf,
                        &identifier,
                        ask_code,
                        Some(&message),
                        status,
                    )
                }
            }
        }
        (Some(_), None) | (None, None) => {
            sign_in_page(&request, &csrf, "", false, None, StatusCode::OK)
        }
        (Some("deny"), Some(_)) => {
            let e = request.error("access_denied", "the user denied access");
            see_other(&e.redirect_url().unwrap_or_default())
        }
        (Some("approve"), Some(signed_in)) => {
            let chosen = form
                .iter()
                .filter(|(k, _)| k == "grant")
                .map(|(_, v)| v.clone())
                .collect();
            let approval = Approval {
                chosen,
                patient: field("patient").map(str::to_string),
            };
            let pick = picks_patient(&request, &signed_in.account);
            if pick && approval.patient.as_deref().is_none_or(str::is_empty) {
                return consent_page(
                    &state,
                    &request,
                    &signed_in,
                    &csrf,
                    &form,
                    Some("Choose the patient the app may see."),
                )
                .await;
            }
            if let Some(patient) = approval.patient.as_deref().filter(|_| pick)
                && !patient_exists(&state, patient).await
            {
                return consent_page(
                    &state,
                    &request,
                    &signed_in,
                    &csrf,
                    &form,
                    Some("No such patient."),
                )
                .await;
            }
            match state
                .authority
                .approve(
                    &request,
                    &signed_in.account,
                    &approval,
                    Some(&signed_in.session_id),
                    now,
                )
                .await
            {
                Ok(url) => see_other(&url),
                Err(AuthorizeError::Redirect {
                    error: "access_denied",
                    description,
                    ..
                }) => {
                    consent_page(
                        &state,
                        &request,
                        &signed_in,
                        &csrf,
                        &form,
                        Some(&description),
                    )
                    .await
                }
                Err(e) => refuse(&e, &Method::POST),
            }
        }
        (_, Some(signed_in)) => {
            consent_page(&state, &request, &signed_in, &csrf, &form, None).await
        }
    }
}

/// Signs in with the sign-in form's fields (the same throttling as `/api/auth/login`).
async fn sign_in(
    state: &AppState,
    form: &[(String, String)],
    meta: ClientMeta,
    now: i64,
) -> Result<curanet_auth::accounts::SignedIn, AccountError> {
    let attempt = SignIn {
        identifier: field(form, "identifier").unwrap_or_default().to_string(),
        password: field(form, "password").unwrap_or_default().to_string(),
        second_factor: field(form, "second_factor").map(str::to_string),
        ip: meta.ip,
        device: meta.device,
    };
    state.accounts.sign_in(attempt, now).await
}

/// Whether the sign-in form should show the authenticator-code field after `e`.
fn asks_second_factor(e: &AccountError) -> bool {
    matches!(
        e,
        AccountError::SecondFactorRequired | AccountError::InvalidSecondFactor
    )
}

/// An account signed in through the browser session cookie.
struct SignedIn {
    account: Account,
    session_id: String,
}

/// The account behind the session cookie, when the session is active.
async fn signed_in(state: &AppState, headers: &HeaderMap, now: i64) -> Option<SignedIn> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let session = state.accounts.session(&token, now).await.ok()?;
    let account = state.authority.account(&session.account_id).await.ok()??;
    (account.status == curanet_storage::AccountStatus::Active).then_some(SignedIn {
        account,
        session_id: session.id,
    })
}

/// Whether the signed-in user must pick the patient: a clinician in a standalone launch of an
/// app that needs one.
fn picks_patient(request: &AuthorizationRequest, account: &Account) -> bool {
    account.role != Role::Patient && request.launch.is_none() && request.needs_patient()
}

fn sign_in_page(
    request: &AuthorizationRequest,
    csrf: &Csrf,
    identifier: &str,
    ask_code: bool,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let pairs = request.params.pairs();
    let purpose = format!("Sign in to continue to {}.", request.client.name);
    form_page(
        request,
        status,
        pages::sign_in(&SignInForm {
            action: "/oauth/authorize",
            purpose: &purpose,
            pairs: &pairs,
            csrf: &csrf.value,
            identifier,
            ask_code,
            error,
        }),
    )
    .with_cookie(csrf.cookie())
}

async fn consent_page(
    state: &AppState,
    request: &AuthorizationRequest,
    signed_in: &SignedIn,
    csrf: &Csrf,
    form: &[(String, String)],
    error: Option<&str>,
) -> Response {
    let pairs = request.params.pairs();
    let mut choices = consent_choices(request, signed_in.account.role);
    // After "find patient", keep what the user had ticked.
    if field(form, "action") == Some("find") || error.is_some() {
        let ticked: Vec<&str> = form
            .iter()
            .filter(|(k, _)| k == "grant")
            .map(|(_, v)| v.as_str())
            .collect();
        for choice in &mut choices {
            choice.checked = ticked.contains(&choice.scope.as_str());
        }
    }
    let pick = picks_patient(request, &signed_in.account);
    let query = field(form, "patient_query").unwrap_or_default().trim();
    let patients = if pick && !query.is_empty() {
        find_patients(state, query).await
    } else {
        Vec::new()
    };
    let user = signed_in
        .account
        .email
        .clone()
        .or_else(|| signed_in.account.phone.clone())
        .unwrap_or_else(|| signed_in.account.id.clone());
    let error = match (pick, query.is_empty(), patients.is_empty(), error) {
        (_, _, _, Some(e)) => Some(e.to_string()),
        (true, false, true, None) => Some(format!("No patient matches '{query}'.")),
        _ => None,
    };
    form_page(
        request,
        StatusCode::OK,
        pages::consent(&ConsentForm {
            app_name: &request.client.name,
            user_name: &user,
            pairs: &pairs,
            csrf: &csrf.value,
            choices: &choices,
            pick_patient: pick,
            patient_query: query,
            patients: &patients,
            error: error.as_deref(),
        }),
    )
    .with_cookie(csrf.cookie())
}

/// Patients matching the picker's text: a Health ID, a Patient id, or a name.
async fn find_patients(state: &AppState, query: &str) -> Vec<PatientOption> {
    let pairs: Vec<(String, String)> = if query.to_ascii_uppercase().starts_with("HID-") {
        vec![(
            "identifier".into(),
            format!(
                "{}|{}",
                curanet_fhir_profiles::curanet::HEALTH_ID_SYSTEM,
                query.to_ascii_uppercase()
            ),
        )]
    } else if state.engine.read("Patient", query).await.is_ok() {
        vec![("_id".into(), query.into())]
    } else {
        vec![("name".into(), query.into())]
    };
    let mut pairs = pairs;
    pairs.push(("_count".into(), PICKER_LIMIT.to_string()));
    let Ok(result) = state.engine.search("Patient", &pairs, "", false).await else {
        return Vec::new();
    };
    result
        .page
        .resources
        .iter()
        .filter_map(|v| {
            let resource: Value = serde_json::from_str(v.content.as_deref()?).ok()?;
            Some(PatientOption {
                id: v.id.clone(),
                label: patient_label(&resource, &v.id),
            })
        })
        .collect()
}

/// "Asha Rao, born 1990-01-02, HID-2024-…" for the picker.
fn patient_label(patient: &Value, id: &str) -> String {
    let name = patient["name"][0]
        .as_object()
        .map(|n| {
            let given: Vec<&str> = n
                .get("given")
                .and_then(Value::as_array)
                .map(|g| g.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let family = n.get("family").and_then(Value::as_str).unwrap_or_default();
            format!("{} {family}", given.join(" ")).trim().to_string()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("Patient/{id}"));
    let mut label = name;
    if let Some(born) = patient["birthDate"].as_str() {
        label.push_str(&format!(", born {born}"));
    }
    let hid = patient["identifier"].as_array().and_then(|ids| {
        ids.iter()
            .find(|i| i["system"] == curanet_fhir_profiles::curanet::HEALTH_ID_SYSTEM)
            .and_then(|i| i["value"].as_str())
    });
    if let Some(hid) = hid {
        label.push_str(&format!(", {hid}"));
    }
    label
}

async fn patient_exists(state: &AppState, id: &str) -> bool {
    state
        .engine
        .read("Patient", id)
        .await
        .is_ok_and(|v| !v.deleted)
}

/// An authorization error: a page when no redirect is safe, else back to the app.
fn refuse(e: &AuthorizeError, method: &Method) -> Response {
    match e.redirect_url() {
        Some(url) if method == Method::GET => redirect(StatusCode::FOUND, &url),
        Some(url) => see_other(&url),
        None => page(StatusCode::BAD_REQUEST, pages::error(e.description())),
    }
}

/// `GET|POST /oauth/manage`: the apps the signed-in user authorised, each revocable.
pub async fn manage(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    meta: ClientMeta,
    body: Body,
) -> Response {
    let form = match request_form(&method, &headers, Vec::new(), body).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let now = unix_now();
    let csrf = Csrf::of(&headers, &state);
    let action = field(&form, "action");
    if action.is_some() && !csrf.matches(field(&form, "csrf")) {
        return page(
            StatusCode::FORBIDDEN,
            pages::error("The form expired. Open the page again."),
        )
        .with_cookie(csrf.cookie());
    }
    let mut cookie_to_set = None;
    let mut signed = signed_in(&state, &headers, now).await;
    if action == Some("login") {
        match sign_in(&state, &form, meta, now).await {
            Ok(s) => {
                cookie_to_set = Some(session_cookie(&state, &s.session_token));
                signed = Some(SignedIn {
                    account: s.account,
                    session_id: s.session_id,
                });
            }
            Err(e) => {
                return manage_sign_in(
                    &csrf,
                    field(&form, "identifier").unwrap_or_default(),
                    asks_second_factor(&e),
                    Some(&e.to_string()),
                );
            }
        }
    }
    let Some(signed) = signed else {
        return manage_sign_in(&csrf, "", false, None);
    };
    let mut notice = None;
    if action == Some("revoke")
        && let Some(grant_id) = field(&form, "grant")
    {
        let owned = state
            .authority
            .grants_of(&signed.account.id)
            .await
            .unwrap_or_default()
            .into_iter()
            .any(|g| g.id == grant_id);
        if owned && state.authority.revoke_grant(grant_id, now).await.is_ok() {
            notice = Some("Access revoked. The app can no longer reach your data.");
        }
    }
    let mut rows = Vec::new();
    for grant in state
        .authority
        .grants_of(&signed.account.id)
        .await
        .unwrap_or_default()
    {
        if grant.client_id == curanet_auth::accounts::FIRST_PARTY_CLIENT {
            continue;
        }
        let name = match state.authority.client(&grant.client_id).await {
            Ok(Some(c)) => c.name,
            _ => grant.client_id.clone(),
        };
        rows.push(AppRow {
            grant_id: grant.id,
            app_name: name,
            scope: grant.scope,
            since: chrono::DateTime::from_timestamp_micros(grant.created_at)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
        });
    }
    let user = signed
        .account
        .email
        .clone()
        .or(signed.account.phone.clone())
        .unwrap_or(signed.account.id.clone());
    let mut response = page(
        StatusCode::OK,
        pages::manage(&user, &csrf.value, &rows, notice),
    )
    .with_cookie(csrf.cookie());
    if let Some(cookie) = cookie_to_set {
        response = response.with_cookie(cookie);
    }
    response
}

fn manage_sign_in(csrf: &Csrf, identifier: &str, ask_code: bool, error: Option<&str>) -> Response {
    page(
        if error.is_some() && !ask_code {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        pages::sign_in(&SignInForm {
            action: "/oauth/manage",
            purpose: "Sign in to see the apps that can reach your data.",
            pairs: &[],
            csrf: &csrf.value,
            identifier,
            ask_code,
            error,
        }),
    )
    .with_cookie(csrf.cookie())
}

/// The CSRF token of this browser: the cookie's, or a new one.
struct Csrf {
    value: String,
    secure: bool,
}

impl Csrf {
    fn of(headers: &HeaderMap, state: &AppState) -> Csrf {
        Csrf {
            value: cookie(headers, CSRF_COOKIE)
                .filter(|v| v.len() >= 32)
                .unwrap_or_else(|| new_opaque_token().value),
            secure: secure(state),
        }
    }

    /// Whether the form's field equals the cookie (constant time).
    fn matches(&self, field: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        field.is_some_and(|f| bool::from(f.as_bytes().ct_eq(self.value.as_bytes())))
    }

    fn cookie(&self) -> String {
        format!(
            "{CSRF_COOKIE}={}; Path=/oauth; HttpOnly; SameSite=Strict{}",
            self.value,
            if self.secure { "; Secure" } else { "" }
        )
    }
}

/// Whether cookies must be `Secure` (the issuer is https).
fn secure(state: &AppState) -> bool {
    state.authority.endpoints().issuer.starts_with("https://")
}

/// The session cookie: `SameSite=Lax` so the app's redirect to the authorize endpoint (a
/// top-level navigation from another site) still finds the user signed in.
fn session_cookie(state: &AppState, token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age={}{}",
        curanet_auth::accounts::policy::SESSION_SECONDS,
        if secure(state) { "; Secure" } else { "" }
    )
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The first value of form field `name`.
fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The fields of a page request: the form of a POST, else the query.
async fn request_form(
    method: &Method,
    headers: &HeaderMap,
    query: Vec<(String, String)>,
    body: Body,
) -> Result<Vec<(String, String)>, Response> {
    if method != Method::POST {
        return Ok(query);
    }
    crate::handlers::form_pairs(headers, body, crate::handlers::MAX_FORM_BYTES)
        .await
        .map_err(|e| {
            page(
                StatusCode::BAD_REQUEST,
                pages::error(&format!("The form was not accepted: {e}.")),
            )
        })
}

/// An HTML page that no cache keeps and no other site may frame.
fn page(status: StatusCode, html: String) -> Response {
    page_with_form_action(status, html, "'self'")
}

/// A page whose form may end in the redirect back to the app: CSP's `form-action` also
/// governs the redirects that follow a form's submission (browsers block a redirect to an
/// origin it does not list), so the app's redirect origin is allowed besides the server's own.
fn form_page(request: &AuthorizationRequest, status: StatusCode, html: String) -> Response {
    match redirect_origin(&request.redirect_uri) {
        Some(origin) => page_with_form_action(status, html, &format!("'self' {origin}")),
        None => page(status, html),
    }
}

/// The CSP source of a redirect URI: `scheme://host[:port]`, or `scheme:` for a private-use
/// scheme (RFC 8252 §7.1); `None` for anything that would not be a plain source expression.
fn redirect_origin(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let plain = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    if !plain(scheme, "+-.") {
        return None;
    }
    let Some(after) = rest.strip_prefix("//") else {
        return Some(format!("{scheme}:"));
    };
    let authority = after.split(['/', '?', '#']).next().unwrap_or_default();
    // No credentials in a source; brackets for IPv6 literals.
    plain(authority, ".-:[]_").then(|| format!("{scheme}://{authority}"))
}

fn page_with_form_action(status: StatusCode, html: String, form_action: &str) -> Response {
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action {form_action}; frame-ancestors 'none'"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, csp.as_str()),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

fn redirect(status: StatusCode, url: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    if let Ok(location) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The answer to a form post that continues elsewhere (303: the browser follows with a GET).
fn see_other(url: &str) -> Response {
    redirect(StatusCode::SEE_OTHER, url)
}

/// Adds `Set-Cookie` headers.
trait WithCookie {
    fn with_cookie(self, cookie: String) -> Self;
}

impl WithCookie for Response {
    fn with_cookie(mut self, cookie: String) -> Self {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            self.headers_mut().append(header::SET_COOKIE, value);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::redirect_origin;

    #[test]
    fn the_redirect_origin_is_a_plain_csp_source() {
        assert_eq!(
            redirect_origin("http://127.0.0.1:41787/callback?x=1").as_deref(),
            Some("http://127.0.0.1:41787")
        );
        assert_eq!(
            redirect_origin("https://app.example.in/cb#f").as_deref(),
            Some("https://app.example.in")
        );
        assert_eq!(
            redirect_origin("http://[::1]:8000/cb").as_deref(),
            Some("http://[::1]:8000")
        );
        assert_eq!(
            redirect_origin("in.curanet.app:/callback").as_deref(),
            Some("in.curanet.app:")
        );
        // Anything that could end the directive or add a source is refused.
        assert_eq!(redirect_origin("https://a.in;script-src *"), None);
        assert_eq!(redirect_origin("https://user@a.in/cb"), None);
        assert_eq!(redirect_origin("https://a.in b.in/cb"), None);
        assert_eq!(redirect_origin("no-scheme"), None);
    }
}
