//! FHIRPath Patch (<https://hl7.org/fhir/R4/fhirpatch.html>): a `Parameters` resource whose
//! `operation` parameters add, insert, delete, replace and move elements at FHIRPath paths.

use curanet_fhir::Definitions;
use curanet_fhir_profiles::Max;
use serde_json::{Map, Value};

use super::path::{DefCtx, Path, Seg, resolve};

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Add,
    Insert,
    Delete,
    Replace,
    Move,
}

/// The value an operation carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PatchValue {
    /// A `value[x]` part: the type suffix (`String`, `Coding`, ...) and the JSON value.
    Typed { type_suffix: String, json: Value },
    /// A complex value given as nested `part`s (name + value each).
    Parts(Vec<Value>),
    /// A `resource` part.
    Resource(Value),
}

/// One parsed `operation` parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Operation {
    pub kind: Kind,
    pub path_text: String,
    pub path: Path,
    pub name: Option<String>,
    pub value: Option<PatchValue>,
    pub index: Option<usize>,
    pub source: Option<usize>,
    pub destination: Option<usize>,
}

/// Why a patch was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PatchError {
    /// The patch document itself is malformed (400).
    Malformed(String),
    /// The patch cannot be applied to this resource (422).
    Unprocessable(String),
}

type Result<T> = std::result::Result<T, PatchError>;

fn malformed<T>(msg: impl Into<String>) -> Result<T> {
    Err(PatchError::Malformed(msg.into()))
}

fn unprocessable<T>(msg: impl Into<String>) -> Result<T> {
    Err(PatchError::Unprocessable(msg.into()))
}

/// Parses a FHIRPath Patch `Parameters` resource into its operations.
pub(crate) fn parse(doc: &Value) -> Result<Vec<Operation>> {
    if doc.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return malformed("a FHIRPath Patch must be a Parameters resource");
    }
    let params = match doc.get("parameter") {
        None => return Ok(Vec::new()),
        Some(Value::Array(params)) => params,
        Some(_) => return malformed("Parameters.parameter must be an array"),
    };
    params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            parse_operation(p).map_err(|e| match e {
                PatchError::Malformed(m) => PatchError::Malformed(format!("operation {i}: {m}")),
                other => other,
            })
        })
        .collect()
}

