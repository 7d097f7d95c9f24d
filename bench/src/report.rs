//! The result of one scenario: counts, throughput and latency percentiles, printed as a text
//! table or as one JSON object per line.

use serde_json::{Value, json};

/// The figures of one scenario run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The scenario's name (`limit`, `read`, `create`, `raw-insert`).
    pub scenario: String,
    /// Requests (or inserts) completed in the measured window, successful or not.
    pub requests: u64,
    /// Requests that failed: non-2xx status, transport error, database error or timeout.
    pub errors: u64,
    /// Length of the measured window, from the end of warm-up to the last completion.
    pub seconds: f64,
    /// Successful requests per second; errors are left out so that fast failures cannot
    /// inflate the figure.
    pub throughput: f64,
    /// Median latency of the successful requests, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of the successful requests, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Slowest successful request, in milliseconds.
    pub max_ms: Option<f64>,
}

impl Report {
    /// Builds a report from the merged per-request latencies (microseconds, successes only).
    pub fn from_samples(
        scenario: &str,
        mut latencies_us: Vec<u32>,
        errors: u64,
        seconds: f64,
    ) -> Self {
        latencies_us.sort_unstable();
        let ok = latencies_us.len() as u64;
        let ms = |us: u32| f64::from(us) / 1000.0;
        Self {
            scenario: scenario.to_string(),
            requests: ok + errors,
            errors,
            seconds,
            throughput: if seconds > 0.0 {
                ok as f64 / seconds
            } else {
                0.0
            },
            p50_ms: percentile(&latencies_us, 50.0).map(ms),
            p99_ms: percentile(&latencies_us, 99.0).map(ms),
            max_ms: latencies_us.last().copied().map(ms),
        }
    }

    /// The report as one JSON object, keys in a fixed order.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": self.scenario,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round3(self.seconds),
            "throughput": round3(self.throughput),
            "p50_ms": self.p50_ms.map(round3),
            "p99_ms": self.p99_ms.map(round3),
            "max_ms": self.max_ms.map(round3),
        })
    }

    /// One row of the text table, aligned with [`table_header`].
    pub fn table_row(&self) -> String {
        format!(
            "{:<12} {:>10} {:>8} {:>8.2} {:>12.1} {:>9} {:>9} {:>9}",
            self.scenario,
            self.requests,
            self.errors,
            self.seconds,
            self.throughput,
            fmt_ms(self.p50_ms),
            fmt_ms(self.p99_ms),
            fmt_ms(self.max_ms),
        )
    }
}

/// Header of the text table printed for one or more reports, aligned with [`Report::table_row`].
pub fn table_header() -> String {
    format!(
        "{:<12} {:>10} {:>8} {:>8} {:>12} {:>9} {:>9} {:>9}",
        "scenario", "requests", "errors", "seconds", "ok/s", "p50 ms", "p99 ms", "max ms"
    )
}

/// Prints reports as a text table, or as one JSON line each.
pub fn print(reports: &[Report], as_json: bool) {
    if as_json {
        for r in reports {
            println!("{}", r.to_json());
        }
    } else {
        println!("{}", table_header());
        for r in reports {
            println!("{}", r.table_row());
        }
    }
}

/// The nearest-rank percentile of an ascending slice: the smallest sample such that at least
/// `p` percent of the samples are at or below it. `None` when there are no samples.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // Nearest rank is 1-based; clamping keeps p=0 on the first sample and p=100 on the last.
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// `a / b`, or `None` when `b` is zero (a scenario that completed nothing has no ratio).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Rounds to three decimals so JSON output stays short (microsecond resolution for ms values).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Milliseconds with three decimals, or `-` when there is no figure.
pub fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |ms| format!("{ms:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_nothing_is_none() {
        assert_eq!(percentile::<u32>(&[], 50.0), None);
    }

    #[test]
    fn percentile_of_one_sample_is_that_sample() {
        for p in [0.0, 1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&[7], p), Some(7));
        }
    }

    #[test]
    fn percentile_nearest_rank_on_one_to_hundred() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&v, 1.0), Some(1));
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 99.5), Some(100));
        assert_eq!(percentile(&v, 100.0), Some(100));
    }

    #[test]
    fn percentile_rounds_rank_up() {
        // 4 samples: p50 is rank 2, p51 is rank ceil(2.04) = 3, p99 is rank 4.
        let v = [10, 20, 30, 40];
        assert_eq!(percentile(&v, 25.0), Some(10));
        assert_eq!(percentile(&v, 50.0), Some(20));
        assert_eq!(percentile(&v, 51.0), Some(30));
        assert_eq!(percentile(&v, 99.0), Some(40));
    }

    #[test]
    fn p99_catches_a_single_outlier_in_a_hundred_only_at_the_max() {
        let mut v = vec![1_000u32; 99];
        v.push(500_000);
        assert_eq!(percentile(&v, 99.0), Some(1_000));
        let mut w = vec![1_000u32; 98];
        w.extend([500_000, 500_000]);
        assert_eq!(percentile(&w, 99.0), Some(500_000));
    }

    #[test]
    fn from_samples_sorts_and_converts_to_ms() {
        let r = Report::from_samples("read", vec![3_000, 1_000, 2_000, 250_000], 1, 2.0);
        assert_eq!(r.requests, 5);
        assert_eq!(r.errors, 1);
        assert_eq!(r.throughput, 2.0);
        assert_eq!(r.p50_ms, Some(2.0));
        assert_eq!(r.p99_ms, Some(250.0));
        assert_eq!(r.max_ms, Some(250.0));
    }

    #[test]
    fn empty_report_has_no_latencies_and_zero_throughput() {
        let r = Report::from_samples("create", Vec::new(), 3, 0.0);
        assert_eq!((r.requests, r.errors, r.throughput), (3, 3, 0.0));
        assert_eq!((r.p50_ms, r.p99_ms, r.max_ms), (None, None, None));
        assert_eq!(r.to_json()["p50_ms"], Value::Null);
    }

    #[test]
    fn json_has_the_documented_keys_in_order() {
        let r = Report::from_samples("limit", vec![1_234], 0, 1.0);
        let line = r.to_json().to_string();
        let keys: Vec<String> = r.to_json().as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "scenario",
                "requests",
                "errors",
                "seconds",
                "throughput",
                "p50_ms",
                "p99_ms",
                "max_ms"
            ]
        );
        assert!(!line.contains('\n'));
        assert_eq!(r.to_json()["p50_ms"].as_f64(), Some(1.234));
    }

    #[test]
    fn ratio_refuses_zero_denominator() {
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(1.0, 4.0), Some(0.25));
    }
}
