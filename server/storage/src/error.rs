//! Storage errors.

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A precondition (`If-Match`, create-only) did not hold.
    #[error("version conflict on {resource_type}/{id}: expected {expected}, found {found}")]
    VersionConflict {
        resource_type: String,
        id: String,
        expected: String,
        found: String,
    },
    /// A unique identifier is already owned by another resource.
    #[error("identifier {system}|{value} already belongs to {owner}")]
    DuplicateIdentifier {
        system: String,
        value: String,
        owner: String,
    },
    /// A conditional write's criteria matched more than one resource.
    #[error("the condition matches {count} resources")]
    MultipleMatches { count: usize },
    /// The resource's unique-identifier rule refused the write.
    #[error("the write was refused by the identifier rule")]
    Refused(Vec<curanet_fhir::Issue>),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Whether the database is unreachable or shutting down (as opposed to a failed statement).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Closed
                | StoreError::Database(
                    sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
                )
        )
    }

    /// Whether retrying the whole write may succeed (a lost race between concurrent writers).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40001" | "40P01" | "23505"))
                    && e.constraint() != Some("unique_identifiers_pkey")
            }
            _ => false,
        }
    }
}
