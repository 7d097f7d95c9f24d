//! What can go wrong in the desktop core, as the shell shows it (`{code, message}`).

/// Why a desktop operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// The local cache (SQLite) failed.
    #[error("the local cache failed: {0}")]
    Cache(#[from] sqlx::Error),
    /// The local cache's schema could not be brought up to date.
    #[error("the local cache could not be prepared: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The server cannot be reached and nothing is cached for the request.
    #[error("the server cannot be reached and {0} is not in the local cache")]
    Offline(String),
    /// The server does not have it, or no longer shares it with this user (consent revoked or
    /// expired); whatever was cached of it is gone too.
    #[error("{0} is not available: it does not exist or is no longer shared with you")]
    NotAvailable(String),
    /// The server refused or failed the request.
    #[error("the server answered {status}: {message}")]
    Refused { status: u16, message: String },
    /// The server answered something that is not a FHIR resource.
    #[error("the server's answer is not a FHIR resource: {0}")]
    Protocol(String),
    /// The server cannot be reached (for what has no cached answer: signing in, refreshing).
    #[error("the server cannot be reached: {0}")]
    Unreachable(String),
    /// Nobody is signed in, or the session has ended (revoked or expired): sign in again.
    #[error("not signed in: {0}")]
    NotSignedIn(String),
    /// The secret store (keyring or sealed file) failed, or its contents do not open.
    #[error("the secret store failed: {0}")]
    Secrets(String),
    /// What the user entered cannot make a valid record (nothing was sent).
    #[error("{0}")]
    Invalid(String),
}

impl DesktopError {
    /// A stable code for the UI.
    pub fn code(&self) -> &'static str {
        match self {
            DesktopError::Cache(_) | DesktopError::Migrate(_) => "cache",
            DesktopError::Offline(_) => "offline",
            DesktopError::NotAvailable(_) => "not_available",
            DesktopError::Refused { .. } => "refused",
            DesktopError::Protocol(_) => "protocol",
            DesktopError::Unreachable(_) => "offline",
            DesktopError::NotSignedIn(_) => "not_signed_in",
            DesktopError::Secrets(_) => "secrets",
            DesktopError::Invalid(_) => "invalid",
        }
    }
}
