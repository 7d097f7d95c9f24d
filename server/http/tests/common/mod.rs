//! Fixtures shared by the HTTP integration tests: the real `curanet` binary as a child process,
//! on a database of either engine, and a plain HTTP client.

/// Runs `body` once per engine (PostgreSQL skipped with a message when absent and not required).
macro_rules! on_both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(TestBackend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(TestBackend::Postgres).await;
            }
        }
    };
}

pub mod mail;
pub mod smart;
pub mod tokens;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use curanet_http::testing::TestBackend;
use curanet_storage::testing::ThrowawayPostgres;
use serde_json::{Value, json};

/// A database for a child-process server, removed by [`Database::remove`].
pub struct Database {
    pub url: String,
    dir: Option<std::path::PathBuf>,
    postgres: Option<ThrowawayPostgres>,
}

impl Database {
    /// A fresh database; `None` when PostgreSQL is wanted but absent (and not required).
    pub async fn create(backend: TestBackend, label: &str) -> Option<Database> {
        match backend {
            TestBackend::Sqlite => {
                let dir = std::env::temp_dir()
                    .join(format!("curanet-it-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).unwrap();
                Some(Database {
                    url: format!("sqlite:{}", dir.join("it.db").display()),
                    dir: Some(dir),
                    postgres: None,
                })
            }
            TestBackend::Postgres => {
                let pg = ThrowawayPostgres::create(label).await?;
                Some(Database {
                    url: pg.url.clone(),
                    dir: None,
                    postgres: Some(pg),
                })
            }
        }
    }

    /// Drops the database or deletes its directory.
    pub async fn remove(self) {
        if let Some(pg) = self.postgres {
            pg.drop_database().await;
        }
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The `curanet serve` binary running as a child process.
pub struct Process {
    pub child: Child,
    pub base: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Process {
    /// Starts `curanet serve` on a free loopback port and waits until `/readyz` answers.
    pub async fn start(database_url: &str, extra: &[&str]) -> Process {
        let port = free_port();
        let process = Process {
            base: format!("http://127.0.0.1:{port}/fhir"),
            child: Command::new(env!("CARGO_BIN_EXE_curanet"))
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--database-url",
                    database_url,
                ])
                .args(extra)
                // Open unless a test asks for `--require-auth`: most tests are about FHIR.
                .env("CURANET_REQUIRE_AUTH", "false")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn curanet"),
        };
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{root}/readyz")).send().await
                && r.status() == 200
            {
                return process;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("curanet did not become ready on port {port}");
    }

    /// Kills the process at once (SIGKILL): nothing gets a chance to flush.
    pub fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for curanet")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON POST of a resource; returns (status, body).
pub async fn post(client: &reqwest::Client, base: &str, resource: &Value) -> (u16, Value) {
    let rt = resource["resourceType"].as_str().unwrap();
    let r = client
        .post(format!("{base}/{rt}"))
        .header("content-type", "application/fhir+json")
        .body(resource.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A small valid Patient.
pub fn patient(n: usize) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": format!("Family{n}")}], "gender": "other"})
}

/// Signs in through the account API (`POST /api/auth/login`) of the server at `fhir_base` and
/// returns the token response (`access_token`, `patient`, `fhirUser`, ...).
pub async fn sign_in(fhir_base: &str, email: &str, password: &str) -> Value {
    let root = fhir_base.trim_end_matches("/fhir");
    let response = reqwest::Client::new()
        .post(format!("{root}/api/auth/login"))
        .json(&json!({"identifier": email, "password": password}))
        .send()
        .await
        .expect("sign-in request");
    let status = response.status();
    let body: Value = response.json().await.expect("sign-in answer");
    assert!(status.is_success(), "sign-in of {email}: {status} {body}");
    body
}

/// A CuraNetConsent of `patient` (id) to `actor` (`Practitioner/1`, `Organization/2`, ...)
/// granting `levels` (READ_BASIC, READ_FULL, WRITE, DELETE) on `classes` (none: every type).
pub fn consent(
    patient: &str,
    status: &str,
    actor: &str,
    levels: &[&str],
    classes: &[&str],
) -> Value {
    curanet_conformance::resources::consent(patient, status, actor, levels, classes)
}
