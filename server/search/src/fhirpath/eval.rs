//! Evaluation of a parsed expression against a JSON resource.

use std::sync::Arc;

use curanet_fhir_profiles::TypeDefinition;
use serde_json::{Number, Value};

use super::compare;
use super::parser::{BinOp, Expr, Func, TypeOp, TypeSpec};
use super::types::{self, Scope, defs};

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);

/// One item of a result collection: a JSON value of the resource (or a computed value) and its type.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    value: Val<'a>,
    type_name: Option<&'a str>,
    scope: Scope,
}

/// Where an item's value lives.
#[derive(Debug, Clone)]
enum Val<'a> {
    /// Borrowed from the resource (or a static boolean).
    Json(&'a Value),
    /// A literal of the expression or a computed value (count, string function result).
    Shared(Arc<Value>),
}

impl<'a> Item<'a> {
    /// The JSON value (for a `resolve()` result: the Reference it was resolved from).
    pub fn value(&self) -> &Value {
        match &self.value {
            Val::Json(v) => v,
            Val::Shared(v) => v,
        }
    }

    /// The FHIR type (`HumanName`, `dateTime`, `Patient`) or System type (`Boolean`) when known.
    pub fn type_name(&self) -> Option<&'a str> {
        self.type_name
    }

    /// The item for a whole resource, typed by its `resourceType`.
    pub(crate) fn resource(value: &'a Value) -> Item<'a> {
        Item {
            value: Val::Json(value),
            type_name: value.get("resourceType").and_then(Value::as_str),
            scope: Scope::Typed,
        }
    }

    fn json(value: &'a Value, type_name: Option<&'a str>, scope: Scope) -> Item<'a> {
        // A JSON object with a `resourceType` is a resource, whatever the element declares.
        match value.get("resourceType").and_then(Value::as_str) {
            Some(rt) if value.is_object() => Item {
                value: Val::Json(value),
                type_name: Some(rt),
                scope: Scope::Typed,
            },
            _ => Item {
                value: Val::Json(value),
                type_name,
                scope,
            },
        }
    }

    fn shared(value: Value, type_name: &'static str) -> Item<'a> {
        Item {
            value: Val::Shared(Arc::new(value)),
            type_name: Some(type_name),
            scope: Scope::Typed,
        }
    }

    fn boolean(b: bool) -> Item<'a> {
        Item {
            value: Val::Json(if b { &TRUE } else { &FALSE }),
            type_name: Some("Boolean"),
            scope: Scope::Typed,
        }
    }

    fn integer(n: i64) -> Item<'a> {
        Item::shared(Value::Number(n.into()), "Integer")
    }

    fn string(s: String) -> Item<'a> {
        Item::shared(Value::String(s), "String")
    }

    /// The JSON value when it is borrowed from the resource.
    fn borrowed(&self) -> Option<&'a Value> {
        match self.value {
            Val::Json(v) => Some(v),
            Val::Shared(_) => None,
        }
    }

    /// The definition and element path that describe this item's children.
    fn definition(&self) -> Option<(&'static TypeDefinition, &'static str)> {
        match self.scope {
            Scope::Backbone(def, path) => Some((def, path)),
            Scope::Typed => {
                let def = defs().type_definition(self.type_name?)?;
                Some((def, def.name.as_str()))
            }
            Scope::Untyped | Scope::Resolved => None,
        }
    }

    /// Whether the item is of the type (with the hierarchy; untyped items by JSON shape).
    fn is_type(&self, spec: &TypeSpec) -> bool {
        self.type_name
            .or_else(|| match self.scope {
                Scope::Untyped => types::shape_type(self.value()),
                _ => None,
            })
            .is_some_and(|t| types::type_matches(t, spec))
    }

    fn is_temporal(&self) -> bool {
        self.type_name.is_some_and(types::is_temporal)
    }

    /// Same item or equal value (for `|`, `distinct()`, `in`).
    fn same(&self, other: &Item<'_>) -> bool {
        match (&self.value, &other.value) {
            (Val::Json(a), Val::Json(b)) if std::ptr::eq(*a, *b) => true,
            _ => compare::equal(self.value(), other.value()),
        }
    }
}

