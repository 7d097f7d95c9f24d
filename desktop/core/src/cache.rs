//! The local cache: every resource fetched from the server, per signed-in account, exactly as
//! the server sent it (R4 JSON), with its ETag, `versionId` and `lastUpdated` for revalidation,
//! the patient it belongs to (so that a patient's data can be evicted at once when their consent
//! ends) and when it was last used (the cache is bounded in bytes, least recently used first).
//! SQLite in the app's data directory; schema in `migrations/desktop/`.
//!
//! Encrypted at rest: the app opens the cache with the account's key ([`Cache::open_sealed`]),
//! and every resource body (cached, queued in the outbox, or a conflict's server version) is
//! sealed with AES-256-GCM. Only what lookups need stays plain: account, type, id, the patient's
//! id, version, ETag and times. Deleted rows are overwritten (`secure_delete`).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use crate::Result;
use crate::secrets::SecretKey;

/// How many recently opened patients the background sync keeps current.
const RECENT_PATIENTS: i64 = 50;

/// The cache of one signed-in account.
#[derive(Clone)]
pub struct Cache {
    pool: SqlitePool,
    account: String,
    max_bytes: i64,
    bodies: Bodies,
}

/// The prefix of a sealed body (plain JSON starts with `{`).
const SEALED_PREFIX: &str = "sealed1:";

/// How resource bodies are stored: sealed under the account's key, or plain (a cache opened
/// without a key, for tests and tools).
#[derive(Clone)]
pub(crate) struct Bodies {
    key: Option<Arc<SecretKey>>,
    /// The associated data: the account, so that a body cannot be moved to another account.
    context: Vec<u8>,
}

impl Bodies {
    /// The stored form of `resource`.
    pub(crate) fn seal(&self, resource: &Value) -> Result<String> {
        let json = resource.to_string();
        match &self.key {
            Some(key) => Ok(format!(
                "{SEALED_PREFIX}{}",
                STANDARD.encode(key.seal(json.as_bytes(), &self.context)?)
            )),
            None => Ok(json),
        }
    }

    /// The resource of a stored body; `None` when it does not open (another key) or parse.
    pub(crate) fn open(&self, stored: &str) -> Option<Value> {
        match stored.strip_prefix(SEALED_PREFIX) {
            Some(sealed) => {
                let sealed = STANDARD.decode(sealed).ok()?;
                let plain = self.key.as_ref()?.open(&sealed, &self.context).ok()?;
                serde_json::from_slice(&plain).ok()
            }
            None => serde_json::from_str(stored).ok(),
        }
    }
}

/// A cached resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    /// The resource as the server sent it.
    pub resource: Value,
    /// The server's ETag (`W/"3"`), for `If-None-Match`.
    pub etag: Option<String>,
    /// `meta.versionId`.
    pub version_id: Option<String>,
    /// `meta.lastUpdated`.
    pub last_updated: Option<String>,
    /// When the server last confirmed this copy (Unix seconds).
    pub fetched_at: i64,
}

/// A cached row as read back.
#[derive(sqlx::FromRow)]
struct CachedRow {
    body: String,
    etag: Option<String>,
    version_id: Option<String>,
    last_updated: Option<String>,
    fetched_at: i64,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The patient a resource belongs to: a Patient's own id, else the id of the Patient its
/// `subject` or `patient` reference names.
pub fn patient_of(resource: &Value) -> Option<String> {
    if resource["resourceType"] == "Patient" {
        return resource["id"].as_str().map(str::to_string);
    }
    ["subject", "patient", "beneficiary"]
        .iter()
        .filter_map(|k| resource[*k]["reference"].as_str())
        .find_map(|r| {
            r.rsplit_once("Patient/")
                .map(|(_, id)| id.split('/').next().unwrap_or(id).to_string())
        })
}

impl Cache {
    /// Opens (creating if needed) the cache database at `path` for `account`, holding at most
    /// `max_bytes` of stored resources (all accounts together), without encryption: for tests
    /// and tools; the app uses [`Cache::open_sealed`].
    pub async fn open(path: &Path, account: &str, max_bytes: i64) -> Result<Cache> {
        Cache::connect(path, account, max_bytes, None).await
    }

