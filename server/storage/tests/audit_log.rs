//! The audit log ([`AuditStore`]) against a real SQLite file and a real PostgreSQL database:
//! batches appended linked, searches by each column, a write's record committed in the write's
//! own transaction (and absent when the write fails), and its linking by the next batch.

use std::path::PathBuf;
use std::sync::Arc;

use curanet_storage::testing::ThrowawayPostgres;
use curanet_storage::{
    AuditColumn, AuditMatch, AuditQuery, AuditRecord, AuditStore, AuditTime, Precondition, PutOp,
    Store, StoreOptions, WRITE_AUDIT, WriteAudit, WriteOp, open_with_audit,
};
use serde_json::json;

/// A chain rule for the test: previous, position and body joined (no hashing needed here).
fn joined(previous: &str, position: i64, body: &str) -> String {
    format!("{}>{position}:{body}", previous.len())
}

fn record(n: i64, patient: &str, subtype: &str, agent: &str) -> AuditRecord {
    AuditRecord {
        recorded: 1_000 + n,
        patients: vec![patient.to_string()],
        agent: Some(agent.to_string()),
        alt_id: Some(format!("alt-{agent}")),
        kind: "http://terminology.hl7.org/CodeSystem/audit-event-type|rest".into(),
        subtype: format!("http://hl7.org/fhir/restful-interaction|{subtype}"),
        action: "R".into(),
        outcome: if n % 2 == 0 { "0" } else { "8" }.into(),
        entity: Some(format!("Patient/{patient}")),
        body: format!("{{\"n\":{n}}}"),
    }
}

fn query(filters: Vec<(AuditColumn, Vec<AuditMatch>)>) -> AuditQuery {
    AuditQuery {
        filters,
        count: 100,
        total: true,
        ..AuditQuery::default()
    }
}

fn exact(v: &str) -> Vec<AuditMatch> {
    vec![AuditMatch::Exact(v.to_string())]
}

