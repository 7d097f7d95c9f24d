//! `$meta`, `$meta-add` and `$meta-delete` (R4): the tags, security labels and profiles in use on
//! the server or on one type (read from the search index), and those of one resource, which the
//! two writing operations change by writing a new version, so history shows every change.

use curanet_fhir::{envelope, parse_json};
use curanet_storage::{MetaSummary, StoredVersion};
use serde_json::{Map, Value, json};

use crate::patch::{Change, PatchTarget};
use crate::{Engine, EngineError, Result};

/// The tags, security labels and profiles a `$meta-add` or `$meta-delete` names.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MetaItems {
    tags: Vec<Value>,
    security: Vec<Value>,
    profiles: Vec<Value>,
}

fn bad(message: impl Into<String>) -> EngineError {
    EngineError::BadRequest(message.into())
}

impl MetaItems {
    /// Reads the single `meta` parameter (a `valueMeta`) of a `Parameters` body.
    pub(crate) fn from_parameters(body: &[u8]) -> Result<Self> {
        let doc = parse_json(body)?;
        if envelope::resource_type(&doc) != Some("Parameters") {
            return Err(bad(
                "$meta-add and $meta-delete take a Parameters resource with a 'meta' parameter",
            ));
        }
        let metas: Vec<&Value> = doc
            .get("parameter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| p.get("name").and_then(Value::as_str) == Some("meta"))
            .collect();
        let [param] = metas.as_slice() else {
            return Err(bad(format!(
                "the Parameters must carry exactly one 'meta' parameter, not {}",
                metas.len()
            )));
        };
        let meta = param
            .get("valueMeta")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("the 'meta' parameter needs a valueMeta"))?;
        let list = |key: &str, is_item: fn(&Value) -> bool, kind: &str| -> Result<Vec<Value>> {
            match meta.get(key) {
                None => Ok(Vec::new()),
                Some(Value::Array(items)) if items.iter().all(is_item) => Ok(items.clone()),
                Some(_) => Err(bad(format!("valueMeta.{key} must be an array of {kind}"))),
            }
        };
        let items = MetaItems {
            tags: list("tag", Value::is_object, "Codings")?,
            security: list("security", Value::is_object, "Codings")?,
            profiles: list("profile", Value::is_string, "canonical URLs")?,
        };
        if items.tags.is_empty() && items.security.is_empty() && items.profiles.is_empty() {
            return Err(bad(
                "the 'meta' parameter names no tag, security label or profile",
            ));
        }
        Ok(items)
    }

    /// Adds (`add`) or removes these items in a resource's `meta`; whether anything changed.
    /// Codings are the same when their system and code are; profiles when their URLs are.
    pub(crate) fn apply(&self, add: bool, resource: &mut Value) -> bool {
        let Some(obj) = resource.as_object_mut() else {
            return false;
        };
        let meta = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return false;
        };
        let profile = edit(meta, "profile", &self.profiles, add, |a, b| a == b);
        let security = edit(meta, "security", &self.security, add, same_coding);
        let tag = edit(meta, "tag", &self.tags, add, same_coding);
        profile || security || tag
    }
}

/// Codings are the same when their system and code are (display and version do not count).
fn same_coding(a: &Value, b: &Value) -> bool {
    let field = |c: &Value, name: &str| c.get(name).and_then(Value::as_str).map(String::from);
    field(a, "system") == field(b, "system") && field(a, "code") == field(b, "code")
}

/// Adds the missing `items` to (or removes them from) the array `meta[key]`, which disappears
/// when emptied; whether it changed.
fn edit(
    meta: &mut Map<String, Value>,
    key: &str,
    items: &[Value],
    add: bool,
    same: fn(&Value, &Value) -> bool,
) -> bool {
    let mut list = match meta.get(key) {
        Some(Value::Array(list)) => list.clone(),
        _ => Vec::new(),
    };
    let before = list.len();
    if add {
        for item in items {
            if !list.iter().any(|x| same(x, item)) {
                list.push(item.clone());
            }
        }
    } else {
        list.retain(|x| !items.iter().any(|i| same(x, i)));
    }
    if list.len() == before {
        return false;
    }
    if list.is_empty() {
        meta.shift_remove(key);
    } else {
        meta.insert(key.to_string(), Value::Array(list));
    }
    true
}

/// The `Parameters` every `$meta` operation answers with: a `return` Meta.
fn meta_parameters(meta: Value) -> Value {
    json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "return", "valueMeta": meta}]
    })
}

/// The `meta` of a stored version.
fn meta_of(version: &StoredVersion) -> Value {
    version
        .resource()
        .and_then(|r| r.get("meta").cloned())
        .unwrap_or_else(|| json!({}))
}

/// A summary as a Meta, elements in the order R4 lists them (profile, security, tag).
fn summary_meta(summary: &MetaSummary) -> Value {
    let coding = |(system, code): &(String, String)| {
        let mut c = Map::new();
        if !system.is_empty() {
            c.insert("system".into(), json!(system));
        }
        c.insert("code".into(), json!(code));
        Value::Object(c)
    };
    let mut meta = Map::new();
    if !summary.profiles.is_empty() {
        meta.insert("profile".into(), json!(summary.profiles));
    }
    if !summary.security.is_empty() {
        meta.insert(
            "security".into(),
            summary.security.iter().map(coding).collect(),
        );
    }
    if !summary.tags.is_empty() {
        meta.insert("tag".into(), summary.tags.iter().map(coding).collect());
    }
    Value::Object(meta)
}

