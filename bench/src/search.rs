//! The `search` scenario: samples values from whatever data the server holds, then times a fixed
//! set of search queries one request at a time (latency, not throughput).

use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::{Client, Url};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::http::{FHIR_JSON, describe, is_loopback_host};
use crate::report::{fmt_ms, percentile, round3};

/// Longest one search may take before it is counted as an error.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Values taken from one Patient on the server, to fill the query templates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// The Patient's logical id.
    pub id: String,
    /// Its first identifier that has both a system and a value, as `system|value`.
    pub identifier: Option<String>,
    /// `name[0].family`.
    pub family: Option<String>,
    /// `birthDate` (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`).
    pub birth_date: Option<String>,
    /// The first coding of one of the Patient's Observations, as `system|code`.
    pub observation_code: Option<String>,
    /// The id of one of the Patient's Encounters.
    pub encounter: Option<String>,
}

impl Sample {
    /// Birth year + 30, the lower bound of the Observation date query.
    fn date_bound(&self) -> Option<String> {
        let year: i32 = self.birth_date.as_deref()?.get(..4)?.parse().ok()?;
        Some(format!("ge{}-01-01", year + 30))
    }
}

/// Search parameters as name/value pairs, not yet encoded.
pub type Params = Vec<(&'static str, String)>;

/// One query template: a resource type and the parameters filled from a sample (`None` when the
/// sample lacks a value the template needs; that sample is skipped for this query).
pub struct Query {
    pub name: &'static str,
    pub template: &'static str,
    pub resource_type: &'static str,
    pub params: fn(&Sample) -> Option<Params>,
}

/// The queries, in the order they run.
pub const QUERIES: &[Query] = &[
    Query {
        name: "patient-identifier",
        template: "Patient?identifier={system}|{value}",
        resource_type: "Patient",
        params: |s| Some(vec![("identifier", s.identifier.clone()?)]),
    },
    Query {
        name: "patient-name-birthdate",
        template: "Patient?name={family}&birthdate={birthDate}",
        resource_type: "Patient",
        params: |s| {
            Some(vec![
                ("name", s.family.clone()?),
                ("birthdate", s.birth_date.clone()?),
            ])
        },
    },
    Query {
        name: "obs-patient-code",
        template: "Observation?patient={id}&code={system}|{code}",
        resource_type: "Observation",
        params: |s| {
            Some(vec![
                ("patient", s.id.clone()),
                ("code", s.observation_code.clone()?),
            ])
        },
    },
    Query {
        name: "obs-patient-date",
        template: "Observation?patient={id}&date=ge{birthYear+30}-01-01",
        resource_type: "Observation",
        params: |s| Some(vec![("patient", s.id.clone()), ("date", s.date_bound()?)]),
    },
    Query {
        name: "obs-chained-identifier",
        template: "Observation?subject.identifier={system}|{value}",
        resource_type: "Observation",
        params: |s| Some(vec![("subject.identifier", s.identifier.clone()?)]),
    },
    Query {
        name: "patient-has-obs-code",
        template: "Patient?_has:Observation:patient:code={system}|{code}",
        resource_type: "Patient",
        params: |s| {
            Some(vec![(
                "_has:Observation:patient:code",
                s.observation_code.clone()?,
            )])
        },
    },
    Query {
        name: "encounter-revinclude-obs",
        template: "Encounter?patient={id}&_revinclude=Observation:encounter",
        resource_type: "Encounter",
        // Only for patients that have an Encounter, so every request has something to include.
        params: |s| {
            s.encounter.as_ref()?;
            Some(vec![
                ("patient", s.id.clone()),
                ("_revinclude", "Observation:encounter".to_string()),
            ])
        },
    },
    Query {
        name: "medreq-patient-status",
        template: "MedicationRequest?patient={id}&status=active",
        resource_type: "MedicationRequest",
        params: |s| {
            Some(vec![
                ("patient", s.id.clone()),
                ("status", "active".to_string()),
            ])
        },
    },
    Query {
        name: "obs-code-count",
        template: "Observation?code={system}|{code}&_summary=count",
        resource_type: "Observation",
        params: |s| {
            Some(vec![
                ("code", s.observation_code.clone()?),
                ("_summary", "count".to_string()),
            ])
        },
    },
];

/// The latency figures of one query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryReport {
    pub name: &'static str,
    pub template: &'static str,
    /// Requests sent (successful or not).
    pub requests: u64,
    /// Non-2xx answers, transport errors and timeouts.
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Mean `Bundle.total` of the successful answers that had one.
    pub mean_total: Option<f64>,
}

