//! The consent workflow's operations (rules in `curanet_auth::consent_workflow`):
//! `Patient/{id}/$request-consent` and `Patient/{id}/$break-glass` for clinicians,
//! `Consent/{id}/$approve`, `$reject` and `$revoke` for the consenting patient. The resource
//! server admits them for people's tokens (`access::CONSENT_OPERATIONS`); these handlers decide
//! who may call them from the token's `fhirUser`, `patient` and the account's role. Every change
//! is a new version through the engine, conditional on the version read.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use curanet_auth::consent_workflow::{
    Approval, ConsentRequest, Event, Params, Person, WorkflowError, break_glass_consent, reject,
    revoke,
};
use curanet_engine::{EngineError, Written};
use curanet_fhir::IssueType;
use curanet_storage::Role;

use super::path::FhirPath;
use super::resources::write_response;
use super::{FhirContext, read_body, resource_response};
use crate::access::VerifiedAccess;
use crate::app::AppState;
use crate::error::ApiError;
use crate::negotiation::check_body_type;
use crate::server::unix_now;

/// Who calls, with what.
struct Call {
    person: Person,
    role: Option<Role>,
    params: Params,
}

/// The caller (from the verified token and their account) and the `Parameters` body.
async fn call(state: &AppState, ctx: &FhirContext, request: Request) -> Result<Call, ApiError> {
    let access = request
        .extensions()
        .get::<VerifiedAccess>()
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                IssueType::Login,
                "this operation acts for a person: it needs their access token",
            )
        })?;
    let body = read_body(state, request.into_body()).await?;
    let params = if body.iter().all(u8::is_ascii_whitespace) {
        Params::default()
    } else {
        check_body_type(&ctx.headers, &[])?;
        let value = curanet_fhir::json::parse_json(&body).map_err(EngineError::Json)?;
        Params::parse(&value).map_err(|e| refused(e, ""))?
    };
    let claims = &access.claims;
    let role = state
        .authority
        .store()
        .get_account(&claims.sub)
        .await
        .map_err(|e| ApiError::from(EngineError::Store(e)))?
        .map(|a| a.role);
    Ok(Call {
        person: Person::of(claims.fhir_user.as_deref(), claims.patient.as_deref(), role),
        role,
        params,
    })
}

/// A refused step as an OperationOutcome; `hidden` names what a [`WorkflowError::Hidden`]
/// answers 404 for, exactly as if it did not exist.
fn refused(e: WorkflowError, hidden: &str) -> ApiError {
    let message = e.to_string();
    match e {
        WorkflowError::Invalid(_) => ApiError::bad_request(message),
        WorkflowError::BusinessRule(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            IssueType::BusinessRule,
            message,
        ),
        WorkflowError::WrongState { .. } => {
            ApiError::new(StatusCode::CONFLICT, IssueType::Conflict, message)
        }
        WorkflowError::Forbidden(_) => {
            ApiError::new(StatusCode::FORBIDDEN, IssueType::Forbidden, message)
        }
        WorkflowError::Hidden => EngineError::NotFound(hidden.to_string()).into(),
    }
}

/// 404 for an operation on a type it is not defined on.
fn only_on(rtype: &str, expected: &str, operation: &str) -> Result<(), ApiError> {
    if rtype == expected {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            IssueType::NotSupported,
            format!("${operation} is defined on {expected} only"),
        ))
    }
}

/// A concurrent change between our read and our write is a conflict the caller can retry.
fn written(result: Result<Written, EngineError>) -> Result<Written, ApiError> {
    result.map_err(|e| match e {
        EngineError::PreconditionFailed(_) => ApiError::new(
            StatusCode::CONFLICT,
            IssueType::Conflict,
            "the consent changed meanwhile; read it again and retry",
        ),
        e => e.into(),
    })
}

/// `POST /fhir/Patient/{id}/$request-consent`: a clinician asks the patient for access; a
/// proposed Consent (201), and the patient is told.
pub async fn request_consent(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
    request: Request,
) -> Result<Response, ApiError> {
    only_on(&rtype, "Patient", "request-consent")?;
    let call = call(&state, &ctx, request).await?;
    let clinician = call.person.clinician().map_err(|e| refused(e, ""))?;
    state.engine.read("Patient", &id).await?;
    let now = unix_now();
    let is_type = |t: &str| state.engine.check_type(t).is_ok();
    let asked = ConsentRequest::parse(&id, &call.params, clinician, now, &is_type)
        .map_err(|e| refused(e, ""))?;
    if asked.actor_needs_check(clinician)
        && !state
            .consents
            .references(&state.engine, clinician)
            .await?
            .contains(&asked.actor)
    {
        return Err(refused(
            WorkflowError::Forbidden(format!(
                "{} is not the caller, one of their PractitionerRoles or their Organization",
                asked.actor
            )),
            "",
        ));
    }
    let consent = asked.consent(now);
    let written = written(
        state
            .engine
            .create("Consent", consent.to_string().as_bytes(), None, &ctx.base)
            .await,
    )?;
    notify(&state, Event::Requested, &written).await;
    Ok(write_response(&ctx, written, "created"))
}

