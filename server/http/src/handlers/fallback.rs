//! Answers for routes and methods that do not exist, as OperationOutcomes.

use axum::http::{Method, StatusCode, Uri};
use curanet_fhir::IssueType;

use crate::error::ApiError;

/// 404 for an unknown path.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        IssueType::NotFound,
        format!("no such endpoint: {}", uri.path()),
    )
}

/// 405 for a known path with an unsupported method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        IssueType::NotSupported,
        format!("{method} is not supported on {}", uri.path()),
    )
}
