//! SQL text shared by both engines, written once with a placeholder style per dialect.

use curanet_fhir::Instant;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type,
};

use crate::Result;
use crate::model::{HistoryQuery, HistoryScope, Method, StoredVersion};

/// The placeholder style of an engine.
#[derive(Clone, Copy)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bind argument.
#[derive(Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Bool(bool),
    OptText(Option<String>),
    Float(f64),
}

/// Columns of a version row, in the order the row mappers read them.
pub(crate) const VERSION_COLUMNS: &str =
    "v.seq, v.resource_type, v.id, v.version, v.last_updated, v.deleted, v.method, v.content";

pub(crate) fn read_current(d: Dialect) -> String {
    let (a, b) = (d.ph(1), d.ph(2));
    format!(
        "SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.seq = r.current_seq \
         WHERE r.resource_type = {a} AND r.id = {b}"
    )
}

pub(crate) fn read_version(d: Dialect) -> String {
    let (a, b, c) = (d.ph(1), d.ph(2), d.ph(3));
    format!(
        "SELECT {VERSION_COLUMNS} FROM resource_versions v \
         WHERE v.resource_type = {a} AND v.id = {b} AND v.version = {c}"
    )
}

impl Dialect {
    pub(crate) fn ph(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }
}

/// The history query: newest first, keyset-paged on `seq`, one row more than a page.
pub(crate) fn history(d: Dialect, q: &HistoryQuery) -> (String, Vec<Arg>) {
    let mut args = Vec::new();
    let mut conds = Vec::new();
    let push = |args: &mut Vec<Arg>, arg: Arg| {
        args.push(arg);
        d.ph(args.len())
    };
    match &q.scope {
        HistoryScope::System => {}
        HistoryScope::Type(t) => {
            let p = push(&mut args, Arg::Text(t.clone()));
            conds.push(format!("v.resource_type = {p}"));
        }
        HistoryScope::Instance(t, id) => {
            let p = push(&mut args, Arg::Text(t.clone()));
            let p2 = push(&mut args, Arg::Text(id.clone()));
            conds.push(format!("v.resource_type = {p} AND v.id = {p2}"));
        }
    }
    if let Some(since) = q.since {
        let p = push(&mut args, Arg::Int(since.micros()));
        conds.push(format!("v.last_updated >= {p}"));
    }
    if let Some((start, end)) = q.at {
        // Current at some point in [start, end): written before the end, and not superseded
        // by its next version at or before the start.
        let pe = push(&mut args, Arg::Int(end));
        let ps = push(&mut args, Arg::Int(start));
        conds.push(format!(
            "v.last_updated < {pe} AND NOT EXISTS (SELECT 1 FROM resource_versions w \
             WHERE w.resource_type = v.resource_type AND w.id = v.id \
             AND w.version = v.version + 1 AND w.last_updated <= {ps})"
        ));
    }
    if let Some(before) = q.before {
        let p = push(&mut args, Arg::Int(before));
        conds.push(format!("v.seq < {p}"));
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conds.join(" AND "))
    };
    let limit = push(&mut args, Arg::Int(i64::from(q.count) + 1));
    (
        format!(
            "SELECT {VERSION_COLUMNS} FROM resource_versions v {filter} ORDER BY v.seq DESC LIMIT {limit}"
        ),
        args,
    )
}

/// Maps a row of [`VERSION_COLUMNS`] (either engine).
pub(crate) fn row_to_version<R>(row: &R) -> Result<StoredVersion>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(StoredVersion {
        seq: row.try_get(0)?,
        resource_type: row.try_get(1)?,
        id: row.try_get(2)?,
        version: row.try_get(3)?,
        last_updated: Instant(row.try_get(4)?),
        deleted: row.try_get(5)?,
        method: Method::parse(&row.try_get::<String, _>(6)?),
        content: row.try_get(7)?,
    })
}

/// Runs a statement with its arguments on any executor (pool or connection) of either engine.
pub(crate) async fn fetch<'e, DB, E>(
    executor: E,
    text: String,
    args: Vec<Arg>,
) -> Result<Vec<DB::Row>>
where
    DB: Database,
    E: Executor<'e, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
{
    let mut query = sqlx::query::<DB>(AssertSqlSafe(text));
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s),
            Arg::Int(i) => query.bind(i),
            Arg::Bool(b) => query.bind(b),
            Arg::OptText(t) => query.bind(t),
            Arg::Float(f) => query.bind(f),
        };
    }
    Ok(query.fetch_all(executor).await?)
}

