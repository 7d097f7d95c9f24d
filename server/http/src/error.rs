//! The one place where errors become HTTP statuses and OperationOutcome bodies.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use curanet_auth::OAuthError;
use curanet_engine::EngineError;
use curanet_fhir::{Issue, IssueType, OperationOutcome, json::to_bytes};
use curanet_storage::StoreError;

/// An error response: a status and the OperationOutcome that explains it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub outcome: OperationOutcome,
}

impl ApiError {
    /// An error with one issue.
    pub fn new(status: StatusCode, code: IssueType, message: impl Into<String>) -> Self {
        Self {
            status,
            outcome: OperationOutcome::single(Issue::error(code, message)),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, IssueType::Invalid, message)
    }

    /// 406 Not Acceptable.
    pub fn not_acceptable(message: String) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, IssueType::NotSupported, message)
    }

    /// 415 Unsupported Media Type.
    pub fn unsupported_media(message: String) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            message,
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::Json(_) => {
                Self::new(StatusCode::BAD_REQUEST, IssueType::Structure, message)
            }
            EngineError::BadRequest(_) => Self::bad_request(message),
            EngineError::UnknownType(_) | EngineError::NotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, IssueType::NotFound, message)
            }
            EngineError::Gone(_) => Self::new(StatusCode::GONE, IssueType::Deleted, message),
            EngineError::Invalid(issues) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                outcome: OperationOutcome { issues },
            },
            EngineError::PreconditionFailed(_) => Self::new(
                StatusCode::PRECONDITION_FAILED,
                IssueType::Conflict,
                message,
            ),
            EngineError::Conflict(issue) => Self {
                status: StatusCode::CONFLICT,
                outcome: OperationOutcome::single(issue),
            },
            EngineError::Store(e) => store_error(e),
        }
    }
}

fn store_error(e: StoreError) -> ApiError {
    // Details stay in the server log: they may name tables, hosts or data.
    tracing::error!(error = %e, "storage failure");
    if e.is_unavailable() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            IssueType::Exception,
            "the database is unavailable; retry later",
        )
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            IssueType::Exception,
            "the server failed to complete the request (see the server log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/fhir+json; charset=utf-8")],
            to_bytes(&self.outcome.to_json(), false),
        )
            .into_response()
    }
}

/// An OAuth error answer (RFC 6749 §5.2): `{error, error_description}`, 401 for
/// `invalid_client`, 500 for a server failure, 400 otherwise; never cached.
#[derive(Debug)]
pub struct OAuthFailure(pub OAuthError);

impl From<OAuthError> for OAuthFailure {
    fn from(e: OAuthError) -> Self {
        OAuthFailure(e)
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match &e {
            OAuthError::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            OAuthError::Server(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        // The reason (why an assertion failed, a storage error) goes to the log only.
        match (&e, e.reason()) {
            (OAuthError::Server(_), reason) => {
                tracing::error!(error = e.code(), reason = ?reason.map(ToString::to_string), "OAuth request failed")
            }
            (_, reason) => {
                tracing::info!(error = e.code(), description = e.description(), reason = ?reason.map(ToString::to_string), "OAuth request refused")
            }
        }
        let body = serde_json::json!({
            "error": e.code(),
            "error_description": e.description(),
        });
        crate::handlers::oauth::no_store_json(status, &body)
    }
}
