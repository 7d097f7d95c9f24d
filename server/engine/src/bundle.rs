//! Batch and transaction Bundles (`POST /fhir`), per the R4 rules: a transaction is processed in
//! the order DELETE, POST, PUT/PATCH, GET, with `urn:uuid:`/`urn:oid:` full URLs and conditional
//! references resolved and rewritten throughout, and commits all or nothing; a batch answers each
//! entry on its own.

use std::collections::HashMap;

use curanet_fhir::{Issue, IssueType, OperationOutcome, envelope, is_valid_id, new_id, parse_json};
use curanet_storage::{DeleteOp, Precondition, StoreError, StoredVersion, WriteOp, WriteOutcome};
use serde_json::{Value, json};

use crate::interactions::{query_pairs, store_error};
use crate::patch::{PatchTarget, entry_patch};
use crate::{Deleted, Engine, EngineError, Result, Written};

/// Most entries a Bundle may carry.
pub const MAX_ENTRIES: usize = 20_000;

/// What an entry's `request.url` names.
#[derive(Debug, Clone)]
enum Target {
    /// `Type`
    Type(String),
    /// `Type/id`
    Instance(String, String),
    /// `Type/id/_history/n`
    Version(String, String, String),
    /// `Type?query`
    Conditional(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Delete,
    Post,
    Put,
    Patch,
    Get,
}

impl Verb {
    /// Where a transaction processes the verb: DELETE, POST, PUT and PATCH (in Bundle order), GET.
    fn rank(self) -> u8 {
        match self {
            Verb::Delete => 0,
            Verb::Post => 1,
            Verb::Put | Verb::Patch => 2,
            Verb::Get => 3,
        }
    }
}

/// The resource type a target names.
fn target_type(target: &Target) -> &str {
    match target {
        Target::Type(rt)
        | Target::Instance(rt, _)
        | Target::Version(rt, _, _)
        | Target::Conditional(rt, _) => rt,
    }
}

#[derive(Debug)]
struct Entry {
    index: usize,
    verb: Verb,
    target: Target,
    full_url: Option<String>,
    resource: Option<Value>,
    if_match: Option<i64>,
    if_none_exist: Option<String>,
}

fn entry_error(index: usize, e: EngineError) -> EngineError {
    match e {
        EngineError::Invalid(issues) => EngineError::Invalid(
            issues
                .into_iter()
                .map(|mut i| {
                    i.diagnostics = format!("entry {index}: {}", i.diagnostics);
                    i.expression = i
                        .expression
                        .map(|x| format!("Bundle.entry[{index}].resource.{x}"));
                    i
                })
                .collect(),
        ),
        EngineError::BadRequest(m) => EngineError::BadRequest(format!("entry {index}: {m}")),
        EngineError::NotFound(m) => EngineError::NotFound(format!("entry {index}: {m}")),
        EngineError::Gone(m) => EngineError::Gone(format!("entry {index}: {m}")),
        EngineError::PreconditionFailed(m) => {
            EngineError::PreconditionFailed(format!("entry {index}: {m}"))
        }
        EngineError::UnknownType(t) => {
            EngineError::BadRequest(format!("entry {index}: unknown resource type '{t}'"))
        }
        EngineError::Conflict(mut issue) => {
            issue.diagnostics = format!("entry {index}: {}", issue.diagnostics);
            EngineError::Conflict(issue)
        }
        other => other,
    }
}

fn parse_target(url: &str, base: &str) -> Option<Target> {
    let url = url
        .strip_prefix(base)
        .map(|u| u.trim_start_matches('/'))
        .unwrap_or(url);
    if let Some((rt, query)) = url.split_once('?') {
        return Some(Target::Conditional(rt.to_string(), query.to_string()));
    }
    let parts: Vec<&str> = url.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [rt] if !rt.is_empty() => Some(Target::Type(rt.to_string())),
        [rt, id] => Some(Target::Instance(rt.to_string(), id.to_string())),
        [rt, id, "_history", v] => Some(Target::Version(
            rt.to_string(),
            id.to_string(),
            v.to_string(),
        )),
        _ => None,
    }
}