/// The evaluation environment: `%resource` and `%context`.
pub(crate) struct Env<'a> {
    pub(crate) resource: Item<'a>,
    pub(crate) context: Item<'a>,
}

/// The focus of a (sub-)expression: `$this` and `$index`.
#[derive(Clone, Copy)]
struct Focus<'f, 'a> {
    this: &'f Item<'a>,
    index: Option<usize>,
}

/// Evaluates `expr` with `%context` (and `$this`) as the focus.
pub(crate) fn evaluate<'a>(expr: &Expr, env: &Env<'a>) -> Vec<Item<'a>> {
    let focus = Focus {
        this: &env.context,
        index: None,
    };
    eval(expr, focus, env)
}

fn booleans<'a>(b: Option<bool>) -> Vec<Item<'a>> {
    b.map(Item::boolean).into_iter().collect()
}

/// FHIRPath singleton evaluation of a collection as a Boolean.
fn truth(items: &[Item<'_>]) -> Option<bool> {
    match items {
        [one] => Some(one.value().as_bool().unwrap_or(true)),
        _ => None,
    }
}

/// The single item of a collection (`None` when empty or several).
fn single<'i, 'a>(items: &'i [Item<'a>]) -> Option<&'i Item<'a>> {
    match items {
        [one] => Some(one),
        _ => None,
    }
}

fn single_str<'i>(items: &'i [Item<'_>]) -> Option<&'i str> {
    single(items)?.value().as_str()
}

fn single_integer(items: &[Item<'_>]) -> Option<i64> {
    match single(items)?.value() {
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn eval<'a>(expr: &Expr, focus: Focus<'_, 'a>, env: &Env<'a>) -> Vec<Item<'a>> {
    match expr {
        Expr::Literal(lit) => vec![Item {
            value: Val::Shared(lit.value.clone()),
            type_name: Some(lit.type_name),
            scope: Scope::Typed,
        }],
        Expr::Empty | Expr::Unsupported => Vec::new(),
        Expr::Ident(name) => {
            let this = focus.this;
            if name.starts_with(|c: char| c.is_ascii_uppercase())
                && this.type_name.is_some_and(|t| types::fhir_is_a(t, name))
            {
                return vec![this.clone()];
            }
            let mut out = Vec::new();
            children(this, name, &mut out);
            out
        }
        Expr::Member(target, name) => {
            let input = eval(target, focus, env);
            let mut out = Vec::new();
            for item in &input {
                children(item, name, &mut out);
            }
            out
        }
        Expr::Call { target, func, args } => {
            let input = match target {
                Some(target) => eval(target, focus, env),
                None => vec![focus.this.clone()],
            };
            call(*func, input, args, focus, env)
        }
        Expr::TypeOp { target, op, spec } => {
            let input = match target {
                Some(target) => eval(target, focus, env),
                None => vec![focus.this.clone()],
            };
            match op {
                TypeOp::OfType | TypeOp::As => input
                    .into_iter()
                    .filter(|item| item.is_type(spec))
                    .collect(),
                TypeOp::Is => booleans(single(&input).map(|item| item.is_type(spec))),
            }
        }
        Expr::Index(target, index) => {
            let input = eval(target, focus, env);
            let index = single_integer(&eval(index, focus, env));
            match index.and_then(|i| usize::try_from(i).ok()) {
                Some(i) => input.into_iter().nth(i).into_iter().collect(),
                None => Vec::new(),
            }
        }
        Expr::This => vec![focus.this.clone()],
        Expr::IndexVar => focus
            .index
            .and_then(|i| i64::try_from(i).ok())
            .map(Item::integer)
            .into_iter()
            .collect(),
        Expr::Resource => vec![env.resource.clone()],
        Expr::Context => vec![env.context.clone()],
        Expr::Neg(inner) => {
            let input = eval(inner, focus, env);
            let Some(item) = single(&input) else {
                return Vec::new();
            };
            let Value::Number(n) = item.value() else {
                return Vec::new();
            };
            let text = n.as_str();
            let negated = match text.strip_prefix('-') {
                Some(positive) => positive.to_string(),
                None => format!("-{text}"),
            };
            match negated.parse::<Number>() {
                Ok(n) => vec![Item::shared(
                    Value::Number(n),
                    if item.type_name == Some("Integer") || !text.contains(['.', 'e', 'E']) {
                        "Integer"
                    } else {
                        "Decimal"
                    },
                )],
                Err(_) => Vec::new(),
            }
        }
        Expr::Binary(op, lhs, rhs) => binary(*op, lhs, rhs, focus, env),
    }
}

/// Appends the children named `name` of an item (arrays flattened, `null`s skipped). When the
/// object has no such key, a choice element `name[x]` is looked for (`value` → `valueQuantity`)
/// and the item gets the type the property names.
fn children<'a>(item: &Item<'a>, name: &str, out: &mut Vec<Item<'a>>) {
    let Some(Value::Object(map)) = item.borrowed() else {
        return;
    };
    if matches!(item.scope, Scope::Resolved) {
        return;
    }
    let parent = item.definition();
    if let Some(child) = map.get(name) {
        let (type_name, scope) = match parent {
            Some((def, path)) => types::child_type(def, path, name),
            None => (None, Scope::Untyped),
        };
        push_values(child, type_name, scope, out);
        return;
    }
    for (key, child) in map {
        let Some(suffix) = key.strip_prefix(name) else {
            continue;
        };
        if !suffix.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue;
        }
        let type_name = match parent {
            Some((def, path)) => types::choice_type(def, path, key),
            None => types::choice_suffix_type(suffix),
        };
        if let Some(type_name) = type_name {
            push_values(child, Some(type_name), Scope::Typed, out);
        }
    }
}

