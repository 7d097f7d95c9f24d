//! Builders for the Bundles the server returns (history, and later searchset and responses).

use serde_json::{Value, json};

/// A link of a Bundle (`self`, `first`, `next`, `previous`).
#[derive(Debug, Clone)]
pub struct Link {
    pub relation: &'static str,
    pub url: String,
}

/// Builds a Bundle of the given type from entries and links.
pub fn bundle(kind: &str, total: Option<u64>, links: &[Link], entries: Vec<Value>) -> Value {
    let mut b = json!({
        "resourceType": "Bundle",
        "id": crate::new_id(),
        "meta": {"lastUpdated": crate::Instant::now().to_fhir()},
        "type": kind,
    });
    if let Some(t) = total {
        b["total"] = json!(t);
    }
    if !links.is_empty() {
        b["link"] = links
            .iter()
            .map(|l| json!({"relation": l.relation, "url": l.url}))
            .collect();
    }
    if !entries.is_empty() {
        b["entry"] = Value::Array(entries);
    }
    b
}
