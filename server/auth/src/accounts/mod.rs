//! First-party accounts: registration, verification of email and phone, sign-in with lockout
//! and back-off, sessions with rotating refresh tokens, password reset and change, TOTP
//! two-factor authentication (required for admins), and the tokens CuraNet's own apps use.
//!
//! [`Accounts`] is a service over the [`AuthStore`], the [`Authority`] (to mint and verify
//! access tokens), the password [`Pepper`], the [`KeyEncryptionKey`] that seals TOTP secrets, a
//! [`Directory`] that creates the linked FHIR resources, a [`Mailer`] and an [`SmsSender`].
//! Every method takes the time as `now` (Unix seconds); storage keeps microseconds.
//!
//! Failures never reveal whether an account exists: an unknown identifier costs one password
//! verification ([`spend_verification_time`](crate::password::spend_verification_time)), is
//! throttled by the same counters (kept per identifier), and gets the same error.

mod error;
pub mod mail;
mod passwords;
pub mod policy;
mod register;
mod secrets;
#[cfg(test)]
mod service_tests;
mod signin;
mod two_factor;

use std::fmt;
use std::sync::Arc;

use curanet_storage::{
    Account, AuthStore, ClientKind, NewSecurityEvent, OAuthClient, Role, StoreError,
};
use serde_json::Value;

pub use error::AccountError;
pub use mail::{LogMailer, LogSms, Mail, Mailer, SendError, SmsSender, SmtpMailer};
pub use register::{NewStaff, Registration, provision};
pub use signin::{SignIn, SignedIn, Tokens};
pub use two_factor::{Enrollment, RecoveryCodesShown};

use crate::Authority;
use crate::keys::KeyEncryptionKey;
use crate::password::Pepper;

/// The client id of CuraNet's own apps (desktop client, patient portal) in tokens and grants.
pub const FIRST_PARTY_CLIENT: &str = "curanet";
/// The only scope of the token an admin without two-factor authentication gets: it may call
/// the 2FA enrollment endpoints and nothing else.
pub const ENROLLMENT_SCOPE: &str = "curanet:2fa-enrollment";
/// Microseconds per second (storage keeps microseconds).
pub(crate) const MICROS: i64 = 1_000_000;

/// The person behind an account, as the FHIR resource is made from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// Given names.
    pub given: Vec<String>,
    /// Family name.
    pub family: Option<String>,
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// `male`, `female`, `other` or `unknown`.
    pub gender: Option<String>,
    /// The (normalised) email address.
    pub email: Option<String>,
    /// The phone number, E.164.
    pub phone: Option<String>,
}

/// Why the directory could not create a resource.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The data was refused (validation): the caller's fault.
    #[error("{0}")]
    Rejected(String),
    /// Anything else: the server's fault.
    #[error("{0}")]
    Failed(String),
}

impl From<DirectoryError> for AccountError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::Rejected(m) => AccountError::InvalidInput(m),
            DirectoryError::Failed(m) => AccountError::Directory(m),
        }
    }
}

/// Where the FHIR resources of accounts are created (the `http` crate implements it over the
/// engine; the auth crate does not know the engine).
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    /// Creates a Patient for `person`; its reference, `Patient/{id}`.
    async fn create_patient(&self, person: &Person) -> Result<String, DirectoryError>;

    /// Creates a Practitioner for `person` and a PractitionerRole of `role` (doctor,
    /// pharmacist, admin) — for a pharmacist at the pharmacy Organization named `pharmacy`,
    /// created when absent. The Practitioner's reference, `Practitioner/{id}`.
    async fn create_practitioner(
        &self,
        person: &Person,
        role: Role,
        pharmacy: Option<&str>,
    ) -> Result<String, DirectoryError>;
}

/// The account service (see the module documentation).
pub struct Accounts {
    store: Arc<dyn AuthStore>,
    authority: Arc<Authority>,
    pepper: Pepper,
    kek: KeyEncryptionKey,
    directory: Arc<dyn Directory>,
    mailer: Arc<dyn Mailer>,
    sms: Arc<dyn SmsSender>,
}

impl fmt::Debug for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

/// An authenticated caller of the account API (from a first-party access token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The account id.
    pub account_id: String,
    /// The token only allows enrolling two-factor authentication.
    pub enrollment_only: bool,
}

