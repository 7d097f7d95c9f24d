//! Emergency share links (issue 5): a patient makes a time-limited link that shows a chosen
//! slice of their record (allergies, medications, conditions, emergency contacts, blood group)
//! to whoever holds it, without login, optionally behind a passcode.
//!
//! The rules are plain functions ([`parse_scope`], [`validate_request`], [`status`],
//! [`remaining_attempts`], [`patient_of`]); [`ShareLinks`] applies them over the
//! [`ShareLinkStore`]. Which FHIR resources make up a section is decided by the `http` crate,
//! which knows the engine. Times passed in are Unix seconds; storage keeps microseconds.
//!
//! Secrets: the link token (256 random bits) is handed out once and stored as its SHA-256; the
//! passcode is stored as an argon2id hash with the server's pepper. Neither is ever logged.
//! Every use of a link that exists is recorded, whatever its outcome; a wrong passcode takes
//! one of [`MAX_PASSCODE_ATTEMPTS`] attempts *before* it is checked, so concurrent guesses
//! cannot get past the limit, and the last allowed wrong one locks the link for good.

use std::fmt;
use std::sync::Arc;

use curanet_storage::{
    Account, AuthStore, Role, ShareAccess, ShareLink, ShareLinkStore, ShareLinkSummary, StoreError,
};
use serde_json::{Value, json};

use crate::error::AuthError;
use crate::password::{self, Pepper};
use crate::token::{hash_opaque_token, new_opaque_token};

/// Shortest lifetime of a link, in hours.
pub const MIN_EXPIRES_HOURS: i64 = 1;
/// Longest lifetime of a link, in hours (three days).
pub const MAX_EXPIRES_HOURS: i64 = 72;
/// Shortest passcode, in characters.
pub const MIN_PASSCODE_CHARS: usize = 4;
/// Longest passcode, in characters.
pub const MAX_PASSCODE_CHARS: usize = 12;
/// Wrong passcodes a link survives; the last one locks it.
pub const MAX_PASSCODE_ATTEMPTS: i64 = 5;
/// Longest label, in characters (as SMART Health Links).
pub const MAX_LABEL_CHARS: usize = 80;
/// Longest recipient name kept, in characters.
pub const MAX_RECIPIENT_CHARS: usize = 100;
/// Longest User-Agent kept, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 200;
/// Uses of a link listed to its owner, newest first.
pub const MAX_ACCESSES_LISTED: u32 = 500;
const MICROS: i64 = 1_000_000;

/// A part of the record a link may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    /// Active AllergyIntolerance records.
    Allergies,
    /// Active MedicationRequest and MedicationStatement records.
    Medications,
    /// Active Condition records.
    Conditions,
    /// `Patient.contact` and RelatedPerson records.
    EmergencyContact,
    /// The latest ABO/Rh blood group Observation.
    BloodGroup,
}

impl Section {
    /// Every section, in the order they are shown.
    pub const ALL: [Section; 5] = [
        Section::Allergies,
        Section::Medications,
        Section::Conditions,
        Section::EmergencyContact,
        Section::BloodGroup,
    ];

