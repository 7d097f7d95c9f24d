//! Statements of the authorization server: clients, authorization codes, grants, refresh tokens,
//! EHR launch contexts, signing keys and client-assertion `jti`s, written once for both engines.
//! The single-use operations decide with one conditional `UPDATE` (or `INSERT ... ON CONFLICT`),
//! which PostgreSQL re-checks on the locked row, so concurrent callers cannot both win.

use super::engine::{Conn, DbRow, duplicate, params, parse};
use super::records::{
    AuthorizationCode, ClientKind, CodeTake, Grant, LaunchContext, NewGrant, OAuthClient,
    RefreshToken, Rotation, SigningKeyRecord,
};
use crate::Result;

/// A list of strings as a JSON array.
fn strings_json(values: &[String]) -> String {
    serde_json::Value::from(values).to_string()
}

const CLIENT_COLUMNS: &str = "client_id, name, kind, secret_hash, redirect_uris, jwks, jwks_url, \
     scope, allowed_origins, created_by, created_at";

fn client(r: &dyn DbRow) -> Result<OAuthClient> {
    Ok(OAuthClient {
        client_id: r.text(0)?,
        name: r.text(1)?,
        kind: parse(r.text(2)?, ClientKind::parse, "client kind")?,
        secret_hash: r.opt_text(3)?,
        redirect_uris: r.strings(4)?,
        jwks: r.opt_json(5)?,
        jwks_url: r.opt_text(6)?,
        scope: r.text(7)?,
        allowed_origins: r.strings(8)?,
        created_by: r.opt_text(9)?,
        created_at: r.int(10)?,
    })
}

pub(crate) async fn register_client(c: &mut dyn Conn, k: OAuthClient) -> Result<()> {
    c.execute(
        "INSERT INTO oauth_clients (client_id, name, kind, secret_hash, redirect_uris, jwks, \
         jwks_url, scope, allowed_origins, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        params![
            &k.client_id,
            &k.name,
            k.kind.as_str(),
            &k.secret_hash,
            &strings_json(&k.redirect_uris),
            &k.jwks.as_ref().map(ToString::to_string),
            &k.jwks_url,
            &k.scope,
            &strings_json(&k.allowed_origins),
            &k.created_by,
            k.created_at,
        ],
    )
    .await
    .map_err(|e| duplicate(e, &[], "client_id"))?;
    Ok(())
}

pub(crate) async fn get_client(c: &mut dyn Conn, client_id: &str) -> Result<Option<OAuthClient>> {
    let text = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1");
    c.first(&text, params![client_id])
        .await?
        .map(|r| client(&*r))
        .transpose()
}

pub(crate) async fn list_clients(c: &mut dyn Conn) -> Result<Vec<OAuthClient>> {
    let text = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients ORDER BY client_id");
    let rows = c.query(&text, params![]).await?;
    rows.iter().map(|r| client(&**r)).collect()
}

const GRANT_COLUMNS: &str =
    "g.id, g.client_id, g.account_id, g.scope, g.context, g.session_id, g.created_at, g.revoked_at";

/// A grant from the columns of [`GRANT_COLUMNS`] starting at `at`.
fn grant(r: &dyn DbRow, at: usize) -> Result<Grant> {
    Ok(Grant {
        id: r.text(at)?,
        client_id: r.text(at + 1)?,
        account_id: r.text(at + 2)?,
        scope: r.text(at + 3)?,
        context: r.json(at + 4)?,
        session_id: r.opt_text(at + 5)?,
        created_at: r.int(at + 6)?,
        revoked_at: r.opt_int(at + 7)?,
    })
}

/// Stores a grant under a new time-ordered id.
pub(crate) async fn create_grant(c: &mut dyn Conn, g: NewGrant) -> Result<Grant> {
    let id = uuid::Uuid::now_v7().to_string();
    c.execute(
        "INSERT INTO grants (id, client_id, account_id, scope, context, session_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        params![
            &id,
            &g.client_id,
            &g.account_id,
            &g.scope,
            &g.context.to_string(),
            &g.session_id,
            g.created_at,
        ],
    )
    .await?;
    Ok(Grant {
        id,
        client_id: g.client_id,
        account_id: g.account_id,
        scope: g.scope,
        context: g.context,
        session_id: g.session_id,
        created_at: g.created_at,
        revoked_at: None,
    })
}

