//! Password hashing off the async threads, verification codes, and sealing of TOTP secrets.

use curanet_storage::{Account, CodePurpose, NewVerificationCode};

use super::policy;
use super::{AccountError, Accounts, MICROS};
use crate::error::AuthError;
use crate::password;
use crate::token::{hash_opaque_token, new_opaque_token};
use crate::totp::TotpSecret;

impl Accounts {
    /// Hashes a new password (argon2id takes tens of milliseconds of one core).
    pub(crate) async fn hash_password(&self, password: &str) -> Result<String, AccountError> {
        let (password, pepper) = (password.to_string(), self.pepper.clone());
        Ok(
            tokio::task::spawn_blocking(move || password::hash_password(&password, &pepper))
                .await
                .map_err(|e| AuthError::PasswordHashing(e.to_string()))??,
        )
    }

    /// Whether `password` is the account's; for an account without a password (or no account)
    /// the same time is spent and the answer is no.
    pub(crate) async fn password_matches(
        &self,
        account: Option<&Account>,
        password: &str,
    ) -> Result<bool, AccountError> {
        let stored = account.and_then(|a| a.password_hash.clone());
        let (password, pepper) = (password.to_string(), self.pepper.clone());
        let result = tokio::task::spawn_blocking(move || match stored {
            Some(hash) => password::verify_password(&password, &hash, &pepper),
            None => {
                password::spend_verification_time(&password, &pepper);
                Ok(false)
            }
        })
        .await
        .map_err(|e| AuthError::PasswordHashing(e.to_string()))?;
        match result {
            Ok(ok) => Ok(ok),
            // A corrupt stored hash must not tell the caller anything: treat as a mismatch.
            Err(AuthError::MalformedPasswordHash(e)) => {
                tracing::error!(error = %e, "a stored password hash is malformed");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a new code of `purpose` for the account: a six-digit code for SMS, a long opaque
    /// token otherwise. Earlier unused codes of the purpose stop working. The code to send.
    pub(crate) async fn issue_code(
        &self,
        account_id: &str,
        purpose: CodePurpose,
        now: i64,
    ) -> Result<String, AccountError> {
        let (code, hash, lifetime) = match purpose {
            CodePurpose::Phone => {
                let code = six_digits();
                let hash = hash_short_code(account_id, &code);
                (code, hash, policy::SMS_CODE_SECONDS)
            }
            CodePurpose::Email => {
                let t = new_opaque_token();
                (t.value, t.hash, policy::EMAIL_CODE_SECONDS)
            }
            CodePurpose::PasswordReset => {
                let t = new_opaque_token();
                (t.value, t.hash, policy::RESET_TOKEN_SECONDS)
            }
        };
        self.store
            .create_verification_code(NewVerificationCode {
                account_id: account_id.into(),
                purpose,
                code_hash: hash,
                created_at: now * MICROS,
                expires_at: (now + lifetime) * MICROS,
            })
            .await?;
        Ok(code)
    }

    /// Takes a long token once: its account.
    pub(crate) async fn take_token(
        &self,
        purpose: CodePurpose,
        token: &str,
        now: i64,
    ) -> Result<String, AccountError> {
        let token = token.trim();
        if token.is_empty() || token.len() > 200 {
            return Err(AccountError::InvalidCode);
        }
        self.store
            .take_verification_code(purpose, &hash_opaque_token(token), None, now * MICROS)
            .await?
            .ok_or(AccountError::InvalidCode)
    }

    /// Takes a six-digit code of the account once.
    pub(crate) async fn take_short_code(
        &self,
        account_id: &str,
        purpose: CodePurpose,
        code: &str,
        now: i64,
    ) -> Result<(), AccountError> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AccountError::InvalidCode);
        }
        let hash = hash_short_code(account_id, &code);
        match self
            .store
            .take_verification_code(purpose, &hash, Some(account_id), now * MICROS)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(AccountError::InvalidCode),
        }
    }

    /// Seals a TOTP secret for storage, bound to the account.
    pub(crate) fn seal_totp(
        &self,
        account_id: &str,
        secret: &TotpSecret,
    ) -> Result<Vec<u8>, AccountError> {
        Ok(self
            .kek
            .seal(secret.as_bytes(), &totp_context(account_id))?)
    }

    /// Opens the account's sealed TOTP secret.
    pub(crate) fn open_totp(
        &self,
        account_id: &str,
        sealed: &[u8],
    ) -> Result<TotpSecret, AccountError> {
        let bytes = self.kek.open(sealed, &totp_context(account_id))?;
        Ok(TotpSecret::from_bytes(bytes)?)
    }
}

/// Checks the policy for a new password of an account with these contacts.
pub(crate) fn check_policy(password: &str, email: Option<&str>) -> Result<(), AccountError> {
    crate::password::check_password_policy(password, email.unwrap_or_default())
        .map_err(AccountError::WeakPassword)
}

fn totp_context(account_id: &str) -> Vec<u8> {
    format!("curanet totp secret:{account_id}").into_bytes()
}

/// A uniformly random six-digit code.
fn six_digits() -> String {
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        let n = u32::from_le_bytes(bytes);
        // Reject the top sliver so that every code is equally likely.
        if n < u32::MAX - (u32::MAX % 1_000_000) {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// A short code's hash is salted with its account: a million codes alone would be a small
/// table to invert.
fn hash_short_code(account_id: &str, code: &str) -> String {
    hash_opaque_token(&format!("{account_id}:{code}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digit_codes() {
        for _ in 0..100 {
            let c = six_digits();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(
            hash_short_code("a", "123456"),
            hash_short_code("b", "123456")
        );
    }
}
