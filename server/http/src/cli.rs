//! The command line: `curanet serve`, `curanet migrate`, `curanet reindex`, `curanet client add`.

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
}

/// `curanet client ...`.
#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Register a SMART Backend Services client (client_credentials with private_key_jwt).
    Add(ClientAddArgs),
}

/// What `curanet client add` registers.
#[derive(Debug, clap::Args)]
struct ClientAddArgs {
    #[command(flatten)]
    storage: StorageConfig,
    /// The client id (the `iss` and `sub` of its assertions).
    #[arg(long)]
    client_id: String,
    /// A human-readable name.
    #[arg(long)]
    name: String,
    /// A file with the client's public JSON Web Key Set (`{"keys": [...]}`, RS384 or ES384 keys).
    #[arg(long)]
    jwks_file: std::path::PathBuf,
    /// The `system/` scopes the client may be granted, space-separated.
    #[arg(long)]
    scope: String,
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
        Command::Migrate(_) | Command::Reindex(_) | Command::Client(_) => LogFormat::Pretty,
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
    let client = backend_client(&args, crate::server::unix_now())?;
    let url = args.storage.resolved_database_url();
    let (store, auth) =
        curanet_storage::open_with_auth(&url, &args.storage.store_options()).await?;
    let result = auth.register_client(client).await;
    store.close().await;
    result?;
    println!("{}", args.client_id);
    Ok(())
}

/// The client record `curanet client add` stores, after checking the JWKS and the scopes.
fn backend_client(
    args: &ClientAddArgs,
    now: i64,
) -> Result<curanet_storage::OAuthClient, crate::server::BoxError> {
    if args.client_id.trim().is_empty() || args.client_id.chars().any(char::is_whitespace) {
        return Err("--client-id must be non-empty and without spaces".into());
    }
    let text = std::fs::read_to_string(&args.jwks_file)
        .map_err(|e| format!("cannot read {}: {e}", args.jwks_file.display()))?;
    let jwks: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not JSON: {e}", args.jwks_file.display()))?;
    let keys = jwks.get("keys").and_then(serde_json::Value::as_array);
    if keys.is_none_or(|k| k.is_empty()) {
        return Err(format!("{} has no keys", args.jwks_file.display()).into());
    }
    if keys
        .into_iter()
        .flatten()
        .any(|k| k.get("d").is_some() || k.get("kid").and_then(|v| v.as_str()).is_none())
    {
        return Err(
            "every key needs a kid, and the JWKS must hold public keys only (no 'd')".into(),
        );
    }
    let scopes =
        curanet_auth::scope::Scopes::parse(&args.scope).map_err(|e| format!("--scope: {e}"))?;
    if scopes.is_empty() || !curanet_auth::authority::only_system_scopes(&scopes) {
        return Err("--scope must list system/ scopes only (a backend client has no user)".into());
    }
    Ok(curanet_storage::OAuthClient {
        client_id: args.client_id.clone(),
        name: args.name.clone(),
        kind: curanet_storage::ClientKind::Backend,
        secret_hash: None,
        redirect_uris: Vec::new(),
        jwks: Some(jwks),
        jwks_url: None,
        scope: scopes.to_string(),
        allowed_origins: Vec::new(),
        created_by: None,
        created_at: now * 1_000_000,
    })
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
