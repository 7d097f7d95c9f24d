//! create, read, vread, update, delete and `$validate`.

use std::sync::Arc;

use curanet_fhir::{
    Definitions, Issue, IssueType, OperationOutcome, Validator, envelope, is_valid_id, new_id,
    parse_json,
};
use curanet_storage::{
    DeleteOp, Precondition, PutOp, SearchSpec, Store, StoreError, StoredVersion, UniqueIdentity,
    WriteOp, WriteOutcome,
};
use serde_json::Value;

use crate::health_ids;
use crate::{EngineError, Result};

/// The interactions, bound to a store and the definitions.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    validator: Validator,
    indexer: Arc<curanet_search::Indexer>,
}

/// A version the server just wrote.
#[derive(Debug)]
pub struct Written {
    pub version: StoredVersion,
    /// Whether the resource did not exist (or was deleted) before.
    pub created: bool,
}

/// What a delete did.
#[derive(Debug)]
pub enum Deleted {
    /// A tombstone version was written.
    Now(StoredVersion),
    /// The resource was already deleted, or never existed: nothing to do.
    Already,
}

/// The `mode` of `$validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidateMode {
    /// Plain validation (no mode given).
    General,
    /// Would this resource be accepted by a create?
    Create,
    /// Would this resource be accepted as an update of the resource with this id?
    Update,
    /// Could the resource with this id be deleted?
    Delete,
}

impl ValidateMode {
    /// Parses the `mode` parameter.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "create" => Ok(Self::Create),
            "update" => Ok(Self::Update),
            "delete" => Ok(Self::Delete),
            "" => Ok(Self::General),
            other => Err(EngineError::BadRequest(format!(
                "unknown $validate mode '{other}' (use create, update or delete)"
            ))),
        }
    }
}

fn reference(resource_type: &str, id: &str) -> String {
    format!("{resource_type}/{id}")
}

