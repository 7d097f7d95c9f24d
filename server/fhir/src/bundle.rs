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

/// One Bundle entry as JSON text, embedding a stored resource's JSON text as it is (no parse).
pub fn entry_text(full_url: &str, resource: Option<&str>, search_mode: Option<&str>) -> String {
    let mut e = String::with_capacity(resource.map_or(0, str::len) + 96);
    e.push_str("{\"fullUrl\":");
    e.push_str(&Value::String(full_url.to_string()).to_string());
    if let Some(r) = resource {
        e.push_str(",\"resource\":");
        e.push_str(r);
    }
    if let Some(mode) = search_mode {
        e.push_str(",\"search\":{\"mode\":");
        e.push_str(&Value::String(mode.to_string()).to_string());
        e.push('}');
    }
    e.push('}');
    e
}

/// A Bundle as compact JSON text whose entries are already JSON text: search results are
/// assembled from stored resources without parsing and re-serialising each one.
pub fn bundle_text(kind: &str, total: Option<u64>, links: &[Link], entries: &[String]) -> String {
    let mut head = bundle(kind, total, links, Vec::new()).to_string();
    if entries.is_empty() {
        return head;
    }
    head.pop(); // the closing brace
    let size: usize = entries.iter().map(String::len).sum();
    let mut out = String::with_capacity(head.len() + size + entries.len() + 16);
    out.push_str(&head);
    out.push_str(",\"entry\":[");
    out.push_str(&entries.join(","));
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bundles_are_valid_json() {
        let entries = vec![
            entry_text(
                "http://x/fhir/Patient/1",
                Some(r#"{"resourceType":"Patient","id":"1","x":1.50}"#),
                Some("match"),
            ),
            entry_text("http://x/fhir/Patient/\"2\"", None, None),
        ];
        let links = [Link {
            relation: "self",
            url: "http://x/fhir/Patient?a=\"b\"".into(),
        }];
        let text = bundle_text("searchset", Some(2), &links, &entries);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["total"], 2);
        assert_eq!(v["entry"][0]["resource"]["id"], "1");
        assert!(text.contains("1.50"), "decimals kept: {text}");
        assert_eq!(v["entry"][0]["search"]["mode"], "match");
        assert_eq!(v["entry"][1]["fullUrl"], "http://x/fhir/Patient/\"2\"");
        assert_eq!(
            serde_json::from_str::<Value>(&bundle_text("history", None, &[], &[])).unwrap()["type"],
            "history"
        );
    }
}
