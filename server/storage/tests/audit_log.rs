//! The audit log ([`AuditStore`]) against a real SQLite file and a real PostgreSQL database:
//! batches stored as linked blocks, searches by each column (also paging across blocks), a
//! write's record committed in the write's own transaction (and absent when the write fails),
//! and its linking by the next batch.

use std::path::PathBuf;
use std::sync::Arc;

use curanet_storage::testing::ThrowawayPostgres;
use curanet_storage::{
    AuditBatch, AuditColumn, AuditId, AuditMatch, AuditQuery, AuditRecord, AuditStore, AuditTime,
    Precondition, PutOp, Store, StoreOptions, WRITE_AUDIT, WriteAudit, WriteOp, open_with_audit,
};
use serde_json::{Value, json};

/// A chain rule for the test: previous, block and body joined (no hashing needed here).
fn joined(previous: &str, block: i64, body: &str) -> String {
    format!("{}>{block}:{}", previous.len(), body.len())
}

/// The test's record format: the columns themselves, as JSON.
fn encode(r: &AuditRecord) -> String {
    json!({
        "recorded": r.recorded, "patients": r.patients, "agent": r.agent, "alt_id": r.alt_id,
        "kind": r.kind, "subtype": r.subtype, "action": r.action, "outcome": r.outcome,
        "entity": r.entity,
    })
    .to_string()
}

fn decode(text: &str) -> Option<AuditRecord> {
    let v: Value = serde_json::from_str(text).ok()?;
    let s = |k: &str| v[k].as_str().map(str::to_string);
    Some(AuditRecord {
        recorded: v["recorded"].as_i64()?,
        patients: v["patients"]
            .as_array()?
            .iter()
            .filter_map(|p| p.as_str().map(str::to_string))
            .collect(),
        agent: s("agent"),
        alt_id: s("alt_id"),
        kind: s("kind")?,
        subtype: s("subtype")?,
        action: s("action")?,
        outcome: s("outcome")?,
        entity: s("entity"),
        body: String::new(),
    })
}

fn record(n: i64, patient: &str, subtype: &str, agent: &str) -> AuditRecord {
    let mut r = AuditRecord {
        recorded: 1_000 + n,
        patients: vec![patient.to_string()],
        agent: Some(agent.to_string()),
        alt_id: Some(format!("alt-{agent}")),
        kind: "http://terminology.hl7.org/CodeSystem/audit-event-type|rest".into(),
        subtype: format!("http://hl7.org/fhir/restful-interaction|{subtype}"),
        action: "R".into(),
        outcome: if n % 2 == 0 { "0" } else { "8" }.into(),
        entity: Some(format!("Patient/{patient}")),
        body: String::new(),
    };
    r.body = encode(&r);
    r
}

