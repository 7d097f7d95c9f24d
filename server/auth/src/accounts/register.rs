//! Registration (patients self-register; doctors and pharmacists self-register as pending, or
//! are created by an admin), verification of email and phone, and approval by an admin.

use std::fmt;

use curanet_storage::{
    Account, AccountStatus, AuthStore, Channel, CodePurpose, FailureScope, LoginFailure,
    NewAccount, Role, StoreError,
};
use serde_json::json;

use super::mail::Mail;
use super::secrets::check_policy;
use super::{
    AccountError, Accounts, Caller, Directory, MICROS, Person, normalize_email, normalize_phone,
};
use crate::password::{Pepper, hash_password};

/// Wrong SMS codes allowed per account within a quarter of an hour.
const PHONE_CODE_ATTEMPTS: u64 = 5;

/// A self-registration.
#[derive(Clone, Default)]
pub struct Registration {
    /// `patient`, or `doctor` / `pharmacist` (pending until an admin approves).
    pub role: Option<Role>,
    /// The email address.
    pub email: Option<String>,
    /// The phone number.
    pub phone: Option<String>,
    /// The password.
    pub password: String,
    /// Name, birth date, gender.
    pub person: Person,
    /// For pharmacists: the pharmacy's name.
    pub pharmacy: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("role", &self.role)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .finish_non_exhaustive()
    }
}

/// An account created by an admin (or `curanet user create`): active at once, contacts taken
/// as proven.
#[derive(Clone)]
pub struct NewStaff {
    /// `doctor`, `pharmacist` or `admin` (or `patient`).
    pub role: Role,
    /// The email address (required: password links go there).
    pub email: Option<String>,
    /// The phone number.
    pub phone: Option<String>,
    /// The initial password; `None`: a link to set one is mailed.
    pub password: Option<String>,
    /// Name and other demographics.
    pub person: Person,
    /// For pharmacists: the pharmacy's name.
    pub pharmacy: Option<String>,
}

