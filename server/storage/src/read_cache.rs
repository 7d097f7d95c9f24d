//! A cache of current versions for the embedded SQLite store, where this process is the only
//! writer: reads of hot resources skip the database, and every commit updates the cache before
//! the write is acknowledged.
//!
//! Reads that miss may fill the cache, but only if no write group was in flight between the
//! moment they looked and the moment they fill it (a write epoch, odd while a group commits,
//! checked under moka's per-key lock), and never over a newer version. So a stale version can
//! never be cached after a newer one was acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::ops::compute::Op;
use moka::sync::Cache;

use crate::model::StoredVersion;

/// Current versions by `Type/id`, bounded by the size of their JSON.
pub(crate) struct ReadCache {
    entries: Cache<String, Arc<StoredVersion>>,
    epoch: AtomicU64,
}

fn key(resource_type: &str, id: &str) -> String {
    let mut k = String::with_capacity(resource_type.len() + id.len() + 1);
    k.push_str(resource_type);
    k.push('/');
    k.push_str(id);
    k
}

impl ReadCache {
    /// A cache holding at most `max_bytes` of resource JSON.
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Arc<StoredVersion>| {
                    let size = k.len() + v.content.as_ref().map_or(0, String::len) + 128;
                    u32::try_from(size).unwrap_or(u32::MAX)
                })
                .build(),
            epoch: AtomicU64::new(0),
        }
    }

    /// The cached current version, if any.
    pub(crate) fn get(&self, resource_type: &str, id: &str) -> Option<Arc<StoredVersion>> {
        self.entries.get(&key(resource_type, id))
    }

    /// The epoch to pass to [`ReadCache::fill`] after reading the database.
    pub(crate) fn read_epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches a version read from the database at `epoch`, unless a write group ran meanwhile.
    pub(crate) fn fill(&self, version: &StoredVersion, epoch: u64) {
        if epoch % 2 == 1 {
            return;
        }
        let candidate = Arc::new(version.clone());
        self.entries
            .entry(key(&version.resource_type, &version.id))
            .and_compute_with(|existing| {
                let newer = existing.is_none_or(|e| e.value().version < candidate.version);
                if newer && self.epoch.load(Ordering::Acquire) == epoch {
                    Op::Put(candidate)
                } else {
                    Op::Nop
                }
            });
    }

    /// Marks the start of a write group (readers stop filling).
    pub(crate) fn begin_write(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Records a committed version (before the write is acknowledged).
    pub(crate) fn committed(&self, version: &StoredVersion) {
        let candidate = Arc::new(version.clone());
        self.entries
            .entry(key(&version.resource_type, &version.id))
            .and_compute_with(|existing| {
                if existing.is_none_or(|e| e.value().version < candidate.version) {
                    Op::Put(candidate)
                } else {
                    Op::Nop
                }
            });
    }

    /// Marks the end of a write group.
    pub(crate) fn end_write(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}
