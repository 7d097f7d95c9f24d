//! Server configuration: flags and environment variables with documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct StorageConfig {
    /// Database URL: `postgres://user@host:port/db` for PostgreSQL, `sqlite:PATH` for SQLite.
    /// Unset: SQLite at `<data-dir>/curanet.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory for the embedded SQLite database.
    #[arg(long, env = "CURANET_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// MiB of resource JSON kept in the read cache of current versions (0 turns it off).
    #[arg(long, env = "CURANET_READ_CACHE_MB", default_value_t = 128)]
    pub read_cache_mb: u64,
}

impl StorageConfig {
    /// The database URL to open.
    pub fn resolved_database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("curanet.db").display()))
    }

    /// The options the store is opened with.
    pub fn store_options(&self) -> curanet_storage::StoreOptions {
        curanet_storage::StoreOptions {
            read_cache_bytes: self.read_cache_mb * 1024 * 1024,
        }
    }
}

/// Everything `curanet serve` needs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CURANET_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub storage: StorageConfig,

    /// Public URL of the FHIR base (for Location headers and links). Unset: derived from the
    /// request's Host header as `http://HOST/fhir`.
    #[arg(long, env = "CURANET_BASE_URL")]
    pub base_url: Option<String>,

    /// Largest request body accepted, in bytes (larger: 413).
    #[arg(long, env = "CURANET_MAX_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Log format.
    #[arg(long, env = "CURANET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Require an access token on the FHIR API (all but the CapabilityStatement and the
    /// discovery documents) and enforce its SMART scopes. On by default; `--require-auth=false`
    /// (or `CURANET_REQUIRE_AUTH=false`) serves the API openly for local development only, and
    /// is refused with `--production`.
    #[arg(
        long,
        env = "CURANET_REQUIRE_AUTH",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub require_auth: bool,

    /// Record an AuditEvent for every FHIR interaction and sign-in (see Audit). On by default;
    /// `--audit=false` (or `CURANET_AUDIT=false`) is for measuring the server without it, and
    /// is refused with `--production`. AuditEvents stay append-only either way.
    #[arg(
        long,
        env = "CURANET_AUDIT",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub audit: bool,

    /// Register CuraNet Desktop (`curanet-desktop`: a public client with PKCE and a loopback
    /// redirect, RFC 8252) at start-up when it is not registered yet, so the desktop app signs
    /// in without an admin step. `--desktop-client=false` leaves client registration to admins.
    #[arg(
        long,
        env = "CURANET_DESKTOP_CLIENT",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub desktop_client: bool,

    /// Key that seals the token-signing keys at rest: 32 bytes, standard base64 (generate one
    /// with `openssl rand -base64 32`). Unset: an ephemeral key, so signing keys (and every token
    /// they signed) do not survive a restart. Prefer the environment: a flag shows in `ps`.
    #[arg(
        long = "key-encryption-key",
        env = "CURANET_KEY_ENCRYPTION_KEY",
        hide_env_values = true,
        hide = true
    )]
    pub key_encryption_key: Option<String>,

    #[command(flatten)]
    pub accounts: AccountsConfig,

    #[command(flatten)]
    pub consents: ConsentConfig,
}

/// The consent workflow: break-the-glass policy and the expiry sweeper.
#[derive(Debug, Clone, Args)]
pub struct ConsentConfig {
    /// Account roles that may claim emergency access (`Patient/[id]/$break-glass`), comma
    /// separated (`doctor`, `pharmacist`, `admin`); empty turns break-the-glass off.
    #[arg(
        long,
        env = "CURANET_BREAK_GLASS_ROLES",
        value_delimiter = ',',
        default_value = "doctor"
    )]
    pub break_glass_roles: Vec<String>,

    /// The longest emergency access one claim may ask for, in minutes.
    #[arg(long, env = "CURANET_BREAK_GLASS_MAX_MINUTES", default_value_t = 240)]
    pub break_glass_max_minutes: i64,

    /// How often active Consents past their end are marked inactive, in seconds (0: never;
    /// access ends at the end of the period either way).
    #[arg(long, env = "CURANET_CONSENT_SWEEP_SECONDS", default_value_t = 60)]
    pub consent_sweep_seconds: u64,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            break_glass_roles: vec!["doctor".into()],
            break_glass_max_minutes: 240,
            consent_sweep_seconds: 60,
        }
    }
}

/// Accounts (`/api/auth`), their secrets and their mail.
#[derive(Debug, Clone, Default, Args)]
pub struct AccountsConfig {
    /// Production mode: refuse to start without `CURANET_PASSWORD_PEPPER` (at least 16 bytes)
    /// and `CURANET_KEY_ENCRYPTION_KEY`.
    #[arg(long, env = "CURANET_PRODUCTION", default_value_t = false)]
    pub production: bool,