pub(crate) async fn get_grant(c: &mut dyn Conn, id: &str) -> Result<Option<Grant>> {
    let text = format!("SELECT {GRANT_COLUMNS} FROM grants g WHERE g.id = $1");
    c.first(&text, params![id])
        .await?
        .map(|r| grant(&*r, 0))
        .transpose()
}

pub(crate) async fn list_grants(c: &mut dyn Conn, account_id: &str) -> Result<Vec<Grant>> {
    let text = format!(
        "SELECT {GRANT_COLUMNS} FROM grants g WHERE g.account_id = $1 AND g.revoked_at IS NULL \
         ORDER BY g.created_at DESC, g.id"
    );
    let rows = c.query(&text, params![account_id]).await?;
    rows.iter().map(|r| grant(&**r, 0)).collect()
}

pub(crate) async fn revoke_grant(c: &mut dyn Conn, id: &str, now: i64) -> Result<bool> {
    Ok(c.execute(
        "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        params![id, now],
    )
    .await?
        > 0)
}

const CODE_COLUMNS: &str = "code_hash, client_id, account_id, redirect_uri, scope, \
     code_challenge, context, nonce, session_id, created_at, expires_at";

pub(crate) async fn insert_authorization_code(
    c: &mut dyn Conn,
    a: AuthorizationCode,
) -> Result<()> {
    let text = format!(
        "INSERT INTO authorization_codes ({CODE_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    c.execute(
        &text,
        params![
            &a.code_hash,
            &a.client_id,
            &a.account_id,
            &a.redirect_uri,
            &a.scope,
            &a.code_challenge,
            &a.context.to_string(),
            &a.nonce,
            &a.session_id,
            a.created_at,
            a.expires_at,
        ],
    )
    .await
    .map_err(|e| duplicate(e, &[], "authorization code"))?;
    Ok(())
}

pub(crate) async fn take_authorization_code(
    c: &mut dyn Conn,
    code_hash: &str,
    client_id: &str,
    now: i64,
) -> Result<CodeTake> {
    // The grant's id is decided here so that the used code can name it: a second exchange of
    // the code then tells the caller which grant to revoke.
    let grant_id = uuid::Uuid::now_v7().to_string();
    let text = format!(
        "UPDATE authorization_codes SET used_at = $3, grant_id = $4 \
         WHERE code_hash = $1 AND client_id = $2 AND used_at IS NULL AND expires_at > $3 \
         RETURNING {CODE_COLUMNS}"
    );
    let taken = c
        .first(&text, params![code_hash, client_id, now, &grant_id])
        .await?;
    let Some(r) = taken else {
        // Read after the failed update, so a concurrent winner's grant id is visible.
        let row = c
            .first(
                "SELECT client_id, used_at, grant_id FROM authorization_codes WHERE code_hash = $1",
                params![code_hash],
            )
            .await?;
        return Ok(match row {
            None => CodeTake::Unknown,
            Some(r) if r.text(0)? != client_id => CodeTake::WrongClient,
            Some(r) => match (r.opt_int(1)?, r.opt_text(2)?) {
                (Some(_), Some(grant_id)) => CodeTake::AlreadyUsed { grant_id },
                _ => CodeTake::Expired,
            },
        });
    };
    let code = AuthorizationCode {
        code_hash: r.text(0)?,
        client_id: r.text(1)?,
        account_id: r.text(2)?,
        redirect_uri: r.text(3)?,
        scope: r.text(4)?,
        code_challenge: r.text(5)?,
        context: r.json(6)?,
        nonce: r.opt_text(7)?,
        session_id: r.opt_text(8)?,
        created_at: r.int(9)?,
        expires_at: r.int(10)?,
    };
    c.execute(
        "INSERT INTO grants (id, client_id, account_id, scope, context, session_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        params![
            &grant_id,
            &code.client_id,
            &code.account_id,
            &code.scope,
            &code.context.to_string(),
            &code.session_id,
            now,
        ],
    )
    .await?;
    let grant = Grant {
        id: grant_id,
        client_id: code.client_id.clone(),
        account_id: code.account_id.clone(),
        scope: code.scope.clone(),
        context: code.context.clone(),
        session_id: code.session_id.clone(),
        created_at: now,
        revoked_at: None,
    };
    Ok(CodeTake::Taken {
        code: Box::new(code),
        grant: Box::new(grant),
    })
}

