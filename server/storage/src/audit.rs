//! The audit trail's storage ([`AuditStore`]): the compact audit log (`audit_log`, migration
//! 0012: search columns, the record's body, its link in the hash chain) and the legacy chain of
//! AuditEvent resources written before it (`audit_chain`, 0011), kept for verification.
//! Statements are written once over the account store's connection machinery (`auth/engine.rs`)
//! and run on either engine.
//!
//! Linking locks the single head row (`audit_log_head`; `SELECT ... FOR UPDATE` on PostgreSQL,
//! the single writer on SQLite) inside the batch's transaction, so several server instances on
//! one database extend one linear chain. A write's record is inserted unlinked in the write's
//! own transaction ([`WRITE_AUDIT`]) and linked by the next batch. How a link's hash is computed
//! is the caller's rule (`curanet_auth::audit`), passed in: this crate knows no hashing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Result;
use crate::auth::engine::{self, Conn, Param, params};
use crate::auth::run;
use crate::model::WriteOutcome;
use crate::sql::Dialect;

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The AuditEvent it covers.
    pub resource_id: String,
    /// The hash of the link before (the genesis value for the first).
    pub prev_hash: String,
    /// This link's hash.
    pub hash: String,
}

/// Computes a link's hash from the previous hash and the record's canonical text.
pub type LinkHash = fn(previous: &str, canonical: &str) -> String;

/// Where the audit chain is kept.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one link per record (`(AuditEvent id, canonical JSON)`, in order) after the
    /// current head, in one transaction; returns the new links.
    async fn append_audit_links(
        &self,
        records: Vec<(String, String)>,
        hash: LinkHash,
    ) -> Result<Vec<ChainLink>>;

    /// Up to `limit` links after position `after`, in order.
    async fn audit_links(&self, after: i64, limit: u32) -> Result<Vec<ChainLink>>;

    /// The head: the position and hash of the last link appended.
    async fn audit_head(&self) -> Result<(i64, String)>;

    /// How many AuditEvents stored before `before` (microseconds since the epoch) no link
    /// covers, and the ids of up to `limit` of them, oldest first.
    async fn unchained_audit_events(&self, before: i64, limit: u32) -> Result<(i64, Vec<String>)>;

    /// Links the log's unlinked records (in position order), then appends `records` linked after
    /// them, in one transaction; returns the positions given to `records`.
    async fn append_audit_records(
        &self,
        records: Arc<Vec<AuditRecord>>,
        hash: RecordHash,
    ) -> Result<Vec<i64>>;

    /// One record of the log.
    async fn audit_record(&self, position: i64) -> Result<Option<StoredAudit>>;

    /// The records a search matches (one page, and the total when asked).
    async fn search_audit(&self, query: AuditQuery) -> Result<AuditPage>;

    /// Up to `limit` records of the log linked after chain position `after`, in chain order.
    async fn audit_log_links(&self, after: i64, limit: u32) -> Result<Vec<StoredAudit>>;

    /// The log's head: the chain position and hash of the last record linked.
    async fn audit_log_head(&self) -> Result<(i64, String)>;

    /// How many records recorded before `before` (µs since the epoch) are still unlinked, and the
    /// position of the oldest.
    async fn unlinked_audit_records(&self, before: i64) -> Result<(i64, Option<i64>)>;
}

/// Computes a log record's hash from the previous hash, its position and its body.
pub type RecordHash = fn(previous: &str, position: i64, body: &str) -> String;

/// One record of the audit log as written: the columns searches use and its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditRecord {
    /// When it was recorded, µs since the epoch.
    pub recorded: i64,
    /// The patients it is about (ids).
    pub patients: Vec<String>,
    /// The user's `who` reference (`Practitioner/1`), when it has one.
    pub agent: Option<String>,
    /// The user's `altId` (the token's subject).
    pub alt_id: Option<String>,
    /// `type` as `system|code`.
    pub kind: String,
    /// The first `subtype` as `system|code`.
    pub subtype: String,
    /// `action`: C, R, U, D or E.
    pub action: String,
    /// `outcome`: 0, 4, 8 or 12.
    pub outcome: String,
    /// The resource acted on, `Type/id` (no version).
    pub entity: Option<String>,
    /// The record as compact JSON, the text the chain covers.
    pub body: String,
}

/// A record as stored, with its place in the log and in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAudit {
    /// Its position in the log (the AuditEvent's id).
    pub position: i64,
    /// What was written.
    pub record: AuditRecord,
    /// Its link, once linked: `(seq, prev_hash, hash)`.
    pub link: Option<(i64, String, String)>,
}

