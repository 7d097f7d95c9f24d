//! The state of accounts and of the SMART/OAuth 2 authorization server, behind [`AuthStore`]
//! beside [`Store`](crate::Store), on the same database.
//!
//! Every statement is written once (`accounts.rs`, `oauth.rs`) over a connection of either engine
//! (`engine.rs`). Writes are durable once a method returns: on SQLite they go through the store's
//! single writer task, committed together with concurrent resource writes (group commit); on
//! PostgreSQL each is one transaction. The single-use operations (taking a code, rotating a
//! refresh token, recording a `jti`, accepting a TOTP step) are atomic under concurrency on both
//! engines: of two concurrent callers exactly one wins.
//!
//! Ids are chosen by the caller except for grants and security events. Secrets arrive hashed or
//! sealed; emails arrive normalised (they are compared byte for byte).

mod accounts;
pub(crate) mod engine;
mod oauth;
mod records;
mod share_links;

pub use records::{
    Account, AccountStatus, AuthorizationCode, Channel, ClientKind, CodePurpose, CodeTake,
    FailureScope, Grant, LaunchContext, LoginFailure, NewAccount, NewGrant, NewSecurityEvent,
    NewSession, NewVerificationCode, OAuthClient, RefreshToken, Role, Rotation, SecurityEvent,
    Session, SigningKeyRecord,
};
pub use share_links::{ShareAccess, ShareLink, ShareLinkStore, ShareLinkSummary};

use accounts::AccountKey;
use engine::Engine;

use crate::Result;

/// Where accounts, sessions, OAuth clients, codes, grants, refresh tokens and signing keys are
/// kept. Methods that change one row by key return whether the row exists. The emergency share
/// links are kept beside them: an `Arc<dyn AuthStore>` coerces to an `Arc<dyn ShareLinkStore>`.
#[async_trait::async_trait]
pub trait AuthStore: ShareLinkStore + Send + Sync {
    /// Creates an account; [`StoreError::Duplicate`](crate::StoreError::Duplicate) names the
    /// taken `email`, `phone` or `account id`.
    async fn create_account(&self, account: NewAccount) -> Result<()>;

    /// The account with this id.
    async fn get_account(&self, id: &str) -> Result<Option<Account>>;

    /// The account with this (normalised) email address.
    async fn get_account_by_email(&self, email: &str) -> Result<Option<Account>>;

    /// The account with this phone number.
    async fn get_account_by_phone(&self, phone: &str) -> Result<Option<Account>>;

    /// The account linked to this FHIR resource (`Patient/123`), if any.
    async fn get_account_by_fhir_user(&self, fhir_user: &str) -> Result<Option<Account>>;

