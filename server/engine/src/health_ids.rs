//! Health ID rules for Patient and Practitioner: assigned on create when absent, unique across
//! the server (enforced by the store), never changed by an update.

use curanet_fhir::health_id::HEALTH_ID_SYSTEM;
use curanet_fhir::{HealthId, Instant, Issue, IssueType};
use curanet_storage::UniqueKey;
use serde_json::{Value, json};

use crate::{EngineError, Result};

/// Resource types whose instances are people with a Health ID.
pub(crate) fn applies_to(resource_type: &str) -> bool {
    matches!(resource_type, "Patient" | "Practitioner")
}

/// The Health IDs present in `resource`, canonicalised; malformed ones are refused.
fn present(resource_type: &str, resource: &mut Value) -> Result<Option<HealthId>> {
    let Some(identifiers) = resource.get_mut("identifier").and_then(Value::as_array_mut) else {
        return Ok(None);
    };
    let mut found: Option<HealthId> = None;
    for (i, ident) in identifiers.iter_mut().enumerate() {
        if ident.get("system").and_then(Value::as_str) != Some(HEALTH_ID_SYSTEM) {
            continue;
        }
        let at = format!("{resource_type}.identifier[{i}].value");
        let text = ident
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let id = HealthId::parse(text).map_err(|e| {
            EngineError::Invalid(vec![
                Issue::error(IssueType::Value, format!("invalid Health ID '{text}': {e}")).at(&at),
            ])
        })?;
        ident["value"] = Value::String(id.to_string());
        match &found {
            Some(other) if *other != id => {
                return Err(EngineError::Invalid(vec![
                    Issue::error(IssueType::Invariant, "a person has exactly one Health ID")
                        .at(&at),
                ]));
            }
            _ => found = Some(id),
        }
    }
    Ok(found)
}

fn append(resource: &mut Value, id: &HealthId) {
    let ident = json!({"use": "official", "system": HEALTH_ID_SYSTEM, "value": id.as_str()});
    match resource.get_mut("identifier").and_then(Value::as_array_mut) {
        Some(list) => list.push(ident),
        None => {
            if let Some(obj) = resource.as_object_mut() {
                obj.insert("identifier".into(), Value::Array(vec![ident]));
            }
        }
    }
}

/// The outcome of applying the rules to a resource about to be written.
pub(crate) struct Assigned {
    pub key: UniqueKey,
    /// Whether the server generated the ID (a collision may then be retried with a new one).
    pub generated: bool,
}

/// Ensures `resource` carries the right Health ID; `existing` is the one of the stored resource.
pub(crate) fn assign(
    resource_type: &str,
    resource: &mut Value,
    existing: Option<HealthId>,
) -> Result<Assigned> {
    let given = present(resource_type, resource)?;
    let (id, generated) = match (given, existing) {
        (Some(given), Some(existing)) if given != existing => {
            return Err(EngineError::Invalid(vec![
                Issue::error(
                    IssueType::Invariant,
                    format!("the Health ID {existing} cannot be changed (got {given})"),
                )
                .at(format!("{resource_type}.identifier")),
            ]));
        }
        (Some(given), _) => (given, false),
        (None, Some(existing)) => {
            append(resource, &existing);
            (existing, false)
        }
        (None, None) => {
            let id = HealthId::generate(Instant::now().year(), &mut rand::rng());
            append(resource, &id);
            (id, true)
        }
    };
    Ok(Assigned {
        key: UniqueKey {
            system: HEALTH_ID_SYSTEM.to_string(),
            value: id.to_string(),
        },
        generated,
    })
}

/// The Health ID of a stored resource, if it has one.
pub(crate) fn of_stored(resource_type: &str, resource: Option<Value>) -> Option<HealthId> {
    let mut resource = resource?;
    present(resource_type, &mut resource).ok().flatten()
}

/// Replaces a generated Health ID that collided with a fresh one.
pub(crate) fn regenerate(resource: &mut Value, old: &str) -> UniqueKey {
    let id = HealthId::generate(Instant::now().year(), &mut rand::rng());
    if let Some(list) = resource.get_mut("identifier").and_then(Value::as_array_mut) {
        for ident in list {
            if ident.get("value").and_then(Value::as_str) == Some(old) {
                ident["value"] = Value::String(id.to_string());
            }
        }
    }
    UniqueKey {
        system: HEALTH_ID_SYSTEM.to_string(),
        value: id.to_string(),
    }
}
