//! A cache of current versions: reads of hot resources skip the database. Every local commit
//! updates the cache before the write is acknowledged; writes of other server instances (on a
//! shared PostgreSQL) invalidate it through change notifications.
//!
//! Reads that miss may fill the cache, but only if no write was in flight and no write or
//! invalidation happened between the moment they looked and the moment they fill it (an epoch
//! checked under moka's per-key lock), and never over a newer version. So a stale version can
//! never be cached after a newer one was acknowledged or announced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use moka::ops::compute::Op;
use moka::sync::Cache;

use crate::model::StoredVersion;

/// A change to stored resources, as a [`ChangeWatcher`] hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// `resource_type/id` was written (here, before the write is acknowledged, or by another
    /// instance sharing the database).
    Resource { resource_type: &'a str, id: &'a str },
    /// Changes may have been missed (the change-notification connection was lost): forget
    /// everything derived from stored resources.
    Unknown,
}

/// Called for every change to stored resources; must be quick (it runs inside the write path).
pub type ChangeWatcher = Arc<dyn Fn(Change<'_>) + Send + Sync>;

/// Current versions by `Type/id`, bounded by the size of their JSON. Every change passes
/// through here, so the cache also tells the registered watchers about them.
pub(crate) struct ReadCache {
    entries: Cache<String, Arc<StoredVersion>>,
    /// Changes at the start and end of every write and at every invalidation.
    epoch: AtomicU64,
    /// Writes started and not yet ended.
    in_flight: AtomicU64,
    /// Told of every change (local commits and other instances' announcements).
    watchers: RwLock<Vec<ChangeWatcher>>,
}

/// The cache key (and change-notification payload) of a resource: `Type/id`.
pub(crate) fn key(resource_type: &str, id: &str) -> String {
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
            in_flight: AtomicU64::new(0),
            watchers: RwLock::new(Vec::new()),
        }
    }

    /// Registers a watcher of every later change.
    pub(crate) fn watch(&self, watcher: ChangeWatcher) {
        self.watchers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(watcher);
    }

    fn tell(&self, change: Change<'_>) {
        let watchers = self
            .watchers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for watcher in watchers.iter() {
            watcher(change);
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

    /// Caches a version read from the database at `epoch`, unless a write ran meanwhile.
    pub(crate) fn fill(&self, version: &StoredVersion, epoch: u64) {
        let candidate = Arc::new(version.clone());
        self.entries
            .entry(key(&version.resource_type, &version.id))
            .and_compute_with(|existing| {
                let newer = existing.is_none_or(|e| e.value().version < candidate.version);
                let quiet = self.in_flight.load(Ordering::Acquire) == 0
                    && self.epoch.load(Ordering::Acquire) == epoch;
                if newer && quiet {
                    Op::Put(candidate)
                } else {
                    Op::Nop
                }
            });
    }

    /// Marks the start of a write (readers stop filling).
    pub(crate) fn begin_write(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Records a committed version (before the write is acknowledged).
    pub(crate) fn committed(&self, version: &StoredVersion) {
        self.tell(Change::Resource {
            resource_type: &version.resource_type,
            id: &version.id,
        });
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

    /// Marks the end of a write.
    pub(crate) fn end_write(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Forgets a resource another instance changed.
    pub(crate) fn invalidate(&self, key: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(key);
        match key.split_once('/') {
            Some((resource_type, id)) => self.tell(Change::Resource { resource_type, id }),
            None => self.tell(Change::Unknown),
        }
    }

    /// Forgets everything (after a lost change-notification connection).
    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
        self.tell(Change::Unknown);
    }

    /// Reads through the cache: `load` runs on a miss, and its result may fill the cache.
    pub(crate) async fn read<F, Fut>(
        &self,
        resource_type: &str,
        id: &str,
        load: F,
    ) -> crate::Result<Option<StoredVersion>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = crate::Result<Option<StoredVersion>>>,
    {
        if let Some(hit) = self.get(resource_type, id) {
            return Ok(Some(StoredVersion::clone(&hit)));
        }
        let epoch = self.read_epoch();
        let version = load().await?;
        if let Some(v) = &version {
            self.fill(v, epoch);
        }
        Ok(version)
    }

    /// Runs a write, keeping the cache consistent with what it commits.
    pub(crate) async fn write<F, Fut>(&self, write: F) -> crate::Result<Vec<crate::WriteOutcome>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = crate::Result<Vec<crate::WriteOutcome>>>,
    {
        self.begin_write();
        let result = write().await;
        if let Ok(outcomes) = &result {
            self.committed_all(outcomes);
        }
        self.end_write();
        result
    }

    /// Records every version a successful write committed.
    pub(crate) fn committed_all(&self, outcomes: &[crate::WriteOutcome]) {
        for outcome in outcomes {
            match outcome {
                crate::WriteOutcome::Written { version, .. } => self.committed(version),
                crate::WriteOutcome::DeletedMatching { tombstones } => {
                    tombstones.iter().for_each(|v| self.committed(v));
                }
                _ => {}
            }
        }
    }
}
