//! `_summary` and `_elements`: the part of a resource a client asked for, marked `SUBSETTED` so
//! that nobody mistakes it for the whole resource.

use curanet_fhir_profiles::{Definitions, TypeDefinition};
use serde_json::{Map, Value, json};

/// The code system of the `SUBSETTED` tag.
const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// Which part of each resource to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subset {
    /// `_summary=true`: the elements the definitions mark as summary.
    Summary,
    /// `_summary=text`: the narrative, id, meta and the mandatory top-level elements.
    Text,
    /// `_summary=data`: everything but the narrative.
    Data,
    /// `_elements=a,b`: these top-level elements, plus the mandatory ones.
    Elements(Vec<String>),
}

impl Subset {
    /// Reads a `_summary` value other than `count` and `false`.
    pub fn parse_summary(value: &str) -> Option<Subset> {
        match value {
            "true" => Some(Subset::Summary),
            "text" => Some(Subset::Text),
            "data" => Some(Subset::Data),
            _ => None,
        }
    }

    /// Reads an `_elements` value (`name,birthDate`; `Patient.name` is read as `name`).
    pub fn elements(value: &str) -> Subset {
        Subset::Elements(
            value
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(|e| e.rsplit('.').next().unwrap_or(e).to_string())
                .collect(),
        )
    }

    /// The subset a URL's `_summary` and `_elements` ask for: `_summary=true|text|data` wins over
    /// `_elements` (R4 leaves the combination undefined); `count` and `false` ask for none. The
    /// error says which `_summary` values are allowed.
    pub fn requested(pairs: &[(String, String)]) -> Result<Option<Subset>, String> {
        let mut subset = None;
        for (name, value) in pairs {
            match name.as_str() {
                "_summary" if !matches!(value.as_str(), "false" | "count") => {
                    subset = Some(
                        Subset::parse_summary(value)
                            .ok_or_else(|| "use true, text, data, count or false".to_string())?,
                    );
                }
                "_elements" if subset.is_none() => subset = Some(Subset::elements(value)),
                _ => {}
            }
        }
        Ok(subset)
    }

    /// Cuts `resource` down to this subset and tags it `SUBSETTED`.
    pub fn apply(&self, defs: &Definitions, resource: &mut Value) {
        let Some(rt) = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return;
        };
        let Some(td) = defs.type_definition(&rt) else {
            return;
        };
        let Some(object) = resource.as_object_mut() else {
            return;
        };
        match self {
            Subset::Data => {
                object.remove("text");
            }
            Subset::Summary => keep_summary(td, &rt, object),
            Subset::Text => object.retain(|key, _| {
                matches!(base_name(key), "resourceType" | "id" | "meta" | "text")
                    || mandatory(td, &rt, key)
            }),
            Subset::Elements(names) => object.retain(|key, _| {
                let name = base_name(key);
                matches!(name, "resourceType" | "id" | "meta")
                    || names.iter().any(|n| n == name)
                    || mandatory(td, &rt, key)
            }),
        }
        tag_subsetted(object);
    }
}

/// `_birthDate` (a primitive's extensions) belongs with `birthDate`.
fn base_name(key: &str) -> &str {
    key.strip_prefix('_').unwrap_or(key)
}

fn mandatory(td: &TypeDefinition, parent: &str, key: &str) -> bool {
    td.child(parent, base_name(key))
        .is_some_and(|c| td.element(c.element).min > 0)
}

/// Keeps the summary elements under `path`, descending into backbone elements defined inline.
fn keep_summary(td: &TypeDefinition, path: &str, object: &mut Map<String, Value>) {
    object.retain(|key, value| {
        let name = base_name(key);
        if path.find('.').is_none() && matches!(name, "resourceType" | "id" | "meta") {
            return true;
        }
        let Some(child) = td.child(path, name) else {
            return false;
        };
        let element = td.element(child.element);
        if !element.is_summary {
            return false;
        }
        if element.has_inline_children() {
            let child_path = element.path.clone();
            match value {
                Value::Object(o) => keep_summary(td, &child_path, o),
                Value::Array(items) => items
                    .iter_mut()
                    .filter_map(Value::as_object_mut)
                    .for_each(|o| keep_summary(td, &child_path, o)),
                _ => {}
            }
        }
        true
    });
}

fn tag_subsetted(object: &mut Map<String, Value>) {
    let meta = object.entry("meta").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let tags = meta.entry("tag").or_insert_with(|| json!([]));
    if let Some(tags) = tags.as_array_mut()
        && !tags
            .iter()
            .any(|t| t.get("code").and_then(Value::as_str) == Some("SUBSETTED"))
    {
        tags.push(json!({"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "meta": {"versionId": "1"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Asha</div>"},
            "name": [{"family": "Rao"}],
            "birthDate": "1980-01-01",
            "_birthDate": {"extension": []},
            "maritalStatus": {"text": "married"},
            "contact": [{"name": {"family": "Rao"}}],
            "communication": [{"language": {"text": "hi"}, "preferred": true}]
        })
    }

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn summary_keeps_summary_elements_and_tags() {
        let defs = Definitions::shared();
        let mut p = patient();
        Subset::Summary.apply(&defs, &mut p);
        assert_eq!(
            keys(&p),
            [
                "_birthDate",
                "birthDate",
                "id",
                "meta",
                "name",
                "resourceType"
            ]
        );
        assert_eq!(p["meta"]["tag"][0]["code"], "SUBSETTED");
        assert_eq!(p["meta"]["versionId"], "1");
    }

    #[test]
    fn summary_descends_into_backbone_elements() {
        let defs = Definitions::shared();
        let mut obs = json!({
            "resourceType": "Observation", "status": "final", "code": {"text": "bp"},
            "component": [{"code": {"text": "sys"}, "valueQuantity": {"value": 120}, "interpretation": [{"text": "high"}]}]
        });
        Subset::Summary.apply(&defs, &mut obs);
        // Observation.component is summary; component.interpretation is not.
        assert_eq!(obs["component"][0]["valueQuantity"]["value"], 120);
        assert!(obs["component"][0].get("interpretation").is_none());
    }

    #[test]
    fn text_data_and_elements() {
        let defs = Definitions::shared();
        let mut p = patient();
        Subset::Text.apply(&defs, &mut p);
        assert_eq!(keys(&p), ["id", "meta", "resourceType", "text"]);

        let mut p = patient();
        Subset::Data.apply(&defs, &mut p);
        assert!(p.get("text").is_none() && p.get("contact").is_some());

        let mut obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/1"}, "note": [{"text": "n"}]});
        Subset::elements("Observation.subject, note").apply(&defs, &mut obs);
        // status and code are mandatory, so they stay.
        assert_eq!(
            keys(&obs),
            ["code", "meta", "note", "resourceType", "status", "subject"]
        );
    }

    #[test]
    fn parses_summary_values() {
        assert_eq!(Subset::parse_summary("true"), Some(Subset::Summary));
        assert_eq!(Subset::parse_summary("bogus"), None);
    }
}
