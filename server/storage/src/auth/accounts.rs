//! Statements about people: accounts, verification codes, sessions, failed sign-ins and security
//! events, written once for both engines.

use super::engine::{Conn, DbRow, Param, duplicate, params, parse};
use super::records::{
    Account, AccountStatus, Channel, CodePurpose, FailureScope, LoginFailure, NewAccount,
    NewSecurityEvent, NewSession, NewVerificationCode, Role, SecurityEvent, Session,
};
use crate::Result;

const ACCOUNT_COLUMNS: &str = "id, role, email, phone, email_verified, phone_verified, \
     password_hash, fhir_user, status, totp_secret, totp_last_step, recovery_code_hashes, \
     failed_logins, locked_until, created_at, updated_at";

fn account(r: &dyn DbRow) -> Result<Account> {
    Ok(Account {
        id: r.text(0)?,
        role: parse(r.text(1)?, Role::parse, "role")?,
        email: r.opt_text(2)?,
        phone: r.opt_text(3)?,
        email_verified: r.boolean(4)?,
        phone_verified: r.boolean(5)?,
        password_hash: r.opt_text(6)?,
        fhir_user: r.opt_text(7)?,
        status: parse(r.text(8)?, AccountStatus::parse, "account status")?,
        totp_secret: r.opt_bytes(9)?,
        totp_last_step: r.opt_int(10)?,
        recovery_code_hashes: r.strings(11)?,
        failed_logins: r.int(12)?,
        locked_until: r.opt_int(13)?,
        created_at: r.int(14)?,
        updated_at: r.int(15)?,
    })
}

/// The unique column an account is looked up by.
#[derive(Clone, Copy)]
pub(crate) enum AccountKey {
    Id,
    Email,
    Phone,
    FhirUser,
}

pub(crate) async fn create_account(c: &mut dyn Conn, a: NewAccount) -> Result<()> {
    c.execute(
        "INSERT INTO accounts (id, role, email, phone, email_verified, phone_verified, \
         password_hash, fhir_user, status, recovery_code_hashes, failed_logins, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '[]', 0, $10, $10)",
        params![
            &a.id,
            a.role.as_str(),
            &a.email,
            &a.phone,
            a.email_verified,
            a.phone_verified,
            &a.password_hash,
            &a.fhir_user,
            a.status.as_str(),
            a.created_at,
        ],
    )
    .await
    .map_err(|e| duplicate(e, &[("email", "email"), ("phone", "phone")], "account id"))?;
    Ok(())
}

pub(crate) async fn account_by(
    c: &mut dyn Conn,
    key: AccountKey,
    value: &str,
) -> Result<Option<Account>> {
    let column = match key {
        AccountKey::Id => "id",
        AccountKey::Email => "email",
        AccountKey::Phone => "phone",
        AccountKey::FhirUser => "fhir_user",
    };
    let text = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {column} = $1");
    c.first(&text, params![value])
        .await?
        .map(|r| account(&*r))
        .transpose()
}

pub(crate) async fn list_accounts(
    c: &mut dyn Conn,
    status: Option<AccountStatus>,
    after: Option<String>,
    limit: u32,
) -> Result<Vec<Account>> {
    let mut conditions = vec!["id > $1".to_string()];
    let mut args = params![after.as_deref().unwrap_or(""), i64::from(limit)];
    if let Some(status) = status {
        args.push(status.as_str().into());
        conditions.push(format!("status = ${}", args.len()));
    }
    let text = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {} ORDER BY id LIMIT $2",
        conditions.join(" AND ")
    );
    let rows = c.query(&text, args).await?;
    rows.iter().map(|r| account(&**r)).collect()
}

/// Runs an `UPDATE accounts ... WHERE id = $1`; whether the account exists.
async fn update(c: &mut dyn Conn, set: &str, args: Vec<Param>) -> Result<bool> {
    let text = format!("UPDATE accounts SET {set} WHERE id = $1");
    Ok(c.execute(&text, args).await? > 0)
}

