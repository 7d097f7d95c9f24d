//! Runs the conformance suite against a FHIR base URL and prints a summary table.

use std::process::ExitCode;

use clap::Parser;

/// CuraNet's black-box FHIR conformance suite.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The FHIR base URL to test, e.g. http://127.0.0.1:8080/fhir.
    #[arg(long, env = "FHIR_BASE_URL")]
    base_url: String,
    /// Only run checks whose `group/name` contains this text.
    #[arg(long, default_value = "")]
    filter: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let results = runtime.block_on(curanet_conformance::run(&args.base_url, &args.filter));
    print!("{}", curanet_conformance::summary(&results));
    if results.iter().all(|r| r.outcome.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
