//! The `raw-ingest` scenario: the baseline for the server's ingest rate. The rows the server
//! would write for a folder of FHIR transaction Bundles (a version row, a current-version row and
//! the search index rows of every resource) are inserted straight into scratch copies of the
//! server's tables, in the same database, with the same durability, one transaction per Bundle.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use curanet_fhir::{Instant as FhirInstant, envelope};
use curanet_fhir_profiles::Definitions;
use curanet_search::Indexer;
use curanet_storage::IndexRows;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, PgConnection, SqliteConnection};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::ingest::bundle_files;
use crate::raw_insert::check_postgres_target;
use crate::report::round3;

/// Most bind parameters in one SQLite statement (`SQLITE_MAX_VARIABLE_NUMBER` since 3.32).
const SQLITE_MAX_PARAMS: usize = 32_766;
/// Most bind parameters in one PostgreSQL statement (the protocol counts them in 16 bits).
const POSTGRES_MAX_PARAMS: usize = 65_535;

/// Longest the set-up and clean-up (connect, drop, create) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one Bundle's transaction may take.
const BUNDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a progress line goes to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Columns written to `raw_resource_versions` (`seq` is assigned by the database).
const VERSION_COLUMNS: [&str; 7] = [
    "resource_type",
    "id",
    "version",
    "last_updated",
    "deleted",
    "method",
    "content",
];
/// Columns of `raw_resources`.
const RESOURCE_COLUMNS: [&str; 6] = [
    "resource_type",
    "id",
    "version",
    "last_updated",
    "deleted",
    "current_seq",
];
/// The index tables with all their columns, in the order of [`Prepared::index`].
const INDEX_TABLES: [(&str, &[&str]); 8] = [
    (
        "raw_idx_string",
        &["resource_type", "id", "param", "value", "exact"],
    ),
    (
        "raw_idx_token",
        &["resource_type", "id", "param", "system", "code"],
    ),
    (
        "raw_idx_reference",
        &[
            "resource_type",
            "id",
            "param",
            "target_type",
            "target_id",
            "url",
        ],
    ),
    (
        "raw_idx_date",
        &["resource_type", "id", "param", "lo", "hi"],
    ),
    ("raw_idx_number", &["resource_type", "id", "param", "value"]),
    (
        "raw_idx_quantity",
        &[
            "resource_type",
            "id",
            "param",
            "value",
            "system",
            "code",
            "unit",
        ],
    ),
    ("raw_idx_uri", &["resource_type", "id", "param", "value"]),
    (
        "raw_idx_composite",
        &[
            "resource_type",
            "id",
            "param",
            "grp",
            "pos",
            "system",
            "code",
            "value",
            "lo",
            "hi",
            "text",
        ],
    ),
];

/// Drops every scratch table (their indexes go with them); run before and after.
const DROP: &str = "DROP TABLE IF EXISTS raw_resource_versions; \
    DROP TABLE IF EXISTS raw_resources; \
    DROP TABLE IF EXISTS raw_idx_string; \
    DROP TABLE IF EXISTS raw_idx_token; \
    DROP TABLE IF EXISTS raw_idx_reference; \
    DROP TABLE IF EXISTS raw_idx_date; \
    DROP TABLE IF EXISTS raw_idx_number; \
    DROP TABLE IF EXISTS raw_idx_quantity; \
    DROP TABLE IF EXISTS raw_idx_uri; \
    DROP TABLE IF EXISTS raw_idx_composite;";

