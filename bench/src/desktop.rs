//! The desktop core's figures: the initial sync of a worklist into a fresh local cache, and
//! opening a cached chart. The cache is encrypted at rest, as the app opens it.

use std::time::Instant;

use curanet_desktop_core::{Cache, FhirClient, SecretKey, chart};
use serde_json::json;

/// Creates `patients` patients with `per_patient` Observations each (one transaction Bundle per
/// patient), then syncs them into a fresh cache in `dir` and opens each cached chart; prints the
/// figures.
pub async fn run(
    base: &str,
    patients: usize,
    per_patient: usize,
    dir: &std::path::Path,
) -> Result<(), String> {
    let http = reqwest::Client::new();
    let mut ids = Vec::with_capacity(patients);
    for i in 0..patients {
        let patient = format!("urn:uuid:{}", uuid_like(i));
        let mut entries = vec![
            json!({"fullUrl": patient, "resource": {"resourceType": "Patient",
            "name": [{"family": format!("Worklist{i}")}]}, "request": {"method": "POST", "url": "Patient"}}),
        ];
        for n in 0..per_patient {
            entries.push(json!({"resource": {"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                "subject": {"reference": patient},
                "effectiveDateTime": format!("2026-01-{:02}T08:{:02}:00Z", n % 28 + 1, n % 60),
                "valueQuantity": {"value": 60 + n % 40, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}},
                "request": {"method": "POST", "url": "Observation"}}));
        }
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let r = http
            .post(base)
            .header("content-type", "application/fhir+json")
            .body(bundle.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let answer: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        let location = answer["entry"][0]["response"]["location"]
            .as_str()
            .ok_or_else(|| format!("the transaction failed: {answer}"))?;
        let id = location
            .rsplit_once("Patient/")
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
            .unwrap_or_default();
        ids.push(id.to_string());
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join(format!("bench-cache-{}.db", std::process::id()));
    let cache = Cache::open_sealed(&path, "bench", SecretKey::random(), 1 << 30)
        .await
        .map_err(|e| e.to_string())?;
    let client = FhirClient::new(base, None, cache.clone()).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let synced = client
        .sync_patients(&ids, None, &|_| {})
        .await
        .map_err(|e| e.to_string())?;
    let sync_s = started.elapsed().as_secs_f64();
    let mut opens = Vec::with_capacity(ids.len());
    for id in &ids {
        let t = Instant::now();
        // What the window shows first (and offline): the chart's view model from the cache.
        let chart = chart::cached_chart(&client, id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("patient {id} is not cached"))?;
        let readings: usize = chart.vitals.iter().map(|s| s.points.len()).sum();
        opens.push((t.elapsed().as_secs_f64() * 1000.0, readings + 1));
    }
    opens.sort_by(|a, b| a.0.total_cmp(&b.0));
    let p50 = opens[opens.len() / 2];
    let max = opens[opens.len() - 1];
    println!(
        "initial sync: {patients} patients, {} resources in {sync_s:.2} s ({:.0} resources/s)",
        synced.resources,
        synced.resources as f64 / sync_s
    );
    println!(
        "open a cached chart ({} resources): p50 {:.1} ms, max {:.1} ms",
        p50.1, p50.0, max.0
    );
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// A deterministic UUID-shaped string for the transaction's local references.
fn uuid_like(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}
