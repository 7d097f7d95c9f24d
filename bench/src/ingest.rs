//! The `ingest` scenario: POSTs every FHIR transaction Bundle of a folder (Synthea output) to the
//! base URL from N clients, optionally N copies of the whole set made into distinct patients.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Client;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::http::{FHIR_JSON, describe};
use crate::report::{fmt_ms, percentile, round3};

/// Longest one bundle POST may take before it is counted as an error. A Synthea bundle holds
/// hundreds of entries, written in one database transaction.
pub const BUNDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a progress line goes to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The shape of an ingest run.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Folder with the `*.json` transaction Bundles.
    pub dir: PathBuf,
    /// Concurrent clients, each with one bundle in flight.
    pub clients: usize,
    /// How many times the whole set is posted; copies after the first are made distinct.
    pub copies: u32,
}

/// The figures of one ingest run.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestReport {
    /// Bundles posted (successful or not).
    pub bundles: u64,
    /// Entries of the bundles that succeeded.
    pub resources: u64,
    /// Bundles that failed: unreadable file, transport error, timeout, non-200 answer, or an
    /// entry whose `response.status` is not 2xx.
    pub errors: u64,
    /// Wall time from the first request to the last answer.
    pub seconds: f64,
    /// Successful bundles per second.
    pub bundles_per_s: f64,
    /// Entries of successful bundles per second.
    pub resources_per_s: f64,
    /// Latency percentiles of the successful bundle POSTs, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl IngestReport {
    fn from_samples(mut latencies_us: Vec<u32>, resources: u64, errors: u64, seconds: f64) -> Self {
        latencies_us.sort_unstable();
        let ok = latencies_us.len() as u64;
        let ms = |us: u32| f64::from(us) / 1000.0;
        let per_s = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        Self {
            bundles: ok + errors,
            resources,
            errors,
            seconds,
            bundles_per_s: per_s(ok),
            resources_per_s: per_s(resources),
            p50_ms: percentile(&latencies_us, 50.0).map(ms),
            p99_ms: percentile(&latencies_us, 99.0).map(ms),
            max_ms: latencies_us.last().copied().map(ms),
        }
    }

    /// The report as one JSON object, keys in a fixed order.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": "ingest",
            "bundles": self.bundles,
            "resources": self.resources,
            "errors": self.errors,
            "seconds": round3(self.seconds),
            "bundles_per_s": round3(self.bundles_per_s),
            "resources_per_s": round3(self.resources_per_s),
            "p50_ms": self.p50_ms.map(round3),
            "p99_ms": self.p99_ms.map(round3),
            "max_ms": self.max_ms.map(round3),
        })
    }

    /// Prints the report as a two-line table, or as one JSON line.
    pub fn print(&self, as_json: bool) {
        if as_json {
            println!("{}", self.to_json());
            return;
        }
        println!(
            "{:<10} {:>8} {:>10} {:>7} {:>9} {:>10} {:>12} {:>10} {:>10} {:>10}",
            "scenario",
            "bundles",
            "resources",
            "errors",
            "seconds",
            "bundles/s",
            "resources/s",
            "p50 ms",
            "p99 ms",
            "max ms"
        );
        println!(
            "{:<10} {:>8} {:>10} {:>7} {:>9.2} {:>10.2} {:>12.1} {:>10} {:>10} {:>10}",
            "ingest",
            self.bundles,
            self.resources,
            self.errors,
            self.seconds,
            self.bundles_per_s,
            self.resources_per_s,
            fmt_ms(self.p50_ms),
            fmt_ms(self.p99_ms),
            fmt_ms(self.max_ms),
        );
    }
}

/// The `*.json` files of `dir`, sorted by name so runs post them in the same order.
pub fn bundle_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in read {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        if path.is_file() && path.extension().is_some_and(|x| x == "json") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("no *.json files in {}", dir.display()));
    }
    Ok(files)
}

