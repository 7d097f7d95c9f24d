//! What can go wrong in authentication and authorization, without HTTP status codes.

use crate::client_assertion::AssertionRejection;
use crate::password::PolicyViolation;
use crate::pkce::PkceError;
use crate::token::TokenRejection;

/// Why an auth operation failed. `server/http` maps each variant to an OAuth error or a status.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A new password breaks the password policy (the user is told which rule).
    #[error("the password is not acceptable: {0}")]
    WeakPassword(PolicyViolation),
    /// The server-wide password pepper is missing or too short to add any strength.
    #[error("the password pepper must be at least {min} bytes long, got {len}")]
    PepperTooShort {
        /// Bytes given.
        len: usize,
        /// Bytes required.
        min: usize,
    },
    /// A stored password hash cannot be parsed (corrupt row or foreign format).
    #[error("the stored password hash is malformed: {0}")]
    MalformedPasswordHash(String),
    /// Argon2 itself failed (parameters or memory); a server error.
    #[error("password hashing failed: {0}")]
    PasswordHashing(String),
    /// A TOTP secret is not valid base32 or has the wrong length.
    #[error("invalid TOTP secret: {0}")]
    InvalidTotpSecret(String),
    /// A PKCE challenge, method or verifier is missing, malformed or does not match.
    #[error("PKCE: {0}")]
    Pkce(PkceError),
    /// A signing key could not be generated, encoded or decoded.
    #[error("signing key: {0}")]
    Key(String),
    /// The key-encryption key is malformed, or a sealed key does not open with it.
    #[error("key encryption: {0}")]
    KeyEncryption(String),
    /// A token was asked to live longer than its kind allows.
    #[error("a token lifetime of {requested} s is not allowed (1 to {max} s)")]
    TokenLifetime {
        /// Seconds requested.
        requested: i64,
        /// The maximum for this kind of token.
        max: i64,
    },
    /// Claims given for minting break a rule (e.g. an empty or over-long `sub`).
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// Signing a JWT failed; a server error.
    #[error("signing failed: {0}")]
    Signing(String),
    /// A bearer token was rejected (the caller answers 401 or `{"active":false}`).
    #[error("invalid token: {0}")]
    InvalidToken(TokenRejection),
    /// A client assertion was rejected (the caller answers `invalid_client`; the reason is for logs).
    #[error("invalid client assertion: {0}")]
    InvalidClient(AssertionRejection),
    /// The auth store failed (database down, corrupt row); a server error.
    /// A client's JWKS could not be fetched or read.
    #[error("client keys: {0}")]
    ClientKeys(String),
    #[error("auth storage: {0}")]
    Store(#[from] curanet_storage::StoreError),
}
