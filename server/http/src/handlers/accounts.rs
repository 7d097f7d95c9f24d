//! The first-party account API under `/api/auth` (JSON in, JSON out): registration,
//! verification, sign-in, refresh, sign-out, passwords, sessions, two-factor authentication,
//! and admin account management. Each handler parses, calls [`Accounts`], and maps the result;
//! [`AccountFailure`] is the one place where [`AccountError`] becomes a status.
//!
//! Every answer carries `Cache-Control: no-store`. Errors are `{"error", "error_description"}`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use curanet_auth::accounts::{
    AccountError, Caller, NewStaff, Person, Registration, SignIn, account_json,
};
use curanet_storage::Role;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::oauth::no_store_json;
use crate::app::AppState;
use crate::server::unix_now;

/// Largest JSON body accepted here.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The routes, to be nested under `/api/auth`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/verify", post(verify).get(verify_link))
        .route("/verify/resend", post(resend))
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/logout", post(logout))
        .route("/password/forgot", post(forgot_password))
        .route("/password/reset", post(reset_password))
        .route("/password/change", post(change_password))
        .route("/sessions", get(sessions))
        .route("/sessions/{id}", delete(revoke_session))
        .route("/me", get(me))
        .route("/2fa/enroll", post(enroll))
        .route("/2fa/confirm", post(confirm))
        .route("/2fa/disable", post(disable))
        .route("/accounts", post(create_account))
        .route("/accounts/{id}/approve", post(approve))
}

/// An [`AccountError`] as an HTTP answer.
pub struct AccountFailure(pub AccountError);

impl From<AccountError> for AccountFailure {
    fn from(e: AccountError) -> Self {
        AccountFailure(e)
    }
}

impl IntoResponse for AccountFailure {
    fn into_response(self) -> Response {
        let e = &self.0;
        let status = match e {
            AccountError::InvalidInput(_)
            | AccountError::WeakPassword(_)
            | AccountError::InvalidCode => StatusCode::BAD_REQUEST,
            AccountError::InvalidCredentials
            | AccountError::SecondFactorRequired
            | AccountError::InvalidSecondFactor
            | AccountError::InvalidToken => StatusCode::UNAUTHORIZED,
            AccountError::Unverified
            | AccountError::PendingApproval
            | AccountError::Disabled
            | AccountError::Forbidden(_) => StatusCode::FORBIDDEN,
            AccountError::NotFound => StatusCode::NOT_FOUND,
            AccountError::Duplicate(_) | AccountError::Conflict(_) => StatusCode::CONFLICT,
            AccountError::Locked { .. } => StatusCode::LOCKED,
            AccountError::SlowDown { .. } => StatusCode::TOO_MANY_REQUESTS,
            AccountError::Directory(_) | AccountError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let description = if status.is_server_error() {
            tracing::error!(error = %e, "account request failed");
            "the server could not complete the request".to_string()
        } else {
            e.to_string()
        };
        let mut response = no_store_json(
            status,
            &json!({"error": e.code(), "error_description": description}),
        );
        let headers = response.headers_mut();
        if let AccountError::Locked { retry_after } | AccountError::SlowDown { retry_after } = e
            && let Ok(v) = HeaderValue::from_str(&(*retry_after).max(1).to_string())
        {
            headers.insert(header::RETRY_AFTER, v);
        }
        if matches!(e, AccountError::InvalidToken) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"curanet\", error=\"invalid_token\""),
            );
        }
        response
    }
}

type Answer = Result<Response, AccountFailure>;

/// Where a request comes from: the peer's IP address and the User-Agent as the device name.
pub struct ClientMeta {
    pub ip: Option<String>,
    pub device: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let device = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect());
        Ok(ClientMeta { ip, device })
    }
}

/// The caller of an authenticated endpoint, from `Authorization: Bearer`.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AccountFailure;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, AccountFailure> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(AccountError::InvalidToken)?;
        let caller = state.accounts.authenticate(token, unix_now()).await?;
        Ok(Authenticated(caller))
    }
}

