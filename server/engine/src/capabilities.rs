//! The CapabilityStatement, generated from what the server really does.

use curanet_fhir::{Definitions, FHIR_VERSION, Instant};
use curanet_fhir_profiles::SearchParamType;
use serde_json::{Value, json};

/// Interactions every resource type supports.
const TYPE_INTERACTIONS: &[&str] = &[
    "search-type",
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
];

/// The search parameters the audit log answers (the others are refused with 400).
pub const AUDIT_EVENT_SEARCH_PARAMS: [&str; 10] = [
    "_id", "patient", "agent", "altid", "date", "type", "subtype", "action", "outcome", "entity",
];

/// AuditEvents are the server's own append-only records: read, vread and search only, on the
/// parameters of the audit log.
fn audit_event(params: Vec<Value>) -> Value {
    let params: Vec<Value> = params
        .into_iter()
        .filter(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| AUDIT_EVENT_SEARCH_PARAMS.contains(&n))
        })
        .collect();
    json!({
        "type": "AuditEvent",
        "profile": "http://hl7.org/fhir/StructureDefinition/AuditEvent",
        "documentation": "Append-only: recorded by the server for every interaction; create, update, patch and delete are refused for everyone.",
        "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": false,
        "updateCreate": false,
        "searchParam": params,
    })
}

/// The CapabilityStatement for a server whose FHIR base is `base_url`.
pub fn capability_statement(defs: &Definitions, base_url: &str) -> Value {
    let resources: Vec<Value> = defs
        .resource_types()
        .iter()
        .map(|t| {
            let mut params = vec![
                json!({"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"}),
                json!({"name": "_lastUpdated", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "type": "date"}),
            ];
            params.extend(
                defs.search_parameters(t)
                    .iter()
                    .filter(|p| p.kind != SearchParamType::Special)
                    .filter(|p| (p.expression.is_some() || p.code == "_text") && !matches!(p.code.as_str(), "_id" | "_lastUpdated"))
                    .map(|p| json!({"name": p.code, "definition": p.url, "type": p.kind.code(), "documentation": modifiers(p.kind)})),
            );
            if t == "AuditEvent" {
                return audit_event(params);
            }
            json!({
                "type": t,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{t}"),
                "interaction": TYPE_INTERACTIONS.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "full-support",
                "conditionalUpdate": true,
                "conditionalDelete": "multiple",
                "searchInclude": includes(defs, t),
                "searchRevInclude": ["*"],
                "searchParam": params,
                "operation": operations(t)
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": Instant::now().to_fhir(),
        "publisher": "CuraNet",
        "kind": "instance",
        "software": {"name": "CuraNet", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "CuraNet FHIR R4 server", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json", "application/fhir+json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}, {"code": "search-system"}],
            "searchParam": [
                {"name": "_type", "type": "token", "documentation": "the types to search (all when absent)"},
                {"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"},
                {"name": "_lastUpdated", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "type": "date"},
                {"name": "_tag", "definition": "http://hl7.org/fhir/SearchParameter/Resource-tag", "type": "token"},
                {"name": "_profile", "definition": "http://hl7.org/fhir/SearchParameter/Resource-profile", "type": "uri"},
                {"name": "_security", "definition": "http://hl7.org/fhir/SearchParameter/Resource-security", "type": "token"},
                {"name": "_source", "definition": "http://hl7.org/fhir/SearchParameter/Resource-source", "type": "uri"}
            ],
            "operation": [{
                "name": "meta",
                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-meta"
            }],
        }]
    })
}

/// The modifiers that work on a parameter type, as its documentation.
fn modifiers(kind: SearchParamType) -> &'static str {
    match kind {
        SearchParamType::String => "modifiers: :exact :contains :missing",
        SearchParamType::Token => "modifiers: :not :text :of-type (identifiers) :missing",
        SearchParamType::Reference => "modifiers: :[type] :identifier :missing; chaining and _has",
        SearchParamType::Uri => "modifiers: :below :above :missing",
        SearchParamType::Date | SearchParamType::Number => {
            "prefixes: eq ne gt lt ge le sa eb ap; modifier :missing"
        }
        SearchParamType::Quantity => {
            "prefixes: eq ne gt lt ge le sa eb ap; UCUM units compared canonically; modifier :missing"
        }
        SearchParamType::Composite => "components joined by $; prefixes on the value component",
        SearchParamType::Special => "",
    }
}

/// The `_include` values of a type: `Type:param` for each of its reference parameters, and `*`.
fn includes(defs: &Definitions, resource_type: &str) -> Vec<String> {
    defs.search_parameters(resource_type)
        .iter()
        .filter(|p| p.kind == SearchParamType::Reference)
        .map(|p| format!("{resource_type}:{}", p.code))
        .chain(std::iter::once("*".to_string()))
        .collect()
}

/// The operations of a type: `$validate` and the `$meta` family everywhere, `$everything` on
/// Patient, `$lastn` on Observation.
fn operations(resource_type: &str) -> Vec<Value> {
    let mut ops: Vec<Value> = ["validate", "meta", "meta-add", "meta-delete"]
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "definition": format!("http://hl7.org/fhir/OperationDefinition/Resource-{name}")
            })
        })
        .collect();
    match resource_type {
        "Patient" => ops.push(json!({
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"
        })),
        "Observation" => ops.push(json!({
            "name": "lastn",
            "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn"
        })),
        _ => {}
    }
    ops
}

#[cfg(test)]
mod tests {
    use curanet_fhir::Definitions;

    use super::*;

    #[test]
    fn audit_events_are_read_and_searched_on_the_audit_log_parameters_only() {
        let statement = capability_statement(&Definitions::shared(), "http://x/fhir");
        let audit = statement["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == "AuditEvent")
            .unwrap();
        let mut names: Vec<&str> = audit["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        let mut expected = AUDIT_EVENT_SEARCH_PARAMS.to_vec();
        expected.sort_unstable();
        assert_eq!(names, expected);
        let interactions: Vec<&str> = audit["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        assert_eq!(interactions, ["read", "vread", "search-type"]);
    }
}