impl QueryReport {
    fn from_samples(
        query: &Query,
        mut latencies_us: Vec<u32>,
        errors: u64,
        totals: &[u64],
    ) -> Self {
        latencies_us.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        Self {
            name: query.name,
            template: query.template,
            requests: latencies_us.len() as u64 + errors,
            errors,
            p50_ms: percentile(&latencies_us, 50.0).map(ms),
            p99_ms: percentile(&latencies_us, 99.0).map(ms),
            max_ms: latencies_us.last().copied().map(ms),
            mean_total: (!totals.is_empty())
                .then(|| totals.iter().sum::<u64>() as f64 / totals.len() as f64),
        }
    }

    /// The report as one JSON object, keys in a fixed order.
    pub fn to_json(&self) -> Value {
        json!({
            "scenario": "search",
            "query": self.name,
            "template": self.template,
            "n": self.requests,
            "errors": self.errors,
            "p50_ms": self.p50_ms.map(round3),
            "p99_ms": self.p99_ms.map(round3),
            "max_ms": self.max_ms.map(round3),
            "mean_total": self.mean_total.map(round3),
        })
    }

    fn table_row(&self) -> String {
        format!(
            "{:<24} {:>6} {:>6} {:>9} {:>9} {:>9} {:>10}  {}",
            self.name,
            self.requests,
            self.errors,
            fmt_ms(self.p50_ms),
            fmt_ms(self.p99_ms),
            fmt_ms(self.max_ms),
            self.mean_total
                .map_or_else(|| "-".to_string(), |t| format!("{t:.1}")),
            self.template,
        )
    }
}

/// Prints the query reports as a table, or one JSON line each.
pub fn print(reports: &[QueryReport], as_json: bool) {
    if as_json {
        for r in reports {
            println!("{}", r.to_json());
        }
        return;
    }
    println!(
        "{:<24} {:>6} {:>6} {:>9} {:>9} {:>9} {:>10}  template",
        "query", "n", "errors", "p50 ms", "p99 ms", "max ms", "mean total"
    );
    for r in reports {
        println!("{}", r.table_row());
    }
}

/// The result of one search request.
struct Answer {
    status: reqwest::StatusCode,
    body: Value,
}

/// GETs `url` with `params` (form-encoded by reqwest) and parses the answer as JSON. Asks for
/// `Prefer: handling=strict`, so a parameter the server does not support is an error rather
/// than silently dropped (which would time a different query).
async fn get(client: &Client, url: &str, params: &[(&str, String)]) -> Result<Answer, String> {
    let resp = client
        .get(url)
        .query(params)
        .header(ACCEPT, FHIR_JSON)
        .header("prefer", "handling=strict")
        .timeout(SEARCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| describe(&e))?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer { status, body })
}

/// GETs a searchset during discovery; anything but 2xx is fatal.
async fn get_ok(client: &Client, url: &str, params: &[(&str, String)]) -> Result<Value, String> {
    let answer = get(client, url, params)
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !answer.status.is_success() {
        return Err(format!(
            "GET {url} {params:?}: status {}: {}",
            answer.status,
            outcome_text(&answer.body)
        ));
    }
    Ok(answer.body)
}

/// The diagnostics of an OperationOutcome answer, for error messages.
fn outcome_text(body: &Value) -> String {
    let issues = body
        .get("issue")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let text: Vec<&str> = issues
        .iter()
        .filter_map(|i| i.get("diagnostics").and_then(Value::as_str))
        .collect();
    if text.is_empty() {
        body.to_string().chars().take(300).collect()
    } else {
        text.join("; ")
    }
}

/// The resources of a searchset's `match` entries.
fn matches(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| {
            e.pointer("/search/mode")
                .and_then(Value::as_str)
                .is_none_or(|m| m == "match")
        })
        .filter_map(|e| e.get("resource"))
}

/// The URL of a searchset's `next` link, when it is on loopback (a link elsewhere is not followed).
fn next_link(bundle: &Value) -> Option<String> {
    let url = bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()?;
    let parsed = Url::parse(url).ok()?;
    (parsed.scheme() == "http" && is_loopback_host(parsed.host_str()?)).then(|| url.to_string())
}

/// `system|value` of the first identifier that has both.
fn first_identifier(patient: &Value) -> Option<String> {
    patient.get("identifier")?.as_array()?.iter().find_map(|i| {
        let system = i.get("system")?.as_str()?;
        let value = i.get("value")?.as_str()?;
        Some(format!("{system}|{value}"))
    })
}

/// `system|code` of the first coding of `code` that has both.
fn first_coding(resource: &Value) -> Option<String> {
    resource
        .pointer("/code/coding")?
        .as_array()?
        .iter()
        .find_map(|c| {
            let system = c.get("system")?.as_str()?;
            let code = c.get("code")?.as_str()?;
            Some(format!("{system}|{code}"))
        })
}