pub(crate) async fn set_password_hash(
    c: &mut dyn Conn,
    id: &str,
    hash: &str,
    now: i64,
) -> Result<bool> {
    update(
        c,
        "password_hash = $2, updated_at = $3",
        params![id, hash, now],
    )
    .await
}

pub(crate) async fn set_verified(
    c: &mut dyn Conn,
    id: &str,
    channel: Channel,
    now: i64,
) -> Result<bool> {
    let set = match channel {
        Channel::Email => "email_verified = TRUE, updated_at = $2",
        Channel::Phone => "phone_verified = TRUE, updated_at = $2",
    };
    update(c, set, params![id, now]).await
}

pub(crate) async fn set_status(
    c: &mut dyn Conn,
    id: &str,
    status: AccountStatus,
    now: i64,
) -> Result<bool> {
    update(
        c,
        "status = $2, updated_at = $3",
        params![id, status.as_str(), now],
    )
    .await
}

pub(crate) async fn set_fhir_user(
    c: &mut dyn Conn,
    id: &str,
    fhir_user: &str,
    now: i64,
) -> Result<bool> {
    update(
        c,
        "fhir_user = $2, updated_at = $3",
        params![id, fhir_user, now],
    )
    .await
}

pub(crate) async fn set_totp(
    c: &mut dyn Conn,
    id: &str,
    secret: Option<Vec<u8>>,
    recovery_code_hashes: Vec<String>,
    now: i64,
) -> Result<bool> {
    // A new secret starts a new sequence of time steps.
    let json = serde_json::to_string(&recovery_code_hashes).expect("strings serialise");
    update(
        c,
        "totp_secret = $2, totp_last_step = NULL, recovery_code_hashes = $3, updated_at = $4",
        params![id, secret.as_deref(), &json, now],
    )
    .await
}

pub(crate) async fn set_recovery_codes(
    c: &mut dyn Conn,
    id: &str,
    hashes: Vec<String>,
    now: i64,
) -> Result<bool> {
    let json = serde_json::to_string(&hashes).expect("strings serialise");
    update(
        c,
        "recovery_code_hashes = $2, updated_at = $3",
        params![id, &json, now],
    )
    .await
}

pub(crate) async fn accept_totp_step(c: &mut dyn Conn, id: &str, step: i64) -> Result<bool> {
    // One conditional statement, so two requests with the same code cannot both pass.
    Ok(c.execute(
        "UPDATE accounts SET totp_last_step = $2 WHERE id = $1 AND totp_secret IS NOT NULL \
         AND (totp_last_step IS NULL OR totp_last_step < $2)",
        params![id, step],
    )
    .await?
        > 0)
}

pub(crate) async fn use_recovery_code(
    c: &mut dyn Conn,
    id: &str,
    code_hash: &str,
    now: i64,
) -> Result<bool> {
    let text = format!(
        "SELECT recovery_code_hashes FROM accounts WHERE id = $1{}",
        c.for_update()
    );
    let Some(row) = c.first(&text, params![id]).await? else {
        return Ok(false);
    };
    let mut hashes = row.strings(0)?;
    let Some(position) = hashes.iter().position(|h| h == code_hash) else {
        return Ok(false);
    };
    hashes.remove(position);
    set_recovery_codes(c, id, hashes, now).await
}

pub(crate) async fn increment_failed_logins(
    c: &mut dyn Conn,
    id: &str,
    now: i64,
) -> Result<Option<i64>> {
    let row = c
        .first(
            "UPDATE accounts SET failed_logins = failed_logins + 1, updated_at = $2 \
             WHERE id = $1 RETURNING failed_logins",
            params![id, now],
        )
        .await?;
    row.map(|r| r.int(0)).transpose()
}

pub(crate) async fn lock_account(c: &mut dyn Conn, id: &str, until: i64, now: i64) -> Result<bool> {
    update(
        c,
        "locked_until = $2, updated_at = $3",
        params![id, until, now],
    )
    .await
}

