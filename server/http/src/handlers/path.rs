//! Path parameters whose decoding errors become OperationOutcomes (axum's own answer is plain text).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::ApiError;

/// Like axum's `Path`, but a malformed segment (e.g. invalid percent-encoding) is a 400 OperationOutcome.
pub struct FhirPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for FhirPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| FhirPath(t))
            .map_err(|e| ApiError::bad_request(format!("malformed URL path: {}", e.body_text())))
    }
}