    /// The API spelling (`ALLERGIES`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Allergies => "ALLERGIES",
            Section::Medications => "MEDICATIONS",
            Section::Conditions => "CONDITIONS",
            Section::EmergencyContact => "EMERGENCY_CONTACT",
            Section::BloodGroup => "BLOOD_GROUP",
        }
    }

    /// Reads the API spelling.
    pub fn parse(text: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The heading shown to people.
    pub fn title(self) -> &'static str {
        match self {
            Section::Allergies => "Allergies",
            Section::Medications => "Medications",
            Section::Conditions => "Conditions",
            Section::EmergencyContact => "Emergency contacts",
            Section::BloodGroup => "Blood group",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a link operation of the patient failed.
#[derive(Debug, thiserror::Error)]
pub enum SharingError {
    /// The request breaks a rule (400).
    #[error("{0}")]
    InvalidInput(String),
    /// The caller may not make links (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such link of the caller (404).
    #[error("no such share link")]
    NotFound,
    /// Storage or hashing failed (500).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for SharingError {
    fn from(e: StoreError) -> Self {
        SharingError::Internal(format!("storage: {e}"))
    }
}

impl From<AuthError> for SharingError {
    fn from(e: AuthError) -> Self {
        SharingError::Internal(e.to_string())
    }
}

impl SharingError {
    /// The machine-readable code of the answer.
    pub fn code(&self) -> &'static str {
        match self {
            SharingError::InvalidInput(_) => "invalid_request",
            SharingError::Forbidden(_) => "forbidden",
            SharingError::NotFound => "not_found",
            SharingError::Internal(_) => "server_error",
        }
    }
}

/// The sections of a link request: at least one, each known, without repeats, in the order of
/// [`Section::ALL`].
pub fn parse_scope(values: &[String]) -> Result<Vec<Section>, SharingError> {
    let mut sections = Vec::new();
    for value in values {
        let section = Section::parse(value.trim()).ok_or_else(|| {
            SharingError::InvalidInput(format!(
                "unknown scope '{value}' (use {})",
                Section::ALL.map(Section::as_str).join(", ")
            ))
        })?;
        if !sections.contains(&section) {
            sections.push(section);
        }
    }
    if sections.is_empty() {
        return Err(SharingError::InvalidInput(
            "scope must name at least one section".into(),
        ));
    }
    sections.sort();
    Ok(sections)
}

/// What a patient asks for.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LinkRequest {
    /// Section names (`ALLERGIES`, ...).
    pub scope: Vec<String>,
    /// Lifetime in hours.
    pub expires_in_hours: i64,
    /// A passcode the recipient must give.
    pub passcode: Option<String>,
    /// A name for the link, shown to its owner.
    pub label: Option<String>,
}

impl fmt::Debug for LinkRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkRequest")
            .field("scope", &self.scope)
            .field("expires_in_hours", &self.expires_in_hours)
            .field("has_passcode", &self.passcode.is_some())
            .field("label", &self.label)
            .finish()
    }
}

/// A request that follows the rules.
#[derive(Clone, PartialEq, Eq)]
pub struct ValidRequest {
    pub sections: Vec<Section>,
    /// Unix seconds.
    pub expires_at: i64,
    pub passcode: Option<String>,
    pub label: Option<String>,
}

impl fmt::Debug for ValidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidRequest")
            .field("sections", &self.sections)
            .field("expires_at", &self.expires_at)
            .field("has_passcode", &self.passcode.is_some())
            .field("label", &self.label)
            .finish()
    }
}

/// Checks a request at `now` (Unix seconds): the scope, a lifetime of 1 to 72 hours, a
/// passcode of 4 to 12 characters, a label of at most 80 (blank labels are dropped).
pub fn validate_request(request: &LinkRequest, now: i64) -> Result<ValidRequest, SharingError> {
    let sections = parse_scope(&request.scope)?;
    let hours = request.expires_in_hours;
    if !(MIN_EXPIRES_HOURS..=MAX_EXPIRES_HOURS).contains(&hours) {
        return Err(SharingError::InvalidInput(format!(
            "expiresIn must be {MIN_EXPIRES_HOURS} to {MAX_EXPIRES_HOURS} hours, got {hours}"
        )));
    }
    if let Some(passcode) = &request.passcode {
        let chars = passcode.chars().count();
        if !(MIN_PASSCODE_CHARS..=MAX_PASSCODE_CHARS).contains(&chars) {
            return Err(SharingError::InvalidInput(format!(
                "the passcode must have {MIN_PASSCODE_CHARS} to {MAX_PASSCODE_CHARS} characters"
            )));
        }
    }
    let label = request
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    if let Some(label) = label
        && label.chars().count() > MAX_LABEL_CHARS
    {
        return Err(SharingError::InvalidInput(format!(
            "the label must have at most {MAX_LABEL_CHARS} characters"
        )));
    }
    Ok(ValidRequest {
        sections,
        expires_at: now + hours * 3600,
        passcode: request.passcode.clone(),
        label: label.map(str::to_string),
    })
}

/// The Patient id of an account that may make links: a patient linked to a Patient resource.
pub fn patient_of(account: &Account) -> Result<String, SharingError> {
    if account.role != Role::Patient {
        return Err(SharingError::Forbidden(
            "only patients can share their records with an emergency link".into(),
        ));
    }
    account
        .fhir_user
        .as_deref()
        .and_then(|r| r.strip_prefix("Patient/"))
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| SharingError::Forbidden("the account has no Patient record".into()))
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    Active,
    Expired,
    Revoked,
    /// Too many wrong passcodes.
    Locked,
}