fn read_entries(bundle: &Value, base: &str) -> Result<Vec<Entry>> {
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.len() > MAX_ENTRIES {
        return Err(EngineError::BadRequest(format!(
            "a Bundle may carry at most {MAX_ENTRIES} entries"
        )));
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let request = e.get("request").ok_or_else(|| {
                EngineError::BadRequest(format!("entry {index}: request is missing"))
            })?;
            let verb = match request.get("method").and_then(Value::as_str) {
                Some("DELETE") => Verb::Delete,
                Some("POST") => Verb::Post,
                Some("PUT") => Verb::Put,
                Some("PATCH") => Verb::Patch,
                Some("GET" | "HEAD") => Verb::Get,
                Some(other) => {
                    return Err(EngineError::BadRequest(format!(
                        "entry {index}: method {other} is not supported in Bundles"
                    )));
                }
                None => {
                    return Err(EngineError::BadRequest(format!(
                        "entry {index}: request.method is missing"
                    )));
                }
            };
            let url = request
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let target = parse_target(url, base).ok_or_else(|| {
                EngineError::BadRequest(format!("entry {index}: cannot read request.url '{url}'"))
            })?;
            let if_match = match request.get("ifMatch").and_then(Value::as_str) {
                Some(tag) => Some(
                    tag.trim_start_matches("W/")
                        .trim_matches('"')
                        .parse()
                        .map_err(|_| {
                            EngineError::BadRequest(format!(
                                "entry {index}: invalid ifMatch '{tag}'"
                            ))
                        })?,
                ),
                None => None,
            };
            Ok(Entry {
                index,
                verb,
                target,
                full_url: e.get("fullUrl").and_then(Value::as_str).map(String::from),
                resource: e.get("resource").cloned(),
                if_match,
                if_none_exist: request
                    .get("ifNoneExist")
                    .and_then(Value::as_str)
                    .map(String::from),
            })
        })
        .collect()
}

/// Replaces every `reference` found in `map` (full URLs → `Type/id`) throughout a resource.
fn rewrite_references(value: &mut Value, map: &HashMap<String, String>) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj.iter_mut() {
                if k == "reference"
                    && let Value::String(s) = v
                    && let Some(local) = map.get(s.as_str())
                {
                    *s = local.clone();
                } else {
                    rewrite_references(v, map);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_references(v, map)),
        _ => {}
    }
}

/// Every conditional reference (`Type?query`) in a resource.
fn conditional_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj {
                match (k.as_str(), v) {
                    ("reference", Value::String(s)) if s.contains('?') => out.push(s.clone()),
                    _ => conditional_references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| conditional_references(v, out)),
        _ => {}
    }
}

fn status_line(code: u16) -> &'static str {
    match code {
        200 => "200 OK",
        201 => "201 Created",
        204 => "204 No Content",
        400 => "400 Bad Request",
        404 => "404 Not Found",
        409 => "409 Conflict",
        410 => "410 Gone",
        412 => "412 Precondition Failed",
        422 => "422 Unprocessable Entity",
        _ => "500 Internal Server Error",
    }
}

fn written_response(base: &str, v: &StoredVersion, status: u16) -> Value {
    json!({
        "status": status_line(status),
        "location": format!("{base}/{}/{}/_history/{}", v.resource_type, v.id, v.version),
        "etag": format!("W/\"{}\"", v.version),
        "lastModified": v.last_updated.to_fhir(),
    })
}

/// The status an error has as a Bundle entry response (as HTTP would have answered alone).
pub fn error_status(e: &EngineError) -> u16 {
    match e {
        EngineError::Json(_) | EngineError::BadRequest(_) => 400,
        EngineError::UnknownType(_) | EngineError::NotFound(_) => 404,
        EngineError::Gone(_) => 410,
        EngineError::Invalid(_) => 422,
        EngineError::PreconditionFailed(_) => 412,
        EngineError::Conflict(_) => 409,
        EngineError::Store(_) => 500,
    }
}

/// The OperationOutcome of an error.
pub fn error_outcome(e: &EngineError) -> OperationOutcome {
    match e {
        EngineError::Invalid(issues) => OperationOutcome {
            issues: issues.clone(),
        },
        EngineError::Conflict(issue) => OperationOutcome::single(issue.clone()),
        other => OperationOutcome::single(Issue::error(IssueType::Processing, other.to_string())),
    }
}

impl Engine {
    /// Processes a batch or transaction Bundle and returns the response Bundle.
    pub async fn bundle(&self, body: &[u8], base: &str) -> Result<Value> {
        let bundle = parse_json(body)?;
        if envelope::resource_type(&bundle) != Some("Bundle") {
            return Err(EngineError::BadRequest(
                "POST to the base takes a Bundle".into(),
            ));
        }
        let kind = bundle
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let entries = read_entries(&bundle, base)?;
        let responses = match kind.as_str() {
            "transaction" => self.transaction(entries, base).await?,
            "batch" => self.batch(entries, base).await,
            other => {
                return Err(EngineError::BadRequest(format!(
                    "Bundle.type must be batch or transaction, not '{other}'"
                )));
            }
        };
        Ok(json!({
            "resourceType": "Bundle",
            "id": new_id(),
            "type": format!("{kind}-response"),
            "entry": responses,
        }))
    }