/// A search column of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditColumn {
    Patient,
    Agent,
    AltId,
    Type,
    Subtype,
    Action,
    Outcome,
    Entity,
}

/// How a value matches a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditMatch {
    /// The whole value.
    Exact(String),
    /// A `system|code` column whose code is this, whatever the system.
    Code(String),
}

/// One comparison of `recorded` (µs since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditTime {
    Ge(i64),
    Gt(i64),
    Le(i64),
    Lt(i64),
}

/// A search of the log: every filter must hold (each is any of its values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// `_id`: any of these positions (every list must hold).
    pub positions: Vec<Vec<i64>>,
    /// Column filters.
    pub filters: Vec<(AuditColumn, Vec<AuditMatch>)>,
    /// `date` comparisons.
    pub times: Vec<AuditTime>,
    /// Oldest first (`_sort=date`) rather than newest first.
    pub ascending: bool,
    /// Continue after this `(recorded, position)` (the paging cursor).
    pub after: Option<(i64, i64)>,
    /// Page size.
    pub count: u32,
    /// Whether to count every match.
    pub total: bool,
}

/// A page of a search of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// The records, in the order asked.
    pub records: Vec<StoredAudit>,
    /// Whether more follow.
    pub more: bool,
    /// Every match, when counted.
    pub total: Option<u64>,
}

/// Builds a write's audit record from the write's outcomes.
type BuildRecord = Box<dyn Fn(&[WriteOutcome]) -> AuditRecord + Send + Sync>;

/// The record a write adds to its own transaction: set for a request (with
/// [`WRITE_AUDIT`]`.scope`) by the HTTP layer, picked up by [`crate::Store::write`] so that the
/// write and its audit record commit together or not at all.
pub struct WriteAudit {
    build: BuildRecord,
    written: AtomicBool,
}

impl WriteAudit {
    /// A record built from the write's outcomes.
    pub fn new(build: impl Fn(&[WriteOutcome]) -> AuditRecord + Send + Sync + 'static) -> Self {
        WriteAudit {
            build: Box::new(build),
            written: AtomicBool::new(false),
        }
    }

    /// Whether a write of the request committed with the record.
    pub fn written(&self) -> bool {
        self.written.load(Ordering::Acquire)
    }

    /// The record for these outcomes, unless an earlier write of the request carried it.
    pub(crate) fn record(&self, outcomes: &[WriteOutcome]) -> Option<AuditRecord> {
        (!self.written()).then(|| (self.build)(outcomes))
    }

    /// Notes that the write carrying the record committed.
    pub(crate) fn committed(&self) {
        self.written.store(true, Ordering::Release);
    }
}

tokio::task_local! {
    /// The audit record of the request this task serves, for its write.
    pub static WRITE_AUDIT: Arc<WriteAudit>;
}

/// The current request's write audit, if any.
pub(crate) fn current_write_audit() -> Option<Arc<WriteAudit>> {
    WRITE_AUDIT.try_with(Arc::clone).ok()
}

/// Inserts a write's record, unlinked, in the write's transaction.
pub(crate) async fn insert_unlinked(c: &mut dyn Conn, record: &AuditRecord) -> Result<()> {
    let row = c
        .first(
            "INSERT INTO audit_log (recorded, agent, alt_id, type, subtype, action, outcome, \
             entity, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING position",
            params![
                record.recorded,
                &record.agent,
                &record.alt_id,
                &record.kind,
                &record.subtype,
                &record.action,
                &record.outcome,
                &record.entity,
                &record.body
            ],
        )
        .await?
        .ok_or_else(|| engine::corrupt("the audit record got no position".into()))?;
    insert_patients(c, &[(row.int(0)?, record)]).await
}

/// The patient rows of records, in one statement.
async fn insert_patients(c: &mut dyn Conn, records: &[(i64, &AuditRecord)]) -> Result<()> {
    let mut values = Vec::new();
    let mut binds = Vec::new();
    for (position, record) in records {
        let mut patients: Vec<&String> = record.patients.iter().collect();
        patients.sort();
        patients.dedup();
        for p in patients {
            values.push(placeholders(c.dialect(), binds.len(), 2));
            binds.push(Param::from(p));
            binds.push(Param::from(*position));
        }
    }
    if values.is_empty() {
        return Ok(());
    }
    for (values, binds) in chunks(c.dialect(), values, binds, 2) {
        c.execute(
            &format!(
                "INSERT INTO audit_log_patient (patient, position) VALUES {}",
                values.join(", ")
            ),
            binds,
        )
        .await?;
    }
    Ok(())
}

