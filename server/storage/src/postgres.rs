//! PostgreSQL, for production: many stateless server instances share one database. Each write
//! request is one transaction; row locks order concurrent writers to the same resource, and
//! PostgreSQL flushes the WAL of concurrent commits together.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

use crate::auth::engine::{BoxFut, Conn, Engine};
use crate::index::TABLES;
use crate::model::{
    Backend, HistoryQuery, Precondition, PutOp, StoredVersion, UniqueKey, WriteOp, WriteOutcome,
};
use crate::read_cache::ReadCache;
use crate::sql::{self, Dialect};
use crate::tx::SqlTx;
use crate::write;
use crate::{Result, Store, StoreError, StoreOptions};

/// How often a write that lost a race with a concurrent writer is retried.
const MAX_ATTEMPTS: u32 = 8;

/// The channel on which every committed update or delete is announced as `Type/id`.
const CHANNEL: &str = "curanet_resources";

/// The PostgreSQL store.
pub struct PostgresStore {
    pool: PgPool,
    cache: Arc<ReadCache>,
    /// The change listener and the statistics keeper, stopped by `close`.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Invalidates cached versions that other instances change; clears everything when the
/// notification connection was lost, since notifications may have been missed meanwhile.
async fn listen(mut listener: PgListener, cache: Arc<ReadCache>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => cache.invalidate(n.payload()),
            Ok(None) => {
                tracing::warn!("change notifications reconnected; clearing the read cache");
                cache.clear();
            }
            Err(e) => {
                tracing::warn!(error = %e, "change notifications failed; clearing the read cache");
                cache.clear();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// How often the statistics keeper looks for tables whose planner statistics are stale.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(30);

/// Keeps the planner statistics of CuraNet's tables fresh when autovacuum is off (a server
/// configured that way never analyzes them, and without statistics PostgreSQL plans searches
/// badly after a bulk load). With autovacuum on, this does nothing.
async fn keep_statistics(pool: PgPool) {
    loop {
        tokio::time::sleep(STATISTICS_INTERVAL).await;
        if let Err(e) = analyze_stale_tables(&pool, false).await {
            tracing::debug!(error = %e, "planner statistics check failed");
        }
    }
}

/// Runs ANALYZE on CuraNet's tables that changed by more than autovacuum's default threshold
/// (50 rows + 10 %) since they were last analyzed, unless autovacuum does it (`always`: even
/// then); one instance at a time. Returns the tables analyzed.
async fn analyze_stale_tables(pool: &PgPool, always: bool) -> Result<Vec<String>> {
    let autovacuum: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(pool)
        .await?;
    if autovacuum == "on" && !always {
        return Ok(Vec::new());
    }
    let mut conn = pool.acquire().await?;
    // Several instances share the database: one of them analyzes.
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('curanet_analyze'))")
            .fetch_one(&mut *conn)
            .await?;
    if !locked {
        return Ok(Vec::new());
    }
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = current_schema() \
         AND (relname LIKE 'idx\\_%' OR relname IN ('resources', 'resource_versions', 'unique_identifiers')) \
         AND n_mod_since_analyze > 50 + 0.1 * n_live_tup",
    )
    .fetch_all(&mut *conn)
    .await?;
    for table in &stale {
        tracing::info!(table, "analyzing (autovacuum is off)");
        // The name comes from the catalogue and matches a fixed pattern.
        sqlx::query(AssertSqlSafe(format!("ANALYZE \"{table}\"")))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("SELECT pg_advisory_unlock(hashtext('curanet_analyze'))")
        .execute(&mut *conn)
        .await?;
    Ok(stale)
}

impl PostgresStore {
    /// Connects and applies migrations (serialised across instances by sqlx's advisory lock).
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Statements are prepared and cached per connection. A cached search would
                    // fall back to a generic plan that ignores its values after five runs, and a
                    // generic plan cannot tell a patient's 100 Observations from a common code's
                    // 50,000: plan every execution with its values (planning costs ~0.1-1 ms).
                    sqlx::query("SET plan_cache_mode = force_custom_plan")
                        .execute(&mut *conn)
                        .await?;
                    // The index tables are read by key, and their pages are cached or on SSD:
                    // with the default 4.0 the planner prefers a sequential scan of a type's
                    // resources to 200 primary-key lookups (3.7 ms instead of 1.3 ms).
                    sqlx::query("SET random_page_cost = 1.1")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await?;
        let cache = Arc::new(ReadCache::new(options.read_cache_bytes));
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let tasks = vec![
            tokio::spawn(listen(listener, cache.clone())),
            tokio::spawn(keep_statistics(pool.clone())),
        ];
        Ok(Self {
            pool,
            cache,
            tasks: std::sync::Mutex::new(tasks),
        })
    }

    /// A create of a resource that never existed, as one autocommitted statement (one round trip
    /// instead of four). `None` when the id exists already (a deleted resource being recreated):
    /// the caller then takes the general path.
    async fn create_in_one_statement(&self, put: &PutOp) -> Result<Option<WriteOutcome>> {
        let (mut stored, keys, rows) = write::prepare_put(put, None, &[])?;
        let (systems, values): (Vec<String>, Vec<String>) = keys
            .iter()
            .map(|k| (k.system.clone(), k.value.clone()))
            .unzip();
        // Index rows ride along as more data-modifying CTEs: still one round trip.
        let mut index_ctes = String::new();
        let mut index_args = Vec::new();
        for (n, ((table, columns), json)) in TABLES.iter().zip(rows.as_json()).enumerate() {
            if let Some(json) = json {
                index_args.push(json.to_string());
                let insert = Dialect::Postgres.insert_index(table, columns, 7 + index_args.len());
                index_ctes.push_str(&format!(", i{n} AS ({insert})"));
            }
        }
        let statement = format!(
            "WITH v AS (INSERT INTO resource_versions \
               (resource_type, id, version, last_updated, deleted, method, content) \
               VALUES ($1, $2, 1, $3, false, $4, $5) RETURNING seq), \
             r AS (INSERT INTO resources (resource_type, id, version, last_updated, deleted, current_seq) \
               SELECT $1, $2, 1, $3, false, seq FROM v), \
             k AS (INSERT INTO unique_identifiers (system, value, resource_type, id) \
               SELECT s, val, $1, $2 FROM unnest($6::text[], $7::text[]) AS u(s, val)){index_ctes} \
             SELECT seq FROM v"
        );
        let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(statement))
            .bind(stored.resource_type.clone())
            .bind(stored.id.clone())
            .bind(stored.last_updated.micros())
            .bind(stored.method.as_str())
            .bind(stored.content.clone())
            .bind(systems)
            .bind(values);
        for json in index_args {
            query = query.bind(json);
        }
        let result = query.fetch_one(&self.pool).await;
        match result {
            Ok(seq) => {
                stored.seq = seq;
                Ok(Some(WriteOutcome::Written {
                    version: stored,
                    created: true,
                }))
            }
            Err(sqlx::Error::Database(e)) if e.constraint() == Some("unique_identifiers_pkey") => {
                let key = keys.first().cloned().unwrap_or(UniqueKey {
                    system: String::new(),
                    value: String::new(),
                });
                let owner: Option<(String, String)> = sqlx::query_as(
                    "SELECT resource_type, id FROM unique_identifiers WHERE system = $1 AND value = $2",
                )
                .bind(&key.system)
                .bind(&key.value)
                .fetch_optional(&self.pool)
                .await?;
                Err(StoreError::DuplicateIdentifier {
                    system: key.system,
                    value: key.value,
                    owner: owner.map(|(t, i)| format!("{t}/{i}")).unwrap_or_default(),
                })
            }
            // The id exists (a tombstone, or a race): the transactional path decides.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies a write: one statement for a plain create, otherwise a transaction, retried
    /// when it lost a race with a concurrent writer.
    async fn write_uncached(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        // An audited write carries its record in its transaction: not the one-statement create.
        let audit = crate::audit::current_write_audit();
        if audit.is_none()
            && let [WriteOp::Put(put)] = ops.as_slice()
            && put.precondition == Precondition::MustNotExist
            && let Some(outcome) = self.create_in_one_statement(put).await?
        {
            return Ok(vec![outcome]);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.pool.begin().await?;
            let result = write::apply(
                &mut SqlTx::<sqlx::Postgres> {
                    conn: &mut tx,
                    dialect: Dialect::Postgres,
                },
                &ops,
            )
            .await;
            let result = match (result, audit.as_ref()) {
                (Ok(outcomes), Some(audit)) => match audit.record(&outcomes) {
                    Some(record) => crate::audit::insert_unlinked(&mut *tx, &record)
                        .await
                        .map(|()| outcomes),
                    None => Ok(outcomes),
                },
                (result, _) => result,
            };
            let result = match result {
                Ok(outcomes) => tx.commit().await.map(|()| outcomes).map_err(Into::into),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            };
            match result {
                Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "write lost a race; retrying");
                }
                Ok(outcomes) => {
                    if let Some(audit) = &audit {
                        audit.committed();
                    }
                    return Ok(outcomes);
                }
                other => return other,
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn read(&self, resource_type: &str, id: &str) -> Result<Option<StoredVersion>> {
        self.cache
            .read(resource_type, id, || async {
                let (text, args) = sql::current_query(Dialect::Postgres, resource_type, id);
                Ok(sql::fetch_versions(&self.pool, text, args).await?.pop())
            })
            .await
    }

    async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredVersion>> {
        let (text, args) = sql::version_query(Dialect::Postgres, resource_type, id, version);
        Ok(sql::fetch_versions(&self.pool, text, args).await?.pop())
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        self.cache.write(|| self.write_uncached(ops)).await
    }

    async fn history(&self, q: &HistoryQuery) -> Result<Vec<StoredVersion>> {
        let (text, args) = sql::history(Dialect::Postgres, q);
        sql::fetch_versions(&self.pool, text, args).await
    }

    async fn search(&self, spec: &crate::SearchSpec) -> Result<crate::SearchPage> {
        crate::search::run(&self.pool, Dialect::Postgres, spec).await
    }

    async fn scan(
        &self,
        resource_type: Option<&str>,
        after: Option<&(String, String)>,
        limit: u32,
    ) -> Result<Vec<StoredVersion>> {
        let (text, args) = Dialect::Postgres.scan(resource_type, after, limit);
        sql::fetch_versions(&self.pool, text, args).await
    }

    async fn meta_summary(&self, resource_types: &[&str]) -> Result<crate::MetaSummary> {
        crate::meta::summary(&self.pool, Dialect::Postgres, resource_types).await
    }

    async fn marker(&self, name: &str) -> Result<Option<String>> {
        let query = format!(
            "SELECT value FROM maintenance_markers WHERE name = {}",
            Dialect::Postgres.ph(1)
        );
        let rows = sql::fetch(&self.pool, query, vec![sql::Arg::Text(name.to_string())]).await?;
        Ok(match rows.first() {
            Some(row) => Some(sqlx::Row::try_get::<String, _>(row, 0)?),
            None => None,
        })
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
        self.pool.close().await;
    }

    fn watch(&self, watcher: crate::ChangeWatcher) {
        self.cache.watch(watcher);
    }
}

/// Account and OAuth statements ([`crate::AuthStore`]): reads on a pooled connection, writes in
/// a transaction of their own.
#[async_trait::async_trait]
impl Engine for PostgresStore {
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFut<'c, Result<T>> + Send + 'static,
    {
        let mut conn = self.pool.acquire().await?;
        f(&mut *conn).await
    }

    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFut<'c, Result<T>> + Send + 'static,
    {
        let mut tx = self.pool.begin().await?;
        match f(&mut *tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ThrowawayPostgres;

    #[tokio::test]
    async fn stale_statistics_are_refreshed() {
        let Some(db) = ThrowawayPostgres::create("analyze").await else {
            return;
        };
        let store = PostgresStore::open(&db.url, &StoreOptions::default())
            .await
            .expect("open");
        sqlx::query(
            "INSERT INTO idx_token (resource_type, id, param, system, code) \
             SELECT 'Observation', 'o' || n, 'code', 'http://loinc.org', 'c' || (n % 7) \
             FROM generate_series(1, 2000) AS n",
        )
        .execute(&store.pool)
        .await
        .expect("insert");
        // The statistics collector reports changes asynchronously.
        let mut analyzed = Vec::new();
        for _ in 0..50 {
            analyzed = analyze_stale_tables(&store.pool, true)
                .await
                .expect("analyze");
            if !analyzed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(analyzed.iter().any(|t| t == "idx_token"), "{analyzed:?}");
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM last_analyze)::bigint FROM pg_stat_user_tables WHERE relname = 'idx_token'",
        )
        .fetch_one(&store.pool)
        .await
        .expect("stats");
        assert!(last.is_some(), "idx_token was not analyzed");
        // Nothing changed since: nothing to do.
        assert!(
            analyze_stale_tables(&store.pool, true)
                .await
                .expect("again")
                .iter()
                .all(|t| t != "idx_token")
        );
        store.close().await;
        db.drop_database().await;
    }
}
