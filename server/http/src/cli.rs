//! The command line: `curanet serve`, `curanet migrate`.

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
        Command::Migrate(_) | Command::Reindex(_) => LogFormat::Pretty,
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
