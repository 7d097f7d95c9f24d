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
    /// A conditional delete's criteria matched more resources than it may delete at once.
    #[error("the condition matches more than {max} resources")]
    TooManyMatches { max: u32 },
    /// A conditional update's resource carries another id than the resource its criteria match.
    #[error("the resource's id ({given}) differs from the matching resource's ({found})")]
    IdMismatch { given: String, found: String },
    /// A transform (PATCH, `$meta-add`) refused to change the resource; the error is the caller's.
    #[error("the change was refused: {0}")]
    Transform(Box<dyn std::error::Error + Send + Sync>),
    /// Operation `index` of a write of several operations failed; none was applied.
    #[error("operation {index}: {source}")]
    InOperation {
        index: usize,
        source: Box<StoreError>,
    },
    /// The resource's unique-identifier rule refused the write.
    #[error("the write was refused by the identifier rule")]
    Refused(Vec<curanet_fhir::Issue>),
    /// A unique value (an account's email or phone, a client_id, a key id, ...) is taken.
    #[error("{what} is already taken")]
    Duplicate { what: &'static str },
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
        if let StoreError::InOperation { source, .. } = self {
            return source.is_unavailable();
        }
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
            StoreError::InOperation { source, .. } => source.is_retryable(),
            StoreError::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40001" | "40P01" | "23505"))
                    && e.constraint() != Some("unique_identifiers_pkey")
            }
            _ => false,
        }
    }
}