/// migrations/sqlite/0001_resources.sql and 0002_search_index.sql with every table and index
/// name prefixed `raw_`.
const CREATE_SQLITE: &str = r#"
CREATE TABLE raw_resource_versions (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    last_updated  INTEGER NOT NULL,
    deleted       BOOLEAN NOT NULL,
    method        TEXT    NOT NULL,
    content       TEXT,
    UNIQUE (resource_type, id, version)
);
CREATE INDEX raw_resource_versions_type_seq ON raw_resource_versions (resource_type, seq);
CREATE INDEX raw_resource_versions_last_updated ON raw_resource_versions (last_updated);
CREATE TABLE raw_resources (
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    last_updated  INTEGER NOT NULL,
    deleted       BOOLEAN NOT NULL,
    current_seq   INTEGER NOT NULL,
    PRIMARY KEY (resource_type, id)
) WITHOUT ROWID;
CREATE INDEX raw_resources_type_updated ON raw_resources (resource_type, last_updated, id);
CREATE TABLE raw_idx_string (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value TEXT NOT NULL, exact TEXT NOT NULL
);
CREATE INDEX raw_idx_string_value ON raw_idx_string (resource_type, param, value);
CREATE INDEX raw_idx_string_owner ON raw_idx_string (resource_type, id);
CREATE TABLE raw_idx_token (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    system TEXT NOT NULL, code TEXT NOT NULL
);
CREATE INDEX raw_idx_token_code ON raw_idx_token (resource_type, param, code, system);
CREATE INDEX raw_idx_token_owner ON raw_idx_token (resource_type, id);
CREATE TABLE raw_idx_reference (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    target_type TEXT NOT NULL, target_id TEXT NOT NULL, url TEXT NOT NULL
);
CREATE INDEX raw_idx_reference_target ON raw_idx_reference (resource_type, param, target_id, target_type);
CREATE INDEX raw_idx_reference_reverse ON raw_idx_reference (target_type, target_id);
CREATE INDEX raw_idx_reference_owner ON raw_idx_reference (resource_type, id);
CREATE TABLE raw_idx_date (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    lo INTEGER NOT NULL, hi INTEGER NOT NULL
);
CREATE INDEX raw_idx_date_lo ON raw_idx_date (resource_type, param, lo);
CREATE INDEX raw_idx_date_hi ON raw_idx_date (resource_type, param, hi);
CREATE INDEX raw_idx_date_owner ON raw_idx_date (resource_type, id);
CREATE TABLE raw_idx_number (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX raw_idx_number_value ON raw_idx_number (resource_type, param, value);
CREATE INDEX raw_idx_number_owner ON raw_idx_number (resource_type, id);
CREATE TABLE raw_idx_quantity (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value REAL NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL, unit TEXT NOT NULL
);
CREATE INDEX raw_idx_quantity_value ON raw_idx_quantity (resource_type, param, value);
CREATE INDEX raw_idx_quantity_owner ON raw_idx_quantity (resource_type, id);
CREATE TABLE raw_idx_uri (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX raw_idx_uri_value ON raw_idx_uri (resource_type, param, value);
CREATE INDEX raw_idx_uri_owner ON raw_idx_uri (resource_type, id);
CREATE TABLE raw_idx_composite (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    grp INTEGER NOT NULL, pos INTEGER NOT NULL, system TEXT, code TEXT, value REAL,
    lo INTEGER, hi INTEGER, text TEXT
);
CREATE INDEX raw_idx_composite_code ON raw_idx_composite (resource_type, param, pos, code);
CREATE INDEX raw_idx_composite_owner ON raw_idx_composite (resource_type, id);
"#;

/// migrations/postgres/0001_resources.sql and 0002_search_index.sql with every table and index
/// name prefixed `raw_` (same types and collations).
const CREATE_POSTGRES: &str = r#"
CREATE TABLE raw_resource_versions (
    seq           BIGSERIAL PRIMARY KEY,
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       BIGINT  NOT NULL,
    last_updated  BIGINT  NOT NULL,
    deleted       BOOLEAN NOT NULL,
    method        TEXT    NOT NULL,
    content       TEXT,
    UNIQUE (resource_type, id, version)
);
CREATE INDEX raw_resource_versions_type_seq ON raw_resource_versions (resource_type, seq);
CREATE INDEX raw_resource_versions_last_updated ON raw_resource_versions (last_updated);
CREATE TABLE raw_resources (
    resource_type TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    version       BIGINT  NOT NULL,
    last_updated  BIGINT  NOT NULL,
    deleted       BOOLEAN NOT NULL,
    current_seq   BIGINT  NOT NULL,
    PRIMARY KEY (resource_type, id)
);
CREATE INDEX raw_resources_type_updated ON raw_resources (resource_type, last_updated, id);
CREATE TABLE raw_idx_string (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value TEXT COLLATE "C" NOT NULL, exact TEXT NOT NULL
);
CREATE INDEX raw_idx_string_value ON raw_idx_string (resource_type, param, value);
CREATE INDEX raw_idx_string_owner ON raw_idx_string (resource_type, id);
CREATE TABLE raw_idx_token (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    system TEXT COLLATE "C" NOT NULL, code TEXT COLLATE "C" NOT NULL
);
CREATE INDEX raw_idx_token_code ON raw_idx_token (resource_type, param, code, system);
CREATE INDEX raw_idx_token_owner ON raw_idx_token (resource_type, id);
CREATE TABLE raw_idx_reference (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    target_type TEXT COLLATE "C" NOT NULL, target_id TEXT COLLATE "C" NOT NULL,
    url TEXT COLLATE "C" NOT NULL
);
CREATE INDEX raw_idx_reference_target ON raw_idx_reference (resource_type, param, target_id, target_type);
CREATE INDEX raw_idx_reference_reverse ON raw_idx_reference (target_type, target_id);
CREATE INDEX raw_idx_reference_owner ON raw_idx_reference (resource_type, id);
CREATE TABLE raw_idx_date (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    lo BIGINT NOT NULL, hi BIGINT NOT NULL
);
CREATE INDEX raw_idx_date_lo ON raw_idx_date (resource_type, param, lo);
CREATE INDEX raw_idx_date_hi ON raw_idx_date (resource_type, param, hi);
CREATE INDEX raw_idx_date_owner ON raw_idx_date (resource_type, id);
CREATE TABLE raw_idx_number (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL
);
CREATE INDEX raw_idx_number_value ON raw_idx_number (resource_type, param, value);
CREATE INDEX raw_idx_number_owner ON raw_idx_number (resource_type, id);
CREATE TABLE raw_idx_quantity (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL, system TEXT COLLATE "C" NOT NULL,
    code TEXT COLLATE "C" NOT NULL, unit TEXT NOT NULL
);
CREATE INDEX raw_idx_quantity_value ON raw_idx_quantity (resource_type, param, value);
CREATE INDEX raw_idx_quantity_owner ON raw_idx_quantity (resource_type, id);
CREATE TABLE raw_idx_uri (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value TEXT COLLATE "C" NOT NULL
);
CREATE INDEX raw_idx_uri_value ON raw_idx_uri (resource_type, param, value);
CREATE INDEX raw_idx_uri_owner ON raw_idx_uri (resource_type, id);
CREATE TABLE raw_idx_composite (
    resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    grp BIGINT NOT NULL, pos BIGINT NOT NULL, system TEXT COLLATE "C", code TEXT COLLATE "C",
    value DOUBLE PRECISION, lo BIGINT, hi BIGINT, text TEXT COLLATE "C"
);
CREATE INDEX raw_idx_composite_code ON raw_idx_composite (resource_type, param, pos, code);
CREATE INDEX raw_idx_composite_owner ON raw_idx_composite (resource_type, id);
"#;

/// The shape of a raw-ingest run.
#[derive(Debug, Clone)]
pub struct RawIngestConfig {
    /// Folder with the `*.json` transaction Bundles.
    pub dir: PathBuf,
    /// Concurrent clients: bundle preparers (SQLite) or preparers with their own connection
    /// (PostgreSQL).
    pub clients: usize,
}

/// The figures of one raw-ingest run.
#[derive(Debug, Clone, PartialEq)]
pub struct RawIngestReport {
    /// Bundles committed.
    pub bundles: u64,
    /// Resources inserted (one version row and one current row each).
    pub resources: u64,
    /// Search index rows inserted, all eight tables together.
    pub index_rows: u64,
    /// Wall time from the first file read to the last commit.
    pub seconds: f64,
    /// Wall time during which at least one Bundle transaction was open.
    pub db_seconds: f64,
}

impl RawIngestReport {
    /// Every row inserted: a version row and a current row per resource, and the index rows.
    pub fn rows(&self) -> u64 {
        2 * self.resources + self.index_rows
    }

    fn per_s(n: u64, seconds: f64) -> f64 {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    }

    /// Resources per second, end to end (file reading and JSON work included).
    pub fn resources_per_s(&self) -> f64 {
        Self::per_s(self.resources, self.seconds)
    }

    /// Rows (see [`Self::rows`]) per second, end to end.
    pub fn rows_per_s(&self) -> f64 {
        Self::per_s(self.rows(), self.seconds)
    }

    /// Resources per second of database time alone.
    pub fn db_resources_per_s(&self) -> f64 {
        Self::per_s(self.resources, self.db_seconds)
    }

    /// The report as one JSON object, keys in a fixed order.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": "raw-ingest",
            "bundles": self.bundles,
            "resources": self.resources,
            "index_rows": self.index_rows,
            "seconds": round3(self.seconds),
            "resources_per_s": round3(self.resources_per_s()),
            "rows_per_s": round3(self.rows_per_s()),
            "db_seconds": round3(self.db_seconds),
            "db_resources_per_s": round3(self.db_resources_per_s()),
        })
    }

    /// Prints the report as a two-line table, or as one JSON line.
    pub fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.to_json());
            return;
        }
        println!(
            "{:<10} {:>8} {:>10} {:>11} {:>9} {:>12} {:>11} {:>11} {:>15}",
            "scenario",
            "bundles",
            "resources",
            "index rows",
            "seconds",
            "resources/s",
            "rows/s",
            "db seconds",
            "db resources/s"
        );
        println!(
            "{:<10} {:>8} {:>10} {:>11} {:>9.2} {:>12.1} {:>11.1} {:>11.2} {:>15.1}",
            "raw-ingest",
            self.bundles,
            self.resources,
            self.index_rows,
            self.seconds,
            self.resources_per_s(),
            self.rows_per_s(),
            self.db_seconds,
            self.db_resources_per_s(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Preparing a Bundle: ids, references, id and meta, index rows, serialisation.

/// A resource of a Bundle with its newly assigned id, references rewritten.
#[derive(Debug)]
pub struct NewResource {
    pub resource_type: String,
    pub id: String,
    pub resource: Value,
}

/// Replaces every `reference` string that `map` knows (an entry's `fullUrl`) with its `Type/id`,
/// anywhere in `value`, as the server's transaction does. Other strings stay as they are.
pub fn rewrite_references(value: &mut Value, map: &HashMap<String, String>) {
    match value {
        Value::Object(obj) => {
            for (key, v) in obj.iter_mut() {
                match v {
                    Value::String(s) if key == "reference" => {
                        if let Some(local) = map.get(s.as_str()) {
                            *s = local.clone();
                        }
                    }
                    _ => rewrite_references(v, map),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_references(v, map)),
        _ => {}
    }
}

/// Takes the resources out of a transaction Bundle, gives each a fresh v7 UUID, rewrites the
/// references to entry `fullUrl`s into `Type/id` and sets each resource's `id`. Entries without a
/// resource (GET, DELETE) are left out.
pub fn assign_ids(bundle: Value) -> Result<Vec<NewResource>, String> {
    let Value::Object(mut bundle) = bundle else {
        return Err("not a JSON object".into());
    };
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err("not a Bundle".into());
    }
    let Some(Value::Array(entries)) = bundle.remove("entry") else {
        return Err("a Bundle without entries".into());
    };
    let mut map = HashMap::new();
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let Value::Object(mut entry) = entry else {
            return Err(format!("entry {i} is not an object"));
        };
        let Some(resource) = entry.remove("resource") else {
            continue;
        };
        let Some(resource_type) = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return Err(format!("entry {i}: a resource without resourceType"));
        };
        let id = uuid::Uuid::now_v7().to_string();
        if let Some(full_url) = entry.get("fullUrl").and_then(Value::as_str) {
            map.insert(full_url.to_string(), format!("{resource_type}/{id}"));
        }
        out.push(NewResource {
            resource_type,
            id,
            resource,
        });
    }
    for r in &mut out {
        rewrite_references(&mut r.resource, &map);
        envelope::set_id(&mut r.resource, &r.id);
    }
    Ok(out)
}

/// One value to bind.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Text(String),
    Int(i64),
    Real(f64),
    /// A value that may be NULL (composite rows).
    MaybeText(Option<String>),
    MaybeInt(Option<i64>),
    MaybeReal(Option<f64>),
}

