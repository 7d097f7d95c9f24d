//! A black-box FHIR R4 conformance suite. It talks HTTP to any FHIR base URL, so it can judge
//! CuraNet in-process (`cargo test -p curanet-conformance`) or any deployed server
//! (`cargo run -p curanet-conformance -- --base-url http://127.0.0.1:8080/fhir`).

pub mod client;
mod groups;
pub mod resources;
pub mod smart;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use client::{Client, Reply};

/// The outcome of one check: `Err` says what was wrong.
pub type Outcome = Result<(), String>;

/// A check's body.
pub type CaseFn = fn(Client) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One named check in a group.
#[derive(Clone, Copy)]
pub struct Case {
    pub group: &'static str,
    pub name: &'static str,
    pub run: CaseFn,
}

/// Fails the current check with a message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Declares cases: `cases!("group"; name1, name2)` for `async fn name(c: Client) -> Outcome`.
#[macro_export]
macro_rules! cases {
    ($group:literal; $($name:ident),+ $(,)?) => {
        pub(crate) fn cases() -> Vec<$crate::Case> {
            vec![$($crate::Case {
                group: $group,
                name: stringify!($name),
                run: |c| Box::pin($name(c)),
            }),+]
        }
    };
}

/// Every case of the suite, group by group.
pub fn all_cases() -> Vec<Case> {
    groups::all()
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    pub group: &'static str,
    pub name: &'static str,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Runs the cases whose `group/name` contains `filter` (all when empty) against an open
/// server (no token, no SMART checks).
pub async fn run(base_url: &str, filter: &str) -> Vec<CaseResult> {
    run_with(&Target::open(base_url), filter).await
}

/// The server under test and how to reach it.
#[derive(Clone)]
pub struct Target {
    /// The FHIR base URL.
    pub base_url: String,
    /// What the FHIR checks authenticate with (`None`: an open server).
    pub bearer: Option<smart::Bearer>,
    /// Accounts and clients for the SMART checks (`None`: those checks are left out).
    pub smart: Option<std::sync::Arc<smart::SmartSetup>>,
}

impl Target {
    /// A server without authorization.
    pub fn open(base_url: &str) -> Self {
        Target {
            base_url: base_url.into(),
            bearer: None,
            smart: None,
        }
    }

    /// A SMART server: FHIR checks use backend-service tokens (`system/*.cruds`) of the set-up's
    /// backend client; the SMART groups run too.
    pub fn smart(base_url: &str, setup: smart::SmartSetup) -> Self {
        let client = Client::new(base_url);
        let tokens = smart::BackendTokens::new(
            setup.backend.clone(),
            client.oauth("token"),
            "system/*.cruds",
        );
        Target {
            base_url: base_url.into(),
            bearer: Some(smart::Bearer::Backend(std::sync::Arc::new(tokens))),
            smart: Some(std::sync::Arc::new(setup)),
        }
    }
}

/// Whether the checks of `group` need the SMART set-up's accounts and clients.
fn needs_smart(group: &str) -> bool {
    group.starts_with("smart") || matches!(group, "consent" | "audit" | "emergency")
}

/// Runs the cases whose `group/name` contains `filter` (all when empty), four at a time. The
/// SMART groups (`smart-*`) and the `consent`, `audit` and `emergency` groups run only when the
/// target has a SMART set-up.
pub async fn run_with(target: &Target, filter: &str) -> Vec<CaseResult> {
    use futures::StreamExt;
    let client = Client::new(&target.base_url)
        .with_bearer(target.bearer.clone())
        .with_smart(target.smart.clone());
    let cases: Vec<Case> = all_cases()
        .into_iter()
        .filter(|c| target.smart.is_some() || !needs_smart(c.group))
        .filter(|c| filter.is_empty() || format!("{}/{}", c.group, c.name).contains(filter))
        .collect();
    futures::stream::iter(cases)
        .map(|case| {
            let client = client.clone();
            async move {
                let started = Instant::now();
                let outcome =
                    match tokio::time::timeout(Duration::from_secs(60), (case.run)(client)).await {
                        Ok(o) => o,
                        Err(_) => Err("timed out after 60 s".into()),
                    };
                CaseResult {
                    group: case.group,
                    name: case.name,
                    outcome,
                    elapsed: started.elapsed(),
                }
            }
        })
        .buffered(4)
        .collect()
        .await
}

/// A per-group summary table and the failures, as text.
pub fn summary(results: &[CaseResult]) -> String {
    let mut groups: Vec<&str> = results.iter().map(|r| r.group).collect();
    groups.dedup();
    let mut out = format!(
        "{:<16} {:>6} {:>6} {:>6}\n",
        "group", "passed", "failed", "total"
    );
    for g in &groups {
        let in_group: Vec<&CaseResult> = results.iter().filter(|r| r.group == *g).collect();
        let passed = in_group.iter().filter(|r| r.outcome.is_ok()).count();
        out += &format!(
            "{:<16} {:>6} {:>6} {:>6}\n",
            g,
            passed,
            in_group.len() - passed,
            in_group.len()
        );
    }
    let failures: Vec<&CaseResult> = results.iter().filter(|r| r.outcome.is_err()).collect();
    for f in &failures {
        out += &format!(
            "FAILED {}/{}: {}\n",
            f.group,
            f.name,
            f.outcome.as_ref().unwrap_err()
        );
    }
    let passed = results.len() - failures.len();
    out += &format!("conformance: {passed} passed, {} failed\n", failures.len());
    out
}