impl Accounts {
    /// The service; registers the first-party client (`curanet`) when storage lacks it, so
    /// grants and refresh tokens of the account API have a client to belong to.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        store: Arc<dyn AuthStore>,
        authority: Arc<Authority>,
        pepper: Pepper,
        kek: KeyEncryptionKey,
        directory: Arc<dyn Directory>,
        mailer: Arc<dyn Mailer>,
        sms: Arc<dyn SmsSender>,
        now: i64,
    ) -> Result<Accounts, AccountError> {
        let client = OAuthClient {
            client_id: FIRST_PARTY_CLIENT.into(),
            name: "CuraNet".into(),
            kind: ClientKind::Public,
            secret_hash: None,
            redirect_uris: Vec::new(),
            jwks: None,
            jwks_url: None,
            scope: String::new(),
            allowed_origins: Vec::new(),
            created_by: None,
            created_at: now * MICROS,
        };
        match store.register_client(client).await {
            Ok(()) | Err(StoreError::Duplicate { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Accounts {
            store,
            authority,
            pepper,
            kek,
            directory,
            mailer,
            sms,
        })
    }

    /// The caller behind a bearer access token: a token of this server issued to CuraNet's own
    /// apps, for an account that may still sign in.
    pub async fn authenticate(&self, bearer: &str, now: i64) -> Result<Caller, AccountError> {
        let claims = self
            .authority
            .verify(bearer, now)
            .await
            .map_err(|_| AccountError::InvalidToken)?;
        if claims.client_id != FIRST_PARTY_CLIENT {
            return Err(AccountError::InvalidToken);
        }
        let account = self
            .store
            .get_account(&claims.sub)
            .await?
            .ok_or(AccountError::InvalidToken)?;
        if account.status != curanet_storage::AccountStatus::Active {
            return Err(AccountError::InvalidToken);
        }
        Ok(Caller {
            account_id: claims.sub,
            enrollment_only: claims.scope == ENROLLMENT_SCOPE,
        })
    }

    /// The caller's account as JSON (no secret, no hash).
    pub async fn me(&self, caller: &Caller) -> Result<Value, AccountError> {
        let account = self.account(&caller.account_id).await?;
        Ok(account_json(&account))
    }

    /// The security events of an account, newest first (for admins and tests).
    pub async fn security_events(
        &self,
        account_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<curanet_storage::SecurityEvent>, AccountError> {
        Ok(self
            .store
            .list_security_events(account_id, None, limit)
            .await?)
    }

    pub(crate) async fn account(&self, id: &str) -> Result<Account, AccountError> {
        self.store
            .get_account(id)
            .await?
            .ok_or(AccountError::InvalidToken)
    }

    /// Appends a security event; `detail` must hold no secret. A failure to record is logged,
    /// not returned: the operation it describes already happened.
    pub(crate) async fn event(
        &self,
        kind: &str,
        account_id: Option<&str>,
        ip: Option<&str>,
        detail: Value,
        now: i64,
    ) {
        let event = NewSecurityEvent {
            at: now * MICROS,
            kind: kind.into(),
            account_id: account_id.map(str::to_string),
            ip: ip.map(str::to_string),
            detail,
        };
        if let Err(e) = self.store.append_security_event(event).await {
            tracing::error!(error = %e, kind, "could not record a security event");
        }
    }
}

/// The public view of an account.
pub fn account_json(account: &Account) -> Value {
    serde_json::json!({
        "id": account.id,
        "role": account.role.as_str(),
        "status": account.status.as_str(),
        "email": account.email,
        "emailVerified": account.email_verified,
        "phone": account.phone,
        "phoneVerified": account.phone_verified,
        "fhirUser": account.fhir_user,
        "twoFactorEnabled": account.totp_secret.is_some(),
        "recoveryCodesLeft": account.recovery_code_hashes.len(),
        "createdAt": account.created_at / MICROS,
    })
}

/// An email address trimmed and in lower case, if it looks like one.
pub fn normalize_email(text: &str) -> Option<String> {
    let email = text.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(email)
}

/// A phone number in E.164 (`+919876543210`); ten digits without a country code are taken as
/// Indian numbers. Spaces, dashes, dots and parentheses are ignored.
pub fn normalize_phone(text: &str) -> Option<String> {
    let cleaned: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let (plus, digits) = match cleaned.strip_prefix('+') {
        Some(rest) => (true, rest.to_string()),
        None => (false, cleaned),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match (plus, digits.len()) {
        (true, 8..=15) if !digits.starts_with('0') => Some(format!("+{digits}")),
        (false, 10) if !digits.starts_with('0') => Some(format!("+91{digits}")),
        _ => None,
    }
}

/// What a sign-in identifier is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identifier {
    Email(String),
    Phone(String),
}

impl Identifier {
    pub(crate) fn parse(text: &str) -> Option<Identifier> {
        if text.contains('@') {
            normalize_email(text).map(Identifier::Email)
        } else {
            normalize_phone(text).map(Identifier::Phone)
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Identifier::Email(s) | Identifier::Phone(s) => s,
        }
    }
}

/// The role's natural level of clinical scopes from its ceiling: `patient/` for patients,
/// `user/` for everyone else; space-separated.
pub fn first_party_scope(role: Role) -> String {
    use crate::scope::Level;
    let level = if role == Role::Patient {
        Level::Patient
    } else {
        Level::User
    };
    crate::roles::ceiling(role)
        .iter()
        .filter(|s| s.as_clinical().is_some_and(|c| c.level() == level))
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_phones_are_normalised() {
        assert_eq!(
            normalize_email("  Asha@Example.IN "),
            Some("asha@example.in".into())
        );
        assert_eq!(normalize_email("asha@localhost"), None);
        assert_eq!(normalize_email("a b@x.in"), None);
        assert_eq!(normalize_email("@x.in"), None);
        assert_eq!(
            normalize_phone("+91 98765-43210"),
            Some("+919876543210".into())
        );
        assert_eq!(normalize_phone("9876543210"), Some("+919876543210".into()));
        assert_eq!(normalize_phone("12345"), None);
        assert_eq!(normalize_phone("+91abc"), None);
        assert_eq!(
            Identifier::parse("X@Y.in"),
            Some(Identifier::Email("x@y.in".into()))
        );
    }

    #[test]
    fn first_party_scopes_are_the_natural_level_of_the_ceiling() {
        assert_eq!(
            first_party_scope(Role::Patient),
            "patient/*.rs patient/Consent.cu patient/Patient.u"
        );
        assert_eq!(first_party_scope(Role::Doctor), "user/*.cruds");
        let pharmacist = first_party_scope(Role::Pharmacist);
        assert!(pharmacist.starts_with("user/Patient.rs"));
        assert!(!pharmacist.contains("patient/"));
    }
}
