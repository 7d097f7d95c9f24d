//! SQLite, the embedded default: one file, WAL, `synchronous=FULL`, and one writer task that
//! commits concurrent write requests together (group commit) while readers use a pool.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Acquire, Connection, SqlitePool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::model::{Backend, HistoryQuery, StoredVersion, WriteOp, WriteOutcome};
use crate::read_cache::ReadCache;
use crate::sql::{self, Dialect};
use crate::tx::SqlTx;
use crate::write;
use crate::{Result, Store, StoreError, StoreOptions};

/// Most write requests committed in one transaction.
const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<Vec<WriteOutcome>>>;

/// A write request queued for the writer task.
type Job = (Vec<WriteOp>, Reply);

/// The SQLite store.
pub struct SqliteStore {
    readers: SqlitePool,
    cache: Arc<ReadCache>,
    writer: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    writer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn connect_options(path: &Path) -> Result<SqliteConnectOptions> {
    Ok(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk (WAL fsynced) before the write is acknowledged.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true),
    )
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path, options: &StoreOptions) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let opts = connect_options(path)?;
        let mut conn = SqliteConnection::connect_with(&opts).await?;
        sqlx::migrate!("../../migrations/sqlite")
            .run(&mut conn)
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts.read_only(false))
            .await?;
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        let cache = Arc::new(ReadCache::new(options.read_cache_bytes));
        let task = tokio::spawn(writer(conn, rx, cache.clone()));
        Ok(Self {
            readers,
            cache,
            writer: std::sync::Mutex::new(Some(tx)),
            writer_task: Mutex::new(Some(task)),
        })
    }
}

/// The single writer: takes every request waiting, runs each in its own savepoint (so one
/// failing request does not undo the others), commits once, then answers them all.
async fn writer(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, cache: Arc<ReadCache>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        cache.begin_write();
        let results = commit_group(&mut conn, &group).await;
        if let Ok(results) = &results {
            for outcomes in results.iter().flatten() {
                cache.committed_all(outcomes);
            }
        }
        cache.end_write();
        match results {
            Ok(results) => {
                for ((_, reply), result) in group.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "sqlite group commit failed");
                let msg = e.to_string();
                for (_, reply) in group {
                    let _ = reply.send(Err(StoreError::Database(sqlx::Error::Protocol(
                        msg.clone(),
                    ))));
                }
            }
        }
    }
}

async fn commit_group(
    conn: &mut SqliteConnection,
    group: &[Job],
) -> Result<Vec<Result<Vec<WriteOutcome>>>> {
    let mut tx = Connection::begin(conn).await?;
    let mut results = Vec::with_capacity(group.len());
    for (ops, _) in group {
        let mut savepoint = tx.begin().await?;
        let result = write::apply(
            &mut SqlTx::<sqlx::Sqlite> {
                conn: savepoint.acquire().await?,
                dialect: Dialect::Sqlite,
            },
            ops,
        )
        .await;
        if result.is_ok() {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredVersion>> {
        self.cache
            .read(resource_type, id, || async {
                let (text, args) = sql::current_query(Dialect::Sqlite, resource_type, id);
                Ok(sql::fetch_versions(&self.readers, text, args).await?.pop())
            })
            .await
    }

    async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredVersion>> {
        let (text, args) = sql::version_query(Dialect::Sqlite, resource_type, id, version);
        Ok(sql::fetch_versions(&self.readers, text, args).await?.pop())
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        let sender = self
            .writer
            .lock()
            .expect("writer lock")
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send((ops, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn history(&self, q: &HistoryQuery) -> Result<Vec<StoredVersion>> {
        let (text, args) = sql::history(Dialect::Sqlite, q);
        sql::fetch_versions(&self.readers, text, args).await
    }

    async fn search(&self, spec: &crate::SearchSpec) -> Result<crate::SearchPage> {
        crate::search::run(&self.readers, Dialect::Sqlite, spec).await
    }

    async fn scan(
        &self,
        resource_type: Option<&str>,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> Result<Vec<StoredVersion>> {
        let (text, args) = Dialect::Sqlite.scan(resource_type, after, limit);
        sql::fetch_versions(&self.readers, text, args).await
    }

    async fn meta_summary(&self, resource_types: &[&str]) -> Result<crate::MetaSummary> {
        crate::meta::summary(&self.readers, Dialect::Sqlite, resource_types).await
    }

    async fn marker(&self, name: &str) -> Result<Option<String>> {
        let query = format!(
            "SELECT value FROM maintenance_markers WHERE name = {}",
            Dialect::Sqlite.ph(1)
        );
        let rows = sql::fetch(&self.readers, query, vec![sql::Arg::Text(name.to_string())]).await?;
        Ok(match rows.first() {
            Some(row) => Some(sqlx::Row::try_get::<String, _>(row, 0)?),
            None => None,
        })
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn close(&self) {
        // Dropping the sender lets the writer drain what is queued, then stop.
        self.writer.lock().expect("writer lock").take();
        if let Some(task) = self.writer_task.lock().await.take() {
            let _ = task.await;
        }
        self.readers.close().await;
    }
}