/// Parses a JSON body (a missing Content-Type is taken as JSON; another one is refused).
fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, AccountFailure> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if let Some(ct) = content_type
        && ct != "application/json"
        && !ct.ends_with("+json")
    {
        return Err(AccountError::InvalidInput("the body must be application/json".into()).into());
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(AccountError::InvalidInput("the body is too large".into()).into());
    }
    serde_json::from_slice(body).map_err(|e| {
        AccountError::InvalidInput(format!("the body is not the expected JSON: {e}")).into()
    })
}

fn ok(status: StatusCode, value: &Value) -> Answer {
    Ok(no_store_json(status, value))
}

fn no_content() -> Answer {
    Ok((
        StatusCode::NO_CONTENT,
        [(header::CACHE_CONTROL, "no-store")],
    )
        .into_response())
}

/// A name as one string (`"Asha Rao"`: the last word is the family name) or FHIR-like parts.
#[derive(Deserialize)]
#[serde(untagged)]
enum NameBody {
    Text(String),
    Parts {
        #[serde(default)]
        given: Option<GivenBody>,
        #[serde(default)]
        family: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GivenBody {
    One(String),
    Many(Vec<String>),
}

/// The person fields shared by registration and admin creation.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersonBody {
    name: Option<NameBody>,
    birth_date: Option<String>,
    gender: Option<String>,
}

impl PersonBody {
    fn person(self) -> Person {
        let (given, family) = match self.name {
            Some(NameBody::Text(text)) => {
                let mut words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
                let family = if words.len() > 1 { words.pop() } else { None };
                (words, family)
            }
            Some(NameBody::Parts { given, family }) => (
                match given {
                    Some(GivenBody::One(g)) => vec![g],
                    Some(GivenBody::Many(g)) => g,
                    None => Vec::new(),
                },
                family,
            ),
            None => (Vec::new(), None),
        };
        Person {
            given,
            family,
            birth_date: self.birth_date,
            gender: self.gender,
            email: None,
            phone: None,
        }
    }
}

fn parse_role(role: Option<&str>) -> Result<Option<Role>, AccountFailure> {
    match role {
        None => Ok(None),
        Some(text) => Role::parse(text).map(Some).ok_or_else(|| {
            AccountError::InvalidInput("role must be patient, doctor, pharmacist or admin".into())
                .into()
        }),
    }
}

#[derive(Deserialize)]
struct RegisterBody {
    role: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    password: String,
    pharmacy: Option<String>,
    #[serde(flatten)]
    person: PersonBody,
}

/// `POST /api/auth/register`.
async fn register(
    State(state): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: RegisterBody = parse(&headers, &body)?;
    let registration = Registration {
        role: parse_role(b.role.as_deref())?,
        email: b.email,
        phone: b.phone,
        password: b.password,
        person: b.person.person(),
        pharmacy: b.pharmacy,
        ip: meta.ip,
    };
    let account = state.accounts.register(registration, unix_now()).await?;
    ok(StatusCode::CREATED, &account_json(&account))
}

#[derive(Deserialize)]
struct VerifyBody {
    token: Option<String>,
    phone: Option<String>,
    code: Option<String>,
}

/// `POST /api/auth/verify`: `{"token"}` from the mail, or `{"phone", "code"}` from the SMS.
async fn verify(
    State(state): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: VerifyBody = parse(&headers, &body)?;
    let now = unix_now();
    let ip = meta.ip.as_deref();
    let verified = match (b.token, b.phone, b.code) {
        (Some(token), None, None) => {
            state.accounts.verify_email(&token, ip, now).await?;
            "email"
        }
        (None, Some(phone), Some(code)) => {
            state.accounts.verify_phone(&phone, &code, ip, now).await?;
            "phone"
        }
        _ => {
            return Err(AccountError::InvalidInput(
                "send {\"token\"} from the mail or {\"phone\", \"code\"} from the SMS".into(),
            )
            .into());
        }
    };
    ok(StatusCode::OK, &json!({"verified": verified}))
}

/// `GET /api/auth/verify?token=...`: the link in the verification mail; a small HTML page.
async fn verify_link(
    State(state): State<AppState>,
    meta: ClientMeta,
    RawQuery(query): RawQuery,
) -> Response {
    let token = query
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned())
        .and_then(|mut pairs| pairs.find(|(k, _)| k == "token"))
        .map(|(_, v)| v)
        .unwrap_or_default();
    let result = state
        .accounts
        .verify_email(&token, meta.ip.as_deref(), unix_now())
        .await;
    let (status, message) = match result {
        Ok(()) => (
            StatusCode::OK,
            "Your email address is confirmed. You can close this page and sign in.",
        ),
        Err(AccountError::InvalidCode) => (
            StatusCode::BAD_REQUEST,
            "This link is not valid: it was used already or it expired. Ask the app for a new one.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "email verification failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not confirm the address; try again later.",
            )
        }
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>CuraNet</title>\
         </head><body><p>{message}</p></body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response()
}