    /// Up to `limit` accounts in id order after `after`, optionally only those with `status`.
    async fn list_accounts(
        &self,
        status: Option<AccountStatus>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Account>>;

    /// Replaces the password hash.
    async fn set_password_hash(&self, id: &str, hash: &str, now: i64) -> Result<bool>;

    /// Marks the email address or phone number as proven.
    async fn set_verified(&self, id: &str, channel: Channel, now: i64) -> Result<bool>;

    /// Changes whether the account may sign in.
    async fn set_status(&self, id: &str, status: AccountStatus, now: i64) -> Result<bool>;

    /// Links the account to its FHIR resource (`Patient/123`).
    async fn set_fhir_user(&self, id: &str, fhir_user: &str, now: i64) -> Result<bool>;

    /// Turns two-factor authentication on (a sealed secret) or off (`None`), replacing the
    /// recovery codes and forgetting the last accepted time step.
    async fn set_totp(
        &self,
        id: &str,
        secret: Option<Vec<u8>>,
        recovery_code_hashes: Vec<String>,
        now: i64,
    ) -> Result<bool>;

    /// Replaces the recovery codes (their hashes).
    async fn set_recovery_codes(&self, id: &str, hashes: Vec<String>, now: i64) -> Result<bool>;

    /// Accepts a TOTP time step only if it is later than the last accepted one (so a code works
    /// once); false when it is not, or two-factor authentication is off.
    async fn accept_totp_step(&self, id: &str, step: i64) -> Result<bool>;

    /// Consumes a recovery code by its hash; false when the account has no such unused code.
    async fn use_recovery_code(&self, id: &str, code_hash: &str, now: i64) -> Result<bool>;

    /// Counts one more failed sign-in; the new count, `None` when there is no such account.
    async fn increment_failed_logins(&self, id: &str, now: i64) -> Result<Option<i64>>;

    /// Refuses sign-in until `until`.
    async fn lock_account(&self, id: &str, until: i64, now: i64) -> Result<bool>;

    /// Clears the failed sign-in count and the lock (after a successful sign-in).
    async fn reset_failed_logins(&self, id: &str, now: i64) -> Result<bool>;

    /// Stores a verification code; earlier unused codes of the same purpose stop working.
    async fn create_verification_code(&self, code: NewVerificationCode) -> Result<()>;

    /// Uses a valid (unused, unexpired) code once: the account it belongs to, `None` otherwise.
    /// Pass the account for short codes, which may collide between accounts.
    async fn take_verification_code(
        &self,
        purpose: CodePurpose,
        code_hash: &str,
        account_id: Option<&str>,
        now: i64,
    ) -> Result<Option<String>>;

    /// Starts a session; `Duplicate` when the id exists.
    async fn create_session(&self, session: NewSession) -> Result<()>;

    /// The session with this id, in any state (see [`Session::is_active`]).
    async fn get_session(&self, id: &str) -> Result<Option<Session>>;

    /// The account's active sessions, most recently seen first.
    async fn list_sessions(&self, account_id: &str, now: i64) -> Result<Vec<Session>>;

    /// Notes that an active session was used now (from `ip` when given); false when it is not
    /// active. Each call is a write: callers touch at most about once a minute per session.
    async fn touch_session(&self, id: &str, ip: Option<&str>, now: i64) -> Result<bool>;

    /// Ends one of the account's sessions and the `online_access` grants bound to it.
    async fn revoke_session(&self, account_id: &str, id: &str, now: i64) -> Result<bool>;

    /// Ends all the account's sessions but `except` (and their `online_access` grants); how
    /// many sessions ended.
    async fn revoke_sessions(
        &self,
        account_id: &str,
        except: Option<&str>,
        now: i64,
    ) -> Result<u64>;

    /// Records a failed sign-in.
    async fn record_login_failure(&self, failure: LoginFailure) -> Result<()>;

    /// How many failed sign-ins of one account (or identifier) or one IP happened at or after
    /// `since`.
    async fn count_login_failures(&self, scope: FailureScope, since: i64) -> Result<u64>;

    /// Appends a security event; its id.
    async fn append_security_event(&self, event: NewSecurityEvent) -> Result<i64>;

    /// Up to `limit` security events, newest first, with ids below `before`, optionally of one
    /// account.
    async fn list_security_events(
        &self,
        account_id: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>>;

    /// Registers a client; `Duplicate` names the taken `client_id`.
    async fn register_client(&self, client: OAuthClient) -> Result<()>;

    /// The client with this id.
    async fn get_client(&self, client_id: &str) -> Result<Option<OAuthClient>>;

    /// All clients, in client_id order.
    async fn list_clients(&self) -> Result<Vec<OAuthClient>>;

    /// Stores an issued authorization code.
    async fn insert_authorization_code(&self, code: AuthorizationCode) -> Result<()>;

    /// Exchanges a code once, for the client it was issued to: marks it used and creates its
    /// grant in the same transaction. A second exchange gets [`CodeTake::AlreadyUsed`].
    async fn take_authorization_code(
        &self,
        code_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<CodeTake>;

    /// Creates a grant (under a new id).
    async fn create_grant(&self, grant: NewGrant) -> Result<Grant>;

    /// The grant with this id, revoked or not.
    async fn get_grant(&self, id: &str) -> Result<Option<Grant>>;

    /// The account's grants that are not revoked (the apps it authorised), newest first.
    async fn list_grants(&self, account_id: &str) -> Result<Vec<Grant>>;

    /// Revokes a grant, which ends all its refresh tokens; false when it was not active.
    async fn revoke_grant(&self, id: &str, now: i64) -> Result<bool>;

    /// Stores a refresh token (its hash) of a grant.
    async fn insert_refresh_token(
        &self,
        token_hash: &str,
        grant_id: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<()>;

    /// A refresh token with its grant, in any state.
    async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<(RefreshToken, Grant)>>;

    /// Exchanges a refresh token of `client_id` for its successor `new_hash`, atomically: the
    /// old one is marked used. A token presented again gets [`Rotation::Reused`] (the caller
    /// revokes the grant).
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        client_id: &str,
        new_hash: &str,
        new_expires_at: Option<i64>,
        now: i64,
    ) -> Result<Rotation>;

    /// Stores an EHR launch context; `Duplicate` when the id exists.
    async fn create_launch_context(&self, launch: LaunchContext) -> Result<()>;

    /// A launch context that is unused and unexpired, without using it.
    async fn get_launch_context(&self, id: &str, now: i64) -> Result<Option<LaunchContext>>;

    /// Uses a launch context once (when the code that carries it is issued).
    async fn take_launch_context(&self, id: &str, now: i64) -> Result<Option<LaunchContext>>;

    /// Stores a signing key; `Duplicate` names a taken `kid`.
    async fn insert_signing_key(&self, key: SigningKeyRecord) -> Result<()>;

    /// All signing keys, newest first.
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;

    /// Sets (or clears) when a key leaves the key ring.
    async fn retire_signing_key(&self, kid: &str, retire_at: Option<i64>) -> Result<bool>;

    /// Deletes a key (once no token it signed can still be valid).
    async fn delete_signing_key(&self, kid: &str) -> Result<bool>;

    /// Records a client assertion's `jti` until `expires_at` (the assertion's `exp`): true the
    /// first time, false for a replay. Forgets jtis that expired by `now`.
    async fn record_client_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool>;

    /// Deletes what ended before `before`: expired or used verification codes, authorization
    /// codes and launch contexts, old jtis and failed sign-ins, used or expired refresh tokens,
    /// ended sessions. Pass a horizon well in the past (a day or more), so that a spent code or
    /// refresh token presented again is still recognised as reused meanwhile. How many rows.
    async fn purge_expired(&self, before: i64) -> Result<u64>;
}

/// Runs a statement function on a connection of the engine, in a transaction when writing.
macro_rules! run {
    ($self:ident . $how:ident, |$c:ident| $body:expr) => {
        $self
            .$how(move |$c: &mut dyn engine::Conn| Box::pin(async move { $body.await }))
            .await
    };
}
// Also for the other stores on the same engines (`share_links.rs`, `audit.rs`).
pub(crate) use run;

#[async_trait::async_trait]
impl<S: Engine> AuthStore for S {
    async fn create_account(&self, account: NewAccount) -> Result<()> {
        run!(self.write, |c| accounts::create_account(c, account))
    }

    async fn get_account(&self, id: &str) -> Result<Option<Account>> {
        let id = id.to_string();
        run!(self.read, |c| accounts::account_by(c, AccountKey::Id, &id))
    }

    async fn get_account_by_email(&self, email: &str) -> Result<Option<Account>> {
        let email = email.to_string();
        run!(self.read, |c| accounts::account_by(
            c,
            AccountKey::Email,
            &email
        ))
    }

    async fn get_account_by_phone(&self, phone: &str) -> Result<Option<Account>> {
        let phone = phone.to_string();
        run!(self.read, |c| accounts::account_by(
            c,
            AccountKey::Phone,
            &phone
        ))
    }

    async fn get_account_by_fhir_user(&self, fhir_user: &str) -> Result<Option<Account>> {
        let fhir_user = fhir_user.to_string();
        run!(self.read, |c| accounts::account_by(
            c,
            AccountKey::FhirUser,
            &fhir_user
        ))
    }

    async fn list_accounts(
        &self,
        status: Option<AccountStatus>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Account>> {
        let after = after.map(str::to_string);
        run!(self.read, |c| accounts::list_accounts(
            c, status, after, limit
        ))
    }

    async fn set_password_hash(&self, id: &str, hash: &str, now: i64) -> Result<bool> {
        let (id, hash) = (id.to_string(), hash.to_string());
        run!(self.write, |c| accounts::set_password_hash(
            c, &id, &hash, now
        ))
    }

    async fn set_verified(&self, id: &str, channel: Channel, now: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| accounts::set_verified(c, &id, channel, now))
    }

    async fn set_status(&self, id: &str, status: AccountStatus, now: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| accounts::set_status(c, &id, status, now))
    }

    async fn set_fhir_user(&self, id: &str, fhir_user: &str, now: i64) -> Result<bool> {
        let (id, fhir_user) = (id.to_string(), fhir_user.to_string());
        run!(self.write, |c| accounts::set_fhir_user(
            c, &id, &fhir_user, now
        ))
    }

    async fn set_totp(
        &self,
        id: &str,
        secret: Option<Vec<u8>>,
        recovery_code_hashes: Vec<String>,
        now: i64,
    ) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| accounts::set_totp(
            c,
            &id,
            secret,
            recovery_code_hashes,
            now
        ))
    }

