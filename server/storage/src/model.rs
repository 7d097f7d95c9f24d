//! The values that cross the storage boundary.

use std::sync::Arc;

use curanet_fhir::{Instant, Issue};
use serde_json::Value;

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How a version came to be (the `Bundle.entry.request.method` of a history entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Delete,
}

impl Method {
    /// The HTTP verb.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "POST" => Method::Post,
            "DELETE" => Method::Delete,
            _ => Method::Put,
        }
    }
}

/// One stored version of a resource.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated: Instant,
    pub deleted: bool,
    pub method: Method,
    /// The resource JSON text as stored (`None` for a delete tombstone).
    pub content: Option<String>,
    /// Position in the system-wide order of versions (the history paging cursor).
    pub seq: i64,
}

/// What must hold before a write applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Nothing: create or overwrite.
    None,
    /// The resource must not exist yet (or be deleted) — for server-assigned ids.
    MustNotExist,
    /// The current version must be exactly this one (`If-Match`).
    IfMatch(i64),
}

/// An identifier that must be unique across the server and stays with its resource forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    pub system: String,
    pub value: String,
}

/// Decides, inside the write transaction, which server-wide unique identifiers a resource owns
/// (the Health ID rule), given those its earlier versions already own.
pub trait UniqueIdentity: Send + Sync + std::fmt::Debug {
    /// Adjusts `resource` (e.g. adds a missing identifier) and returns the keys it must own;
    /// refuses the write with issues (e.g. an attempt to change an owned identifier).
    fn resolve(
        &self,
        resource: &mut Value,
        owned: &[UniqueKey],
    ) -> Result<Vec<UniqueKey>, Vec<Issue>>;
}

/// Create or update a resource: the store assigns the version and stamps `meta`.
#[derive(Debug, Clone)]
pub struct PutOp {
    pub resource_type: String,
    pub id: String,
    /// The resource with its `id` set; `meta.versionId`/`lastUpdated` are stamped by the store.
    pub resource: Value,
    pub precondition: Precondition,
    /// The unique-identifier rule for this resource type, if any.
    pub identity: Option<Arc<dyn UniqueIdentity>>,
    /// The search index extractor; `None` writes no index rows.
    pub indexing: Option<Arc<dyn crate::Indexing>>,
    /// The server generated `id` just now: nothing can exist under it, so the store need not look.
    pub new_id: bool,
}

/// Computes, inside the write transaction, a resource's next content from its current version
/// (PATCH, `$meta-add`), so that no other write can land between the read and the write.
pub trait Transform: Send + Sync + std::fmt::Debug {
    /// The resource to store (same type and id) given the current version: `None` when there is
    /// none (or a condition matched nothing), a tombstone when it was deleted. An error refuses
    /// the write and comes back as [`crate::StoreError::Transform`].
    fn apply(
        &self,
        current: Option<&StoredVersion>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>>;
}

/// Rewrite the current version of a resource through a [`Transform`].
#[derive(Debug, Clone)]
pub struct PatchOp {
    pub resource_type: String,
    pub transform: Arc<dyn Transform>,
    /// The unique-identifier rule for this resource type, if any.
    pub identity: Option<Arc<dyn UniqueIdentity>>,
    /// The search index extractor; `None` writes no index rows.
    pub indexing: Option<Arc<dyn crate::Indexing>>,
}

/// Delete a resource (write a tombstone version).
#[derive(Debug, Clone)]
pub struct DeleteOp {
    pub resource_type: String,
    pub id: String,
    pub precondition: Precondition,
}

/// One operation of an atomic write.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Put(PutOp),
    Delete(DeleteOp),
    /// Conditional create (`If-None-Exist`): create `put` unless resources match `condition`;
    /// one match is returned instead, several are an error. Concurrent conditional creates with
    /// the same `lock_key` are serialised, so two of them never both create.
    CreateUnlessExists {
        put: PutOp,
        condition: crate::SearchSpec,
        lock_key: String,
    },
    /// Conditional update (`PUT Type?query`): no match creates `put` (under `put.id`), one match
    /// is updated with `put.resource` (whose id, if any, must be the match's), several are an
    /// error. Serialised with other conditional writes of the same `lock_key`.
    UpdateMatching {
        put: PutOp,
        condition: crate::SearchSpec,
        lock_key: String,
    },
    /// Conditional delete (`DELETE Type?query`): deletes every match, unless there are more than
    /// `max` (an error: nothing is deleted).
    DeleteMatching {
        resource_type: String,
        condition: crate::SearchSpec,
        lock_key: String,
        max: u32,
    },
    /// Rewrites resource `id` through the patch's transform.
    Patch {
        id: String,
        patch: PatchOp,
    },
    /// Rewrites the single resource matching `condition` through the patch's transform (no match:
    /// the transform sees `None`; several are an error).
    PatchMatching {
        patch: PatchOp,
        condition: crate::SearchSpec,
        lock_key: String,
    },
    /// Replaces the index rows of the current version (only those of `param` when given),
    /// without writing a new version: `curanet reindex`.
    Reindex {
        resource_type: String,
        id: String,
        rows: crate::IndexRows,
        param: Option<String>,
    },
    /// Records (or with `None` clears) a maintenance job's progress marker.
    SetMarker {
        name: String,
        value: Option<String>,
    },
}

/// What a write operation did.
#[derive(Debug, Clone)]
pub enum WriteOutcome {
    /// A new version was written; `created` when there was no live resource before.
    Written {
        version: StoredVersion,
        created: bool,
    },
    /// A delete of a resource that does not exist or is already deleted: nothing written.
    NothingToDelete { existed: bool },
    /// A conditional create found this resource: nothing written.
    Existing { version: StoredVersion },
    /// A conditional delete wrote these tombstones (none when nothing matched).
    DeletedMatching { tombstones: Vec<StoredVersion> },
    /// Index rows or a marker were written.
    Maintained,
}

/// The tags, security labels and profiles in use on live resources (`$meta`), each distinct and
/// sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaSummary {
    /// `(system, code)` of `meta.tag` codings (`system` empty when absent).
    pub tags: Vec<(String, String)>,
    /// `(system, code)` of `meta.security` codings.
    pub security: Vec<(String, String)>,
    /// `meta.profile` canonical URLs.
    pub profiles: Vec<String>,
}

/// Which versions a history interaction covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryScope {
    System,
    Type(String),
    Instance(String, String),
}

/// A history request, already parsed.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub scope: HistoryScope,
    /// Only versions updated at or after this instant (`_since`).
    pub since: Option<Instant>,
    /// Only versions that were current at some point in `[start, end)` (`_at`).
    pub at: Option<(i64, i64)>,
    /// Keyset cursor: only versions older than this position.
    pub before: Option<i64>,
    /// Page size.
    pub count: u32,
}

impl StoredVersion {
    /// The resource JSON parsed back into a value (tombstones have none).
    pub fn resource(&self) -> Option<Value> {
        self.content
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
    }
}