/// Runs a query selecting [`VERSION_COLUMNS`] with its arguments, on either engine.
pub(crate) async fn fetch_versions<DB>(
    pool: &Pool<DB>,
    text: String,
    args: Vec<Arg>,
) -> Result<Vec<StoredVersion>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
{
    let rows = fetch(pool, text, args).await?;
    rows.iter().map(row_to_version).collect()
}

/// The current version of a resource, on either engine.
pub(crate) fn current_query(d: Dialect, resource_type: &str, id: &str) -> (String, Vec<Arg>) {
    (
        read_current(d),
        vec![
            Arg::Text(resource_type.to_string()),
            Arg::Text(id.to_string()),
        ],
    )
}

/// One version of a resource, on either engine.
pub(crate) fn version_query(
    d: Dialect,
    resource_type: &str,
    id: &str,
    version: i64,
) -> (String, Vec<Arg>) {
    (
        read_version(d),
        vec![
            Arg::Text(resource_type.to_string()),
            Arg::Text(id.to_string()),
            Arg::Int(version),
        ],
    )
}

impl Dialect {
    /// The current state of a resource inside a write transaction (locked on PostgreSQL, where
    /// writers run concurrently; SQLite has a single writer).
    pub(crate) fn select_current(self) -> String {
        let lock = match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        };
        format!(
            "SELECT version, last_updated, deleted FROM resources WHERE resource_type = {} AND id = {}{lock}",
            self.ph(1),
            self.ph(2)
        )
    }

    /// The unique keys a resource owns.
    pub(crate) fn select_owned(self) -> String {
        format!(
            "SELECT system, value FROM unique_identifiers WHERE resource_type = {} AND id = {}",
            self.ph(1),
            self.ph(2)
        )
    }

    /// Claims a unique key unless somebody has it.
    pub(crate) fn insert_claim(self) -> String {
        format!(
            "INSERT INTO unique_identifiers (system, value, resource_type, id) VALUES ({}, {}, {}, {}) \
             ON CONFLICT (system, value) DO NOTHING",
            self.ph(1),
            self.ph(2),
            self.ph(3),
            self.ph(4)
        )
    }

    /// The owner of a unique key.
    pub(crate) fn select_owner(self) -> String {
        format!(
            "SELECT resource_type, id FROM unique_identifiers WHERE system = {} AND value = {}",
            self.ph(1),
            self.ph(2)
        )
    }

    /// The statements that append a version and make it current; the first returns its seq.
    /// PostgreSQL does it in one round trip and announces the change to other instances.
    pub(crate) fn append(self) -> &'static [&'static str] {
        match self {
            // A trigger (migration 0005) makes the new version current.
            Dialect::Sqlite => &[
                "INSERT INTO resource_versions (resource_type, id, version, last_updated, deleted, method, content) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq",
            ],
            Dialect::Postgres => &["WITH v AS (INSERT INTO resource_versions \
                   (resource_type, id, version, last_updated, deleted, method, content) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq), \
                 r AS (INSERT INTO resources (resource_type, id, version, last_updated, deleted, current_seq) \
                   SELECT $1, $2, $3, $4, $5, seq FROM v \
                   ON CONFLICT (resource_type, id) DO UPDATE SET version = excluded.version, \
                   last_updated = excluded.last_updated, deleted = excluded.deleted, \
                   current_seq = excluded.current_seq) \
                 SELECT seq FROM v, pg_notify('curanet_resources', $1 || '/' || $2)"],
        }
    }
}

impl Dialect {
    /// Inserts all rows of one index table from a JSON array of `[param, col...]` arrays (the
    /// argument numbered `json_arg`), for the resource named by the first two arguments.
    pub(crate) fn insert_index(self, table: &str, columns: &[&str], json_arg: usize) -> String {
        let numeric = |c: &str| {
            matches!(c, "lo" | "hi" | "grp" | "pos")
                || (c == "value"
                    && matches!(table, "idx_number" | "idx_quantity" | "idx_composite"))
        };
        let extract = |i: usize, c: &str| match self {
            Dialect::Sqlite => format!("json_extract(value, '$[{i}]')"),
            Dialect::Postgres if matches!(c, "lo" | "hi" | "grp" | "pos") => {
                format!("(x->>{i})::bigint")
            }
            Dialect::Postgres if numeric(c) => format!("(x->>{i})::double precision"),
            Dialect::Postgres => format!("x->>{i}"),
        };
        let values: Vec<String> = std::iter::once(extract(0, "param"))
            .chain(columns.iter().enumerate().map(|(i, c)| extract(i + 1, c)))
            .collect();
        let source = match self {
            Dialect::Sqlite => format!("json_each(?{json_arg})"),
            Dialect::Postgres => format!("jsonb_array_elements(${json_arg}::jsonb) AS x"),
        };
        format!(
            "INSERT INTO {table} (resource_type, id, param, {}) SELECT {}, {}, {} FROM {source}",
            columns.join(", "),
            self.ph(1),
            self.ph(2),
            values.join(", ")
        )
    }
}