fn batch(records: &[AuditRecord]) -> AuditBatch {
    let mut b = AuditBatch::new();
    for r in records {
        b.push(r.recorded, r.keys(), |out| {
            out.extend_from_slice(r.body.as_bytes());
            true
        });
    }
    b
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
    let block = log
        .append_audit_batch(batch(&records), joined)
        .await
        .unwrap()
        .unwrap();
    let (head, _) = log.audit_log_head().await.unwrap();
    assert_eq!(head, 1);
    let id = |index: u32| AuditId { block, index };

    // One record, with its patients and its block's link.
    let first = log.audit_record(id(0), decode).await.unwrap().unwrap();
    assert_eq!(first.record.patients, vec!["p1".to_string()]);
    assert_eq!(first.record.body, records[0].body);
    assert_eq!(first.link.as_ref().unwrap().0, 1);
    assert!(
        first
            .link
            .as_ref()
            .unwrap()
            .2
            .starts_with(&format!("64>{block}:")),
        "{:?}",
        first.link
    );
    let last = log.audit_record(id(599), decode).await.unwrap().unwrap();
    assert_eq!(last.record.recorded, 1_599);
    assert!(log.audit_record(id(600), decode).await.unwrap().is_none());

    // Searches by column.
    let page = log
        .search_audit(query(vec![(AuditColumn::Patient, exact("p1"))]), decode)
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
        .search_audit(
            query(vec![
                (AuditColumn::Patient, exact("p1")),
                (
                    AuditColumn::Subtype,
                    vec![AuditMatch::Code("search-type".into())],
                ),
                (AuditColumn::Outcome, exact("0")),
            ]),
            decode,
        )
        .await
        .unwrap();
    // n divisible by 3, 5 and 2: 0, 30, ..., 570.
    assert_eq!(page.total, Some(20));
    let page = log
        .search_audit(
            AuditQuery {
                times: vec![AuditTime::Ge(1_100), AuditTime::Lt(1_110)],
                ascending: true,
                ..query(vec![(AuditColumn::Agent, exact("Practitioner/d1"))])
            },
            decode,
        )
        .await
        .unwrap();
    assert_eq!(page.total, Some(10));
    assert_eq!(page.records[0].record.recorded, 1_100);
    let page = log
        .search_audit(
            AuditQuery {
                after: Some((1_105, id(105))),
                ascending: true,
                count: 2,
                ..query(vec![(AuditColumn::AltId, exact("alt-Practitioner/d1"))])
            },
            decode,
        )
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
        .search_audit(
            AuditQuery {
                ids: vec![vec![
                    id(7),
                    AuditId {
                        block: -1,
                        index: 0,
                    },
                ]],
                ..query(vec![(AuditColumn::Entity, exact("Patient/p2"))])
            },
            decode,
        )
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].id, id(7));
    let none = log
        .search_audit(
            query(vec![(
                AuditColumn::Type,
                vec![AuditMatch::Code("110114".into())],
            )]),
            decode,
        )
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
    let audit = Arc::new(WriteAudit::new(|outcomes| {
        let mut r = record(9_000, "p3", "create", "Practitioner/d2");
        r.outcome = format!("{}", outcomes.len() - 1);
        r.body = encode(&r);
        r
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
        .search_audit(query(vec![(AuditColumn::Patient, exact("p3"))]), decode)
        .await
        .unwrap();
    assert_eq!(written.total, Some(1));
    assert!(written.records[0].link.is_none());
    assert_eq!(written.records[0].record.outcome, "0");
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
        .search_audit(query(vec![(AuditColumn::Patient, exact("p4"))]), decode)
        .await
        .unwrap();
    assert_eq!(none.total, Some(0));

    // The next batch links it first, then itself.
    let next = log
        .append_audit_batch(batch(&[record(601, "p1", "read", "d")]), joined)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.unlinked_audit_records(i64::MAX).await.unwrap().0, 0);
    let links = log.audit_log_links(1, 10).await.unwrap();
    assert_eq!(links.len(), 2);
    assert!(
        links[0]
            .summary
            .keys
            .contains(&("patient|p3".to_string(), 1))
    );
    assert_eq!(links[1].block, next);
    assert_eq!(links[1].summary.records, 1);
    assert_eq!(log.audit_log_head().await.unwrap().0, 3);
    // An empty batch still links what writes left.
    assert!(
        log.append_audit_batch(AuditBatch::new(), joined)
            .await
            .unwrap()
            .is_none()
    );

    // Paging through every record of the three blocks, newest first, then oldest first.
    for ascending in [false, true] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = log
                .search_audit(
                    AuditQuery {
                        ascending,
                        after,
                        count: 250,
                        total: true,
                        ..AuditQuery::default()
                    },
                    decode,
                )
                .await
                .unwrap();
            assert_eq!(page.total, Some(602));
            seen.extend(page.records.iter().map(|r| (r.record.recorded, r.id)));
            let Some(last) = page.records.last() else {
                break;
            };
            after = Some((last.record.recorded, last.id));
            if !page.more {
                break;
            }
        }
        assert_eq!(seen.len(), 602);
        let mut sorted = seen.clone();
        sorted.sort();
        if !ascending {
            sorted.reverse();
        }
        assert_eq!(seen, sorted);
    }
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
