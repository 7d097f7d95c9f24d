//! `curanet-bench`: a closed-loop load generator for a FHIR base URL on loopback, with an
//! in-memory HTTP "limit" server and a raw database insert baseline to compare against.

mod auth;
mod consent;
mod desktop;
mod desktop_start;
mod http;
mod ingest;
mod limit;
mod load;
mod raw_ingest;
mod raw_insert;
mod report;
mod search;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::load::LoadConfig;
use crate::report::{Report, ratio};

#[derive(Parser)]
#[command(
    version,
    about = "Load generator for the CuraNet FHIR server (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// GET one Patient again and again from N connections.
    Read {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// POST new Patients from N connections.
    Create {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Read load against an in-process server answering from memory: the HTTP ceiling.
    Limit {
        /// Serve the body of this loopback URL (fetched once) instead of the built-in sample.
        #[arg(long, value_name = "URL")]
        body_from: Option<String>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Insert Patient-sized rows straight into the database, one transaction each.
    RawInsert {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// limit, read, create and raw-insert in sequence, with the read/limit and create/raw-insert ratios.
    All {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// POST every FHIR transaction Bundle of a folder (Synthea output), optionally N distinct copies.
    Ingest {
        #[command(flatten)]
        server: ServerArgs,
        /// Folder with the *.json transaction Bundles.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Concurrent clients, each with one bundle in flight.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        clients: u16,
        /// Post the whole set N times; every copy after the first gets fresh UUIDs and
        /// identifiers suffixed -c{copy}, so it adds new patients.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        copies: u32,
        /// Print the result as one JSON object line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The ingest baseline: the rows the server would write for every Bundle of a folder (resources
    /// and search index rows), inserted straight into scratch tables, one transaction per Bundle.
    RawIngest {
        #[command(flatten)]
        db: DbArgs,
        /// Folder with the *.json transaction Bundles.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Concurrent clients preparing Bundles (and, on PostgreSQL, each with its own connection).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
        clients: u16,
        /// Print the result as one JSON object line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Sign in again and again with one account (`POST /api/auth/login`): argon2id latency.
    Login {
        #[command(flatten)]
        server: ServerArgs,
        /// The account's email or phone.
        #[arg(long, env = "CURANET_BENCH_IDENTIFIER")]
        identifier: String,
        /// Its password (from the environment; never a flag).
        #[arg(env = "CURANET_BENCH_PASSWORD", hide = true, hide_env_values = true)]
        password: String,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Backend-services token requests (`client_credentials`, RS384 assertions signed beforehand).
    Token {
        #[command(flatten)]
        server: ServerArgs,
        /// The registered backend client.
        #[arg(long)]
        client_id: String,
        /// Its private key (PKCS#8 PEM), e.g. from `curanet-bench keygen`.
        #[arg(long, value_name = "PEM")]
        key_file: PathBuf,
        /// The key's `kid` in the registered JWKS.
        #[arg(long, default_value = "bench-1")]
        kid: String,
        /// The scopes asked for.
        #[arg(long, default_value = "system/Patient.rs")]
        scope: String,
        /// How many assertions to sign before the run (each is used once).
        #[arg(long, default_value_t = 60_000)]
        assertions: usize,
        /// Only fetch one token and print it (for `CURANET_BENCH_TOKEN`).
        #[arg(long)]
        print: bool,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// A clinician's search on a consenting patient's records vs the same search by the patient
    /// (consent enforcement's cost). The patient consents and the doctor writes the records.
    ConsentSearch {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        people: PeopleArgs,
        /// Observations the doctor records for the patient before the run.
        #[arg(long, default_value_t = 20)]
        observations: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Time from a consent's revocation on one instance to the first refused request on
    /// another instance sharing the database (both started with the same --base-url and key).
    Revocation {
        #[command(flatten)]
        server: ServerArgs,
        /// FHIR base URL of the second instance (loopback).
        #[arg(long)]
        second_base_url: String,
        #[command(flatten)]
        people: PeopleArgs,
        /// Revocations timed.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// The desktop core: the initial sync of a worklist into a fresh local cache, and opening a
    /// cached chart (an open server: `--require-auth=false`; it creates the patients).
    DesktopSync {
        #[command(flatten)]
        server: ServerArgs,
        /// Patients in the worklist.
        #[arg(long, default_value_t = 50)]
        patients: usize,
        /// Observations per patient.
        #[arg(long, default_value_t = 99)]
        per_patient: usize,
        /// Where the cache file goes.
        #[arg(long, default_value = "./data")]
        dir: PathBuf,
    },
    /// The desktop app's cold start to an interactive window and its memory (needs Xvfb; the
    /// app's release binary: `cargo build --release -p curanet-desktop`).
    DesktopStart {
        /// The app's binary.
        #[arg(long, default_value = "./target/release/curanet-desktop")]
        app: PathBuf,
        /// Starts measured.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Seconds the app runs before its memory is read.
        #[arg(long, default_value_t = 3)]
        settle: u64,
    },
    /// Writes a backend client's RSA key pair: DIR/key.pem and DIR/jwks.json.
    Keygen {
        /// Where to write the two files.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The `kid` of the key.
        #[arg(long, default_value = "bench-1")]
        kid: String,
    },
    /// Time a fixed set of searches, one request at a time, on values sampled from the server.
    Search {
        #[command(flatten)]
        server: ServerArgs,
        /// How many Patients to sample values from.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
        patients: u16,
        /// Rounds over the sampled values per query.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        repeat: u32,
        /// Print one JSON object line per query instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// The two accounts of the consent scenarios (one password for both, from the environment).
#[derive(Debug, Args)]
struct PeopleArgs {
    /// The patient's email or phone.
    #[arg(long)]
    patient: String,
    /// The doctor's email or phone.
    #[arg(long)]
    doctor: String,
    /// Their password (from the environment; never a flag).
    #[arg(env = "CURANET_BENCH_PASSWORD", hide = true, hide_env_values = true)]
    password: String,
}

#[derive(Args)]
struct ServerArgs {
    /// FHIR base URL of the server under test; must be http:// on 127.0.0.1, ::1 or localhost.
    #[arg(
        long,
        env = "CURANET_BENCH_BASE_URL",
        default_value = "http://127.0.0.1:8080/fhir"
    )]
    base_url: String,
}

#[derive(Args)]
struct DbArgs {
    /// The server's database: sqlite:PATH or postgres://USER@HOST/DB (local only).
    #[arg(long, env = "CURANET_BENCH_DATABASE_URL")]
    database_url: String,
}

#[derive(Args)]
struct LoadArgs {
    /// Concurrent connections (tasks), each with one request in flight.
    #[arg(long, short = 'c', default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,
    /// Measured seconds per scenario.
    #[arg(long, short = 'd', default_value_t = 10.0, value_parser = seconds_parser(0.1, 3600.0))]
    duration: f64,
    /// Unmeasured seconds run first (connections opened, caches warm).
    #[arg(long, short = 'w', default_value_t = 2.0, value_parser = seconds_parser(0.0, 600.0))]
    warmup: f64,
    /// Print each result as one JSON object line instead of a table.
    #[arg(long)]
    json: bool,
}

impl LoadArgs {
    fn config(&self) -> LoadConfig {
        LoadConfig {
            connections: usize::from(self.connections),
            warmup: Duration::from_secs_f64(self.warmup),
            duration: Duration::from_secs_f64(self.duration),
        }
    }
}

/// A clap parser for a number of seconds within `[min, max]`.
fn seconds_parser(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |s| match s.parse::<f64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        Ok(_) => Err(format!("must be between {min} and {max} seconds")),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("curanet-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Read { server, load } => {
            let base = http::loopback_url(&server.base_url)?;
            let client = http::client(usize::from(load.connections))?;
            let id = http::create_read_patient(&client, &base).await?;
            let r = http::read("read", client, &base, &id, load.config()).await;
            report::print(&[r], load.json);
        }
        Command::Create { server, load } => {
            let base = http::loopback_url(&server.base_url)?;
            let client = http::client(usize::from(load.connections))?;
            let r = http::create(client, &base, load.config()).await;
            report::print(&[r], load.json);
        }
        Command::Limit { body_from, load } => {
            let body = match body_from {
                Some(url) => {
                    let url = http::loopback_url(&url)?;
                    http::fetch_body(&http::client(1)?, &url).await?
                }
                None => Bytes::from_static(limit::SAMPLE_PATIENT.as_bytes()),
            };
            let r = run_limit(body, &load).await?;
            report::print(&[r], load.json);
        }
        Command::RawInsert { db, load } => {
            let r = raw_insert::run(&db.database_url, load.config()).await?;
            report::print(&[r], load.json);
        }
        Command::All { server, db, load } => all(&server, &db, &load).await?,
        Command::Ingest {
            server,
            dir,
            clients,
            copies,
            json,
        } => {
            let base = http::loopback_url(&server.base_url)?;
            let clients = usize::from(clients);
            let cfg = ingest::IngestConfig {
                dir,
                clients,
                copies,
            };
            let r = ingest::run(http::client(clients)?, &base, &cfg).await?;
            r.print(json);
        }
        Command::RawIngest {
            db,
            dir,
            clients,
            json,
        } => {
            let cfg = raw_ingest::RawIngestConfig {
                dir,
                clients: usize::from(clients),
            };
            let r = raw_ingest::run(&db.database_url, &cfg).await?;
            r.print(json);
        }
        Command::Login {
            server,
            identifier,
            password,
            load,
        } => {
            let base = http::loopback_url(&server.base_url)?;
            let client = http::client(usize::from(load.connections))?;
            let r = auth::login(client, &base, &identifier, &password, load.config()).await;
            report::print(&[r], load.json);
        }
        Command::Token {
            server,
            client_id,
            key_file,
            kid,
            scope,
            assertions,
            print,
            load,
        } => {
            let base = http::loopback_url(&server.base_url)?;
            let pem = std::fs::read_to_string(&key_file)
                .map_err(|e| format!("{}: {e}", key_file.display()))?;
            let key = auth::BackendKey {
                client_id,
                kid,
                pem,
            };
            let client = http::client(usize::from(load.connections))?;
            if print {
                println!("{}", auth::one_token(&client, &base, &key, &scope).await?);
                return Ok(());
            }
            let r = auth::token(client, &base, &key, &scope, assertions, load.config()).await?;
            report::print(&[r], load.json);
        }
        Command::ConsentSearch {
            server,
            people,
            observations,
            load,
        } => {
            let base = http::loopback_url(&server.base_url)?;
            let client = http::client(usize::from(load.connections))?;
            let patient =
                consent::sign_in(&client, &base, &people.patient, &people.password).await?;
            let doctor = consent::sign_in(&client, &base, &people.doctor, &people.password).await?;
            let reports = consent::search(
                client,
                &base,
                &patient,
                &doctor,
                observations,
                load.config(),
            )
            .await?;
            let over = ratio(reports[0].throughput, reports[1].throughput);
            report::print(&reports, load.json);
            println!(
                "clinician / patient  {}",
                over.map_or_else(|| "-".to_string(), |r| format!("{r:.3}"))
            );
        }
        Command::Revocation {
            server,
            second_base_url,
            people,
            rounds,
        } => {
            let base = http::loopback_url(&server.base_url)?;
            let second = http::loopback_url(&second_base_url)?;
            let client = http::client(2)?;
            let patient =
                consent::sign_in(&client, &base, &people.patient, &people.password).await?;
            let doctor = consent::sign_in(&client, &base, &people.doctor, &people.password).await?;
            let ms = consent::revocation(client, &base, &second, &patient, &doctor, rounds).await?;
            let at = |p: f64| report::percentile(&ms, p).unwrap_or_default();
            println!(
                "revocation → first refusal on the second instance, {} rounds: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                ms.len(),
                at(50.0),
                at(99.0),
                ms.last().copied().unwrap_or_default()
            );
        }
        Command::DesktopSync {
            server,
            patients,
            per_patient,
            dir,
        } => {
            let base = http::loopback_url(&server.base_url)?;
            desktop::run(&base, patients, per_patient, &dir).await?;
        }
        Command::DesktopStart {
            app,
            rounds,
            settle,
        } => {
            desktop_start::run(&app, rounds, Duration::from_secs(settle))?;
        }
        Command::Keygen { dir, kid } => {
            auth::keygen(&dir, &kid)?;
            println!(
                "{}/key.pem and {}/jwks.json written",
                dir.display(),
                dir.display()
            );
        }
        Command::Search {
            server,
            patients,
            repeat,
            json,
        } => {
            let base = http::loopback_url(&server.base_url)?;
            let reports =
                search::run(&http::client(1)?, &base, usize::from(patients), repeat).await?;
            search::print(&reports, json);
        }
    }
    Ok(())
}

async fn run_limit(body: Bytes, load: &LoadArgs) -> Result<Report, String> {
    let id = limit::id_in(&body);
    let server = limit::start(body).await?;
    let client = http::client(usize::from(load.connections))?;
    let report = http::read("limit", client, &server.base_url, &id, load.config()).await;
    drop(server);
    Ok(report)
}

/// Every scenario in turn. The limit server serves the very bytes the real read returns, so the
/// read/limit ratio compares like with like.
async fn all(server: &ServerArgs, db: &DbArgs, load: &LoadArgs) -> Result<(), String> {
    let base = http::loopback_url(&server.base_url)?;
    let n = usize::from(load.connections);
    let setup = http::client(1)?;
    let id = http::create_read_patient(&setup, &base).await?;
    let body = http::fetch_body(&setup, &format!("{base}/Patient/{id}")).await?;
    drop(setup);

    let limit = run_limit(body, load).await?;
    let read = http::read("read", http::client(n)?, &base, &id, load.config()).await;
    let create = http::create(http::client(n)?, &base, load.config()).await;
    let raw = raw_insert::run(&db.database_url, load.config()).await?;

    let read_over_limit = ratio(read.throughput, limit.throughput);
    let create_over_raw = ratio(create.throughput, raw.throughput);
    report::print(&[limit, read, create, raw], load.json);
    if load.json {
        println!(
            "{}",
            json!({
                "scenario": "ratios",
                "read_over_limit": read_over_limit,
                "create_over_raw_insert": create_over_raw,
            })
        );
    } else {
        let pct =
            |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0));
        println!();
        println!("read / limit         {}", pct(read_over_limit));
        println!("create / raw-insert  {}", pct(create_over_raw));
    }
    Ok(())
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
    fn ingest_and_search_parse_with_their_defaults() {
        let cli = Cli::try_parse_from(["curanet-bench", "ingest", "--dir", "x"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Ingest {
                clients: 4,
                copies: 1,
                json: false,
                ..
            }
        ));
        let cli = Cli::try_parse_from(["curanet-bench", "search", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Search {
                patients: 50,
                repeat: 20,
                json: true,
                ..
            }
        ));
        assert!(
            Cli::try_parse_from(["curanet-bench", "ingest", "--dir", "x", "--copies", "0"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["curanet-bench", "ingest"]).is_err());
    }

    #[test]
    fn raw_ingest_parses() {
        let cli = Cli::try_parse_from([
            "curanet-bench",
            "raw-ingest",
            "--database-url",
            "sqlite:x.db",
            "--dir",
            "d",
            "--json",
        ])
        .unwrap();
        assert!(matches!(
            &cli.command,
            Command::RawIngest {
                clients: 4,
                json: true,
                db,
                ..
            } if db.database_url == "sqlite:x.db"
        ));
        assert!(
            Cli::try_parse_from([
                "curanet-bench",
                "raw-ingest",
                "--database-url",
                "sqlite:x.db",
                "--dir",
                "d",
                "--clients",
                "0"
            ])
            .is_err()
        );
    }
}
