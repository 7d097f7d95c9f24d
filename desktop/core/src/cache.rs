//! The local cache: every resource fetched from the server, per signed-in account, exactly as
//! the server sent it (R4 JSON), with its ETag, `versionId` and `lastUpdated` for revalidation,
//! the patient it belongs to (so that a patient's data can be evicted at once when their consent
//! ends) and when it was last used (the cache is bounded in bytes, least recently used first).
//! SQLite in the app's data directory; schema in `migrations/desktop/`.

use std::path::Path;
use std::str::FromStr;

use serde_json::Value;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

use crate::Result;

/// The cache of one signed-in account.
#[derive(Clone)]
pub struct Cache {
    pool: SqlitePool,
    account: String,
    max_bytes: i64,
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
    /// `max_bytes` of resource JSON (all accounts together).
    pub async fn open(path: &Path, account: &str, max_bytes: i64) -> Result<Cache> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
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
        })
    }

    /// The outbox of the same account, in the same database.
    pub fn outbox(&self) -> crate::outbox::Outbox {
        crate::outbox::Outbox::new(self.pool.clone(), &self.account)
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
                resource: serde_json::from_str(&r.body).ok()?,
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
        Ok(bodies
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
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
            let body = resource.to_string();
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

    /// Forgets everything of this account (sign-out).
    pub async fn wipe(&self) -> Result<()> {
        sqlx::query("DELETE FROM cached_resources WHERE account = ?1")
            .bind(&self.account)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Bytes of resource JSON held (all accounts).
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
