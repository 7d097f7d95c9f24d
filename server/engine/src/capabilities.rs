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
                    .filter(|p| !matches!(p.kind, SearchParamType::Composite | SearchParamType::Special))
                    .filter(|p| p.expression.is_some() && !matches!(p.code.as_str(), "_id" | "_lastUpdated"))
                    .map(|p| json!({"name": p.code, "definition": p.url, "type": p.kind.code()})),
            );
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
                "conditionalDelete": "single",
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
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
        }]
    })
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

/// The operations of a type: `$validate` everywhere, `$everything` on Patient, `$lastn` on Observation.
fn operations(resource_type: &str) -> Vec<Value> {
    let mut ops = vec![json!({
        "name": "validate",
        "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"
    })];
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
