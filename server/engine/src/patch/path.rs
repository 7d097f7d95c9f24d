//! The FHIRPath subset FHIRPath Patch paths use, resolved to concrete JSON locations.
//!
//! Supported: an optional leading type name (`Patient.`) or `%resource`, child names (choice
//! elements by their base name too: `Observation.value` finds `valueQuantity`), `[n]` indexers,
//! `first()`, `last()`, and `where(...)` with `=` / `!=` comparisons of a relative path (or
//! `$this`) to a string, number or boolean literal, `exists()`, `and`, `or` and parentheses.

use curanet_fhir::Definitions;
use curanet_fhir_profiles::{ElementDefinition, TypeDefinition};
use serde_json::Value;

use super::json_patch::number_eq;

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Path {
    /// The type the path starts with (`Patient` in `Patient.name`), if it names one.
    pub root_type: Option<String>,
    pub steps: Vec<Step>,
}

/// One step of a path, applied to the whole collection so far.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Child(String),
    Index(usize),
    First,
    Last,
    Where(Cond),
    /// `ofType(T)`: the values of type `T` (choice elements: `valueQuantity` for `Quantity`).
    OfType(String),
}

/// A `where(...)` criterion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    /// `path = literal` (`negated` for `!=`); an empty path is `$this`.
    Compare {
        path: Vec<String>,
        literal: Literal,
        negated: bool,
    },
    /// `path.exists()`.
    Exists(Vec<String>),
}

/// A literal a `where` compares with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Num(serde_json::Number),
    Bool(bool),
}

impl Path {
    /// Parses a path; the error says what is not understood.
    pub(crate) fn parse(text: &str) -> Result<Path, String> {
        let tokens = tokenize(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            text,
        };
        let path = p.path()?;
        if p.pos < p.tokens.len() {
            return Err(p.error("unexpected text"));
        }
        Ok(path)
    }

