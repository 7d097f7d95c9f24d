//! Health ID rules for Patient and Practitioner: assigned on create when absent, unique across
//! the server (enforced by the store), never changed by an update.

use curanet_fhir::health_id::HEALTH_ID_SYSTEM;
use curanet_fhir::{HealthId, Instant, Issue, IssueType};
use curanet_storage::{UniqueIdentity, UniqueKey};
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

/// The Health ID rule, run by the store inside the write transaction: keep the ID the person
/// already owns (adding it back when an update omits it), refuse a different one, and assign a
/// fresh one to a new person who brings none.
#[derive(Debug)]
pub(crate) struct HealthIdRule {
    pub resource_type: String,
}

impl UniqueIdentity for HealthIdRule {
    fn resolve(
        &self,
        resource: &mut Value,
        owned: &[UniqueKey],
    ) -> Result<Vec<UniqueKey>, Vec<Issue>> {
        let given = present(&self.resource_type, resource).map_err(|e| match e {
            EngineError::Invalid(issues) => issues,
            other => vec![Issue::error(IssueType::Invalid, other.to_string())],
        })?;
        let existing = owned
            .iter()
            .find(|k| k.system == HEALTH_ID_SYSTEM)
            .and_then(|k| HealthId::parse(&k.value).ok());
        let id = match (given, existing) {
            (Some(given), Some(existing)) if given != existing => {
                return Err(vec![
                    Issue::error(
                        IssueType::Invariant,
                        format!("the Health ID {existing} cannot be changed (got {given})"),
                    )
                    .at(format!("{}.identifier", self.resource_type)),
                ]);
            }
            (Some(given), _) => given,
            (None, Some(existing)) => {
                append(resource, &existing);
                existing
            }
            (None, None) => {
                let id = HealthId::generate(Instant::now().year(), &mut rand::rng());
                append(resource, &id);
                id
            }
        };
        Ok(vec![UniqueKey {
            system: HEALTH_ID_SYSTEM.to_string(),
            value: id.to_string(),
        }])
    }
}

/// Whether the client sent a Health ID (so a collision is the client's, not a generated one's).
pub(crate) fn given(resource_type: &str, resource: &Value) -> Result<bool> {
    let mut copy = resource.clone();
    Ok(present(resource_type, &mut copy)?.is_some())
}
