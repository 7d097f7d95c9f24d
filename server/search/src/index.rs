//! Extraction of search index rows from a resource: every search parameter the R4 definitions
//! declare for its type, evaluated with the FHIRPath subset, normalised by parameter type.

use std::collections::HashMap;

use curanet_fhir::datetime::parse_date_time;
use curanet_fhir_profiles::{Definitions, SearchParamType};
use curanet_storage::{
    CompositeEntry, DateEntry, IndexRows, Indexing, NumberEntry, QuantityEntry, ReferenceEntry,
    StringEntry, TokenEntry, UriEntry,
};
use serde_json::Value;

use crate::fhirpath::{Expression, Item};
use crate::normalize::fold;

/// A search parameter compiled for extraction.
#[derive(Debug)]
struct Compiled {
    code: String,
    kind: SearchParamType,
    expression: Expression,
    /// For a composite parameter, each component's type and expression (relative to an item).
    components: Vec<(SearchParamType, Expression)>,
}

/// Longest string value indexed, in bytes: PostgreSQL's B-tree entries must stay under ~2.7 kB.
const MAX_STRING_BYTES: usize = 2000;

/// Extracts index rows for every resource type; parse once at start-up, share everywhere.
#[derive(Debug)]
pub struct Indexer {
    by_type: HashMap<String, Vec<Compiled>>,
    /// Types with a narrative (`_text`).
    with_text: std::collections::HashSet<String>,
}

impl Indexer {
    /// Compiles the expressions of every search parameter of every resource type.
    pub fn new(defs: &Definitions) -> Self {
        let mut by_type = HashMap::new();
        for rt in defs.resource_types() {
            let params = defs.search_parameters(rt);
            let compiled: Vec<Compiled> = params
                .iter()
                .filter(|p| p.kind != SearchParamType::Special)
                .filter(|p| !matches!(p.code.as_str(), "_id" | "_lastUpdated"))
                .filter_map(|p| {
                    let expression = Expression::parse(p.expression.as_deref()?).ok()?;
                    let components = p
                        .components
                        .iter()
                        .map(|(url, expr)| {
                            let def = params.iter().find(|d| &d.url == url)?;
                            Some((def.kind, Expression::parse(expr).ok()?))
                        })
                        .collect::<Option<Vec<_>>>()?;
                    Some(Compiled {
                        code: p.code.clone(),
                        kind: p.kind,
                        expression,
                        components,
                    })
                })
                .collect();
            by_type.insert(rt.clone(), compiled);
        }
        let with_text = defs
            .resource_types()
            .iter()
            .filter(|rt| defs.search_parameters(rt).iter().any(|p| p.code == "_text"))
            .cloned()
            .collect();
        Self { by_type, with_text }
    }

    /// The index rows of a resource of type `resource_type`.
    pub fn extract(&self, resource_type: &str, resource: &Value) -> IndexRows {
        let mut rows = IndexRows::default();
        for p in self.by_type.get(resource_type).into_iter().flatten() {
            if p.kind == SearchParamType::Composite {
                composite(&mut rows, p, resource);
                continue;
            }
            for item in p.expression.evaluate(resource) {
                add(&mut rows, &p.code, p.kind, &item);
            }
        }
        if self.with_text.contains(resource_type)
            && let Some(div) = resource.pointer("/text/div").and_then(Value::as_str)
        {
            let text = narrative_text(div);
            if !text.is_empty() {
                rows.strings.push(StringEntry {
                    param: "_text".into(),
                    value: clip(&fold(&text)).into(),
                    exact: String::new(),
                });
            }
        }
        dedup(&mut rows);
        rows
    }
}

impl Indexing for Indexer {
    fn rows(&self, resource_type: &str, resource: &Value) -> IndexRows {
        self.extract(resource_type, resource)
    }
}