/// A resource as its version row stores it.
#[derive(Debug)]
struct StoredRow {
    resource_type: String,
    id: String,
    last_updated: i64,
    content: String,
}

/// Everything one Bundle writes, ready to bind.
#[derive(Debug, Default)]
struct Prepared {
    /// The file it came from, for error messages.
    file: String,
    resources: Vec<StoredRow>,
    /// Per index table (order of [`INDEX_TABLES`]), the values of all its rows, row after row.
    index: [Vec<Arg>; 8],
    index_rows: u64,
}

impl Prepared {
    fn add_index(&mut self, resource_type: &str, id: &str, rows: IndexRows) {
        use Arg::{Int, Real, Text};
        let head = |param: String| {
            [
                Text(resource_type.to_string()),
                Text(id.to_string()),
                Text(param),
            ]
        };
        let mut add = |table: usize, param: String, rest: Vec<Arg>| {
            self.index[table].extend(head(param));
            self.index[table].extend(rest);
            self.index_rows += 1;
        };
        for r in rows.strings {
            add(0, r.param, vec![Text(r.value), Text(r.exact)]);
        }
        for r in rows.tokens {
            add(1, r.param, vec![Text(r.system), Text(r.code)]);
        }
        for r in rows.references {
            add(
                2,
                r.param,
                vec![Text(r.target_type), Text(r.target_id), Text(r.url)],
            );
        }
        for r in rows.dates {
            add(3, r.param, vec![Int(r.lo), Int(r.hi)]);
        }
        for r in rows.numbers {
            add(4, r.param, vec![Real(r.value)]);
        }
        for r in rows.quantities {
            add(
                5,
                r.param,
                vec![Real(r.value), Text(r.system), Text(r.code), Text(r.unit)],
            );
        }
        for r in rows.uris {
            add(6, r.param, vec![Text(r.value)]);
        }
        for r in rows.composites {
            add(
                7,
                r.param,
                vec![
                    Int(r.group),
                    Int(r.pos),
                    Arg::MaybeText(r.system),
                    Arg::MaybeText(r.code),
                    Arg::MaybeReal(r.value),
                    Arg::MaybeInt(r.lo),
                    Arg::MaybeInt(r.hi),
                    Arg::MaybeText(r.text),
                ],
            );
        }
    }
}