fn parse_operation(param: &Value) -> Result<Operation> {
    match param.get("name").and_then(Value::as_str) {
        Some("operation") => {}
        Some(other) => {
            return malformed(format!(
                "unknown parameter '{other}' (expected 'operation')"
            ));
        }
        None => return malformed("a parameter has no name"),
    }
    let parts: &[Value] = match param.get("part") {
        Some(Value::Array(parts)) => parts,
        _ => return malformed("an operation needs parts (type, path, ...)"),
    };
    let part = |name: &str| -> Result<Option<&Value>> {
        let mut found = parts
            .iter()
            .filter(|p| p.get("name").and_then(Value::as_str) == Some(name));
        let first = found.next();
        if found.next().is_some() {
            return malformed(format!("the part '{name}' is given more than once"));
        }
        Ok(first)
    };
    for p in parts {
        match p.get("name").and_then(Value::as_str) {
            Some("type" | "path" | "name" | "value" | "index" | "source" | "destination") => {}
            Some(other) => return malformed(format!("unknown operation part '{other}'")),
            None => return malformed("an operation part has no name"),
        }
    }
    let text = |name: &str| -> Result<Option<String>> {
        let Some(p) = part(name)? else {
            return Ok(None);
        };
        match primitive(p) {
            Some((_, Value::String(s))) => Ok(Some(s.clone())),
            _ => malformed(format!(
                "the part '{name}' must carry a string (valueString or valueCode)"
            )),
        }
    };
    let number = |name: &str| -> Result<Option<usize>> {
        let Some(p) = part(name)? else {
            return Ok(None);
        };
        match primitive(p) {
            Some((_, Value::Number(n))) => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n) => Ok(Some(n)),
                None => malformed(format!(
                    "the part '{name}' must be a whole number of 0 or more"
                )),
            },
            _ => malformed(format!("the part '{name}' must carry valueInteger")),
        }
    };
    let kind = match text("type")?.as_deref() {
        Some("add") => Kind::Add,
        Some("insert") => Kind::Insert,
        Some("delete") => Kind::Delete,
        Some("replace") => Kind::Replace,
        Some("move") => Kind::Move,
        Some(other) => {
            return malformed(format!(
                "unknown operation type '{other}' (use add, insert, delete, replace or move)"
            ));
        }
        None => return malformed("the operation has no type"),
    };
    let Some(path_text) = text("path")? else {
        return malformed("the operation has no path");
    };
    let path = Path::parse(&path_text).map_err(PatchError::Malformed)?;
    let value = match part("value")? {
        None => None,
        Some(p) => Some(patch_value(p)?),
    };
    let op = Operation {
        kind,
        path_text,
        path,
        name: text("name")?,
        value,
        index: number("index")?,
        source: number("source")?,
        destination: number("destination")?,
    };
    let need = |what: &str, present: bool| {
        if present {
            Ok(())
        } else {
            malformed(format!("a {kind:?} operation needs a '{what}' part").to_lowercase())
        }
    };
    match kind {
        Kind::Add => {
            need("name", op.name.is_some())?;
            need("value", op.value.is_some())?;
        }
        Kind::Insert => {
            need("value", op.value.is_some())?;
            need("index", op.index.is_some())?;
        }
        Kind::Delete => {}
        Kind::Replace => need("value", op.value.is_some())?,
        Kind::Move => {
            need("source", op.source.is_some())?;
            need("destination", op.destination.is_some())?;
        }
    }
    if matches!(kind, Kind::Insert | Kind::Move) && op.path.split_last_child().is_none() {
        return malformed(format!(
            "the path of {kind:?} must end with the name of a list (e.g. Patient.identifier), not '{}'",
            op.path_text
        )
        .to_lowercase());
    }
    Ok(op)
}

/// The `value[x]` of a part: its type suffix and value.
fn primitive(part: &Value) -> Option<(&str, &Value)> {
    part.as_object()?
        .iter()
        .find_map(|(k, v)| Some((k.strip_prefix("value").filter(|t| !t.is_empty())?, v)))
}

fn patch_value(part: &Value) -> Result<PatchValue> {
    if let Some((suffix, json)) = primitive(part) {
        if !suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
            return malformed(format!("'value{suffix}' is not a value[x] property"));
        }
        return Ok(PatchValue::Typed {
            type_suffix: suffix.to_string(),
            json: json.clone(),
        });
    }
    if let Some(resource) = part.get("resource") {
        return Ok(PatchValue::Resource(resource.clone()));
    }
    match part.get("part") {
        Some(Value::Array(parts)) if !parts.is_empty() => Ok(PatchValue::Parts(parts.clone())),
        _ => malformed("a value part needs a value[x], nested parts, or a resource"),
    }
}

impl PatchValue {
    fn type_suffix(&self) -> Option<&str> {
        match self {
            PatchValue::Typed { type_suffix, .. } => Some(type_suffix),
            _ => None,
        }
    }