    async fn batch(&self, entries: Vec<Entry>, base: &str) -> Vec<Value> {
        let mut responses = Vec::with_capacity(entries.len());
        for entry in entries {
            let response = match self.single(&entry, base).await {
                Ok(r) => r,
                Err(e) => json!({"response": {
                    "status": status_line(error_status(&e)),
                    "outcome": error_outcome(&e).to_json(),
                }}),
            };
            responses.push(response);
        }
        responses
    }

    /// One batch entry, processed on its own.
    async fn single(&self, entry: &Entry, base: &str) -> Result<Value> {
        let resource = || {
            entry
                .resource
                .clone()
                .ok_or_else(|| EngineError::BadRequest("the entry has no resource".into()))
        };
        let written = |w: Written| json!({"response": written_response(base, &w.version, if w.created { 201 } else { 200 })});
        match (&entry.verb, &entry.target) {
            (Verb::Post, Target::Type(rt)) => {
                self.check_type(rt)?;
                let r = resource()?;
                check_type_matches(rt, &r)?;
                Ok(written(
                    self.create_value(rt, r, entry.if_none_exist.as_deref(), base)
                        .await?,
                ))
            }
            (Verb::Put, Target::Instance(rt, id)) => {
                let body = serde_json::to_vec(&resource()?).expect("JSON serialises");
                Ok(written(self.update(rt, id, &body, entry.if_match).await?))
            }
            (Verb::Put, Target::Conditional(rt, query)) => {
                let body = serde_json::to_vec(&resource()?).expect("JSON serialises");
                Ok(written(
                    self.conditional_update(rt, query, &body, base).await?,
                ))
            }
            (Verb::Delete, Target::Instance(rt, id)) => {
                let status = match self.delete(rt, id, entry.if_match).await? {
                    Deleted::Now(_) | Deleted::Already => 204,
                };
                Ok(json!({"response": {"status": status_line(status)}}))
            }
            (Verb::Delete, Target::Conditional(rt, query)) => {
                self.conditional_delete(rt, query, base).await?;
                Ok(json!({"response": {"status": status_line(204)}}))
            }
            (Verb::Patch, Target::Instance(rt, id)) => {
                let (body, format) = entry_patch(entry.resource.as_ref())?;
                Ok(written(
                    self.patch(rt, id, &body, format, entry.if_match).await?,
                ))
            }
            (Verb::Patch, Target::Conditional(rt, query)) => {
                let (body, format) = entry_patch(entry.resource.as_ref())?;
                Ok(written(
                    self.conditional_patch(rt, query, &body, format, entry.if_match, base)
                        .await?,
                ))
            }
            (Verb::Get, target) => self.get_entry(target, base).await,
            _ => Err(EngineError::BadRequest(
                "this method and URL combination is not supported in a batch".into(),
            )),
        }
    }

    async fn get_entry(&self, target: &Target, base: &str) -> Result<Value> {
        match target {
            Target::Instance(rt, id) => {
                let v = self.read(rt, id).await?;
                Ok(json!({"resource": v.resource(), "response": written_response(base, &v, 200)}))
            }
            Target::Version(rt, id, n) => {
                let v = self.vread(rt, id, n).await?;
                Ok(json!({"resource": v.resource(), "response": written_response(base, &v, 200)}))
            }
            Target::Type(rt) | Target::Conditional(rt, _) => {
                let query = match target {
                    Target::Conditional(_, q) => q.clone(),
                    _ => String::new(),
                };
                let result = self.search(rt, &query_pairs(&query), base, false).await?;
                let entries: Vec<Value> = result
                    .page
                    .resources
                    .iter()
                    .map(|v| json!({"fullUrl": format!("{base}/{}/{}", v.resource_type, v.id), "resource": v.resource(), "search": {"mode": "match"}}))
                    .collect();
                let mut b =
                    json!({"resourceType": "Bundle", "type": "searchset", "entry": entries});
                if let Some(t) = result.page.total {
                    b["total"] = json!(t);
                }
                Ok(json!({"resource": b, "response": {"status": "200 OK"}}))
            }
        }
    }