fn push_values<'a>(
    value: &'a Value,
    type_name: Option<&'a str>,
    scope: Scope,
    out: &mut Vec<Item<'a>>,
) {
    match value {
        Value::Array(values) => out.extend(
            values
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| Item::json(v, type_name, scope)),
        ),
        Value::Null => {}
        _ => out.push(Item::json(value, type_name, scope)),
    }
}

/// Every child of an item, in property order (primitive extensions `_x` and `resourceType` skipped).
fn all_children<'a>(item: &Item<'a>, out: &mut Vec<Item<'a>>) {
    let Some(Value::Object(map)) = item.borrowed() else {
        return;
    };
    if matches!(item.scope, Scope::Resolved) {
        return;
    }
    let parent = item.definition();
    for (key, child) in map {
        if key.starts_with('_') || key == "resourceType" {
            continue;
        }
        let (type_name, scope) = match parent {
            Some((def, path)) => types::child_type(def, path, key),
            None => (None, Scope::Untyped),
        };
        push_values(child, type_name, scope, out);
    }
}

/// Appends `item` unless an equal item is already there.
fn push_distinct<'a>(out: &mut Vec<Item<'a>>, item: Item<'a>) {
    if !out.iter().any(|o| o.same(&item)) {
        out.push(item);
    }
}

fn union<'a>(left: Vec<Item<'a>>, right: Vec<Item<'a>>) -> Vec<Item<'a>> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    for item in left.into_iter().chain(right) {
        push_distinct(&mut out, item);
    }
    out
}

