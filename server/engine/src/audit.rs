//! Storing the server's own AuditEvents: validated and indexed like any resource (so
//! `AuditEvent?patient=` works), many in one atomic write.

use curanet_fhir::{envelope, new_id};
use curanet_storage::{Precondition, StoredVersion, WriteOp, WriteOutcome};
use serde_json::Value;

use crate::interactions::store_error;
use crate::{Engine, Result};

impl Engine {
    /// Stores new AuditEvents under server-assigned ids in one atomic write and returns the
    /// versions written, in order. An event that does not validate is left out (and logged):
    /// it is the server's own mistake and must not cost the others their record.
    pub async fn store_audit_events(&self, events: Vec<Value>) -> Result<Vec<StoredVersion>> {
        let mut ops = Vec::with_capacity(events.len());
        for mut event in events {
            let issues = self.validator().validate(&event);
            if let Some(issue) = issues.iter().find(|i| i.is_error()) {
                tracing::error!(issue = ?issue, "an AuditEvent the server built does not validate; left out");
                continue;
            }
            let id = new_id();
            envelope::set_id(&mut event, &id);
            ops.push(WriteOp::Put(self.put_op(
                "AuditEvent",
                &id,
                event,
                Precondition::MustNotExist,
                true,
            )));
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = self
            .store()
            .write(ops)
            .await
            .map_err(|e| store_error(e, "AuditEvent"))?;
        Ok(outcomes
            .into_iter()
            .filter_map(|o| match o {
                WriteOutcome::Written { version, .. } => Some(version),
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use curanet_fhir::Definitions;
    use serde_json::json;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_events_are_stored_and_invalid_ones_left_out() {
        let dir = std::env::temp_dir().join(format!("curanet-audit-{}", new_id()));
        let url = format!("sqlite:{}", dir.join("a.db").display());
        let store = curanet_storage::open(&url, &Default::default())
            .await
            .unwrap();
        let engine = Engine::new(store.clone(), Definitions::shared());
        let good = json!({
            "resourceType": "AuditEvent",
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
            "action": "R",
            "recorded": "2026-01-01T00:00:00Z",
            "outcome": "0",
            "agent": [{"requestor": true, "name": "x"}],
            "source": {"observer": {"display": "CuraNet"}},
            "entity": [{"what": {"reference": "Patient/p1"}}],
        });
        let bad = json!({"resourceType": "AuditEvent", "action": "X"});
        let written = engine
            .store_audit_events(vec![good.clone(), bad, good])
            .await
            .unwrap();
        assert_eq!(written.len(), 2);
        assert_ne!(written[0].id, written[1].id);
        let pairs = [("patient".to_string(), "p1".to_string())];
        let found = engine
            .search("AuditEvent", &pairs, "", false)
            .await
            .unwrap();
        assert_eq!(found.page.total, Some(2));
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
