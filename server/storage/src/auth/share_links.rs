//! Emergency share links (issue 5) and the record of their use, behind [`ShareLinkStore`],
//! written once for both engines over the [`Conn`] of `engine.rs` like the account statements.
//!
//! The passcode counter is decided in SQL: [`ShareLinkStore::reserve_passcode_attempt`] takes
//! one of the link's attempts *before* the passcode is checked, with a conditional `UPDATE` that
//! PostgreSQL re-checks on the locked row, so concurrent guesses can never evaluate more
//! passcodes than the limit allows; a correct passcode gives its attempt back.

use std::fmt;

use super::engine::{self, Conn, DbRow, duplicate, params};
use super::run;
use crate::Result;

/// A link as stored. `Debug` leaves out the hashes.
#[derive(Clone, PartialEq, Eq)]
pub struct ShareLink {
    /// Server-assigned id (the `shareId`).
    pub id: String,
    /// The Patient resource id whose records the link shows.
    pub patient_id: String,
    /// The account that created it.
    pub account_id: String,
    /// SHA-256 of the link token (the token itself is never stored).
    pub token_hash: String,
    /// The sections shown (`ALLERGIES`, `MEDICATIONS`, ...), as the `auth` crate spells them.
    pub scope: Vec<String>,
    /// The passcode's argon2id PHC string, when the link has one.
    pub passcode_hash: Option<String>,
    /// A name the patient gave the link.
    pub label: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// Wrong passcodes so far (plus those being checked right now).
    pub failed_attempts: i64,
    /// When too many wrong passcodes locked the link.
    pub locked_at: Option<i64>,
}

impl fmt::Debug for ShareLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareLink")
            .field("id", &self.id)
            .field("patient_id", &self.patient_id)
            .field("account_id", &self.account_id)
            .field("scope", &self.scope)
            .field("has_passcode", &self.passcode_hash.is_some())
            .field("label", &self.label)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .field("failed_attempts", &self.failed_attempts)
            .field("locked_at", &self.locked_at)
            .finish_non_exhaustive()
    }
}

/// A link with how often it was used, for its owner's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareLinkSummary {
    pub link: ShareLink,
    /// Every recorded use, granted or refused.
    pub accesses: i64,
    /// The uses that were shown the records.
    pub granted: i64,
    /// When it was last used, if ever.
    pub last_access: Option<i64>,
}

/// One use of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareAccess {
    /// Storage-assigned, increasing (0 when not yet stored).
    pub id: i64,
    pub link_id: String,
    pub at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The name the visitor gave (e.g. "ER, City Hospital").
    pub recipient: Option<String>,
    /// `granted`, `passcode_required`, `wrong_passcode`, `locked`, `expired`, `revoked`, ...
    pub outcome: String,
}

/// Where emergency share links and their uses are kept. Times are microseconds.
#[async_trait::async_trait]
pub trait ShareLinkStore: Send + Sync {
    /// Stores a new link; [`StoreError::Duplicate`](crate::StoreError::Duplicate) names a taken
    /// `id` or `token`.
    async fn create_share_link(&self, link: ShareLink) -> Result<()>;

    /// The link whose token has this hash, in any state.
    async fn find_share_link(&self, token_hash: &str) -> Result<Option<ShareLink>>;

    /// The link with this id, in any state.
    async fn get_share_link(&self, id: &str) -> Result<Option<ShareLink>>;

    /// The account's links with their use counts, newest first.
    async fn list_share_links(&self, account_id: &str) -> Result<Vec<ShareLinkSummary>>;

    /// Revokes one of the account's links; false when it has no such link or it was revoked.
    async fn revoke_share_link(&self, account_id: &str, id: &str, now: i64) -> Result<bool>;

    /// Takes one passcode attempt of a link that is not revoked, locked or expired at `now` and
    /// has fewer than `max` attempts taken: the number taken now, `None` when refused.
    async fn reserve_passcode_attempt(&self, id: &str, max: i64, now: i64) -> Result<Option<i64>>;