    /// The JSON value, with nested parts assembled against the definition of the target element.
    fn to_json(&self, defs: &Definitions, ctx: Option<&DefCtx<'_>>) -> Result<Value> {
        match self {
            PatchValue::Typed { json, .. } => Ok(json.clone()),
            PatchValue::Resource(r) => Ok(r.clone()),
            PatchValue::Parts(parts) => {
                let mut obj = Map::new();
                for part in parts {
                    let Some(name) = part.get("name").and_then(Value::as_str) else {
                        return malformed("a nested value part has no name");
                    };
                    let value = patch_value(part)?;
                    let key = ctx.map_or_else(
                        || name.to_string(),
                        |c| c.property_name(name, value.type_suffix()),
                    );
                    let child = ctx.and_then(|c| c.child(defs, &key, None));
                    let json = value.to_json(defs, child.as_ref().and_then(|c| c.ctx.as_ref()))?;
                    let repeating = child
                        .as_ref()
                        .is_some_and(|c| c.element.max == Max::Unbounded);
                    match obj.get_mut(&key) {
                        Some(Value::Array(items)) => items.push(json),
                        Some(existing) => {
                            let first = existing.take();
                            *existing = Value::Array(vec![first, json]);
                        }
                        None if repeating => {
                            obj.insert(key, Value::Array(vec![json]));
                        }
                        None => {
                            obj.insert(key, json);
                        }
                    }
                }
                Ok(Value::Object(obj))
            }
        }
    }
}

/// Applies the operations in order to `resource`.
pub(crate) fn apply(defs: &Definitions, resource: &mut Value, ops: &[Operation]) -> Result<()> {
    for op in ops {
        apply_one(defs, resource, op)?;
    }
    Ok(())
}

