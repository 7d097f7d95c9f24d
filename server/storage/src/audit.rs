//! The hash chain of the audit trail ([`AuditStore`]), beside the AuditEvent resources the
//! [`Store`](crate::Store) keeps. Statements are written once over the account store's
//! connection machinery (`auth/engine.rs`) and run on either engine.
//!
//! Appending locks the single head row (`audit_chain_head`; `SELECT ... FOR UPDATE` on
//! PostgreSQL, the single writer on SQLite) inside the batch's transaction, so several server
//! instances on one database extend one linear chain. How a link's hash is computed is the
//! caller's rule (`curanet_auth::audit::link_hash`), passed in: this crate knows no hashing.

use crate::Result;
use crate::auth::engine::{self, Conn, params};
use crate::auth::run;
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

/// Computes a link's hash from the previous hash and the record's canonical text.
pub type LinkHash = fn(previous: &str, canonical: &str) -> String;

/// Where the audit chain is kept.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one link per record (`(AuditEvent id, canonical JSON)`, in order) after the
    /// current head, in one transaction; returns the new links.
    async fn append_audit_links(
        &self,
        records: Vec<(String, String)>,
        hash: LinkHash,
    ) -> Result<Vec<ChainLink>>;

    /// Up to `limit` links after position `after`, in order.
    async fn audit_links(&self, after: i64, limit: u32) -> Result<Vec<ChainLink>>;

    /// The head: the position and hash of the last link appended.
    async fn audit_head(&self) -> Result<(i64, String)>;

    /// How many AuditEvents stored before `before` (microseconds since the epoch) no link
    /// covers, and the ids of up to `limit` of them, oldest first.
    async fn unchained_audit_events(&self, before: i64, limit: u32) -> Result<(i64, Vec<String>)>;
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

async fn append(
    c: &mut dyn Conn,
    records: Vec<(String, String)>,
    hash: LinkHash,
) -> Result<Vec<ChainLink>> {
    let head = format!(
        "SELECT seq, hash FROM audit_chain_head WHERE id = 1{}",
        c.for_update()
    );
    let row = c
        .first(&head, params![])
        .await?
        .ok_or_else(|| engine::corrupt("the audit chain has no head row".into()))?;
    let (mut seq, mut previous) = (row.int(0)?, row.text(1)?);
    let mut links = Vec::with_capacity(records.len());
    for (resource_id, canonical) in records {
        seq += 1;
        let link = ChainLink {
            seq,
            hash: hash(&previous, &canonical),
            prev_hash: previous,
            resource_id,
        };
        c.execute(
            "INSERT INTO audit_chain (seq, resource_id, prev_hash, hash) VALUES ($1, $2, $3, $4)",
            params![link.seq, &link.resource_id, &link.prev_hash, &link.hash],
        )
        .await?;
        previous = link.hash.clone();
        links.push(link);
    }
    c.execute(
        "UPDATE audit_chain_head SET seq = $1, hash = $2 WHERE id = 1",
        params![seq, &previous],
    )
    .await?;
    Ok(links)
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
    async fn append_audit_links(
        &self,
        records: Vec<(String, String)>,
        hash: LinkHash,
    ) -> Result<Vec<ChainLink>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        run!(self.write, |c| append(c, records, hash))
    }

    async fn audit_links(&self, after: i64, limit: u32) -> Result<Vec<ChainLink>> {
        run!(self.read, |c| links(c, after, limit))
    }

    async fn audit_head(&self) -> Result<(i64, String)> {
        run!(self.read, |c| head(c))
    }

    async fn unchained_audit_events(&self, before: i64, limit: u32) -> Result<(i64, Vec<String>)> {
        run!(self.read, |c| unchained(c, before, limit))
    }
}