impl Dialect {
    /// Takes a transaction-scoped lock on a key (PostgreSQL; SQLite has a single writer).
    pub(crate) fn lock(self) -> Option<String> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some("SELECT pg_advisory_xact_lock(hashtext($1))::text".into()),
        }
    }
}

impl Dialect {
    /// Sets a maintenance marker.
    pub(crate) fn upsert_marker(self) -> String {
        format!(
            "INSERT INTO maintenance_markers (name, value) VALUES ({}, {}) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            self.ph(1),
            self.ph(2)
        )
    }

    /// Live current versions in (type, id) order after a position, optionally of one type.
    pub(crate) fn scan(
        self,
        resource_type: Option<&str>,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> (String, Vec<Arg>) {
        let mut args = Vec::new();
        let mut conds = vec!["r.deleted = FALSE".to_string()];
        if let Some(t) = resource_type {
            args.push(Arg::Text(t.to_string()));
            conds.push(format!("r.resource_type = {}", self.ph(args.len())));
        }
        if let Some((t, id)) = after {
            args.push(Arg::Text(t.clone()));
            let pt = self.ph(args.len());
            args.push(Arg::Text(id.clone()));
            let pi = self.ph(args.len());
            conds.push(format!(
                "(r.resource_type > {pt} OR (r.resource_type = {pt} AND r.id > {pi}))"
            ));
        }
        args.push(Arg::Int(i64::from(limit)));
        (
            format!(
                "SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.seq = r.current_seq \
                 WHERE {} ORDER BY r.resource_type, r.id LIMIT {}",
                conds.join(" AND "),
                self.ph(args.len())
            ),
            args,
        )
    }
}

impl Dialect {
    /// One statement that replaces a resource's index rows (`clear`: remove its old rows first,
    /// only those of `param` when given), or `None` when there is nothing to do.
    pub(crate) fn replace_index(
        self,
        resource_type: &str,
        id: &str,
        rows: &crate::IndexRows,
        clear: bool,
        param: Option<&str>,
    ) -> Option<(String, Vec<Arg>)> {
        let tables = rows.as_json();
        if !clear && tables.iter().all(Option::is_none) {
            return None;
        }
        let mut args = vec![
            Arg::Text(resource_type.to_string()),
            Arg::Text(id.to_string()),
        ];
        match self {
            Dialect::Sqlite => {
                // Rows for the dispatch view: [tbl, param, c1, c2, c3, c4], the clear row first.
                let mut items = Vec::new();
                if clear {
                    items.push(serde_json::json!(["clear", param]));
                }
                for ((table, _), json) in crate::index::TABLES.iter().zip(tables) {
                    for row in json.and_then(|j| j.as_array().cloned()).unwrap_or_default() {
                        let mut item = vec![serde_json::json!(table)];
                        item.extend(row.as_array().cloned().unwrap_or_default());
                        items.push(serde_json::Value::Array(item));
                    }
                }
                args.push(Arg::Text(serde_json::Value::Array(items).to_string()));
                let cols: Vec<String> = (0..10)
                    .map(|i| format!("json_extract(value, '$[{i}]')"))
                    .collect();
                Some((
                    format!(
                        "INSERT INTO idx_dispatch (tbl, resource_type, id, param, c1, c2, c3, c4, c5, c6, c7, c8) \
                         SELECT {}, ?1, ?2, {} FROM json_each(?3)",
                        cols[0],
                        cols[1..].join(", ")
                    ),
                    args,
                ))
            }
            Dialect::Postgres => {
                let mut ctes = Vec::new();
                if clear {
                    let param_cond = match param {
                        Some(p) => {
                            args.push(Arg::Text(p.to_string()));
                            format!(" AND param = ${}", args.len())
                        }
                        None => String::new(),
                    };
                    for (n, (table, _)) in crate::index::TABLES.iter().enumerate() {
                        ctes.push(format!(
                            "d{n} AS (DELETE FROM {table} WHERE resource_type = $1 AND id = $2{param_cond})"
                        ));
                    }
                }
                for (n, ((table, columns), json)) in
                    crate::index::TABLES.iter().zip(tables).enumerate()
                {
                    if let Some(json) = json {
                        args.push(Arg::Text(json.to_string()));
                        ctes.push(format!(
                            "i{n} AS ({})",
                            self.insert_index(table, columns, args.len())
                        ));
                    }
                }
                Some((format!("WITH {} SELECT 1", ctes.join(", ")), args))
            }
        }
    }
}