/// The values a Patient resource gives by itself (the Observation code and Encounter id come
/// from further searches).
pub fn sample_from_patient(patient: &Value) -> Option<Sample> {
    let id = patient.get("id")?.as_str()?.to_string();
    Some(Sample {
        id,
        identifier: first_identifier(patient),
        family: patient
            .pointer("/name/0/family")
            .and_then(Value::as_str)
            .map(str::to_string),
        birth_date: patient
            .get("birthDate")
            .and_then(Value::as_str)
            .map(str::to_string),
        observation_code: None,
        encounter: None,
    })
}

/// Samples `k` Patients from the server (`Patient?_count=k`, following `next` links if the
/// server pages smaller), then one Observation code and one Encounter id for each.
pub async fn discover(client: &Client, base: &str, k: usize) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    let mut page = get_ok(
        client,
        &format!("{base}/Patient"),
        &[("_count", k.to_string())],
    )
    .await?;
    loop {
        samples.extend(matches(&page).filter_map(sample_from_patient));
        if samples.len() >= k {
            break;
        }
        match next_link(&page) {
            Some(next) => page = get_ok(client, &next, &[]).await?,
            None => break,
        }
    }
    samples.truncate(k);
    if samples.is_empty() {
        return Err(format!(
            "no Patients at {base}; load data first (curanet-bench ingest)"
        ));
    }
    for s in &mut samples {
        let obs = get_ok(
            client,
            &format!("{base}/Observation"),
            &[("patient", s.id.clone()), ("_count", "1".into())],
        )
        .await?;
        s.observation_code = matches(&obs).find_map(first_coding);
        let enc = get_ok(
            client,
            &format!("{base}/Encounter"),
            &[("patient", s.id.clone()), ("_count", "1".into())],
        )
        .await?;
        s.encounter = matches(&enc)
            .find_map(|e| e.get("id").and_then(Value::as_str))
            .map(str::to_string);
    }
    let count = |f: fn(&Sample) -> bool| samples.iter().filter(|s| f(s)).count();
    eprintln!(
        "search: sampled {} patients: {} with an identifier, {} with family name and birth date, {} with an Observation code, {} with an Encounter",
        samples.len(),
        count(|s| s.identifier.is_some()),
        count(|s| s.family.is_some() && s.birth_date.is_some()),
        count(|s| s.observation_code.is_some()),
        count(|s| s.encounter.is_some()),
    );
    Ok(samples)
}

/// Runs `repeat` rounds of `query` over the samples, one request at a time.
async fn time_query(
    client: &Client,
    base: &str,
    query: &Query,
    samples: &[Sample],
    repeat: u32,
) -> QueryReport {
    let url = format!("{base}/{}", query.resource_type);
    let filled: Vec<_> = samples.iter().filter_map(|s| (query.params)(s)).collect();
    let mut latencies = Vec::with_capacity(filled.len() * repeat as usize);
    let mut totals = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for _ in 0..repeat {
        for params in &filled {
            let began = Instant::now();
            let answer = get(client, &url, params).await;
            let us = u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX);
            match answer {
                Ok(a) if a.status.is_success() => {
                    latencies.push(us);
                    if let Some(t) = a.body.get("total").and_then(Value::as_u64) {
                        totals.push(t);
                    }
                }
                Ok(a) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| {
                        format!("{params:?}: status {}: {}", a.status, outcome_text(&a.body))
                    });
                }
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{params:?}: {e}"));
                }
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!("search {}: {errors} errors; first: {e}", query.name);
    }
    if filled.is_empty() {
        eprintln!(
            "search {}: no sampled patient has the values it needs; skipped",
            query.name
        );
    }
    QueryReport::from_samples(query, latencies, errors, &totals)
}