/// The tuples of a composite parameter: each item of its expression is one tuple, each
/// component's values (evaluated on that item) its rows at the component's position.
fn composite(rows: &mut IndexRows, p: &Compiled, resource: &Value) {
    for (group, item) in p.expression.evaluate(resource).iter().enumerate() {
        let mut tuple = Vec::new();
        for (pos, (kind, expression)) in p.components.iter().enumerate() {
            let mut values = IndexRows::default();
            for v in expression.evaluate_on(item, resource) {
                add(&mut values, "", *kind, &v);
            }
            let entry = |e: CompositeEntry| CompositeEntry {
                param: p.code.clone(),
                group: group as i64,
                pos: pos as i64,
                ..e
            };
            let before = tuple.len();
            match kind {
                SearchParamType::Token => tuple.extend(values.tokens.into_iter().map(|t| {
                    entry(CompositeEntry {
                        system: Some(t.system),
                        code: Some(t.code),
                        ..Default::default()
                    })
                })),
                SearchParamType::Quantity => tuple.extend(values.quantities.into_iter().map(|q| {
                    entry(CompositeEntry {
                        system: Some(q.system),
                        code: Some(q.code),
                        value: Some(q.value),
                        text: Some(q.unit),
                        ..Default::default()
                    })
                })),
                SearchParamType::Number => tuple.extend(values.numbers.into_iter().map(|n| {
                    entry(CompositeEntry {
                        value: Some(n.value),
                        ..Default::default()
                    })
                })),
                SearchParamType::Date => tuple.extend(values.dates.into_iter().map(|d| {
                    entry(CompositeEntry {
                        lo: Some(d.lo),
                        hi: Some(d.hi),
                        ..Default::default()
                    })
                })),
                SearchParamType::String => tuple.extend(values.strings.into_iter().map(|s| {
                    entry(CompositeEntry {
                        text: Some(s.value),
                        ..Default::default()
                    })
                })),
                SearchParamType::Reference => {
                    tuple.extend(values.references.into_iter().map(|r| {
                        entry(CompositeEntry {
                            system: Some(r.target_type),
                            code: Some(r.target_id),
                            text: Some(r.url),
                            ..Default::default()
                        })
                    }))
                }
                _ => {}
            }
            if tuple.len() == before {
                // A component without a value: the tuple cannot match anything.
                tuple.clear();
                break;
            }
        }
        rows.composites.extend(tuple);
    }
}

