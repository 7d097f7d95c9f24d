//! Wiring of the account service: the password pepper and the production checks, the mailer
//! from the configuration, and the [`Directory`] that creates the FHIR resources of accounts
//! through the engine.
//!
//! Pharmacists work at a pharmacy Organization, found or created by a conditional create on the
//! identifier `https://curanet.in/fhir/sid/pharmacy|<name in lower case, dashes>`; its `type`
//! carries `http://terminology.hl7.org/CodeSystem/organization-type#prov` and CuraNet's own
//! `https://curanet.in/fhir/CodeSystem/organization-type#pharmacy`.

use std::sync::Arc;

use curanet_auth::Authority;
use curanet_auth::accounts::{
    AccountError, Accounts, Directory, DirectoryError, LogMailer, LogSms, Mailer, Person,
    SmtpMailer,
};
use curanet_auth::keys::KeyEncryptionKey;
use curanet_auth::password::{MIN_PEPPER_LEN, Pepper};
use curanet_engine::{Engine, EngineError};
use curanet_storage::{AuthStore, Role};
use serde_json::{Value, json};

use crate::config::{AccountsConfig, Config};
use crate::server::BoxError;

/// The pepper used outside production when none is configured. Public in the source, so it
/// protects nothing: production refuses to start without a real one.
const DEVELOPMENT_PEPPER: &str = "curanet-development-pepper-do-not-use-in-production";
/// Identifier system of pharmacies created for pharmacists.
pub const PHARMACY_SYSTEM: &str = "https://curanet.in/fhir/sid/pharmacy";
/// CuraNet's organization types.
pub const ORGANIZATION_TYPE_SYSTEM: &str = "https://curanet.in/fhir/CodeSystem/organization-type";

/// In production, refuses a configuration without a pepper of at least 16 bytes or without a
/// key-encryption key.
pub fn check_production(config: &Config) -> Result<(), BoxError> {
    if !config.accounts.production {
        return Ok(());
    }
    match config.accounts.password_pepper.as_deref() {
        Some(p) if p.len() >= MIN_PEPPER_LEN => {}
        _ => {
            return Err(format!(
                "production mode: set CURANET_PASSWORD_PEPPER to a secret of at least \
                 {MIN_PEPPER_LEN} bytes (e.g. `openssl rand -base64 32`)"
            )
            .into());
        }
    }
    if !config.require_auth {
        return Err(
            "production mode: the FHIR API cannot be served without access tokens \
                    (--require-auth=false)"
                .into(),
        );
    }
    if !config.audit {
        return Err("production mode: the audit trail cannot be turned off (--audit=false)".into());
    }
    if config.key_encryption_key.is_none() {
        return Err(
            "production mode: set CURANET_KEY_ENCRYPTION_KEY (32 bytes in base64, \
                    e.g. `openssl rand -base64 32`)"
                .into(),
        );
    }
    Ok(())
}

/// The configured pepper; outside production, the development pepper with a loud warning.
pub fn pepper(config: &AccountsConfig) -> Result<Pepper, BoxError> {
    match config.password_pepper.as_deref() {
        Some(secret) => Pepper::new(secret.as_bytes().to_vec())
            .map_err(|e| format!("CURANET_PASSWORD_PEPPER: {e}").into()),
        None if config.production => {
            Err("production mode: CURANET_PASSWORD_PEPPER is required".into())
        }
        None => {
            tracing::warn!(
                "CURANET_PASSWORD_PEPPER is not set: using the built-in DEVELOPMENT pepper. \
                 Password hashes made now are only as strong as if unpeppered, and stop \
                 verifying once a real pepper is set. Never run like this in production \
                 (--production refuses to)."
            );
            Ok(Pepper::new(DEVELOPMENT_PEPPER.as_bytes().to_vec())?)
        }
    }
}

/// The mailer: SMTP when `CURANET_SMTP_URL` is set, else the log.
pub fn mailer(config: &AccountsConfig) -> Result<Arc<dyn Mailer>, BoxError> {
    match config.smtp_url.as_deref() {
        Some(url) => {
            let mailer = SmtpMailer::new(url, &config.mail_from)
                .map_err(|e| format!("CURANET_SMTP_URL: {e}"))?;
            tracing::info!(relay = %url, "account mail goes to the SMTP relay");
            Ok(Arc::new(mailer))
        }
        None => {
            tracing::info!("CURANET_SMTP_URL is not set: account mail is only logged");
            Ok(Arc::new(LogMailer))
        }
    }
}

