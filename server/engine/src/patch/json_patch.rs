//! JSON Patch (RFC 6902) with JSON Pointer (RFC 6901) over `serde_json::Value`.
//!
//! `serde_json` is built with `preserve_order` here, so removals use `shift_remove` (a plain
//! `remove` would swap the last key into the gap) and replacements write in place.

use serde_json::{Map, Value};

/// A parsed JSON Pointer: the reference tokens, unescaped (`~1` → `/`, `~0` → `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer(Vec<String>);

impl Pointer {
    /// Parses a pointer (`""` is the whole document; otherwise it starts with `/`).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Pointer(Vec::new()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "'{text}' is not a JSON Pointer (it must be empty or start with '/')"
            ));
        };
        rest.split('/')
            .map(|token| {
                unescape(token)
                    .ok_or_else(|| format!("'{text}' has an invalid '~' escape (use ~0 or ~1)"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Pointer)
    }

    /// The reference tokens.
    #[cfg(test)]
    fn tokens(&self) -> &[String] {
        &self.0
    }

    /// Whether `self` is a proper prefix of `other` (`/a` of `/a/b`).
    fn is_proper_prefix_of(&self, other: &Pointer) -> bool {
        self.0.len() < other.0.len() && other.0.starts_with(&self.0)
    }

    /// The pointer to the parent and the last token (`None` for the whole document).
    fn split_last(&self) -> Option<(&[String], &str)> {
        self.0
            .split_last()
            .map(|(last, parent)| (parent, last.as_str()))
    }

    /// The value the pointer refers to.
    pub(crate) fn get<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(doc, |v, token| step(v, token))
    }

    /// The value the pointer refers to, mutably.
    pub(crate) fn get_mut<'a>(&self, doc: &'a mut Value) -> Option<&'a mut Value> {
        get_mut(doc, &self.0)
    }
}

impl std::fmt::Display for Pointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for token in &self.0 {
            write!(f, "/{}", token.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// An array index token: `0` or a number without leading zeros (`-` is handled by callers).
fn array_index(token: &str) -> Option<usize> {
    let well_formed = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if well_formed {
        token.parse().ok()
    } else {
        None
    }
}

fn step<'a>(value: &'a Value, token: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map.get(token),
        Value::Array(items) => items.get(array_index(token)?),
        _ => None,
    }
}

fn get_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token.as_str())?,
            Value::Array(items) => items.get_mut(array_index(token)?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// One operation of a patch document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Add { path: Pointer, value: Value },
    Remove { path: Pointer },
    Replace { path: Pointer, value: Value },
    Move { from: Pointer, path: Pointer },
    Copy { from: Pointer, path: Pointer },
    Test { path: Pointer, value: Value },
}

/// Parses a patch document (an array of operation objects); the error says why it is malformed.
pub(crate) fn parse(doc: &Value) -> Result<Vec<Op>, String> {
    let Some(ops) = doc.as_array() else {
        return Err("a JSON Patch document must be a JSON array of operations".into());
    };
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_op(op).map_err(|e| format!("JSON Patch operation {i}: {e}")))
        .collect()
}

fn parse_op(op: &Value) -> Result<Op, String> {
    let Some(obj) = op.as_object() else {
        return Err("an operation must be a JSON object".into());
    };
    let pointer = |member: &str| -> Result<Pointer, String> {
        match obj.get(member) {
            Some(Value::String(s)) => Pointer::parse(s),
            Some(_) => Err(format!("'{member}' must be a string")),
            None => Err(format!("'{member}' is missing")),
        }
    };
    let value = || -> Result<Value, String> {
        obj.get("value")
            .cloned()
            .ok_or_else(|| "'value' is missing".to_string())
    };
    let name = match obj.get("op") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err("'op' must be a string".into()),
        None => return Err("'op' is missing".into()),
    };
    Ok(match name {
        "add" => Op::Add {
            path: pointer("path")?,
            value: value()?,
        },
        "remove" => Op::Remove {
            path: pointer("path")?,
        },
        "replace" => Op::Replace {
            path: pointer("path")?,
            value: value()?,
        },
        "move" => Op::Move {
            from: pointer("from")?,
            path: pointer("path")?,
        },
        "copy" => Op::Copy {
            from: pointer("from")?,
            path: pointer("path")?,
        },
        "test" => Op::Test {
            path: pointer("path")?,
            value: value()?,
        },
        other => {
            return Err(format!(
                "unknown op '{other}' (use add, remove, replace, move, copy or test)"
            ));
        }
    })
}

