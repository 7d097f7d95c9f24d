//! Writes made offline: queued in the local database and replayed in order when the link
//! returns. Nothing entered offline is lost: a create keeps a local id (`local-…`) and is
//! readable from the cache until the server assigns its id (references to it in later queued
//! writes and cached records are rewritten then); an update replays with `If-Match` on the
//! version it was made from, and a 412 parks it as a conflict, with the server's version, for the
//! user to resolve (keep mine, take theirs, or a merge made by hand). Bodies are sealed like the
//! cache's (see `cache`).

use serde_json::Value;
use sqlx::SqlitePool;

use crate::Result;
use crate::cache::Bodies;

/// What a queued write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Create,
    Update,
}

impl Method {
    fn code(self) -> &'static str {
        match self {
            Method::Create => "create",
            Method::Update => "update",
        }
    }
}

/// A write waiting for the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Its place in the queue.
    pub seq: i64,
    pub method: Method,
    pub resource_type: String,
    /// The resource's id (a local one for a create).
    pub id: String,
    /// The version the update was made from (`If-Match`).
    pub if_match: Option<String>,
    /// The resource as written.
    pub resource: Value,
    /// The server's version when the replay met a conflict (412).
    pub conflict: Option<Value>,
}

/// The outbox of one account.
#[derive(Clone)]
pub struct Outbox {
    pool: SqlitePool,
    account: String,
    bodies: Bodies,
}

/// A row as read back.
#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    method: String,
    resource_type: String,
    id: String,
    if_match: Option<String>,
    body: String,
    conflict: Option<String>,
}

impl Outbox {
    pub(crate) fn new(pool: SqlitePool, account: &str, bodies: Bodies) -> Outbox {
        Outbox {
            pool,
            account: account.to_string(),
            bodies,
        }
    }

    /// How many writes wait for the server, and how many of them are parked as conflicts.
    pub async fn counts(&self) -> Result<(usize, usize)> {
        let (pending, conflicts): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COUNT(conflict) FROM outbox WHERE account = ?1")
                .bind(&self.account)
                .fetch_one(&self.pool)
                .await?;
        Ok((
            usize::try_from(pending).unwrap_or_default(),
            usize::try_from(conflicts).unwrap_or_default(),
        ))
    }

    /// Queues a write.
    pub async fn push(
        &self,
        method: Method,
        resource: &Value,
        if_match: Option<&str>,
    ) -> Result<i64> {
        let seq = sqlx::query_scalar(
            "INSERT INTO outbox (account, method, resource_type, id, if_match, body, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING seq",
        )
        .bind(&self.account)
        .bind(method.code())
        .bind(resource["resourceType"].as_str().unwrap_or_default())
        .bind(resource["id"].as_str().unwrap_or_default())
        .bind(if_match)
        .bind(self.bodies.seal(resource)?)
        .bind(chrono::Utc::now().timestamp())
        .fetch_one(&self.pool)
        .await?;
        Ok(seq)
    }

    /// The queued writes, oldest first.
    pub async fn pending(&self) -> Result<Vec<Pending>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, method, resource_type, id, if_match, body, conflict FROM outbox \
             WHERE account = ?1 ORDER BY seq",
        )
        .bind(&self.account)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(Pending {
                    seq: r.seq,
                    method: if r.method == "create" {
                        Method::Create
                    } else {
                        Method::Update
                    },
                    resource_type: r.resource_type,
                    id: r.id,
                    if_match: r.if_match,
                    resource: self.bodies.open(&r.body)?,
                    conflict: r.conflict.and_then(|c| self.bodies.open(&c)),
                })
            })
            .collect())
    }

    /// Removes a write that reached the server.
    pub(crate) async fn done(&self, seq: i64) -> Result<()> {
        sqlx::query("DELETE FROM outbox WHERE seq = ?1")
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Parks a write the server's newer version conflicts with.
    pub(crate) async fn conflicted(&self, seq: i64, server: &Value) -> Result<()> {
        sqlx::query("UPDATE outbox SET conflict = ?2 WHERE seq = ?1")
            .bind(seq)
            .bind(self.bodies.seal(server)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces a queued write's resource and precondition (a resolved conflict) and clears
    /// its conflict, so that it is replayed again.
    pub(crate) async fn replace(&self, seq: i64, resource: &Value, if_match: &str) -> Result<()> {
        sqlx::query("UPDATE outbox SET body = ?2, if_match = ?3, conflict = NULL WHERE seq = ?1")
            .bind(seq)
            .bind(self.bodies.seal(resource)?)
            .bind(if_match)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Replaces the body of the queued create of `id` (a local id) with a later offline edit;
    /// returns its place in the queue.
    pub(crate) async fn replace_create(&self, id: &str, resource: &Value) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE outbox SET body = ?3 WHERE account = ?1 AND id = ?2 AND method = 'create' \
             RETURNING seq",
        )
        .bind(&self.account)
        .bind(id)
        .bind(self.bodies.seal(resource)?)
        .fetch_optional(&self.pool)
        .await?;
        match seq {
            Some(seq) => Ok(seq),
            None => self.push(Method::Create, resource, None).await,
        }
    }

    /// Points every later queued write's references to `from` (`Type/local-…`) at `to`.
    pub(crate) async fn rewrite_references(&self, from: &str, to: &str) -> Result<()> {
        for p in self.pending().await? {
            let text = p.resource.to_string();
            let quoted = format!("\"{from}\"");
            if text.contains(&quoted) {
                let rewritten: Value =
                    serde_json::from_str(&text.replace(&quoted, &format!("\"{to}\"")))
                        .map_err(|e| crate::DesktopError::Protocol(e.to_string()))?;
                sqlx::query("UPDATE outbox SET body = ?2 WHERE seq = ?1")
                    .bind(p.seq)
                    .bind(self.bodies.seal(&rewritten)?)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}
