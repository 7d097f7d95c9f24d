//! The audit trail's storage ([`AuditStore`]): the audit log in blocks (`audit_block`,
//! migration 0014: one row per batch of records, its time range and keys for searches, one link
//! in the hash chain) and the legacy chain of AuditEvent resources written before it
//! (`audit_chain`, 0011), kept for verification. Statements are written once over the account
//! store's connection machinery (`auth/engine.rs`) and run on either engine.
//!
//! Storing a record costs its share of one row: per-record rows, indexes and links cost a
//! saturated server more than serving the read they record. Searches find the candidate blocks
//! in SQL (time range, patient, agent, altId) and filter their decoded records in memory.
//!
//! Linking locks the single head row (`audit_log_head`; `SELECT ... FOR UPDATE` on PostgreSQL,
//! the single writer on SQLite) inside the batch's transaction, so several server instances on
//! one database extend one linear chain. A write's record is inserted as an unlinked block of one
//! in the write's own transaction ([`WRITE_AUDIT`]) and linked by the next batch. How a link's
//! hash is computed and how a record's columns are read from its JSON are the caller's rules
//! (`curanet_auth::audit`), passed in: this crate knows no hashing and no record format.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::Result;
use crate::audit_batch::{AuditBatch, AuditId, AuditKey, BlockSummary};
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

/// Where the audit chain is kept.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Up to `limit` links after position `after`, in order.
    async fn audit_links(&self, after: i64, limit: u32) -> Result<Vec<ChainLink>>;

    /// The head: the position and hash of the last link appended.
    async fn audit_head(&self) -> Result<(i64, String)>;

    /// How many AuditEvents stored before `before` (microseconds since the epoch) no link
    /// covers, and the ids of up to `limit` of them, oldest first.
    async fn unchained_audit_events(&self, before: i64, limit: u32) -> Result<(i64, Vec<String>)>;

    /// Links the log's unlinked blocks (writes' records, in block order), then stores `batch`
    /// as one block linked after them, in one transaction; returns the new block's number
    /// (`None` for an empty batch, which still links what writes left).
    async fn append_audit_batch(&self, batch: AuditBatch, hash: RecordHash) -> Result<Option<i64>>;

    /// One record of the log.
    async fn audit_record(&self, id: AuditId, decode: DecodeRecord) -> Result<Option<StoredAudit>>;

    /// The records a search matches (one page, and the total when asked).
    async fn search_audit(&self, query: AuditQuery, decode: DecodeRecord) -> Result<AuditPage>;

    /// Up to `limit` blocks of the log linked after chain position `after`, in chain order.
    async fn audit_log_links(&self, after: i64, limit: u32) -> Result<Vec<StoredBlock>>;

    /// The log's head: the chain position and hash of the last block linked.
    async fn audit_log_head(&self) -> Result<(i64, String)>;

    /// How many blocks whose records were recorded before `before` (µs since the epoch) are
    /// still unlinked, and the id of the oldest one's first record.
    async fn unlinked_audit_records(&self, before: i64) -> Result<(i64, Option<AuditId>)>;
}

/// Computes a block's hash from the previous hash, its number and its body.
pub type RecordHash = fn(previous: &str, block: i64, body: &str) -> String;

/// Reads the search columns of one record from its JSON (every field but `body`, left empty);
/// `None` when the text is not a record.
pub type DecodeRecord = fn(&str) -> Option<AuditRecord>;

/// One record of the audit log: the columns searches use and its body.
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

impl AuditRecord {
    /// The keys its block is found by.
    pub fn keys(&self) -> impl Iterator<Item = (AuditKey, &str)> + Clone {
        self.patients
            .iter()
            .map(|p| (AuditKey::Patient, p.as_str()))
            .chain(self.agent.as_deref().map(|a| (AuditKey::Agent, a)))
            .chain(self.alt_id.as_deref().map(|a| (AuditKey::AltId, a)))
    }
}

/// A record as stored, with its id and its block's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAudit {
    /// Its id in the log (the AuditEvent's id).
    pub id: AuditId,
    /// What was written.
    pub record: AuditRecord,
    /// Its block's link, once linked: `(seq, prev_hash, hash)`.
    pub link: Option<(i64, String, String)>,
}

