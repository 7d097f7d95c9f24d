//! The raw insert baseline: rows shaped like a stored Patient inserted straight into the same
//! database with the same durability, each in its own transaction, from the same number of
//! tasks. It is what create throughput is compared against.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::http::is_loopback_host;
use crate::load::{self, LoadConfig};
use crate::report::Report;

/// Longest the set-up and clean-up statements (drop, create, connect) may take.
const DDL_TIMEOUT: Duration = Duration::from_secs(15);

const DROP: &str = "DROP TABLE IF EXISTS bench_raw";
const CREATE_SQLITE: &str = "CREATE TABLE bench_raw (resource_type TEXT, id TEXT, version INTEGER, \
     last_updated INTEGER, content TEXT, PRIMARY KEY (resource_type, id))";
// BIGINT where SQLite says INTEGER: last_updated is microseconds since the epoch, past 32 bits.
const CREATE_POSTGRES: &str = "CREATE TABLE bench_raw (resource_type TEXT, id TEXT, version BIGINT, \
     last_updated BIGINT, content TEXT, PRIMARY KEY (resource_type, id))";
const INSERT_SQLITE: &str = "INSERT INTO bench_raw (resource_type, id, version, last_updated, content) VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_POSTGRES: &str = "INSERT INTO bench_raw (resource_type, id, version, last_updated, content) VALUES ($1, $2, $3, $4, $5)";

/// A pool on one of the two supported engines.
#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One row as the server would store a created Patient: a v7 id, version 1, now in
/// microseconds, and the create scenario's body stamped with `id` and `meta`.
pub fn row(n: u64) -> (String, i64, String) {
    let id = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now();
    let last_updated = now.timestamp_micros();
    let stamp = now.format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let content = format!(
        r#"{{"resourceType":"Patient","id":"{id}","meta":{{"versionId":"1","lastUpdated":"{stamp}"}},"name":[{{"family":"Bench{n}","given":["Create"]}}],"gender":"female","birthDate":"1980-01-01"}}"#
    );
    (id, last_updated, content)
}

/// Refuses a PostgreSQL URL whose server is not on this machine (a Unix socket or loopback).
pub(crate) fn check_postgres_target(url: &str, opts: &PgConnectOptions) -> Result<(), String> {
    if opts.get_socket().is_none() && !is_loopback_host(opts.get_host()) {
        return Err(format!(
            "refusing database host {:?}: the benchmark only targets a local server (socket, 127.0.0.1, ::1 or localhost)",
            opts.get_host()
        ));
    }
    // `hostaddr` overrides the host for the connection itself, so it must be loopback too.
    if let Ok(parsed) = reqwest::Url::parse(url)
        && let Some((_, addr)) = parsed.query_pairs().find(|(k, _)| k == "hostaddr")
        && !is_loopback_host(&addr)
    {
        return Err(format!("refusing hostaddr {addr:?}: not loopback"));
    }
    Ok(())
}

