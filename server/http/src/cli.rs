//! The command line: `curanet serve`, `curanet migrate`, `curanet reindex`, `curanet client add`,
//! `curanet audit verify`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat, StorageConfig};

/// CuraNet: a FHIR R4 server for India's digital-health ecosystem.
#[derive(Debug, Parser)]
#[command(name = "curanet", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the FHIR server (migrations are applied at start-up).
    Serve(Config),
    /// Apply database migrations and exit.
    Migrate(StorageConfig),
    /// Rebuild search index rows of stored resources (resumable; the server may keep running).
    Reindex(ReindexArgs),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage accounts.
    #[command(subcommand)]
    User(crate::accounts::UserCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `curanet audit ...`.
#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the audit trail's hash chain: prints OK with the number of records, or names the
    /// first broken link (exit code 1).
    Verify(StorageConfig),
}

/// `curanet client ...`.
#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register an OAuth client: a SMART app (public or confidential) or a backend service.
    Add(ClientAddArgs),
}

/// What `curanet client add` registers.
#[derive(Debug, clap::Args)]
struct ClientAddArgs {
    #[command(flatten)]
    storage: StorageConfig,
    /// The client id (for asymmetric clients, the `iss` and `sub` of their assertions).
    #[arg(long)]
    client_id: String,
    /// A human-readable name (shown on the consent page).
    #[arg(long)]
    name: String,
    /// How the client authenticates: `backend` (client_credentials with private_key_jwt),
    /// `public` (PKCE only), `confidential-symmetric` (a secret, printed once),
    /// `confidential-asymmetric` (private_key_jwt).
    #[arg(long, value_enum, default_value_t = ClientKindArg::Backend)]
    kind: ClientKindArg,
    /// A file with the client's public JSON Web Key Set (`{"keys": [...]}`, RS384 or ES384 keys).
    #[arg(long)]
    jwks_file: Option<std::path::PathBuf>,
    /// The URL the client's JWKS is fetched from (instead of --jwks-file).
    #[arg(long)]
    jwks_url: Option<String>,
    /// A redirect URI (repeat for several); required for apps acting for a user.
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// A browser origin allowed by CORS (repeat for several; default: the redirect URIs' origins).
    #[arg(long = "origin")]
    origins: Vec<String>,
    /// The scopes the client may be granted, space-separated (`system/` for backend clients).
    #[arg(long)]
    scope: String,
}

/// `--kind` of `curanet client add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClientKindArg {
    Backend,
    Public,
    ConfidentialSymmetric,
    ConfidentialAsymmetric,
}

/// What `curanet reindex` rebuilds.
#[derive(Debug, clap::Args)]
struct ReindexArgs {
    #[command(flatten)]
    storage: StorageConfig,
    /// Only resources of this type (e.g. Observation).
    #[arg(long = "type")]
    resource_type: Option<String>,
    /// Only the rows of this search parameter (e.g. code).
    #[arg(long)]
    param: Option<String>,
}

/// Entry point of the `curanet` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(c) => c.log_format,
        Command::Migrate(_)
        | Command::Reindex(_)
        | Command::Client(_)
        | Command::User(_)
        | Command::Audit(_) => LogFormat::Pretty,
    };
    init_logging(format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(config) => crate::server::run(config).await,
            Command::Reindex(args) => reindex(args).await,
            Command::Client(ClientCommand::Add(args)) => add_client(args).await,
            Command::User(command) => crate::accounts::user_command(command).await,
            Command::Audit(AuditCommand::Verify(storage)) => audit_verify(storage).await,
            Command::Migrate(storage) => {
                let url = storage.resolved_database_url();
                let store = curanet_storage::open(&url, &storage.store_options()).await?;
                store.close().await;
                tracing::info!(database = %redact(&url), "migrations applied");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "curanet stopped with an error");
            ExitCode::FAILURE
        }
    }
}

/// `curanet audit verify`.
async fn audit_verify(storage: StorageConfig) -> Result<(), crate::server::BoxError> {
    let url = storage.resolved_database_url();
    let (store, _, chain) =
        curanet_storage::open_with_audit(&url, &storage.store_options()).await?;
    let verification = crate::audit::verify(store.as_ref(), chain.as_ref()).await;
    store.close().await;
    match verification? {
        v @ crate::audit::Verification::Intact { .. } => {
            println!("{v}");
            Ok(())
        }
        v => {
            println!("{v}");
            Err("the audit chain is broken".into())
        }
    }
}

async fn reindex(args: ReindexArgs) -> Result<(), crate::server::BoxError> {
    let defs = tokio::task::spawn_blocking(curanet_fhir::Definitions::shared).await?;
    let url = args.storage.resolved_database_url();
    let store = curanet_storage::open(&url, &args.storage.store_options()).await?;
    let engine = curanet_engine::Engine::new(store.clone(), defs.clone());
    let types: Vec<String> = match &args.resource_type {
        Some(t) => vec![t.clone()],
        None => defs.resource_types().to_vec(),
    };
    let mut total = 0;
    for t in &types {
        let pairs = [("_summary".to_string(), "count".to_string())];
        total += engine
            .search(t, &pairs, "", false)
            .await?
            .page
            .total
            .unwrap_or(0);
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} resources ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let scope = curanet_engine::ReindexScope {
        resource_type: args.resource_type,
        param: args.param,
    };
    let done = engine.reindex(&scope, |n| bar.set_position(n)).await?;
    bar.finish();
    store.close().await;
    tracing::info!(resources = done, "reindex complete");
    Ok(())
}

async fn add_client(args: ClientAddArgs) -> Result<(), crate::server::BoxError> {
    let registered = client_registration(&args, crate::server::unix_now())?;
    let url = args.storage.resolved_database_url();
    let (store, auth) =
        curanet_storage::open_with_auth(&url, &args.storage.store_options()).await?;
    let result = auth.register_client(registered.client).await;
    store.close().await;
    result?;
    println!("{}", args.client_id);
    if let Some(secret) = registered.secret {
        // Shown once: only its hash is stored.
        println!("client_secret: {secret}");
    }
    Ok(())
}

/// The client `curanet client add` registers, checked by the same rules as dynamic registration.
fn client_registration(
    args: &ClientAddArgs,
    now: i64,
) -> Result<curanet_auth::registration::RegisteredClient, crate::server::BoxError> {
    use curanet_storage::ClientKind;
    let jwks = match &args.jwks_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| format!("{} is not JSON: {e}", path.display()))?,
            )
        }
        None => None,
    };
    let kind = match args.kind {
        ClientKindArg::Backend => ClientKind::Backend,
        ClientKindArg::Public => ClientKind::Public,
        ClientKindArg::ConfidentialSymmetric => ClientKind::ConfidentialSymmetric,
        ClientKindArg::ConfidentialAsymmetric => ClientKind::ConfidentialAsymmetric,
    };
    let request = curanet_auth::registration::ClientRegistration {
        client_id: Some(args.client_id.clone()),
        name: args.name.clone(),
        kind: Some(kind),
        redirect_uris: args.redirect_uris.clone(),
        jwks,
        jwks_url: args.jwks_url.clone(),
        scope: args.scope.clone(),
        allowed_origins: args.origins.clone(),
    };
    Ok(curanet_auth::registration::register(request, None, now)?)
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// A database URL without its password, for logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite:./data/x.db"), "sqlite:./data/x.db");
    }
}