/// A block as stored: its records' body, its search summary and its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// The block's number.
    pub block: i64,
    /// Its records' compact JSON joined by `"\n"`, the text the chain covers.
    pub body: String,
    /// Its time range, number of records and keys, as stored.
    pub summary: BlockSummary,
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

impl AuditColumn {
    /// The block key of a column blocks are found by.
    fn key(self) -> Option<AuditKey> {
        match self {
            AuditColumn::Patient => Some(AuditKey::Patient),
            AuditColumn::Agent => Some(AuditKey::Agent),
            AuditColumn::AltId => Some(AuditKey::AltId),
            _ => None,
        }
    }
}

/// How a value matches a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditMatch {
    /// The whole value.
    Exact(String),
    /// A `system|code` column whose code is this, whatever the system.
    Code(String),
}

impl AuditMatch {
    fn matches(&self, value: &str) -> bool {
        match self {
            AuditMatch::Exact(v) => v == value,
            AuditMatch::Code(code) => value
                .strip_suffix(code.as_str())
                .is_some_and(|rest| rest.ends_with('|')),
        }
    }

    fn value(&self) -> &str {
        match self {
            AuditMatch::Exact(v) | AuditMatch::Code(v) => v,
        }
    }
}

/// One comparison of `recorded` (µs since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditTime {
    Ge(i64),
    Gt(i64),
    Le(i64),
    Lt(i64),
}

impl AuditTime {
    fn holds(self, t: i64) -> bool {
        match self {
            AuditTime::Ge(v) => t >= v,
            AuditTime::Gt(v) => t > v,
            AuditTime::Le(v) => t <= v,
            AuditTime::Lt(v) => t < v,
        }
    }
}

/// A search of the log: every filter must hold (each is any of its values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// `_id`: any of these records (every list must hold).
    pub ids: Vec<Vec<AuditId>>,
    /// Column filters.
    pub filters: Vec<(AuditColumn, Vec<AuditMatch>)>,
    /// `date` comparisons.
    pub times: Vec<AuditTime>,
    /// Oldest first (`_sort=date`) rather than newest first.
    pub ascending: bool,
    /// Continue after this `(recorded, id)` (the paging cursor).
    pub after: Option<(i64, AuditId)>,
    /// Page size.
    pub count: u32,
    /// Whether to count every match.
    pub total: bool,
}

impl AuditQuery {
    /// Whether a decoded record of `id` matches every filter and comparison.
    fn matches(&self, id: AuditId, r: &AuditRecord) -> bool {
        self.ids.iter().all(|ids| ids.contains(&id))
            && self.times.iter().all(|t| t.holds(r.recorded))
            && self.filters.iter().all(|(column, values)| {
                let one = |v: &Option<String>| {
                    v.as_deref()
                        .is_some_and(|v| values.iter().any(|m| m.matches(v)))
                };
                let all = |v: &str| values.iter().any(|m| m.matches(v));
                match column {
                    AuditColumn::Patient => r.patients.iter().any(|p| all(p)),
                    AuditColumn::Agent => one(&r.agent),
                    AuditColumn::AltId => one(&r.alt_id),
                    AuditColumn::Type => all(&r.kind),
                    AuditColumn::Subtype => all(&r.subtype),
                    AuditColumn::Action => all(&r.action),
                    AuditColumn::Outcome => all(&r.outcome),
                    AuditColumn::Entity => one(&r.entity),
                }
            })
    }

