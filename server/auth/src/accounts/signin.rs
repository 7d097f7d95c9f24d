//! Sign-in (password, then TOTP or a recovery code when two-factor authentication is on), with
//! throttling per account, per identifier and per IP; sessions; the first-party tokens (a short
//! access JWT and an opaque refresh token rotated on every use); sign-out.

use std::fmt;

use curanet_storage::{
    Account, AccountStatus, FailureScope, Grant, LoginFailure, NewGrant, NewSession, Role,
    Rotation, Session,
};
use serde_json::{Value, json};

use super::policy::{self, ACCESS_TOKEN_SECONDS, SESSION_SECONDS};
use super::{
    AccountError, Accounts, Caller, ENROLLMENT_SCOPE, FIRST_PARTY_CLIENT, Identifier, MICROS,
    first_party_scope,
};
use crate::token::{
    AccessGrant, TokenKind, hash_opaque_token, mint_access_token, new_opaque_token,
};
use crate::totp::{self, hash_recovery_code};

/// A sign-in attempt.
#[derive(Clone, Default)]
pub struct SignIn {
    /// The email address or phone number.
    pub identifier: String,
    /// The password.
    pub password: String,
    /// A TOTP code or a recovery code, when two-factor authentication is on.
    pub second_factor: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// The device's name (User-Agent or chosen by the person).
    pub device: Option<String>,
}

impl fmt::Debug for SignIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignIn")
            .field("identifier", &self.identifier)
            .field("ip", &self.ip)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// A successful sign-in: the account and its new session.
#[derive(Clone)]
pub struct SignedIn {
    /// The account, as it was before the sign-in.
    pub account: Account,
    /// The session's id (the hash of its token; safe to show and log).
    pub session_id: String,
    /// The opaque session token (for a browser cookie); only its hash is stored.
    pub session_token: String,
    /// An admin without two-factor authentication: the session may only enroll it.
    pub enrollment_only: bool,
}

impl fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedIn")
            .field("account", &self.account)
            .field("session_id", &self.session_id)
            .field("enrollment_only", &self.enrollment_only)
            .finish_non_exhaustive()
    }
}

/// The tokens of CuraNet's own apps.
#[derive(Clone)]
pub struct Tokens {
    /// The access JWT.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// The opaque refresh token (rotated on every use).
    pub refresh_token: String,
    /// The granted scopes.
    pub scope: String,
    /// The Patient id, for patients.
    pub patient: Option<String>,
    /// The absolute URL of the account's FHIR resource.
    pub fhir_user: Option<String>,
    /// The session the tokens belong to.
    pub session_id: String,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("scope", &self.scope)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// The JSON body of a token answer.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
            "session_id": self.session_id,
        });
        if let Some(p) = &self.patient {
            body["patient"] = json!(p);
        }
        if let Some(u) = &self.fhir_user {
            body["fhirUser"] = json!(u);
        }
        body
    }
}

/// Whether a second factor was needed and how it was given.
enum SecondFactor {
    None,
    Totp,
    RecoveryCode,
}

