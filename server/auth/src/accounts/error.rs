//! What can go wrong in the account flows. `server/http` maps each variant to a status and a
//! JSON `{"error", "error_description"}`; messages never tell whether an account exists.

use crate::error::AuthError;
use crate::password::PolicyViolation;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A field is missing or malformed (400).
    #[error("{0}")]
    InvalidInput(String),
    /// A new password breaks the policy (400); the rule is named.
    #[error("the password is not acceptable: {0}")]
    WeakPassword(PolicyViolation),
    /// The email address or phone number belongs to another account (409).
    #[error("an account with this {0} exists")]
    Duplicate(&'static str),
    /// Wrong identifier or password, or no such account: the same answer for all (401).
    #[error("the email, phone or password is not correct")]
    InvalidCredentials,
    /// The password was right and two-factor authentication is on: send the code too (401).
    #[error("a second factor (authenticator code or recovery code) is required")]
    SecondFactorRequired,
    /// The authenticator or recovery code is wrong or was used already (401).
    #[error("the authenticator or recovery code is not correct")]
    InvalidSecondFactor,
    /// The identifier used to sign in was not proven yet (403).
    #[error("verify your email address or phone number first")]
    Unverified,
    /// A clinician's account waits for an admin (403).
    #[error("the account is waiting for approval by an administrator")]
    PendingApproval,
    /// The account was switched off (403).
    #[error("the account is disabled")]
    Disabled,
    /// Too many failed sign-ins: locked for `retry_after` seconds (423).
    #[error("too many failed sign-ins; try again later")]
    Locked {
        /// Seconds until the next attempt is considered.
        retry_after: i64,
    },
    /// Attempts too close together: wait `retry_after` seconds (429).
    #[error("too many attempts; slow down")]
    SlowDown {
        /// Seconds to wait.
        retry_after: i64,
    },
    /// A verification code or reset token is unknown, used or expired (400).
    #[error("the code is not valid (unknown, used or expired)")]
    InvalidCode,
    /// A bearer or refresh token is missing, invalid, expired or revoked (401).
    #[error("the token is not valid")]
    InvalidToken,
    /// Authenticated, but not allowed to do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such session or account among those the caller may see (404).
    #[error("not found")]
    NotFound,
    /// The request conflicts with the account's state, e.g. 2FA already on (409).
    #[error("{0}")]
    Conflict(String),
    /// Creating the linked FHIR resource failed (500; 400 when the data was refused).
    #[error("the FHIR directory: {0}")]
    Directory(String),
    /// Hashing, signing, sealing or storage failed (500).
    #[error(transparent)]
    Internal(#[from] AuthError),
}

impl From<curanet_storage::StoreError> for AccountError {
    fn from(e: curanet_storage::StoreError) -> Self {
        AccountError::Internal(AuthError::Store(e))
    }
}

impl AccountError {
    /// The machine-readable code of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            AccountError::InvalidInput(_) => "invalid_request",
            AccountError::WeakPassword(_) => "weak_password",
            AccountError::Duplicate(_) => "already_registered",
            AccountError::InvalidCredentials => "invalid_credentials",
            AccountError::SecondFactorRequired => "second_factor_required",
            AccountError::InvalidSecondFactor => "invalid_second_factor",
            AccountError::Unverified => "unverified",
            AccountError::PendingApproval => "pending_approval",
            AccountError::Disabled => "account_disabled",
            AccountError::Locked { .. } => "account_locked",
            AccountError::SlowDown { .. } => "slow_down",
            AccountError::InvalidCode => "invalid_code",
            AccountError::InvalidToken => "invalid_token",
            AccountError::Forbidden(_) => "forbidden",
            AccountError::NotFound => "not_found",
            AccountError::Conflict(_) => "conflict",
            AccountError::Directory(_) | AccountError::Internal(_) => "server_error",
        }
    }
}