fn apply_one(defs: &Definitions, resource: &mut Value, op: &Operation) -> Result<()> {
    let path = &op.path_text;
    match op.kind {
        Kind::Add => {
            let name = op.name.as_deref().unwrap_or_default();
            let value = op.value.as_ref().expect("checked at parse");
            let (loc, key, json, repeating) = {
                let items = resolve(defs, resource, &op.path).map_err(PatchError::Unprocessable)?;
                let [item] = items.as_slice() else {
                    return unprocessable(format!(
                        "add: the path {path} matches {} elements; it must match exactly one",
                        items.len()
                    ));
                };
                if !item.value.is_object() {
                    return unprocessable(format!(
                        "add: {path} is a primitive value; elements can only be added to complex elements"
                    ));
                }
                let ctx = item.ctx.as_ref();
                let key = ctx.map_or_else(
                    || name.to_string(),
                    |c| c.property_name(name, value.type_suffix()),
                );
                let child = ctx.and_then(|c| c.child(defs, &key, None));
                if ctx.is_some() && child.is_none() {
                    return unprocessable(format!("add: {path} has no element named '{name}'"));
                }
                let json = value.to_json(defs, child.as_ref().and_then(|c| c.ctx.as_ref()))?;
                let repeating = child.is_some_and(|c| c.element.max == Max::Unbounded);
                (item.loc.clone(), key, json, repeating)
            };
            let obj = object_at(resource, &loc)?;
            match obj.get_mut(&key) {
                Some(Value::Array(items)) => items.push(json),
                Some(_) => {
                    return unprocessable(format!(
                        "add: {path}.{key} already has a value and does not repeat (use replace)"
                    ));
                }
                None if repeating => {
                    obj.insert(key, Value::Array(vec![json]));
                }
                None => {
                    obj.insert(key, json);
                }
            }
            Ok(())
        }
        Kind::Replace => {
            let value = op.value.as_ref().expect("checked at parse");
            let (loc, json, rename) = {
                let items = resolve(defs, resource, &op.path).map_err(PatchError::Unprocessable)?;
                let [item] = items.as_slice() else {
                    return unprocessable(format!(
                        "replace: the path {path} matches {} elements; it must match exactly one",
                        items.len()
                    ));
                };
                if item.loc.is_empty() {
                    return unprocessable(
                        "replace: the whole resource cannot be replaced by a patch",
                    );
                }
                // A choice element takes the property name of the new value's type.
                let rename = match (item.loc.last(), item.element, value.type_suffix()) {
                    (Some(Seg::Key(k)), Some(el), Some(suffix)) => el
                        .name()
                        .strip_suffix("[x]")
                        .map(|base| format!("{base}{suffix}"))
                        .filter(|new| new != k),
                    _ => None,
                };
                let ctx = match &rename {
                    // The new type's definition, found from the parent.
                    Some(new_key) => {
                        let parent =
                            resolve_loc_ctx(defs, resource, &item.loc[..item.loc.len() - 1]);
                        parent
                            .and_then(|c| c.child(defs, new_key, None))
                            .and_then(|c| c.ctx)
                    }
                    None => item.ctx.clone(),
                };
                (item.loc.clone(), value.to_json(defs, ctx.as_ref())?, rename)
            };
            match rename {
                Some(new_key) => {
                    let (parent, last) = loc.split_at(loc.len() - 1);
                    let Seg::Key(old_key) = &last[0] else {
                        unreachable!("rename only for keys")
                    };
                    let obj = object_at(resource, parent)?;
                    let position = obj.keys().position(|k| k == old_key).unwrap_or(obj.len());
                    obj.shift_remove(old_key.as_str());
                    obj.shift_remove(format!("_{old_key}").as_str());
                    let position = position.min(obj.len());
                    obj.shift_insert(position, new_key, json);
                }
                None => {
                    let target = value_at(resource, &loc)?;
                    *target = json;
                }
            }
            Ok(())
        }
        Kind::Delete => {
            let loc = {
                let items = resolve(defs, resource, &op.path).map_err(PatchError::Unprocessable)?;
                match items.as_slice() {
                    [] => return Ok(()),
                    [item] => item.loc.clone(),
                    _ => {
                        return unprocessable(format!(
                            "delete: the path {path} matches {} elements; it must match at most one",
                            items.len()
                        ));
                    }
                }
            };
            remove_at(resource, &loc)
        }
        Kind::Insert | Kind::Move => {
            let (parent_path, name) = op.path.split_last_child().expect("checked at parse");
            let (parent_loc, parent_ctx) = {
                let items =
                    resolve(defs, resource, &parent_path).map_err(PatchError::Unprocessable)?;
                let [parent] = items.as_slice() else {
                    return unprocessable(format!(
                        "{}: the element holding the list {path} matches {} elements; it must match exactly one",
                        if op.kind == Kind::Insert {
                            "insert"
                        } else {
                            "move"
                        },
                        items.len()
                    ));
                };
                (parent.loc.clone(), parent.ctx.clone())
            };
            let obj = object_at(resource, &parent_loc)?;
            if op.kind == Kind::Insert {
                let index = op.index.expect("checked at parse");
                let child = parent_ctx.as_ref().and_then(|c| c.child(defs, name, None));
                if let Some(c) = &child
                    && c.element.max != Max::Unbounded
                {
                    return unprocessable(format!("insert: {path} is not a list"));
                }
                let json = op
                    .value
                    .as_ref()
                    .expect("checked at parse")
                    .to_json(defs, child.as_ref().and_then(|c| c.ctx.as_ref()))?;
                let len = match obj.get(name) {
                    None => 0,
                    Some(Value::Array(items)) => items.len(),
                    Some(_) => return unprocessable(format!("insert: {path} is not a list")),
                };
                if index > len {
                    return unprocessable(format!(
                        "insert: index {index} is beyond the end of {path} ({len} items)"
                    ));
                }
                let items = obj
                    .entry(name.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = items {
                    items.insert(index, json);
                }
                if let Some(Value::Array(ext)) = obj.get_mut(&format!("_{name}"))
                    && index <= ext.len()
                {
                    ext.insert(index, Value::Null);
                }
            } else {
                let (source, destination) = (
                    op.source.expect("checked at parse"),
                    op.destination.expect("checked at parse"),
                );
                let Some(Value::Array(items)) = obj.get_mut(name) else {
                    return unprocessable(format!("move: {path} is not a list with items"));
                };
                let len = items.len();
                if source >= len || destination >= len {
                    return unprocessable(format!(
                        "move: source {source} and destination {destination} must both be below the length of {path} ({len})"
                    ));
                }
                let item = items.remove(source);
                items.insert(destination, item);
                if let Some(Value::Array(ext)) = obj.get_mut(&format!("_{name}"))
                    && ext.len() == len
                {
                    let item = ext.remove(source);
                    ext.insert(destination, item);
                }
            }
            Ok(())
        }
    }
}

/// The definition context of the object at `loc` (walking the definitions from the root).
fn resolve_loc_ctx<'d>(defs: &'d Definitions, resource: &Value, loc: &[Seg]) -> Option<DefCtx<'d>> {
    let rt = resource.get("resourceType")?.as_str()?;
    let mut ctx = DefCtx::resource(defs, rt)?;
    let mut value = resource;
    for seg in loc {
        match seg {
            Seg::Key(k) => {
                value = value.get(k.as_str())?;
                let item = if let Value::Array(_) = value {
                    None
                } else {
                    Some(value)
                };
                ctx = ctx.child(defs, k, item)?.ctx?;
            }
            Seg::Index(i) => {
                value = value.get(*i)?;
                if let Some(rt) = value.get("resourceType").and_then(Value::as_str) {
                    ctx = DefCtx::resource(defs, rt).unwrap_or(ctx);
                }
            }
        }
    }
    Some(ctx)
}

