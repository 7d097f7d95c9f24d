//! Runs the conformance suite against a FHIR base URL and prints a summary table.

use std::process::ExitCode;

use clap::Parser;
use curanet_conformance::{Target, smart};

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
    /// A JSON file with the accounts and clients of a SMART server (see the README): with it,
    /// the FHIR checks use the backend client's tokens and the SMART groups run too.
    #[arg(long, value_name = "FILE")]
    smart_setup: Option<std::path::PathBuf>,
}

/// The `--smart-setup` file: logins, apps, and the backend client with its key file.
#[derive(serde::Deserialize)]
struct SetupFile {
    patient: Login,
    clinician: Login,
    app: App,
    confidential_app: App,
    backend: BackendFile,
    /// For the `consent` and `audit` groups.
    #[serde(default)]
    second_patient: Option<Login>,
    #[serde(default)]
    second_clinician: Option<Login>,
}

#[derive(serde::Deserialize)]
struct Login {
    identifier: String,
    password: String,
}

#[derive(serde::Deserialize)]
struct App {
    client_id: String,
    redirect_uri: String,
    #[serde(default)]
    secret: Option<String>,
}

#[derive(serde::Deserialize)]
struct BackendFile {
    client_id: String,
    /// A PKCS#8 PEM file with the client's RSA private key (relative: to the set-up file).
    key_file: std::path::PathBuf,
    kid: String,
}

/// The target the arguments describe.
fn target(args: &Args) -> Result<Target, String> {
    let Some(path) = &args.smart_setup else {
        return Ok(Target::open(&args.base_url));
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: SetupFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // A relative key file is next to the set-up file.
    let key_file = path.parent().map_or(file.backend.key_file.clone(), |dir| {
        dir.join(&file.backend.key_file)
    });
    let key_pem =
        std::fs::read_to_string(&key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let login = |l: Login| smart::Login {
        identifier: l.identifier,
        password: l.password,
    };
    let app = |a: App| smart::App {
        client_id: a.client_id,
        redirect_uri: a.redirect_uri,
        secret: a.secret,
    };
    let setup = smart::SmartSetup {
        patient: login(file.patient),
        clinician: login(file.clinician),
        app: app(file.app),
        confidential_app: app(file.confidential_app),
        backend: smart::Backend {
            client_id: file.backend.client_id,
            key_pem,
            kid: file.backend.kid,
        },
        second_patient: file.second_patient.map(login),
        second_clinician: file.second_clinician.map(login),
    };
    Ok(Target::smart(&args.base_url, setup))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let target = match target(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("curanet-conformance: {e}");
            return ExitCode::FAILURE;
        }
    };
    let results = runtime.block_on(curanet_conformance::run_with(&target, &args.filter));
    print!("{}", curanet_conformance::summary(&results));
    if results.iter().all(|r| r.outcome.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