impl LinkStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkStatus::Active => "active",
            LinkStatus::Expired => "expired",
            LinkStatus::Revoked => "revoked",
            LinkStatus::Locked => "locked",
        }
    }
}

/// The link's status at `now` (Unix seconds); revoked before locked before expired.
pub fn status(link: &ShareLink, now: i64) -> LinkStatus {
    if link.revoked_at.is_some() {
        LinkStatus::Revoked
    } else if link.locked_at.is_some() {
        LinkStatus::Locked
    } else if link.expires_at <= now * MICROS {
        LinkStatus::Expired
    } else {
        LinkStatus::Active
    }
}

/// Wrong passcodes the link still survives.
pub fn remaining_attempts(failed_attempts: i64) -> i64 {
    (MAX_PASSCODE_ATTEMPTS - failed_attempts).max(0)
}

/// A recipient name as kept: trimmed, at most [`MAX_RECIPIENT_CHARS`], none when blank.
pub fn recipient_name(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(MAX_RECIPIENT_CHARS).collect())
}

/// Who uses a link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visitor {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The name they gave (kept as [`recipient_name`] makes it).
    pub recipient: Option<String>,
}

/// The outcomes recorded for a use of a link.
pub mod outcome {
    /// The slice was shown.
    pub const GRANTED: &str = "granted";
    /// The link has a passcode and none was given.
    pub const PASSCODE_REQUIRED: &str = "passcode_required";
    /// A wrong passcode.
    pub const WRONG_PASSCODE: &str = "wrong_passcode";
    /// The wrong passcode that locked the link.
    pub const LOCKED_NOW: &str = "locked";
    /// Refused: the link was locked already.
    pub const REFUSED_LOCKED: &str = "refused_locked";
    /// Refused: the link expired.
    pub const REFUSED_EXPIRED: &str = "refused_expired";
    /// Refused: the link was revoked.
    pub const REFUSED_REVOKED: &str = "refused_revoked";
    /// Refused: other passcode checks of the link are using the remaining attempts.
    pub const REFUSED_BUSY: &str = "refused_busy";
}

/// What an opened link shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub link_id: String,
    pub patient_id: String,
    pub sections: Vec<Section>,
    pub label: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Why a link was not opened. The HTTP layer answers `NotFound` the same way for unknown,
/// expired, revoked and locked links.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no such link")]
    NotFound,
    #[error("this link needs a passcode")]
    PasscodeRequired { remaining: i64 },
    #[error("wrong passcode")]
    WrongPasscode { remaining: i64 },
    /// Every remaining attempt is being checked by other requests: try again in a moment.
    #[error("other passcode attempts are being checked; try again shortly")]
    Busy,
    #[error(transparent)]
    Failed(#[from] SharingError),
}

impl From<StoreError> for OpenError {
    fn from(e: StoreError) -> Self {
        OpenError::Failed(e.into())
    }
}

/// A link just made: the token goes to the patient once.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedLink {
    pub id: String,
    /// The bearer secret of the link URL.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub sections: Vec<Section>,
    pub label: Option<String>,
}

impl fmt::Debug for CreatedLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedLink")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A link as its owner sees it (times in Unix seconds; no hash).
pub fn link_json(summary: &ShareLinkSummary, now: i64) -> Value {
    let link = &summary.link;
    let state = status(link, now);
    json!({
        "shareId": link.id,
        "label": link.label,
        "scope": link.scope,
        "status": state.as_str(),
        "createdAt": link.created_at / MICROS,
        "expiresAt": link.expires_at / MICROS,
        "revokedAt": link.revoked_at.map(|t| t / MICROS),
        "lockedAt": link.locked_at.map(|t| t / MICROS),
        "hasPasscode": link.passcode_hash.is_some(),
        "failedAttempts": link.failed_attempts,
        "remainingAttempts": link.passcode_hash.as_ref().map(|_| remaining_attempts(link.failed_attempts)),
        "accessCount": summary.accesses,
        "viewCount": summary.granted,
        "lastAccessAt": summary.last_access.map(|t| t / MICROS),
    })
}