impl Engine {
    /// `$meta` on the server (`None`) or on a type: the tags, security labels and profiles in use
    /// on live resources, as `Parameters` with a `return` Meta (codings without display).
    pub async fn meta_in_use(&self, resource_type: Option<&str>) -> Result<Value> {
        let types: Vec<&str> = match resource_type {
            Some(rt) => {
                self.check_type(rt)?;
                vec![rt]
            }
            None => self
                .definitions()
                .resource_types()
                .iter()
                .map(String::as_str)
                .collect(),
        };
        let summary = self.store().meta_summary(&types).await?;
        Ok(meta_parameters(summary_meta(&summary)))
    }

    /// `$meta` on a resource: its `meta` (404 unknown, 410 deleted).
    pub async fn meta_of(&self, resource_type: &str, id: &str) -> Result<Value> {
        let current = self.read(resource_type, id).await?;
        Ok(meta_parameters(meta_of(&current)))
    }

    /// `$meta-add`: adds the tags, security labels and profiles of the `meta` parameter that the
    /// resource lacks, as a new version; answers the resulting meta.
    pub async fn meta_add(&self, resource_type: &str, id: &str, body: &[u8]) -> Result<Value> {
        self.meta_change(resource_type, id, body, true).await
    }

    /// `$meta-delete`: removes the tags, security labels and profiles of the `meta` parameter, as
    /// a new version; answers the resulting meta.
    pub async fn meta_delete(&self, resource_type: &str, id: &str, body: &[u8]) -> Result<Value> {
        self.meta_change(resource_type, id, body, false).await
    }

    async fn meta_change(
        &self,
        resource_type: &str,
        id: &str,
        body: &[u8],
        add: bool,
    ) -> Result<Value> {
        self.check_type(resource_type)?;
        Self::check_id(id)?;
        let items = MetaItems::from_parameters(body)?;
        let current = self.read(resource_type, id).await?;
        let mut preview = current.resource().unwrap_or_default();
        if !items.apply(add, &mut preview) {
            // Nothing to add or remove: no new version.
            return Ok(meta_parameters(meta_of(&current)));
        }
        // The change is applied again inside the write, to whatever version is current there.
        let target = PatchTarget::Instance(id.to_string());
        let op = self.edit_op(resource_type, &target, Change::Meta(add, items), None, "")?;
        let written = self.write_edit(resource_type, op).await?;
        Ok(meta_parameters(meta_of(&written.version)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(meta: Value) -> MetaItems {
        let body = json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": meta}]});
        MetaItems::from_parameters(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn add_skips_what_is_there_and_delete_removes_by_system_and_code() {
        let mut r = json!({"resourceType": "Patient", "id": "p", "meta": {
            "versionId": "1", "tag": [{"system": "s", "code": "a", "display": "A"}]}});
        let add = items(json!({
            "tag": [{"system": "s", "code": "a", "display": "other"}, {"system": "s", "code": "b"}],
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
            "profile": ["http://example.org/p"]
        }));
        assert!(add.apply(true, &mut r));
        assert_eq!(
            r["meta"]["tag"],
            json!([{"system": "s", "code": "a", "display": "A"}, {"system": "s", "code": "b"}])
        );
        assert_eq!(r["meta"]["profile"], json!(["http://example.org/p"]));
        assert!(!add.apply(true, &mut r), "adding again changes nothing");
        let delete = items(
            json!({"tag": [{"system": "s", "code": "a"}], "profile": ["http://example.org/p"]}),
        );
        assert!(delete.apply(false, &mut r));
        assert_eq!(r["meta"]["tag"], json!([{"system": "s", "code": "b"}]));
        assert!(r["meta"].get("profile").is_none(), "an emptied list goes");
        assert_eq!(r["meta"]["security"][0]["code"], "R");
        assert!(!delete.apply(false, &mut r));
        // A code under another system is another coding.
        let other = items(json!({"tag": [{"system": "t", "code": "b"}]}));
        assert!(!other.apply(false, &mut r));
    }

    #[test]
    fn the_meta_parameter_is_required_and_checked() {
        let bad = |body: Value| MetaItems::from_parameters(body.to_string().as_bytes()).is_err();
        assert!(bad(json!({"resourceType": "Patient"})));
        assert!(bad(json!({"resourceType": "Parameters"})));
        assert!(bad(
            json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueString": "x"}]})
        ));
        assert!(bad(
            json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {"tag": "x"}}]})
        ));
        assert!(bad(
            json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {"profile": [1]}}]})
        ));
        assert!(bad(
            json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {"versionId": "1"}}]})
        ));
    }

    #[test]
    fn summaries_become_a_meta() {
        let summary = MetaSummary {
            tags: vec![(String::new(), "a".into()), ("s".into(), "b".into())],
            security: vec![],
            profiles: vec!["http://example.org/p".into()],
        };
        assert_eq!(
            summary_meta(&summary),
            json!({"profile": ["http://example.org/p"], "tag": [{"code": "a"}, {"system": "s", "code": "b"}]})
        );
    }
}
