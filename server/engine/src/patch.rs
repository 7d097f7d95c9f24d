//! `patch`: JSON Patch (RFC 6902) and FHIRPath Patch applied to the current version, stored as
//! an update (validated like any write, guarded by the version that was read).

mod fhir_patch;
mod json_patch;
mod path;

use curanet_fhir::{Issue, IssueType, parse_json};
use curanet_storage::StoreError;
use serde_json::Value;

use crate::{Engine, EngineError, Result, Written};

/// How many times a patch is re-applied when another write lands between its read and its write
/// (only when the client sent no `If-Match`).
const CONFLICT_RETRIES: usize = 16;

/// The kind of patch document a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchFormat {
    /// `application/json-patch+json` (RFC 6902).
    JsonPatch,
    /// A FHIRPath Patch `Parameters` resource (`application/fhir+json`).
    FhirPathPatch,
}

/// A parsed patch document.
enum Patch {
    Json(Vec<json_patch::Op>),
    FhirPath(Vec<fhir_patch::Operation>),
}

fn unprocessable(message: String) -> EngineError {
    EngineError::Invalid(vec![Issue::error(IssueType::Processing, message)])
}

impl Patch {
    fn parse(body: &[u8], format: PatchFormat) -> Result<Patch> {
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

    fn apply(&self, engine: &Engine, resource: &mut Value) -> Result<()> {
        match self {
            Patch::Json(ops) => json_patch::apply(resource, ops).map_err(unprocessable),
            Patch::FhirPath(ops) => {
                fhir_patch::apply(engine.definitions(), resource, ops).map_err(|e| match e {
                    fhir_patch::PatchError::Malformed(m) => {
                        EngineError::BadRequest(format!("FHIRPath Patch: {m}"))
                    }
                    fhir_patch::PatchError::Unprocessable(m) => {
                        unprocessable(format!("FHIRPath Patch: {m}"))
                    }
                })
            }
        }
    }
}

impl Engine {
    /// `patch`: applies a JSON Patch or FHIRPath Patch to the current version and stores the
    /// result as a new version. `if_match` is the `If-Match` version (412 when stale); without it
    /// the version read guards the write, and a concurrent write makes the patch re-apply.
    pub async fn patch(
        &self,
        resource_type: &str,
        id: &str,
        body: &[u8],
        content_type: PatchFormat,
        if_match: Option<i64>,
    ) -> Result<Written> {
        self.check_type(resource_type)?;
        let patch = Patch::parse(body, content_type)?;
        let mut retries = 0;
        loop {
            let current = self.read(resource_type, id).await?;
            if let Some(wanted) = if_match
                && wanted != current.version
            {
                return Err(EngineError::PreconditionFailed(format!(
                    "{resource_type}/{id}: expected version {wanted}, but the server has version {}",
                    current.version
                )));
            }
            let mut resource = current
                .resource()
                .ok_or(EngineError::Store(StoreError::Closed))?;
            let before = identity(&resource);
            patch.apply(self, &mut resource)?;
            if identity(&resource) != before {
                return Err(EngineError::BadRequest(
                    "a patch must not change the resource's id or resourceType".into(),
                ));
            }
            let bytes = serde_json::to_vec(&resource).expect("JSON serialises");
            let guard = Some(if_match.unwrap_or(current.version));
            match self.update(resource_type, id, &bytes, guard).await {
                Err(EngineError::PreconditionFailed(_))
                    if if_match.is_none() && retries < CONFLICT_RETRIES =>
                {
                    retries += 1;
                }
                other => return other,
            }
        }
    }
}

/// What a patch must leave alone.
fn identity(resource: &Value) -> (Option<Value>, Option<Value>) {
    (
        resource.get("resourceType").cloned(),
        resource.get("id").cloned(),
    )
}