/// Turns a parsed Bundle into the rows the server would write for it: ids, references, `id` and
/// `meta` (version 1, now), index rows of the stamped resource, the stored JSON text.
fn prepare_bundle(bundle: Value, indexer: &Indexer, file: String) -> Result<Prepared, String> {
    let mut prepared = Prepared {
        file,
        ..Prepared::default()
    };
    for mut r in assign_ids(bundle)? {
        let now = FhirInstant::now();
        envelope::stamp(&mut r.resource, 1, now);
        let rows = indexer.extract(&r.resource_type, &r.resource);
        prepared.add_index(&r.resource_type, &r.id, rows);
        let content = serde_json::to_string(&r.resource).map_err(|e| e.to_string())?;
        prepared.resources.push(StoredRow {
            resource_type: r.resource_type,
            id: r.id,
            last_updated: now.micros(),
            content,
        });
    }
    Ok(prepared)
}

/// Reads and prepares one Bundle file (blocking: run it on a blocking thread).
fn prepare_file(path: &Path, indexer: &Indexer) -> Result<Prepared, String> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: {e}"))?;
    let bundle: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{name}: {e}"))?;
    drop(bytes);
    prepare_bundle(bundle, indexer, name.clone()).map_err(|e| format!("{name}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// SQL.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn max_params(self) -> usize {
        match self {
            Dialect::Sqlite => SQLITE_MAX_PARAMS,
            Dialect::Postgres => POSTGRES_MAX_PARAMS,
        }
    }

    /// Most rows of `columns` values one statement may carry.
    fn max_rows(self, columns: usize) -> usize {
        self.max_params() / columns
    }

    /// `INSERT INTO table (c1, c2) VALUES (?, ?), (?, ?)` for `rows` rows (`$1, $2, ...` on
    /// PostgreSQL).
    fn insert(self, table: &str, columns: &[&str], rows: usize) -> String {
        let mut sql = String::with_capacity(64 + rows * columns.len() * 7);
        let _ = write!(sql, "INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for r in 0..rows {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..columns.len() {
                if c > 0 {
                    sql.push_str(", ");
                }
                match self {
                    Dialect::Sqlite => sql.push('?'),
                    Dialect::Postgres => {
                        n += 1;
                        let _ = write!(sql, "${n}");
                    }
                }
            }
            sql.push(')');
        }
        sql
    }
}

/// Binds a slice of [`Arg`]s to a query, in order.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
                Arg::Real(f) => q.bind(*f),
                Arg::MaybeText(s) => q.bind(s.clone()),
                Arg::MaybeInt(i) => q.bind(*i),
                Arg::MaybeReal(f) => q.bind(*f),
            };
        }
        q
    }};
}

/// Writes one Bundle in one SQLite transaction. A statement per chunk of version rows (returning
/// their `seq`), one for the matching current rows, then each index table's rows.
async fn write_sqlite(conn: &mut SqliteConnection, b: &Prepared) -> Result<(), sqlx::Error> {
    let d = Dialect::Sqlite;
    let mut tx = conn.begin().await?;
    for chunk in b.resources.chunks(d.max_rows(VERSION_COLUMNS.len())) {
        let sql =
            d.insert("raw_resource_versions", &VERSION_COLUMNS, chunk.len()) + " RETURNING id, seq";
        let mut q = sqlx::query_as::<_, (String, i64)>(AssertSqlSafe(sql)).persistent(false);
        for r in chunk {
            q = q
                .bind(r.resource_type.as_str())
                .bind(r.id.as_str())
                .bind(1_i64)
                .bind(r.last_updated)
                .bind(false)
                .bind("POST")
                .bind(r.content.as_str());
        }
        // RETURNING gives no order guarantee: match the seqs up by id (unique in the Bundle).
        let seqs: HashMap<String, i64> = q.fetch_all(&mut *tx).await?.into_iter().collect();
        let sql = d.insert("raw_resources", &RESOURCE_COLUMNS, chunk.len());
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for r in chunk {
            let seq = *seqs
                .get(&r.id)
                .ok_or_else(|| sqlx::Error::Protocol(format!("no seq returned for {}", r.id)))?;
            q = q
                .bind(r.resource_type.as_str())
                .bind(r.id.as_str())
                .bind(1_i64)
                .bind(r.last_updated)
                .bind(false)
                .bind(seq);
        }
        q.execute(&mut *tx).await?;
    }
    for ((table, columns), args) in INDEX_TABLES.iter().zip(&b.index) {
        for chunk in args.chunks(d.max_rows(columns.len()) * columns.len()) {
            let sql = d.insert(table, columns, chunk.len() / columns.len());
            let q = bind_args!(sqlx::query(AssertSqlSafe(sql)).persistent(false), chunk);
            q.execute(&mut *tx).await?;
        }
    }
    tx.commit().await
}

