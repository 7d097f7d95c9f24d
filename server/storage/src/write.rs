//! The write rules shared by both engines: preconditions, version numbers, monotonic timestamps,
//! unique identifiers, tombstones. Each engine supplies the SQL through [`WriteTx`].

use curanet_fhir::{Instant, envelope};

use crate::model::{
    DeleteOp, Method, PatchOp, Precondition, PutOp, StoredVersion, UniqueKey, WriteOp, WriteOutcome,
};
use crate::{IndexRows, Result, StoreError};

/// The current state of a resource, as seen inside the write transaction.
pub(crate) struct Current {
    pub version: i64,
    pub last_updated: i64,
    pub deleted: bool,
}

/// The statements a write needs, run inside one open transaction of an engine.
#[async_trait::async_trait]
pub(crate) trait WriteTx: Send {
    /// The current version, locked against concurrent writers where the engine needs it.
    async fn current(&mut self, resource_type: &str, id: &str) -> Result<Option<Current>>;
    /// One version of a resource (after [`WriteTx::current`] locked it).
    async fn version(
        &mut self,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredVersion>>;
    /// The unique keys a resource owns already.
    async fn owned(&mut self, resource_type: &str, id: &str) -> Result<Vec<UniqueKey>>;
    /// Claims a unique key for a resource; returns the owner when another resource already has it.
    async fn claim(
        &mut self,
        key: &UniqueKey,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<String>>;
    /// Appends a version row and makes it current; returns its seq.
    async fn append(&mut self, v: &StoredVersion) -> Result<i64>;
    /// Serialises writers that use the same key until the transaction ends (no-op where writes
    /// are already serial).
    async fn lock(&mut self, key: &str) -> Result<()>;
    /// Ids of up to `limit` live resources matching a search, as seen inside the transaction.
    async fn matching(
        &mut self,
        spec: &crate::SearchSpec,
        limit: u32,
    ) -> Result<Vec<StoredVersion>>;
    /// Replaces the search index rows of a resource (`existed`: it may have rows to remove);
    /// with `param`, only that parameter's rows.
    async fn replace_index(
        &mut self,
        resource_type: &str,
        id: &str,
        rows: &IndexRows,
        existed: bool,
        param: Option<&str>,
    ) -> Result<()>;
    /// Sets or clears a maintenance marker.
    async fn set_marker(&mut self, name: &str, value: Option<&str>) -> Result<()>;
}

/// Applies `ops` in order inside the open transaction `tx`. When one of several operations
/// fails, the error says which ([`StoreError::InOperation`]): a transaction names the entry.
pub(crate) async fn apply(tx: &mut dyn WriteTx, ops: &[WriteOp]) -> Result<Vec<WriteOutcome>> {
    let mut outcomes = Vec::with_capacity(ops.len());
    for (index, op) in ops.iter().enumerate() {
        match apply_one(tx, op).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) if ops.len() > 1 => {
                return Err(StoreError::InOperation {
                    index,
                    source: Box::new(e),
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(outcomes)
}

async fn apply_one(tx: &mut dyn WriteTx, op: &WriteOp) -> Result<WriteOutcome> {
    Ok(match op {
        WriteOp::Put(put) => put_one(tx, put).await?,
        WriteOp::Delete(del) => delete_one(tx, del).await?,
        WriteOp::Reindex {
            resource_type,
            id,
            rows,
            param,
        } => {
            tx.replace_index(resource_type, id, rows, true, param.as_deref())
                .await?;
            WriteOutcome::Maintained
        }
        WriteOp::SetMarker { name, value } => {
            tx.set_marker(name, value.as_deref()).await?;
            WriteOutcome::Maintained
        }
        WriteOp::CreateUnlessExists {
            put,
            condition,
            lock_key,
        } => {
            tx.lock(lock_key).await?;
            let mut found = tx.matching(condition, 2).await?;
            match found.len() {
                0 => put_one(tx, put).await?,
                1 => WriteOutcome::Existing {
                    version: found.remove(0),
                },
                count => return Err(StoreError::MultipleMatches { count }),
            }
        }
        WriteOp::UpdateMatching {
            put,
            condition,
            lock_key,
        } => {
            // The lock and the search run in this transaction: a concurrent conditional write
            // with the same criteria waits, then sees what this one wrote.
            tx.lock(lock_key).await?;
            let found = tx.matching(condition, 2).await?;
            let mut put = put.clone();
            match found.as_slice() {
                [] => {}
                [one] => {
                    if let Some(given) = envelope::id(&put.resource)
                        && given != one.id
                    {
                        return Err(StoreError::IdMismatch {
                            given: given.to_string(),
                            found: one.id.clone(),
                        });
                    }
                    put.id.clone_from(&one.id);
                    put.new_id = false;
                }
                _ => {
                    return Err(StoreError::MultipleMatches { count: found.len() });
                }
            }
            envelope::set_id(&mut put.resource, &put.id);
            put_one(tx, &put).await?
        }
        WriteOp::DeleteMatching {
            resource_type,
            condition,
            lock_key,
            max,
        } => {
            tx.lock(lock_key).await?;
            let found = tx.matching(condition, max.saturating_add(1)).await?;
            if found.len() > *max as usize {
                return Err(if *max <= 1 {
                    StoreError::MultipleMatches { count: found.len() }
                } else {
                    StoreError::TooManyMatches { max: *max }
                });
            }
            let mut tombstones = Vec::with_capacity(found.len());
            for f in found {
                let del = DeleteOp {
                    resource_type: resource_type.clone(),
                    id: f.id,
                    precondition: Precondition::None,
                };
                if let WriteOutcome::Written { version, .. } = delete_one(tx, &del).await? {
                    tombstones.push(version);
                }
            }
            WriteOutcome::DeletedMatching { tombstones }
        }
        WriteOp::Patch { id, patch } => patch_one(tx, patch, Some(id)).await?,
        WriteOp::PatchMatching {
            patch,
            condition,
            lock_key,
        } => {
            tx.lock(lock_key).await?;
            let found = tx.matching(condition, 2).await?;
            match found.as_slice() {
                [] => patch_one(tx, patch, None).await?,
                [one] => patch_one(tx, patch, Some(&one.id)).await?,
                _ => return Err(StoreError::MultipleMatches { count: found.len() }),
            }
        }
    })
}

/// Rewrites resource `id` (`None`: a condition matched nothing) through the patch's transform,
/// which sees the current version as locked by this transaction.
async fn patch_one(
    tx: &mut dyn WriteTx,
    patch: &PatchOp,
    id: Option<&str>,
) -> Result<WriteOutcome> {
    let rt = &patch.resource_type;
    let current = match id {
        Some(id) => tx.current(rt, id).await?,
        None => None,
    };
    let stored = match (id, &current) {
        (Some(id), Some(c)) => tx.version(rt, id, c.version).await?,
        _ => None,
    };
    let resource = patch
        .transform
        .apply(stored.as_ref())
        .map_err(StoreError::Transform)?;
    // The transform must refuse a missing target; should it not, nothing is written.
    let (Some(id), Some(current)) = (id, current.filter(|c| !c.deleted)) else {
        return Err(StoreError::Transform(
            "there is no resource to change".into(),
        ));
    };
    if envelope::id(&resource) != Some(id) {
        return Err(StoreError::Transform(
            "a change must keep the resource's id".into(),
        ));
    }
    let put = PutOp {
        resource_type: rt.clone(),
        id: id.to_string(),
        resource,
        precondition: Precondition::IfMatch(current.version),
        identity: patch.identity.clone(),
        indexing: patch.indexing.clone(),
        new_id: false,
    };
    put_one(tx, &put).await
}

fn check(precondition: Precondition, rt: &str, id: &str, current: Option<&Current>) -> Result<()> {
    let live = current.filter(|c| !c.deleted);
    let conflict = |expected: String| StoreError::VersionConflict {
        resource_type: rt.to_string(),
        id: id.to_string(),
        expected,
        found: match live {
            Some(c) => format!("version {}", c.version),
            None if current.is_some() => "a deleted resource".into(),
            None => "no resource".into(),
        },
    };
    match precondition {
        Precondition::None => Ok(()),
        Precondition::MustNotExist if live.is_some() => Err(conflict("no resource".into())),
        Precondition::MustNotExist => Ok(()),
        Precondition::IfMatch(v) if live.is_some_and(|c| c.version == v) => Ok(()),
        Precondition::IfMatch(v) => Err(conflict(format!("version {v}"))),
    }
}

/// The next version's timestamp: now, but never before the previous version's.
fn next_instant(current: Option<&Current>) -> Instant {
    let now = Instant::now();
    match current {
        Some(c) if c.last_updated >= now.micros() => Instant(c.last_updated + 1),
        _ => now,
    }
}

async fn put_one(tx: &mut dyn WriteTx, put: &PutOp) -> Result<WriteOutcome> {
    let current = if put.new_id {
        None
    } else {
        tx.current(&put.resource_type, &put.id).await?
    };
    check(
        put.precondition,
        &put.resource_type,
        &put.id,
        current.as_ref(),
    )?;
    let owned = match &put.identity {
        Some(_) if !put.new_id => tx.owned(&put.resource_type, &put.id).await?,
        _ => Vec::new(),
    };
    let (mut stored, new_keys, rows) = prepare_put(put, current.as_ref(), &owned)?;
    for key in &new_keys {
        if let Some(owner) = tx.claim(key, &put.resource_type, &put.id).await? {
            return Err(StoreError::DuplicateIdentifier {
                system: key.system.clone(),
                value: key.value.clone(),
                owner,
            });
        }
    }
    stored.seq = tx.append(&stored).await?;
    tx.replace_index(&put.resource_type, &put.id, &rows, current.is_some(), None)
        .await?;
    Ok(WriteOutcome::Written {
        created: current.as_ref().is_none_or(|c| c.deleted),
        version: stored,
    })
}

/// The version row a put writes (without its seq), the unique keys it must newly claim, and its
/// search index rows. `current` and `owned` describe the resource as stored; the precondition
/// was checked.
pub(crate) fn prepare_put(
    put: &PutOp,
    current: Option<&Current>,
    owned: &[UniqueKey],
) -> Result<(StoredVersion, Vec<UniqueKey>, IndexRows)> {
    let mut resource = put.resource.clone();
    let mut new_keys = Vec::new();
    if let Some(identity) = &put.identity {
        let keys = identity
            .resolve(&mut resource, owned)
            .map_err(StoreError::Refused)?;
        new_keys = keys.into_iter().filter(|k| !owned.contains(k)).collect();
    }
    let version = current.map_or(1, |c| c.version + 1);
    let last_updated = next_instant(current);
    envelope::stamp(&mut resource, version, last_updated);
    let rows = put
        .indexing
        .as_ref()
        .map(|i| i.rows(&put.resource_type, &resource))
        .unwrap_or_default();
    let created = current.is_none_or(|c| c.deleted);
    let stored = StoredVersion {
        resource_type: put.resource_type.clone(),
        id: put.id.clone(),
        version,
        last_updated,
        deleted: false,
        method: if created && put.precondition == Precondition::MustNotExist {
            Method::Post
        } else {
            Method::Put
        },
        content: Some(serde_json::to_string(&resource).expect("JSON value serialises")),
        seq: 0,
    };
    Ok((stored, new_keys, rows))
}

async fn delete_one(tx: &mut dyn WriteTx, del: &DeleteOp) -> Result<WriteOutcome> {
    let current = tx.current(&del.resource_type, &del.id).await?;
    check(
        del.precondition,
        &del.resource_type,
        &del.id,
        current.as_ref(),
    )?;
    let Some(cur) = current.as_ref().filter(|c| !c.deleted) else {
        return Ok(WriteOutcome::NothingToDelete {
            existed: current.is_some(),
        });
    };
    let mut stored = StoredVersion {
        resource_type: del.resource_type.clone(),
        id: del.id.clone(),
        version: cur.version + 1,
        last_updated: next_instant(current.as_ref()),
        deleted: true,
        method: Method::Delete,
        content: None,
        seq: 0,
    };
    stored.seq = tx.append(&stored).await?;
    tx.replace_index(
        &del.resource_type,
        &del.id,
        &IndexRows::default(),
        true,
        None,
    )
    .await?;
    Ok(WriteOutcome::Written {
        version: stored,
        created: false,
    })
}