/// A use of a link as its owner sees it.
pub fn access_json(access: &ShareAccess) -> Value {
    json!({
        "at": access.at / MICROS,
        "ip": access.ip,
        "userAgent": access.user_agent,
        "recipient": access.recipient,
        "outcome": access.outcome,
    })
}

/// The share-link service (see the module documentation).
pub struct ShareLinks {
    store: Arc<dyn ShareLinkStore>,
    accounts: Arc<dyn AuthStore>,
    pepper: Pepper,
}

impl fmt::Debug for ShareLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareLinks").finish_non_exhaustive()
    }
}

impl ShareLinks {
    /// The service over the auth store (which keeps the links beside the accounts that make
    /// them) and the pepper of password hashes (passcodes are hashed like passwords).
    pub fn new(store: Arc<dyn AuthStore>, pepper: Pepper) -> ShareLinks {
        ShareLinks {
            store: store.clone(),
            accounts: store,
            pepper,
        }
    }

    /// The Patient id of the account, if it may make links.
    pub async fn patient_of(&self, account_id: &str) -> Result<String, SharingError> {
        let account = self
            .accounts
            .get_account(account_id)
            .await?
            .ok_or_else(|| SharingError::Forbidden("unknown account".into()))?;
        patient_of(&account)
    }

    /// Makes a link for the patient of the account.
    pub async fn create(
        &self,
        account_id: &str,
        request: &LinkRequest,
        now: i64,
    ) -> Result<CreatedLink, SharingError> {
        let patient_id = self.patient_of(account_id).await?;
        let valid = validate_request(request, now)?;
        let passcode_hash = match valid.passcode.clone() {
            Some(passcode) => {
                let pepper = self.pepper.clone();
                Some(
                    tokio::task::spawn_blocking(move || {
                        password::hash_password(&passcode, &pepper)
                    })
                    .await
                    .map_err(|e| SharingError::Internal(e.to_string()))??,
                )
            }
            None => None,
        };
        let token = new_opaque_token();
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.store
            .create_share_link(ShareLink {
                id: id.clone(),
                patient_id,
                account_id: account_id.to_string(),
                token_hash: token.hash,
                scope: valid
                    .sections
                    .iter()
                    .map(|s| s.as_str().to_string())
                    .collect(),
                passcode_hash,
                label: valid.label.clone(),
                created_at: now * MICROS,
                expires_at: valid.expires_at * MICROS,
                revoked_at: None,
                failed_attempts: 0,
                locked_at: None,
            })
            .await?;
        Ok(CreatedLink {
            id,
            token: token.value,
            expires_at: valid.expires_at,
            sections: valid.sections,
            label: valid.label,
        })
    }

    /// The account's links with their status and use counts, newest first.
    pub async fn list(&self, account_id: &str) -> Result<Vec<ShareLinkSummary>, SharingError> {
        self.patient_of(account_id).await?;
        Ok(self.store.list_share_links(account_id).await?)
    }

    /// One of the account's links (the account must be a patient's).
    async fn own(&self, account_id: &str, id: &str) -> Result<ShareLink, SharingError> {
        self.patient_of(account_id).await?;
        self.store
            .get_share_link(id)
            .await?
            .filter(|l| l.account_id == account_id)
            .ok_or(SharingError::NotFound)
    }

    /// Revokes one of the account's links (again: no change).
    pub async fn revoke(&self, account_id: &str, id: &str, now: i64) -> Result<(), SharingError> {
        self.own(account_id, id).await?;
        self.store
            .revoke_share_link(account_id, id, now * MICROS)
            .await?;
        Ok(())
    }