    /// Gives back an attempt taken by [`reserve_passcode_attempt`] (the passcode was right).
    async fn release_passcode_attempt(&self, id: &str) -> Result<bool>;

    /// Locks the link when `max` attempts are taken; whether it is locked now by this call.
    async fn lock_share_link(&self, id: &str, max: i64, now: i64) -> Result<bool>;

    /// Records a use of a link.
    async fn record_share_access(&self, access: ShareAccess) -> Result<()>;

    /// Up to `limit` uses of a link, newest first.
    async fn list_share_accesses(&self, link_id: &str, limit: u32) -> Result<Vec<ShareAccess>>;
}

const LINK_COLUMNS: &str = "l.id, l.patient_id, l.account_id, l.token_hash, l.scope, \
     l.passcode_hash, l.label, l.created_at, l.expires_at, l.revoked_at, l.failed_attempts, \
     l.locked_at";

fn link(r: &dyn DbRow) -> Result<ShareLink> {
    Ok(ShareLink {
        id: r.text(0)?,
        patient_id: r.text(1)?,
        account_id: r.text(2)?,
        token_hash: r.text(3)?,
        scope: r.strings(4)?,
        passcode_hash: r.opt_text(5)?,
        label: r.opt_text(6)?,
        created_at: r.int(7)?,
        expires_at: r.int(8)?,
        revoked_at: r.opt_int(9)?,
        failed_attempts: r.int(10)?,
        locked_at: r.opt_int(11)?,
    })
}

async fn create(c: &mut dyn Conn, l: ShareLink) -> Result<()> {
    c.execute(
        "INSERT INTO emergency_links (id, patient_id, account_id, token_hash, scope, \
         passcode_hash, label, created_at, expires_at, revoked_at, failed_attempts, locked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        params![
            &l.id,
            &l.patient_id,
            &l.account_id,
            &l.token_hash,
            &serde_json::Value::from(l.scope.clone()).to_string(),
            &l.passcode_hash,
            &l.label,
            l.created_at,
            l.expires_at,
            l.revoked_at,
            l.failed_attempts,
            l.locked_at,
        ],
    )
    .await
    .map_err(|e| duplicate(e, &[("token_hash", "token")], "id"))?;
    Ok(())
}

async fn find(c: &mut dyn Conn, column: &'static str, value: &str) -> Result<Option<ShareLink>> {
    let text = format!("SELECT {LINK_COLUMNS} FROM emergency_links l WHERE l.{column} = $1");
    c.first(&text, params![value])
        .await?
        .map(|r| link(&*r))
        .transpose()
}

async fn list(c: &mut dyn Conn, account_id: &str) -> Result<Vec<ShareLinkSummary>> {
    let text = format!(
        "SELECT {LINK_COLUMNS}, \
         (SELECT COUNT(*) FROM emergency_accesses a WHERE a.link_id = l.id), \
         (SELECT COUNT(*) FROM emergency_accesses a WHERE a.link_id = l.id \
            AND a.outcome = 'granted'), \
         (SELECT MAX(a.at) FROM emergency_accesses a WHERE a.link_id = l.id) \
         FROM emergency_links l WHERE l.account_id = $1 ORDER BY l.created_at DESC, l.id"
    );
    let rows = c.query(&text, params![account_id]).await?;
    rows.iter()
        .map(|r| {
            Ok(ShareLinkSummary {
                link: link(&**r)?,
                accesses: r.int(12)?,
                granted: r.int(13)?,
                last_access: r.opt_int(14)?,
            })
        })
        .collect()
}

async fn revoke(c: &mut dyn Conn, account_id: &str, id: &str, now: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE emergency_links SET revoked_at = $3 \
         WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL",
        params![id, account_id, now],
    )
    .await?
        > 0)
}

