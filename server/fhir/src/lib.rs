//! The FHIR vocabulary CuraNet speaks: strict JSON parsing, the resource envelope (id and meta),
//! the Health ID, FHIR date/time ranges, OperationOutcome and Bundle builders, and validation of
//! resources against the R4 definitions.

pub mod bundle;
pub mod datetime;
pub mod envelope;
pub mod health_id;
pub mod json;
pub mod outcome;
mod primitives;
pub mod subset;
pub mod validation;

pub use curanet_fhir_profiles::{Definitions, FHIR_VERSION};
pub use datetime::{Instant, Period};
pub use health_id::{HealthId, HealthIdError};
pub use json::{JsonError, parse_json};
pub use outcome::{Issue, IssueSeverity, IssueType, OperationOutcome};
pub use validation::Validator;

/// Whether `id` is a valid FHIR logical id (`[A-Za-z0-9\-\.]{1,64}`).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A new server-assigned logical id: a time-ordered UUID, which keeps B-tree inserts local.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_valid_id("abc-123.X"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id(&"a".repeat(65)));
        assert!(is_valid_id(&new_id()));
    }
}