async fn scenario(store: Arc<dyn Store>, log: Arc<dyn AuditStore>) {
    let records: Vec<AuditRecord> = (0..600)
        .map(|n| {
            let patient = if n % 3 == 0 { "p1" } else { "p2" };
            let subtype = if n % 5 == 0 { "search-type" } else { "read" };
            record(n, patient, subtype, "Practitioner/d1")
        })
        .collect();
    let positions = log
        .append_audit_records(Arc::new(records), joined)
        .await
        .unwrap();
    assert_eq!(positions.len(), 600);
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let (head, _) = log.audit_log_head().await.unwrap();
    assert_eq!(head, 600);

    // One record, with its patients and link.
    let first = log.audit_record(positions[0]).await.unwrap().unwrap();
    assert_eq!(first.record.patients, vec!["p1".to_string()]);
    assert_eq!(first.link.as_ref().unwrap().0, 1);
    assert_eq!(
        first.link.as_ref().unwrap().2,
        format!("64>{}:{{\"n\":0}}", positions[0])
    );

    // Searches by column.
    let page = log
        .search_audit(query(vec![(AuditColumn::Patient, exact("p1"))]))
        .await
        .unwrap();
    assert_eq!(page.total, Some(200));
    assert_eq!(page.records.len(), 100);
    assert!(page.more);
    assert!(
        page.records
            .windows(2)
            .all(|w| w[0].record.recorded > w[1].record.recorded)
    );
    let page = log
        .search_audit(query(vec![
            (AuditColumn::Patient, exact("p1")),
            (
                AuditColumn::Subtype,
                vec![AuditMatch::Code("search-type".into())],
            ),
            (AuditColumn::Outcome, exact("0")),
        ]))
        .await
        .unwrap();
    // n divisible by 3, 5 and 2: 0, 30, ..., 570.
    assert_eq!(page.total, Some(20));
    let page = log
        .search_audit(AuditQuery {
            times: vec![AuditTime::Ge(1_100), AuditTime::Lt(1_110)],
            ascending: true,
            ..query(vec![(AuditColumn::Agent, exact("Practitioner/d1"))])
        })
        .await
        .unwrap();
    assert_eq!(page.total, Some(10));
    assert_eq!(page.records[0].record.recorded, 1_100);
    let page = log
        .search_audit(AuditQuery {
            after: Some((1_105, positions[105])),
            ascending: true,
            count: 2,
            ..query(vec![(AuditColumn::AltId, exact("alt-Practitioner/d1"))])
        })
        .await
        .unwrap();
    assert_eq!(
        page.records
            .iter()
            .map(|r| r.record.recorded)
            .collect::<Vec<_>>(),
        vec![1_106, 1_107]
    );
    let page = log
        .search_audit(AuditQuery {
            positions: vec![vec![positions[7], -1]],
            ..query(vec![(AuditColumn::Entity, exact("Patient/p2"))])
        })
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    let none = log
        .search_audit(query(vec![(
            AuditColumn::Type,
            vec![AuditMatch::Code("110114".into())],
        )]))
        .await
        .unwrap();
    assert_eq!(none.total, Some(0));

    // A write carries its record in its transaction, unlinked; a failed write carries none.
    let put = |id: &str, precondition| {
        WriteOp::Put(PutOp {
            resource_type: "Basic".into(),
            id: id.into(),
            resource: json!({"resourceType": "Basic", "id": id, "code": {"text": "x"}}),
            precondition,
            identity: None,
            indexing: None,
            new_id: false,
        })
    };
    let audit = Arc::new(WriteAudit::new(|outcomes| AuditRecord {
        body: format!("{{\"writes\":{}}}", outcomes.len()),
        ..record(9_000, "p3", "create", "Practitioner/d2")
    }));
    WRITE_AUDIT
        .scope(
            audit.clone(),
            store.write(vec![put("b1", Precondition::None)]),
        )
        .await
        .unwrap();
    assert!(audit.written());
    let written = log
        .search_audit(query(vec![(AuditColumn::Patient, exact("p3"))]))
        .await
        .unwrap();
    assert_eq!(written.total, Some(1));
    assert!(written.records[0].link.is_none());
    assert_eq!(log.unlinked_audit_records(i64::MAX).await.unwrap().0, 1);
    let failing = Arc::new(WriteAudit::new(|_| record(9_001, "p4", "update", "x")));
    let failed = WRITE_AUDIT
        .scope(
            failing.clone(),
            store.write(vec![put("b1", Precondition::IfMatch(7))]),
        )
        .await;
    assert!(failed.is_err());
    assert!(!failing.written());
    let none = log
        .search_audit(query(vec![(AuditColumn::Patient, exact("p4"))]))
        .await
        .unwrap();
    assert_eq!(none.total, Some(0));

    // The next batch links it first, then itself.
    let positions = log
        .append_audit_records(Arc::new(vec![record(601, "p1", "read", "d")]), joined)
        .await
        .unwrap();
    assert_eq!(log.unlinked_audit_records(i64::MAX).await.unwrap().0, 0);
    let links = log.audit_log_links(600, 10).await.unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0].record.patients, vec!["p3".to_string()]);
    assert_eq!(links[1].position, positions[0]);
    assert_eq!(log.audit_log_head().await.unwrap().0, 602);
    // An empty batch still links what writes left.
    assert!(
        log.append_audit_records(Arc::default(), joined)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_on_sqlite() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("curanet-audit-log-{}", uuid::Uuid::new_v4()));
    let url = format!("sqlite:{}", dir.join("db.sqlite").display());
    let (store, _, log) = open_with_audit(&url, &StoreOptions::default())
        .await
        .unwrap();
    scenario(store.clone(), log).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_on_postgres() {
    let Some(pg) = ThrowawayPostgres::create("audit_log").await else {
        return;
    };
    let (store, _, log) = open_with_audit(&pg.url, &StoreOptions::default())
        .await
        .unwrap();
    scenario(store.clone(), log).await;
    store.close().await;
    pg.drop_database().await;
}
