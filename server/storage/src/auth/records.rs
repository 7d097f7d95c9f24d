//! The values that cross the boundary of [`AuthStore`](super::AuthStore). Times are microseconds
//! since the epoch, UTC; hashes and sealed secrets are computed by the caller (the `auth` crate),
//! never here. `Debug` leaves out password hashes and sealed secrets, so records can be logged.

use std::fmt;

use serde_json::Value;

/// A closed set of values stored as text.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// Reads the stored spelling.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// What an account may do.
    Role {
        /// A person who owns their record.
        Patient = "patient",
        /// A practitioner.
        Doctor = "doctor",
        /// Staff of a pharmacy Organization.
        Pharmacist = "pharmacist",
        /// Runs the server.
        Admin = "admin",
    }
}

text_enum! {
    /// Whether an account may sign in.
    AccountStatus {
        /// May sign in.
        Active = "active",
        /// Registered, waiting for an admin (doctors and pharmacists).
        PendingApproval = "pending_approval",
        /// Switched off by an admin.
        Disabled = "disabled",
    }
}

text_enum! {
    /// What a verification code proves.
    CodePurpose {
        /// Ownership of the email address.
        Email = "email",
        /// Ownership of the phone number.
        Phone = "phone",
        /// The right to set a new password.
        PasswordReset = "password_reset",
    }
}

text_enum! {
    /// How an OAuth client authenticates (SMART App Launch 2.2 client types).
    ClientKind {
        /// No secret (a browser or native app); PKCE only.
        Public = "public",
        /// A client secret.
        ConfidentialSymmetric = "confidential_symmetric",
        /// `private_key_jwt` with a registered JWKS.
        ConfidentialAsymmetric = "confidential_asymmetric",
        /// A backend service (`client_credentials` with `private_key_jwt`).
        Backend = "backend",
    }
}

/// A contact channel that can be verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// The email address.
    Email,
    /// The phone number.
    Phone,
}

/// An account as stored.
#[derive(Clone, PartialEq)]
pub struct Account {
    /// Server-assigned id.
    pub id: String,
    /// What the account may do.
    pub role: Role,
    /// The email address, normalised by the caller.
    pub email: Option<String>,
    /// The phone number (E.164).
    pub phone: Option<String>,
    /// Whether the email address was proven.
    pub email_verified: bool,
    /// Whether the phone number was proven.
    pub phone_verified: bool,
    /// The password's PHC string; `None` until the person sets one.
    pub password_hash: Option<String>,
    /// The linked FHIR resource (`Patient/123`), the `fhirUser` claim.
    pub fhir_user: Option<String>,
    /// Whether the account may sign in.
    pub status: AccountStatus,
    /// The sealed TOTP secret; `None` while two-factor authentication is off.
    pub totp_secret: Option<Vec<u8>>,
    /// The last accepted TOTP time step.
    pub totp_last_step: Option<i64>,
    /// Hashes of the unused recovery codes.
    pub recovery_code_hashes: Vec<String>,
    /// Failed sign-ins since the last success.
    pub failed_logins: i64,
    /// Sign-in refused until then.
    pub locked_until: Option<i64>,
    /// When the account was created.
    pub created_at: i64,
    /// When the account last changed.
    pub updated_at: i64,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .field("email_verified", &self.email_verified)
            .field("phone_verified", &self.phone_verified)
            .field("has_password", &self.password_hash.is_some())
            .field("fhir_user", &self.fhir_user)
            .field("status", &self.status)
            .field("totp_enabled", &self.totp_secret.is_some())
            .field("recovery_codes", &self.recovery_code_hashes.len())
            .field("failed_logins", &self.failed_logins)
            .field("locked_until", &self.locked_until)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish_non_exhaustive()
    }
}