/// The text of an XHTML narrative: tags dropped, common entities decoded, spaces collapsed.
fn narrative_text(div: &str) -> String {
    let mut text = String::with_capacity(div.len());
    let mut in_tag = false;
    for c in div.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let decoded = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Cuts a string to at most [`MAX_STRING_BYTES`], at a character boundary.
fn clip(s: &str) -> &str {
    if s.len() <= MAX_STRING_BYTES {
        return s;
    }
    let mut end = MAX_STRING_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn dedup(rows: &mut IndexRows) {
    fn d<T: PartialEq>(v: &mut Vec<T>) {
        let mut out: Vec<T> = Vec::with_capacity(v.len());
        for x in v.drain(..) {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        *v = out;
    }
    d(&mut rows.strings);
    d(&mut rows.tokens);
    d(&mut rows.references);
    d(&mut rows.dates);
    d(&mut rows.numbers);
    d(&mut rows.quantities);
    d(&mut rows.uris);
    d(&mut rows.composites);
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn strings_at<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    match v.get(key) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_number().and_then(|n| n.to_string().parse().ok())
}

fn add(rows: &mut IndexRows, param: &str, kind: SearchParamType, item: &Item<'_>) {
    let v = item.value();
    let ty = item.type_name().unwrap_or("");
    match kind {
        SearchParamType::String => {
            let mut push = |s: &str| {
                if !s.is_empty() {
                    rows.strings.push(StringEntry {
                        param: param.into(),
                        value: clip(&fold(s)).into(),
                        exact: clip(s).into(),
                    });
                }
            };
            match v {
                Value::String(s) => push(s),
                Value::Object(_) => {
                    // HumanName, Address and other structures: every textual part.
                    for key in [
                        "text",
                        "family",
                        "given",
                        "prefix",
                        "suffix",
                        "line",
                        "city",
                        "district",
                        "state",
                        "postalCode",
                        "country",
                    ] {
                        for s in strings_at(v, key) {
                            push(s);
                        }
                    }
                }
                _ => {}
            }
        }
        SearchParamType::Token => tokens(rows, param, ty, v),
        SearchParamType::Reference => {
            if let Some(reference) = str_at(v, "reference").or(v.as_str()) {
                let (target_type, target_id) = split_reference(reference);
                rows.references.push(ReferenceEntry {
                    param: param.into(),
                    target_type,
                    target_id,
                    url: reference.into(),
                });
            }
            // `param:identifier` finds references by the identifier they carry.
            if let Some(identifier) = v.get("identifier")
                && let Some(value) = str_at(identifier, "value")
            {
                rows.tokens.push(TokenEntry {
                    param: format!("{param}:identifier"),
                    system: str_at(identifier, "system").unwrap_or("").into(),
                    code: value.into(),
                });
            }
        }
        SearchParamType::Date => {
            let range = match v {
                Value::String(s) => parse_date_time(s).map(|p| (p.start, p.end)),
                Value::Object(_) => period(v),
                _ => None,
            };
            if let Some((lo, hi)) = range {
                rows.dates.push(DateEntry {
                    param: param.into(),
                    lo,
                    hi,
                });
            }
        }
        SearchParamType::Number => {
            if let Some(value) = number(v) {
                rows.numbers.push(NumberEntry {
                    param: param.into(),
                    value,
                });
            }
        }
        SearchParamType::Quantity => {
            if let Some(value) = v.get("value").and_then(number) {
                let system = str_at(v, "system").unwrap_or("");
                let code = str_at(v, "code").or(str_at(v, "currency")).unwrap_or("");
                rows.quantities.push(QuantityEntry {
                    param: param.into(),
                    value,
                    system: system.into(),
                    code: code.into(),
                    unit: str_at(v, "unit").unwrap_or("").into(),
                });
                // UCUM quantities also in canonical units, under `param:canonical`.
                if system == crate::ucum::SYSTEM
                    && !param.is_empty()
                    && let Some((canonical, factor)) = crate::ucum::canonical(code)
                {
                    rows.quantities.push(QuantityEntry {
                        param: format!("{param}{}", crate::ucum::CANONICAL_SUFFIX),
                        value: value * factor,
                        system: system.into(),
                        code: canonical.into(),
                        unit: String::new(),
                    });
                }
            }
        }
        SearchParamType::Uri => {
            if let Some(s) = v.as_str() {
                rows.uris.push(UriEntry {
                    param: param.into(),
                    value: s.into(),
                });
            }
        }
        SearchParamType::Composite | SearchParamType::Special => {}
    }
}

fn tokens(rows: &mut IndexRows, param: &str, ty: &str, v: &Value) {
    if !param.is_empty() {
        token_extras(rows, param, ty, v);
    }
    let mut push = |system: &str, code: &str| {
        if !code.is_empty() {
            rows.tokens.push(TokenEntry {
                param: param.into(),
                system: system.into(),
                code: code.into(),
            });
        }
    };
    match v {
        Value::Bool(b) => push("", if *b { "true" } else { "false" }),
        Value::String(s) => push("", s),
        Value::Object(_) => match ty {
            "Identifier" => push(
                str_at(v, "system").unwrap_or(""),
                str_at(v, "value").unwrap_or(""),
            ),
            "ContactPoint" => push("", str_at(v, "value").unwrap_or("")),
            "Coding" => push(
                str_at(v, "system").unwrap_or(""),
                str_at(v, "code").unwrap_or(""),
            ),
            _ => {
                // CodeableConcept (and anything shaped like one).
                for coding in v
                    .get("coding")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    push(
                        str_at(coding, "system").unwrap_or(""),
                        str_at(coding, "code").unwrap_or(""),
                    );
                }
                if let (Some(system), Some(code)) = (str_at(v, "system"), str_at(v, "code")) {
                    push(system, code);
                } else if let Some(value) = str_at(v, "value") {
                    push(str_at(v, "system").unwrap_or(""), value);
                }
            }
        },
        _ => {}
    }
}

/// The rows of a token's modifiers: `param:text` (a CodeableConcept's text and its codings'
/// displays, a Coding's display) and `param:of-type` (an Identifier's type codings, as
/// `system|code`, with its value).
fn token_extras(rows: &mut IndexRows, param: &str, ty: &str, v: &Value) {
    let mut text = |s: &str| {
        if !s.is_empty() {
            rows.strings.push(StringEntry {
                param: format!("{param}:text"),
                value: clip(&fold(s)).into(),
                exact: String::new(),
            });
        }
    };
    match ty {
        "Identifier" => {}
        "Coding" => {
            if let Some(d) = str_at(v, "display") {
                text(d);
            }
        }
        _ => {
            if let Some(t) = str_at(v, "text") {
                text(t);
            }
            for coding in v
                .get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(d) = str_at(coding, "display") {
                    text(d);
                }
            }
        }
    }
    if ty == "Identifier"
        && let Some(value) = str_at(v, "value")
    {
        for coding in v
            .pointer("/type/coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(code) = str_at(coding, "code") {
                rows.tokens.push(TokenEntry {
                    param: format!("{param}:of-type"),
                    system: format!("{}|{code}", str_at(coding, "system").unwrap_or("")),
                    code: value.into(),
                });
            }
        }
    }
}