/// Applies the operations in order; the error says which one could not be applied. On error the
/// document may be partly changed: callers apply a patch to a copy they throw away on failure.
pub(crate) fn apply(doc: &mut Value, ops: &[Op]) -> Result<(), String> {
    for (i, op) in ops.iter().enumerate() {
        apply_one(doc, op).map_err(|e| format!("JSON Patch operation {i}: {e}"))?;
    }
    Ok(())
}

fn apply_one(doc: &mut Value, op: &Op) -> Result<(), String> {
    match op {
        Op::Add { path, value } => add(doc, path, value.clone()),
        Op::Remove { path } => remove(doc, path).map(drop),
        Op::Replace { path, value } => {
            let target = path
                .get_mut(doc)
                .ok_or_else(|| format!("replace: {path} does not exist"))?;
            *target = value.clone();
            Ok(())
        }
        Op::Move { from, path } => {
            if from == path {
                return if from.get(doc).is_some() {
                    Ok(())
                } else {
                    Err(format!("move: {from} does not exist"))
                };
            }
            if from.is_proper_prefix_of(path) {
                return Err(format!(
                    "move: cannot move {from} into its own child {path}"
                ));
            }
            let value = remove(doc, from).map_err(|e| e.replacen("remove", "move", 1))?;
            add(doc, path, value).map_err(|e| e.replacen("add", "move", 1))
        }
        Op::Copy { from, path } => {
            let value = from
                .get(doc)
                .cloned()
                .ok_or_else(|| format!("copy: {from} does not exist"))?;
            add(doc, path, value).map_err(|e| e.replacen("add", "copy", 1))
        }
        Op::Test { path, value } => match path.get(doc) {
            Some(found) if json_eq(found, value) => Ok(()),
            Some(found) => Err(format!("test failed: {path} is {found}, not {value}")),
            None => Err(format!("test failed: {path} does not exist")),
        },
    }
}