pub(crate) async fn insert_refresh_token(
    c: &mut dyn Conn,
    token_hash: &str,
    grant_id: &str,
    expires_at: Option<i64>,
    now: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
        params![token_hash, grant_id, now, expires_at],
    )
    .await
    .map_err(|e| duplicate(e, &[], "refresh token"))?;
    Ok(())
}

const TOKEN_COLUMNS: &str =
    "t.token_hash, t.grant_id, t.created_at, t.expires_at, t.used_at, t.replaced_by";

pub(crate) async fn find_refresh_token(
    c: &mut dyn Conn,
    token_hash: &str,
) -> Result<Option<(RefreshToken, Grant)>> {
    let text = format!(
        "SELECT {TOKEN_COLUMNS}, {GRANT_COLUMNS} FROM refresh_tokens t \
         JOIN grants g ON g.id = t.grant_id WHERE t.token_hash = $1"
    );
    let Some(r) = c.first(&text, params![token_hash]).await? else {
        return Ok(None);
    };
    let token = RefreshToken {
        token_hash: r.text(0)?,
        grant_id: r.text(1)?,
        created_at: r.int(2)?,
        expires_at: r.opt_int(3)?,
        used_at: r.opt_int(4)?,
        replaced_by: r.opt_text(5)?,
    };
    Ok(Some((token, grant(&*r, 6)?)))
}

pub(crate) async fn rotate_refresh_token(
    c: &mut dyn Conn,
    old_hash: &str,
    client_id: &str,
    new_hash: &str,
    new_expires_at: Option<i64>,
    now: i64,
) -> Result<Rotation> {
    // Lock the grant first: a concurrent revocation then either precedes the rotation (which
    // sees it) or waits for it (and revokes the new token with the grant).
    let lock = match c.dialect() {
        crate::sql::Dialect::Sqlite => "",
        crate::sql::Dialect::Postgres => " FOR UPDATE OF g",
    };
    let text = format!(
        "SELECT {GRANT_COLUMNS} FROM refresh_tokens t JOIN grants g ON g.id = t.grant_id \
         WHERE t.token_hash = $1{lock}"
    );
    let Some(r) = c.first(&text, params![old_hash]).await? else {
        return Ok(Rotation::Unknown);
    };
    let mut grant = grant(&*r, 0)?;
    if grant.client_id != client_id {
        return Ok(Rotation::WrongClient);
    }
    if grant.revoked_at.is_some() {
        return Ok(Rotation::Revoked { grant_id: grant.id });
    }
    // A new statement sees a concurrent rotation that committed meanwhile: `used_at` decides.
    let used = c
        .execute(
            "UPDATE refresh_tokens SET used_at = $2, replaced_by = $3 \
             WHERE token_hash = $1 AND used_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
            params![old_hash, now, new_hash],
        )
        .await?;
    if used == 0 {
        let row = c
            .first(
                "SELECT used_at FROM refresh_tokens WHERE token_hash = $1",
                params![old_hash],
            )
            .await?;
        let grant_id = std::mem::take(&mut grant.id);
        return Ok(match row.map(|r| r.opt_int(0)).transpose()?.flatten() {
            Some(_) => Rotation::Reused { grant_id },
            None => Rotation::Expired { grant_id },
        });
    }
    insert_refresh_token(c, new_hash, &grant.id, new_expires_at, now).await?;
    Ok(Rotation::Rotated { grant })
}

const LAUNCH_COLUMNS: &str =
    "id, patient, encounter, fhir_context, created_by, created_at, expires_at";

fn launch(r: &dyn DbRow) -> Result<LaunchContext> {
    Ok(LaunchContext {
        id: r.text(0)?,
        patient: r.opt_text(1)?,
        encounter: r.opt_text(2)?,
        fhir_context: r.opt_json(3)?,
        created_by: r.text(4)?,
        created_at: r.int(5)?,
        expires_at: r.int(6)?,
    })
}