    async fn set_recovery_codes(&self, id: &str, hashes: Vec<String>, now: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| accounts::set_recovery_codes(
            c, &id, hashes, now
        ))
    }

    async fn accept_totp_step(&self, id: &str, step: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| accounts::accept_totp_step(c, &id, step))
    }

    async fn use_recovery_code(&self, id: &str, code_hash: &str, now: i64) -> Result<bool> {
        let (id, code_hash) = (id.to_string(), code_hash.to_string());
        run!(self.write, |c| accounts::use_recovery_code(
            c, &id, &code_hash, now
        ))
    }

    async fn increment_failed_logins(&self, id: &str, now: i64) -> Result<Option<i64>> {
        let id = id.to_string();
        run!(self.write, |c| accounts::increment_failed_logins(
            c, &id, now
        ))
    }

    async fn lock_account(&self, id: &str, until: i64, now: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| accounts::lock_account(c, &id, until, now))
    }

    async fn reset_failed_logins(&self, id: &str, now: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| accounts::reset_failed_logins(c, &id, now))
    }

    async fn create_verification_code(&self, code: NewVerificationCode) -> Result<()> {
        run!(self.write, |c| accounts::create_verification_code(c, code))
    }

    async fn take_verification_code(
        &self,
        purpose: CodePurpose,
        code_hash: &str,
        account_id: Option<&str>,
        now: i64,
    ) -> Result<Option<String>> {
        let (code_hash, account_id) = (code_hash.to_string(), account_id.map(str::to_string));
        run!(self.write, |c| accounts::take_verification_code(
            c, purpose, &code_hash, account_id, now
        ))
    }

    async fn create_session(&self, session: NewSession) -> Result<()> {
        run!(self.write, |c| accounts::create_session(c, session))
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        let id = id.to_string();
        run!(self.read, |c| accounts::get_session(c, &id))
    }

    async fn list_sessions(&self, account_id: &str, now: i64) -> Result<Vec<Session>> {
        let account_id = account_id.to_string();
        run!(self.read, |c| accounts::list_sessions(c, &account_id, now))
    }

    async fn touch_session(&self, id: &str, ip: Option<&str>, now: i64) -> Result<bool> {
        let (id, ip) = (id.to_string(), ip.map(str::to_string));
        run!(self.write, |c| accounts::touch_session(c, &id, ip, now))
    }

    async fn revoke_session(&self, account_id: &str, id: &str, now: i64) -> Result<bool> {
        let (account_id, id) = (account_id.to_string(), id.to_string());
        run!(self.write, |c| accounts::revoke_session(
            c,
            &account_id,
            &id,
            now
        ))
    }

    async fn revoke_sessions(
        &self,
        account_id: &str,
        except: Option<&str>,
        now: i64,
    ) -> Result<u64> {
        let (account_id, except) = (account_id.to_string(), except.map(str::to_string));
        run!(self.write, |c| accounts::revoke_sessions(
            c,
            &account_id,
            except,
            now
        ))
    }

    async fn record_login_failure(&self, failure: LoginFailure) -> Result<()> {
        run!(self.write, |c| accounts::record_login_failure(c, failure))
    }

    async fn count_login_failures(&self, scope: FailureScope, since: i64) -> Result<u64> {
        run!(self.read, |c| accounts::count_login_failures(
            c, scope, since
        ))
    }

    async fn append_security_event(&self, event: NewSecurityEvent) -> Result<i64> {
        run!(self.write, |c| accounts::append_security_event(c, event))
    }

    async fn list_security_events(
        &self,
        account_id: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>> {
        let account_id = account_id.map(str::to_string);
        run!(self.read, |c| accounts::list_security_events(
            c, account_id, before, limit
        ))
    }

    async fn register_client(&self, client: OAuthClient) -> Result<()> {
        run!(self.write, |c| oauth::register_client(c, client))
    }

    async fn get_client(&self, client_id: &str) -> Result<Option<OAuthClient>> {
        let client_id = client_id.to_string();
        run!(self.read, |c| oauth::get_client(c, &client_id))
    }

    async fn list_clients(&self) -> Result<Vec<OAuthClient>> {
        run!(self.read, |c| oauth::list_clients(c))
    }

    async fn insert_authorization_code(&self, code: AuthorizationCode) -> Result<()> {
        run!(self.write, |c| oauth::insert_authorization_code(c, code))
    }

    async fn take_authorization_code(
        &self,
        code_hash: &str,
        client_id: &str,
        now: i64,
    ) -> Result<CodeTake> {
        let (code_hash, client_id) = (code_hash.to_string(), client_id.to_string());
        run!(self.write, |c| oauth::take_authorization_code(
            c, &code_hash, &client_id, now
        ))
    }

    async fn create_grant(&self, grant: NewGrant) -> Result<Grant> {
        run!(self.write, |c| oauth::create_grant(c, grant))
    }

    async fn get_grant(&self, id: &str) -> Result<Option<Grant>> {
        let id = id.to_string();
        run!(self.read, |c| oauth::get_grant(c, &id))
    }

    async fn list_grants(&self, account_id: &str) -> Result<Vec<Grant>> {
        let account_id = account_id.to_string();
        run!(self.read, |c| oauth::list_grants(c, &account_id))
    }

    async fn revoke_grant(&self, id: &str, now: i64) -> Result<bool> {
        let id = id.to_string();
        run!(self.write, |c| oauth::revoke_grant(c, &id, now))
    }

    async fn insert_refresh_token(
        &self,
        token_hash: &str,
        grant_id: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let (token_hash, grant_id) = (token_hash.to_string(), grant_id.to_string());
        run!(self.write, |c| oauth::insert_refresh_token(
            c,
            &token_hash,
            &grant_id,
            expires_at,
            now
        ))
    }

    async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<(RefreshToken, Grant)>> {
        let token_hash = token_hash.to_string();
        run!(self.read, |c| oauth::find_refresh_token(c, &token_hash))
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        client_id: &str,
        new_hash: &str,
        new_expires_at: Option<i64>,
        now: i64,
    ) -> Result<Rotation> {
        let (old_hash, client_id, new_hash) = (
            old_hash.to_string(),
            client_id.to_string(),
            new_hash.to_string(),
        );
        run!(self.write, |c| oauth::rotate_refresh_token(
            c,
            &old_hash,
            &client_id,
            &new_hash,
            new_expires_at,
            now
        ))
    }

    async fn create_launch_context(&self, launch: LaunchContext) -> Result<()> {
        run!(self.write, |c| oauth::create_launch_context(c, launch))
    }

    async fn get_launch_context(&self, id: &str, now: i64) -> Result<Option<LaunchContext>> {
        let id = id.to_string();
        run!(self.read, |c| oauth::get_launch_context(c, &id, now))
    }

    async fn take_launch_context(&self, id: &str, now: i64) -> Result<Option<LaunchContext>> {
        let id = id.to_string();
        run!(self.write, |c| oauth::take_launch_context(c, &id, now))
    }

    async fn insert_signing_key(&self, key: SigningKeyRecord) -> Result<()> {
        run!(self.write, |c| oauth::insert_signing_key(c, key))
    }

    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        run!(self.read, |c| oauth::list_signing_keys(c))
    }

    async fn retire_signing_key(&self, kid: &str, retire_at: Option<i64>) -> Result<bool> {
        let kid = kid.to_string();
        run!(self.write, |c| oauth::retire_signing_key(
            c, &kid, retire_at
        ))
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool> {
        let kid = kid.to_string();
        run!(self.write, |c| oauth::delete_signing_key(c, &kid))
    }

    async fn record_client_assertion_jti(
        &self,
        client_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        let (client_id, jti) = (client_id.to_string(), jti.to_string());
        run!(self.write, |c| oauth::record_jti(
            c, &client_id, &jti, expires_at, now
        ))
    }

    async fn purge_expired(&self, before: i64) -> Result<u64> {
        run!(self.write, |c| oauth::purge(c, before))
    }
}