fn value_at<'a>(resource: &'a mut Value, loc: &[Seg]) -> Result<&'a mut Value> {
    let mut current = resource;
    for seg in loc {
        current = match (seg, current) {
            (Seg::Key(k), Value::Object(map)) => map.get_mut(k.as_str()),
            (Seg::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        }
        .ok_or_else(|| PatchError::Unprocessable("the patch target disappeared".into()))?;
    }
    Ok(current)
}

fn object_at<'a>(resource: &'a mut Value, loc: &[Seg]) -> Result<&'a mut Map<String, Value>> {
    match value_at(resource, loc)? {
        Value::Object(map) => Ok(map),
        _ => unprocessable("the patch target is not a complex element"),
    }
}

/// Removes the element at `loc` with its `_name` extension partner. Lists and complex elements
/// left empty go too (FHIR allows neither), up to the resource.
fn remove_at(resource: &mut Value, loc: &[Seg]) -> Result<()> {
    if loc.is_empty() {
        return unprocessable("delete: the whole resource cannot be deleted by a patch");
    }
    let mut container = remove_one(resource, loc)?;
    while !container.is_empty() {
        let empty = match value_at(resource, &container)? {
            Value::Object(map) => map.is_empty(),
            _ => false,
        };
        if !empty {
            break;
        }
        container = remove_one(resource, &container)?;
    }
    Ok(())
}