    /// Server-wide secret mixed into every password hash (at least 16 bytes). Unset outside
    /// production: a built-in development pepper, with a warning. Changing it invalidates every
    /// password. Prefer the environment: a flag shows in `ps`.
    #[arg(
        long = "password-pepper",
        env = "CURANET_PASSWORD_PEPPER",
        hide_env_values = true,
        hide = true
    )]
    pub password_pepper: Option<String>,

    /// SMTP relay for account mail, `smtp://host:port` (plain SMTP: a relay on loopback or a
    /// private network). Unset: mail is only logged (recipient and subject, never the body).
    #[arg(long, env = "CURANET_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// Sender of account mail.
    #[arg(
        long,
        env = "CURANET_MAIL_FROM",
        default_value = "CuraNet <no-reply@curanet.in>"
    )]
    pub mail_from: String,
}

impl Config {
    /// The public root URL (the OAuth issuer) and the FHIR base: from the configured base URL
    /// (`{root}/fhir`), else from the address the server listens on. Tokens name both, so
    /// unlike FHIR links they cannot follow each request's Host header.
    pub fn endpoints(&self, bound: SocketAddr) -> curanet_auth::discovery::Endpoints {
        match self.base_url.as_deref().map(|b| b.trim_end_matches('/')) {
            Some(base) => curanet_auth::discovery::Endpoints {
                issuer: base.strip_suffix("/fhir").unwrap_or(base).to_string(),
                fhir_base: base.to_string(),
            },
            None => curanet_auth::discovery::Endpoints::new(&format!("http://{bound}")),
        }
    }

    /// A configuration for tests and embedding: loopback, port 0, the given database.
    pub fn for_database(database_url: String) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            storage: StorageConfig {
                database_url: Some(database_url),
                data_dir: PathBuf::from("./data"),
                read_cache_mb: 128,
            },
            base_url: None,
            max_body_bytes: 64 * 1024 * 1024,
            log_format: LogFormat::Pretty,
            key_encryption_key: None,
            require_auth: false,
            audit: true,
            // Tests and embedders register the clients they use.
            desktop_client: false,
            accounts: AccountsConfig {
                mail_from: "CuraNet <no-reply@curanet.in>".into(),
                ..AccountsConfig::default()
            },
            consents: ConsentConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_the_base_url_without_fhir_or_the_listen_address() {
        let bound = SocketAddr::from(([127, 0, 0, 1], 8080));
        let mut config = Config::for_database("sqlite:x.db".into());
        let derived = config.endpoints(bound);
        assert_eq!(derived.issuer, "http://127.0.0.1:8080");
        assert_eq!(derived.fhir_base, "http://127.0.0.1:8080/fhir");

        config.base_url = Some("https://fhir.example.in/fhir/".into());
        let configured = config.endpoints(bound);
        assert_eq!(configured.issuer, "https://fhir.example.in");
        assert_eq!(configured.fhir_base, "https://fhir.example.in/fhir");
        assert_eq!(configured.token(), "https://fhir.example.in/oauth/token");

        // A base without /fhir is both the issuer and the FHIR base.
        config.base_url = Some("https://api.example.in/r4".into());
        let other = config.endpoints(bound);
        assert_eq!(other.issuer, "https://api.example.in/r4");
        assert_eq!(other.fhir_base, "https://api.example.in/r4");
    }

    #[test]
    fn break_glass_roles_are_a_comma_list_and_empty_turns_it_off() {
        use clap::Parser;
        use curanet_auth::consent_workflow::BreakGlassPolicy;
        use curanet_storage::Role;

        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            consents: ConsentConfig,
        }
        let policy = |args: &[&str]| {
            let flags =
                Flags::try_parse_from(std::iter::once("curanet").chain(args.iter().copied()))
                    .expect("valid flags");
            BreakGlassPolicy::new(
                &flags.consents.break_glass_roles,
                flags.consents.break_glass_max_minutes,
            )
        };
        assert_eq!(policy(&[]).unwrap().roles, [Role::Doctor]);
        assert_eq!(
            policy(&["--break-glass-roles", "doctor,pharmacist"])
                .unwrap()
                .roles,
            [Role::Doctor, Role::Pharmacist]
        );
        assert!(
            policy(&["--break-glass-roles", ""])
                .unwrap()
                .roles
                .is_empty()
        );
        assert!(policy(&["--break-glass-roles", "nurse"]).is_err());
        assert!(policy(&["--break-glass-max-minutes", "0"]).is_err());
    }
}