impl fmt::Debug for NewStaff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewStaff")
            .field("role", &self.role)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Registers an account and sends the verification codes. Patients can sign in once a
    /// contact is verified; doctors and pharmacists also wait for an admin.
    pub async fn register(
        &self,
        registration: Registration,
        now: i64,
    ) -> Result<Account, AccountError> {
        let role = registration.role.unwrap_or(Role::Patient);
        let status = match role {
            Role::Patient => AccountStatus::Active,
            Role::Doctor | Role::Pharmacist => AccountStatus::PendingApproval,
            Role::Admin => {
                return Err(AccountError::Forbidden(
                    "admins are created by an admin or with `curanet user create`".into(),
                ));
            }
        };
        let (email, phone) =
            contacts(registration.email.as_deref(), registration.phone.as_deref())?;
        if email.is_none() && phone.is_none() {
            return Err(AccountError::InvalidInput(
                "an email address or a phone number is required".into(),
            ));
        }
        check_policy(&registration.password, email.as_deref())?;
        let mut person = registration.person;
        person.email.clone_from(&email);
        person.phone.clone_from(&phone);
        let pharmacy = check_person(&person, role, registration.pharmacy.as_deref())?;
        let hash = self.hash_password(&registration.password).await?;
        let account = provision_account(
            self.store.as_ref(),
            self.directory.as_ref(),
            Provision {
                role,
                email,
                phone,
                verified: false,
                password_hash: Some(hash),
                person,
                pharmacy,
                status,
            },
            now,
        )
        .await?;
        self.event(
            "registered",
            Some(&account.id),
            registration.ip.as_deref(),
            json!({"role": role.as_str(), "status": status.as_str()}),
            now,
        )
        .await;
        self.send_verifications(&account, now).await?;
        Ok(account)
    }

    /// Sends a fresh verification code to each unproven contact of the account.
    pub(crate) async fn send_verifications(
        &self,
        account: &Account,
        now: i64,
    ) -> Result<(), AccountError> {
        if let Some(email) = account.email.as_ref().filter(|_| !account.email_verified) {
            let token = self
                .issue_code(&account.id, CodePurpose::Email, now)
                .await?;
            let issuer = &self.authority.endpoints().issuer;
            let body = format!(
                "Welcome to CuraNet.\n\nTo confirm your email address, open\n\
                 {issuer}/api/auth/verify?token={token}\nor enter this code in the app:\n\n\
                 Code: {token}\n\nThe code works once, for {} minutes. If you did not create an \
                 account, ignore this message.\n",
                super::policy::EMAIL_CODE_SECONDS / 60
            );
            self.send_mail(Mail {
                to: email.clone(),
                subject: "Confirm your email address for CuraNet".into(),
                body,
            })
            .await;
        }
        if let Some(phone) = account.phone.as_ref().filter(|_| !account.phone_verified) {
            let code = self
                .issue_code(&account.id, CodePurpose::Phone, now)
                .await?;
            let text = format!(
                "{code} is your CuraNet verification code. It expires in {} minutes.",
                super::policy::SMS_CODE_SECONDS / 60
            );
            if let Err(e) = self.sms.send(phone, &text).await {
                tracing::error!(error = %e, "could not send a verification SMS");
            }
        }
        Ok(())
    }

    /// Sends a new verification code to an unproven contact. Always succeeds, so that it does
    /// not tell whether the contact has an account.
    pub async fn resend_verification(
        &self,
        identifier: &str,
        now: i64,
    ) -> Result<(), AccountError> {
        let account = match super::Identifier::parse(identifier) {
            Some(super::Identifier::Email(e)) => self.store.get_account_by_email(&e).await?,
            Some(super::Identifier::Phone(p)) => self.store.get_account_by_phone(&p).await?,
            None => None,
        };
        if let Some(account) = account
            && self.may_send(&account.id, now).await?
        {
            self.send_verifications(&account, now).await?;
        }
        Ok(())
    }

    /// Whether another message on request (a resend, a reset link) may go to the account:
    /// at most [`policy::MESSAGES_PER_HOUR`] an hour, so the endpoints cannot flood an inbox.
    /// Counts this one when it may.
    pub(crate) async fn may_send(&self, account_id: &str, now: i64) -> Result<bool, AccountError> {
        let subject = format!("message:{account_id}");
        let sent = self
            .store
            .count_login_failures(
                FailureScope::Subject(subject.clone()),
                (now - 3600) * MICROS + 1,
            )
            .await?;
        if sent >= super::policy::MESSAGES_PER_HOUR {
            tracing::info!(account = %account_id, "message not sent: hourly limit reached");
            return Ok(false);
        }
        // The failure log doubles as the send log (no IP: it must not count against sign-ins).
        self.store
            .record_login_failure(LoginFailure {
                subject: Some(subject),
                ip: None,
                at: now * MICROS,
            })
            .await?;
        Ok(true)
    }

    /// Proves an email address with the token from the mail.
    pub async fn verify_email(
        &self,
        token: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        let account_id = self.take_token(CodePurpose::Email, token, now).await?;
        self.store
            .set_verified(&account_id, Channel::Email, now * MICROS)
            .await?;
        self.event("email_verified", Some(&account_id), ip, json!({}), now)
            .await;
        Ok(())
    }

    /// Proves a phone number with the six-digit code from the SMS (a few attempts per quarter
    /// hour).
    pub async fn verify_phone(
        &self,
        phone: &str,
        code: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        let phone = normalize_phone(phone).ok_or(AccountError::InvalidCode)?;
        let account = self
            .store
            .get_account_by_phone(&phone)
            .await?
            .ok_or(AccountError::InvalidCode)?;
        let subject = format!("phone-code:{}", account.id);
        let since = (now - 15 * 60) * MICROS;
        if self
            .store
            .count_login_failures(FailureScope::Subject(subject.clone()), since)
            .await?
            >= PHONE_CODE_ATTEMPTS
        {
            return Err(AccountError::SlowDown {
                retry_after: 15 * 60,
            });
        }
        if let Err(e) = self
            .take_short_code(&account.id, CodePurpose::Phone, code, now)
            .await
        {
            self.store
                .record_login_failure(LoginFailure {
                    subject: Some(subject),
                    ip: ip.map(str::to_string),
                    at: now * MICROS,
                })
                .await?;
            return Err(e);
        }
        self.store
            .set_verified(&account.id, Channel::Phone, now * MICROS)
            .await?;
        self.event("phone_verified", Some(&account.id), ip, json!({}), now)
            .await;
        Ok(())
    }

    /// An admin creates an account (doctor, pharmacist, admin, or patient): active, contacts
    /// taken as proven; without a password, a link to set one is mailed.
    pub async fn create_by_admin(
        &self,
        caller: &Caller,
        staff: NewStaff,
        ip: Option<&str>,
        now: i64,
    ) -> Result<Account, AccountError> {
        self.require_admin(caller).await?;
        let needs_link = staff.password.is_none();
        let account = provision(
            self.store.as_ref(),
            self.directory.as_ref(),
            &self.pepper,
            staff,
            now,
        )
        .await?;
        self.event(
            "account_created",
            Some(&account.id),
            ip,
            json!({"role": account.role.as_str(), "by": caller.account_id}),
            now,
        )
        .await;
        if needs_link && let Some(email) = &account.email {
            let token = self
                .issue_code(&account.id, CodePurpose::PasswordReset, now)
                .await?;
            let issuer = &self.authority.endpoints().issuer;
            self.send_mail(Mail {
                to: email.clone(),
                subject: "Set your CuraNet password".into(),
                body: format!(
                    "An administrator created a CuraNet account for you ({issuer}).\n\n\
                     To set your password, enter this code in the CuraNet app (\"Forgot \
                     password\", then \"I have a code\"):\n\nCode: {token}\n\n\
                     It works once, for {} minutes.\n",
                    super::policy::RESET_TOKEN_SECONDS / 60
                ),
            })
            .await;
        }
        Ok(account)
    }

    /// An admin approves a pending doctor or pharmacist.
    pub async fn approve(
        &self,
        caller: &Caller,
        account_id: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<Account, AccountError> {
        self.require_admin(caller).await?;
        let account = self
            .store
            .get_account(account_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        if account.status != AccountStatus::PendingApproval {
            return Err(AccountError::Conflict(format!(
                "the account is {}, not pending approval",
                account.status
            )));
        }
        self.store
            .set_status(account_id, AccountStatus::Active, now * MICROS)
            .await?;
        self.event(
            "approved",
            Some(account_id),
            ip,
            json!({"by": caller.account_id}),
            now,
        )
        .await;
        self.account(account_id).await
    }

    /// Refuses callers that are not admins with full (2FA-backed) tokens.
    pub(crate) async fn require_admin(&self, caller: &Caller) -> Result<(), AccountError> {
        require_full(caller)?;
        let account = self.account(&caller.account_id).await?;
        if account.role != Role::Admin {
            return Err(AccountError::Forbidden("only admins may do this".into()));
        }
        Ok(())
    }

    /// Sends mail; a failure is logged (the person can ask again), never shown.
    pub(crate) async fn send_mail(&self, mail: Mail) {
        if let Err(e) = self.mailer.send(mail).await {
            tracing::error!(error = %e, "could not send mail");
        }
    }
}

/// Refuses the token of an admin who still has to enroll two-factor authentication.
pub(crate) fn require_full(caller: &Caller) -> Result<(), AccountError> {
    if caller.enrollment_only {
        return Err(AccountError::Forbidden(
            "enroll two-factor authentication first (POST /api/auth/2fa/enroll)".into(),
        ));
    }
    Ok(())
}

/// Creates an account made by an admin or the command line, with its FHIR resource: checks the
/// contacts, the demographics and the password policy, hashes the password.
pub async fn provision(
    store: &dyn AuthStore,
    directory: &dyn Directory,
    pepper: &Pepper,
    staff: NewStaff,
    now: i64,
) -> Result<Account, AccountError> {
    let (email, phone) = contacts(staff.email.as_deref(), staff.phone.as_deref())?;
    if email.is_none() {
        return Err(AccountError::InvalidInput(
            "an email address is required".into(),
        ));
    }
    let password_hash = match &staff.password {
        Some(password) => {
            check_policy(password, email.as_deref())?;
            let (password, pepper) = (password.clone(), pepper.clone());
            Some(
                tokio::task::spawn_blocking(move || hash_password(&password, &pepper))
                    .await
                    .map_err(|e| crate::AuthError::PasswordHashing(e.to_string()))??,
            )
        }
        None => None,
    };
    let mut person = staff.person;
    person.email.clone_from(&email);
    person.phone.clone_from(&phone);
    let pharmacy = check_person(&person, staff.role, staff.pharmacy.as_deref())?;
    provision_account(
        store,
        directory,
        Provision {
            role: staff.role,
            email,
            phone,
            verified: true,
            password_hash,
            person,
            pharmacy,
            status: AccountStatus::Active,
        },
        now,
    )
    .await
}

/// What [`provision_account`] stores.
struct Provision {
    role: Role,
    email: Option<String>,
    phone: Option<String>,
    verified: bool,
    password_hash: Option<String>,
    person: Person,
    pharmacy: Option<String>,
    status: AccountStatus,
}

/// Refuses taken contacts, creates the FHIR resource, then the account linked to it.
async fn provision_account(
    store: &dyn AuthStore,
    directory: &dyn Directory,
    p: Provision,
    now: i64,
) -> Result<Account, AccountError> {
    if let Some(email) = &p.email
        && store.get_account_by_email(email).await?.is_some()
    {
        return Err(AccountError::Duplicate("email"));
    }
    if let Some(phone) = &p.phone
        && store.get_account_by_phone(phone).await?.is_some()
    {
        return Err(AccountError::Duplicate("phone"));
    }
    let fhir_user = match p.role {
        Role::Patient => directory.create_patient(&p.person).await?,
        role => {
            directory
                .create_practitioner(&p.person, role, p.pharmacy.as_deref())
                .await?
        }
    };
    let id = uuid::Uuid::new_v4().to_string();
    let created = store
        .create_account(NewAccount {
            id: id.clone(),
            role: p.role,
            email: p.email.clone(),
            phone: p.phone.clone(),
            email_verified: p.verified && p.email.is_some(),
            phone_verified: p.verified && p.phone.is_some(),
            password_hash: p.password_hash,
            fhir_user: Some(fhir_user.clone()),
            status: p.status,
            created_at: now * MICROS,
        })
        .await;
    match created {
        Ok(()) => {}
        Err(StoreError::Duplicate { what }) => {
            tracing::warn!(%fhir_user, "an account was registered concurrently; its resource stays unlinked");
            return Err(AccountError::Duplicate(if what.contains("phone") {
                "phone"
            } else {
                "email"
            }));
        }
        Err(e) => return Err(e.into()),
    }
    store
        .get_account(&id)
        .await?
        .ok_or_else(|| AccountError::Directory("the new account vanished".into()))
}

/// The normalised contacts; a malformed one is refused.
fn contacts(
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<(Option<String>, Option<String>), AccountError> {
    let email =
        match email.map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) => Some(normalize_email(e).ok_or_else(|| {
                AccountError::InvalidInput("the email address is not valid".into())
            })?),
            None => None,
        };
    let phone = match phone.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => Some(normalize_phone(p).ok_or_else(|| {
            AccountError::InvalidInput(
                "the phone number is not valid (use +<country><number>)".into(),
            )
        })?),
        None => None,
    };
    Ok((email, phone))
}