impl Engine {
    /// An engine over `store`, enforcing `defs`.
    pub fn new(store: Arc<dyn Store>, defs: Arc<Definitions>) -> Self {
        Self {
            store,
            indexer: Arc::new(curanet_search::Indexer::new(&defs)),
            validator: Validator::new(defs),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The search index extractor.
    pub(crate) fn indexer(&self) -> &curanet_search::Indexer {
        &self.indexer
    }

    /// The validator every write goes through.
    pub(crate) fn validator(&self) -> &Validator {
        &self.validator
    }

    /// The definitions enforced.
    pub fn definitions(&self) -> &Arc<Definitions> {
        self.validator.definitions()
    }

    /// Refuses resource types the definitions do not declare.
    pub fn check_type(&self, resource_type: &str) -> Result<()> {
        if self.definitions().is_resource_type(resource_type) {
            Ok(())
        } else {
            Err(EngineError::UnknownType(resource_type.to_string()))
        }
    }

    /// Refuses ids that are not valid FHIR logical ids (400).
    pub(crate) fn check_id(id: &str) -> Result<()> {
        if is_valid_id(id) {
            Ok(())
        } else {
            Err(EngineError::BadRequest(format!(
                "'{id}' is not a valid resource id (1-64 of A-Z a-z 0-9 - .)"
            )))
        }
    }

    /// Parses a body and checks that it is a resource of the type the URL names.
    pub(crate) fn parse_body(&self, resource_type: &str, body: &[u8]) -> Result<Value> {
        let value = parse_json(body)?;
        match envelope::resource_type(&value) {
            Some(rt) if rt == resource_type => Ok(value),
            Some(rt) => Err(EngineError::BadRequest(format!(
                "the body is a {rt}, but the URL is for {resource_type}"
            ))),
            None if value.is_object() => Err(EngineError::BadRequest(
                "the body has no resourceType".into(),
            )),
            None => Err(EngineError::BadRequest(
                "the body must be a JSON object (a FHIR resource)".into(),
            )),
        }
    }

    /// Validates a resource against the definitions (422 with every issue).
    pub(crate) fn validate_resource(&self, value: &Value) -> Result<()> {
        let issues: Vec<Issue> = self.validator.validate(value);
        if issues.iter().any(Issue::is_error) {
            Err(EngineError::Invalid(issues))
        } else {
            Ok(())
        }
    }

    /// `create`: validates, assigns an id (and a Health ID for people), stores version 1. With
    /// `if_none_exist` (a search query), an existing match is returned instead (race-safe).
    pub async fn create(
        &self,
        resource_type: &str,
        body: &[u8],
        if_none_exist: Option<&str>,
        base: &str,
    ) -> Result<Written> {
        self.check_type(resource_type)?;
        let resource = self.parse_body(resource_type, body)?;
        self.create_value(resource_type, resource, if_none_exist, base)
            .await
    }

    /// `create` of an already parsed resource.
    pub(crate) async fn create_value(
        &self,
        resource_type: &str,
        mut resource: Value,
        if_none_exist: Option<&str>,
        base: &str,
    ) -> Result<Written> {
        self.validate_resource(&resource)?;
        let id = new_id();
        envelope::set_id(&mut resource, &id);
        let Some(query) = if_none_exist else {
            return self
                .put(
                    resource_type,
                    &id,
                    resource,
                    Precondition::MustNotExist,
                    true,
                )
                .await;
        };
        let op = self.conditional_create_op(resource_type, &id, resource, query, base)?;
        let mut outcomes = self
            .store
            .write(vec![op])
            .await
            .map_err(|e| store_error(e, resource_type))?;
        match outcomes.pop() {
            Some(WriteOutcome::Written { version, created }) => Ok(Written { version, created }),
            Some(WriteOutcome::Existing { version }) => Ok(Written {
                version,
                created: false,
            }),
            _ => Err(EngineError::Store(StoreError::Closed)),
        }
    }

    /// The write operation of a conditional create (`If-None-Exist: query`).
    pub(crate) fn conditional_create_op(
        &self,
        resource_type: &str,
        id: &str,
        resource: Value,
        query: &str,
        base: &str,
    ) -> Result<WriteOp> {
        let (condition, lock_key) = self.condition(resource_type, query, base, "If-None-Exist")?;
        Ok(WriteOp::CreateUnlessExists {
            put: self.put_op(
                resource_type,
                id,
                resource,
                Precondition::MustNotExist,
                true,
            ),
            condition,
            lock_key,
        })
    }

    /// The search that conditional criteria (`a=1&b=2`) describe, run inside the write
    /// transaction, and the lock key that serialises conditional writes with the same criteria
    /// (`what` names the interaction in errors). Criteria must be non-empty and fully applicable.
    pub(crate) fn condition(
        &self,
        resource_type: &str,
        query: &str,
        base: &str,
        what: &str,
    ) -> Result<(SearchSpec, String)> {
        let pairs = query_pairs(query);
        if pairs.is_empty() {
            // Empty criteria would match every resource of the type.
            return Err(EngineError::BadRequest(format!(
                "{what}: the search criteria are empty"
            )));
        }
        let parsed = curanet_search::query::parse(self.definitions(), resource_type, &pairs, base)
            .map_err(|e| EngineError::BadRequest(format!("{what}: {e}")))?;
        if let Some((name, reason)) = parsed.ignored.first() {
            return Err(EngineError::BadRequest(format!(
                "{what}: parameter {name} cannot be applied: {reason}"
            )));
        }
        let mut sorted = pairs;
        sorted.sort();
        Ok((parsed.spec, format!("{resource_type}?{sorted:?}")))
    }

    /// The write operation that stores one resource version, with the Health ID rule for people
    /// and the search index.
    pub(crate) fn put_op(
        &self,
        resource_type: &str,
        id: &str,
        resource: Value,
        precondition: Precondition,
        new_id: bool,
    ) -> PutOp {
        PutOp {
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            resource,
            precondition,
            identity: identity_rule(resource_type),
            indexing: Some(self.indexer.clone()),
            new_id,
        }
    }

    /// The search index extractor, as the store takes it.
    pub(crate) fn indexing(&self) -> Arc<dyn curanet_storage::Indexing> {
        self.indexer.clone()
    }

    /// `update` (and update-as-create with a client-chosen id); `if_match` is the `If-Match` version.
    pub async fn update(
        &self,
        resource_type: &str,
        id: &str,
        body: &[u8],
        if_match: Option<i64>,
    ) -> Result<Written> {
        self.check_type(resource_type)?;
        Self::check_id(id)?;
        let resource = self.parse_body(resource_type, body)?;
        match envelope::id(&resource) {
            Some(body_id) if body_id == id => {}
            Some(body_id) => {
                return Err(EngineError::BadRequest(format!(
                    "the id in the body ({body_id}) does not match the id in the URL ({id})"
                )));
            }
            None => {
                return Err(EngineError::BadRequest(
                    "an update must carry the resource id in the body".into(),
                ));
            }
        }
        self.validate_resource(&resource)?;
        let precondition = if_match.map_or(Precondition::None, Precondition::IfMatch);
        self.put(resource_type, id, resource, precondition, false)
            .await
    }

    /// Writes one resource; people get the Health ID rule, applied inside the write transaction.
    async fn put(
        &self,
        resource_type: &str,
        id: &str,
        resource: Value,
        precondition: Precondition,
        new_id: bool,
    ) -> Result<Written> {
        let client_chose =
            health_ids::applies_to(resource_type) && health_ids::given(resource_type, &resource)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let op = self.put_op(resource_type, id, resource.clone(), precondition, new_id);
            match self.store.write(vec![WriteOp::Put(op)]).await {
                Ok(mut outcomes) => {
                    return match outcomes.pop() {
                        Some(WriteOutcome::Written { version, created }) => {
                            Ok(Written { version, created })
                        }
                        _ => Err(EngineError::Store(StoreError::Closed)),
                    };
                }
                // A generated ID collided (about 1 in 34 billion): the rule draws another.
                Err(StoreError::DuplicateIdentifier { .. }) if !client_chose && attempts < 5 => {}
                Err(e) => return Err(store_error(e, resource_type)),
            }
        }
    }

    /// `read`: the current version (404 unknown, 410 deleted).
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<StoredVersion> {
        self.check_type(resource_type)?;
        Self::check_id(id)?;
        match self.store.read(resource_type, id).await? {
            None => Err(EngineError::NotFound(reference(resource_type, id))),
            Some(v) if v.deleted => Err(EngineError::Gone(reference(resource_type, id))),
            Some(v) => Ok(v),
        }
    }

    /// `vread`: a specific version (410 when that version is a delete).
    pub async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version: &str,
    ) -> Result<StoredVersion> {
        self.check_type(resource_type)?;
        Self::check_id(id)?;
        let label = format!("{}/_history/{version}", reference(resource_type, id));
        let Ok(n) = version.parse::<i64>() else {
            return Err(EngineError::NotFound(label));
        };
        match self.store.vread(resource_type, id, n).await? {
            None => Err(EngineError::NotFound(label)),
            Some(v) if v.deleted => Err(EngineError::Gone(label)),
            Some(v) => Ok(v),
        }
    }

