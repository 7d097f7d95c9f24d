//! SQLite, the embedded default: one file, WAL, `synchronous=FULL`, and one writer task that
//! commits concurrent write requests together (group commit) while readers use a pool.

use std::any::Any;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Acquire, Connection, SqlitePool};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::audit::WriteAudit;
use crate::auth::engine::{BoxFut, Conn, Engine};
use crate::model::{Backend, HistoryQuery, StoredVersion, WriteOp, WriteOutcome};
use crate::read_cache::ReadCache;
use crate::sql::{self, Dialect};
use crate::tx::SqlTx;
use crate::write;
use crate::{Result, Store, StoreError, StoreOptions};

/// Most write requests committed in one transaction.
const MAX_GROUP: usize = 256;

type Reply = oneshot::Sender<Result<Vec<WriteOutcome>>>;

/// An account or OAuth write ([`crate::AuthStore`]) run on the writer's connection. Its value is
/// type-erased so that one queue, and one commit, carries every write: auth writes are then
/// ordered with resource writes and never contend with the writer for SQLite's write lock.
type AuthRun = Box<
    dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, Result<Box<dyn Any + Send>>> + Send,
>;

type AuthReply = oneshot::Sender<Result<Box<dyn Any + Send>>>;

/// A write request queued for the writer task, with what it produced once run (kept until the
/// group's commit decides whether it stands).
enum Job {
    /// Resource operations ([`Store::write`]), with the audit record they carry, if any.
    Resources(
        Vec<WriteOp>,
        Reply,
        Option<Result<Vec<WriteOutcome>>>,
        Option<Arc<WriteAudit>>,
    ),
    /// An account or OAuth write; taken when run.
    Auth(
        Option<AuthRun>,
        AuthReply,
        Option<Result<Box<dyn Any + Send>>>,
    ),
}

impl Job {
    /// Answers the caller: with what the job produced, unless the group failed to commit.
    fn answer(self, failure: Option<&str>) {
        match self {
            Job::Resources(_, reply, result, _) => {
                let _ = reply.send(settle(failure, result));
            }
            Job::Auth(_, reply, result) => {
                let _ = reply.send(settle(failure, result));
            }
        }
    }
}

/// A job's answer: its own result when the group committed, else the group's error.
fn settle<T>(failure: Option<&str>, result: Option<Result<T>>) -> Result<T> {
    match (failure, result) {
        (None, Some(result)) => result,
        (failure, _) => Err(StoreError::Database(sqlx::Error::Protocol(
            failure.unwrap_or("the write did not run").to_string(),
        ))),
    }
}

/// Wraps an auth write (a helper, so that the closure's lifetime is inferred higher-ranked).
fn auth_run<F>(f: F) -> AuthRun
where
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFut<'c, Result<Box<dyn Any + Send>>>
        + Send
        + 'static,
{
    Box::new(f)
}

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
        let committed = commit_group(&mut conn, &mut group).await;
        if committed.is_ok() {
            for job in &group {
                if let Job::Resources(_, _, Some(Ok(outcomes)), _) = job {
                    cache.committed_all(outcomes);
                }
            }
        }
        cache.end_write();
        let failure = committed.err().map(|e| {
            tracing::error!(error = %e, "sqlite group commit failed");
            e.to_string()
        });
        for job in group {
            job.answer(failure.as_deref());
        }
    }
}

async fn commit_group(conn: &mut SqliteConnection, group: &mut [Job]) -> Result<()> {
    let mut tx = Connection::begin(conn).await?;
    for job in group {
        let mut savepoint = tx.begin().await?;
        let conn = savepoint.acquire().await?;
        let ok = match job {
            Job::Resources(ops, _, result, audit) => {
                let mut outcome = write::apply(
                    &mut SqlTx::<sqlx::Sqlite> {
                        conn: &mut *conn,
                        dialect: Dialect::Sqlite,
                    },
                    ops,
                )
                .await;
                if let (Ok(outcomes), Some(audit)) = (&outcome, audit.as_ref())
                    && let Some(record) = audit.record(outcomes)
                    && let Err(e) = crate::audit::insert_unlinked(&mut *conn, &record).await
                {
                    outcome = Err(e);
                }
                result.insert(outcome).is_ok()
            }
            Job::Auth(run, _, result) => {
                let outcome = match run.take() {
                    Some(run) => run(conn).await,
                    None => Err(StoreError::Closed),
                };
                result.insert(outcome).is_ok()
            }
        };
        if ok {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

impl SqliteStore {
    /// The writer task's queue.
    fn sender(&self) -> Result<mpsc::Sender<Job>> {
        self.writer
            .lock()
            .expect("writer lock")
            .clone()
            .ok_or(StoreError::Closed)
    }
}

/// Account and OAuth statements ([`crate::AuthStore`]): reads on the reader pool, writes on the
/// writer task, each in its own savepoint of a group commit.
#[async_trait::async_trait]
impl Engine for SqliteStore {
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFut<'c, Result<T>> + Send + 'static,
    {
        let mut conn = self.readers.acquire().await?;
        f(&mut *conn).await
    }

    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFut<'c, Result<T>> + Send + 'static,
    {
        let run = auth_run(move |conn| {
            Box::pin(async move {
                f(conn)
                    .await
                    .map(|value| Box::new(value) as Box<dyn Any + Send>)
            })
        });
        let (reply, answer) = oneshot::channel();
        self.sender()?
            .send(Job::Auth(Some(run), reply, None))
            .await
            .map_err(|_| StoreError::Closed)?;
        let value = answer.await.map_err(|_| StoreError::Closed)??;
        Ok(*value
            .downcast::<T>()
            .expect("an auth write answers with the value its closure produced"))
    }
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
        let audit = crate::audit::current_write_audit();
        let (reply, answer) = oneshot::channel();
        self.sender()?
            .send(Job::Resources(ops, reply, None, audit.clone()))
            .await
            .map_err(|_| StoreError::Closed)?;
        let outcomes = answer.await.map_err(|_| StoreError::Closed)??;
        if let Some(audit) = audit {
            audit.committed();
        }
        Ok(outcomes)
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

    fn watch(&self, watcher: crate::ChangeWatcher) {
        self.cache.watch(watcher);
    }
}