    /// Finds the single resource a conditional URL names (0 → `None`; several → 412).
    async fn resolve_conditional(
        &self,
        rt: &str,
        query: &str,
        base: &str,
    ) -> Result<Option<StoredVersion>> {
        let mut pairs = query_pairs(query);
        pairs.push(("_count".into(), "2".into()));
        let result = self.search(rt, &pairs, base, true).await?;
        match result.page.resources.len() {
            0 => Ok(None),
            1 => Ok(result.page.resources.into_iter().next()),
            n => Err(EngineError::PreconditionFailed(format!(
                "{rt}?{query} matches {n} or more resources"
            ))),
        }
    }

    async fn transaction(&self, mut entries: Vec<Entry>, base: &str) -> Result<Vec<Value>> {
        // 1. Ids: every POST gets its id now, so references to its fullUrl can be rewritten.
        let mut map: HashMap<String, String> = HashMap::new();
        let mut assigned: HashMap<usize, String> = HashMap::new();
        for e in &entries {
            match (&e.verb, &e.target) {
                (Verb::Post, Target::Type(rt)) => {
                    self.check_type(rt).map_err(|x| entry_error(e.index, x))?;
                    let id = new_id();
                    if let Some(full) = &e.full_url {
                        map.insert(full.clone(), format!("{rt}/{id}"));
                    }
                    assigned.insert(e.index, id);
                }
                (Verb::Put, Target::Instance(rt, id)) => {
                    if let Some(full) = &e.full_url {
                        map.insert(full.clone(), format!("{rt}/{id}"));
                    }
                }
                _ => {}
            }
        }
        // 2. Conditional creates that already match point their fullUrl at the existing resource.
        let mut existing: HashMap<usize, StoredVersion> = HashMap::new();
        for e in &entries {
            if let (Verb::Post, Target::Type(rt), Some(q)) = (&e.verb, &e.target, &e.if_none_exist)
                && let Some(found) = self
                    .resolve_conditional(rt, q, base)
                    .await
                    .map_err(|x| entry_error(e.index, x))?
            {
                if let Some(full) = &e.full_url {
                    map.insert(
                        full.clone(),
                        format!("{}/{}", found.resource_type, found.id),
                    );
                }
                existing.insert(e.index, found);
            }
        }
        // 3. Conditional references (`Patient?identifier=...`) must name exactly one resource.
        for e in &entries {
            let mut refs = Vec::new();
            if let Some(r) = &e.resource {
                conditional_references(r, &mut refs);
            }
            for r in refs {
                if map.contains_key(&r) {
                    continue;
                }
                let (rt, q) = r.split_once('?').unwrap_or_default();
                match self
                    .resolve_conditional(rt, q, base)
                    .await
                    .map_err(|x| entry_error(e.index, x))?
                {
                    Some(found) => {
                        map.insert(r.clone(), format!("{}/{}", found.resource_type, found.id));
                    }
                    None => {
                        return Err(EngineError::PreconditionFailed(format!(
                            "entry {}: the conditional reference {r} matches no resource",
                            e.index
                        )));
                    }
                }
            }
        }
        for e in &mut entries {
            if let Some(r) = &mut e.resource {
                rewrite_references(r, &map);
            }
        }
        // 4. The writes, in the order DELETE, POST, PUT/PATCH, as one atomic write. Conditional
        //    updates, deletes and patches search inside it, so they race with nothing.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|&i| entries[i].verb.rank());
        let mut ops = Vec::new();
        let mut op_entry = Vec::new();
        for &i in &order {
            let e = &entries[i];
            let op = match (&e.verb, &e.target) {
                (Verb::Get, _) => continue,
                (Verb::Post, Target::Type(rt)) => {
                    if existing.contains_key(&e.index) {
                        continue;
                    }
                    let mut r = e.resource.clone().ok_or_else(|| {
                        EngineError::BadRequest(format!(
                            "entry {}: POST without a resource",
                            e.index
                        ))
                    })?;
                    check_type_matches(rt, &r).map_err(|x| entry_error(e.index, x))?;
                    self.validate_entry(e.index, &r)?;
                    let id = &assigned[&e.index];
                    envelope::set_id(&mut r, id);
                    match &e.if_none_exist {
                        Some(q) => self
                            .conditional_create_op(rt, id, r, q, base)
                            .map_err(|x| entry_error(e.index, x))?,
                        None => {
                            WriteOp::Put(self.put_op(rt, id, r, Precondition::MustNotExist, true))
                        }
                    }
                }
                (Verb::Put, Target::Instance(rt, id)) => {
                    self.check_type(rt).map_err(|x| entry_error(e.index, x))?;
                    if !is_valid_id(id) {
                        return Err(EngineError::BadRequest(format!(
                            "entry {}: invalid id '{id}'",
                            e.index
                        )));
                    }
                    let r = e.resource.clone().ok_or_else(|| {
                        EngineError::BadRequest(format!(
                            "entry {}: PUT without a resource",
                            e.index
                        ))
                    })?;
                    check_type_matches(rt, &r).map_err(|x| entry_error(e.index, x))?;
                    if envelope::id(&r) != Some(id.as_str()) {
                        return Err(EngineError::BadRequest(format!(
                            "entry {}: the resource id must match the URL ({id})",
                            e.index
                        )));
                    }
                    self.validate_entry(e.index, &r)?;
                    let precondition = e.if_match.map_or(Precondition::None, Precondition::IfMatch);
                    WriteOp::Put(self.put_op(rt, id, r, precondition, false))
                }
                (Verb::Put, Target::Conditional(rt, q)) => {
                    self.check_type(rt).map_err(|x| entry_error(e.index, x))?;
                    let r = e.resource.clone().ok_or_else(|| {
                        EngineError::BadRequest(format!(
                            "entry {}: PUT without a resource",
                            e.index
                        ))
                    })?;
                    check_type_matches(rt, &r).map_err(|x| entry_error(e.index, x))?;
                    self.validate_entry(e.index, &r)?;
                    self.update_matching_op(rt, r, q, base)
                        .map_err(|x| entry_error(e.index, x))?
                }
                (Verb::Patch, target @ (Target::Instance(rt, _) | Target::Conditional(rt, _))) => {
                    self.check_type(rt).map_err(|x| entry_error(e.index, x))?;
                    let target = match target {
                        Target::Instance(_, id) => PatchTarget::Instance(id.clone()),
                        Target::Conditional(_, q) => PatchTarget::Matching(q.clone()),
                        _ => unreachable!("matched above"),
                    };
                    let (body, format) =
                        entry_patch(e.resource.as_ref()).map_err(|x| entry_error(e.index, x))?;
                    self.patch_write(rt, &target, &body, format, e.if_match, base)
                        .map_err(|x| entry_error(e.index, x))?
                }
                (Verb::Delete, Target::Instance(rt, id)) => {
                    self.check_type(rt).map_err(|x| entry_error(e.index, x))?;
                    WriteOp::Delete(DeleteOp {
                        resource_type: rt.clone(),
                        id: id.clone(),
                        precondition: e.if_match.map_or(Precondition::None, Precondition::IfMatch),
                    })
                }
                (Verb::Delete, Target::Conditional(rt, q)) => {
                    self.check_type(rt).map_err(|x| entry_error(e.index, x))?;
                    self.delete_matching_op(rt, q, base)
                        .map_err(|x| entry_error(e.index, x))?
                }
                _ => {
                    return Err(EngineError::BadRequest(format!(
                        "entry {}: this method and URL combination is not supported in a transaction",
                        e.index
                    )));
                }
            };
            ops.push(op);
            op_entry.push(i);
        }
        let single = op_entry.len() == 1;
        let outcomes = match self.store().write(ops).await {
            Ok(o) => o,
            // The store says which operation failed: the outcome names its entry.
            Err(StoreError::InOperation { index, source }) => {
                let e = &entries[op_entry[index]];
                return Err(entry_error(
                    e.index,
                    store_error(*source, target_type(&e.target)),
                ));
            }
            Err(err) if single => {
                let e = &entries[op_entry[0]];
                return Err(entry_error(
                    e.index,
                    store_error(err, target_type(&e.target)),
                ));
            }
            Err(e) => return Err(store_error(e, "Resource")),
        };
        // 5. Responses in the order of the request; GETs run after the writes.
        let mut responses: Vec<Value> = entries
            .iter()
            .map(|e| json!({"response": {"status": status_line(if e.verb == Verb::Delete { 204 } else { 200 })}}))
            .collect();
        for (i, found) in &existing {
            responses[*i] = json!({"response": written_response(base, found, 200)});
        }
        for (outcome, &i) in outcomes.iter().zip(&op_entry) {
            responses[i] = match outcome {
                WriteOutcome::Written { version, created } => {
                    let status = if version.deleted {
                        204
                    } else if *created {
                        201
                    } else {
                        200
                    };
                    let mut r = written_response(base, version, status);
                    if version.deleted {
                        r = json!({"status": status_line(204), "etag": format!("W/\"{}\"", version.version)});
                    }
                    json!({"response": r})
                }
                WriteOutcome::Existing { version } => {
                    json!({"response": written_response(base, version, 200)})
                }
                WriteOutcome::NothingToDelete { .. }
                | WriteOutcome::DeletedMatching { .. }
                | WriteOutcome::Maintained => {
                    json!({"response": {"status": status_line(204)}})
                }
            };
        }
        for e in entries.iter().filter(|e| e.verb == Verb::Get) {
            responses[e.index] = match self.get_entry(&e.target, base).await {
                Ok(r) => r,
                Err(x) => {
                    json!({"response": {"status": status_line(error_status(&x)), "outcome": error_outcome(&x).to_json()}})
                }
            };
        }
        Ok(responses)
    }