/// Checks the demographics; the pharmacy name for a pharmacist.
fn check_person(
    person: &Person,
    role: Role,
    pharmacy: Option<&str>,
) -> Result<Option<String>, AccountError> {
    let named = person.given.iter().any(|g| !g.trim().is_empty())
        || person
            .family
            .as_deref()
            .is_some_and(|f| !f.trim().is_empty());
    if !named {
        return Err(AccountError::InvalidInput("a name is required".into()));
    }
    let too_long = person
        .given
        .iter()
        .chain(person.family.iter())
        .any(|n| n.chars().count() > 100);
    if too_long || person.given.len() > 5 {
        return Err(AccountError::InvalidInput("the name is too long".into()));
    }
    if let Some(date) = &person.birth_date
        && !is_fhir_date(date)
    {
        return Err(AccountError::InvalidInput(
            "birthDate must be YYYY, YYYY-MM or YYYY-MM-DD".into(),
        ));
    }
    if let Some(gender) = &person.gender
        && !matches!(gender.as_str(), "male" | "female" | "other" | "unknown")
    {
        return Err(AccountError::InvalidInput(
            "gender must be male, female, other or unknown".into(),
        ));
    }
    let pharmacy = pharmacy.map(str::trim).filter(|p| !p.is_empty());
    match (role, pharmacy) {
        (Role::Pharmacist, None) => Err(AccountError::InvalidInput(
            "a pharmacist names their pharmacy ('pharmacy')".into(),
        )),
        (Role::Pharmacist, Some(p)) if p.chars().count() > 200 => Err(AccountError::InvalidInput(
            "the pharmacy name is too long".into(),
        )),
        (Role::Pharmacist, Some(p)) => Ok(Some(p.to_string())),
        _ => Ok(None),
    }
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` with plausible ranges.
fn is_fhir_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let num = |s: &str| s.parse::<u32>().unwrap_or(0);
    match parts.as_slice() {
        [y] => digits(y, 4),
        [y, m] => digits(y, 4) && digits(m, 2) && (1..=12).contains(&num(m)),
        [y, m, d] => {
            digits(y, 4)
                && digits(m, 2)
                && digits(d, 2)
                && (1..=12).contains(&num(m))
                && (1..=31).contains(&num(d))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn birth_dates() {
        for ok in ["1990", "1990-04", "1990-04-30"] {
            assert!(is_fhir_date(ok), "{ok}");
        }
        for bad in ["90", "1990-13", "1990-04-32", "1990/04/30", "", "1990-4-1"] {
            assert!(!is_fhir_date(bad), "{bad}");
        }
    }

    #[test]
    fn people_need_a_name_and_pharmacists_a_pharmacy() {
        let mut p = Person::default();
        assert!(check_person(&p, Role::Patient, None).is_err());
        p.family = Some("Rao".into());
        assert_eq!(check_person(&p, Role::Patient, None).unwrap(), None);
        assert!(check_person(&p, Role::Pharmacist, None).is_err());
        assert_eq!(
            check_person(&p, Role::Pharmacist, Some(" Apollo ")).unwrap(),
            Some("Apollo".into())
        );
        p.gender = Some("robot".into());
        assert!(check_person(&p, Role::Patient, None).is_err());
    }
}