    /// The single key value a block's stored count answers for (a search on one key column
    /// with one value and nothing else), if the search is one.
    fn counted_key(&self) -> Option<String> {
        match self.filters.as_slice() {
            [(column, values)] if self.ids.is_empty() => match values.as_slice() {
                [AuditMatch::Exact(v)] => column.key().map(|k| k.row(v)),
                _ => None,
            },
            _ => None,
        }
    }
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

/// Inserts a write's record, as an unlinked block of one, in the write's transaction.
pub(crate) async fn insert_unlinked(c: &mut dyn Conn, record: &AuditRecord) -> Result<()> {
    let mut batch = AuditBatch::new();
    batch.push(record.recorded, record.keys(), |b| {
        b.extend_from_slice(record.body.as_bytes());
        true
    });
    let (body, summary) = batch.into_parts();
    insert_block(c, None, body, &summary, None).await?;
    Ok(())
}

/// Inserts a block and its key rows; `block` is the number reserved for it (else the next one
/// is taken). Returns the block's number.
async fn insert_block(
    c: &mut dyn Conn,
    block: Option<i64>,
    body: String,
    summary: &BlockSummary,
    link: Option<(i64, &str, &str)>,
) -> Result<i64> {
    let (seq, prev_hash, hash) = match link {
        Some((seq, p, h)) => (Some(seq), Some(p), Some(h)),
        None => (None, None, None),
    };
    let mut binds = params![
        summary.first_recorded,
        summary.last_recorded,
        i64::from(summary.records)
    ];
    binds.push(Param::Text(body));
    binds.extend(params![seq, prev_hash, hash]);
    let statement = match block {
        Some(b) => {
            binds.push(Param::Int(b));
            "INSERT INTO audit_block (first_recorded, last_recorded, records, body, seq, \
             prev_hash, hash, block) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING block"
        }
        None => {
            "INSERT INTO audit_block (first_recorded, last_recorded, records, body, seq, \
             prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING block"
        }
    };
    let block = c
        .first(statement, binds)
        .await?
        .ok_or_else(|| engine::corrupt("the audit block got no number".into()))?
        .int(0)?;
    let mut values = Vec::with_capacity(summary.keys.len());
    let mut binds = Vec::with_capacity(summary.keys.len() * 3);
    for (key, n) in &summary.keys {
        values.push(placeholders(c.dialect(), binds.len(), 3));
        binds.push(Param::from(key));
        binds.push(Param::Int(block));
        binds.push(Param::Int(i64::from(*n)));
    }
    if !values.is_empty() {
        for (values, binds) in chunks(c.dialect(), values, binds, 3) {
            c.execute(
                &format!(
                    "INSERT INTO audit_block_key (key, block, records) VALUES {}",
                    values.join(", ")
                ),
                binds,
            )
            .await?;
        }
    }
    Ok(block)
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

/// The link columns of a block row (`seq`, `prev_hash`, `hash` at `at`, `at + 1`, `at + 2`).
fn link_at(r: &dyn engine::DbRow, at: usize) -> Result<Option<(i64, String, String)>> {
    Ok(match r.opt_int(at)? {
        Some(seq) => Some((seq, r.text(at + 1)?, r.text(at + 2)?)),
        None => None,
    })
}

/// The number of a block's records (an `INTEGER` column) as stored.
fn count_at(r: &dyn engine::DbRow, at: usize) -> Result<u32> {
    u32::try_from(r.int(at)?).map_err(|_| engine::corrupt("an audit block's count".into()))
}

async fn append_batch(
    c: &mut dyn Conn,
    batch: AuditBatch,
    hash: RecordHash,
) -> Result<Option<i64>> {
    let head = format!(
        "SELECT seq, hash FROM audit_log_head WHERE id = 1{}",
        c.for_update()
    );
    let row = c
        .first(&head, params![])
        .await?
        .ok_or_else(|| engine::corrupt("the audit log has no head row".into()))?;
    let start = row.int(0)?;
    let (mut seq, mut previous) = (start, row.text(1)?);
    // Writes' records, committed with their writes: linked first, in block order.
    let pending = c
        .query(
            "SELECT block, body FROM audit_block WHERE seq IS NULL ORDER BY block LIMIT 10000",
            params![],
        )
        .await?;
    for row in pending {
        let block = row.int(0)?;
        seq += 1;
        let h = hash(&previous, block, &row.text(1)?);
        c.execute(
            "UPDATE audit_block SET seq = $1, prev_hash = $2, hash = $3 WHERE block = $4",
            params![seq, &previous, &h, block],
        )
        .await?;
        previous = h;
    }
    let mut stored = None;
    if !batch.is_empty() {
        let block = reserve_block(c).await?;
        let (body, summary) = batch.into_parts();
        seq += 1;
        let h = hash(&previous, block, &body);
        insert_block(c, Some(block), body, &summary, Some((seq, &previous, &h))).await?;
        previous = h;
        stored = Some(block);
    }
    if seq != start {
        c.execute(
            "UPDATE audit_log_head SET seq = $1, hash = $2 WHERE id = 1",
            params![seq, &previous],
        )
        .await?;
    }
    Ok(stored)
}

/// The number of a new block: after the last on SQLite (its writes are serial), from the
/// column's sequence on PostgreSQL (other instances and writes insert concurrently).
async fn reserve_block(c: &mut dyn Conn) -> Result<i64> {
    let statement = match c.dialect() {
        Dialect::Sqlite => "SELECT COALESCE(MAX(block), 0) + 1 FROM audit_block",
        Dialect::Postgres => "SELECT nextval(pg_get_serial_sequence('audit_block', 'block'))",
    };
    c.first(statement, params![])
        .await?
        .ok_or_else(|| engine::corrupt("no number for an audit block".into()))?
        .int(0)
}

/// The `index`-th record of a block's body.
fn line(body: &str, index: u32) -> Option<&str> {
    body.split('\n').nth(index as usize)
}

async fn record_at(
    c: &mut dyn Conn,
    id: AuditId,
    decode: DecodeRecord,
) -> Result<Option<StoredAudit>> {
    let Some(row) = c
        .first(
            "SELECT body, seq, prev_hash, hash FROM audit_block WHERE block = $1",
            params![id.block],
        )
        .await?
    else {
        return Ok(None);
    };
    let body = row.text(0)?;
    let Some(text) = line(&body, id.index) else {
        return Ok(None);
    };
    let Some(mut record) = decode(text) else {
        return Ok(None);
    };
    record.body = text.to_string();
    Ok(Some(StoredAudit {
        id,
        record,
        link: link_at(row.as_ref(), 1)?,
    }))
}

/// A block a search may find records in.
struct Candidate {
    block: i64,
    first: i64,
    last: i64,
    /// How many of its records match, when the stored summary says it without decoding.
    counted: Option<u64>,
    link: Option<(i64, String, String)>,
}

/// Blocks fetched at once while a search pages.
const BODIES_AT_ONCE: usize = 16;

/// The order of records in a search: `(recorded, block, index)`, newest first unless ascending.
fn before(ascending: bool, a: (i64, AuditId), b: (i64, AuditId)) -> bool {
    if ascending { a < b } else { a > b }
}

async fn search(c: &mut dyn Conn, q: AuditQuery, decode: DecodeRecord) -> Result<AuditPage> {
    let candidates = candidates(c, &q).await?;
    let need = q.count as usize + 1;
    let mut page: Vec<(i64, StoredAudit)> = Vec::new();
    let mut total = 0u64;
    // Whether a block may hold a record that sorts before the page's last (once the page is
    // full); candidates come in order of that bound, so once one may not, none after may.
    let may_enter = |page: &Vec<(i64, StoredAudit)>, b: &Candidate| {
        if page.len() < need {
            return true;
        }
        let last = (page[need - 1].0, page[need - 1].1.id);
        if q.ascending {
            (b.first, AuditId::first(b.block)) < last
        } else {
            (b.last, AuditId::last(b.block)) > last
        }
    };
    // Whether a block may hold a record after the cursor.
    let past_cursor = |b: &Candidate| match q.after {
        None => true,
        Some(cursor) if q.ascending => (b.last, AuditId::last(b.block)) > cursor,
        Some(cursor) => (b.first, AuditId::first(b.block)) < cursor,
    };
    for chunk in candidates.chunks(BODIES_AT_ONCE) {
        if !q.total && !may_enter(&page, &chunk[0]) {
            break;
        }
        let mut decode_now = Vec::new();
        for b in chunk {
            if let Some(n) = b.counted {
                total += n;
            }
            let for_page = past_cursor(b) && may_enter(&page, b);
            if for_page || (q.total && b.counted.is_none()) {
                decode_now.push(b);
            }
        }
        if decode_now.is_empty() {
            continue;
        }
        let list = placeholders(c.dialect(), 0, decode_now.len());
        let binds = decode_now.iter().map(|b| Param::Int(b.block)).collect();
        let rows = c
            .query(
                &format!("SELECT block, body FROM audit_block WHERE block IN {list}"),
                binds,
            )
            .await?;
        for b in decode_now {
            let Some(row) = rows.iter().find(|r| r.int(0).ok() == Some(b.block)) else {
                continue;
            };
            let body = row.text(1)?;
            let for_page = past_cursor(b) && may_enter(&page, b);
            for (index, text) in body.split('\n').enumerate() {
                let id = AuditId {
                    block: b.block,
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                };
                let Some(mut record) = decode(text) else {
                    continue;
                };
                if !q.matches(id, &record) {
                    continue;
                }
                if b.counted.is_none() {
                    total += 1;
                }
                let after_cursor = q
                    .after
                    .is_none_or(|cursor| before(q.ascending, cursor, (record.recorded, id)));
                if for_page && after_cursor {
                    record.body = text.to_string();
                    page.push((
                        record.recorded,
                        StoredAudit {
                            id,
                            record,
                            link: b.link.clone(),
                        },
                    ));
                }
            }
        }
        page.sort_by(|a, b| {
            let (a, b) = ((a.0, a.1.id), (b.0, b.1.id));
            if q.ascending { a.cmp(&b) } else { b.cmp(&a) }
        });
        page.truncate(need);
    }
    let more = page.len() > q.count as usize;
    page.truncate(q.count as usize);
    Ok(AuditPage {
        records: page.into_iter().map(|(_, r)| r).collect(),
        more,
        total: q.total.then_some(total),
    })
}

/// The blocks that may hold matches, in the order of the search: newest last record first
/// (oldest first record first when ascending). Blocks the stored summary answers for come with
/// their count of matches.
async fn candidates(c: &mut dyn Conn, q: &AuditQuery) -> Result<Vec<Candidate>> {
    let mut binds: Vec<Param> = Vec::new();
    let bind = |binds: &mut Vec<Param>, p: Param| {
        binds.push(p);
        format!("${}", binds.len())
    };
    let mut conds = Vec::new();
    for ids in &q.ids {
        if ids.is_empty() {
            conds.push("1 = 0".to_string());
            continue;
        }
        let list: Vec<String> = ids
            .iter()
            .map(|i| bind(&mut binds, Param::Int(i.block)))
            .collect();
        conds.push(format!("b.block IN ({})", list.join(", ")));
    }
    for (column, values) in &q.filters {
        let Some(key) = column.key() else { continue };
        let list: Vec<String> = values
            .iter()
            .map(|v| bind(&mut binds, Param::Text(key.row(v.value()))))
            .collect();
        conds.push(format!(
            "b.block IN (SELECT k.block FROM audit_block_key k WHERE k.key IN ({}))",
            list.join(", ")
        ));
    }
    for t in &q.times {
        let (column, op, v) = match t {
            AuditTime::Ge(v) => ("last_recorded", ">=", v),
            AuditTime::Gt(v) => ("last_recorded", ">", v),
            AuditTime::Le(v) => ("first_recorded", "<=", v),
            AuditTime::Lt(v) => ("first_recorded", "<", v),
        };
        conds.push(format!(
            "b.{column} {op} {}",
            bind(&mut binds, Param::Int(*v))
        ));
    }
    let counted = match q.counted_key() {
        Some(key) => format!(
            "(SELECT k.records FROM audit_block_key k WHERE k.block = b.block AND k.key = {})",
            bind(&mut binds, Param::Text(key))
        ),
        None => "b.records".to_string(),
    };
    let where_ = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let order = if q.ascending {
        "b.first_recorded ASC, b.block ASC"
    } else {
        "b.last_recorded DESC, b.block DESC"
    };
    let rows = c
        .query(
            &format!(
                "SELECT b.block, b.first_recorded, b.last_recorded, {counted}, b.seq, \
                 b.prev_hash, b.hash FROM audit_block b{where_} ORDER BY {order}"
            ),
            binds,
        )
        .await?;
    // The stored count answers when only one key (or nothing) is searched and the block lies
    // wholly inside the time range.
    let by_summary = q.ids.is_empty() && (q.filters.is_empty() || q.counted_key().is_some());
    rows.iter()
        .map(|r| {
            let (first, last) = (r.int(1)?, r.int(2)?);
            let inside = q.times.iter().all(|t| t.holds(first) && t.holds(last));
            Ok(Candidate {
                block: r.int(0)?,
                first,
                last,
                counted: if by_summary && inside {
                    Some(u64::try_from(r.opt_int(3)?.unwrap_or(0)).unwrap_or(0))
                } else {
                    None
                },
                link: link_at(r.as_ref(), 4)?,
            })
        })
        .collect()
}

async fn log_links(c: &mut dyn Conn, after: i64, limit: u32) -> Result<Vec<StoredBlock>> {
    let rows = c
        .query(
            "SELECT block, first_recorded, last_recorded, records, body, seq, prev_hash, hash \
             FROM audit_block WHERE seq > $1 ORDER BY seq LIMIT $2",
            params![after, i64::from(limit)],
        )
        .await?;
    let mut blocks = rows
        .iter()
        .map(|r| {
            Ok(StoredBlock {
                block: r.int(0)?,
                body: r.text(4)?,
                summary: BlockSummary {
                    first_recorded: r.int(1)?,
                    last_recorded: r.int(2)?,
                    records: count_at(r.as_ref(), 3)?,
                    keys: Vec::new(),
                },
                link: link_at(r.as_ref(), 5)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if let (Some(low), Some(high)) = (blocks.first(), blocks.last()) {
        // Chain order follows block order but for writes' blocks: fetch the keys of the range.
        let (low, high) = blocks.iter().fold((low.block, high.block), |(l, h), b| {
            (l.min(b.block), h.max(b.block))
        });
        let keys = c
            .query(
                "SELECT block, key, records FROM audit_block_key WHERE block >= $1 \
                 AND block <= $2 ORDER BY key",
                params![low, high],
            )
            .await?;
        for k in keys {
            let block = k.int(0)?;
            if let Some(b) = blocks.iter_mut().find(|b| b.block == block) {
                b.summary.keys.push((k.text(1)?, count_at(k.as_ref(), 2)?));
            }
        }
    }
    Ok(blocks)
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

async fn unlinked(c: &mut dyn Conn, before: i64) -> Result<(i64, Option<AuditId>)> {
    let row = c
        .first(
            "SELECT COUNT(*), MIN(block) FROM audit_block WHERE seq IS NULL \
             AND first_recorded < $1",
            params![before],
        )
        .await?
        .ok_or_else(|| engine::corrupt("COUNT returned no row".into()))?;
    Ok((
        row.int(0)?,
        row.opt_int(1)?.map(|block| AuditId { block, index: 0 }),
    ))
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
    async fn audit_links(&self, after: i64, limit: u32) -> Result<Vec<ChainLink>> {
        run!(self.read, |c| links(c, after, limit))
    }

    async fn audit_head(&self) -> Result<(i64, String)> {
        run!(self.read, |c| head(c))
    }

    async fn unchained_audit_events(&self, before: i64, limit: u32) -> Result<(i64, Vec<String>)> {
        run!(self.read, |c| unchained(c, before, limit))
    }

    async fn append_audit_batch(&self, batch: AuditBatch, hash: RecordHash) -> Result<Option<i64>> {
        run!(self.write, |c| append_batch(c, batch, hash))
    }

    async fn audit_record(&self, id: AuditId, decode: DecodeRecord) -> Result<Option<StoredAudit>> {
        run!(self.read, |c| record_at(c, id, decode))
    }

    async fn search_audit(&self, query: AuditQuery, decode: DecodeRecord) -> Result<AuditPage> {
        run!(self.read, |c| search(c, query, decode))
    }

    async fn audit_log_links(&self, after: i64, limit: u32) -> Result<Vec<StoredBlock>> {
        run!(self.read, |c| log_links(c, after, limit))
    }

    async fn audit_log_head(&self) -> Result<(i64, String)> {
        run!(self.read, |c| log_head(c))
    }

    async fn unlinked_audit_records(&self, before: i64) -> Result<(i64, Option<AuditId>)> {
        run!(self.read, |c| unlinked(c, before))
    }
}
