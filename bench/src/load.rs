//! The generic closed-loop load: N tasks, each with one operation in flight, run for a warm-up
//! then a measured window, and their latencies merged into a [`Report`].

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::report::Report;

/// How long an operation may run past the end of the window before it is abandoned (and
/// counted as an error), so a hung server cannot stretch the run.
pub const GRACE: Duration = Duration::from_secs(3);

/// What one operation returned: `Ok` on success, else a short description of the failure.
pub type Outcome = Result<(), String>;

/// The shape of a load run.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    /// Concurrent tasks, each with at most one operation in flight.
    pub connections: usize,
    /// Time run before measuring, to open connections and warm caches; not reported.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

/// What one task saw during the measured window.
struct TaskResult {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `op` from `cfg.connections` tasks until the window ends and reports the measured part.
///
/// `op` gets a counter unique across all tasks (for varying request bodies). An operation
/// counts in the report when it *started* inside the measured window; operations already in
/// flight at the end are awaited (up to [`GRACE`]) and the window is stretched to cover them.
pub async fn run<F, Fut>(scenario: &str, cfg: LoadConfig, op: F) -> Report
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let stop_at = measure_from + cfg.duration;
    let hard_stop = stop_at + GRACE;
    // A rough guess at the per-task sample count keeps the vectors from reallocating often.
    let capacity = (cfg.duration.as_secs_f64() * 2_000.0) as usize;

    let tasks: Vec<_> = (0..cfg.connections)
        .map(|_| {
            let op = Arc::clone(&op);
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut result = TaskResult {
                    latencies_us: Vec::with_capacity(capacity),
                    errors: 0,
                    first_error: None,
                };
                loop {
                    let began = Instant::now();
                    if began >= stop_at {
                        break;
                    }
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let outcome = tokio::time::timeout_at(hard_stop, op(n)).await;
                    let measured = began >= measure_from;
                    let error = match outcome {
                        Ok(Ok(())) => {
                            if measured {
                                let us = began.elapsed().as_micros();
                                result
                                    .latencies_us
                                    .push(u32::try_from(us).unwrap_or(u32::MAX));
                            }
                            None
                        }
                        Ok(Err(e)) => Some(e),
                        Err(_) => Some(format!(
                            "no answer within {}s of the end of the run",
                            GRACE.as_secs()
                        )),
                    };
                    if let Some(e) = error {
                        if measured {
                            result.errors += 1;
                            result.first_error.get_or_insert(e);
                        }
                        if Instant::now() >= hard_stop {
                            break;
                        }
                    }
                }
                result
            })
        })
        .collect();

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(r) => {
                latencies.extend(r.latencies_us);
                errors += r.errors;
                if first_error.is_none() {
                    first_error = r.first_error;
                }
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("load task failed: {e}"));
            }
        }
    }
    let seconds = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    if let Some(e) = first_error {
        // Stderr, so a --json consumer reading stdout still sees one object per line.
        eprintln!("{scenario}: {errors} errors; first: {e}");
    }
    Report::from_samples(scenario, latencies, errors, seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_successes_and_errors_in_the_window() {
        let cfg = LoadConfig {
            connections: 2,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(200),
        };
        let report = run("test", cfg, |n| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if n % 2 == 0 {
                Ok(())
            } else {
                Err("odd".into())
            }
        })
        .await;
        assert!(report.requests > 10, "{report:?}");
        assert!(
            report.errors > 0 && report.errors < report.requests,
            "{report:?}"
        );
        assert!(report.seconds >= 0.2 && report.seconds < 0.2 + GRACE.as_secs_f64());
        assert!(report.p50_ms.unwrap() >= 5.0);
    }

    #[tokio::test]
    async fn a_hung_operation_is_abandoned_after_the_grace_period() {
        let cfg = LoadConfig {
            connections: 3,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(50),
        };
        let started = std::time::Instant::now();
        let report = run("hang", cfg, |_| std::future::pending::<Outcome>()).await;
        assert!(started.elapsed() < GRACE + Duration::from_secs(1));
        assert_eq!((report.requests, report.errors), (3, 3));
        assert_eq!(report.p50_ms, None);
    }
}