/// The account service of a server.
pub async fn start(
    config: &Config,
    pepper: Pepper,
    store: Arc<dyn AuthStore>,
    authority: Arc<Authority>,
    kek: KeyEncryptionKey,
    engine: Engine,
    now: i64,
) -> Result<Arc<Accounts>, BoxError> {
    let directory = Arc::new(EngineDirectory {
        engine,
        base: authority.endpoints().fhir_base.clone(),
    });
    let accounts = Accounts::start(
        store,
        authority,
        pepper,
        kek,
        directory,
        mailer(&config.accounts)?,
        Arc::new(LogSms),
        now,
    )
    .await
    .map_err(|e: AccountError| -> BoxError { e.to_string().into() })?;
    Ok(Arc::new(accounts))
}

/// `curanet user ...`.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Create an account (with its FHIR resource); the password is read from
    /// `CURANET_NEW_PASSWORD` or the first line of standard input, never from a flag.
    Create(UserCreateArgs),
}

/// `--role` of `curanet user create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    Admin,
    Doctor,
    Pharmacist,
    Patient,
}

/// What `curanet user create` creates.
#[derive(Debug, clap::Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    storage: crate::config::StorageConfig,
    #[command(flatten)]
    accounts: AccountsConfig,
    /// What the account may do.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// The email address (taken as verified).
    #[arg(long)]
    email: String,
    /// The phone number (taken as verified).
    #[arg(long)]
    phone: Option<String>,
    /// The person's name, e.g. "Asha Rao" (the last word is the family name). Default: the
    /// email's local part.
    #[arg(long)]
    name: Option<String>,
    /// For a pharmacist: the pharmacy's name.
    #[arg(long)]
    pharmacy: Option<String>,
}

/// Runs `curanet user ...`.
pub async fn user_command(command: UserCommand) -> Result<(), BoxError> {
    let UserCommand::Create(args) = command;
    let password = new_password()?;
    let pepper = pepper(&args.accounts)?;
    let defs = tokio::task::spawn_blocking(curanet_fhir::Definitions::shared).await?;
    let url = args.storage.resolved_database_url();
    let (store, auth) =
        curanet_storage::open_with_auth(&url, &args.storage.store_options()).await?;
    let directory = EngineDirectory {
        engine: Engine::new(store.clone(), defs),
        base: "http://localhost/fhir".into(),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.email.split('@').next().unwrap_or_default().to_string());
    let mut words: Vec<String> = name.split_whitespace().map(str::to_string).collect();
    let family = if words.len() > 1 { words.pop() } else { None };
    let role = match args.role {
        RoleArg::Admin => Role::Admin,
        RoleArg::Doctor => Role::Doctor,
        RoleArg::Pharmacist => Role::Pharmacist,
        RoleArg::Patient => Role::Patient,
    };
    let staff = curanet_auth::accounts::NewStaff {
        role,
        email: Some(args.email.clone()),
        phone: args.phone.clone(),
        password: Some(password),
        person: Person {
            given: words,
            family,
            ..Person::default()
        },
        pharmacy: args.pharmacy.clone(),
    };
    let now = crate::server::unix_now();
    let result =
        curanet_auth::accounts::provision(auth.as_ref(), &directory, &pepper, staff, now).await;
    store.close().await;
    let account = result.map_err(|e| -> BoxError { e.to_string().into() })?;
    println!("{}", account.id);
    eprintln!(
        "created {} account {} linked to {}",
        account.role,
        account.id,
        account.fhir_user.as_deref().unwrap_or("-")
    );
    if role == Role::Admin {
        eprintln!(
            "two-factor authentication must be enrolled at the first sign-in: until then the \
             admin's token only allows POST /api/auth/2fa/enroll and /api/auth/2fa/confirm"
        );
    }
    Ok(())
}

/// The new password: `CURANET_NEW_PASSWORD`, else the first line of standard input.
fn new_password() -> Result<String, BoxError> {
    if let Ok(p) = std::env::var("CURANET_NEW_PASSWORD")
        && !p.is_empty()
    {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("no password: set CURANET_NEW_PASSWORD or pipe it on standard input".into());
    }
    Ok(password)
}

/// Creates the FHIR resources of accounts through the engine (validated, indexed, with Health
/// IDs assigned to Patients and Practitioners).
pub struct EngineDirectory {
    pub engine: Engine,
    /// The FHIR base (for the engine's links).
    pub base: String,
}

