//! `patch`: JSON Patch (RFC 6902) and FHIRPath Patch, on one resource or on the single match of
//! conditional criteria. The patch is applied inside the write transaction to the version current
//! there ([`Edit`], a storage [`Transform`]), then validated like any write, so concurrent writes
//! can neither be lost nor slip between the read and the write. `$meta-add` and `$meta-delete` are
//! edits too.

mod fhir_patch;
mod json_patch;
mod path;

use curanet_fhir::{Definitions, Issue, IssueType, Validator, envelope, parse_json};
use curanet_storage::{PatchOp, StoreError, StoredVersion, Transform, WriteOp, WriteOutcome};
use serde_json::Value;

use crate::interactions::{identity_rule, query_pairs, store_error};
use crate::meta::MetaItems;
use crate::{Engine, EngineError, Result, Written};

/// The kind of patch document a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchFormat {
    /// `application/json-patch+json` (RFC 6902).
    JsonPatch,
    /// A FHIRPath Patch `Parameters` resource (`application/fhir+json`).
    FhirPathPatch,
}

/// A parsed patch document.
#[derive(Debug)]
pub(crate) enum Patch {
    Json(Vec<json_patch::Op>),
    FhirPath(Vec<fhir_patch::Operation>),
}

fn unprocessable(message: String) -> EngineError {
    EngineError::Invalid(vec![Issue::error(IssueType::Processing, message)])
}

impl Patch {
    /// Parses a patch document (400 when malformed).
    pub(crate) fn parse(body: &[u8], format: PatchFormat) -> Result<Patch> {
        let doc = parse_json(body)?;
        match format {
            PatchFormat::JsonPatch => json_patch::parse(&doc)
                .map(Patch::Json)
                .map_err(EngineError::BadRequest),
            PatchFormat::FhirPathPatch => {
                fhir_patch::parse(&doc)
                    .map(Patch::FhirPath)
                    .map_err(|e| match e {
                        fhir_patch::PatchError::Malformed(m) => {
                            EngineError::BadRequest(format!("FHIRPath Patch: {m}"))
                        }
                        fhir_patch::PatchError::Unprocessable(m) => unprocessable(m),
                    })
            }
        }
    }

    fn apply(&self, defs: &Definitions, resource: &mut Value) -> Result<()> {
        match self {
            Patch::Json(ops) => json_patch::apply(resource, ops).map_err(unprocessable),
            Patch::FhirPath(ops) => fhir_patch::apply(defs, resource, ops).map_err(|e| match e {
                fhir_patch::PatchError::Malformed(m) => {
                    EngineError::BadRequest(format!("FHIRPath Patch: {m}"))
                }
                fhir_patch::PatchError::Unprocessable(m) => {
                    unprocessable(format!("FHIRPath Patch: {m}"))
                }
            }),
        }
    }
}

/// Which resource a patch changes.
#[derive(Debug, Clone)]
pub(crate) enum PatchTarget {
    /// `Type/id`
    Instance(String),
    /// The single match of `Type?query` (none: 404; several: 412).
    Matching(String),
}

/// What an edit does to the current resource.
#[derive(Debug)]
pub(crate) enum Change {
    Patch(Patch),
    /// `$meta-add` (`true`) or `$meta-delete` (`false`).
    Meta(bool, MetaItems),
}

/// A change applied, inside the write transaction, to the version current there: the target
/// must exist and be live, `If-Match` must name that version, and the result must keep the id
/// and validate. Its errors are [`EngineError`]s, carried through the store.
pub(crate) struct Edit {
    resource_type: String,
    target: PatchTarget,
    if_match: Option<i64>,
    change: Change,
    validator: Validator,
}

impl std::fmt::Debug for Edit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edit")
            .field("resource_type", &self.resource_type)
            .field("target", &self.target)
            .field("if_match", &self.if_match)
            .field("change", &self.change)
            .finish_non_exhaustive()
    }
}

impl Transform for Edit {
    fn apply(
        &self,
        current: Option<&StoredVersion>,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.run(current).map_err(|e| Box::new(e) as _)
    }
}