/// Rows per statement, at most: well under both engines' limits on bind parameters.
const ROWS_PER_STATEMENT: usize = 250;

/// Splits a multi-row statement's rows (and their binds, `width` each) into statements of at
/// most [`ROWS_PER_STATEMENT`] rows, renumbering the placeholders of the later ones.
fn chunks(
    dialect: Dialect,
    values: Vec<String>,
    binds: Vec<Param>,
    width: usize,
) -> Vec<(Vec<String>, Vec<Param>)> {
    if values.len() <= ROWS_PER_STATEMENT {
        return vec![(values, binds)];
    }
    let mut out = Vec::new();
    let mut binds = binds.into_iter();
    for rows in values.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..rows.len())
            .map(|i| placeholders(dialect, i * width, width))
            .collect();
        let b: Vec<Param> = binds.by_ref().take(rows.len() * width).collect();
        out.push((rows, b));
    }
    out
}

/// `($n+1, ..., $n+width)`; on SQLite anonymous `?`s, bound in order: SQLite looks numbered
/// parameters up by a linear scan per parameter, which made a many-row statement quadratic
/// (half of a saturated server's time in `sqlite3_bind_parameter_name`).
fn placeholders(dialect: Dialect, from: usize, width: usize) -> String {
    let list: Vec<String> = (from + 1..=from + width)
        .map(|i| match dialect {
            Dialect::Sqlite => "?".to_string(),
            Dialect::Postgres => format!("${i}"),
        })
        .collect();
    format!("({})", list.join(", "))
}

const RECORD_COLUMNS: &str = "position, recorded, agent, alt_id, type, subtype, action, outcome, \
     entity, body, seq, prev_hash, hash";

/// A record row (selected with [`RECORD_COLUMNS`]); its patients are filled in separately.
fn stored(r: &dyn engine::DbRow) -> Result<StoredAudit> {
    let seq = r.opt_int(10)?;
    Ok(StoredAudit {
        position: r.int(0)?,
        record: AuditRecord {
            recorded: r.int(1)?,
            patients: Vec::new(),
            agent: r.opt_text(2)?,
            alt_id: r.opt_text(3)?,
            kind: r.text(4)?,
            subtype: r.text(5)?,
            action: r.text(6)?,
            outcome: r.text(7)?,
            entity: r.opt_text(8)?,
            body: r.text(9)?,
        },
        link: match seq {
            Some(seq) => Some((seq, r.text(11)?, r.text(12)?)),
            None => None,
        },
    })
}

/// Fills in the patients of records.
async fn with_patients(c: &mut dyn Conn, records: &mut [StoredAudit]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let list = placeholders(c.dialect(), 0, records.len());
    let binds = records.iter().map(|r| Param::from(r.position)).collect();
    let rows = c
        .query(
            &format!(
                "SELECT position, patient FROM audit_log_patient WHERE position IN {list} \
                 ORDER BY patient"
            ),
            binds,
        )
        .await?;
    for row in rows {
        let position = row.int(0)?;
        if let Some(r) = records.iter_mut().find(|r| r.position == position) {
            r.record.patients.push(row.text(1)?);
        }
    }
    Ok(())
}

