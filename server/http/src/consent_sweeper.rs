//! The consent sweeper: every `--consent-sweep-seconds` it marks active Consents whose
//! `provision.period.end` has passed as `inactive` (a new version, conditional on the version
//! it read) and tells the patient. Enforcement never waits for it (a consent past its end
//! grants nothing already); it records the expiry. With several instances on one database each
//! sweeps: the conditional write lets one of them record each expiry, and the others' lost
//! races are expected and silent.

use std::sync::Arc;
use std::time::Duration;

use curanet_auth::consent_workflow::{Event, date_time, expire};
use curanet_engine::{Engine, EngineError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::notifications::Notifier;
use crate::server::unix_now;

/// Consents read per search page.
const PAGE: &str = "100";

/// The running sweeper.
pub struct Sweeper {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Sweeper {
    /// Starts sweeping every `every` (the first sweep right away).
    pub fn start(engine: Engine, notifier: Arc<Notifier>, base: String, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = interval.tick() => {}
                }
                match sweep(&engine, &notifier, &base, unix_now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "consents past their end marked inactive"),
                    Err(e) => {
                        tracing::error!(error = %e, "consent sweep failed; retrying at the next interval")
                    }
                }
            }
        });
        Sweeper { stop, task }
    }

    /// Stops after the sweep in progress, if any.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// One sweep at `now`: how many consents this instance marked inactive.
pub async fn sweep(
    engine: &Engine,
    notifier: &Notifier,
    base: &str,
    now: i64,
) -> Result<usize, EngineError> {
    // `eb`: periods that ended before now; open-ended ones never match.
    let criteria = vec![
        ("status".to_string(), "active".to_string()),
        ("period".to_string(), format!("eb{}", date_time(now))),
        ("_count".to_string(), PAGE.to_string()),
    ];
    let mut cursor: Option<String> = None;
    let mut marked = 0;
    loop {
        let mut pairs = criteria.clone();
        pairs.extend(cursor.take().map(|c| ("_cursor".to_string(), c)));
        let found = engine.search("Consent", &pairs, base, false).await?;
        for version in &found.page.resources {
            let Some(consent) = version.resource() else {
                continue;
            };
            // The search narrows; the rule decides (the same one enforcement reads).
            let Some(inactive) = expire(&consent, now) else {
                continue;
            };
            let write = engine
                .update(
                    "Consent",
                    &version.id,
                    inactive.to_string().as_bytes(),
                    Some(version.version),
                )
                .await;
            match write {
                Ok(written) => {
                    marked += 1;
                    if let Some(recorded) = written.version.resource() {
                        notifier.tell(Event::Expired, &recorded).await;
                    }
                }
                // Another instance (or the patient) changed it first.
                Err(EngineError::PreconditionFailed(_)) => {}
                Err(e) => {
                    tracing::error!(error = %e, consent = %version.id, "could not mark an expired consent inactive");
                }
            }
        }
        match found.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(marked),
        }
    }
}