/// Turns `bundle` into copy number `copy` of itself. Copy 0 is left exactly as it is. Any other
/// copy gets, consistently within the bundle, a fresh UUID for every `urn:uuid:` it uses (entry
/// `fullUrl`s, every `reference` to them, and a resource `id` equal to its entry's UUID), and
/// `-c{copy}` appended to every `identifier.value` of every resource (contained ones too), so the
/// copy describes new people rather than duplicates.
pub fn make_copy(bundle: &mut Value, copy: u32) {
    if copy == 0 {
        return;
    }
    let suffix = format!("-c{copy}");
    let mut fresh: HashMap<String, String> = HashMap::new();
    let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
        return;
    };
    for entry in entries.iter_mut() {
        let Some(entry) = entry.as_object_mut() else {
            continue;
        };
        let mut own_uuid = None;
        if let Some(Value::String(full_url)) = entry.get_mut("fullUrl")
            && let Some(new) = renew(full_url, &mut fresh)
        {
            own_uuid = full_url
                .strip_prefix("urn:uuid:")
                .map(|u| (u.to_string(), new.clone()));
            *full_url = new;
        }
        if let Some(resource) = entry.get_mut("resource") {
            if let (Some((old, new)), Some(Value::String(id))) = (own_uuid, resource.get_mut("id"))
                && *id == old
            {
                *id = new.trim_start_matches("urn:uuid:").to_string();
            }
            suffix_identifiers(resource, &suffix);
            renew_references(resource, &mut fresh);
        }
    }
}

/// The replacement for a `urn:uuid:` string (the same one each time it is met), or `None` for
/// anything else (`#contained`, `Patient/123`, ...).
fn renew(value: &str, fresh: &mut HashMap<String, String>) -> Option<String> {
    let rest = value.strip_prefix("urn:uuid:")?;
    if rest.is_empty() {
        return None;
    }
    Some(
        fresh
            .entry(value.to_string())
            .or_insert_with(|| format!("urn:uuid:{}", Uuid::new_v4()))
            .clone(),
    )
}

/// Rewrites every `reference` string anywhere inside `value` that is a `urn:uuid:`.
fn renew_references(value: &mut Value, fresh: &mut HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "reference" => {
                        if let Some(new) = renew(s, fresh) {
                            *s = new;
                        }
                    }
                    _ => renew_references(v, fresh),
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                renew_references(v, fresh);
            }
        }
        _ => {}
    }
}

/// Appends `suffix` to every `identifier.value` of `resource` and of its contained resources
/// (not to `Reference.identifier`, which names another resource's identifier).
fn suffix_identifiers(resource: &mut Value, suffix: &str) {
    let Some(map) = resource.as_object_mut() else {
        return;
    };
    match map.get_mut("identifier") {
        Some(Value::Array(identifiers)) => {
            for identifier in identifiers {
                suffix_value(identifier, suffix);
            }
        }
        Some(identifier @ Value::Object(_)) => suffix_value(identifier, suffix),
        _ => {}
    }
    if let Some(Value::Array(contained)) = map.get_mut("contained") {
        for c in contained {
            suffix_identifiers(c, suffix);
        }
    }
}

fn suffix_value(identifier: &mut Value, suffix: &str) {
    if let Some(Value::String(v)) = identifier.get_mut("value") {
        v.push_str(suffix);
    }
}

/// One bundle ready to post.
struct Prepared {
    body: Vec<u8>,
    entries: u64,
}

/// Reads one file and makes it into copy `copy`: the original bytes for copy 0, the transformed
/// bundle serialised again for any other. Runs on a blocking thread.
fn prepare(path: &Path, copy: u32) -> Result<Prepared, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bundle: Value = serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err("not a Bundle".into());
    }
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map_or(0, |e| e.len() as u64);
    if copy == 0 {
        return Ok(Prepared {
            body: bytes,
            entries,
        });
    }
    drop(bytes);
    make_copy(&mut bundle, copy);
    let body = serde_json::to_vec(&bundle).map_err(|e| format!("cannot serialise: {e}"))?;
    Ok(Prepared { body, entries })
}

/// Checks a transaction answer: 200, one entry per request entry, every `response.status` 2xx.
fn check_response(status: reqwest::StatusCode, body: &[u8], sent: u64) -> Result<(), String> {
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(500).collect();
        return Err(format!("status {status}: {text}"));
    }
    let answer: Value =
        serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    let entries = answer
        .get("entry")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if entries.len() as u64 != sent {
        return Err(format!(
            "answer has {} entries for {sent} sent",
            entries.len()
        ));
    }
    let failed: Vec<(usize, &str)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let s = e
                .pointer("/response/status")
                .and_then(Value::as_str)
                .unwrap_or("");
            (!s.starts_with('2')).then_some((i, s))
        })
        .collect();
    if let Some(&(i, s)) = failed.first() {
        return Err(format!(
            "{} of {sent} entries failed; first: entry {i} status {s:?}",
            failed.len()
        ));
    }
    Ok(())
}

