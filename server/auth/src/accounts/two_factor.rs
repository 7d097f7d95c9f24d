//! TOTP two-factor authentication: enroll (a secret and its `otpauth://` URI, plus a sealed
//! enrollment token so nothing is stored before it is confirmed), confirm with a code (then ten
//! recovery codes, shown once), disable with a code. Admins cannot disable it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use curanet_storage::Role;
use serde_json::json;

use super::register::require_full;
use super::{AccountError, Accounts, Caller, MICROS, policy};
use crate::totp::{self, TotpSecret, generate_recovery_codes, hash_recovery_code};

/// Issuer shown by authenticator apps.
const TOTP_ISSUER: &str = "CuraNet";

/// A started enrollment: show `secret` / `otpauth_uri` (as a QR code), keep `token` for the
/// confirmation.
#[derive(Clone)]
pub struct Enrollment {
    /// The secret in base32.
    pub secret: String,
    /// The `otpauth://totp/...` URI.
    pub otpauth_uri: String,
    /// The sealed secret with its expiry, to send back with the first code.
    pub token: String,
    /// Seconds the enrollment stays open.
    pub expires_in: i64,
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment").finish_non_exhaustive()
    }
}

/// Recovery codes, shown to the person once.
#[derive(Clone)]
pub struct RecoveryCodesShown {
    /// The codes.
    pub codes: Vec<String>,
}

impl fmt::Debug for RecoveryCodesShown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodesShown")
            .field("count", &self.codes.len())
            .finish()
    }
}

impl Accounts {
    /// Starts enrolling an authenticator app (allowed with an enrollment-only token).
    pub async fn enroll_totp(&self, caller: &Caller, now: i64) -> Result<Enrollment, AccountError> {
        let account = self.account(&caller.account_id).await?;
        if account.totp_secret.is_some() {
            return Err(AccountError::Conflict(
                "two-factor authentication is already on; disable it first".into(),
            ));
        }
        let secret = TotpSecret::generate();
        let label = account
            .email
            .clone()
            .or(account.phone.clone())
            .unwrap_or_else(|| account.id.clone());
        let expires = now + policy::ENROLLMENT_SECONDS;
        let mut plain = expires.to_be_bytes().to_vec();
        plain.extend_from_slice(secret.as_bytes());
        let sealed = self.kek.seal(&plain, &enrollment_context(&account.id))?;
        Ok(Enrollment {
            secret: secret.to_base32(),
            otpauth_uri: totp::provisioning_uri(&secret, TOTP_ISSUER, &label),
            token: URL_SAFE_NO_PAD.encode(sealed),
            expires_in: policy::ENROLLMENT_SECONDS,
        })
    }

    /// Confirms the enrollment with a code from the app: two-factor authentication is on, and
    /// the recovery codes are returned (once).
    pub async fn confirm_totp(
        &self,
        caller: &Caller,
        token: &str,
        code: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<RecoveryCodesShown, AccountError> {
        let account = self.account(&caller.account_id).await?;
        if account.totp_secret.is_some() {
            return Err(AccountError::Conflict(
                "two-factor authentication is already on".into(),
            ));
        }
        let invalid =
            || AccountError::InvalidInput("the enrollment is not valid or expired".into());
        let sealed = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| invalid())?;
        let plain = self
            .kek
            .open(&sealed, &enrollment_context(&account.id))
            .map_err(|_| invalid())?;
        if plain.len() < 8 {
            return Err(invalid());
        }
        let (expiry, secret) = plain.split_at(8);
        let expires = i64::from_be_bytes(expiry.try_into().expect("eight bytes"));
        if now >= expires {
            return Err(invalid());
        }
        let secret = TotpSecret::from_bytes(secret.to_vec())?;
        let step =
            totp::verify_totp(&secret, code, now, None).ok_or(AccountError::InvalidSecondFactor)?;
        let codes = generate_recovery_codes();
        let stored = self.seal_totp(&account.id, &secret)?;
        self.store
            .set_totp(&account.id, Some(stored), codes.hashes, now * MICROS)
            .await?;
        // The confirming code cannot sign in again.
        self.store
            .accept_totp_step(&account.id, step as i64)
            .await?;
        self.event("totp_enabled", Some(&account.id), ip, json!({}), now)
            .await;
        Ok(RecoveryCodesShown { codes: codes.codes })
    }

    /// Turns two-factor authentication off with a current code or a recovery code. Admins must
    /// keep it.
    pub async fn disable_totp(
        &self,
        caller: &Caller,
        code: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        require_full(caller)?;
        let account = self.account(&caller.account_id).await?;
        if account.role == Role::Admin {
            return Err(AccountError::Forbidden(
                "two-factor authentication is required for admins".into(),
            ));
        }
        let Some(sealed) = &account.totp_secret else {
            return Err(AccountError::Conflict(
                "two-factor authentication is off".into(),
            ));
        };
        let secret = self.open_totp(&account.id, sealed)?;
        let last = account.totp_last_step.and_then(|s| u64::try_from(s).ok());
        let ok = match totp::verify_totp(&secret, code, now, last) {
            Some(step) => {
                self.store
                    .accept_totp_step(&account.id, step as i64)
                    .await?
            }
            None => {
                self.store
                    .use_recovery_code(&account.id, &hash_recovery_code(code), now * MICROS)
                    .await?
            }
        };
        if !ok {
            self.fail(&account.id, Some(&account), ip, "disable_2fa", now)
                .await;
            return Err(AccountError::InvalidSecondFactor);
        }
        self.store
            .set_totp(&account.id, None, Vec::new(), now * MICROS)
            .await?;
        self.event("totp_disabled", Some(&account.id), ip, json!({}), now)
            .await;
        Ok(())
    }
}

fn enrollment_context(account_id: &str) -> Vec<u8> {
    format!("curanet totp enrollment:{account_id}").into_bytes()
}