    fn validate_entry(&self, index: usize, resource: &Value) -> Result<()> {
        self.validate_resource(resource)
            .map_err(|e| entry_error(index, e))
    }
}

fn check_type_matches(rt: &str, resource: &Value) -> Result<()> {
    match envelope::resource_type(resource) {
        Some(t) if t == rt => Ok(()),
        Some(t) => Err(EngineError::BadRequest(format!(
            "the resource is a {t}, but the URL is for {rt}"
        ))),
        None => Err(EngineError::BadRequest(
            "the resource has no resourceType".into(),
        )),
    }
}

/// Most resources one conditional delete removes; more matches are refused (412) and nothing is
/// deleted, so a too-broad criterion cannot wipe a type.
pub const MAX_CONDITIONAL_DELETES: u32 = 100;

impl Engine {
    /// Conditional update (`PUT Type?query`): no match creates (with the body's id or a new one),
    /// one match updates it (a body id that differs is 400), several are 412. The search and the
    /// write are one transaction, serialised with conditional writes of the same criteria, so
    /// concurrent conditional updates create one resource.
    pub async fn conditional_update(
        &self,
        resource_type: &str,
        query: &str,
        body: &[u8],
        base: &str,
    ) -> Result<Written> {
        self.check_type(resource_type)?;
        let resource = self.parse_body(resource_type, body)?;
        self.validate_resource(&resource)?;
        let op = self.update_matching_op(resource_type, resource, query, base)?;
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

    /// The write operation of a conditional update of a validated resource.
    fn update_matching_op(
        &self,
        resource_type: &str,
        resource: Value,
        query: &str,
        base: &str,
    ) -> Result<WriteOp> {
        let (condition, lock_key) =
            self.condition(resource_type, query, base, "conditional update")?;
        // The body's id is kept as the client's (the store compares it with a match); a create
        // without one gets a fresh id.
        let (id, fresh) = match envelope::id(&resource) {
            Some(id) => {
                Self::check_id(id)?;
                (id.to_string(), false)
            }
            None => (new_id(), true),
        };
        Ok(WriteOp::UpdateMatching {
            put: self.put_op(resource_type, &id, resource, Precondition::None, fresh),
            condition,
            lock_key,
        })
    }

    /// Conditional delete (`DELETE Type?query`): deletes every match, up to
    /// [`MAX_CONDITIONAL_DELETES`] (more is 412 and deletes nothing), in one transaction with the
    /// search. Returns the tombstones written (none when nothing matched).
    pub async fn conditional_delete(
        &self,
        resource_type: &str,
        query: &str,
        base: &str,
    ) -> Result<Vec<StoredVersion>> {
        self.check_type(resource_type)?;
        let op = self.delete_matching_op(resource_type, query, base)?;
        let mut outcomes = self
            .store()
            .write(vec![op])
            .await
            .map_err(|e| store_error(e, resource_type))?;
        match outcomes.pop() {
            Some(WriteOutcome::DeletedMatching { tombstones }) => Ok(tombstones),
            _ => Err(EngineError::Store(StoreError::Closed)),
        }
    }

    /// The write operation of a conditional delete.
    fn delete_matching_op(&self, resource_type: &str, query: &str, base: &str) -> Result<WriteOp> {
        let (condition, lock_key) =
            self.condition(resource_type, query, base, "conditional delete")?;
        Ok(WriteOp::DeleteMatching {
            resource_type: resource_type.to_string(),
            condition,
            lock_key,
            max: MAX_CONDITIONAL_DELETES,
        })
    }
}