pub(crate) async fn reset_failed_logins(c: &mut dyn Conn, id: &str, now: i64) -> Result<bool> {
    update(
        c,
        "failed_logins = 0, locked_until = NULL, updated_at = $2",
        params![id, now],
    )
    .await
}

pub(crate) async fn create_verification_code(
    c: &mut dyn Conn,
    v: NewVerificationCode,
) -> Result<()> {
    // Only the newest code of a purpose works: an older one may sit in a forgotten inbox.
    c.execute(
        "UPDATE verification_codes SET used_at = $3 \
         WHERE account_id = $1 AND purpose = $2 AND used_at IS NULL",
        params![&v.account_id, v.purpose.as_str(), v.created_at],
    )
    .await?;
    c.execute(
        "INSERT INTO verification_codes (account_id, purpose, code_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
        params![
            &v.account_id,
            v.purpose.as_str(),
            &v.code_hash,
            v.created_at,
            v.expires_at
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn take_verification_code(
    c: &mut dyn Conn,
    purpose: CodePurpose,
    code_hash: &str,
    account_id: Option<String>,
    now: i64,
) -> Result<Option<String>> {
    let mut args = params![now, purpose.as_str(), code_hash];
    let mut of_account = "";
    if let Some(account_id) = account_id {
        args.push((&account_id).into());
        of_account = " AND account_id = $4";
    }
    // The outer `used_at IS NULL` is re-checked on the locked row by PostgreSQL, so of two
    // concurrent takes exactly one changes it.
    let text = format!(
        "UPDATE verification_codes SET used_at = $1 WHERE used_at IS NULL AND id = \
         (SELECT id FROM verification_codes WHERE purpose = $2 AND code_hash = $3{of_account} \
          AND used_at IS NULL AND expires_at > $1 ORDER BY id DESC LIMIT 1) \
         RETURNING account_id"
    );
    c.first(&text, args).await?.map(|r| r.text(0)).transpose()
}

const SESSION_COLUMNS: &str =
    "id, account_id, device, ip, created_at, last_seen, expires_at, revoked_at";

fn session(r: &dyn DbRow) -> Result<Session> {
    Ok(Session {
        id: r.text(0)?,
        account_id: r.text(1)?,
        device: r.opt_text(2)?,
        ip: r.opt_text(3)?,
        created_at: r.int(4)?,
        last_seen: r.int(5)?,
        expires_at: r.int(6)?,
        revoked_at: r.opt_int(7)?,
    })
}

pub(crate) async fn create_session(c: &mut dyn Conn, s: NewSession) -> Result<()> {
    c.execute(
        "INSERT INTO sessions (id, account_id, device, ip, created_at, last_seen, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $5, $6)",
        params![
            &s.id,
            &s.account_id,
            &s.device,
            &s.ip,
            s.created_at,
            s.expires_at
        ],
    )
    .await
    .map_err(|e| duplicate(e, &[], "session id"))?;
    Ok(())
}

pub(crate) async fn get_session(c: &mut dyn Conn, id: &str) -> Result<Option<Session>> {
    let text = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
    c.first(&text, params![id])
        .await?
        .map(|r| session(&*r))
        .transpose()
}

pub(crate) async fn list_sessions(
    c: &mut dyn Conn,
    account_id: &str,
    now: i64,
) -> Result<Vec<Session>> {
    let text = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE account_id = $1 AND revoked_at IS NULL \
         AND expires_at > $2 ORDER BY last_seen DESC, id"
    );
    let rows = c.query(&text, params![account_id, now]).await?;
    rows.iter().map(|r| session(&**r)).collect()
}

pub(crate) async fn touch_session(
    c: &mut dyn Conn,
    id: &str,
    ip: Option<String>,
    now: i64,
) -> Result<bool> {
    Ok(c.execute(
        "UPDATE sessions SET last_seen = $2, ip = COALESCE($3, ip) \
         WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
        params![id, now, &ip],
    )
    .await?
        > 0)
}

pub(crate) async fn revoke_session(
    c: &mut dyn Conn,
    account_id: &str,
    id: &str,
    now: i64,
) -> Result<bool> {
    // Grants for `online_access` live as long as the session they were granted in.
    c.execute(
        "UPDATE grants SET revoked_at = $3 WHERE revoked_at IS NULL AND session_id = \
         (SELECT id FROM sessions WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL)",
        params![id, account_id, now],
    )
    .await?;
    Ok(c.execute(
        "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL",
        params![id, account_id, now],
    )
    .await?
        > 0)
}

pub(crate) async fn revoke_sessions(
    c: &mut dyn Conn,
    account_id: &str,
    except: Option<String>,
    now: i64,
) -> Result<u64> {
    let except = except.unwrap_or_default();
    c.execute(
        "UPDATE grants SET revoked_at = $3 WHERE revoked_at IS NULL AND session_id IN \
         (SELECT id FROM sessions WHERE account_id = $1 AND id <> $2 AND revoked_at IS NULL)",
        params![account_id, &except, now],
    )
    .await?;
    c.execute(
        "UPDATE sessions SET revoked_at = $3 WHERE account_id = $1 AND id <> $2 AND revoked_at IS NULL",
        params![account_id, &except, now],
    )
    .await
}

pub(crate) async fn record_login_failure(c: &mut dyn Conn, f: LoginFailure) -> Result<()> {
    c.execute(
        "INSERT INTO login_failures (subject, ip, at) VALUES ($1, $2, $3)",
        params![&f.subject, &f.ip, f.at],
    )
    .await?;
    Ok(())
}

pub(crate) async fn count_login_failures(
    c: &mut dyn Conn,
    scope: FailureScope,
    since: i64,
) -> Result<u64> {
    let (text, key) = match &scope {
        FailureScope::Subject(s) => (
            "SELECT COUNT(*) FROM login_failures WHERE subject = $1 AND at >= $2",
            s,
        ),
        FailureScope::Ip(ip) => (
            "SELECT COUNT(*) FROM login_failures WHERE ip = $1 AND at >= $2",
            ip,
        ),
    };
    let row = c.first(text, params![key, since]).await?;
    let count = row.map(|r| r.int(0)).transpose()?.unwrap_or(0);
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(crate) async fn append_security_event(c: &mut dyn Conn, e: NewSecurityEvent) -> Result<i64> {
    let row = c
        .first(
            "INSERT INTO security_events (at, kind, account_id, ip, detail) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            params![e.at, &e.kind, &e.account_id, &e.ip, &e.detail.to_string()],
        )
        .await?;
    row.map(|r| r.int(0))
        .transpose()?
        .ok_or(crate::StoreError::Database(sqlx::Error::RowNotFound))
}

pub(crate) async fn list_security_events(
    c: &mut dyn Conn,
    account_id: Option<String>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<SecurityEvent>> {
    let mut conditions = vec!["id < $1".to_string()];
    let mut args = params![before.unwrap_or(i64::MAX), i64::from(limit)];
    if let Some(account_id) = &account_id {
        args.push(account_id.into());
        conditions.push(format!("account_id = ${}", args.len()));
    }
    let text = format!(
        "SELECT id, at, kind, account_id, ip, detail FROM security_events WHERE {} \
         ORDER BY id DESC LIMIT $2",
        conditions.join(" AND ")
    );
    let rows = c.query(&text, args).await?;
    rows.iter()
        .map(|r| {
            Ok(SecurityEvent {
                id: r.int(0)?,
                at: r.int(1)?,
                kind: r.text(2)?,
                account_id: r.opt_text(3)?,
                ip: r.opt_text(4)?,
                detail: r.json(5)?,
            })
        })
        .collect()
}