/// RFC 6902 `add`: sets an object member (in place if present), inserts into an array, or `-` appends.
pub(crate) fn add(doc: &mut Value, path: &Pointer, value: Value) -> Result<(), String> {
    let Some((parent, last)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    let target =
        get_mut(doc, parent).ok_or_else(|| format!("add: the parent of {path} does not exist"))?;
    match target {
        Value::Object(map) => {
            map.insert(last.to_string(), value);
            Ok(())
        }
        Value::Array(items) if last == "-" => {
            items.push(value);
            Ok(())
        }
        Value::Array(items) => match array_index(last) {
            Some(i) if i <= items.len() => {
                items.insert(i, value);
                Ok(())
            }
            _ => Err(format!(
                "add: {path} is not a valid position in an array of {} items",
                items.len()
            )),
        },
        _ => Err(format!(
            "add: the parent of {path} is neither an object nor an array"
        )),
    }
}

/// RFC 6902 `remove`: takes the value out and returns it.
pub(crate) fn remove(doc: &mut Value, path: &Pointer) -> Result<Value, String> {
    let Some((parent, last)) = path.split_last() else {
        return Err("remove: the whole document cannot be removed".into());
    };
    let missing = || format!("remove: {path} does not exist");
    match get_mut(doc, parent).ok_or_else(missing)? {
        Value::Object(map) => remove_member(map, last).ok_or_else(missing),
        Value::Array(items) => match array_index(last) {
            Some(i) if i < items.len() => Ok(items.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

/// Removes a member keeping the order of the others.
fn remove_member(map: &mut Map<String, Value>, key: &str) -> Option<Value> {
    map.shift_remove(key)
}

/// JSON equality as RFC 6902 `test` defines it: numbers by value, objects regardless of order.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Numbers compared by value (`arbitrary_precision` would otherwise compare their text).
pub(crate) fn number_eq(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    match (x.as_f64(), y.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => x.to_string() == y.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ptr(s: &str) -> Pointer {
        Pointer::parse(s).unwrap()
    }

    fn patch(doc: Value, ops: Value) -> Result<Value, String> {
        let ops = parse(&ops)?;
        let mut doc = doc;
        apply(&mut doc, &ops)?;
        Ok(doc)
    }

    #[test]
    fn pointers_parse_and_escape() {
        assert_eq!(ptr("").tokens(), &[] as &[String]);
        assert_eq!(ptr("/").tokens(), &[String::new()]);
        assert_eq!(ptr("/a~1b/m~0n/0").tokens(), &["a/b", "m~n", "0"]);
        assert_eq!(ptr("/~01").tokens(), &["~1"]);
        assert!(Pointer::parse("a/b").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        assert!(Pointer::parse("/a~").is_err());
        assert_eq!(ptr("/a~1b/m~0n").to_string(), "/a~1b/m~0n");
    }

    #[test]
    fn pointers_resolve_rfc6901_examples() {
        let doc = json!({
            "foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4,
            "i\\j": 5, "k\"l": 6, " ": 7, "m~n": 8
        });
        assert_eq!(ptr("").get(&doc), Some(&doc));
        assert_eq!(ptr("/foo/0").get(&doc), Some(&json!("bar")));
        assert_eq!(ptr("/").get(&doc), Some(&json!(0)));
        assert_eq!(ptr("/a~1b").get(&doc), Some(&json!(1)));
        assert_eq!(ptr("/m~0n").get(&doc), Some(&json!(8)));
        assert_eq!(ptr("/ ").get(&doc), Some(&json!(7)));
        assert_eq!(ptr("/foo/01").get(&doc), None);
        assert_eq!(ptr("/foo/2").get(&doc), None);
        assert_eq!(ptr("/foo/-").get(&doc), None);
        assert_eq!(ptr("/nope/0").get(&doc), None);
    }

    #[test]
    fn add_remove_replace_keep_order() {
        let doc = json!({"a": 1, "b": 2, "c": 3});
        let out = patch(
            doc.clone(),
            json!([{"op": "replace", "path": "/a", "value": 9}]),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"a":9,"b":2,"c":3}"#
        );
        let out = patch(doc.clone(), json!([{"op": "remove", "path": "/a"}])).unwrap();
        assert_eq!(serde_json::to_string(&out).unwrap(), r#"{"b":2,"c":3}"#);
        let out = patch(doc, json!([{"op": "add", "path": "/b", "value": 5}])).unwrap();
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"a":1,"b":5,"c":3}"#
        );
    }

    #[test]
    fn arrays_insert_append_and_remove() {
        let doc = json!({"x": ["a", "c"]});
        let out = patch(
            doc,
            json!([
                {"op": "add", "path": "/x/1", "value": "b"},
                {"op": "add", "path": "/x/-", "value": "d"},
                {"op": "add", "path": "/x/4", "value": "e"},
                {"op": "remove", "path": "/x/0"}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"x": ["b", "c", "d", "e"]}));
        let err = patch(
            json!({"x": [1]}),
            json!([{"op": "add", "path": "/x/3", "value": 2}]),
        );
        assert!(err.is_err());
        let err = patch(json!({"x": [1]}), json!([{"op": "remove", "path": "/x/-"}]));
        assert!(err.is_err());
    }

    #[test]
    fn move_copy_and_test() {
        let doc = json!({"a": {"b": 1}, "l": [1, 2, 3]});
        let out = patch(
            doc.clone(),
            json!([
                {"op": "move", "from": "/a/b", "path": "/c"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/l/0", "path": "/l/-"},
                {"op": "test", "path": "/l", "value": [2, 3, 1]},
                {"op": "test", "path": "/d", "value": 1.0}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {}, "l": [2, 3, 1], "c": 1, "d": 1}));
        assert!(
            patch(
                doc.clone(),
                json!([{"op": "move", "from": "/a", "path": "/a/x"}])
            )
            .is_err()
        );
        assert!(
            patch(
                doc.clone(),
                json!([{"op": "test", "path": "/a/b", "value": 2}])
            )
            .is_err()
        );
        assert!(
            patch(
                doc.clone(),
                json!([{"op": "test", "path": "/zz", "value": null}])
            )
            .is_err()
        );
        assert!(
            patch(
                doc,
                json!([{"op": "test", "path": "/a", "value": {"b": 1}}])
            )
            .is_ok()
        );
    }

    #[test]
    fn whole_document_and_missing_paths() {
        assert_eq!(
            patch(
                json!({"a": 1}),
                json!([{"op": "add", "path": "", "value": [1]}])
            )
            .unwrap(),
            json!([1])
        );
        assert!(
            patch(
                json!({"a": 1}),
                json!([{"op": "replace", "path": "/b", "value": 1}])
            )
            .is_err()
        );
        assert!(patch(json!({"a": 1}), json!([{"op": "remove", "path": "/b"}])).is_err());
        assert!(
            patch(
                json!({"a": 1}),
                json!([{"op": "add", "path": "/b/c", "value": 1}])
            )
            .is_err()
        );
    }

    #[test]
    fn malformed_documents_are_rejected_at_parse() {
        for bad in [
            json!({"op": "add"}),
            json!([{"path": "/a"}]),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "move", "path": "/a"}]),
            json!([{"op": "remove", "path": "a"}]),
            json!([{"op": "remove", "path": 3}]),
            json!(["remove"]),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
        assert!(parse(&json!([{"op": "add", "path": "/a", "value": null}])).is_ok());
    }
}
