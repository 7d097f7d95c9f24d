//! `Patient/[id]/$everything` (and type-level `Patient/$everything`): the patient, every resource
//! in the patient's compartment, and the resources those reference that belong to no patient
//! (practitioners, organizations, locations, medications, ...), as one stream ordered by resource
//! type then id and keyset-paged, so pages stay stable while data changes.

use std::collections::BTreeMap;

use curanet_fhir::datetime::parse_instant;
use curanet_fhir::parse_json;
use curanet_fhir_profiles::SearchParamType;
use curanet_storage::{
    Clause, Compartment, Cursor, OperationFilter, Predicate, Prefix, SearchSpec, StoredVersion,
};

use serde_json::Value;

use crate::{Engine, EngineError, Result};

/// Default page size of `$everything`.
pub const DEFAULT_COUNT: u32 = 100;
/// Largest page size a client may ask for.
pub const MAX_COUNT: u32 = 1000;

/// Types that belong to no patient's compartment but that compartment resources commonly
/// reference: one level of them is returned too (`search.mode = include`).
pub const REFERENCED_TYPES: &[&str] = &[
    "Location",
    "Medication",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Substance",
];

/// The parameters of `$everything` a client sent.
#[derive(Debug, Clone, Default)]
pub struct EverythingParams {
    /// `_since`: only resources last updated at or after this instant (as written).
    pub since: Option<String>,
    /// `_type`: only these resource types (empty: all).
    pub types: Vec<String>,
    /// `_count`: the page size asked for.
    pub count: Option<u32>,
    /// The paging cursor (`Type/id` of the last entry of the previous page).
    pub cursor: Option<String>,
    /// Parameters not applied, with the reason.
    pub ignored: Vec<(String, String)>,
}

impl EverythingParams {
    /// Reads the parameters from query pairs; unknown ones are reported in `ignored`.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self> {
        let mut p = EverythingParams::default();
        for (k, v) in pairs {
            match k.as_str() {
                "_since" => p.since = Some(v.clone()),
                "_type" => p.types.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(String::from),
                ),
                "_count" => {
                    p.count = Some(v.parse().map_err(|_| {
                        EngineError::BadRequest(format!("_count must be a whole number, not '{v}'"))
                    })?)
                }
                "_cursor" => p.cursor = Some(v.clone()),
                "_format" | "_pretty" => {}
                other => p.ignored.push((
                    other.to_string(),
                    "not supported by $everything (use _since, _type, _count)".into(),
                )),
            }
        }
        p.types.sort();
        p.types.dedup();
        Ok(p)
    }

    /// The query pairs that reproduce these parameters (for paging links), with another cursor.
    pub fn to_pairs(&self, cursor: Option<&str>) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if let Some(s) = &self.since {
            pairs.push(("_since".into(), s.clone()));
        }
        if !self.types.is_empty() {
            pairs.push(("_type".into(), self.types.join(",")));
        }
        pairs.push(("_count".into(), self.page_size().to_string()));
        if let Some(c) = cursor {
            pairs.push(("_cursor".into(), c.to_string()));
        }
        pairs
    }

    /// The page size: `_count` within 1..=1000, 100 by default.
    pub fn page_size(&self) -> u32 {
        self.count.unwrap_or(DEFAULT_COUNT).clamp(1, MAX_COUNT)
    }
}

/// The query pairs of a `Parameters` resource sent as the body of a POSTed operation: each
/// parameter's name with its primitive `value[x]` as text.
pub fn parameters_to_pairs(body: &[u8]) -> Result<Vec<(String, String)>> {
    let value = parse_json(body)?;
    if value["resourceType"] != "Parameters" {
        return Err(EngineError::BadRequest(
            "the body of an operation must be a Parameters resource".into(),
        ));
    }
    let mut pairs = Vec::new();
    for p in value["parameter"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        let primitive = p.as_object().into_iter().flatten().find_map(|(k, v)| {
            k.starts_with("value").then_some(v).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
        });
        match primitive {
            Some(v) if !name.is_empty() => pairs.push((name.to_string(), v)),
            _ => {
                return Err(EngineError::BadRequest(format!(
                    "parameter '{name}' needs a name and a primitive value[x]"
                )));
            }
        }
    }
    Ok(pairs)
}