impl Accounts {
    /// Signs in with an email address or phone number and a password (and a second factor when
    /// two-factor authentication is on) and starts a session. The OAuth authorize page calls
    /// this too: on [`AccountError::SecondFactorRequired`] it asks for the code and calls again.
    pub async fn sign_in(&self, request: SignIn, now: i64) -> Result<SignedIn, AccountError> {
        let ip = request.ip.as_deref();
        self.check_ip(ip, now).await?;
        let identifier = Identifier::parse(&request.identifier);
        let account = match &identifier {
            Some(Identifier::Email(e)) => self.store.get_account_by_email(e).await?,
            Some(Identifier::Phone(p)) => self.store.get_account_by_phone(p).await?,
            None => None,
        };
        // Failures are counted per account, or per identifier when no account matches, so
        // that an unknown identifier is throttled exactly like a known one.
        let subject = match (&account, &identifier) {
            (Some(a), _) => a.id.clone(),
            (None, Some(i)) => i.as_str().to_string(),
            (None, None) => request.identifier.trim().to_lowercase(),
        };
        self.check_throttle(&subject, account.as_ref(), now).await?;

        if !self
            .password_matches(account.as_ref(), &request.password)
            .await?
        {
            self.fail(&subject, account.as_ref(), ip, "password", now)
                .await;
            return Err(AccountError::InvalidCredentials);
        }
        let account = account.ok_or(AccountError::InvalidCredentials)?;
        match account.status {
            AccountStatus::Active => {}
            AccountStatus::PendingApproval => return Err(AccountError::PendingApproval),
            AccountStatus::Disabled => return Err(AccountError::Disabled),
        }
        let verified = match identifier {
            Some(Identifier::Email(_)) => account.email_verified,
            Some(Identifier::Phone(_)) => account.phone_verified,
            None => false,
        };
        if !verified {
            return Err(AccountError::Unverified);
        }
        let factor = match self
            .check_second_factor(&account, request.second_factor.as_deref(), now)
            .await
        {
            Ok(f) => f,
            Err(AccountError::InvalidSecondFactor) => {
                self.fail(&subject, Some(&account), ip, "second_factor", now)
                    .await;
                return Err(AccountError::InvalidSecondFactor);
            }
            Err(e) => return Err(e),
        };
        if account.failed_logins > 0 || account.locked_until.is_some() {
            self.store
                .reset_failed_logins(&account.id, now * MICROS)
                .await?;
        }
        // A hash made with older argon2 parameters is replaced while the password is at hand.
        if account
            .password_hash
            .as_deref()
            .is_some_and(crate::password::needs_rehash)
        {
            let hash = self.hash_password(&request.password).await?;
            self.store
                .set_password_hash(&account.id, &hash, now * MICROS)
                .await?;
        }
        let enrollment_only = account.role == Role::Admin && account.totp_secret.is_none();
        let token = new_opaque_token();
        let device = request
            .device
            .as_deref()
            .map(|d| d.chars().take(200).collect::<String>());
        self.store
            .create_session(NewSession {
                id: token.hash.clone(),
                account_id: account.id.clone(),
                device,
                ip: request.ip.clone(),
                created_at: now * MICROS,
                expires_at: (now + SESSION_SECONDS) * MICROS,
            })
            .await?;
        let method = match factor {
            SecondFactor::None => "password",
            SecondFactor::Totp => "password+totp",
            SecondFactor::RecoveryCode => "password+recovery_code",
        };
        self.event(
            "login",
            Some(&account.id),
            ip,
            json!({"session": token.hash, "method": method, "enrollment_only": enrollment_only}),
            now,
        )
        .await;
        Ok(SignedIn {
            account,
            session_id: token.hash,
            session_token: token.value,
            enrollment_only,
        })
    }

    /// The session of an opaque session token (a browser cookie), if it is active.
    pub async fn session(&self, session_token: &str, now: i64) -> Result<Session, AccountError> {
        let session = self
            .store
            .get_session(&hash_opaque_token(session_token))
            .await?
            .filter(|s| s.is_active(now * MICROS))
            .ok_or(AccountError::InvalidToken)?;
        Ok(session)
    }

    /// The tokens for CuraNet's own apps after a sign-in: a grant bound to the session, a
    /// refresh token, and an access token with the role's scopes at its natural level.
    pub async fn issue_tokens(
        &self,
        signed_in: &SignedIn,
        now: i64,
    ) -> Result<Tokens, AccountError> {
        let account = &signed_in.account;
        let scope = if signed_in.enrollment_only {
            ENROLLMENT_SCOPE.to_string()
        } else {
            first_party_scope(account.role)
        };
        let patient = patient_of(account);
        let grant = self
            .store
            .create_grant(NewGrant {
                client_id: FIRST_PARTY_CLIENT.into(),
                account_id: account.id.clone(),
                scope: scope.clone(),
                context: match &patient {
                    Some(p) => json!({"patient": p}),
                    None => json!({}),
                },
                session_id: Some(signed_in.session_id.clone()),
                created_at: now * MICROS,
            })
            .await?;
        let refresh = new_opaque_token();
        let session_end = now + SESSION_SECONDS;
        self.store
            .insert_refresh_token(
                &refresh.hash,
                &grant.id,
                Some(session_end * MICROS),
                now * MICROS,
            )
            .await?;
        self.mint(account, &grant, patient, refresh.value, now)
    }