/// Removes one element; returns the location of the object that held it.
fn remove_one(resource: &mut Value, loc: &[Seg]) -> Result<Vec<Seg>> {
    match loc {
        [parent @ .., Seg::Key(key)] => {
            let obj = object_at(resource, parent)?;
            obj.shift_remove(key.as_str());
            obj.shift_remove(format!("_{key}").as_str());
            Ok(parent.to_vec())
        }
        [parent @ .., Seg::Key(key), Seg::Index(i)] => {
            let obj = object_at(resource, parent)?;
            let partner = format!("_{key}");
            let mut emptied = false;
            if let Some(Value::Array(items)) = obj.get_mut(key.as_str())
                && *i < items.len()
            {
                items.remove(*i);
                emptied = items.iter().all(Value::is_null);
            }
            if let Some(Value::Array(ext)) = obj.get_mut(partner.as_str())
                && *i < ext.len()
            {
                ext.remove(*i);
                if ext.iter().all(Value::is_null) {
                    obj.shift_remove(partner.as_str());
                }
            }
            if emptied && !obj.contains_key(&partner) {
                obj.shift_remove(key.as_str());
            }
            Ok(parent.to_vec())
        }
        _ => unprocessable("delete: the element is not inside an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(kind: &str, path: &str, extra: Value) -> Value {
        let mut parts = vec![
            json!({"name": "type", "valueCode": kind}),
            json!({"name": "path", "valueString": path}),
        ];
        parts.extend(extra.as_array().cloned().unwrap_or_default());
        json!({"name": "operation", "part": parts})
    }

    fn run(resource: Value, ops: Vec<Value>) -> Result<Value> {
        let doc = json!({"resourceType": "Parameters", "parameter": ops});
        let ops = parse(&doc)?;
        let mut resource = resource;
        apply(&Definitions::shared(), &mut resource, &ops)?;
        Ok(resource)
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "identifier": [{"system": "urn:a", "value": "1"}, {"system": "urn:b", "value": "2"}],
            "name": [{"family": "Rao", "given": ["Asha"]}],
            "gender": "female",
            "birthDate": "1985-04-12"
        })
    }

    #[test]
    fn add_creates_arrays_for_repeating_elements() {
        let out = run(
            patient(),
            vec![
                op(
                    "add",
                    "Patient",
                    json!([{"name": "name", "valueString": "telecom"},
                    {"name": "value", "valueContactPoint": {"system": "phone", "value": "1"}}]),
                ),
                op(
                    "add",
                    "Patient",
                    json!([{"name": "name", "valueString": "active"},
                    {"name": "value", "valueBoolean": true}]),
                ),
                op(
                    "add",
                    "Patient.name[0]",
                    json!([{"name": "name", "valueString": "given"},
                    {"name": "value", "valueString": "K"}]),
                ),
                op(
                    "add",
                    "Patient",
                    json!([{"name": "name", "valueString": "deceased"},
                    {"name": "value", "valueDateTime": "2020-01-01"}]),
                ),
            ],
        )
        .unwrap();
        assert_eq!(out["telecom"], json!([{"system": "phone", "value": "1"}]));
        assert_eq!(out["active"], json!(true));
        assert_eq!(out["name"][0]["given"], json!(["Asha", "K"]));
        assert_eq!(out["deceasedDateTime"], json!("2020-01-01"));
        let err = run(
            patient(),
            vec![op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "gender"},
                {"name": "value", "valueCode": "male"}]),
            )],
        );
        assert!(matches!(err, Err(PatchError::Unprocessable(_))));
        let err = run(
            patient(),
            vec![op(
                "add",
                "Patient.identifier",
                json!([{"name": "name", "valueString": "use"},
                {"name": "value", "valueCode": "official"}]),
            )],
        );
        assert!(
            matches!(err, Err(PatchError::Unprocessable(_))),
            "two identifiers"
        );
    }

    #[test]
    fn add_assembles_nested_parts() {
        let out = run(
            patient(),
            vec![op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "identifier"},
                {"name": "value", "part": [
                    {"name": "system", "valueUri": "urn:c"},
                    {"name": "value", "valueString": "3"},
                    {"name": "type", "part": [{"name": "coding", "valueCoding": {"code": "MR"}}]}
                ]}]),
            )],
        )
        .unwrap();
        assert_eq!(
            out["identifier"][2],
            json!({"system": "urn:c", "value": "3", "type": {"coding": [{"code": "MR"}]}})
        );
        let out = run(
            patient(),
            vec![op(
                "add",
                "Patient",
                json!([{"name": "name", "valueString": "extension"},
                {"name": "value", "part": [
                    {"name": "url", "valueUri": "http://e.org/x"},
                    {"name": "value", "valueString": "y"}
                ]}]),
            )],
        )
        .unwrap();
        assert_eq!(
            out["extension"],
            json!([{"url": "http://e.org/x", "valueString": "y"}])
        );
    }

    #[test]
    fn insert_delete_replace_move() {
        let out = run(
            patient(),
            vec![
                op(
                    "insert",
                    "Patient.identifier",
                    json!([{"name": "index", "valueInteger": 1},
                    {"name": "value", "valueIdentifier": {"system": "urn:z", "value": "0"}}]),
                ),
                op(
                    "move",
                    "Patient.identifier",
                    json!([{"name": "source", "valueInteger": 0},
                    {"name": "destination", "valueInteger": 2}]),
                ),
                op(
                    "replace",
                    "Patient.identifier.where(system='urn:b').value",
                    json!([{"name": "value", "valueString": "22"}]),
                ),
                op("delete", "Patient.birthDate", json!([])),
                op("delete", "Patient.name.given", json!([])),
                op("delete", "Patient.photo", json!([])),
            ],
        )
        .unwrap();
        assert_eq!(
            out["identifier"],
            json!([{"system": "urn:z", "value": "0"}, {"system": "urn:b", "value": "22"}, {"system": "urn:a", "value": "1"}])
        );
        assert!(out.get("birthDate").is_none());
        assert_eq!(
            out["name"],
            json!([{"family": "Rao"}]),
            "an emptied list is removed"
        );
        let pruned = run(
            patient(),
            vec![
                op("delete", "Patient.name.given", json!([])),
                op("delete", "Patient.name.family", json!([])),
            ],
        )
        .unwrap();
        assert!(
            pruned.get("name").is_none(),
            "an emptied HumanName goes too: {pruned}"
        );
        let order: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(
            order,
            ["resourceType", "id", "identifier", "name", "gender"]
        );
        let out = run(
            patient(),
            vec![op(
                "insert",
                "Patient.telecom",
                json!([{"name": "index", "valueInteger": 0},
                {"name": "value", "valueContactPoint": {"system": "email", "value": "a@b"}}]),
            )],
        )
        .unwrap();
        assert_eq!(out["telecom"], json!([{"system": "email", "value": "a@b"}]));
    }

    #[test]
    fn replace_renames_choice_elements_in_place() {
        let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": 1}, "note": [{"text": "n"}]});
        let out = run(
            obs,
            vec![op(
                "replace",
                "Observation.value",
                json!([{"name": "value", "valueString": "high"}]),
            )],
        )
        .unwrap();
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["resourceType", "status", "code", "valueString", "note"]
        );
        assert_eq!(out["valueString"], json!("high"));
    }

    #[test]
    fn errors_are_classified() {
        let unprocessable =
            |ops: Vec<Value>| matches!(run(patient(), ops), Err(PatchError::Unprocessable(_)));
        let malformed =
            |ops: Vec<Value>| matches!(run(patient(), ops), Err(PatchError::Malformed(_)));
        assert!(unprocessable(vec![op(
            "replace",
            "Patient.identifier.value",
            json!([{"name": "value", "valueString": "x"}])
        )]));
        assert!(unprocessable(vec![op(
            "replace",
            "Patient.active",
            json!([{"name": "value", "valueBoolean": true}])
        )]));
        assert!(unprocessable(vec![op(
            "delete",
            "Patient.identifier",
            json!([])
        )]));
        assert!(unprocessable(vec![op(
            "insert",
            "Patient.identifier",
            json!([
            {"name": "index", "valueInteger": 5}, {"name": "value", "valueIdentifier": {"value": "x"}}])
        )]));
        assert!(unprocessable(vec![op(
            "move",
            "Patient.identifier",
            json!([
            {"name": "source", "valueInteger": 0}, {"name": "destination", "valueInteger": 2}])
        )]));
        assert!(unprocessable(vec![op(
            "delete",
            "Observation.status",
            json!([])
        )]));
        assert!(malformed(vec![op("frob", "Patient.gender", json!([]))]));
        assert!(malformed(vec![op("replace", "Patient.gender", json!([]))]));
        assert!(malformed(vec![op(
            "add",
            "Patient",
            json!([{"name": "value", "valueString": "x"}])
        )]));
        assert!(malformed(vec![op(
            "insert",
            "Patient.identifier.first()",
            json!([
            {"name": "index", "valueInteger": 0}, {"name": "value", "valueIdentifier": {"value": "x"}}])
        )]));
        assert!(malformed(vec![op(
            "delete",
            "Patient.name.resolve()",
            json!([])
        )]));
        assert!(malformed(vec![json!({"name": "op", "part": []})]));
        assert!(matches!(
            parse(&json!({"resourceType": "Patient"})),
            Err(PatchError::Malformed(_))
        ));
    }
}