    /// The same path without its last step, and that step when it is a child name.
    pub(crate) fn split_last_child(&self) -> Option<(Path, &str)> {
        match self.steps.split_last() {
            Some((Step::Child(name), rest)) => Some((
                Path {
                    root_type: self.root_type.clone(),
                    steps: rest.to_vec(),
                },
                name.as_str(),
            )),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// `%resource`, `$this`, ...
    Special(String),
    Str(String),
    Num(String),
    Sym(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '.' | '[' | ']' | '(' | ')' | '=' | ',' => {
                tokens.push(Token::Sym(match c {
                    '.' => ".",
                    '[' => "[",
                    ']' => "]",
                    '(' => "(",
                    ')' => ")",
                    '=' => "=",
                    _ => ",",
                }));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Sym("!="));
                i += 2;
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated string in '{text}'")),
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            let escaped = match chars.get(i + 1) {
                                Some('n') => '\n',
                                Some('r') => '\r',
                                Some('t') => '\t',
                                Some('f') => '\u{c}',
                                Some('u') => {
                                    let hex: String = chars.iter().skip(i + 2).take(4).collect();
                                    let code = u32::from_str_radix(&hex, 16)
                                        .ok()
                                        .filter(|_| hex.len() == 4)
                                        .and_then(char::from_u32)
                                        .ok_or_else(|| format!("bad \\u escape in '{text}'"))?;
                                    i += 4;
                                    code
                                }
                                Some(&other) => other,
                                None => return Err(format!("unterminated string in '{text}'")),
                            };
                            s.push(escaped);
                            i += 2;
                        }
                        Some(&other) => {
                            s.push(other);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Str(s));
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| format!("unterminated `identifier` in '{text}'"))?;
                tokens.push(Token::Ident(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '%' | '$' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && ident_char(chars[end]) {
                    end += 1;
                }
                if end == start {
                    return Err(format!("'{c}' must be followed by a name in '{text}'"));
                }
                tokens.push(Token::Special(chars[i..end].iter().collect()));
                i = end;
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                {
                    i += 1;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                tokens.push(Token::Num(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected '{other}' in '{text}'")),
        }
    }
    Ok(tokens)
}

struct Parser<'t> {
    tokens: Vec<Token>,
    pos: usize,
    text: &'t str,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        match self.tokens.get(self.pos) {
            Some(t) => format!("{what} at {t:?} in path '{}'", self.text),
            None => format!("{what} at the end of path '{}'", self.text),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, sym: &str) -> Result<(), String> {
        if self.eat(sym) {
            Ok(())
        } else {
            Err(self.error(&format!("expected '{sym}'")))
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Token::Ident(name)) => {
                let name = name.clone();
                self.pos += 1;
                Ok(name)
            }
            _ => Err(self.error("expected a name")),
        }
    }

    fn path(&mut self) -> Result<Path, String> {
        let mut path = Path {
            root_type: None,
            steps: Vec::new(),
        };
        match self.peek().cloned() {
            Some(Token::Special(s)) if s == "%resource" || s == "%rootResource" => {
                self.pos += 1;
            }
            Some(Token::Ident(name))
                if name.starts_with(|c: char| c.is_ascii_uppercase())
                    && !matches!(self.tokens.get(self.pos + 1), Some(Token::Sym("("))) =>
            {
                self.pos += 1;
                path.root_type = Some(name);
            }
            Some(Token::Ident(_)) => path.steps.extend(self.invocation()?),
            _ => return Err(self.error("a path must start with a type or element name")),
        }
        loop {
            if self.eat("[") {
                path.steps.push(Step::Index(self.index()?));
                self.expect("]")?;
            } else if self.eat(".") {
                path.steps.extend(self.invocation()?);
            } else {
                break;
            }
        }
        if path.root_type.is_none() && path.steps.is_empty() {
            return Err(self.error("empty path"));
        }
        Ok(path)
    }

    fn index(&mut self) -> Result<usize, String> {
        match self.peek() {
            Some(Token::Num(n)) => {
                let n = n
                    .parse()
                    .map_err(|_| self.error("an index must be a whole number"))?;
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.error("expected an index")),
        }
    }

    /// A child name or a function call.
    /// A child name or a function call (`extension('url')` is two steps).
    fn invocation(&mut self) -> Result<Vec<Step>, String> {
        let name = self.ident()?;
        if !self.eat("(") {
            return Ok(vec![Step::Child(name)]);
        }
        let steps = match name.as_str() {
            "first" => vec![Step::First],
            "last" => vec![Step::Last],
            "where" => vec![Step::Where(self.or()?)],
            "ofType" => vec![Step::OfType(self.ident()?)],
            "extension" => {
                let Some(Token::Str(url)) = self.peek().cloned() else {
                    return Err(self.error("extension() needs the extension URL as a string"));
                };
                self.pos += 1;
                vec![
                    Step::Child("extension".into()),
                    Step::Where(Cond::Compare {
                        path: vec!["url".into()],
                        literal: Literal::Str(url),
                        negated: false,
                    }),
                ]
            }
            other => {
                return Err(format!(
                    "FHIRPath function {other}() is not supported in a patch path (use where(), first(), last(), ofType(), extension() or [n]); path '{}'",
                    self.text
                ));
            }
        };
        self.expect(")")?;
        Ok(steps)
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut left = self.and()?;
        while matches!(self.peek(), Some(Token::Ident(k)) if k == "or") {
            self.pos += 1;
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut left = self.comparison()?;
        while matches!(self.peek(), Some(Token::Ident(k)) if k == "and") {
            self.pos += 1;
            left = Cond::And(Box::new(left), Box::new(self.comparison()?));
        }
        Ok(left)
    }

    fn comparison(&mut self) -> Result<Cond, String> {
        if self.eat("(") {
            let inner = self.or()?;
            self.expect(")")?;
            return Ok(inner);
        }
        let mut path = Vec::new();
        match self.peek().cloned() {
            Some(Token::Special(s)) if s == "$this" => self.pos += 1,
            Some(Token::Ident(name)) => {
                self.pos += 1;
                path.push(name);
            }
            _ => return Err(self.error("expected an element name or $this")),
        }
        while self.eat(".") {
            let name = self.ident()?;
            if name == "exists" && self.eat("(") {
                self.expect(")")?;
                return Ok(Cond::Exists(path));
            }
            path.push(name);
        }
        let negated = if self.eat("=") {
            false
        } else if self.eat("!=") {
            true
        } else {
            return Err(self.error("expected '=', '!=' or .exists()"));
        };
        let literal = match self.peek().cloned() {
            Some(Token::Str(s)) => Literal::Str(s),
            Some(Token::Num(n)) => {
                Literal::Num(serde_json::from_str(&n).map_err(|_| self.error("bad number"))?)
            }
            Some(Token::Ident(b)) if b == "true" || b == "false" => Literal::Bool(b == "true"),
            _ => return Err(self.error("expected a string, number or boolean literal")),
        };
        self.pos += 1;
        Ok(Cond::Compare {
            path,
            literal,
            negated,
        })
    }
}

/// One segment of a concrete JSON location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Where the children of a JSON object are defined: an element path inside a type definition.
#[derive(Clone)]
pub(crate) struct DefCtx<'d> {
    pub td: &'d TypeDefinition,
    pub path: String,
}

/// A property resolved against its parent's definition.
pub(crate) struct ChildDef<'d> {
    pub element: &'d ElementDefinition,
    /// Where the property's own children are defined (`None` for unknown types).
    pub ctx: Option<DefCtx<'d>>,
}