fn binary<'a>(
    op: BinOp,
    lhs: &Expr,
    rhs: &Expr,
    focus: Focus<'_, 'a>,
    env: &Env<'a>,
) -> Vec<Item<'a>> {
    // Three-valued logic, short-circuiting when the left side decides.
    match op {
        BinOp::And => {
            let a = truth(&eval(lhs, focus, env));
            if a == Some(false) {
                return booleans(Some(false));
            }
            let b = truth(&eval(rhs, focus, env));
            return booleans(match (a, b) {
                (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            });
        }
        BinOp::Or => {
            let a = truth(&eval(lhs, focus, env));
            if a == Some(true) {
                return booleans(Some(true));
            }
            let b = truth(&eval(rhs, focus, env));
            return booleans(match (a, b) {
                (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            });
        }
        BinOp::Implies => {
            let a = truth(&eval(lhs, focus, env));
            if a == Some(false) {
                return booleans(Some(true));
            }
            let b = truth(&eval(rhs, focus, env));
            return booleans(match (a, b) {
                (_, Some(true)) => Some(true),
                (Some(true), b) => b,
                _ => None,
            });
        }
        _ => {}
    }
    let left = eval(lhs, focus, env);
    let right = eval(rhs, focus, env);
    match op {
        BinOp::And | BinOp::Or | BinOp::Implies => unreachable!("handled above"),
        BinOp::Xor => booleans(match (truth(&left), truth(&right)) {
            (Some(a), Some(b)) => Some(a != b),
            _ => None,
        }),
        BinOp::Union => union(left, right),
        BinOp::Eq | BinOp::Ne => {
            if left.is_empty() || right.is_empty() {
                return Vec::new();
            }
            let eq = left.len() == right.len()
                && left
                    .iter()
                    .zip(&right)
                    .all(|(a, b)| compare::equal(a.value(), b.value()));
            booleans(Some(eq == (op == BinOp::Eq)))
        }
        BinOp::Equiv | BinOp::NotEquiv => {
            let eq = left.len() == right.len()
                && left.iter().all(|a| {
                    right
                        .iter()
                        .any(|b| compare::equivalent(a.value(), b.value()))
                });
            booleans(Some(eq == (op == BinOp::Equiv)))
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let (Some(a), Some(b)) = (single(&left), single(&right)) else {
                return Vec::new();
            };
            let temporal = a.is_temporal() || b.is_temporal();
            booleans(
                compare::order(a.value(), b.value(), temporal).map(|ord| match op {
                    BinOp::Lt => ord.is_lt(),
                    BinOp::Le => ord.is_le(),
                    BinOp::Gt => ord.is_gt(),
                    _ => ord.is_ge(),
                }),
            )
        }
        BinOp::In | BinOp::Contains => {
            let (element, collection) = if op == BinOp::In {
                (&left, &right)
            } else {
                (&right, &left)
            };
            match single(element) {
                Some(e) => booleans(Some(collection.iter().any(|c| c.same(e)))),
                None => Vec::new(),
            }
        }
        BinOp::Concat => {
            let text = |items: &[Item<'_>]| single_str(items).unwrap_or("").to_string();
            if left.len() > 1 || right.len() > 1 {
                return Vec::new();
            }
            vec![Item::string(text(&left) + &text(&right))]
        }
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::IntDiv | BinOp::Mod => {
            arithmetic(op, &left, &right)
        }
    }
}

/// String `+` and Integer arithmetic; decimal arithmetic and `/` are not supported (empty).
fn arithmetic<'a>(op: BinOp, left: &[Item<'_>], right: &[Item<'_>]) -> Vec<Item<'a>> {
    let (Some(a), Some(b)) = (single(left), single(right)) else {
        return Vec::new();
    };
    match (a.value(), b.value()) {
        (Value::String(x), Value::String(y)) if op == BinOp::Add => {
            vec![Item::string(format!("{x}{y}"))]
        }
        (Value::Number(x), Value::Number(y)) => {
            let (Some(x), Some(y)) = (integer_value(x), integer_value(y)) else {
                return Vec::new();
            };
            let result = match op {
                BinOp::Add => x.checked_add(y),
                BinOp::Sub => x.checked_sub(y),
                BinOp::Mul => x.checked_mul(y),
                BinOp::IntDiv => x.checked_div(y),
                BinOp::Mod => x.checked_rem(y),
                _ => None,
            };
            result.map(Item::integer).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// An integer-valued number text (no fraction or exponent).
fn integer_value(n: &Number) -> Option<i64> {
    if n.as_str().contains(['.', 'e', 'E']) {
        return None;
    }
    n.as_i64()
}

fn call<'a>(
    func: Func,
    input: Vec<Item<'a>>,
    args: &[Expr],
    focus: Focus<'_, 'a>,
    env: &Env<'a>,
) -> Vec<Item<'a>> {
    // Criteria and projections are evaluated once per input item, with that item as `$this`.
    let per_item = |item: &Item<'a>, index: usize, expr: &Expr| {
        eval(
            expr,
            Focus {
                this: item,
                index: Some(index),
            },
            env,
        )
    };
    // Other arguments are evaluated in the caller's focus.
    let arg = |i: usize| eval(&args[i], focus, env);
    match func {
        Func::Where => input
            .iter()
            .enumerate()
            .filter(|(i, item)| truth(&per_item(item, *i, &args[0])) == Some(true))
            .map(|(_, item)| item.clone())
            .collect(),
        Func::Select => input
            .iter()
            .enumerate()
            .flat_map(|(i, item)| per_item(item, i, &args[0]))
            .collect(),
        Func::Repeat => {
            let mut out: Vec<Item<'a>> = Vec::new();
            let mut frontier = input;
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for (i, item) in frontier.iter().enumerate() {
                    for found in per_item(item, i, &args[0]) {
                        if !out.iter().any(|o| o.same(&found)) {
                            out.push(found.clone());
                            next.push(found);
                        }
                    }
                }
                frontier = next;
            }
            out
        }
        Func::Exists => match args.first() {
            None => booleans(Some(!input.is_empty())),
            Some(criteria) => {
                booleans(Some(input.iter().enumerate().any(|(i, item)| {
                    truth(&per_item(item, i, criteria)) == Some(true)
                })))
            }
        },
        Func::All => {
            booleans(Some(input.iter().enumerate().all(|(i, item)| {
                truth(&per_item(item, i, &args[0])) == Some(true)
            })))
        }
        Func::Empty => booleans(Some(input.is_empty())),
        Func::Count => vec![Item::integer(input.len() as i64)],
        Func::First => input.into_iter().take(1).collect(),
        Func::Last => input.into_iter().last().into_iter().collect(),
        Func::Tail => input.into_iter().skip(1).collect(),
        Func::Single => {
            if input.len() == 1 {
                input
            } else {
                Vec::new()
            }
        }
        Func::Skip | Func::Take => {
            let Some(n) = single_integer(&arg(0)) else {
                return Vec::new();
            };
            let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            if func == Func::Skip {
                input.into_iter().skip(n).collect()
            } else {
                input.into_iter().take(n).collect()
            }
        }
        Func::Distinct => union(input, Vec::new()),
        Func::IsDistinct => {
            let len = input.len();
            booleans(Some(union(input, Vec::new()).len() == len))
        }
        Func::Union => union(input, arg(0)),
        Func::Combine => {
            let mut out = input;
            out.extend(arg(0));
            out
        }
        Func::Intersect => {
            let other = arg(0);
            let mut out = Vec::new();
            for item in input {
                if other.iter().any(|o| o.same(&item)) {
                    push_distinct(&mut out, item);
                }
            }
            out
        }
        Func::Exclude => {
            let other = arg(0);
            input
                .into_iter()
                .filter(|item| !other.iter().any(|o| o.same(item)))
                .collect()
        }
        Func::SubsetOf | Func::SupersetOf => {
            let other = arg(0);
            let (small, big) = if func == Func::SubsetOf {
                (&input, &other)
            } else {
                (&other, &input)
            };
            booleans(Some(small.iter().all(|s| big.iter().any(|b| b.same(s)))))
        }
        Func::AllTrue | Func::AnyTrue | Func::AllFalse | Func::AnyFalse => {
            let wanted = matches!(func, Func::AllTrue | Func::AnyTrue);
            let is = |item: &Item<'_>| item.value().as_bool() == Some(wanted);
            booleans(Some(if matches!(func, Func::AllTrue | Func::AllFalse) {
                input.iter().all(is)
            } else {
                input.iter().any(is)
            }))
        }
        Func::Not => booleans(truth(&input).map(|b| !b)),
        Func::Iif => {
            if input.len() > 1 {
                return Vec::new();
            }
            let this = input.first().unwrap_or(focus.this);
            let inner = Focus { this, index: None };
            let branch = if truth(&eval(&args[0], inner, env)) == Some(true) {
                args.get(1)
            } else {
                args.get(2)
            };
            branch.map(|e| eval(e, inner, env)).unwrap_or_default()
        }
        Func::StartsWith | Func::EndsWith | Func::Contains => {
            let part_items = arg(0);
            let (Some(s), Some(part)) = (single_str(&input), single_str(&part_items)) else {
                return Vec::new();
            };
            booleans(Some(match func {
                Func::StartsWith => s.starts_with(part),
                Func::EndsWith => s.ends_with(part),
                _ => s.contains(part),
            }))
        }
        Func::Lower | Func::Upper => match single_str(&input) {
            Some(s) if func == Func::Lower => vec![Item::string(s.to_lowercase())],
            Some(s) => vec![Item::string(s.to_uppercase())],
            None => Vec::new(),
        },
        Func::Length => single_str(&input)
            .map(|s| Item::integer(s.chars().count() as i64))
            .into_iter()
            .collect(),
        Func::Trace => input,
        Func::Children => {
            let mut out = Vec::new();
            for item in &input {
                all_children(item, &mut out);
            }
            out
        }
        Func::Descendants => {
            let mut out = Vec::new();
            let mut frontier = input;
            while !frontier.is_empty() {
                let mut next = Vec::new();
                for item in &frontier {
                    all_children(item, &mut next);
                }
                out.extend(next.iter().cloned());
                frontier = next;
            }
            out
        }
        Func::HasValue => booleans(Some(single(&input).is_some_and(|item| {
            !matches!(
                item.value(),
                Value::Object(_) | Value::Array(_) | Value::Null
            )
        }))),
        Func::Extension => {
            let url_items = arg(0);
            let Some(url) = single_str(&url_items) else {
                return Vec::new();
            };
            let mut extensions = Vec::new();
            for item in &input {
                children(item, "extension", &mut extensions);
            }
            extensions.retain(|e| e.value().get("url").and_then(Value::as_str) == Some(url));
            extensions
        }
        Func::Resolve => {
            let mut out = Vec::new();
            for item in &input {
                resolve(item, env, &mut out);
            }
            out
        }
        Func::Unsupported => Vec::new(),
    }
}

/// `resolve()` without fetching: a local `#id` yields the contained resource; `Type/id` (relative,
/// absolute or versioned) or else `Reference.type` yields a pseudo-item of that resource type
/// (with no children); anything else (`urn:uuid:`, unknown types) yields nothing.
fn resolve<'a>(item: &Item<'a>, env: &Env<'a>, out: &mut Vec<Item<'a>>) {
    let Some(value) = item.borrowed() else {
        return;
    };
    let (reference, declared_type) = match value {
        Value::String(s) => (Some(s.as_str()), None),
        Value::Object(map) => (
            map.get("reference").and_then(Value::as_str),
            map.get("type").and_then(Value::as_str),
        ),
        _ => return,
    };
    if let Some(local) = reference.and_then(|r| r.strip_prefix('#')) {
        if local.is_empty() {
            out.push(env.resource.clone());
        } else if let Some(contained) = env
            .resource
            .borrowed()
            .and_then(|r| r.get("contained"))
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|r| r.get("id").and_then(Value::as_str) == Some(local))
            })
        {
            out.push(Item::resource(contained));
        }
        return;
    }
    let type_name = reference.and_then(reference_type).or_else(|| {
        declared_type
            .map(|t| t.rsplit('/').next().unwrap_or(t))
            .filter(|t| defs().is_resource_type(t))
    });
    if let Some(type_name) = type_name {
        out.push(Item {
            value: Val::Json(value),
            type_name: Some(type_name),
            scope: Scope::Resolved,
        });
    }
}

/// The resource type named by a literal reference: `Patient/1`, `http://x/fhir/Patient/1`,
/// `Patient/1/_history/2`, or a conditional `Patient?identifier=...`.
fn reference_type(reference: &str) -> Option<&str> {
    if let Some((path, _query)) = reference.split_once('?') {
        return defs().is_resource_type(path).then_some(path);
    }
    let mut segments = reference.rsplit('/');
    let last = segments.next()?;
    let mut previous = segments.next()?;
    let mut id = last;
    if previous == "_history" {
        id = segments.next()?;
        previous = segments.next()?;
    }
    (!id.is_empty() && defs().is_resource_type(previous)).then_some(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_types() {
        let cases = [
            ("Patient/123", Some("Patient")),
            ("http://example.org/fhir/Patient/123", Some("Patient")),
            ("Patient/123/_history/4", Some("Patient")),
            ("https://x/fhir/Group/g/_history/1", Some("Group")),
            ("Patient?identifier=x|1", Some("Patient")),
            ("Patient/", None),
            ("Nope/1", None),
            ("urn:uuid:0f2b", None),
            ("123", None),
            ("", None),
        ];
        for (reference, expected) in cases {
            assert_eq!(reference_type(reference), expected, "{reference}");
        }
    }
}