impl EngineDirectory {
    async fn create(
        &self,
        resource: &Value,
        if_none_exist: Option<&str>,
    ) -> Result<String, DirectoryError> {
        let rtype = resource["resourceType"].as_str().unwrap_or_default();
        let body = resource.to_string();
        match self
            .engine
            .create(rtype, body.as_bytes(), if_none_exist, &self.base)
            .await
        {
            Ok(written) => Ok(format!("{rtype}/{}", written.version.id)),
            Err(EngineError::Invalid(issues)) => Err(DirectoryError::Rejected(
                issues
                    .iter()
                    .map(|i| match &i.expression {
                        Some(at) => format!("{} ({at})", i.diagnostics),
                        None => i.diagnostics.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
            Err(EngineError::BadRequest(m)) => Err(DirectoryError::Rejected(m)),
            Err(e) => Err(DirectoryError::Failed(e.to_string())),
        }
    }
}

#[async_trait::async_trait]
impl Directory for EngineDirectory {
    async fn create_patient(&self, person: &Person) -> Result<String, DirectoryError> {
        let mut patient = person_resource("Patient", person);
        patient["active"] = json!(true);
        self.create(&patient, None).await
    }

    async fn create_practitioner(
        &self,
        person: &Person,
        role: Role,
        pharmacy: Option<&str>,
    ) -> Result<String, DirectoryError> {
        let mut practitioner = person_resource("Practitioner", person);
        practitioner["active"] = json!(true);
        let practitioner = self.create(&practitioner, None).await?;
        let organization = match pharmacy {
            Some(name) => {
                let slug = slug(name);
                let org = json!({
                    "resourceType": "Organization",
                    "active": true,
                    "identifier": [{"system": PHARMACY_SYSTEM, "value": slug}],
                    "type": [{
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov", "display": "Healthcare Provider"},
                            {"system": ORGANIZATION_TYPE_SYSTEM, "code": "pharmacy", "display": "Pharmacy"},
                        ],
                        "text": "Pharmacy",
                    }],
                    "name": name,
                });
                let query = format!(
                    "identifier={}",
                    form_urlencoded::byte_serialize(format!("{PHARMACY_SYSTEM}|{slug}").as_bytes())
                        .collect::<String>()
                );
                Some(self.create(&org, Some(&query)).await?)
            }
            None => None,
        };
        let code = match role {
            Role::Doctor => ("doctor", "Doctor"),
            Role::Pharmacist => ("pharmacist", "Pharmacist"),
            Role::Admin => ("ict", "ICT professional"),
            Role::Patient => {
                return Err(DirectoryError::Failed(
                    "a patient is not a practitioner".into(),
                ));
            }
        };
        let mut practitioner_role = json!({
            "resourceType": "PractitionerRole",
            "active": true,
            "practitioner": {"reference": practitioner},
            "code": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/practitioner-role",
                "code": code.0,
                "display": code.1,
            }]}],
        });
        if let Some(org) = organization {
            practitioner_role["organization"] = json!({"reference": org});
        }
        self.create(&practitioner_role, None).await?;
        Ok(practitioner)
    }
}

/// A Patient or Practitioner with the person's name, telecom, gender and birth date.
fn person_resource(resource_type: &str, person: &Person) -> Value {
    let mut name = json!({"use": "official"});
    if let Some(family) = person
        .family
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        name["family"] = json!(family);
    }
    let given: Vec<&str> = person
        .given
        .iter()
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
        .collect();
    if !given.is_empty() {
        name["given"] = json!(given);
    }
    let mut resource = json!({"resourceType": resource_type, "name": [name]});
    let mut telecom = Vec::new();
    if let Some(email) = &person.email {
        telecom.push(json!({"system": "email", "value": email, "use": "home"}));
    }
    if let Some(phone) = &person.phone {
        telecom.push(json!({"system": "phone", "value": phone, "use": "mobile"}));
    }
    if !telecom.is_empty() {
        resource["telecom"] = Value::Array(telecom);
    }
    if let Some(gender) = &person.gender {
        resource["gender"] = json!(gender);
    }
    if let Some(birth_date) = &person.birth_date {
        resource["birthDate"] = json!(birth_date);
    }
    resource
}

/// `Apollo Pharmacy, MG Road` → `apollo-pharmacy-mg-road`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().to_lowercase().chars() {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pharmacy_slugs() {
        assert_eq!(slug("Apollo Pharmacy, MG Road"), "apollo-pharmacy-mg-road");
        assert_eq!(slug("  --X--  "), "x");
    }

    #[test]
    fn production_needs_a_pepper_and_a_kek() {
        let mut config = Config::for_database("sqlite:x.db".into());
        assert!(check_production(&config).is_ok());
        config.require_auth = true;
        config.accounts.production = true;
        assert!(check_production(&config).is_err());
        config.accounts.password_pepper = Some("short".into());
        config.key_encryption_key = Some("k".into());
        assert!(check_production(&config).is_err());
        config.accounts.password_pepper = Some("a-pepper-of-enough-bytes".into());
        assert!(check_production(&config).is_ok());
        config.key_encryption_key = None;
        assert!(check_production(&config).is_err());
        // Outside production a missing pepper falls back to the development one.
        config.accounts.production = false;
        config.accounts.password_pepper = None;
        assert!(pepper(&config.accounts).is_ok());
        config.accounts.production = true;
        assert!(pepper(&config.accounts).is_err());
    }
}