/// An account to create.
#[derive(Clone)]
pub struct NewAccount {
    /// Server-assigned id.
    pub id: String,
    /// What the account may do.
    pub role: Role,
    /// The email address, normalised by the caller (unique).
    pub email: Option<String>,
    /// The phone number, E.164 (unique).
    pub phone: Option<String>,
    /// Whether the email address is already proven (an admin vouches for it).
    pub email_verified: bool,
    /// Whether the phone number is already proven.
    pub phone_verified: bool,
    /// The password's PHC string; `None` for an account whose owner sets it later.
    pub password_hash: Option<String>,
    /// The linked FHIR resource, when it exists already.
    pub fhir_user: Option<String>,
    /// Whether the account may sign in.
    pub status: AccountStatus,
    /// When the account is created.
    pub created_at: i64,
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A verification code to store (earlier unused codes of the same purpose stop working).
#[derive(Debug, Clone)]
pub struct NewVerificationCode {
    /// Whose contact or password it is about.
    pub account_id: String,
    /// What it proves.
    pub purpose: CodePurpose,
    /// Hash of the code sent to the person.
    pub code_hash: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
}

/// A session to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Hash of the opaque session token.
    pub id: String,
    /// Who signed in.
    pub account_id: String,
    /// The device's name (from the User-Agent or given by the person).
    pub device: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// When it begins.
    pub created_at: i64,
    /// When it ends at the latest.
    pub expires_at: i64,
}

/// A signed-in device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Hash of the opaque session token.
    pub id: String,
    /// Who signed in.
    pub account_id: String,
    /// The device's name (from the User-Agent or given by the person).
    pub device: Option<String>,
    /// The IP address last seen.
    pub ip: Option<String>,
    /// When it began.
    pub created_at: i64,
    /// When it was last used.
    pub last_seen: i64,
    /// When it ends at the latest.
    pub expires_at: i64,
    /// When it was ended (sign-out, revocation).
    pub revoked_at: Option<i64>,
}

impl Session {
    /// Whether the session is neither revoked nor expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// A registered OAuth client.
#[derive(Clone, PartialEq)]
pub struct OAuthClient {
    /// The public identifier.
    pub client_id: String,
    /// The app's name, shown on the consent page.
    pub name: String,
    /// How it authenticates.
    pub kind: ClientKind,
    /// Hash of the client secret (confidential symmetric clients).
    pub secret_hash: Option<String>,
    /// Where codes may be sent.
    pub redirect_uris: Vec<String>,
    /// The JSON Web Key Set registered by value.
    pub jwks: Option<Value>,
    /// The JSON Web Key Set registered by URL.
    pub jwks_url: Option<String>,
    /// The scopes it may ask for, space-separated.
    pub scope: String,
    /// Browser origins allowed to call the token endpoint and the API (CORS).
    pub allowed_origins: Vec<String>,
    /// The admin who registered it (`None`: the command line).
    pub created_by: Option<String>,
    /// When it was registered.
    pub created_at: i64,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("has_secret", &self.secret_hash.is_some())
            .field("redirect_uris", &self.redirect_uris)
            .field("jwks", &self.jwks)
            .field("jwks_url", &self.jwks_url)
            .field("scope", &self.scope)
            .field("allowed_origins", &self.allowed_origins)
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// An authorization code as issued by the authorize endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationCode {
    /// Hash of the opaque code.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who approved.
    pub account_id: String,
    /// The redirect URI of the request (the token request must repeat it).
    pub redirect_uri: String,
    /// The scopes the user granted, space-separated.
    pub scope: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// Launch context (`patient`, `encounter`, `fhirContext`, `need_patient_banner`, ...).
    pub context: Value,
    /// The OpenID Connect nonce of the request.
    pub nonce: Option<String>,
    /// With `online_access`: the browser session the grant lives with.
    pub session_id: Option<String>,
    /// When it was issued.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
}

/// What taking an authorization code found.
#[derive(Debug, Clone, PartialEq)]
pub enum CodeTake {
    /// The code was valid: it is now used, and the grant its exchange creates is stored.
    Taken {
        /// The code as issued.
        code: Box<AuthorizationCode>,
        /// The new grant.
        grant: Box<Grant>,
    },
    /// The code was exchanged before: a replay; the caller revokes this grant.
    AlreadyUsed {
        /// The grant the first exchange created.
        grant_id: String,
    },
    /// The code was issued to another client; it stays usable by its own.
    WrongClient,
    /// The code expired unused.
    Expired,
    /// No such code.
    Unknown,
}

/// What a user granted a client; its tokens are valid while it is not revoked.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// Store-assigned id (time-ordered UUID).
    pub id: String,
    /// The client.
    pub client_id: String,
    /// The user.
    pub account_id: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// Launch context.
    pub context: Value,
    /// With `online_access`: the grant is revoked with this session.
    pub session_id: Option<String>,
    /// When it was granted.
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// A grant to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGrant {
    /// The client.
    pub client_id: String,
    /// The user.
    pub account_id: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// Launch context.
    pub context: Value,
    /// With `online_access`: the session the grant lives with.
    pub session_id: Option<String>,
    /// When it is granted.
    pub created_at: i64,
}

