//! Storage behind one [`Store`] trait, with an SQLite implementation (the embedded default) and a
//! PostgreSQL one (for many stateless server instances on one database).
//!
//! Every version of every resource is kept; a delete writes a tombstone version. A write is durable
//! once [`Store::write`] returns: SQLite runs in WAL mode with `synchronous=FULL` and commits
//! concurrent writes together (group commit); PostgreSQL groups WAL flushes of concurrent commits.

mod audit;
mod audit_batch;
mod auth;
mod error;
mod index;
mod meta;
mod model;
mod postgres;
mod read_cache;
mod search;
mod sql;
mod sqlite;
pub mod testing;
mod tx;
mod write;

pub use audit::{
    AuditColumn, AuditMatch, AuditPage, AuditQuery, AuditRecord, AuditStore, AuditTime, ChainLink,
    DecodeRecord, RecordHash, StoredAudit, StoredBlock, WRITE_AUDIT, WriteAudit,
};
pub use audit_batch::{AuditBatch, AuditId, AuditKey, BadAuditId, BlockSummary};
pub use auth::{
    Account, AccountStatus, AuthStore, AuthorizationCode, Channel, ClientKind, CodePurpose,
    CodeTake, FailureScope, Grant, LaunchContext, LoginFailure, NewAccount, NewGrant,
    NewSecurityEvent, NewSession, NewVerificationCode, OAuthClient, RefreshToken, Role, Rotation,
    SecurityEvent, Session, SigningKeyRecord,
};
pub use auth::{ShareAccess, ShareLink, ShareLinkStore, ShareLinkSummary};
pub use error::StoreError;
pub use index::{
    CompositeEntry, DateEntry, IndexRows, Indexing, NumberEntry, QuantityEntry, ReferenceEntry,
    StringEntry, TokenEntry, UriEntry,
};
pub use model::{
    Backend, DeleteOp, HistoryQuery, HistoryScope, MetaSummary, Method, PatchOp, Precondition,
    PutOp, StoredVersion, Transform, UniqueIdentity, UniqueKey, WriteOp, WriteOutcome,
};
pub use postgres::PostgresStore;
pub use read_cache::{Change, ChangeWatcher};
pub use search::{
    Clause, Compartment, Cursor, Include, IndexTable, LastN, MAX_INCLUDED, OperationFilter,
    Predicate, Prefix, SearchPage, SearchSpec, SortBy, SortKey, SortValue, StringMatch, UriMatch,
};
pub use sqlite::SqliteStore;

use std::sync::Arc;

/// Result of a storage call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where and how resources are stored.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which engine this is.
    fn backend(&self) -> Backend;

    /// The current version of a resource (a tombstone when it was deleted), if it ever existed.
    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredVersion>>;

    /// A specific version of a resource.
    async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredVersion>>;

    /// Applies all operations atomically (all or nothing) and durably.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>>;

    /// Versions, newest first, for the history interactions (`count + 1` rows tell if more follow).
    async fn history(&self, query: &HistoryQuery) -> Result<Vec<StoredVersion>>;

    /// One page of a search.
    async fn search(&self, spec: &SearchSpec) -> Result<SearchPage>;

    /// Live current versions in (type, id) order after `after`, for maintenance jobs.
    async fn scan(
        &self,
        resource_type: Option<&str>,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> Result<Vec<StoredVersion>>;

    /// The distinct tags, security labels and profiles on live resources of these types (`$meta`).
    async fn meta_summary(&self, resource_types: &[&str]) -> Result<MetaSummary>;

    /// A maintenance job's progress marker.
    async fn marker(&self, name: &str) -> Result<Option<String>>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<()>;

    /// Closes connections after flushing pending writes.
    async fn close(&self);

    /// Registers `watcher` to hear of every later change: this instance's commits before they
    /// are acknowledged, and (PostgreSQL) other instances' commits as they are announced.
    fn watch(&self, watcher: ChangeWatcher);
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Bytes of resource JSON the read cache of current versions may hold (0: no cache).
    pub read_cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            read_cache_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Opens the store a database URL names: `postgres://...` for PostgreSQL, `sqlite:PATH` or a plain
/// file path for SQLite. Migrations are applied first.
pub async fn open(database_url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>> {
    Ok(open_with_auth(database_url, options).await?.0)
}

/// Opens the store as [`open`] does, and hands it out also as the [`AuthStore`] (one database,
/// one SQLite writer).
pub async fn open_with_auth(
    database_url: &str,
    options: &StoreOptions,
) -> Result<(Arc<dyn Store>, Arc<dyn AuthStore>)> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let store = Arc::new(PostgresStore::open(database_url, options).await?);
        Ok((store.clone(), store))
    } else {
        let path = database_url.strip_prefix("sqlite:").unwrap_or(database_url);
        let path = path.strip_prefix("//").unwrap_or(path);
        let store = Arc::new(SqliteStore::open(std::path::Path::new(path), options).await?);
        Ok((store.clone(), store))
    }
}

/// Opens the store as [`open_with_auth`] does, and hands it out also as the [`AuditStore`].
pub async fn open_with_audit(
    database_url: &str,
    options: &StoreOptions,
) -> Result<(Arc<dyn Store>, Arc<dyn AuthStore>, Arc<dyn AuditStore>)> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let store = Arc::new(PostgresStore::open(database_url, options).await?);
        Ok((store.clone(), store.clone(), store))
    } else {
        let path = database_url.strip_prefix("sqlite:").unwrap_or(database_url);
        let path = path.strip_prefix("//").unwrap_or(path);
        let store = Arc::new(SqliteStore::open(std::path::Path::new(path), options).await?);
        Ok((store.clone(), store.clone(), store))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn versions(dir: &str) -> BTreeSet<String> {
        std::fs::read_dir(format!(
            "{}/../../migrations/{dir}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
    }

    #[test]
    fn migration_sets_match() {
        let sqlite = versions("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite,
            versions("postgres"),
            "same migration files for both engines"
        );
    }
}