/// `Patient/1`, `http://x/fhir/Patient/1`, `Patient/1/_history/2` → (`Patient`, `1`); other
/// references (canonical URLs, `urn:uuid:`, `#contained`) keep only their URL.
pub fn split_reference(reference: &str) -> (String, String) {
    let trimmed = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let mut parts = trimmed.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(rt))
            if !id.is_empty()
                && rt.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && rt.chars().all(|c| c.is_ascii_alphanumeric())
                && curanet_fhir::is_valid_id(id) =>
        {
            (rt.to_string(), id.to_string())
        }
        _ => (String::new(), String::new()),
    }
}

/// The range a Period (or Timing, or any object with start/end) covers; open ends are unbounded.
fn period(v: &Value) -> Option<(i64, i64)> {
    if let Some(events) = v.get("event").and_then(Value::as_array) {
        let ranges: Vec<(i64, i64)> = events
            .iter()
            .filter_map(Value::as_str)
            .filter_map(parse_date_time)
            .map(|p| (p.start, p.end))
            .collect();
        return Some((
            ranges.iter().map(|r| r.0).min()?,
            ranges.iter().map(|r| r.1).max()?,
        ));
    }
    let start = str_at(v, "start")
        .and_then(parse_date_time)
        .map(|p| p.start);
    let end = str_at(v, "end").and_then(parse_date_time).map(|p| p.end);
    if start.is_none() && end.is_none() {
        return None;
    }
    Some((start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> IndexRows {
        let defs = Definitions::shared();
        let indexer = Indexer::new(&defs);
        let rt = v["resourceType"].as_str().unwrap().to_string();
        indexer.extract(&rt, &v)
    }

    #[test]
    fn patient_rows() {
        let r = rows(
            json!({"resourceType": "Patient", "name": [{"family": "Émile", "given": ["Zola"]}],
            "identifier": [{"system": "https://curanet.in/fhir/sid/health-id", "value": "HID-2026-ABCDEFGH"}],
            "gender": "female", "birthDate": "1980", "active": true,
            "telecom": [{"system": "phone", "value": "+91 98450 00000"}],
            "generalPractitioner": [{"reference": "Practitioner/p1"}]}),
        );
        assert!(
            r.strings
                .iter()
                .any(|s| s.param == "name" && s.value == "emile" && s.exact == "Émile")
        );
        assert!(
            r.strings
                .iter()
                .any(|s| s.param == "family" && s.value == "emile")
        );
        assert!(r.tokens.iter().any(|t| t.param == "identifier"
            && t.code == "HID-2026-ABCDEFGH"
            && t.system == "https://curanet.in/fhir/sid/health-id"));
        assert!(
            r.tokens
                .iter()
                .any(|t| t.param == "gender" && t.code == "female" && t.system.is_empty())
        );
        assert!(
            r.tokens
                .iter()
                .any(|t| t.param == "active" && t.code == "true")
        );
        assert!(
            r.tokens
                .iter()
                .any(|t| t.param == "phone" && t.code == "+91 98450 00000")
        );
        let birth = r.dates.iter().find(|d| d.param == "birthdate").unwrap();
        assert_eq!(birth.hi - birth.lo, 366 * 24 * 3600 * 1_000_000);
        assert!(
            r.references
                .iter()
                .any(|x| x.param == "general-practitioner"
                    && x.target_type == "Practitioner"
                    && x.target_id == "p1")
        );
    }

    #[test]
    fn observation_rows() {
        let r = rows(json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "Heart rate"},
            "subject": {"reference": "Patient/123"}, "effectiveDateTime": "2024-03-05T10:00:00+05:30",
            "valueQuantity": {"value": 72.5, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}));
        assert!(
            r.tokens
                .iter()
                .any(|t| t.param == "code" && t.system == "http://loinc.org" && t.code == "8867-4")
        );
        assert!(
            r.references
                .iter()
                .any(|x| x.param == "patient" && x.target_id == "123")
        );
        assert!(
            r.references
                .iter()
                .any(|x| x.param == "subject" && x.target_type == "Patient")
        );
        assert!(r.dates.iter().any(|d| d.param == "date"));
        assert!(
            r.quantities
                .iter()
                .any(|q| q.param == "value-quantity" && q.value == 72.5 && q.code == "/min")
        );
    }

    #[test]
    fn composite_modifier_and_canonical_rows() {
        let r = rows(json!({"resourceType": "Observation", "status": "final",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">BP <b>high</b> &amp; rising</div>"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "BP panel"}], "text": "Blood pressure"},
            "subject": {"identifier": {"system": "urn:hid", "value": "HID-1"}},
            "component": [
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                 "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}}
            ],
            "valueQuantity": {"value": 250, "system": "http://unitsofmeasure.org", "code": "mg"}}));
        // component-code-value-quantity: the first component is a tuple; the second has no value.
        let tuples: Vec<_> = r
            .composites
            .iter()
            .filter(|c| c.param == "component-code-value-quantity")
            .collect();
        assert_eq!(tuples.len(), 2);
        assert!(tuples.iter().all(|c| c.group == 0));
        assert_eq!(tuples[0].code.as_deref(), Some("8480-6"));
        assert_eq!(tuples[1].value, Some(120.0));
        // :text rows for the text and the display.
        for text in ["blood pressure", "bp panel"] {
            assert!(
                r.strings
                    .iter()
                    .any(|s| s.param == "code:text" && s.value == text)
            );
        }
        assert!(
            r.tokens
                .iter()
                .any(|t| t.param == "subject:identifier" && t.code == "HID-1")
        );
        let canonical = r
            .quantities
            .iter()
            .find(|q| q.param == "value-quantity:canonical")
            .unwrap();
        assert_eq!((canonical.code.as_str(), canonical.value), ("g", 0.25));
        let text = r.strings.iter().find(|s| s.param == "_text").unwrap();
        assert_eq!(text.value, "bp high & rising");
    }

    #[test]
    fn identifier_of_type_rows() {
        let r = rows(json!({"resourceType": "Patient", "identifier": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "value": "12"}]}));
        assert!(r.tokens.iter().any(|t| t.param == "identifier:of-type"
            && t.system == "http://terminology.hl7.org/CodeSystem/v2-0203|MR"
            && t.code == "12"));
    }

    #[test]
    fn references() {
        assert_eq!(split_reference("Patient/1"), ("Patient".into(), "1".into()));
        assert_eq!(
            split_reference("http://x.org/fhir/Patient/1/_history/3"),
            ("Patient".into(), "1".into())
        );
        assert_eq!(
            split_reference("urn:uuid:0f7a"),
            (String::new(), String::new())
        );
        assert_eq!(split_reference("#c1"), (String::new(), String::new()));
    }
}