    /// The uses of one of the account's links, newest first.
    pub async fn accesses(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<Vec<ShareAccess>, SharingError> {
        self.own(account_id, id).await?;
        Ok(self
            .store
            .list_share_accesses(id, MAX_ACCESSES_LISTED)
            .await?)
    }

    /// Opens the link of `token` for a visitor who gave `passcode` (if any), recording the use.
    pub async fn open(
        &self,
        token: &str,
        passcode: Option<&str>,
        visitor: &Visitor,
        now: i64,
    ) -> Result<Opened, OpenError> {
        let link = self
            .store
            .find_share_link(&hash_opaque_token(token))
            .await?
            .ok_or(OpenError::NotFound)?;
        match status(&link, now) {
            LinkStatus::Active => {}
            refused => {
                let outcome = match refused {
                    LinkStatus::Expired => outcome::REFUSED_EXPIRED,
                    LinkStatus::Revoked => outcome::REFUSED_REVOKED,
                    _ => outcome::REFUSED_LOCKED,
                };
                self.record(&link, visitor, outcome, now).await;
                return Err(OpenError::NotFound);
            }
        }
        if let Some(stored) = &link.passcode_hash {
            let Some(passcode) = passcode.filter(|p| !p.is_empty()) else {
                self.record(&link, visitor, outcome::PASSCODE_REQUIRED, now)
                    .await;
                return Err(OpenError::PasscodeRequired {
                    remaining: remaining_attempts(link.failed_attempts),
                });
            };
            self.check_passcode(&link, stored, passcode, visitor, now)
                .await?;
        }
        self.record(&link, visitor, outcome::GRANTED, now).await;
        Ok(Opened {
            sections: link
                .scope
                .iter()
                .filter_map(|s| Section::parse(s))
                .collect(),
            link_id: link.id,
            patient_id: link.patient_id,
            label: link.label,
            expires_at: link.expires_at / MICROS,
        })
    }

    /// Takes an attempt, checks the passcode, gives the attempt back when it is right and locks
    /// the link when the last attempt was wrong.
    async fn check_passcode(
        &self,
        link: &ShareLink,
        stored: &str,
        passcode: &str,
        visitor: &Visitor,
        now: i64,
    ) -> Result<(), OpenError> {
        let Some(taken) = self
            .store
            .reserve_passcode_attempt(&link.id, MAX_PASSCODE_ATTEMPTS, now * MICROS)
            .await?
        else {
            // Locked, revoked or expired meanwhile, or every attempt is in flight.
            let current = self.store.get_share_link(&link.id).await?;
            return match current {
                Some(current) if status(&current, now) == LinkStatus::Active => {
                    self.record(link, visitor, outcome::REFUSED_BUSY, now).await;
                    Err(OpenError::Busy)
                }
                _ => {
                    self.record(link, visitor, outcome::REFUSED_LOCKED, now)
                        .await;
                    Err(OpenError::NotFound)
                }
            };
        };
        let (passcode, stored, pepper) = (
            passcode.to_string(),
            stored.to_string(),
            self.pepper.clone(),
        );
        let verified = tokio::task::spawn_blocking(move || {
            password::verify_password(&passcode, &stored, &pepper)
        })
        .await
        .map_err(|e| SharingError::Internal(e.to_string()))?;
        let right = match verified {
            Ok(right) => right,
            Err(e) => {
                // A corrupt stored hash opens nothing.
                tracing::error!(error = %e, link = %link.id, "a stored passcode hash is unusable");
                false
            }
        };
        if right {
            self.store.release_passcode_attempt(&link.id).await?;
            return Ok(());
        }
        if taken >= MAX_PASSCODE_ATTEMPTS {
            self.store
                .lock_share_link(&link.id, MAX_PASSCODE_ATTEMPTS, now * MICROS)
                .await?;
            self.record(link, visitor, outcome::LOCKED_NOW, now).await;
        } else {
            self.record(link, visitor, outcome::WRONG_PASSCODE, now)
                .await;
        }
        Err(OpenError::WrongPasscode {
            remaining: remaining_attempts(taken),
        })
    }

    /// Records a use; a failure is logged (without the token), the answer stands.
    async fn record(&self, link: &ShareLink, visitor: &Visitor, outcome: &str, now: i64) {
        let access = ShareAccess {
            id: 0,
            link_id: link.id.clone(),
            at: now * MICROS,
            ip: visitor.ip.clone(),
            user_agent: visitor
                .user_agent
                .as_deref()
                .map(|u| u.chars().take(MAX_USER_AGENT_CHARS).collect()),
            recipient: recipient_name(visitor.recipient.as_deref()),
            outcome: outcome.to_string(),
        };
        if let Err(e) = self.store.record_share_access(access).await {
            tracing::error!(error = %e, link = %link.id, outcome, "could not record a share link use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    fn link(expires_at: i64) -> ShareLink {
        ShareLink {
            id: "l1".into(),
            patient_id: "p1".into(),
            account_id: "a1".into(),
            token_hash: "h".into(),
            scope: strings(&["ALLERGIES"]),
            passcode_hash: None,
            label: None,
            created_at: 0,
            expires_at,
            revoked_at: None,
            failed_attempts: 0,
            locked_at: None,
        }
    }

    #[test]
    fn scope_is_parsed_deduplicated_and_ordered() {
        assert_eq!(
            parse_scope(&strings(&["BLOOD_GROUP", "ALLERGIES", "BLOOD_GROUP"])).unwrap(),
            vec![Section::Allergies, Section::BloodGroup]
        );
        for bad in [&[][..], &["allergies"][..], &["ALLERGIES", "VITALS"][..]] {
            assert!(
                matches!(
                    parse_scope(&strings(bad)),
                    Err(SharingError::InvalidInput(_))
                ),
                "{bad:?}"
            );
        }
        for s in Section::ALL {
            assert_eq!(Section::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn requests_follow_the_rules() {
        let request = |hours: i64, passcode: Option<&str>, label: Option<&str>| LinkRequest {
            scope: strings(&["ALLERGIES"]),
            expires_in_hours: hours,
            passcode: passcode.map(str::to_string),
            label: label.map(str::to_string),
        };
        let now = 1_700_000_000;
        let ok = validate_request(&request(24, Some("1234"), Some("  ER  ")), now).unwrap();
        assert_eq!(ok.expires_at, now + 24 * 3600);
        assert_eq!(ok.label.as_deref(), Some("ER"));
        assert_eq!(
            validate_request(&request(1, None, Some(" ")), now)
                .unwrap()
                .label,
            None
        );
        assert_eq!(
            validate_request(&request(72, Some("123456789012"), None), now)
                .unwrap()
                .expires_at,
            now + 72 * 3600
        );
        for bad in [
            request(0, None, None),
            request(73, None, None),
            request(-5, None, None),
            request(24, Some("123"), None),
            request(24, Some("1234567890123"), None),
            request(24, None, Some(&"x".repeat(81))),
        ] {
            assert!(
                matches!(
                    validate_request(&bad, now),
                    Err(SharingError::InvalidInput(_))
                ),
                "{bad:?}"
            );
        }
        let debug = format!("{:?}", request(24, Some("secret-code"), None));
        assert!(!debug.contains("secret-code"));
    }

    #[test]
    fn status_follows_the_clock_revocation_and_lock() {
        let now = 1_700_000_000;
        let mut l = link((now + 10) * MICROS);
        assert_eq!(status(&l, now), LinkStatus::Active);
        assert_eq!(status(&l, now + 9), LinkStatus::Active);
        assert_eq!(status(&l, now + 10), LinkStatus::Expired);
        l.locked_at = Some(now * MICROS);
        assert_eq!(status(&l, now), LinkStatus::Locked);
        l.revoked_at = Some(now * MICROS);
        assert_eq!(status(&l, now + 100), LinkStatus::Revoked);
    }

    #[test]
    fn attempts_count_down_to_zero() {
        assert_eq!(remaining_attempts(0), MAX_PASSCODE_ATTEMPTS);
        assert_eq!(remaining_attempts(4), 1);
        assert_eq!(remaining_attempts(5), 0);
        assert_eq!(remaining_attempts(9), 0);
    }

    #[test]
    fn only_patients_with_a_record_make_links() {
        let account = |role: Role, fhir_user: Option<&str>| Account {
            id: "a".into(),
            role,
            email: None,
            phone: None,
            email_verified: true,
            phone_verified: false,
            password_hash: None,
            fhir_user: fhir_user.map(str::to_string),
            status: curanet_storage::AccountStatus::Active,
            totp_secret: None,
            totp_last_step: None,
            recovery_code_hashes: Vec::new(),
            failed_logins: 0,
            locked_until: None,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(
            patient_of(&account(Role::Patient, Some("Patient/p7"))).unwrap(),
            "p7"
        );
        for (role, user) in [
            (Role::Doctor, Some("Practitioner/d1")),
            (Role::Doctor, Some("Patient/p7")),
            (Role::Patient, None),
            (Role::Patient, Some("Practitioner/x")),
            (Role::Admin, None),
        ] {
            assert!(
                matches!(
                    patient_of(&account(role, user)),
                    Err(SharingError::Forbidden(_))
                ),
                "{role:?} {user:?}"
            );
        }
    }

    #[test]
    fn recipient_names_are_trimmed_and_bounded() {
        assert_eq!(recipient_name(Some("  ER  ")).as_deref(), Some("ER"));
        assert_eq!(recipient_name(Some("   ")), None);
        assert_eq!(recipient_name(None), None);
        assert_eq!(
            recipient_name(Some(&"é".repeat(300)))
                .unwrap()
                .chars()
                .count(),
            MAX_RECIPIENT_CHARS
        );
    }

    /// The service on a real SQLite store with a controlled clock.
    struct Fixture {
        dir: std::path::PathBuf,
        store: Arc<dyn curanet_storage::Store>,
        links: ShareLinks,
    }

    const T0: i64 = 1_800_000_000;

    impl Fixture {
        async fn new() -> Fixture {
            let dir = std::env::temp_dir()
                .join(format!("curanet-sharing-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite:{}", dir.join("sharing.db").display());
            let (store, auth) = curanet_storage::open_with_auth(&url, &Default::default())
                .await
                .unwrap();
            for (id, role, user) in [
                ("pat", Role::Patient, "Patient/p1"),
                ("pat2", Role::Patient, "Patient/p2"),
                ("doc", Role::Doctor, "Practitioner/d1"),
            ] {
                auth.create_account(curanet_storage::NewAccount {
                    id: id.into(),
                    role,
                    email: Some(format!("{id}@example.in")),
                    phone: None,
                    email_verified: true,
                    phone_verified: false,
                    password_hash: None,
                    fhir_user: Some(user.into()),
                    status: curanet_storage::AccountStatus::Active,
                    created_at: T0 * MICROS,
                })
                .await
                .unwrap();
            }
            let links = ShareLinks::new(
                auth,
                Pepper::new(b"a test pepper of enough bytes".to_vec()).unwrap(),
            );
            Fixture { dir, store, links }
        }

        async fn create(&self, hours: i64, passcode: Option<&str>) -> CreatedLink {
            let request = LinkRequest {
                scope: strings(&["ALLERGIES", "BLOOD_GROUP"]),
                expires_in_hours: hours,
                passcode: passcode.map(str::to_string),
                label: Some("Trip".into()),
            };
            self.links.create("pat", &request, T0).await.unwrap()
        }

        async fn stop(self) {
            self.store.close().await;
            let _ = std::fs::remove_dir_all(self.dir);
        }
    }

    fn visitor(recipient: &str) -> Visitor {
        Visitor {
            ip: Some("192.0.2.7".into()),
            user_agent: Some("ambulance-tablet/1.0".into()),
            recipient: Some(recipient.into()),
        }
    }

    #[tokio::test]
    async fn links_open_until_they_expire_or_are_revoked() {
        let f = Fixture::new().await;
        let created = f.create(2, None).await;
        assert_eq!(created.expires_at, T0 + 2 * 3600);
        assert_eq!(created.token.len(), 43, "256 bits, base64url");
        let opened = f
            .links
            .open(&created.token, None, &visitor("ER"), T0 + 60)
            .await
            .unwrap();
        assert_eq!(opened.patient_id, "p1");
        assert_eq!(
            opened.sections,
            vec![Section::Allergies, Section::BloodGroup]
        );
        // One second before the end it still opens; at the end it does not.
        assert!(
            f.links
                .open(&created.token, None, &visitor("ER"), T0 + 2 * 3600 - 1)
                .await
                .is_ok()
        );
        assert!(matches!(
            f.links
                .open(&created.token, None, &visitor("ER"), T0 + 2 * 3600)
                .await,
            Err(OpenError::NotFound)
        ));
        assert!(matches!(
            f.links.open("not-a-token", None, &visitor("ER"), T0).await,
            Err(OpenError::NotFound)
        ));
        let listed = f.links.list("pat").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].accesses, 3);
        assert_eq!(listed[0].granted, 2);
        assert_eq!(link_json(&listed[0], T0)["status"], "active");
        assert_eq!(link_json(&listed[0], T0 + 2 * 3600)["status"], "expired");
        let uses = f.links.accesses("pat", &created.id).await.unwrap();
        assert_eq!(uses[0].outcome, outcome::REFUSED_EXPIRED);
        assert_eq!(uses[0].ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(uses[0].recipient.as_deref(), Some("ER"));
        // Only the owner sees or revokes a link; doctors have none.
        assert!(matches!(
            f.links.accesses("pat2", &created.id).await,
            Err(SharingError::NotFound)
        ));
        assert!(matches!(
            f.links.revoke("pat2", &created.id, T0).await,
            Err(SharingError::NotFound)
        ));
        assert!(f.links.list("pat2").await.unwrap().is_empty());
        assert!(matches!(
            f.links.accesses("doc", &created.id).await,
            Err(SharingError::Forbidden(_))
        ));
        let second = f.create(24, None).await;
        f.links.revoke("pat", &second.id, T0 + 1).await.unwrap();
        f.links.revoke("pat", &second.id, T0 + 2).await.unwrap();
        assert!(matches!(
            f.links
                .open(&second.token, None, &visitor("ER"), T0 + 3)
                .await,
            Err(OpenError::NotFound)
        ));
        // A doctor makes no links.
        let request = LinkRequest {
            scope: strings(&["ALLERGIES"]),
            expires_in_hours: 1,
            ..Default::default()
        };
        assert!(matches!(
            f.links.create("doc", &request, T0).await,
            Err(SharingError::Forbidden(_))
        ));
        f.stop().await;
    }

    #[tokio::test]
    async fn five_wrong_passcodes_lock_the_link() {
        let f = Fixture::new().await;
        let created = f.create(24, Some("4821")).await;
        let open = |passcode: Option<&'static str>| {
            let token = created.token.clone();
            let links = &f.links;
            async move { links.open(&token, passcode, &visitor("ER"), T0 + 5).await }
        };
        assert!(matches!(
            open(None).await,
            Err(OpenError::PasscodeRequired { remaining: 5 })
        ));
        assert!(matches!(
            open(Some("0000")).await,
            Err(OpenError::WrongPasscode { remaining: 4 })
        ));
        // The right passcode gives its attempt back.
        assert!(open(Some("4821")).await.is_ok());
        for remaining in (0..4).rev() {
            match open(Some("1111")).await {
                Err(OpenError::WrongPasscode { remaining: r }) => assert_eq!(r, remaining),
                other => panic!("expected a wrong passcode, got {other:?}"),
            }
        }
        // Locked: even the right passcode finds nothing.
        assert!(matches!(open(Some("4821")).await, Err(OpenError::NotFound)));
        let listed = f.links.list("pat").await.unwrap();
        assert_eq!(link_json(&listed[0], T0 + 5)["status"], "locked");
        assert_eq!(link_json(&listed[0], T0 + 5)["remainingAttempts"], 0);
        let outcomes: Vec<String> = f
            .links
            .accesses("pat", &created.id)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.outcome)
            .collect();
        assert_eq!(outcomes[0], outcome::REFUSED_LOCKED);
        assert_eq!(outcomes[1], outcome::LOCKED_NOW);
        f.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_guesses_cannot_pass_the_limit() {
        let f = Arc::new(Fixture::new().await);
        let created = f.create(24, Some("4821")).await;
        let mut tasks = Vec::new();
        for i in 0..12 {
            let (f, token) = (f.clone(), created.token.clone());
            tasks.push(tokio::spawn(async move {
                let guess = format!("{:04}", 9000 + i);
                f.links.open(&token, Some(&guess), &visitor("x"), T0).await
            }));
        }
        let mut wrong = 0;
        for task in tasks {
            if let Err(OpenError::WrongPasscode { .. }) = task.await.unwrap() {
                wrong += 1;
            }
        }
        assert_eq!(
            wrong, MAX_PASSCODE_ATTEMPTS,
            "exactly five guesses were checked"
        );
        assert!(matches!(
            f.links
                .open(&created.token, Some("4821"), &visitor("x"), T0)
                .await,
            Err(OpenError::NotFound)
        ));
        if let Ok(f) = Arc::try_unwrap(f) {
            f.stop().await;
        }
    }
}