/// Discovers samples, then times every query in [`QUERIES`].
pub async fn run(
    client: &Client,
    base: &str,
    patients: usize,
    repeat: u32,
) -> Result<Vec<QueryReport>, String> {
    let samples = discover(client, base, patients).await?;
    let mut reports = Vec::with_capacity(QUERIES.len());
    for query in QUERIES {
        let started = Instant::now();
        let r = time_query(client, base, query, &samples, repeat).await;
        eprintln!(
            "search {}: {} requests in {:.1} s",
            query.name,
            r.requests,
            started.elapsed().as_secs_f64()
        );
        reports.push(r);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sample {
        Sample {
            id: "p1".into(),
            identifier: Some("http://hospital.smarthealthit.org|a b&c".into()),
            family: Some("O'Keefe".into()),
            birth_date: Some("1960-04-01".into()),
            observation_code: Some("http://loinc.org|8302-2".into()),
            encounter: Some("e1".into()),
        }
    }

    #[test]
    fn every_query_fills_from_a_full_sample() {
        let s = sample();
        for q in QUERIES {
            assert!((q.params)(&s).is_some(), "{}", q.name);
        }
        assert_eq!(QUERIES.len(), 9);
    }

    #[test]
    fn date_bound_is_birth_year_plus_thirty() {
        assert_eq!(sample().date_bound().as_deref(), Some("ge1990-01-01"));
        let s = Sample {
            birth_date: Some("19x0".into()),
            ..sample()
        };
        assert_eq!(s.date_bound(), None);
    }

    #[test]
    fn queries_needing_a_missing_value_are_skipped() {
        let bare = Sample {
            id: "p1".into(),
            ..Sample::default()
        };
        let runnable: Vec<_> = QUERIES
            .iter()
            .filter(|q| (q.params)(&bare).is_some())
            .map(|q| q.name)
            .collect();
        assert_eq!(runnable, ["medreq-patient-status"]);
    }

    #[test]
    fn parameters_are_form_encoded() {
        let client = Client::new();
        let q = &QUERIES[0];
        let req = client
            .get("http://127.0.0.1:1/fhir/Patient")
            .query(&(q.params)(&sample()).unwrap())
            .build()
            .unwrap();
        assert_eq!(
            req.url().query(),
            Some("identifier=http%3A%2F%2Fhospital.smarthealthit.org%7Ca+b%26c")
        );
        let has = QUERIES
            .iter()
            .find(|q| q.name == "patient-has-obs-code")
            .unwrap();
        let req = client
            .get("http://127.0.0.1:1/fhir/Patient")
            .query(&(has.params)(&sample()).unwrap())
            .build()
            .unwrap();
        let pairs: Vec<(String, String)> = req.url().query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            [(
                "_has:Observation:patient:code".to_string(),
                "http://loinc.org|8302-2".to_string()
            )]
        );
    }

    #[test]
    fn samples_come_from_patient_resources() {
        let patient = json!({
            "resourceType": "Patient",
            "id": "abc",
            "identifier": [
                {"type": {"text": "no system"}, "value": "x"},
                {"system": "https://github.com/synthetichealth/synthea", "value": "u-1"}
            ],
            "name": [{"family": "Koepp", "given": ["Abdul"]}],
            "birthDate": "1960-04-01"
        });
        let s = sample_from_patient(&patient).unwrap();
        assert_eq!(s.id, "abc");
        assert_eq!(
            s.identifier.as_deref(),
            Some("https://github.com/synthetichealth/synthea|u-1")
        );
        assert_eq!(s.family.as_deref(), Some("Koepp"));
        assert_eq!(s.birth_date.as_deref(), Some("1960-04-01"));
        assert!(sample_from_patient(&json!({"resourceType": "Patient"})).is_none());
    }

    #[test]
    fn searchset_helpers() {
        let bundle = json!({
            "resourceType": "Bundle",
            "total": 2,
            "link": [
                {"relation": "self", "url": "http://127.0.0.1:8080/fhir/Observation?x=1"},
                {"relation": "next", "url": "http://127.0.0.1:8080/fhir/Observation?_cursor=a"}
            ],
            "entry": [
                {"resource": {"resourceType": "Observation", "code": {"coding": [{"code": "no-system"}, {"system": "http://loinc.org", "code": "1-8"}]}}, "search": {"mode": "match"}},
                {"resource": {"resourceType": "Encounter", "id": "e"}, "search": {"mode": "include"}}
            ]
        });
        let found: Vec<_> = matches(&bundle).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(
            first_coding(found[0]).as_deref(),
            Some("http://loinc.org|1-8")
        );
        assert_eq!(
            next_link(&bundle).as_deref(),
            Some("http://127.0.0.1:8080/fhir/Observation?_cursor=a")
        );
        let away = json!({"link": [{"relation": "next", "url": "http://example.org/fhir/Patient?_cursor=a"}]});
        assert_eq!(next_link(&away), None);
    }

    #[test]
    fn report_means_the_totals_and_keeps_errors_out_of_latency() {
        let r = QueryReport::from_samples(&QUERIES[0], vec![3_000, 1_000], 1, &[1, 2]);
        assert_eq!((r.requests, r.errors), (3, 1));
        assert_eq!((r.p50_ms, r.max_ms), (Some(1.0), Some(3.0)));
        assert_eq!(r.mean_total, Some(1.5));
        let j = r.to_json();
        assert_eq!(j["query"], "patient-identifier");
        assert_eq!(j["n"], 3);
        let none = QueryReport::from_samples(&QUERIES[0], Vec::new(), 0, &[]);
        assert_eq!(none.to_json()["mean_total"], Value::Null);
    }
}