async fn reserve(c: &mut dyn Conn, id: &str, max: i64, now: i64) -> Result<Option<i64>> {
    c.first(
        "UPDATE emergency_links SET failed_attempts = failed_attempts + 1 \
         WHERE id = $1 AND revoked_at IS NULL AND locked_at IS NULL AND expires_at > $2 \
         AND failed_attempts < $3 RETURNING failed_attempts",
        params![id, now, max],
    )
    .await?
    .map(|r| r.int(0))
    .transpose()
}

async fn release(c: &mut dyn Conn, id: &str) -> Result<bool> {
    Ok(c.execute(
        "UPDATE emergency_links SET failed_attempts = failed_attempts - 1 \
         WHERE id = $1 AND failed_attempts > 0 AND locked_at IS NULL",
        params![id],
    )
    .await?
        > 0)
}

async fn lock(c: &mut dyn Conn, id: &str, max: i64, now: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE emergency_links SET locked_at = $2 \
         WHERE id = $1 AND locked_at IS NULL AND failed_attempts >= $3",
        params![id, now, max],
    )
    .await?
        > 0)
}

async fn record(c: &mut dyn Conn, a: ShareAccess) -> Result<()> {
    c.execute(
        "INSERT INTO emergency_accesses (link_id, at, ip, user_agent, recipient, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        params![
            &a.link_id,
            a.at,
            &a.ip,
            &a.user_agent,
            &a.recipient,
            &a.outcome
        ],
    )
    .await?;
    Ok(())
}

async fn accesses(c: &mut dyn Conn, link_id: &str, limit: u32) -> Result<Vec<ShareAccess>> {
    let rows = c
        .query(
            "SELECT id, link_id, at, ip, user_agent, recipient, outcome \
             FROM emergency_accesses WHERE link_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
            params![link_id, i64::from(limit)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ShareAccess {
                id: r.int(0)?,
                link_id: r.text(1)?,
                at: r.int(2)?,
                ip: r.opt_text(3)?,
                user_agent: r.opt_text(4)?,
                recipient: r.opt_text(5)?,
                outcome: r.text(6)?,
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl<S: engine::Engine> ShareLinkStore for S {
    async fn create_share_link(&self, link: ShareLink) -> Result<()> {
        run!(self.write, |c| create(c, link))
    }

    async fn find_share_link(&self, token_hash: &str) -> Result<Option<ShareLink>> {
        let token_hash = token_hash.to_string();
        run!(self.read, |c| find(c, "token_hash", &token_hash))
    }

    async fn get_share_link(&self, id: &str) -> Result<Option<ShareLink>> {
        let id = id.to_string();
        run!(self.read, |c| find(c, "id", &id))
    }

    async fn list_share_links(&self, account_id: &str) -> Result<Vec<ShareLinkSummary>> {
        let account_id = account_id.to_string();
        run!(self.read, |c| list(c, &account_id))
    }

    async fn revoke_share_link(&self, account_id: &str, id: &str, now: i64) -> Result<bool> {
        let (account_id, id) = (account_id.to_string(), id.to_string());
        run!(self.write, |c| revoke(c, &account_id, &id, now))
    }

    async fn reserve_passcode_attempt(&self, id: &str, max: i64, now: i64) -> Result<Option<i64>> {
        let id = id.to_string();
        run!(self.write, |c| reserve(c, &id, max, now))
    }

    async fn release_passcode_attempt(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| release(c, &id))
    }

    async fn lock_share_link(&self, id: &str, max: i64, now: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| lock(c, &id, max, now))
    }

    async fn record_share_access(&self, access: ShareAccess) -> Result<()> {
        run!(self.write, |c| record(c, access))
    }

    async fn list_share_accesses(&self, link_id: &str, limit: u32) -> Result<Vec<ShareAccess>> {
        let link_id = link_id.to_string();
        run!(self.read, |c| accesses(c, &link_id, limit))
    }
}