impl<'d> DefCtx<'d> {
    /// The definition of a resource type.
    pub(crate) fn resource(defs: &'d Definitions, resource_type: &str) -> Option<Self> {
        defs.type_definition(resource_type).map(|td| DefCtx {
            td,
            path: td.name.clone(),
        })
    }

    /// Resolves the JSON property `key` (choice names included); `value` picks the type of a
    /// `Resource`-typed element (contained resources).
    pub(crate) fn child(
        &self,
        defs: &'d Definitions,
        key: &str,
        value: Option<&Value>,
    ) -> Option<ChildDef<'d>> {
        let child = self.td.child(&self.path, key)?;
        let element = self.td.element(child.element);
        let ctx = if let Some(reference) = &element.content_reference {
            Some(DefCtx {
                td: self.td,
                path: reference.clone(),
            })
        } else if let Some(t) = &child.type_code {
            let t = match t.as_str() {
                "Resource" | "DomainResource" => value
                    .and_then(|v| v.get("resourceType"))
                    .and_then(Value::as_str)
                    .unwrap_or(t),
                _ => t,
            };
            Self::resource(defs, t)
        } else {
            Some(DefCtx {
                td: self.td,
                path: element.path.clone(),
            })
        };
        Some(ChildDef { element, ctx })
    }

    /// The JSON property for element `name` holding a value of type `type_suffix` (`Quantity`):
    /// `name` itself when defined, else the choice property (`value` → `valueQuantity`).
    pub(crate) fn property_name(&self, name: &str, type_suffix: Option<&str>) -> String {
        if self.td.child(&self.path, name).is_some() {
            return name.to_string();
        }
        if let Some(suffix) = type_suffix {
            let choice = format!("{name}{suffix}");
            if self.td.child(&self.path, &choice).is_some() {
                return choice;
            }
        }
        name.to_string()
    }
}

/// An element a path matched.
#[derive(Clone)]
pub(crate) struct Item<'v, 'd> {
    pub loc: Vec<Seg>,
    pub value: &'v Value,
    /// Where this element's children are defined.
    pub ctx: Option<DefCtx<'d>>,
    /// The definition of the element itself (`None` for the resource, or unknown).
    pub element: Option<&'d ElementDefinition>,
}