    /// `delete`: writes a tombstone; deleting what is not there is not an error.
    pub async fn delete(
        &self,
        resource_type: &str,
        id: &str,
        if_match: Option<i64>,
    ) -> Result<Deleted> {
        self.check_type(resource_type)?;
        Self::check_id(id)?;
        let op = DeleteOp {
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            precondition: if_match.map_or(Precondition::None, Precondition::IfMatch),
        };
        let mut outcomes = self.store.write(vec![WriteOp::Delete(op)]).await?;
        Ok(match outcomes.pop() {
            Some(WriteOutcome::Written { version, .. }) => Deleted::Now(version),
            _ => Deleted::Already,
        })
    }

    /// Stores CuraNet's own conformance resources (the Health ID NamingSystem) when missing.
    pub async fn install_conformance_resources(&self) -> Result<()> {
        for text in curanet_fhir_profiles::curanet::resources() {
            let resource = parse_json(text.as_bytes())?;
            self.validate_resource(&resource)?;
            let (Some(rt), Some(id)) =
                (envelope::resource_type(&resource), envelope::id(&resource))
            else {
                continue;
            };
            if self.store.read(rt, id).await?.is_none() {
                let (rt, id) = (rt.to_string(), id.to_string());
                match self
                    .put(&rt, &id, resource, Precondition::MustNotExist, false)
                    .await
                {
                    // Another instance installed it at the same moment.
                    Ok(_) | Err(EngineError::PreconditionFailed(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// `$validate`: every issue, as an OperationOutcome; the resource is never stored.
    pub async fn validate(
        &self,
        resource_type: &str,
        id: Option<&str>,
        body: Option<&[u8]>,
        mode: ValidateMode,
    ) -> Result<OperationOutcome> {
        self.check_type(resource_type)?;
        if mode == ValidateMode::Delete {
            let id = id
                .ok_or_else(|| EngineError::BadRequest("mode=delete needs a resource id".into()))?;
            self.read(resource_type, id).await?;
            return Ok(OperationOutcome::default());
        }
        let resource = match body {
            Some(body) => {
                let value = parse_json(body)?;
                unwrap_parameters(value)?
            }
            None => {
                let id = id.ok_or_else(|| {
                    EngineError::BadRequest("$validate needs a resource in the body".into())
                })?;
                self.read(resource_type, id)
                    .await?
                    .resource()
                    .unwrap_or_default()
            }
        };
        let mut issues = self.validator.validate(&resource);
        if let Some(rt) = envelope::resource_type(&resource)
            && rt != resource_type
        {
            issues.push(
                Issue::error(
                    IssueType::Invalid,
                    format!("the resource is a {rt}, not a {resource_type}"),
                )
                .at(rt),
            );
        }
        if mode == ValidateMode::Update && envelope::id(&resource).is_none() {
            issues.push(
                Issue::error(IssueType::Required, "an update needs the resource id")
                    .at(format!("{resource_type}.id")),
            );
        }
        if let (Some(url_id), Some(body_id)) = (id, envelope::id(&resource))
            && url_id != body_id
        {
            issues.push(
                Issue::error(
                    IssueType::Invalid,
                    format!("the id in the body ({body_id}) does not match the URL ({url_id})"),
                )
                .at(format!("{resource_type}.id")),
            );
        }
        Ok(OperationOutcome { issues })
    }
}

/// The unique-identifier rule of a resource type: the Health ID for people, none otherwise.
pub(crate) fn identity_rule(resource_type: &str) -> Option<Arc<dyn UniqueIdentity>> {
    health_ids::applies_to(resource_type).then(|| {
        Arc::new(health_ids::HealthIdRule {
            resource_type: resource_type.to_string(),
        }) as Arc<dyn UniqueIdentity>
    })
}

/// Maps a storage error of a write to the interaction's error.
pub(crate) fn store_error(e: StoreError, resource_type: &str) -> EngineError {
    match e {
        StoreError::DuplicateIdentifier {
            system,
            value,
            owner,
        } => EngineError::Conflict(
            Issue::error(
                IssueType::Duplicate,
                format!("the identifier {system}|{value} already belongs to {owner}"),
            )
            .at(format!("{resource_type}.identifier")),
        ),
        StoreError::Refused(issues) => EngineError::Invalid(issues),
        StoreError::MultipleMatches { count } => EngineError::PreconditionFailed(format!(
            "the conditional criteria match {count} or more resources; they must match at most one"
        )),
        StoreError::TooManyMatches { max } => EngineError::PreconditionFailed(format!(
            "the conditional criteria match more than {max} resources; a conditional delete \
             removes at most {max} at once, so nothing was deleted (narrow the criteria)"
        )),
        StoreError::IdMismatch { given, found } => EngineError::BadRequest(format!(
            "the resource's id ({given}) differs from the resource the criteria match ({found})"
        )),
        // A transform's refusal is the engine's own error, passed through the store.
        StoreError::Transform(e) => match e.downcast::<EngineError>() {
            Ok(e) => *e,
            Err(e) => EngineError::Store(StoreError::Transform(e)),
        },
        StoreError::InOperation { source, .. } => store_error(*source, resource_type),
        other => other.into(),
    }
}

/// Decodes a query string (`a=1&b=2`, optionally after `Type?`) into pairs.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    let query = query.split_once('?').map_or(query, |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// `$validate` accepts the resource itself or a Parameters with a `resource` parameter.
fn unwrap_parameters(value: Value) -> Result<Value> {
    if envelope::resource_type(&value) != Some("Parameters") {
        return Ok(value);
    }
    let params = value.get("parameter").and_then(Value::as_array);
    params
        .into_iter()
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some("resource"))
        .and_then(|p| p.get("resource").cloned())
        .map_or(Ok(value.clone()), Ok)
}
