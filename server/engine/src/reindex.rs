//! `curanet reindex`: rebuilds search index rows of stored resources in small transactions,
//! resumable after an interruption, while the server keeps serving reads and writes.

use curanet_storage::{WriteOp, WriteOutcome};

use crate::{Engine, Result};

/// Resources reindexed per transaction.
const BATCH: u32 = 200;

/// Which index rows a reindex rebuilds.
#[derive(Debug, Clone, Default)]
pub struct ReindexScope {
    /// Only resources of this type.
    pub resource_type: Option<String>,
    /// Only the rows of this search parameter.
    pub param: Option<String>,
}

impl ReindexScope {
    /// The marker that records how far a reindex of this scope got.
    fn marker(&self) -> String {
        format!(
            "reindex:{}:{}",
            self.resource_type.as_deref().unwrap_or("*"),
            self.param.as_deref().unwrap_or("*")
        )
    }
}

impl Engine {
    /// Rebuilds the index rows in `scope`, resuming where an interrupted run of the same scope
    /// stopped; `progress` is told how many resources are done. Returns the number reindexed.
    pub async fn reindex(
        &self,
        scope: &ReindexScope,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        if let Some(t) = &scope.resource_type {
            self.check_type(t)?;
        }
        let marker = scope.marker();
        let mut after = self.store().marker(&marker).await?.and_then(|m| {
            m.split_once('/')
                .map(|(t, i)| (t.to_string(), i.to_string()))
        });
        let mut done = 0;
        loop {
            let batch = self
                .store()
                .scan(scope.resource_type.as_deref(), after.as_ref(), BATCH)
                .await?;
            let Some(last) = batch.last() else { break };
            let position = (last.resource_type.clone(), last.id.clone());
            let mut ops: Vec<WriteOp> = batch
                .iter()
                .filter_map(|v| {
                    let resource = v.resource()?;
                    Some(WriteOp::Reindex {
                        resource_type: v.resource_type.clone(),
                        id: v.id.clone(),
                        rows: self.indexer().extract(&v.resource_type, &resource),
                        param: scope.param.clone(),
                    })
                })
                .collect();
            ops.push(WriteOp::SetMarker {
                name: marker.clone(),
                value: Some(format!("{}/{}", position.0, position.1)),
            });
            let outcomes = self.store().write(ops).await?;
            debug_assert!(
                outcomes
                    .iter()
                    .all(|o| matches!(o, WriteOutcome::Maintained))
            );
            done += batch.len() as u64;
            progress(done);
            after = Some(position);
        }
        self.store()
            .write(vec![WriteOp::SetMarker {
                name: marker,
                value: None,
            }])
            .await?;
        Ok(done)
    }
}