async fn append_records(
    c: &mut dyn Conn,
    records: Arc<Vec<AuditRecord>>,
    hash: RecordHash,
) -> Result<Vec<i64>> {
    let head = format!(
        "SELECT seq, hash FROM audit_log_head WHERE id = 1{}",
        c.for_update()
    );
    let row = c
        .first(&head, params![])
        .await?
        .ok_or_else(|| engine::corrupt("the audit log has no head row".into()))?;
    let (start, start_hash) = (row.int(0)?, row.text(1)?);
    let (mut seq, mut previous) = (start, start_hash.clone());
    // Writes' records, committed with their writes: linked first, in position order.
    let pending = c
        .query(
            "SELECT position, body FROM audit_log WHERE seq IS NULL ORDER BY position LIMIT 10000",
            params![],
        )
        .await?;
    for row in pending {
        let position = row.int(0)?;
        seq += 1;
        let h = hash(&previous, position, &row.text(1)?);
        c.execute(
            "UPDATE audit_log SET seq = $1, prev_hash = $2, hash = $3 WHERE position = $4",
            params![seq, &previous, &h, position],
        )
        .await?;
        previous = h;
    }
    let positions = reserve_positions(c, records.len()).await?;
    let mut values = Vec::with_capacity(records.len());
    let mut binds = Vec::with_capacity(records.len() * 13);
    for (record, position) in records.iter().zip(&positions) {
        seq += 1;
        let h = hash(&previous, *position, &record.body);
        values.push(placeholders(c.dialect(), binds.len(), 13));
        binds.extend(params![
            *position,
            record.recorded,
            &record.agent,
            &record.alt_id,
            &record.kind,
            &record.subtype,
            &record.action,
            &record.outcome,
            &record.entity,
            &record.body,
            seq,
            &previous,
            &h
        ]);
        previous = h;
    }
    if !values.is_empty() {
        for (values, binds) in chunks(c.dialect(), values, binds, 13) {
            c.execute(
                &format!(
                    "INSERT INTO audit_log ({RECORD_COLUMNS}) VALUES {}",
                    values.join(", ")
                ),
                binds,
            )
            .await?;
        }
        let with: Vec<(i64, &AuditRecord)> =
            positions.iter().copied().zip(records.iter()).collect();
        insert_patients(c, &with).await?;
    }
    if seq != start {
        c.execute(
            "UPDATE audit_log_head SET seq = $1, hash = $2 WHERE id = 1",
            params![seq, &previous],
        )
        .await?;
    }
    Ok(positions)
}

/// Positions for `n` new records: after the last on SQLite (its writes are serial), from the
/// column's sequence on PostgreSQL (other instances insert concurrently).
async fn reserve_positions(c: &mut dyn Conn, n: usize) -> Result<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    match c.dialect() {
        Dialect::Sqlite => {
            let last = c
                .first(
                    "SELECT COALESCE(MAX(position), 0) FROM audit_log",
                    params![],
                )
                .await?
                .map(|r| r.int(0))
                .transpose()?
                .unwrap_or(0);
            Ok((last + 1..=last + count).collect())
        }
        Dialect::Postgres => c
            .query(
                "SELECT nextval(pg_get_serial_sequence('audit_log', 'position')) \
                 FROM generate_series(1, $1::bigint) ORDER BY 1",
                params![count],
            )
            .await?
            .iter()
            .map(|r| r.int(0))
            .collect(),
    }
}