/// Why a resource is in the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMode {
    /// The patient or a resource of its compartment (`search.mode = match`).
    Match,
    /// A resource referenced by the compartment (`search.mode = include`).
    Include,
}

/// One page of `$everything`.
#[derive(Debug)]
pub struct EverythingPage {
    /// In resource type, then id order.
    pub entries: Vec<(StoredVersion, EntryMode)>,
    /// The cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
    /// The number of matches, when the whole result fits on this first page.
    pub total: Option<u64>,
}

impl Engine {
    /// `$everything` on `resource_type` (only `Patient` has it), for one patient (`Some(id)`: 404
    /// unknown, 410 deleted) or for all patients together (`None`, type level).
    pub async fn everything(
        &self,
        resource_type: &str,
        patient: Option<&str>,
        params: &EverythingParams,
    ) -> Result<EverythingPage> {
        self.check_type(resource_type)?;
        if resource_type != "Patient" {
            return Err(EngineError::NotFound(format!(
                "operation $everything on {resource_type}"
            )));
        }
        if let Some(id) = patient {
            self.read("Patient", id).await?;
        }
        let defs = self.definitions().clone();
        for t in &params.types {
            if !defs.is_resource_type(t) {
                return Err(EngineError::BadRequest(format!(
                    "_type: unknown resource type '{t}'"
                )));
            }
        }
        let since = match &params.since {
            Some(s) => Some(parse_instant(s).ok_or_else(|| {
                EngineError::BadRequest(format!(
                    "_since must be an instant (e.g. 2024-01-01T00:00:00Z), not '{s}'"
                ))
            })?),
            None => None,
        };
        let cursor = match &params.cursor {
            Some(c) => Some(
                c.split_once('/')
                    .filter(|(t, id)| defs.is_resource_type(t) && !id.is_empty())
                    .map(|(t, id)| (t.to_string(), id.to_string()))
                    .ok_or_else(|| {
                        EngineError::BadRequest(format!("invalid paging cursor '{c}'"))
                    })?,
            ),
            None => None,
        };

        // The compartment: for each member type, the reference parameters that link it.
        let pc = defs.patient_compartment();
        let mut links: Vec<(String, Vec<String>)> = pc
            .resource_types()
            .map(|t| {
                let params: Vec<String> = pc
                    .params(t)
                    .iter()
                    .filter(|p| {
                        defs.search_parameters(t)
                            .iter()
                            .any(|sp| sp.code == **p && sp.kind == SearchParamType::Reference)
                    })
                    .cloned()
                    .collect();
                (t.to_string(), params)
            })
            .filter(|(_, params)| !params.is_empty())
            .collect();
        links.sort();
        let compartment = Compartment {
            owner_type: "Patient".into(),
            owner_id: patient.map(String::from),
            params: links,
        };

        // The stream: every type, in name order, with why it is there.
        let mut stream: BTreeMap<String, EntryMode> = BTreeMap::new();
        stream.insert("Patient".into(), EntryMode::Match);
        for (t, _) in &compartment.params {
            stream.insert(t.clone(), EntryMode::Match);
        }
        for t in REFERENCED_TYPES {
            stream.entry((*t).to_string()).or_insert(EntryMode::Include);
        }
        if !params.types.is_empty() {
            stream.retain(|t, _| params.types.contains(t));
        }
        if let Some((after_type, _)) = &cursor {
            stream.retain(|t, _| t >= after_type);
        }

        let count = params.page_size();
        let mut entries = Vec::new();
        let mut next_cursor = None;
        let types: Vec<(String, EntryMode)> = stream.into_iter().collect();
        for (i, (t, mode)) in types.iter().enumerate() {
            let remaining = count - entries.len() as u32;
            let after = cursor
                .as_ref()
                .filter(|(ct, _)| ct == t)
                .map(|(_, id)| Cursor {
                    values: Vec::new(),
                    id: id.clone(),
                    backward: false,
                });
            let page = self
                .store()
                .search(&self.type_spec(t, *mode, &compartment, since, remaining, after))
                .await?;
            let more_of_type = page.next.is_some();
            entries.extend(page.resources.into_iter().map(|v| (v, *mode)));
            if entries.len() as u32 >= count {
                // The page is full: a next page exists if this type has more, or a later one has any.
                let mut more = more_of_type;
                for (later, later_mode) in types.iter().skip(i + 1) {
                    if more {
                        break;
                    }
                    let probe = self
                        .store()
                        .search(&self.type_spec(later, *later_mode, &compartment, since, 1, None))
                        .await?;
                    more = !probe.resources.is_empty();
                }
                if more && let Some((last, _)) = entries.last() {
                    next_cursor = Some(format!("{}/{}", last.resource_type, last.id));
                }
                break;
            }
        }
        let total = (params.cursor.is_none() && next_cursor.is_none()).then(|| {
            entries
                .iter()
                .filter(|(_, mode)| *mode == EntryMode::Match)
                .count() as u64
        });
        Ok(EverythingPage {
            entries,
            next_cursor,
            total,
        })
    }