/// A refresh token as stored (its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Hash of the opaque token.
    pub token_hash: String,
    /// The grant it renews.
    pub grant_id: String,
    /// When it was issued.
    pub created_at: i64,
    /// When it stops working (`None`: with the grant).
    pub expires_at: Option<i64>,
    /// When it was exchanged for its successor.
    pub used_at: Option<i64>,
    /// Hash of its successor.
    pub replaced_by: Option<String>,
}

/// What rotating a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// The old token is now used and the new one stored.
    Rotated {
        /// The grant both belong to.
        grant: Grant,
    },
    /// The token was rotated before: a stolen token; the caller revokes this grant.
    Reused {
        /// The grant of the token.
        grant_id: String,
    },
    /// The token belongs to another client; nothing changed.
    WrongClient,
    /// The grant was revoked.
    Revoked {
        /// The revoked grant.
        grant_id: String,
    },
    /// The token expired unused.
    Expired {
        /// The grant of the token.
        grant_id: String,
    },
    /// No such token.
    Unknown,
}

/// An EHR launch: the context an opaque `launch` value stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchContext {
    /// Hash of the `launch` value.
    pub id: String,
    /// The Patient id in context.
    pub patient: Option<String>,
    /// The Encounter id in context.
    pub encounter: Option<String>,
    /// Further context (SMART 2.2 `fhirContext`), a JSON array.
    pub fhir_context: Option<Value>,
    /// The account that opened the launch.
    pub created_by: String,
    /// When it was opened.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
}

/// A token-signing key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The key id (`kid`).
    pub kid: String,
    /// The JWS algorithm (`RS256`, ...).
    pub algorithm: String,
    /// The public key as a JWK.
    pub public_jwk: Value,
    /// The sealed private key.
    pub private_key: Vec<u8>,
    /// When it was generated.
    pub created_at: i64,
    /// When it leaves the key ring (`None`: the current key).
    pub retire_at: Option<i64>,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

/// A failed sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginFailure {
    /// The account id, or the email or phone tried when no account matched.
    pub subject: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// When it happened.
    pub at: i64,
}

/// Whose failed sign-ins to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureScope {
    /// Those against one account (or identifier).
    Subject(String),
    /// Those from one IP address.
    Ip(String),
}

/// A security event to record; `detail` must not hold secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSecurityEvent {
    /// When it happened.
    pub at: i64,
    /// What happened (`login`, `login_failed`, `locked`, `password_reset`, `totp_enabled`, ...).
    pub kind: String,
    /// Whose account it concerns.
    pub account_id: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// More facts, as a JSON object.
    pub detail: Value,
}

/// A recorded security event.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityEvent {
    /// Store-assigned, increasing (the paging cursor).
    pub id: i64,
    /// When it happened.
    pub at: i64,
    /// What happened.
    pub kind: String,
    /// Whose account it concerns.
    pub account_id: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// More facts.
    pub detail: Value,
}