/// Resolves `path` against `resource`; the error is for a path that names another resource type.
pub(crate) fn resolve<'v, 'd>(
    defs: &'d Definitions,
    resource: &'v Value,
    path: &Path,
) -> Result<Vec<Item<'v, 'd>>, String> {
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(root) = &path.root_type
        && root != resource_type
        && !matches!(root.as_str(), "Resource" | "DomainResource")
    {
        return Err(format!(
            "the path starts with {root}, but the resource is a {resource_type}"
        ));
    }
    let start = Item {
        loc: Vec::new(),
        value: resource,
        ctx: DefCtx::resource(defs, resource_type),
        element: None,
    };
    Ok(apply_steps(defs, vec![start], &path.steps))
}

fn apply_steps<'v, 'd>(
    defs: &'d Definitions,
    mut items: Vec<Item<'v, 'd>>,
    steps: &[Step],
) -> Vec<Item<'v, 'd>> {
    for step in steps {
        items = match step {
            Step::Child(name) => items
                .iter()
                .flat_map(|item| children(defs, item, name))
                .collect(),
            Step::Index(n) => items.into_iter().nth(*n).into_iter().collect(),
            Step::First => items.into_iter().take(1).collect(),
            Step::Last => items.into_iter().last().into_iter().collect(),
            Step::Where(cond) => items
                .into_iter()
                .filter(|item| holds(defs, item, cond))
                .collect(),
            Step::OfType(t) => items
                .into_iter()
                .filter(|item| is_of_type(item, t))
                .collect(),
        };
    }
    items
}

/// The values of element `name` of an object (each array item separately).
fn children<'v, 'd>(defs: &'d Definitions, item: &Item<'v, 'd>, name: &str) -> Vec<Item<'v, 'd>> {
    let Some(obj) = item.value.as_object() else {
        return Vec::new();
    };
    let key = if obj.contains_key(name) {
        Some(name.to_string())
    } else {
        // A choice element by its base name: `value` finds `valueQuantity`.
        let choice = format!("{name}[x]");
        item.ctx.as_ref().and_then(|ctx| {
            obj.keys()
                .filter(|k| !k.starts_with('_'))
                .find(|k| {
                    k.starts_with(name)
                        && ctx
                            .child(defs, k, None)
                            .is_some_and(|c| c.element.name() == choice)
                })
                .cloned()
        })
    };
    let Some(key) = key else {
        return Vec::new();
    };
    let value = &obj[key.as_str()];
    let def = |v: &Value| {
        item.ctx
            .as_ref()
            .and_then(|ctx| ctx.child(defs, &key, Some(v)))
    };
    let make = |seg: Option<usize>, v: &'v Value| {
        let mut loc = item.loc.clone();
        loc.push(Seg::Key(key.clone()));
        if let Some(i) = seg {
            loc.push(Seg::Index(i));
        }
        let child = def(v);
        Item {
            loc,
            value: v,
            element: child.as_ref().map(|c| c.element),
            ctx: child.and_then(|c| c.ctx),
        }
    };
    match value {
        Value::Array(values) => values
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_null())
            .map(|(i, v)| make(Some(i), v))
            .collect(),
        Value::Null => Vec::new(),
        v => vec![make(None, v)],
    }
}

/// Whether an element's value is of type `t` (by its choice property name, else its definition).
fn is_of_type(item: &Item<'_, '_>, t: &str) -> bool {
    let key = item.loc.iter().rev().find_map(|seg| match seg {
        Seg::Key(k) => Some(k.as_str()),
        Seg::Index(_) => None,
    });
    match (item.element, key) {
        (Some(el), Some(key)) if el.name().ends_with("[x]") => {
            let base = el.name().trim_end_matches("[x]");
            key.strip_prefix(base)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case(t))
        }
        (Some(el), _) => el.types.len() == 1 && el.types[0] == t,
        (None, _) => item.value.get("resourceType").and_then(Value::as_str) == Some(t),
    }
}