#[derive(Deserialize)]
struct IdentifierBody {
    identifier: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

impl IdentifierBody {
    fn identifier(self) -> Result<String, AccountFailure> {
        self.identifier
            .or(self.email)
            .or(self.phone)
            .ok_or_else(|| {
                AccountError::InvalidInput("'identifier' (email or phone) is required".into())
                    .into()
            })
    }
}

/// `POST /api/auth/verify/resend`: always 202.
async fn resend(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer {
    let b: IdentifierBody = parse(&headers, &body)?;
    state
        .accounts
        .resend_verification(&b.identifier()?, unix_now())
        .await?;
    ok(
        StatusCode::ACCEPTED,
        &json!({"status": "sent if the contact needs verification"}),
    )
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(flatten)]
    identifier: IdentifierBody,
    password: String,
    /// A TOTP code or a recovery code.
    code: Option<String>,
    device: Option<String>,
}

/// `POST /api/auth/login`: tokens, or 401 `second_factor_required`.
async fn login(
    State(state): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: LoginBody = parse(&headers, &body)?;
    let now = unix_now();
    let request = SignIn {
        identifier: b.identifier.identifier()?,
        password: b.password,
        second_factor: b.code,
        ip: meta.ip,
        device: b.device.or(meta.device),
    };
    let signed_in = state.accounts.sign_in(request, now).await?;
    let tokens = state.accounts.issue_tokens(&signed_in, now).await?;
    let mut body = tokens.to_json();
    if signed_in.enrollment_only {
        body["enrollment_required"] = json!(true);
    }
    ok(StatusCode::OK, &body)
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

/// `POST /api/auth/refresh`.
async fn refresh(
    State(state): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: RefreshBody = parse(&headers, &body)?;
    let tokens = state
        .accounts
        .refresh(&b.refresh_token, meta.ip.as_deref(), unix_now())
        .await?;
    ok(StatusCode::OK, &tokens.to_json())
}

/// `POST /api/auth/logout`: ends the refresh token's session; always 204.
async fn logout(
    State(state): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: RefreshBody = parse(&headers, &body)?;
    state
        .accounts
        .sign_out(&b.refresh_token, meta.ip.as_deref(), unix_now())
        .await?;
    no_content()
}

/// `POST /api/auth/password/forgot`: always 202.
async fn forgot_password(
    State(state): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: IdentifierBody = parse(&headers, &body)?;
    state
        .accounts
        .forgot_password(&b.identifier()?, meta.ip.as_deref(), unix_now())
        .await?;
    ok(
        StatusCode::ACCEPTED,
        &json!({"status": "if an account matches, a reset link was mailed"}),
    )
}

#[derive(Deserialize)]
struct ResetBody {
    token: String,
    #[serde(alias = "new_password")]
    password: String,
}

/// `POST /api/auth/password/reset`.
async fn reset_password(
    State(state): State<AppState>,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: ResetBody = parse(&headers, &body)?;
    state
        .accounts
        .reset_password(&b.token, &b.password, meta.ip.as_deref(), unix_now())
        .await?;
    ok(
        StatusCode::OK,
        &json!({"status": "password reset; sign in again"}),
    )
}

#[derive(Deserialize)]
struct ChangeBody {
    current_password: String,
    new_password: String,
    /// The session to keep signed in (the caller's own); all others end.
    session_id: Option<String>,
}

/// `POST /api/auth/password/change`.
async fn change_password(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: ChangeBody = parse(&headers, &body)?;
    state
        .accounts
        .change_password(
            &caller,
            &b.current_password,
            &b.new_password,
            b.session_id.as_deref(),
            meta.ip.as_deref(),
            unix_now(),
        )
        .await?;
    ok(StatusCode::OK, &json!({"status": "password changed"}))
}

/// `GET /api/auth/sessions`.
async fn sessions(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Answer {
    full(&caller)?;
    let sessions = state.accounts.sessions(&caller, unix_now()).await?;
    ok(StatusCode::OK, &json!({"sessions": sessions}))
}

/// `DELETE /api/auth/sessions/{id}`.
async fn revoke_session(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Answer {
    full(&caller)?;
    state
        .accounts
        .revoke_session(&caller, &id, meta.ip.as_deref(), unix_now())
        .await?;
    no_content()
}

/// `GET /api/auth/me`.
async fn me(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Answer {
    full(&caller)?;
    ok(StatusCode::OK, &state.accounts.me(&caller).await?)
}

/// `POST /api/auth/2fa/enroll`: the secret, its `otpauth://` URI, and the enrollment to confirm.
async fn enroll(State(state): State<AppState>, Authenticated(caller): Authenticated) -> Answer {
    let e = state.accounts.enroll_totp(&caller, unix_now()).await?;
    ok(
        StatusCode::OK,
        &json!({
            "secret": e.secret,
            "otpauth_uri": e.otpauth_uri,
            "enrollment": e.token,
            "expires_in": e.expires_in,
        }),
    )
}

#[derive(Deserialize)]
struct ConfirmBody {
    enrollment: String,
    code: String,
}

/// `POST /api/auth/2fa/confirm`: the recovery codes, shown once.
async fn confirm(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: ConfirmBody = parse(&headers, &body)?;
    let codes = state
        .accounts
        .confirm_totp(
            &caller,
            &b.enrollment,
            &b.code,
            meta.ip.as_deref(),
            unix_now(),
        )
        .await?;
    let mut answer = json!({"recovery_codes": codes.codes});
    if caller.enrollment_only {
        answer["sign_in_again"] = json!(true);
    }
    ok(StatusCode::OK, &answer)
}

#[derive(Deserialize)]
struct CodeBody {
    code: String,
}

/// `POST /api/auth/2fa/disable`.
async fn disable(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: CodeBody = parse(&headers, &body)?;
    state
        .accounts
        .disable_totp(&caller, &b.code, meta.ip.as_deref(), unix_now())
        .await?;
    ok(
        StatusCode::OK,
        &json!({"status": "two-factor authentication is off"}),
    )
}

#[derive(Deserialize)]
struct CreateBody {
    role: String,
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    pharmacy: Option<String>,
    #[serde(flatten)]
    person: PersonBody,
}

/// `POST /api/auth/accounts` (admins): creates a doctor, pharmacist, admin or patient.
async fn create_account(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    meta: ClientMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let b: CreateBody = parse(&headers, &body)?;
    let role = parse_role(Some(&b.role))?.expect("a role was given");
    let staff = NewStaff {
        role,
        email: b.email,
        phone: b.phone,
        password: b.password,
        person: b.person.person(),
        pharmacy: b.pharmacy,
    };
    let account = state
        .accounts
        .create_by_admin(&caller, staff, meta.ip.as_deref(), unix_now())
        .await?;
    ok(StatusCode::CREATED, &account_json(&account))
}

/// `POST /api/auth/accounts/{id}/approve` (admins).
async fn approve(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Answer {
    let account = state
        .accounts
        .approve(&caller, &id, meta.ip.as_deref(), unix_now())
        .await?;
    ok(StatusCode::OK, &account_json(&account))
}

/// Refuses an enrollment-only token.
fn full(caller: &Caller) -> Result<(), AccountFailure> {
    if caller.enrollment_only {
        return Err(AccountError::Forbidden(
            "enroll two-factor authentication first (POST /api/auth/2fa/enroll)".into(),
        )
        .into());
    }
    Ok(())
}