    /// Opens (creating if needed) the cache database at `path` for `account`, every body sealed
    /// under `key` (the account's cache key, from the secret store).
    pub async fn open_sealed(
        path: &Path,
        account: &str,
        key: SecretKey,
        max_bytes: i64,
    ) -> Result<Cache> {
        Cache::connect(path, account, max_bytes, Some(Arc::new(key))).await
    }

    async fn connect(
        path: &Path,
        account: &str,
        max_bytes: i64,
        key: Option<Arc<SecretKey>>,
    ) -> Result<Cache> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // What is deleted (an evicted patient, a wiped account) is overwritten on disk.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/desktop")
            .run(&pool)
            .await?;
        Ok(Cache {
            pool,
            account: account.to_string(),
            max_bytes,
            bodies: Bodies {
                key,
                context: account.as_bytes().to_vec(),
            },
        })
    }

    /// The account this cache belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The outbox of the same account, in the same database.
    pub fn outbox(&self) -> crate::outbox::Outbox {
        crate::outbox::Outbox::new(self.pool.clone(), &self.account, self.bodies.clone())
    }

    /// Closes the database (before its files are deleted at sign-out).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The cached copy of `resource_type/id`, marked as used.
    pub async fn get(&self, resource_type: &str, id: &str) -> Result<Option<Cached>> {
        let row: Option<CachedRow> = sqlx::query_as(
            "UPDATE cached_resources SET used_at = ?4 \
             WHERE account = ?1 AND resource_type = ?2 AND id = ?3 \
             RETURNING body, etag, version_id, last_updated, fetched_at",
        )
        .bind(&self.account)
        .bind(resource_type)
        .bind(id)
        .bind(now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.and_then(|r| {
            Some(Cached {
                resource: self.bodies.open(&r.body)?,
                etag: r.etag,
                version_id: r.version_id,
                last_updated: r.last_updated,
                fetched_at: r.fetched_at,
            })
        }))
    }