/// What a patient does to their consent.
enum Decision {
    Approve,
    Reject,
    Revoke,
}

/// `POST /fhir/Consent/{id}/$approve`: the patient approves a proposed consent, possibly
/// shortened or narrowed (200 with the active Consent).
pub async fn approve(
    state: State<AppState>,
    path: FhirPath<(String, String)>,
    ctx: FhirContext,
    request: Request,
) -> Result<Response, ApiError> {
    decide(state, path, ctx, request, Decision::Approve).await
}

/// `POST /fhir/Consent/{id}/$reject`: the patient rejects a proposed consent.
pub async fn reject_consent(
    state: State<AppState>,
    path: FhirPath<(String, String)>,
    ctx: FhirContext,
    request: Request,
) -> Result<Response, ApiError> {
    decide(state, path, ctx, request, Decision::Reject).await
}

/// `POST /fhir/Consent/{id}/$revoke` with a `reason`: the patient ends a consent (`inactive`).
pub async fn revoke_consent(
    state: State<AppState>,
    path: FhirPath<(String, String)>,
    ctx: FhirContext,
    request: Request,
) -> Result<Response, ApiError> {
    decide(state, path, ctx, request, Decision::Revoke).await
}

async fn decide(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
    request: Request,
    decision: Decision,
) -> Result<Response, ApiError> {
    let operation = match decision {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
        Decision::Revoke => "revoke",
    };
    only_on(&rtype, "Consent", operation)?;
    let call = call(&state, &ctx, request).await?;
    let current = state.engine.read("Consent", &id).await?;
    let consent = current.resource().unwrap_or_default();
    let hidden = format!("Consent/{id}");
    call.person
        .may_decide(&consent)
        .map_err(|e| refused(e, &hidden))?;
    let now = unix_now();
    let is_type = |t: &str| state.engine.check_type(t).is_ok();
    let (changed, event) = match decision {
        Decision::Approve => (
            Approval::parse(&call.params, &is_type).and_then(|a| a.apply(&consent, now)),
            Event::Approved,
        ),
        Decision::Reject => (
            call.params.only(&[]).and_then(|()| reject(&consent, now)),
            Event::Rejected,
        ),
        Decision::Revoke => (revoke(&consent, &call.params, now), Event::Revoked),
    };
    let changed = changed.map_err(|e| refused(e, &hidden))?;
    let written = written(
        state
            .engine
            .update(
                "Consent",
                &id,
                changed.to_string().as_bytes(),
                Some(current.version),
            )
            .await,
    )?;
    notify(&state, event, &written).await;
    Ok(resource_response(
        StatusCode::OK,
        ctx.format,
        &written.version,
    ))
}

/// `POST /fhir/Patient/{id}/$break-glass` with a `reason` (and `minutes`): a clinician whose
/// role the server's policy allows claims emergency read access; an active Consent of purpose
/// BTG (201), and the patient is told at once.
pub async fn break_glass(
    State(state): State<AppState>,
    FhirPath((rtype, id)): FhirPath<(String, String)>,
    ctx: FhirContext,
    request: Request,
) -> Result<Response, ApiError> {
    only_on(&rtype, "Patient", "break-glass")?;
    let call = call(&state, &ctx, request).await?;
    let clinician = call.person.clinician().map_err(|e| refused(e, ""))?;
    let (reason, minutes) = state
        .break_glass
        .claim(call.role, &call.params)
        .map_err(|e| refused(e, ""))?;
    state.engine.read("Patient", &id).await?;
    let consent = break_glass_consent(&id, clinician, &reason, minutes, unix_now());
    let written = written(
        state
            .engine
            .create("Consent", consent.to_string().as_bytes(), None, &ctx.base)
            .await,
    )?;
    tracing::warn!(patient = %id, clinician, minutes, consent = %written.version.id, "break-the-glass access claimed");
    notify(&state, Event::BreakGlass, &written).await;
    Ok(write_response(&ctx, written, "created"))
}

/// Tells the patient what happened to the consent just written.
async fn notify(state: &AppState, event: Event, written: &Written) {
    if let Some(consent) = written.version.resource() {
        state.notifier.tell(event, &consent).await;
    }
}