fn holds(defs: &Definitions, item: &Item<'_, '_>, cond: &Cond) -> bool {
    let values = |path: &[String]| {
        let steps: Vec<Step> = path.iter().cloned().map(Step::Child).collect();
        apply_steps(defs, vec![item.clone()], &steps)
    };
    match cond {
        Cond::And(a, b) => holds(defs, item, a) && holds(defs, item, b),
        Cond::Or(a, b) => holds(defs, item, a) || holds(defs, item, b),
        Cond::Exists(path) => !values(path).is_empty(),
        Cond::Compare {
            path,
            literal,
            negated,
        } => {
            // FHIRPath: an empty operand makes the comparison empty (false in where()); a
            // collection of several values is not equal to a single literal.
            let found = values(path);
            match found.as_slice() {
                [] => false,
                [one] => literal_eq(one.value, literal) != *negated,
                _ => *negated,
            }
        }
    }
}

fn literal_eq(value: &Value, literal: &Literal) -> bool {
    match (value, literal) {
        (Value::String(s), Literal::Str(l)) => s == l,
        (Value::Number(n), Literal::Num(l)) => number_eq(n, l),
        (Value::Bool(b), Literal::Bool(l)) => b == l,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn locs(resource: &Value, path: &str) -> Vec<Vec<Seg>> {
        let defs = Definitions::shared();
        let path = Path::parse(path).unwrap();
        resolve(&defs, resource, &path)
            .unwrap()
            .into_iter()
            .map(|i| i.loc)
            .collect()
    }

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "identifier": [
                {"system": "urn:a", "value": "1"},
                {"system": "urn:b", "value": "2", "type": {"coding": [{"code": "MR"}]}}
            ],
            "name": [{"family": "Rao", "given": ["Asha", "K"]}, {"family": "Iyer", "use": "old"}],
            "gender": "female",
            "deceasedBoolean": false,
            "contact": [{"telecom": [{"system": "phone", "value": "123"}]}]
        })
    }

    #[test]
    fn parses_the_supported_subset() {
        let p = Path::parse("Patient.name[0].given.first()").unwrap();
        assert_eq!(p.root_type.as_deref(), Some("Patient"));
        assert_eq!(
            p.steps,
            vec![
                Step::Child("name".into()),
                Step::Index(0),
                Step::Child("given".into()),
                Step::First
            ]
        );
        let p =
            Path::parse("Patient.identifier.where(system = 'urn:\\'a' and type.coding.code!='x')")
                .unwrap();
        let Step::Where(Cond::And(a, b)) = &p.steps[1] else {
            panic!("{p:?}")
        };
        assert_eq!(
            **a,
            Cond::Compare {
                path: vec!["system".into()],
                literal: Literal::Str("urn:'a".into()),
                negated: false
            }
        );
        assert!(matches!(&**b, Cond::Compare { negated: true, .. }));
        assert!(Path::parse("name.given").unwrap().root_type.is_none());
        assert!(Path::parse("%resource.name").unwrap().root_type.is_none());
        for bad in [
            "",
            "Patient.",
            "Patient.name[",
            "Patient.name.where(",
            "Patient.name.resolve()",
            "Patient.name.where(given)",
            "Patient.name.where(given = 'x'",
            "Patient.name 'x'",
        ] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_children_indexes_and_functions() {
        let p = patient();
        assert_eq!(locs(&p, "Patient.gender"), vec![vec![key("gender")]]);
        assert_eq!(
            locs(&p, "Patient.name"),
            vec![
                vec![key("name"), Seg::Index(0)],
                vec![key("name"), Seg::Index(1)]
            ]
        );
        assert_eq!(
            locs(&p, "Patient.name[1].family"),
            vec![vec![key("name"), Seg::Index(1), key("family")]]
        );
        assert_eq!(
            locs(&p, "Patient.name.given[1]"),
            vec![vec![
                key("name"),
                Seg::Index(0),
                key("given"),
                Seg::Index(1)
            ]]
        );
        assert_eq!(
            locs(&p, "name.first().family"),
            vec![vec![key("name"), Seg::Index(0), key("family")]]
        );
        assert_eq!(
            locs(&p, "Patient.name.last()"),
            vec![vec![key("name"), Seg::Index(1)]]
        );
        assert_eq!(
            locs(&p, "Patient.contact.telecom.value"),
            vec![vec![
                key("contact"),
                Seg::Index(0),
                key("telecom"),
                Seg::Index(0),
                key("value")
            ]]
        );
        assert!(locs(&p, "Patient.birthDate").is_empty());
        assert_eq!(
            locs(&p, "Patient.deceased.ofType(boolean)"),
            vec![vec![key("deceasedBoolean")]]
        );
        assert!(locs(&p, "Patient.deceased.ofType(dateTime)").is_empty());
        assert_eq!(
            locs(&p, "Patient.gender.ofType(code)"),
            vec![vec![key("gender")]]
        );
        assert!(locs(&p, "Patient.name[5]").is_empty());
    }

    #[test]
    fn resolves_choice_elements_by_base_name() {
        let p = patient();
        assert_eq!(
            locs(&p, "Patient.deceased"),
            vec![vec![key("deceasedBoolean")]]
        );
        assert_eq!(
            locs(&p, "Patient.deceasedBoolean"),
            vec![vec![key("deceasedBoolean")]]
        );
        let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "valueQuantity": {"value": 1}});
        assert_eq!(
            locs(&obs, "Observation.value.value"),
            vec![vec![key("valueQuantity"), key("value")]]
        );
    }

    #[test]
    fn where_filters() {
        let p = patient();
        assert_eq!(
            locs(&p, "Patient.identifier.where(system='urn:b')"),
            vec![vec![key("identifier"), Seg::Index(1)]]
        );
        assert_eq!(
            locs(&p, "Patient.identifier.where(system='urn:b').value"),
            vec![vec![key("identifier"), Seg::Index(1), key("value")]]
        );
        assert_eq!(
            locs(&p, "Patient.identifier.where(type.coding.code='MR')"),
            vec![vec![key("identifier"), Seg::Index(1)]]
        );
        assert_eq!(
            locs(&p, "Patient.identifier.where(system!='urn:b')"),
            vec![vec![key("identifier"), Seg::Index(0)]]
        );
        assert_eq!(
            locs(&p, "Patient.name.where(use.exists())"),
            vec![vec![key("name"), Seg::Index(1)]]
        );
        assert_eq!(
            locs(&p, "Patient.name.given.where($this='K')"),
            vec![vec![
                key("name"),
                Seg::Index(0),
                key("given"),
                Seg::Index(1)
            ]]
        );
        assert_eq!(
            locs(&p, "Patient.identifier.where(system='urn:a' or value='2')").len(),
            2
        );
        assert!(locs(&p, "Patient.identifier.where(system='urn:zz')").is_empty());
        // Several values are not equal to one literal (FHIRPath collection equality).
        assert!(locs(&p, "Patient.name.where(given='Asha')").is_empty());
    }

    #[test]
    fn extension_shortcut() {
        let p = json!({"resourceType": "Patient", "extension": [
            {"url": "http://e.org/a", "valueString": "1"},
            {"url": "http://e.org/b", "valueString": "2"}
        ]});
        assert_eq!(
            locs(&p, "Patient.extension('http://e.org/b').value"),
            vec![vec![key("extension"), Seg::Index(1), key("valueString")]]
        );
        assert!(Path::parse("Patient.extension(url)").is_err());
    }

    #[test]
    fn a_path_for_another_type_is_refused() {
        let defs = Definitions::shared();
        let path = Path::parse("Observation.status").unwrap();
        assert!(resolve(&defs, &patient(), &path).is_err());
        let path = Path::parse("Resource.id").unwrap();
        assert_eq!(resolve(&defs, &patient(), &path).unwrap().len(), 1);
    }
}