async fn connect(url: &str, connections: u32) -> Result<Db, String> {
    if url.starts_with("sqlite:") {
        // The server's own settings: WAL, a commit fsynced before it returns, wait for the lock.
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| format!("invalid SQLite URL {url:?}: {e}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // Like the server, which creates the file's folder on first start.
        if let Some(dir) = opts
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(DDL_TIMEOUT)
            .connect_with(opts)
            .await
            .map_err(|e| format!("cannot open {url}: {e}"))?;
        Ok(Db::Sqlite(pool))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let opts =
            PgConnectOptions::from_str(url).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
        check_postgres_target(url, &opts)?;
        // Default synchronous_commit (on), as the server uses: each commit waits for its WAL flush.
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(DDL_TIMEOUT)
            .connect_with(opts)
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        Ok(Db::Postgres(pool))
    } else {
        Err(format!(
            "unsupported database URL {url:?}: expected sqlite:PATH or postgres://..."
        ))
    }
}

impl Db {
    async fn execute(&self, sqlite: &'static str, postgres: &'static str) -> Result<(), String> {
        let r = match self {
            Db::Sqlite(p) => sqlx::query(sqlite).execute(p).await.map(drop),
            Db::Postgres(p) => sqlx::query(postgres).execute(p).await.map(drop),
        };
        r.map_err(|e| e.to_string())
    }

    /// Inserts one row in its own (autocommit) transaction.
    async fn insert(&self, n: u64) -> Result<(), String> {
        let (id, last_updated, content) = row(n);
        let r = match self {
            Db::Sqlite(p) => sqlx::query(INSERT_SQLITE)
                .bind("Patient")
                .bind(id)
                .bind(1_i64)
                .bind(last_updated)
                .bind(content)
                .execute(p)
                .await
                .map(drop),
            Db::Postgres(p) => sqlx::query(INSERT_POSTGRES)
                .bind("Patient")
                .bind(id)
                .bind(1_i64)
                .bind(last_updated)
                .bind(content)
                .execute(p)
                .await
                .map(drop),
        };
        r.map_err(|e| e.to_string())
    }

    async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }
}

async fn bounded<T>(what: &str, fut: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(DDL_TIMEOUT, fut)
        .await
        .map_err(|_| format!("{what}: no answer within {}s", DDL_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))
}

/// Runs the raw insert load against `database_url`; the scratch table is dropped before and after.
pub async fn run(database_url: &str, cfg: LoadConfig) -> Result<Report, String> {
    let connections =
        u32::try_from(cfg.connections).map_err(|_| "too many connections".to_string())?;
    let db = bounded("connect", connect(database_url, connections)).await?;
    bounded("drop bench_raw", db.execute(DROP, DROP)).await?;
    bounded(
        "create bench_raw",
        db.execute(CREATE_SQLITE, CREATE_POSTGRES),
    )
    .await?;
    let load_db = db.clone();
    let report = load::run("raw-insert", cfg, move |n| {
        let db = load_db.clone();
        async move { db.insert(n).await }
    })
    .await;
    // Clean up even though the load is over: the table is scratch and must not stay behind.
    let dropped = bounded("drop bench_raw", db.execute(DROP, DROP)).await;
    db.close().await;
    dropped.map(|()| report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_looks_like_a_stored_create() {
        let (id, last_updated, content) = row(42);
        let v: serde_json::Value = serde_json::from_str(&content).unwrap();
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["meta"]["versionId"], "1");
        assert_eq!(v["name"][0]["family"], "Bench42");
        assert!(last_updated > 1_600_000_000_000_000);
    }

    #[test]
    fn refuses_remote_postgres() {
        let check =
            |url: &str| check_postgres_target(url, &PgConnectOptions::from_str(url).unwrap());
        assert!(check("postgres://postgres@127.0.0.1:5432/db").is_ok());
        assert!(check("postgres://postgres@localhost/db").is_ok());
        assert!(check("postgres:///db?host=/var/run/postgresql").is_ok());
        assert!(check("postgres://postgres@db.example.org/db").is_err());
        assert!(check("postgres://postgres@127.0.0.1/db?hostaddr=10.1.2.3").is_err());
    }

    #[tokio::test]
    async fn sqlite_raw_insert_runs_and_cleans_up() {
        let dir =
            std::env::temp_dir().join(format!("curanet-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("raw.db").display());
        let cfg = LoadConfig {
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(300),
        };
        let report = run(&url, cfg).await.unwrap();
        assert!(report.requests > 0, "{report:?}");
        assert_eq!(report.errors, 0, "{report:?}");
        let Db::Sqlite(pool) = connect(&url, 1).await.unwrap() else {
            unreachable!()
        };
        let left: Option<(String,)> =
            sqlx::query_as("SELECT name FROM sqlite_master WHERE name = 'bench_raw'")
                .fetch_optional(&pool)
                .await
                .unwrap();
        assert!(left.is_none());
        pool.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