/// Writes one Bundle in one PostgreSQL transaction. Version rows and current rows go in one
/// statement per chunk (a data-modifying CTE, as the server does), then each index table's rows.
async fn write_postgres(conn: &mut PgConnection, b: &Prepared) -> Result<(), sqlx::Error> {
    let d = Dialect::Postgres;
    let mut tx = conn.begin().await?;
    for chunk in b.resources.chunks(d.max_rows(VERSION_COLUMNS.len())) {
        let sql = format!(
            "WITH v AS ({} RETURNING resource_type, id, version, last_updated, deleted, seq) \
             INSERT INTO raw_resources ({}) \
             SELECT resource_type, id, version, last_updated, deleted, seq FROM v",
            d.insert("raw_resource_versions", &VERSION_COLUMNS, chunk.len()),
            RESOURCE_COLUMNS.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for r in chunk {
            q = q
                .bind(r.resource_type.as_str())
                .bind(r.id.as_str())
                .bind(1_i64)
                .bind(r.last_updated)
                .bind(false)
                .bind("POST")
                .bind(r.content.as_str());
        }
        q.execute(&mut *tx).await?;
    }
    for ((table, columns), args) in INDEX_TABLES.iter().zip(&b.index) {
        for chunk in args.chunks(d.max_rows(columns.len()) * columns.len()) {
            let sql = d.insert(table, columns, chunk.len() / columns.len());
            let q = bind_args!(sqlx::query(AssertSqlSafe(sql)).persistent(false), chunk);
            q.execute(&mut *tx).await?;
        }
    }
    tx.commit().await
}

// ---------------------------------------------------------------------------------------------
// Running it.

/// Wall time during which at least one writer is inside a Bundle transaction.
#[derive(Default)]
struct Busy(Mutex<BusyState>);

#[derive(Default)]
struct BusyState {
    active: usize,
    since: Option<Instant>,
    total: Duration,
}

struct BusyGuard<'a>(&'a Busy);

impl Busy {
    fn enter(&self) -> BusyGuard<'_> {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if s.active == 0 {
            s.since = Some(Instant::now());
        }
        s.active += 1;
        BusyGuard(self)
    }

    fn total(&self) -> Duration {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).total
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.active -= 1;
        if s.active == 0
            && let Some(since) = s.since.take()
        {
            s.total += since.elapsed();
        }
    }
}

/// State shared by the clients, the writer and the progress printer.
struct Shared {
    files: Vec<PathBuf>,
    indexer: Arc<Indexer>,
    next: AtomicUsize,
    stop: AtomicBool,
    busy: Busy,
    bundles: AtomicU64,
    resources: AtomicU64,
    index_rows: AtomicU64,
    started: Instant,
}

impl Shared {
    fn new(files: Vec<PathBuf>, indexer: Arc<Indexer>) -> Arc<Self> {
        Arc::new(Self {
            files,
            indexer,
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            busy: Busy::default(),
            bundles: AtomicU64::new(0),
            resources: AtomicU64::new(0),
            index_rows: AtomicU64::new(0),
            started: Instant::now(),
        })
    }

    /// The next file to prepare, until all are taken or the run is stopping.
    fn next_file(&self) -> Option<PathBuf> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        self.files
            .get(self.next.fetch_add(1, Ordering::Relaxed))
            .cloned()
    }

    async fn prepare(&self, path: PathBuf) -> Result<Prepared, String> {
        let indexer = Arc::clone(&self.indexer);
        tokio::task::spawn_blocking(move || prepare_file(&path, &indexer))
            .await
            .map_err(|e| format!("prepare task failed: {e}"))?
    }

    fn committed(&self, b: &Prepared) {
        self.bundles.fetch_add(1, Ordering::Relaxed);
        self.resources
            .fetch_add(b.resources.len() as u64, Ordering::Relaxed);
        self.index_rows.fetch_add(b.index_rows, Ordering::Relaxed);
    }

    fn report(&self, seconds: f64) -> RawIngestReport {
        RawIngestReport {
            bundles: self.bundles.load(Ordering::Relaxed),
            resources: self.resources.load(Ordering::Relaxed),
            index_rows: self.index_rows.load(Ordering::Relaxed),
            seconds,
            db_seconds: self.busy.total().as_secs_f64(),
        }
    }

    /// Prints a progress line every [`PROGRESS_EVERY`] until aborted.
    fn progress(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(shared.started + PROGRESS_EVERY, PROGRESS_EVERY);
            loop {
                tick.tick().await;
                let secs = shared.started.elapsed().as_secs_f64();
                let resources = shared.resources.load(Ordering::Relaxed);
                eprintln!(
                    "raw-ingest: {}/{} bundles, {:.1} resources/s, {secs:.0} s",
                    shared.bundles.load(Ordering::Relaxed),
                    shared.files.len(),
                    resources as f64 / secs,
                );
            }
        })
    }
}

async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    tokio::time::timeout(SETUP_TIMEOUT, fut)
        .await
        .map_err(|_| format!("{what}: no answer within {}s", SETUP_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))
}