impl Edit {
    fn run(&self, current: Option<&StoredVersion>) -> Result<Value> {
        let rt = &self.resource_type;
        let current = match (current, &self.target) {
            (None, PatchTarget::Instance(id)) => {
                return Err(EngineError::NotFound(format!("{rt}/{id}")));
            }
            (None, PatchTarget::Matching(query)) => {
                let criteria: Vec<String> = query_pairs(query)
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                return Err(EngineError::NotFound(format!(
                    "a {rt} matching '{}'",
                    criteria.join("&")
                )));
            }
            (Some(v), _) if v.deleted => {
                return Err(EngineError::Gone(format!("{rt}/{}", v.id)));
            }
            (Some(v), _) => v,
        };
        if let Some(wanted) = self.if_match
            && wanted != current.version
        {
            return Err(EngineError::PreconditionFailed(format!(
                "{rt}/{}: expected version {wanted}, but the server has version {}",
                current.id, current.version
            )));
        }
        let mut resource = current
            .resource()
            .ok_or(EngineError::Store(StoreError::Closed))?;
        let before = identity(&resource);
        match &self.change {
            Change::Patch(patch) => patch.apply(self.validator.definitions(), &mut resource)?,
            Change::Meta(add, items) => {
                items.apply(*add, &mut resource);
            }
        }
        if identity(&resource) != before {
            return Err(EngineError::BadRequest(
                "a patch must not change the resource's id or resourceType".into(),
            ));
        }
        let issues: Vec<Issue> = self.validator.validate(&resource);
        if issues.iter().any(Issue::is_error) {
            return Err(EngineError::Invalid(issues));
        }
        Ok(resource)
    }
}

impl Engine {
    /// `patch`: applies a JSON Patch or FHIRPath Patch to the current version and stores the
    /// result as a new version. `if_match` is the `If-Match` version (412 when stale). The patch
    /// is applied inside the write transaction, so concurrent writes are never lost.
    pub async fn patch(
        &self,
        resource_type: &str,
        id: &str,
        body: &[u8],
        content_type: PatchFormat,
        if_match: Option<i64>,
    ) -> Result<Written> {
        self.check_type(resource_type)?;
        let target = PatchTarget::Instance(id.to_string());
        let op = self.patch_write(resource_type, &target, body, content_type, if_match, "")?;
        self.write_edit(resource_type, op).await
    }

    /// Conditional patch (`PATCH Type?query`): patches the single match; none is 404, several
    /// are 412. The search runs in the write transaction.
    pub async fn conditional_patch(
        &self,
        resource_type: &str,
        query: &str,
        body: &[u8],
        content_type: PatchFormat,
        if_match: Option<i64>,
        base: &str,
    ) -> Result<Written> {
        self.check_type(resource_type)?;
        let target = PatchTarget::Matching(query.to_string());
        let op = self.patch_write(resource_type, &target, body, content_type, if_match, base)?;
        self.write_edit(resource_type, op).await
    }

    /// The write operation of a patch of `target` (`base` resolves conditional criteria).
    pub(crate) fn patch_write(
        &self,
        resource_type: &str,
        target: &PatchTarget,
        body: &[u8],
        content_type: PatchFormat,
        if_match: Option<i64>,
        base: &str,
    ) -> Result<WriteOp> {
        if let PatchTarget::Instance(id) = target {
            Self::check_id(id)?;
        }
        let patch = Patch::parse(body, content_type)?;
        self.edit_op(resource_type, target, Change::Patch(patch), if_match, base)
    }

    /// The write operation that applies `change` to `target` inside the write transaction.
    pub(crate) fn edit_op(
        &self,
        resource_type: &str,
        target: &PatchTarget,
        change: Change,
        if_match: Option<i64>,
        base: &str,
    ) -> Result<WriteOp> {
        let edit = Edit {
            resource_type: resource_type.to_string(),
            target: target.clone(),
            if_match,
            change,
            validator: self.validator().clone(),
        };
        let patch = PatchOp {
            resource_type: resource_type.to_string(),
            transform: std::sync::Arc::new(edit),
            identity: identity_rule(resource_type),
            indexing: Some(self.indexing()),
        };
        Ok(match target {
            PatchTarget::Instance(id) => WriteOp::Patch {
                id: id.clone(),
                patch,
            },
            PatchTarget::Matching(query) => {
                let (condition, lock_key) =
                    self.condition(resource_type, query, base, "conditional patch")?;
                WriteOp::PatchMatching {
                    patch,
                    condition,
                    lock_key,
                }
            }
        })
    }