async fn record_at(c: &mut dyn Conn, position: i64) -> Result<Option<StoredAudit>> {
    let Some(row) = c
        .first(
            &format!("SELECT {RECORD_COLUMNS} FROM audit_log WHERE position = $1"),
            params![position],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut records = vec![stored(row.as_ref())?];
    with_patients(c, &mut records).await?;
    Ok(records.pop())
}

/// The `WHERE` conditions of a search (without the cursor), and their binds.
fn conditions(q: &AuditQuery, binds: &mut Vec<Param>) -> Vec<String> {
    let bind = |binds: &mut Vec<Param>, p: Param| {
        binds.push(p);
        format!("${}", binds.len())
    };
    let mut conds = Vec::new();
    for ids in &q.positions {
        let list: Vec<String> = ids.iter().map(|i| bind(binds, Param::Int(*i))).collect();
        conds.push(format!("a.position IN ({})", list.join(", ")));
    }
    for (column, values) in &q.filters {
        let name = match column {
            AuditColumn::Patient => {
                let list: Vec<String> = values
                    .iter()
                    .map(|v| match v {
                        AuditMatch::Exact(v) | AuditMatch::Code(v) => {
                            bind(binds, Param::Text(v.clone()))
                        }
                    })
                    .collect();
                conds.push(format!(
                    "a.position IN (SELECT p.position FROM audit_log_patient p \
                     WHERE p.patient IN ({}))",
                    list.join(", ")
                ));
                continue;
            }
            AuditColumn::Agent => "agent",
            AuditColumn::AltId => "alt_id",
            AuditColumn::Type => "type",
            AuditColumn::Subtype => "subtype",
            AuditColumn::Action => "action",
            AuditColumn::Outcome => "outcome",
            AuditColumn::Entity => "entity",
        };
        let any: Vec<String> = values
            .iter()
            .map(|v| match v {
                AuditMatch::Exact(v) => {
                    format!("a.{name} = {}", bind(binds, Param::Text(v.clone())))
                }
                // `system|code` columns: the code after the last bar.
                AuditMatch::Code(code) => format!(
                    "a.{name} LIKE {} ESCAPE '\\'",
                    bind(binds, Param::Text(format!("%|{}", like_escape(code))))
                ),
            })
            .collect();
        conds.push(format!("({})", any.join(" OR ")));
    }
    for t in &q.times {
        let (op, v) = match t {
            AuditTime::Ge(v) => (">=", v),
            AuditTime::Gt(v) => (">", v),
            AuditTime::Le(v) => ("<=", v),
            AuditTime::Lt(v) => ("<", v),
        };
        conds.push(format!("a.recorded {op} {}", bind(binds, Param::Int(*v))));
    }
    conds
}

/// `text` with LIKE's wildcards escaped (by a backslash).
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

async fn search(c: &mut dyn Conn, q: AuditQuery) -> Result<AuditPage> {
    let mut binds = Vec::new();
    let conds = conditions(&q, &mut binds);
    let total = if q.total {
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let n = c
            .first(
                &format!("SELECT COUNT(*) FROM audit_log a{where_}"),
                binds_copy(&binds),
            )
            .await?
            .map(|r| r.int(0))
            .transpose()?
            .unwrap_or(0);
        Some(u64::try_from(n).unwrap_or(0))
    } else {
        None
    };
    let mut conds = conds;
    let (cmp, order) = if q.ascending {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    if let Some((recorded, position)) = q.after {
        binds.push(Param::Int(recorded));
        binds.push(Param::Int(position));
        let (r, p) = (binds.len() - 1, binds.len());
        conds.push(format!(
            "(a.recorded {cmp} ${r} OR (a.recorded = ${r} AND a.position {cmp} ${p}))"
        ));
    }
    binds.push(Param::Int(i64::from(q.count) + 1));
    let limit = binds.len();
    let where_ = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let columns: Vec<String> = RECORD_COLUMNS
        .split(", ")
        .map(|c| format!("a.{}", c.trim()))
        .collect();
    let rows = c
        .query(
            &format!(
                "SELECT {} FROM audit_log a{where_} ORDER BY a.recorded {order}, a.position \
                 {order} LIMIT ${limit}",
                columns.join(", ")
            ),
            binds,
        )
        .await?;
    let mut records = rows
        .iter()
        .map(|r| stored(r.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let more = records.len() > q.count as usize;
    records.truncate(q.count as usize);
    with_patients(c, &mut records).await?;
    Ok(AuditPage {
        records,
        more,
        total,
    })
}

/// A copy of binds (the count runs before the page, with the same conditions).
fn binds_copy(binds: &[Param]) -> Vec<Param> {
    binds
        .iter()
        .map(|p| match p {
            Param::Text(v) => Param::Text(v.clone()),
            Param::OptText(v) => Param::OptText(v.clone()),
            Param::Int(v) => Param::Int(*v),
            Param::OptInt(v) => Param::OptInt(*v),
            Param::Bool(v) => Param::Bool(*v),
            Param::OptBytes(v) => Param::OptBytes(v.clone()),
        })
        .collect()
}

async fn log_links(c: &mut dyn Conn, after: i64, limit: u32) -> Result<Vec<StoredAudit>> {
    let rows = c
        .query(
            &format!("SELECT {RECORD_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"),
            params![after, i64::from(limit)],
        )
        .await?;
    let mut records = rows
        .iter()
        .map(|r| stored(r.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    with_patients(c, &mut records).await?;
    Ok(records)
}

async fn log_head(c: &mut dyn Conn) -> Result<(i64, String)> {
    let row = c
        .first(
            "SELECT seq, hash FROM audit_log_head WHERE id = 1",
            params![],
        )
        .await?
        .ok_or_else(|| engine::corrupt("the audit log has no head row".into()))?;
    Ok((row.int(0)?, row.text(1)?))
}

async fn unlinked(c: &mut dyn Conn, before: i64) -> Result<(i64, Option<i64>)> {
    let row = c
        .first(
            "SELECT COUNT(*), MIN(position) FROM audit_log WHERE seq IS NULL AND recorded < $1",
            params![before],
        )
        .await?
        .ok_or_else(|| engine::corrupt("COUNT returned no row".into()))?;
    Ok((row.int(0)?, row.opt_int(1)?))
}

async fn head(c: &mut dyn Conn) -> Result<(i64, String)> {
    let row = c
        .first(
            "SELECT seq, hash FROM audit_chain_head WHERE id = 1",
            params![],
        )
        .await?
        .ok_or_else(|| engine::corrupt("the audit chain has no head row".into()))?;
    Ok((row.int(0)?, row.text(1)?))
}

async fn unchained(c: &mut dyn Conn, before: i64, limit: u32) -> Result<(i64, Vec<String>)> {
    // `audit_chain.resource_id` compares byte for byte on PostgreSQL.
    let collate = match c.dialect() {
        Dialect::Postgres => " COLLATE \"C\"",
        Dialect::Sqlite => "",
    };
    let missing = format!(
        "FROM resources r WHERE r.resource_type = 'AuditEvent' AND r.last_updated < $1 \
         AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.resource_id = r.id{collate})"
    );
    let count = c
        .first(&format!("SELECT COUNT(*) {missing}"), params![before])
        .await?
        .map(|r| r.int(0))
        .transpose()?
        .unwrap_or(0);
    let ids = c
        .query(
            &format!("SELECT r.id {missing} ORDER BY r.last_updated, r.id LIMIT $2"),
            params![before, i64::from(limit)],
        )
        .await?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<Vec<_>>>()?;
    Ok((count, ids))
}

async fn append(
    c: &mut dyn Conn,
    records: Vec<(String, String)>,
    hash: LinkHash,
) -> Result<Vec<ChainLink>> {
    let head = format!(
        "SELECT seq, hash FROM audit_chain_head WHERE id = 1{}",
        c.for_update()
    );
    let row = c
        .first(&head, params![])
        .await?
        .ok_or_else(|| engine::corrupt("the audit chain has no head row".into()))?;
    let (mut seq, mut previous) = (row.int(0)?, row.text(1)?);
    let mut links = Vec::with_capacity(records.len());
    for (resource_id, canonical) in records {
        seq += 1;
        let link = ChainLink {
            seq,
            hash: hash(&previous, &canonical),
            prev_hash: previous,
            resource_id,
        };
        c.execute(
            "INSERT INTO audit_chain (seq, resource_id, prev_hash, hash) VALUES ($1, $2, $3, $4)",
            params![link.seq, &link.resource_id, &link.prev_hash, &link.hash],
        )
        .await?;
        previous = link.hash.clone();
        links.push(link);
    }
    c.execute(
        "UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1",
        params![seq, &previous],
    )
    .await?;
    Ok(links)
}

async fn links(c: &mut dyn Conn, after: i64, limit: u32) -> Result<Vec<ChainLink>> {
    let rows = c
        .query(
            "SELECT seq, resource_id, prev_hash, hash FROM audit_chain WHERE seq > $1 \
             ORDER BY seq LIMIT $2",
            params![after, i64::from(limit)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ChainLink {
                seq: r.int(0)?,
                resource_id: r.text(1)?,
                prev_hash: r.text(2)?,
                hash: r.text(3)?,
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl<S: engine::Engine> AuditStore for S {
    async fn append_audit_links(
        &self,
        records: Vec<(String, String)>,
        hash: LinkHash,
    ) -> Result<Vec<ChainLink>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        run!(self.write, |c| append(c, records, hash))
    }

    async fn audit_links(&self, after: i64, limit: u32) -> Result<Vec<ChainLink>> {
        run!(self.read, |c| links(c, after, limit))
    }

    async fn audit_head(&self) -> Result<(i64, String)> {
        run!(self.read, |c| head(c))
    }

    async fn unchained_audit_events(&self, before: i64, limit: u32) -> Result<(i64, Vec<String>)> {
        run!(self.read, |c| unchained(c, before, limit))
    }

    async fn append_audit_records(
        &self,
        records: Arc<Vec<AuditRecord>>,
        hash: RecordHash,
    ) -> Result<Vec<i64>> {
        run!(self.write, |c| append_records(c, records, hash))
    }

    async fn audit_record(&self, position: i64) -> Result<Option<StoredAudit>> {
        run!(self.read, |c| record_at(c, position))
    }

    async fn search_audit(&self, query: AuditQuery) -> Result<AuditPage> {
        run!(self.read, |c| search(c, query))
    }

    async fn audit_log_links(&self, after: i64, limit: u32) -> Result<Vec<StoredAudit>> {
        run!(self.read, |c| log_links(c, after, limit))
    }

    async fn audit_log_head(&self) -> Result<(i64, String)> {
        run!(self.read, |c| log_head(c))
    }

    async fn unlinked_audit_records(&self, before: i64) -> Result<(i64, Option<i64>)> {
        run!(self.read, |c| unlinked(c, before))
    }
}