/// POSTs one bundle and checks the answer; the latency covers sending and reading the answer.
async fn post(client: &Client, base: &str, body: Vec<u8>, entries: u64) -> Result<(), String> {
    let resp = client
        .post(base)
        .header(CONTENT_TYPE, FHIR_JSON)
        .header(ACCEPT, FHIR_JSON)
        .timeout(BUNDLE_TIMEOUT)
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = resp.status();
    let answer = resp.bytes().await.map_err(|e| describe(&e))?;
    check_response(status, &answer, entries)
}

/// Counters shared by the clients and the progress printer.
#[derive(Default)]
struct Progress {
    done: AtomicU64,
    resources: AtomicU64,
    errors: AtomicU64,
}

/// What one client saw.
#[derive(Default)]
struct ClientResult {
    latencies_us: Vec<u32>,
    first_error: Option<String>,
}

/// Runs the ingest: `cfg.clients` tasks take bundles (copy by copy, file by file) until every
/// file has been posted `cfg.copies` times. Each task holds one bundle at a time.
pub async fn run(client: Client, base: &str, cfg: &IngestConfig) -> Result<IngestReport, String> {
    let files = Arc::new(bundle_files(&cfg.dir)?);
    let total = files.len() as u64 * u64::from(cfg.copies);
    eprintln!(
        "ingest: {} bundles ({} files x {} copies) to {base} from {} clients",
        total,
        files.len(),
        cfg.copies,
        cfg.clients
    );
    let next = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Progress::default());
    let base: Arc<str> = Arc::from(base);
    let started = Instant::now();

    let printer = {
        let progress = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
            loop {
                tick.tick().await;
                let secs = started.elapsed().as_secs_f64();
                let done = progress.done.load(Ordering::Relaxed);
                let resources = progress.resources.load(Ordering::Relaxed);
                eprintln!(
                    "ingest: {done}/{total} bundles, {:.2} bundles/s, {:.1} resources/s, {} errors, {secs:.0} s",
                    done as f64 / secs,
                    resources as f64 / secs,
                    progress.errors.load(Ordering::Relaxed),
                );
            }
        })
    };

    let tasks: Vec<_> = (0..cfg.clients)
        .map(|_| {
            let (client, files, next, progress, base) = (
                client.clone(),
                Arc::clone(&files),
                Arc::clone(&next),
                Arc::clone(&progress),
                Arc::clone(&base),
            );
            tokio::spawn(async move {
                let mut result = ClientResult::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let nfiles = files.len() as u64;
                    let path = files[(n % nfiles) as usize].clone();
                    let copy = u32::try_from(n / nfiles).unwrap_or(u32::MAX);
                    let outcome = async {
                        let p = path.clone();
                        let prepared = tokio::task::spawn_blocking(move || prepare(&p, copy))
                            .await
                            .map_err(|e| format!("prepare task failed: {e}"))??;
                        let began = Instant::now();
                        post(&client, &base, prepared.body, prepared.entries).await?;
                        Ok::<_, String>((began.elapsed(), prepared.entries))
                    }
                    .await;
                    match outcome {
                        Ok((latency, entries)) => {
                            let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
                            result.latencies_us.push(us);
                            progress.resources.fetch_add(entries, Ordering::Relaxed);
                        }
                        Err(e) => {
                            progress.errors.fetch_add(1, Ordering::Relaxed);
                            let name = path.file_name().map_or_else(
                                || path.display().to_string(),
                                |f| f.to_string_lossy().into_owned(),
                            );
                            result
                                .first_error
                                .get_or_insert_with(|| format!("{name} (copy {copy}): {e}"));
                        }
                    }
                    progress.done.fetch_add(1, Ordering::Relaxed);
                }
                result
            })
        })
        .collect();

    let mut latencies = Vec::new();
    let mut first_error = None;
    let mut task_failures = 0;
    for task in tasks {
        match task.await {
            Ok(r) => {
                latencies.extend(r.latencies_us);
                if first_error.is_none() {
                    first_error = r.first_error;
                }
            }
            Err(e) => {
                task_failures += 1;
                first_error.get_or_insert(format!("ingest task failed: {e}"));
            }
        }
    }
    printer.abort();
    let seconds = started.elapsed().as_secs_f64();
    let errors = progress.errors.load(Ordering::Relaxed) + task_failures;
    if let Some(e) = first_error {
        eprintln!("ingest: {errors} errors; first: {e}");
    }
    Ok(IngestReport::from_samples(
        latencies,
        progress.resources.load(Ordering::Relaxed),
        errors,
        seconds,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small transaction bundle shaped like Synthea's: a Patient, an Encounter and an
    /// Observation pointing at them, a Claim with a contained resource, a decimal to keep exact.
    fn sample() -> Value {
        serde_json::from_str(
            r##"{
  "resourceType": "Bundle",
  "type": "transaction",
  "entry": [
    {
      "fullUrl": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7",
      "resource": {
        "resourceType": "Patient",
        "id": "018f428e-34f6-4707-8009-5ad742f901e7",
        "extension": [{"url": "http://example.org/daly", "valueDecimal": 0.3202898736241102}],
        "identifier": [
          {"system": "https://github.com/synthetichealth/synthea", "value": "018f428e-34f6-4707-8009-5ad742f901e7"},
          {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-35-7127"}
        ],
        "name": [{"family": "Koepp", "given": ["Abdul"]}],
        "birthDate": "1960-04-01"
      },
      "request": {"method": "POST", "url": "Patient"}
    },
    {
      "fullUrl": "urn:uuid:4861d01f-019c-3dac-a153-8334e50919f9",
      "resource": {
        "resourceType": "Encounter",
        "id": "4861d01f-019c-3dac-a153-8334e50919f9",
        "status": "finished",
        "subject": {"reference": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7"}
      },
      "request": {"method": "POST", "url": "Encounter"}
    },
    {
      "fullUrl": "urn:uuid:7a1b1c1d-0000-4000-8000-000000000001",
      "resource": {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
        "subject": {"reference": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7"},
        "encounter": {"reference": "urn:uuid:4861d01f-019c-3dac-a153-8334e50919f9"},
        "valueQuantity": {"value": 1.50, "unit": "cm"}
      },
      "request": {"method": "POST", "url": "Observation"}
    },
    {
      "fullUrl": "urn:uuid:7a1b1c1d-0000-4000-8000-000000000002",
      "resource": {
        "resourceType": "Claim",
        "contained": [
          {"resourceType": "Coverage", "id": "coverage", "identifier": [{"value": "cov-1"}], "status": "active"}
        ],
        "identifier": {"system": "http://example.org/claim", "value": "claim-1"},
        "patient": {"reference": "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7"},
        "insurance": [{"sequence": 1, "focal": true, "coverage": {"reference": "#coverage"}}],
        "provider": {"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "999"}}
      },
      "request": {"method": "POST", "url": "Claim"}
    }
  ]
}"##,
        )
        .unwrap()
    }

    const PATIENT: &str = "urn:uuid:018f428e-34f6-4707-8009-5ad742f901e7";
    const ENCOUNTER: &str = "urn:uuid:4861d01f-019c-3dac-a153-8334e50919f9";

    fn at<'a>(v: &'a Value, pointer: &str) -> &'a str {
        v.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no string at {pointer}"))
    }

    #[test]
    fn copy_zero_is_untouched() {
        let original = sample();
        let mut copy = original.clone();
        make_copy(&mut copy, 0);
        assert_eq!(copy, original);
        assert_eq!(
            serde_json::to_string(&copy).unwrap(),
            serde_json::to_string(&original).unwrap()
        );
    }

    #[test]
    fn copies_get_fresh_uuids_consistent_across_full_urls_references_and_ids() {
        let original = sample();
        let mut copy = original.clone();
        make_copy(&mut copy, 1);

        let patient = at(&copy, "/entry/0/fullUrl");
        let encounter = at(&copy, "/entry/1/fullUrl");
        assert_ne!(patient, PATIENT);
        assert_ne!(encounter, ENCOUNTER);
        for url in [patient, encounter] {
            let uuid = url.strip_prefix("urn:uuid:").expect("still a urn:uuid");
            Uuid::parse_str(uuid).expect("a valid UUID");
        }
        // Every reference to the patient follows its new fullUrl, and so do resource ids.
        assert_eq!(at(&copy, "/entry/1/resource/subject/reference"), patient);
        assert_eq!(at(&copy, "/entry/2/resource/subject/reference"), patient);
        assert_eq!(at(&copy, "/entry/3/resource/patient/reference"), patient);
        assert_eq!(
            at(&copy, "/entry/2/resource/encounter/reference"),
            encounter
        );
        assert_eq!(
            format!("urn:uuid:{}", at(&copy, "/entry/0/resource/id")),
            patient
        );
        assert_eq!(
            format!("urn:uuid:{}", at(&copy, "/entry/1/resource/id")),
            encounter
        );
        // All four fullUrls are new and distinct.
        let urls: std::collections::HashSet<&str> = (0..4)
            .map(|i| at(&copy, &format!("/entry/{i}/fullUrl")))
            .collect();
        assert_eq!(urls.len(), 4);
        for i in 0..4 {
            assert_ne!(
                at(&copy, &format!("/entry/{i}/fullUrl")),
                at(&original, &format!("/entry/{i}/fullUrl"))
            );
        }
        // Local references to contained resources stay as they are.
        assert_eq!(
            at(&copy, "/entry/3/resource/insurance/0/coverage/reference"),
            "#coverage"
        );
        // No old UUID is left anywhere.
        let text = serde_json::to_string(&copy).unwrap();
        assert!(!text.contains("4861d01f-019c-3dac-a153-8334e50919f9"));
        assert!(!text.contains("7a1b1c1d-0000-4000-8000-00000000000"));
    }

    #[test]
    fn every_copy_has_its_own_uuids() {
        let mut one = sample();
        let mut two = sample();
        make_copy(&mut one, 1);
        make_copy(&mut two, 2);
        assert_ne!(at(&one, "/entry/0/fullUrl"), at(&two, "/entry/0/fullUrl"));
        let mut again = sample();
        make_copy(&mut again, 1);
        assert_ne!(at(&one, "/entry/0/fullUrl"), at(&again, "/entry/0/fullUrl"));
    }

    #[test]
    fn copies_suffix_every_resource_identifier() {
        let mut copy = sample();
        make_copy(&mut copy, 7);
        assert_eq!(
            at(&copy, "/entry/0/resource/identifier/0/value"),
            "018f428e-34f6-4707-8009-5ad742f901e7-c7"
        );
        assert_eq!(
            at(&copy, "/entry/0/resource/identifier/1/value"),
            "999-35-7127-c7"
        );
        assert_eq!(
            at(&copy, "/entry/0/resource/identifier/1/system"),
            "http://hl7.org/fhir/sid/us-ssn"
        );
        // A single identifier object and a contained resource's identifiers.
        assert_eq!(
            at(&copy, "/entry/3/resource/identifier/value"),
            "claim-1-c7"
        );
        assert_eq!(
            at(&copy, "/entry/3/resource/contained/0/identifier/0/value"),
            "cov-1-c7"
        );
        // A Reference.identifier names someone else's identifier: left alone.
        assert_eq!(
            at(&copy, "/entry/3/resource/provider/identifier/value"),
            "999"
        );
        // Everything else is unchanged: names, dates, decimals exactly as written.
        assert_eq!(at(&copy, "/entry/0/resource/name/0/family"), "Koepp");
        let text = serde_json::to_string(&copy).unwrap();
        assert!(text.contains("0.3202898736241102"), "{text}");
        assert!(text.contains("\"value\":1.50"), "{text}");
    }

    #[test]
    fn transaction_answers_are_checked_entry_by_entry() {
        let ok = br#"{"resourceType":"Bundle","type":"transaction-response","entry":[
            {"response":{"status":"201 Created"}},{"response":{"status":"200 OK"}}]}"#;
        assert!(check_response(reqwest::StatusCode::OK, ok, 2).is_ok());
        assert!(check_response(reqwest::StatusCode::OK, ok, 3).is_err());
        assert!(check_response(reqwest::StatusCode::BAD_REQUEST, ok, 2).is_err());
        let bad = br#"{"resourceType":"Bundle","entry":[
            {"response":{"status":"201 Created"}},{"response":{"status":"409 Conflict"}}]}"#;
        let e = check_response(reqwest::StatusCode::OK, bad, 2).unwrap_err();
        assert!(e.contains("1 of 2") && e.contains("409"), "{e}");
    }

    #[test]
    fn report_rates_count_successes_only() {
        let r = IngestReport::from_samples(vec![2_000, 1_000, 3_000], 300, 1, 2.0);
        assert_eq!((r.bundles, r.errors, r.resources), (4, 1, 300));
        assert_eq!(r.bundles_per_s, 1.5);
        assert_eq!(r.resources_per_s, 150.0);
        assert_eq!(r.p50_ms, Some(2.0));
        assert_eq!(r.max_ms, Some(3.0));
        assert_eq!(r.to_json()["scenario"], "ingest");
    }

    #[test]
    fn only_json_files_are_bundles() {
        let dir = std::env::temp_dir().join(format!("curanet-bench-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.json"), "{}").unwrap();
        std::fs::write(dir.join("a.json"), "{}").unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        let files = bundle_files(&dir).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.json", "b.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(bundle_files(&dir).is_err());
    }
}