    /// Exchanges a refresh token for new tokens; the old refresh token stops working. A token
    /// presented again after its rotation ends the session (it was stolen, or leaked).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<Tokens, AccountError> {
        let old = hash_opaque_token(refresh_token.trim());
        let next = new_opaque_token();
        let found = self.store.find_refresh_token(&old).await?;
        let Some((stored, _)) = found else {
            return Err(AccountError::InvalidToken);
        };
        let rotation = self
            .store
            .rotate_refresh_token(
                &old,
                FIRST_PARTY_CLIENT,
                &next.hash,
                stored.expires_at,
                now * MICROS,
            )
            .await?;
        let grant = match rotation {
            Rotation::Rotated { grant } => grant,
            Rotation::Reused { grant_id } => {
                self.end_stolen_grant(&grant_id, ip, now).await?;
                return Err(AccountError::InvalidToken);
            }
            _ => return Err(AccountError::InvalidToken),
        };
        let session_id = grant.session_id.clone().ok_or(AccountError::InvalidToken)?;
        let session = self
            .store
            .get_session(&session_id)
            .await?
            .filter(|s| s.is_active(now * MICROS))
            .ok_or(AccountError::InvalidToken)?;
        let account = self.account(&grant.account_id).await?;
        if account.status != AccountStatus::Active {
            return Err(AccountError::InvalidToken);
        }
        // Touching is a write: at most about once a minute per session.
        if now * MICROS - session.last_seen >= 60 * MICROS || session.ip.as_deref() != ip {
            self.store
                .touch_session(&session_id, ip, now * MICROS)
                .await?;
        }
        let patient = grant
            .context
            .get("patient")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.mint(&account, &grant, patient, next.value, now)
    }

    /// Signs out: ends the session of a refresh token (and its grants). Unknown or spent
    /// tokens are ignored, so sign-out always succeeds.
    pub async fn sign_out(
        &self,
        refresh_token: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        let hash = hash_opaque_token(refresh_token.trim());
        let Some((_, grant)) = self.store.find_refresh_token(&hash).await? else {
            return Ok(());
        };
        if grant.client_id != FIRST_PARTY_CLIENT {
            return Ok(());
        }
        self.authority.revoke_grant(&grant.id, now).await?;
        if let Some(session) = &grant.session_id
            && self
                .store
                .revoke_session(&grant.account_id, session, now * MICROS)
                .await?
        {
            self.event(
                "logout",
                Some(&grant.account_id),
                ip,
                json!({"session": session}),
                now,
            )
            .await;
        }
        Ok(())
    }

    /// The caller's active sessions, most recently seen first.
    pub async fn sessions(&self, caller: &Caller, now: i64) -> Result<Vec<Value>, AccountError> {
        let sessions = self
            .store
            .list_sessions(&caller.account_id, now * MICROS)
            .await?;
        Ok(sessions
            .into_iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "device": s.device,
                    "ip": s.ip,
                    "createdAt": s.created_at / MICROS,
                    "lastSeen": s.last_seen / MICROS,
                    "expiresAt": s.expires_at / MICROS,
                })
            })
            .collect())
    }

    /// Ends one of the caller's sessions.
    pub async fn revoke_session(
        &self,
        caller: &Caller,
        session_id: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        if !self
            .store
            .revoke_session(&caller.account_id, session_id, now * MICROS)
            .await?
        {
            return Err(AccountError::NotFound);
        }
        self.event(
            "session_revoked",
            Some(&caller.account_id),
            ip,
            json!({"session": session_id}),
            now,
        )
        .await;
        Ok(())
    }

    /// The tokens of `grant` (a session's grant of the first-party client).
    fn mint(
        &self,
        account: &Account,
        grant: &Grant,
        patient: Option<String>,
        refresh_token: String,
        now: i64,
    ) -> Result<Tokens, AccountError> {
        let scope = grant.scope.as_str();
        let session_id = grant.session_id.as_deref().unwrap_or_default();
        let grant_id = grant.id.as_str();
        let endpoints = self.authority.endpoints();
        let fhir_user = self.authority.fhir_user_url(account);
        let grant = AccessGrant {
            issuer: endpoints.issuer.clone(),
            audience: endpoints.fhir_base.clone(),
            subject: account.id.clone(),
            client_id: FIRST_PARTY_CLIENT.into(),
            scope: scope.into(),
            patient: patient.clone(),
            encounter: None,
            fhir_user: fhir_user.clone(),
            fhir_context: Vec::new(),
            // Signing out (or a stolen refresh token) revokes the grant, and with it this token.
            grant_id: Some(grant_id.into()),
        };
        let minted = mint_access_token(
            &self.authority.ring(),
            &grant,
            TokenKind::User,
            ACCESS_TOKEN_SECONDS,
            now,
        )?;
        Ok(Tokens {
            access_token: minted.token,
            expires_in: ACCESS_TOKEN_SECONDS,
            refresh_token,
            scope: scope.into(),
            patient,
            fhir_user,
            session_id: session_id.into(),
        })
    }

    /// A rotated-out refresh token came back: revoke its grant and end its session.
    async fn end_stolen_grant(
        &self,
        grant_id: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        let Some(grant) = self.store.get_grant(grant_id).await? else {
            return Ok(());
        };
        self.authority.revoke_grant(grant_id, now).await?;
        if let Some(session) = &grant.session_id {
            self.store
                .revoke_session(&grant.account_id, session, now * MICROS)
                .await?;
        }
        self.event(
            "refresh_token_reused",
            Some(&grant.account_id),
            ip,
            json!({"session": grant.session_id, "action": "session_revoked"}),
            now,
        )
        .await;
        Ok(())
    }

    /// Refuses an IP address with too many recent failures.
    async fn check_ip(&self, ip: Option<&str>, now: i64) -> Result<(), AccountError> {
        let Some(ip) = ip else { return Ok(()) };
        let since = (now - policy::IP_WINDOW_SECONDS) * MICROS;
        let failures = self
            .store
            .count_login_failures(FailureScope::Ip(ip.into()), since)
            .await?;
        if failures >= policy::IP_FAILURE_LIMIT {
            return Err(AccountError::SlowDown {
                retry_after: policy::IP_WINDOW_SECONDS,
            });
        }
        Ok(())
    }

    /// Refuses a locked account (or identifier), or an attempt within the back-off.
    async fn check_throttle(
        &self,
        subject: &str,
        account: Option<&Account>,
        now: i64,
    ) -> Result<(), AccountError> {
        // Failures are stored at whole seconds. A lock from a failure at second `t` lasts until
        // second `t + seconds` (as `locked_until` does for known accounts); a back-off lasts
        // through that second, because the attempt that failed may have started just before a
        // second ended, and a shorter window could be over by the time its answer arrives.
        let count = |seconds: i64, through: bool| {
            self.store.count_login_failures(
                FailureScope::Subject(subject.into()),
                (now - seconds) * MICROS + i64::from(!through),
            )
        };
        let failures = match account {
            Some(a) => {
                if let Some(until) = a.locked_until
                    && until > now * MICROS
                {
                    return Err(AccountError::Locked {
                        retry_after: ceil_seconds(until - now * MICROS),
                    });
                }
                a.failed_logins
            }
            None => {
                let n = count(policy::FAILURE_WINDOW_SECONDS, false).await? as i64;
                if let Some(lock) = policy::lock_seconds(n)
                    && count(lock, false).await? > 0
                {
                    return Err(AccountError::Locked { retry_after: lock });
                }
                n
            }
        };
        let backoff = policy::backoff_seconds(failures);
        if backoff > 0 && count(backoff, true).await? > 0 {
            // An upper bound: the window ends with the second `t + backoff`.
            return Err(AccountError::SlowDown {
                retry_after: backoff + 1,
            });
        }
        Ok(())
    }

    /// Records a failed attempt: counters, a lock when due, security events.
    pub(crate) async fn fail(
        &self,
        subject: &str,
        account: Option<&Account>,
        ip: Option<&str>,
        what: &str,
        now: i64,
    ) {
        let result: Result<(), AccountError> = async {
            self.store
                .record_login_failure(LoginFailure {
                    subject: Some(subject.into()),
                    ip: ip.map(str::to_string),
                    at: now * MICROS,
                })
                .await?;
            let Some(account) = account else {
                self.event(
                    "login_failed",
                    None,
                    ip,
                    json!({"reason": what, "known": false}),
                    now,
                )
                .await;
                return Ok(());
            };
            let failures = self
                .store
                .increment_failed_logins(&account.id, now * MICROS)
                .await?
                .unwrap_or_default();
            self.event(
                "login_failed",
                Some(&account.id),
                ip,
                json!({"reason": what, "failures": failures}),
                now,
            )
            .await;
            if let Some(lock) = policy::lock_seconds(failures) {
                self.store
                    .lock_account(&account.id, (now + lock) * MICROS, now * MICROS)
                    .await?;
                self.event(
                    "locked",
                    Some(&account.id),
                    ip,
                    json!({"failures": failures, "seconds": lock}),
                    now,
                )
                .await;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a failed sign-in");
        }
    }

    /// Checks the TOTP or recovery code when the account has two-factor authentication.
    async fn check_second_factor(
        &self,
        account: &Account,
        given: Option<&str>,
        now: i64,
    ) -> Result<SecondFactor, AccountError> {
        let Some(sealed) = &account.totp_secret else {
            return Ok(SecondFactor::None);
        };
        let Some(code) = given.map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(AccountError::SecondFactorRequired);
        };
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == totp::TOTP_DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit())
        {
            let secret = self.open_totp(&account.id, sealed)?;
            let last = account.totp_last_step.and_then(|s| u64::try_from(s).ok());
            let step = totp::verify_totp(&secret, &digits, now, last)
                .ok_or(AccountError::InvalidSecondFactor)?;
            // Atomic: of two concurrent uses of one code, one wins.
            if !self
                .store
                .accept_totp_step(&account.id, step as i64)
                .await?
            {
                return Err(AccountError::InvalidSecondFactor);
            }
            return Ok(SecondFactor::Totp);
        }
        if self
            .store
            .use_recovery_code(&account.id, &hash_recovery_code(code), now * MICROS)
            .await?
        {
            self.event(
                "recovery_code_used",
                Some(&account.id),
                None,
                json!({"left": account.recovery_code_hashes.len().saturating_sub(1)}),
                now,
            )
            .await;
            return Ok(SecondFactor::RecoveryCode);
        }
        Err(AccountError::InvalidSecondFactor)
    }
}

/// The Patient id of a patient's account.
pub(crate) fn patient_of(account: &Account) -> Option<String> {
    if account.role != Role::Patient {
        return None;
    }
    account
        .fhir_user
        .as_deref()
        .and_then(|r| r.strip_prefix("Patient/"))
        .map(str::to_string)
}

fn ceil_seconds(micros: i64) -> i64 {
    (micros + MICROS - 1) / MICROS
}