    /// Writes one edit and returns the version it wrote.
    pub(crate) async fn write_edit(&self, resource_type: &str, op: WriteOp) -> Result<Written> {
        let mut outcomes = self
            .store()
            .write(vec![op])
            .await
            .map_err(|e| store_error(e, resource_type))?;
        match outcomes.pop() {
            Some(WriteOutcome::Written { version, created }) => Ok(Written { version, created }),
            _ => Err(EngineError::Store(StoreError::Closed)),
        }
    }
}

/// The patch a Bundle entry carries: a `Binary` whose `contentType` is
/// `application/json-patch+json` and whose base64 `data` is the JSON Patch, or a FHIRPath Patch
/// `Parameters` resource.
pub(crate) fn entry_patch(resource: Option<&Value>) -> Result<(Vec<u8>, PatchFormat)> {
    let Some(resource) = resource else {
        return Err(EngineError::BadRequest(
            "a PATCH entry needs a resource: a Binary holding a JSON Patch or a Parameters (FHIRPath Patch)"
                .into(),
        ));
    };
    match envelope::resource_type(resource) {
        Some("Parameters") => Ok((
            serde_json::to_vec(resource).expect("JSON serialises"),
            PatchFormat::FhirPathPatch,
        )),
        Some("Binary") => {
            let content_type = resource
                .get("contentType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let media = content_type.split(';').next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("application/json-patch+json") {
                return Err(EngineError::BadRequest(format!(
                    "a PATCH entry's Binary must have contentType application/json-patch+json, not '{content_type}'"
                )));
            }
            let data = resource
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    EngineError::BadRequest("a PATCH entry's Binary has no data".into())
                })?;
            let bytes = decode_base64(data).ok_or_else(|| {
                EngineError::BadRequest("a PATCH entry's Binary data is not valid base64".into())
            })?;
            Ok((bytes, PatchFormat::JsonPatch))
        }
        other => Err(EngineError::BadRequest(format!(
            "a PATCH entry's resource must be a Binary (JSON Patch) or a Parameters (FHIRPath Patch), not {}",
            other.unwrap_or("a resource without resourceType")
        ))),
    }
}

/// Decodes standard base64 (padding optional, whitespace ignored); `None` when malformed.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let symbols: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let body = symbols
        .iter()
        .rposition(|&c| c != b'=')
        .map_or(&symbols[..0], |last| &symbols[..=last]);
    if symbols.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in body {
        acc = (acc << 6) | u32::from(sextet(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// What a patch must leave alone.
fn identity(resource: &Value) -> (Option<Value>, Option<Value>) {
    (
        resource.get("resourceType").cloned(),
        resource.get("id").cloned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8h").unwrap(), b"hello!");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("aGV*").is_none());
        assert!(decode_base64("aGVsbG8===").is_none());
    }

    #[test]
    fn bundle_entries_carry_json_patch_in_a_binary_or_fhirpath_patch() {
        let ops = r#"[{"op":"replace","path":"/active","value":false}]"#;
        let data: String = {
            // Encoded by hand so the test does not depend on the decoder it checks.
            const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            ops.as_bytes()
                .chunks(3)
                .flat_map(|c| {
                    let n =
                        c.iter().fold(0u32, |a, &b| (a << 8) | u32::from(b)) << (8 * (3 - c.len()));
                    (0..4).map(move |i| {
                        if i <= c.len() {
                            A[((n >> (18 - 6 * i)) & 63) as usize] as char
                        } else {
                            '='
                        }
                    })
                })
                .collect()
        };
        let binary = json!({"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data});
        let (bytes, format) = entry_patch(Some(&binary)).unwrap();
        assert_eq!(format, PatchFormat::JsonPatch);
        assert_eq!(bytes, ops.as_bytes());
        let params = json!({"resourceType": "Parameters", "parameter": []});
        assert_eq!(
            entry_patch(Some(&params)).unwrap().1,
            PatchFormat::FhirPathPatch
        );
        let wrong_type =
            json!({"resourceType": "Binary", "contentType": "text/plain", "data": data});
        assert!(matches!(
            entry_patch(Some(&wrong_type)),
            Err(EngineError::BadRequest(_))
        ));
        let patient = json!({"resourceType": "Patient"});
        assert!(matches!(
            entry_patch(Some(&patient)),
            Err(EngineError::BadRequest(_))
        ));
        assert!(matches!(entry_patch(None), Err(EngineError::BadRequest(_))));
    }
}
