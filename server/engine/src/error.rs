//! What can go wrong in an interaction, in FHIR terms.

use curanet_fhir::{Issue, JsonError};
use curanet_storage::StoreError;

/// Why an interaction failed. `server/http` maps each variant to a status and an OperationOutcome.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The body is not acceptable JSON (400).
    #[error(transparent)]
    Json(#[from] JsonError),
    /// The request is malformed: wrong resource type in the body, bad id, bad parameter (400).
    #[error("{0}")]
    BadRequest(String),
    /// The URL names a resource type the server does not know (404).
    #[error("unknown resource type '{0}'")]
    UnknownType(String),
    /// The resource does not exist (404).
    #[error("{0} is not known")]
    NotFound(String),
    /// The resource was deleted (410).
    #[error("{0} has been deleted")]
    Gone(String),
    /// The resource does not conform to the definitions or to CuraNet's rules (422).
    #[error("the resource is invalid: {}", summary(.0))]
    Invalid(Vec<Issue>),
    /// A version precondition (`If-Match`) failed (412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The write conflicts with existing data, e.g. a Health ID already in use (409).
    #[error("{}", .0.diagnostics)]
    Conflict(Issue),
    /// The database failed (500, or 503 when unreachable).
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict {
                resource_type,
                id,
                expected,
                found,
            } => EngineError::PreconditionFailed(format!(
                "{resource_type}/{id}: expected {expected}, but the server has {found}"
            )),
            other => EngineError::Store(other),
        }
    }
}

fn summary(issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| match &i.expression {
            Some(e) => format!("{e}: {}", i.diagnostics),
            None => i.diagnostics.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