    /// The search for one type of the stream.
    fn type_spec(
        &self,
        resource_type: &str,
        mode: EntryMode,
        compartment: &Compartment,
        since: Option<curanet_fhir::Instant>,
        count: u32,
        after: Option<Cursor>,
    ) -> SearchSpec {
        let filter = match mode {
            EntryMode::Match => OperationFilter::InCompartment(compartment.clone()),
            EntryMode::Include => OperationFilter::ReferencedFrom(compartment.clone()),
        };
        let mut clauses = vec![Clause::AnyOf {
            predicates: vec![Predicate::Operation(Box::new(filter))],
            negated: false,
        }];
        if let Some(since) = since {
            // `ge` on a one-microsecond range: last updated at or after the instant.
            clauses.push(Clause::AnyOf {
                predicates: vec![Predicate::LastUpdated {
                    prefix: Prefix::Ge,
                    lo: since.micros(),
                    hi: since.micros() + 1,
                }],
                negated: false,
            });
        }
        SearchSpec {
            resource_type: resource_type.to_string(),
            clauses,
            sort: Vec::new(),
            count,
            after,
            total: false,
            includes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use curanet_fhir::Definitions;
    use curanet_storage::testing::ThrowawayPostgres;
    use curanet_storage::{StoreOptions, open};
    use serde_json::json;

    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parameters_are_read_and_written_back() {
        let p = EverythingParams::from_pairs(&pairs(&[
            ("_type", "Observation, Condition"),
            ("_type", "Observation"),
            ("_count", "5000"),
            ("_since", "2024-01-01T00:00:00Z"),
            ("start", "2024"),
        ]))
        .unwrap();
        assert_eq!(p.types, ["Condition", "Observation"]);
        assert_eq!(p.page_size(), MAX_COUNT);
        assert_eq!(p.ignored.len(), 1);
        assert_eq!(
            p.to_pairs(Some("Observation/1")),
            pairs(&[
                ("_since", "2024-01-01T00:00:00Z"),
                ("_type", "Condition,Observation"),
                ("_count", "1000"),
                ("_cursor", "Observation/1"),
            ])
        );
        assert!(EverythingParams::from_pairs(&pairs(&[("_count", "x")])).is_err());
        assert_eq!(EverythingParams::default().page_size(), DEFAULT_COUNT);
    }

    #[test]
    fn parameters_body() {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "_type", "valueCode": "Observation"},
            {"name": "_count", "valueInteger": 3}
        ]});
        assert_eq!(
            parameters_to_pairs(body.to_string().as_bytes()).unwrap(),
            pairs(&[("_type", "Observation"), ("_count", "3")])
        );
        assert!(parameters_to_pairs(br#"{"resourceType": "Patient"}"#).is_err());
        let nameless = json!({"resourceType": "Parameters", "parameter": [{"valueString": "x"}]});
        assert!(parameters_to_pairs(nameless.to_string().as_bytes()).is_err());
    }

    const BASE: &str = "http://test/fhir";

    async fn create(engine: &Engine, resource: serde_json::Value) -> String {
        let rt = resource["resourceType"].as_str().unwrap().to_string();
        let body = resource.to_string();
        engine
            .create(&rt, body.as_bytes(), None, BASE)
            .await
            .unwrap()
            .version
            .id
    }

    fn observation(patient: &str, code: &str, date: &str) -> serde_json::Value {
        json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "urn:test", "code": code}]},
            "subject": {"reference": format!("Patient/{patient}")},
            "effectiveDateTime": date})
    }

    /// `$everything` and `$lastn` over one store.
    async fn operations_on(engine: Engine) {
        let doc = create(
            &engine,
            json!({"resourceType": "Practitioner", "name": [{"family": "Iyer"}]}),
        )
        .await;
        let patient = create(
            &engine,
            json!({"resourceType": "Patient", "name": [{"family": "Rao"}]}),
        )
        .await;
        let other = create(
            &engine,
            json!({"resourceType": "Patient", "name": [{"family": "Sen"}]}),
        )
        .await;
        let mut want = vec![format!("Patient/{patient}"), format!("Practitioner/{doc}")];
        let mut newest = Vec::new();
        for (code, date) in [
            ("a", "2024-01-01"),
            ("a", "2024-03-01"),
            ("b", "2023-01-01"),
        ] {
            let mut o = observation(&patient, code, date);
            o["performer"] = json!([{"reference": format!("Practitioner/{doc}")}]);
            let id = create(&engine, o).await;
            if date != "2024-01-01" {
                newest.push(id.clone());
            }
            want.push(format!("Observation/{id}"));
        }
        create(&engine, observation(&other, "a", "2025-01-01")).await;
        want.sort();

        // Paged two at a time: everything once, in type then id order.
        let mut params = EverythingParams::from_pairs(&pairs(&[("_count", "2")])).unwrap();
        let mut seen = Vec::new();
        let mut modes = Vec::new();
        loop {
            let page = engine
                .everything("Patient", Some(&patient), &params)
                .await
                .unwrap();
            assert!(page.entries.len() <= 2);
            for (v, mode) in &page.entries {
                seen.push(format!("{}/{}", v.resource_type, v.id));
                modes.push(*mode);
            }
            match page.next_cursor {
                Some(c) => params.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, want, "type then id order, each once");
        let included: Vec<&String> = seen
            .iter()
            .zip(&modes)
            .filter(|(_, m)| **m == EntryMode::Include)
            .map(|(s, _)| s)
            .collect();
        assert_eq!(included, [&format!("Practitioner/{doc}")]);
        let all = engine
            .everything("Patient", Some(&patient), &EverythingParams::default())
            .await
            .unwrap();
        assert_eq!(all.total, Some(4));
        assert!(matches!(
            engine
                .everything("Patient", Some("nobody"), &EverythingParams::default())
                .await,
            Err(EngineError::NotFound(_))
        ));

        // $lastn: the newest per code of the patient, newest first.
        let q = pairs(&[("patient", patient.as_str())]);
        let result = engine.lastn("Observation", &q, BASE, false).await.unwrap();
        let ids: Vec<String> = result.page.resources.iter().map(|v| v.id.clone()).collect();
        assert_eq!(ids, newest);
        let q = pairs(&[("code", "urn:test|a"), ("max", "1")]);
        let result = engine.lastn("Observation", &q, BASE, false).await.unwrap();
        assert_eq!(result.page.total, Some(2), "one per patient");
        assert!(engine.lastn("Patient", &q, BASE, false).await.is_err());
        let q = pairs(&[("max", "0")]);
        assert!(engine.lastn("Observation", &q, BASE, false).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("curanet-ops-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite:{}", dir.join("db.sqlite").display());
        let store = open(&url, &StoreOptions::default()).await.unwrap();
        operations_on(Engine::new(store.clone(), Definitions::shared())).await;
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_on_postgres() {
        let Some(db) = ThrowawayPostgres::create("operations").await else {
            return;
        };
        let store = open(&db.url, &StoreOptions::default()).await.unwrap();
        operations_on(Engine::new(Arc::clone(&store), Definitions::shared())).await;
        store.close().await;
        db.drop_database().await;
    }
}
