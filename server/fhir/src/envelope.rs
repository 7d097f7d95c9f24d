//! The resource envelope: the parts of a resource the server owns (`id`, `meta.versionId`,
//! `meta.lastUpdated`). Everything else stays as the client sent it, in the same key order.

use serde_json::{Map, Value};

use crate::datetime::Instant;

/// The resource type named in a JSON resource.
pub fn resource_type(resource: &Value) -> Option<&str> {
    resource.get("resourceType")?.as_str()
}

/// The logical id in a JSON resource.
pub fn id(resource: &Value) -> Option<&str> {
    resource.get("id")?.as_str()
}

/// Sets `id`, keeping its position, or placing it right after `resourceType`.
pub fn set_id(resource: &mut Value, id: &str) {
    if let Some(obj) = resource.as_object_mut() {
        insert_after_resource_type(obj, "id", Value::String(id.to_string()));
    }
}

fn insert_after_resource_type(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some(slot) = obj.get_mut(key) {
        *slot = value;
        return;
    }
    let after = ["id", "resourceType"]
        .iter()
        .find_map(|k| obj.keys().position(|existing| existing == k))
        .map(|i| i + 1)
        .unwrap_or(0);
    obj.shift_insert(after, key.to_string(), value);
}

/// Stamps `meta.versionId` and `meta.lastUpdated`, keeping the client's other meta elements.
pub fn stamp(resource: &mut Value, version: i64, last_updated: Instant) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    if !obj.get("meta").is_some_and(Value::is_object) {
        insert_after_resource_type(obj, "meta", Value::Object(Map::new()));
    }
    if let Some(Value::Object(meta)) = obj.get_mut("meta") {
        meta.insert("versionId".into(), Value::String(version.to_string()));
        meta.insert("lastUpdated".into(), Value::String(last_updated.to_fhir()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_without_reordering() {
        let mut r: Value =
            crate::parse_json(br#"{"resourceType":"Patient","active":true,"meta":{"tag":[{"code":"x"}],"versionId":"9"}}"#)
                .unwrap();
        set_id(&mut r, "abc");
        stamp(&mut r, 2, Instant(0));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"resourceType":"Patient","id":"abc","active":true,"meta":{"tag":[{"code":"x"}],"versionId":"2","lastUpdated":"1970-01-01T00:00:00.000000Z"}}"#
        );
        let mut bare: Value =
            crate::parse_json(br#"{"resourceType":"Basic","code":{"text":"t"}}"#).unwrap();
        set_id(&mut bare, "1");
        stamp(&mut bare, 1, Instant(0));
        assert_eq!(
            bare.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["resourceType", "id", "meta", "code"]
        );
    }
}