    /// Everything cached of one patient (their chart), marked as used.
    pub async fn of_patient(&self, patient: &str) -> Result<Vec<Value>> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "UPDATE cached_resources SET used_at = ?3 WHERE account = ?1 AND patient = ?2 \
             RETURNING body",
        )
        .bind(&self.account)
        .bind(patient)
        .bind(now())
        .fetch_all(&self.pool)
        .await?;
        Ok(bodies.iter().filter_map(|b| self.bodies.open(b)).collect())
    }

    /// Stores (or replaces) a resource the server sent, then keeps the cache within its bound.
    pub async fn put(&self, resource: &Value, etag: Option<&str>) -> Result<()> {
        self.put_all(&[(resource, etag)]).await
    }

    /// Stores resources the server sent (a page of a sync) in one transaction, then keeps the
    /// cache within its bound.
    pub async fn put_all(&self, resources: &[(&Value, Option<&str>)]) -> Result<()> {
        let now = now();
        let mut tx = self.pool.begin().await?;
        for (resource, etag) in resources {
            let (Some(resource_type), Some(id)) =
                (resource["resourceType"].as_str(), resource["id"].as_str())
            else {
                continue;
            };
            let body = self.bodies.seal(resource)?;
            sqlx::query(
                "INSERT INTO cached_resources \
                 (account, resource_type, id, patient, version_id, etag, last_updated, body, bytes, fetched_at, used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) \
                 ON CONFLICT (account, resource_type, id) DO UPDATE SET patient = excluded.patient, \
                 version_id = excluded.version_id, etag = excluded.etag, last_updated = excluded.last_updated, \
                 body = excluded.body, bytes = excluded.bytes, fetched_at = excluded.fetched_at, \
                 used_at = excluded.used_at",
            )
            .bind(&self.account)
            .bind(resource_type)
            .bind(id)
            .bind(patient_of(resource))
            .bind(resource["meta"]["versionId"].as_str())
            .bind(*etag)
            .bind(resource["meta"]["lastUpdated"].as_str())
            .bind(&body)
            .bind(body.len() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.enforce_bound().await
    }

    /// Records that the server confirmed the cached copy (a 304).
    pub async fn confirmed(&self, resource_type: &str, id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE cached_resources SET fetched_at = ?4 \
             WHERE account = ?1 AND resource_type = ?2 AND id = ?3",
        )
        .bind(&self.account)
        .bind(resource_type)
        .bind(id)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets one resource.
    pub async fn remove(&self, resource_type: &str, id: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM cached_resources WHERE account = ?1 AND resource_type = ?2 AND id = ?3",
        )
        .bind(&self.account)
        .bind(resource_type)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets everything of one patient (their consent ended); returns how many resources.
    pub async fn evict_patient(&self, patient: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM cached_resources WHERE account = ?1 AND patient = ?2")
            .bind(&self.account)
            .bind(patient)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Forgets everything of this account (sign-out): its cached resources, its outbox and its
    /// recently opened patients.
    pub async fn wipe(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for delete in [
            "DELETE FROM cached_resources WHERE account = ?1",
            "DELETE FROM outbox WHERE account = ?1",
            "DELETE FROM recent_patients WHERE account = ?1",
        ] {
            sqlx::query(delete)
                .bind(&self.account)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that the user opened `patient`'s chart: the background sync keeps the most
    /// recently opened patients current.
    pub async fn opened(&self, patient: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO recent_patients (account, patient, opened_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (account, patient) DO UPDATE SET opened_at = excluded.opened_at",
        )
        .bind(&self.account)
        .bind(patient)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM recent_patients WHERE account = ?1 AND patient NOT IN \
             (SELECT patient FROM recent_patients WHERE account = ?1 \
              ORDER BY opened_at DESC LIMIT ?2)",
        )
        .bind(&self.account)
        .bind(RECENT_PATIENTS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The recently opened patients, most recent first, each with the server time its last sync
    /// started (`None`: never synced).
    pub async fn recent_patients(&self) -> Result<Vec<(String, Option<String>)>> {
        Ok(sqlx::query_as(
            "SELECT patient, synced_since FROM recent_patients WHERE account = ?1 \
             ORDER BY opened_at DESC",
        )
        .bind(&self.account)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records that `patient` was synced from the server time `since` (the next sync asks for
    /// what changed after it).
    pub async fn synced(&self, patient: &str, since: &str) -> Result<()> {
        sqlx::query(
            "UPDATE recent_patients SET synced_since = ?3 WHERE account = ?1 AND patient = ?2",
        )
        .bind(&self.account)
        .bind(patient)
        .bind(since)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a patient from the recently opened ones (no longer shared).
    pub async fn forget_patient(&self, patient: &str) -> Result<()> {
        sqlx::query("DELETE FROM recent_patients WHERE account = ?1 AND patient = ?2")
            .bind(&self.account)
            .bind(patient)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Bytes of stored resources held (all accounts).
    pub async fn bytes(&self) -> Result<i64> {
        let total: Option<i64> = sqlx::query_scalar("SELECT SUM(bytes) FROM cached_resources")
            .fetch_one(&self.pool)
            .await?;
        Ok(total.unwrap_or(0))
    }

    /// Evicts the least recently used resources until the cache is within its bound.
    async fn enforce_bound(&self) -> Result<()> {
        let mut over = self.bytes().await? - self.max_bytes;
        while over > 0 {
            let oldest: Option<(String, String, String, i64)> = sqlx::query_as(
                "SELECT account, resource_type, id, bytes FROM cached_resources \
                 ORDER BY used_at, fetched_at LIMIT 1",
            )
            .fetch_optional(&self.pool)
            .await?;
            let Some((account, resource_type, id, bytes)) = oldest else {
                break;
            };
            sqlx::query(
                "DELETE FROM cached_resources WHERE account = ?1 AND resource_type = ?2 AND id = ?3",
            )
            .bind(account)
            .bind(resource_type)
            .bind(id)
            .execute(&self.pool)
            .await?;
            over -= bytes;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn records_belong_to_their_patient() {
        assert_eq!(
            patient_of(&json!({"resourceType": "Patient", "id": "p1"})).as_deref(),
            Some("p1")
        );
        assert_eq!(
            patient_of(
                &json!({"resourceType": "Observation", "subject": {"reference": "Patient/p2"}})
            )
            .as_deref(),
            Some("p2")
        );
        assert_eq!(
            patient_of(&json!({"resourceType": "AllergyIntolerance",
                "patient": {"reference": "http://x/fhir/Patient/p3/_history/2"}}))
            .as_deref(),
            Some("p3")
        );
        assert_eq!(
            patient_of(&json!({"resourceType": "Medication", "id": "m"})),
            None
        );
    }
}