/// Runs the raw ingest of every `*.json` Bundle of `cfg.dir` into `database_url`; the scratch
/// tables are dropped before and after.
pub async fn run(database_url: &str, cfg: &RawIngestConfig) -> Result<RawIngestReport, String> {
    let files = bundle_files(&cfg.dir)?;
    let clients = cfg.clients.max(1);
    eprintln!(
        "raw-ingest: {} bundles from {} with {clients} clients",
        files.len(),
        cfg.dir.display()
    );
    if database_url.starts_with("sqlite:") {
        run_sqlite(database_url, files, clients).await
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        run_postgres(database_url, files, clients).await
    } else {
        Err(format!(
            "unsupported database URL {database_url:?}: expected sqlite:PATH or postgres://..."
        ))
    }
}

/// The search index extractor, built once (compiling every parameter's expression).
async fn indexer() -> Result<Arc<Indexer>, String> {
    tokio::task::spawn_blocking(|| Arc::new(Indexer::new(&Definitions::shared())))
        .await
        .map_err(|e| format!("cannot build the indexer: {e}"))
}

/// SQLite: one connection (WAL, `synchronous=FULL`, as the server opens it) written by this task
/// alone, fed by `clients` tasks preparing Bundles.
async fn run_sqlite(
    url: &str,
    files: Vec<PathBuf>,
    clients: usize,
) -> Result<RawIngestReport, String> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| format!("invalid SQLite URL {url:?}: {e}"))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10));
    if let Some(dir) = opts
        .get_filename()
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let indexer = indexer().await?;
    let mut conn = bounded("open", SqliteConnection::connect_with(&opts)).await?;
    bounded(
        "drop scratch tables",
        sqlx::raw_sql(DROP).execute(&mut conn),
    )
    .await?;
    bounded(
        "create scratch tables",
        sqlx::raw_sql(CREATE_SQLITE).execute(&mut conn),
    )
    .await?;

    let shared = Shared::new(files, indexer);
    let printer = shared.progress();
    let (tx, mut rx) = mpsc::channel::<Prepared>(clients);
    let preparers: Vec<_> = (0..clients)
        .map(|_| {
            let (tx, shared) = (tx.clone(), Arc::clone(&shared));
            tokio::spawn(async move {
                while let Some(path) = shared.next_file() {
                    let prepared = shared.prepare(path).await.inspect_err(|_| {
                        shared.stop.store(true, Ordering::Relaxed);
                    })?;
                    if tx.send(prepared).await.is_err() {
                        break; // the writer stopped on an error
                    }
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    drop(tx);

    let mut written = Ok(());
    while let Some(bundle) = rx.recv().await {
        let result = {
            let _busy = shared.busy.enter();
            tokio::time::timeout(BUNDLE_TIMEOUT, write_sqlite(&mut conn, &bundle)).await
        };
        match result {
            Ok(Ok(())) => shared.committed(&bundle),
            Ok(Err(e)) => {
                written = Err(format!("{}: {e}", bundle.file));
                break;
            }
            Err(_) => {
                written = Err(format!(
                    "{}: no commit within {BUNDLE_TIMEOUT:?}",
                    bundle.file
                ));
                break;
            }
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    drop(rx);
    let prepared = join_all(preparers).await;
    let seconds = shared.started.elapsed().as_secs_f64();
    printer.abort();

    let dropped = bounded(
        "drop scratch tables",
        sqlx::raw_sql(DROP).execute(&mut conn),
    )
    .await;
    let _ = conn.close().await;
    written?;
    prepared?;
    dropped?;
    Ok(shared.report(seconds))
}

/// PostgreSQL: `clients` connections, each client preparing and committing its own Bundles.
async fn run_postgres(
    url: &str,
    files: Vec<PathBuf>,
    clients: usize,
) -> Result<RawIngestReport, String> {
    let opts =
        PgConnectOptions::from_str(url).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    check_postgres_target(url, &opts)?;
    let indexer = indexer().await?;
    let max = u32::try_from(clients).map_err(|_| "too many clients".to_string())?;
    // Default synchronous_commit (on), as the server uses: each commit waits for its WAL flush.
    let pool = bounded(
        "connect to PostgreSQL",
        PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(SETUP_TIMEOUT)
            .connect_with(opts),
    )
    .await?;
    bounded("drop scratch tables", sqlx::raw_sql(DROP).execute(&pool)).await?;
    bounded(
        "create scratch tables",
        sqlx::raw_sql(CREATE_POSTGRES).execute(&pool),
    )
    .await?;
    // Every client's connection is open before the clock starts.
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(bounded("connect to PostgreSQL", pool.acquire()).await?);
    }

    let shared = Shared::new(files, indexer);
    let printer = shared.progress();
    let writers: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let outcome = async {
                    while let Some(path) = shared.next_file() {
                        let bundle = shared.prepare(path).await?;
                        let result = {
                            let _busy = shared.busy.enter();
                            tokio::time::timeout(BUNDLE_TIMEOUT, write_postgres(&mut conn, &bundle))
                                .await
                        };
                        match result {
                            Ok(Ok(())) => shared.committed(&bundle),
                            Ok(Err(e)) => return Err(format!("{}: {e}", bundle.file)),
                            Err(_) => {
                                return Err(format!(
                                    "{}: no commit within {BUNDLE_TIMEOUT:?}",
                                    bundle.file
                                ));
                            }
                        }
                    }
                    Ok(())
                }
                .await;
                if outcome.is_err() {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                outcome
            })
        })
        .collect();
    let written = join_all(writers).await;
    let seconds = shared.started.elapsed().as_secs_f64();
    printer.abort();

    let dropped = bounded("drop scratch tables", sqlx::raw_sql(DROP).execute(&pool)).await;
    pool.close().await;
    written?;
    dropped?;
    Ok(shared.report(seconds))
}

/// Awaits every task; the first error (in task order) if any.
async fn join_all(tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>) -> Result<(), String> {
    let mut first = Ok(());
    for task in tasks {
        let r = task
            .await
            .unwrap_or_else(|e| Err(format!("task failed: {e}")));
        if first.is_ok() {
            first = r;
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small transaction Bundle shaped like Synthea's.
    fn sample() -> Value {
        serde_json::from_str(
            r##"{
  "resourceType": "Bundle",
  "type": "transaction",
  "entry": [
    {
      "fullUrl": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7",
      "resource": {
        "resourceType": "Patient",
        "id": "018f428e-34f6-4707-8009-5ad742f901e7",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-35-7127"}],
        "name": [{"family": "Koepp", "given": ["Abdul"]}],
        "birthDate": "1960-04-01"
      },
      "request": {"method": "POST", "url": "Patient"}
    },
    {
      "fullUrl": "urn:uuid:4861d01f-019c-3dac-a153-8334e50919f9",
      "resource": {
        "resourceType": "Encounter",
        "id": "4861d01f-019c-3dac-a153-8334e50919f9",
        "status": "finished",
        "subject": {"reference": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7", "display": "Abdul"}
      },
      "request": {"method": "POST", "url": "Encounter"}
    },
    {
      "fullUrl": "urn:uuid:7a1b1c1d-0000-4000-8000-000000000001",
      "resource": {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7"},
        "encounter": {"reference": "urn:uuid:4861d01f-019c-3dac-a153-8334e50919f9"},
        "effectiveDateTime": "2020-01-01T10:00:00Z",
        "valueQuantity": {"value": 1.50, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"}
      },
      "request": {"method": "POST", "url": "Observation"}
    },
    {
      "fullUrl": "urn:uuid:7a1b1c1d-0000-4000-8000-000000000002",
      "resource": {
        "resourceType": "Claim",
        "contained": [{"resourceType": "Coverage", "id": "coverage", "status": "active"}],
        "patient": {"reference": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7"},
        "insurance": [{"sequence": 1, "focal": true, "coverage": {"reference": "#coverage"}}],
        "provider": {"reference": "urn:uuid:ffffffff-0000-4000-8000-00000000dead"}
      },
      "request": {"method": "POST", "url": "Claim"}
    },
    {
      "request": {"method": "GET", "url": "Patient?name=x"}
    }
  ]
}"##,
        )
        .unwrap()
    }

    fn at<'a>(v: &'a Value, pointer: &str) -> &'a str {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no string at {pointer}"))
    }

    #[test]
    fn rewrite_replaces_known_references_everywhere_and_nothing_else() {
        let mut v = json!({
            "subject": {"reference": "urn:uuid:a"},
            "item": [{"x": [{"reference": "urn:uuid:b"}]}, {"reference": "urn:uuid:a"}],
            "contained": [{"resourceType": "Provenance", "target": [{"reference": "urn:uuid:b"}]}],
            "local": {"reference": "#c1"},
            "other": {"reference": "urn:uuid:unknown"},
            "already": {"reference": "Patient/123"},
            "note": "urn:uuid:a",
            "identifier": {"value": "urn:uuid:a"}
        });
        let map = HashMap::from([
            ("urn:uuid:a".to_string(), "Patient/p1".to_string()),
            ("urn:uuid:b".to_string(), "Encounter/e1".to_string()),
        ]);
        rewrite_references(&mut v, &map);
        assert_eq!(
            v,
            json!({
                "subject": {"reference": "Patient/p1"},
                "item": [{"x": [{"reference": "Encounter/e1"}]}, {"reference": "Patient/p1"}],
                "contained": [{"resourceType": "Provenance", "target": [{"reference": "Encounter/e1"}]}],
                "local": {"reference": "#c1"},
                "other": {"reference": "urn:uuid:unknown"},
                "already": {"reference": "Patient/123"},
                "note": "urn:uuid:a",
                "identifier": {"value": "urn:uuid:a"}
            })
        );
    }

    #[test]
    fn ids_are_fresh_v7_and_references_follow_them() {
        let resources = assign_ids(sample()).unwrap();
        // The GET entry has no resource.
        assert_eq!(resources.len(), 4);
        let types: Vec<_> = resources.iter().map(|r| r.resource_type.as_str()).collect();
        assert_eq!(types, ["Patient", "Encounter", "Observation", "Claim"]);
        for r in &resources {
            let uuid = uuid::Uuid::parse_str(&r.id).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
            assert_eq!(r.resource["id"], r.id.as_str());
            // id comes right after resourceType, as the server writes it.
            let keys: Vec<_> = r.resource.as_object().unwrap().keys().take(2).collect();
            assert_eq!(keys, ["resourceType", "id"]);
        }
        let ids: std::collections::HashSet<_> = resources.iter().map(|r| &r.id).collect();
        assert_eq!(ids.len(), 4);
        let patient = format!("Patient/{}", resources[0].id);
        let encounter = format!("Encounter/{}", resources[1].id);
        assert_eq!(at(&resources[1].resource, "/subject/reference"), patient);
        assert_eq!(at(&resources[1].resource, "/subject/display"), "Abdul");
        assert_eq!(at(&resources[2].resource, "/subject/reference"), patient);
        assert_eq!(
            at(&resources[2].resource, "/encounter/reference"),
            encounter
        );
        assert_eq!(at(&resources[3].resource, "/patient/reference"), patient);
        assert_eq!(
            at(&resources[3].resource, "/insurance/0/coverage/reference"),
            "#coverage"
        );
        // A urn:uuid: that no entry declares stays as written.
        assert_eq!(
            at(&resources[3].resource, "/provider/reference"),
            "urn:uuid:ffffffff-0000-4000-8000-00000000dead"
        );
        assert_eq!(at(&resources[3].resource, "/contained/0/id"), "coverage");
    }

    #[test]
    fn not_a_bundle_is_refused() {
        assert!(assign_ids(json!({"resourceType": "Patient"})).is_err());
        assert!(assign_ids(json!([1])).is_err());
        assert!(assign_ids(json!({"resourceType": "Bundle"})).is_err());
    }

    #[test]
    fn prepared_rows_are_stamped_and_indexed_after_the_rewrite() {
        let indexer = Indexer::new(&Definitions::shared());
        let p = prepare_bundle(sample(), &indexer, "sample.json".into()).unwrap();
        assert_eq!(p.resources.len(), 4);
        let patient_id = p.resources[0].id.clone();
        for r in &p.resources {
            let v: Value = serde_json::from_str(&r.content).unwrap();
            assert_eq!(v["id"], r.id.as_str());
            assert_eq!(v["meta"]["versionId"], "1");
            assert!(r.last_updated > 1_600_000_000_000_000);
        }
        // Decimals keep their text.
        assert!(p.resources[2].content.contains("\"value\":1.50"));
        // The Observation's subject is indexed as the new Patient id.
        let refs = &p.index[2];
        let cols = INDEX_TABLES[2].1.len();
        assert_eq!(refs.len() % cols, 0);
        assert!(refs.chunks(cols).any(|row| {
            row[2] == Arg::Text("subject".into())
                && row[3] == Arg::Text("Patient".into())
                && row[4] == Arg::Text(patient_id.clone())
        }));
        let counted: usize = INDEX_TABLES
            .iter()
            .zip(&p.index)
            .map(|((_, c), args)| args.len() / c.len())
            .sum();
        assert_eq!(counted as u64, p.index_rows);
        assert!(p.index_rows > 10, "{}", p.index_rows);
    }

    #[test]
    fn statements_stay_under_the_parameter_limits() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            for cols in [4, 5, 6, 7] {
                let rows = d.max_rows(cols);
                assert!(rows * cols <= d.max_params());
                assert!((rows + 1) * cols > d.max_params());
            }
        }
        assert_eq!(
            Dialect::Sqlite.insert("t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            Dialect::Postgres.insert("t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        let big = Dialect::Postgres.insert("t", &["a"; 7], Dialect::Postgres.max_rows(7));
        assert!(big.ends_with("$65534)"), "{}", &big[big.len() - 20..]);
    }

    #[test]
    fn report_rates() {
        let r = RawIngestReport {
            bundles: 2,
            resources: 100,
            index_rows: 300,
            seconds: 2.0,
            db_seconds: 0.5,
        };
        assert_eq!(r.rows(), 500);
        assert_eq!(r.resources_per_s(), 50.0);
        assert_eq!(r.rows_per_s(), 250.0);
        assert_eq!(r.db_resources_per_s(), 200.0);
        let j = r.to_json();
        assert_eq!(j["scenario"], "raw-ingest");
        assert_eq!(j["index_rows"], 300);
        assert_eq!(j["db_seconds"], 0.5);
    }

    #[tokio::test]
    async fn sqlite_raw_ingest_writes_every_row_and_cleans_up() {
        let dir =
            std::env::temp_dir().join(format!("curanet-bench-{}", uuid::Uuid::new_v4().simple()));
        let bundles = dir.join("bundles");
        std::fs::create_dir_all(&bundles).unwrap();
        for name in ["a.json", "b.json", "c.json"] {
            std::fs::write(bundles.join(name), sample().to_string()).unwrap();
        }
        let url = format!("sqlite:{}", dir.join("raw.db").display());
        let cfg = RawIngestConfig {
            dir: bundles,
            clients: 2,
        };
        let report = run(&url, &cfg).await.unwrap();
        assert_eq!(report.bundles, 3);
        assert_eq!(report.resources, 12);
        assert!(report.index_rows > 30, "{report:?}");
        assert!(report.db_seconds > 0.0 && report.db_seconds <= report.seconds);

        let mut conn = SqliteConnection::connect(&url).await.unwrap();
        let left: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE name LIKE 'raw_%'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert!(left.is_empty(), "{left:?}");
        conn.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The rows themselves, checked on a connection of our own (the run drops its tables).
    #[tokio::test]
    async fn sqlite_bundle_write_links_current_rows_to_versions() {
        let dir =
            std::env::temp_dir().join(format!("curanet-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("rows.db").display());
        let opts = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql(CREATE_SQLITE)
            .execute(&mut conn)
            .await
            .unwrap();
        let indexer = Indexer::new(&Definitions::shared());
        // The sample, then a Bundle too big for one statement: 7 x 4,700 version values and
        // 5 x 9,400 token values are both above SQLite's 32,766, so both are split in two.
        let small = prepare_bundle(sample(), &indexer, "sample.json".into()).unwrap();
        let entries: Vec<Value> = (0..4_700)
            .map(|i| {
                json!({
                    "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                    "resource": {"resourceType": "Basic", "code": {"coding": [
                        {"system": "http://example.org/a", "code": format!("a{i}")},
                        {"system": "http://example.org/b", "code": format!("b{i}")}
                    ]}},
                    "request": {"method": "POST", "url": "Basic"}
                })
            })
            .collect();
        let big_bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let big = prepare_bundle(big_bundle, &indexer, "big.json".into()).unwrap();
        assert_eq!(big.index[1].len() / 5, 9_400);
        for p in [&small, &big] {
            write_sqlite(&mut conn, p).await.unwrap();
        }
        let linked: (i64,) = sqlx::query_as(
            "SELECT count(*) FROM raw_resources r JOIN raw_resource_versions v \
             ON v.seq = r.current_seq AND v.id = r.id AND v.resource_type = r.resource_type",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(linked.0, 4 + 4_700);
        let mut total = 0;
        for (table, _) in INDEX_TABLES {
            let n: (i64,) = sqlx::query_as(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
            total += n.0;
        }
        assert_eq!(total as u64, small.index_rows + big.index_rows);
        conn.close().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