pub(crate) async fn create_launch_context(c: &mut dyn Conn, l: LaunchContext) -> Result<()> {
    let text = format!(
        "INSERT INTO launch_contexts ({LAUNCH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    );
    c.execute(
        &text,
        params![
            &l.id,
            &l.patient,
            &l.encounter,
            &l.fhir_context.as_ref().map(ToString::to_string),
            &l.created_by,
            l.created_at,
            l.expires_at,
        ],
    )
    .await
    .map_err(|e| duplicate(e, &[], "launch id"))?;
    Ok(())
}

pub(crate) async fn get_launch_context(
    c: &mut dyn Conn,
    id: &str,
    now: i64,
) -> Result<Option<LaunchContext>> {
    let text = format!(
        "SELECT {LAUNCH_COLUMNS} FROM launch_contexts \
         WHERE id = $1 AND used_at IS NULL AND expires_at > $2"
    );
    c.first(&text, params![id, now])
        .await?
        .map(|r| launch(&*r))
        .transpose()
}

pub(crate) async fn take_launch_context(
    c: &mut dyn Conn,
    id: &str,
    now: i64,
) -> Result<Option<LaunchContext>> {
    let text = format!(
        "UPDATE launch_contexts SET used_at = $2 \
         WHERE id = $1 AND used_at IS NULL AND expires_at > $2 RETURNING {LAUNCH_COLUMNS}"
    );
    c.first(&text, params![id, now])
        .await?
        .map(|r| launch(&*r))
        .transpose()
}

const KEY_COLUMNS: &str = "kid, algorithm, public_jwk, private_key, created_at, retire_at";

pub(crate) async fn insert_signing_key(c: &mut dyn Conn, k: SigningKeyRecord) -> Result<()> {
    let text = format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
    c.execute(
        &text,
        params![
            &k.kid,
            &k.algorithm,
            &k.public_jwk.to_string(),
            Some(k.private_key.as_slice()),
            k.created_at,
            k.retire_at,
        ],
    )
    .await
    .map_err(|e| duplicate(e, &[], "kid"))?;
    Ok(())
}

pub(crate) async fn list_signing_keys(c: &mut dyn Conn) -> Result<Vec<SigningKeyRecord>> {
    let text = format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at DESC, kid");
    let rows = c.query(&text, params![]).await?;
    rows.iter()
        .map(|r| {
            Ok(SigningKeyRecord {
                kid: r.text(0)?,
                algorithm: r.text(1)?,
                public_jwk: r.json(2)?,
                private_key: r.bytes(3)?,
                created_at: r.int(4)?,
                retire_at: r.opt_int(5)?,
            })
        })
        .collect()
}

pub(crate) async fn retire_signing_key(
    c: &mut dyn Conn,
    kid: &str,
    retire_at: Option<i64>,
) -> Result<bool> {
    Ok(c.execute(
        "UPDATE signing_keys SET retire_at = $2 WHERE kid = $1",
        params![kid, retire_at],
    )
    .await?
        > 0)
}

pub(crate) async fn delete_signing_key(c: &mut dyn Conn, kid: &str) -> Result<bool> {
    Ok(
        c.execute("DELETE FROM signing_keys WHERE kid = $1", params![kid])
            .await?
            > 0,
    )
}

pub(crate) async fn record_jti(
    c: &mut dyn Conn,
    client_id: &str,
    jti: &str,
    expires_at: i64,
    now: i64,
) -> Result<bool> {
    // An expired assertion is refused by its `exp` before it gets here, so forgetting expired
    // jtis cannot let a replay through.
    c.execute(
        "DELETE FROM client_assertion_jtis WHERE expires_at <= $1",
        params![now],
    )
    .await?;
    let inserted = c
        .execute(
            "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO NOTHING",
            params![client_id, jti, expires_at],
        )
        .await?;
    Ok(inserted > 0)
}

pub(crate) async fn purge(c: &mut dyn Conn, before: i64) -> Result<u64> {
    let statements = [
        "DELETE FROM verification_codes WHERE expires_at < $1 OR used_at < $1",
        "DELETE FROM authorization_codes WHERE expires_at < $1",
        "DELETE FROM launch_contexts WHERE expires_at < $1",
        "DELETE FROM client_assertion_jtis WHERE expires_at < $1",
        "DELETE FROM login_failures WHERE at < $1",
        "DELETE FROM refresh_tokens WHERE used_at < $1 OR expires_at < $1",
        "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1",
    ];
    let mut deleted = 0;
    for text in statements {
        deleted += c.execute(text, params![before]).await?;
    }
    Ok(deleted)
}
