//! Parsing of a search URL's parameters into a typed [`SearchSpec`], per the R4 search rules:
//! prefixes, modifiers, `a,b` = OR, repeated parameter = AND, `system|code`, `Type/id`.
//! Parameters the server does not support are reported, never silently applied wrongly.

use curanet_fhir::datetime::parse_date_time;
use curanet_fhir::subset::Subset;
use curanet_fhir_profiles::{Definitions, SearchParamType};
use curanet_storage::{
    Clause, Cursor, Include, IndexTable, Predicate, Prefix, SearchSpec, SortBy, SortKey, SortValue,
    StringMatch, UriMatch,
};

use crate::normalize::fold;

/// Default page size.
pub const DEFAULT_COUNT: u32 = 20;
/// Largest page size.
pub const MAX_COUNT: u32 = 1000;

/// A search parameter value the client got wrong (400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{param}: {reason}")]
pub struct QueryError {
    pub param: String,
    pub reason: String,
}

/// A parsed search: what will run, what was applied (for the `self` link) and what was not.
#[derive(Debug)]
pub struct ParsedSearch {
    pub spec: SearchSpec,
    /// The parameters applied, as they should appear in paging links.
    pub applied: Vec<(String, String)>,
    /// Parameters not applied, with the reason (unknown, unsupported modifier, ...).
    pub ignored: Vec<(String, String)>,
    /// `_summary=count`: only the total is wanted.
    pub count_only: bool,
    /// `_summary=true|text|data` or `_elements`: the part of each resource to return.
    pub subset: Option<Subset>,
}

fn bad(param: &str, reason: impl Into<String>) -> QueryError {
    QueryError {
        param: param.to_string(),
        reason: reason.into(),
    }
}

/// Splits on commas that are not escaped, and unescapes `\,` `\|` `\$` `\\`.
fn split_or(value: &str) -> Vec<String> {
    split_escaped(value, ',', &[',', '|', '$', '\\'])
}

/// Splits `value` at each `separator` not preceded by `\`. A backslash is dropped when the
/// character after it is in `unescape` and kept (with that character) otherwise.
fn split_escaped(value: &str, separator: char, unescape: &[char]) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        let last = parts.last_mut().expect("one part");
        if c == '\\' {
            if let Some(n) = chars.next() {
                if !unescape.contains(&n) {
                    last.push('\\');
                }
                last.push(n);
            }
        } else if c == separator {
            parts.push(String::new());
        } else {
            last.push(c);
        }
    }
    parts
}

/// Splits `system|code` at the first unescaped `|`.
fn split_pipe(value: &str) -> Option<(String, String)> {
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'|' => {
                return Some((
                    value[..i].replace("\\|", "|"),
                    value[i + 1..].replace("\\|", "|"),
                ));
            }
            _ => i += 1,
        }
    }
    None
}

fn prefix_of(value: &str) -> (Prefix, &str) {
    let prefixes = [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("gt", Prefix::Gt),
        ("lt", Prefix::Lt),
        ("ge", Prefix::Ge),
        ("le", Prefix::Le),
        ("sa", Prefix::Sa),
        ("eb", Prefix::Eb),
        ("ap", Prefix::Ap),
    ];
    for (text, prefix) in prefixes {
        if let Some(rest) = value.strip_prefix(text)
            && rest.starts_with(|c: char| c.is_ascii_digit() || c == '-')
        {
            return (prefix, rest);
        }
    }
    (Prefix::Eq, value)
}

/// A number and the half-open range its written precision covers (`100` → [99.5, 100.5)).
fn number_range(param: &str, text: &str) -> Result<(f64, f64, f64), QueryError> {
    let value: f64 = text
        .parse()
        .map_err(|_| bad(param, format!("'{text}' is not a number")))?;
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let exponent: i32 = text
        .split(['e', 'E'])
        .nth(1)
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let decimals = mantissa.split('.').nth(1).map_or(0, str::len) as i32;
    let half = 0.5 * 10f64.powi(exponent - decimals);
    Ok((value, value - half, value + half))
}

fn date_range(param: &str, text: &str) -> Result<(i64, i64), QueryError> {
    parse_date_time(text)
        .map(|p| (p.start, p.end))
        .ok_or_else(|| bad(param, format!("'{text}' is not a FHIR date or dateTime")))
}

fn table_of(kind: SearchParamType) -> Option<IndexTable> {
    Some(match kind {
        SearchParamType::String => IndexTable::String,
        SearchParamType::Token => IndexTable::Token,
        SearchParamType::Reference => IndexTable::Reference,
        SearchParamType::Date => IndexTable::Date,
        SearchParamType::Number => IndexTable::Number,
        SearchParamType::Quantity => IndexTable::Quantity,
        SearchParamType::Uri => IndexTable::Uri,
        SearchParamType::Composite | SearchParamType::Special => return None,
    })
}

/// Parameters that shape the result rather than select it, handled here or by the caller.
const RESULT_PARAMS: &[&str] = &[
    "_count",
    "_sort",
    "_total",
    "_summary",
    "_elements",
    "_cursor",
    "_format",
    "_pretty",
];

/// Parses the query pairs of a search on `resource_type`. `base` is the server's FHIR base URL
/// (absolute references to it are read as local ones).
pub fn parse(
    defs: &Definitions,
    resource_type: &str,
    pairs: &[(String, String)],
    base: &str,
) -> Result<ParsedSearch, QueryError> {
    let mut spec = SearchSpec {
        resource_type: resource_type.to_string(),
        clauses: Vec::new(),
        sort: Vec::new(),
        count: DEFAULT_COUNT,
        after: None,
        total: true,
        includes: Vec::new(),
    };
    let mut applied = Vec::new();
    let mut ignored = Vec::new();
    let mut count_only = false;
    let subset = Subset::requested(pairs).map_err(|reason| QueryError {
        param: "_summary".into(),
        reason,
    })?;
    let mut cursor: Option<String> = None;
    for (name, value) in pairs {
        let (code, modifier) = match name.split_once(':') {
            Some((c, m)) => (c, Some(m)),
            None => (name.as_str(), None),
        };
        if RESULT_PARAMS.contains(&code) {
            match code {
                "_count" => {
                    let n: u32 = value
                        .parse()
                        .map_err(|_| bad(code, format!("'{value}' is not a whole number")))?;
                    spec.count = n.min(MAX_COUNT);
                    count_only |= n == 0;
                }
                "_total" => match value.as_str() {
                    "none" => spec.total = false,
                    "estimate" | "accurate" => spec.total = true,
                    _ => return Err(bad(code, "use none, estimate or accurate")),
                },
                // Which part of each resource: read once for all pairs, below.
                "_summary" => count_only |= value == "count",
                "_elements" => {}
                "_sort" => {
                    let mut keys = Vec::new();
                    let mut problem = None;
                    for key in value.split(',').filter(|k| !k.is_empty()) {
                        let (descending, code) = match key.strip_prefix('-') {
                            Some(c) => (true, c),
                            None => (false, key),
                        };
                        let by = match code {
                            "_id" => break, // the implicit last key
                            "_lastUpdated" => SortBy::LastUpdated,
                            _ => match defs
                                .search_parameters(resource_type)
                                .iter()
                                .find(|p| p.code == code)
                                .and_then(|p| table_of(p.kind))
                            {
                                Some(table) => SortBy::Param {
                                    table,
                                    param: code.to_string(),
                                },
                                None => {
                                    problem = Some(format!("cannot sort by '{code}'"));
                                    break;
                                }
                            },
                        };
                        keys.push(SortKey { by, descending });
                    }
                    if let Some(reason) = problem {
                        ignored.push((name.clone(), reason));
                        continue;
                    }
                    spec.sort = keys;
                }
                "_cursor" => {
                    cursor = Some(value.clone());
                    continue; // paging links carry their own cursor
                }
                _ => continue,
            }
            applied.push((name.clone(), value.clone()));
            continue;
        }
        if code == "_include" || code == "_revinclude" {
            match include(defs, resource_type, code == "_revinclude", modifier, value) {
                Ok(inc) => {
                    spec.includes.push(inc);
                    applied.push((name.clone(), value.clone()));
                }
                Err(reason) => ignored.push((name.clone(), reason)),
            }
            continue;
        }
        match param_clause(defs, resource_type, name, value, base, 0)? {
            Ok(c) => {
                spec.clauses.push(c);
                applied.push((name.clone(), value.clone()));
            }
            Err(reason) => ignored.push((name.clone(), reason)),
        }
    }
    if let Some(text) = cursor {
        spec.after = Some(
            parse_cursor(&text, &spec.sort)
                .ok_or_else(|| bad("_cursor", "invalid paging cursor"))?,
        );
    }
    if count_only {
        spec.count = 0;
        spec.total = true;
    }
    Ok(ParsedSearch {
        spec,
        applied,
        ignored,
        count_only,
        subset,
    })
}

/// How deep chains and `_has` may nest.
const MAX_CHAIN: usize = 4;

/// The clause for one parameter name as written (with chains, `_has` and modifiers).
fn param_clause(
    defs: &Definitions,
    resource_type: &str,
    name: &str,
    value: &str,
    base: &str,
    depth: usize,
) -> Result<Result<Clause, String>, QueryError> {
    if depth > MAX_CHAIN {
        return Ok(Err(format!("chains nest at most {MAX_CHAIN} levels")));
    }
    if let Some(rest) = name.strip_prefix("_has:") {
        // _has:Type:param:rest
        let mut parts = rest.splitn(3, ':');
        let (Some(source), Some(param), Some(inner)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(name, "use _has:Type:reference:parameter"));
        };
        if !defs.is_resource_type(source) {
            return Ok(Err(format!("unknown resource type '{source}' in _has")));
        }
        let is_ref = defs
            .search_parameters(source)
            .iter()
            .any(|p| p.code == param && p.kind == SearchParamType::Reference);
        if !is_ref {
            return Ok(Err(format!(
                "'{param}' is not a reference parameter of {source}"
            )));
        }
        return Ok(
            match param_clause(defs, source, inner, value, base, depth + 1)? {
                Ok(clause) => Ok(Clause::AnyOf {
                    predicates: vec![Predicate::Has {
                        source_type: source.to_string(),
                        param: param.to_string(),
                        clause: Box::new(clause),
                    }],
                    negated: false,
                }),
                Err(reason) => Err(reason),
            },
        );
    }
    if let Some((head, rest)) = name.split_once('.') {
        let (param, type_modifier) = match head.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (head, None),
        };
        let Some(reference) = defs
            .search_parameters(resource_type)
            .iter()
            .find(|p| p.code == param && p.kind == SearchParamType::Reference)
        else {
            return Ok(Err(format!(
                "'{param}' is not a reference parameter of {resource_type}"
            )));
        };
        let next_code = rest.split(['.', ':']).next().unwrap_or(rest);
        let candidates: Vec<String> = match type_modifier {
            Some(t) => vec![t.to_string()],
            None => reference.targets.clone(),
        };
        let mut targets = Vec::new();
        for t in candidates.iter().filter(|t| defs.is_resource_type(t)) {
            let known = next_code.starts_with("_has")
                || matches!(next_code, "_id" | "_lastUpdated")
                || defs
                    .search_parameters(t)
                    .iter()
                    .any(|p| p.code == next_code);
            if !known {
                continue;
            }
            match param_clause(defs, t, rest, value, base, depth + 1)? {
                Ok(clause) => targets.push((t.clone(), clause)),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        if targets.is_empty() {
            return Ok(Err(format!(
                "no target of {param} has a parameter '{next_code}'"
            )));
        }
        return Ok(Ok(Clause::AnyOf {
            predicates: vec![Predicate::Chain {
                param: param.to_string(),
                targets,
            }],
            negated: false,
        }));
    }
    let (code, modifier) = match name.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (name, None),
    };
    Ok(clause(defs, resource_type, code, modifier, value, base)?.map(canonical_units))
}

/// UCUM quantities are compared in canonical units (`5|http://unitsofmeasure.org|mg` as
/// `0.005 g`) against the canonical index rows (`param:canonical`).
fn canonical_units(clause: Clause) -> Clause {
    let Clause::AnyOf {
        predicates,
        negated,
    } = clause
    else {
        return clause;
    };
    let predicates = predicates
        .into_iter()
        .map(|p| match p {
            Predicate::Quantity {
                param,
                prefix,
                value,
                lo,
                hi,
                system: Some(system),
                code: Some(code),
            } if system == crate::ucum::SYSTEM && crate::ucum::canonical(&code).is_some() => {
                let (unit, factor) = crate::ucum::canonical(&code).expect("checked");
                Predicate::Quantity {
                    param: format!("{param}{}", crate::ucum::CANONICAL_SUFFIX),
                    prefix,
                    value: value * factor,
                    lo: lo * factor,
                    hi: hi * factor,
                    system: Some(system),
                    code: Some(unit.to_string()),
                }
            }
            other => other,
        })
        .collect();
    Clause::AnyOf {
        predicates,
        negated,
    }
}

/// Reads an `_include` / `_revinclude` value (`Source:param[:Target]`, `Source:*`, `*`).
fn include(
    defs: &Definitions,
    resource_type: &str,
    reverse: bool,
    modifier: Option<&str>,
    value: &str,
) -> Result<Include, String> {
    let iterate = match modifier {
        None => false,
        Some("iterate" | "recurse") => true,
        Some(m) => return Err(format!("unknown modifier :{m}")),
    };
    if value == "*" {
        return Ok(Include {
            reverse,
            source_type: resource_type.to_string(),
            param: None,
            target_type: None,
            iterate,
        });
    }
    let mut parts = value.split(':');
    let source = parts.next().unwrap_or_default();
    let param = parts
        .next()
        .ok_or_else(|| "use Type:parameter".to_string())?;
    let target = parts.next();
    if !defs.is_resource_type(source) {
        return Err(format!("unknown resource type '{source}'"));
    }
    if param != "*"
        && !defs
            .search_parameters(source)
            .iter()
            .any(|p| p.code == param && p.kind == SearchParamType::Reference)
    {
        return Err(format!(
            "'{param}' is not a reference parameter of {source}"
        ));
    }
    if !reverse && !iterate && source != resource_type {
        return Err(format!(
            "_include must start with the searched type {resource_type}"
        ));
    }
    Ok(Include {
        reverse,
        source_type: source.to_string(),
        param: (param != "*").then(|| param.to_string()),
        target_type: target.map(String::from),
        iterate,
    })
}

/// The clause for one parameter: `Ok(Err(reason))` when it is not supported (reported, not applied).
fn clause(
    defs: &Definitions,
    resource_type: &str,
    code: &str,
    modifier: Option<&str>,
    value: &str,
    base: &str,
) -> Result<Result<Clause, String>, QueryError> {
    if code.contains('.') || code.starts_with("_has") {
        return Ok(Err(
            "chained and reverse-chained parameters are not supported yet".into(),
        ));
    }
    let name = match modifier {
        Some(m) => format!("{code}:{m}"),
        None => code.to_string(),
    };
    if code == "_id" {
        if modifier.is_some_and(|m| m != "not") {
            return Ok(Err(format!(
                "modifier :{} is not supported on _id",
                modifier.unwrap_or("")
            )));
        }
        let predicates = split_or(value).into_iter().map(Predicate::Id).collect();
        return Ok(Ok(Clause::AnyOf {
            predicates,
            negated: modifier == Some("not"),
        }));
    }
    if code == "_lastUpdated" {
        let mut predicates = Vec::new();
        for v in split_or(value) {
            let (prefix, rest) = prefix_of(&v);
            let (lo, hi) = date_range(&name, rest)?;
            predicates.push(Predicate::LastUpdated { prefix, lo, hi });
        }
        return Ok(Ok(Clause::AnyOf {
            predicates,
            negated: false,
        }));
    }
    if matches!(code, "_content" | "_query" | "_list") {
        return Ok(Err(format!("{code} is not supported")));
    }
    let Some(param) = defs
        .search_parameters(resource_type)
        .iter()
        .find(|p| p.code == code)
    else {
        return Ok(Err(format!(
            "unknown search parameter '{code}' for {resource_type}"
        )));
    };
    if param.kind == SearchParamType::Composite {
        return composite(defs, resource_type, param, modifier, value, base);
    }
    let Some(table) = table_of(param.kind) else {
        return Ok(Err(format!(
            "{} parameters are not supported yet",
            param.kind.code()
        )));
    };
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => return Err(bad(&name, "use true or false")),
        };
        return Ok(Ok(Clause::Missing {
            table,
            param: code.to_string(),
            missing,
        }));
    }
    let p = code.to_string();
    let mut negated = false;
    let mut predicates = Vec::new();
    for v in split_or(value) {
        if v.is_empty() {
            continue;
        }
        let predicate = match (param.kind, modifier) {
            // The narrative, as text: any part of it.
            (SearchParamType::String, None) if code == "_text" => Predicate::String {
                param: p.clone(),
                matching: StringMatch::Contains(fold(&v)),
            },
            (SearchParamType::String, None) => Predicate::String {
                param: p.clone(),
                matching: StringMatch::Prefix(fold(&v)),
            },
            (SearchParamType::String, Some("exact")) => Predicate::String {
                param: p.clone(),
                matching: StringMatch::Exact(v),
            },
            (SearchParamType::String, Some("contains")) => Predicate::String {
                param: p.clone(),
                matching: StringMatch::Contains(fold(&v)),
            },
            (SearchParamType::Token, None | Some("not")) => {
                negated = modifier == Some("not");
                let (system, code) = match split_pipe(&v) {
                    Some((s, c)) => (Some(s), (!c.is_empty()).then_some(c)),
                    None => (None, Some(v.replace("\\|", "|"))),
                };
                Predicate::Token {
                    param: p.clone(),
                    system,
                    code,
                }
            }
            // The text of a CodeableConcept or the display of a Coding (indexed as `code:text`).
            (SearchParamType::Token, Some("text")) => Predicate::String {
                param: format!("{p}:text"),
                matching: StringMatch::Contains(fold(&v)),
            },
            // An Identifier by its type and value: `type-system|type-code|value`.
            (SearchParamType::Token, Some("of-type")) => {
                let mut parts = v.splitn(3, '|');
                let (Some(ts), Some(tc), Some(value)) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad(&name, "use type-system|type-code|value"));
                };
                Predicate::Token {
                    param: format!("{p}:of-type"),
                    system: Some(format!("{ts}|{tc}")),
                    code: Some(value.to_string()),
                }
            }
            // A reference by the identifier it carries (`Reference.identifier`).
            (SearchParamType::Reference, Some("identifier")) => {
                let (system, code) = match split_pipe(&v) {
                    Some((s, c)) => (Some(s), (!c.is_empty()).then_some(c)),
                    None => (None, Some(v.replace("\\|", "|"))),
                };
                Predicate::Token {
                    param: format!("{p}:identifier"),
                    system,
                    code,
                }
            }
            (SearchParamType::Reference, m)
                if m.is_none() || m.is_some_and(|t| defs.is_resource_type(t)) =>
            {
                reference(&p, &v, m, base)
            }
            (SearchParamType::Date, None) => {
                let (prefix, rest) = prefix_of(&v);
                let (lo, hi) = date_range(&name, rest)?;
                Predicate::Date {
                    param: p.clone(),
                    prefix,
                    lo,
                    hi,
                }
            }
            (SearchParamType::Number, None) => {
                let (prefix, rest) = prefix_of(&v);
                let (value, lo, hi) = number_range(&name, rest)?;
                Predicate::Number {
                    param: p.clone(),
                    prefix,
                    value,
                    lo,
                    hi,
                }
            }
            (SearchParamType::Quantity, None) => {
                let (prefix, rest) = prefix_of(&v);
                let mut parts = rest.splitn(3, '|');
                let number = parts.next().unwrap_or("");
                let (value, lo, hi) = number_range(&name, number)?;
                let system = parts.next().filter(|s| !s.is_empty()).map(String::from);
                let code = parts.next().filter(|s| !s.is_empty()).map(String::from);
                Predicate::Quantity {
                    param: p.clone(),
                    prefix,
                    value,
                    lo,
                    hi,
                    system,
                    code,
                }
            }
            (SearchParamType::Uri, None | Some("below") | Some("above")) => Predicate::Uri {
                param: p.clone(),
                value: v,
                matching: match modifier {
                    Some("below") => UriMatch::Below,
                    Some("above") => UriMatch::Above,
                    _ => UriMatch::Exact,
                },
            },
            (_, Some(m)) => return Ok(Err(format!("modifier :{m} is not supported on {code}"))),
            (kind, None) => {
                return Ok(Err(format!(
                    "{} parameters are not supported yet",
                    kind.code()
                )));
            }
        };
        predicates.push(predicate);
    }
    if predicates.is_empty() {
        return Err(bad(&name, "a value is required"));
    }
    Ok(Ok(Clause::AnyOf {
        predicates,
        negated,
    }))
}

/// Splits a composite value at unescaped `$`.
fn split_dollar(value: &str) -> Vec<String> {
    split_escaped(value, '$', &['$'])
}

/// A composite parameter (`code-value-quantity=http://loinc.org|8480-6$gt100`): each `$`-part
/// is read by its component's type; `a,b` are alternative tuples.
fn composite(
    defs: &Definitions,
    resource_type: &str,
    param: &curanet_fhir_profiles::SearchParameter,
    modifier: Option<&str>,
    value: &str,
    base: &str,
) -> Result<Result<Clause, String>, QueryError> {
    if let Some(m) = modifier {
        return Ok(Err(format!(
            "modifier :{m} is not supported on {}",
            param.code
        )));
    }
    let mut component_codes = Vec::new();
    for (url, _) in &param.components {
        let Some(def) = defs
            .search_parameters(resource_type)
            .iter()
            .find(|p| &p.url == url)
        else {
            return Ok(Err(format!("component {url} of {} is unknown", param.code)));
        };
        component_codes.push(def.code.clone());
    }
    let mut predicates = Vec::new();
    // Commas separate tuples; a `$` inside a part is escaped, so split on commas first.
    for tuple in split_unescaped_commas(value) {
        let parts = split_dollar(&tuple);
        if parts.len() != component_codes.len() {
            return Err(bad(
                &param.code,
                format!(
                    "'{tuple}' needs {} components separated by $",
                    component_codes.len()
                ),
            ));
        }
        let mut components = Vec::new();
        for (code, part) in component_codes.iter().zip(parts) {
            // Each component is read like a single value of its own parameter.
            match clause(defs, resource_type, code, None, &part, base)? {
                Ok(Clause::AnyOf { mut predicates, .. }) if predicates.len() == 1 => {
                    components.push(predicates.remove(0));
                }
                Ok(_) => return Err(bad(&param.code, format!("'{part}' is not one value"))),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        predicates.push(Predicate::Composite {
            param: param.code.clone(),
            components,
        });
    }
    if predicates.is_empty() {
        return Err(bad(&param.code, "a value is required"));
    }
    Ok(Ok(Clause::AnyOf {
        predicates,
        negated: false,
    }))
}

/// Splits on unescaped commas, keeping every escape as written (for a second split).
fn split_unescaped_commas(value: &str) -> Vec<String> {
    let mut parts = split_escaped(value, ',', &[]);
    parts.retain(|p| !p.is_empty());
    parts
}

fn reference(param: &str, value: &str, type_modifier: Option<&str>, base: &str) -> Predicate {
    let local = value
        .strip_prefix(base)
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(value);
    let (target_type, target_id) = crate::index::split_reference(local);
    if !target_id.is_empty() {
        return Predicate::Reference {
            param: param.to_string(),
            target_type: Some(target_type),
            target_id: Some(target_id),
            url: None,
        };
    }
    if local.contains(':') || local.contains('/') {
        // Another server's URL or a canonical: match the reference as written.
        return Predicate::Reference {
            param: param.to_string(),
            target_type: None,
            target_id: None,
            url: Some(value.to_string()),
        };
    }
    Predicate::Reference {
        param: param.to_string(),
        target_type: type_modifier.map(String::from),
        target_id: Some(local.to_string()),
        url: None,
    }
}

/// Encodes a paging cursor for a link: a JSON array of the sort values, then the id.
pub fn encode_cursor(cursor: &Cursor) -> String {
    let mut items: Vec<serde_json::Value> = cursor
        .values
        .iter()
        .map(|v| match v {
            SortValue::Null => serde_json::Value::Null,
            SortValue::Int(n) => serde_json::json!(n),
            SortValue::Float(f) => serde_json::json!(f),
            SortValue::Text(t) => serde_json::json!(t),
        })
        .collect();
    items.push(serde_json::json!(cursor.id));
    let json = serde_json::Value::Array(items).to_string();
    // A `-` marks a cursor that pages backward (a `previous` link).
    if cursor.backward {
        format!("-{json}")
    } else {
        json
    }
}

fn parse_cursor(text: &str, keys: &[SortKey]) -> Option<Cursor> {
    let (backward, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let items: Vec<serde_json::Value> = serde_json::from_str(text).ok()?;
    let (id, values) = items.split_last()?;
    if values.len() != keys.len() {
        return None;
    }
    let values = values
        .iter()
        .zip(keys)
        .map(|(v, key)| {
            if v.is_null() {
                return Some(SortValue::Null);
            }
            let float = matches!(
                &key.by,
                SortBy::Param {
                    table: IndexTable::Number | IndexTable::Quantity,
                    ..
                }
            );
            let int = matches!(
                &key.by,
                SortBy::LastUpdated
                    | SortBy::Param {
                        table: IndexTable::Date,
                        ..
                    }
            );
            Some(if int {
                SortValue::Int(v.as_i64()?)
            } else if float {
                SortValue::Float(v.as_f64()?)
            } else {
                SortValue::Text(v.as_str()?.to_string())
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Cursor {
        values,
        id: id.as_str()?.to_string(),
        backward,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse_q(rt: &str, q: &[(&str, &str)]) -> ParsedSearch {
        parse(&Definitions::shared(), rt, &pairs(q), "http://h/fhir").unwrap()
    }

    #[test]
    fn tokens_and_or() {
        let p = parse_q(
            "Observation",
            &[
                ("code", "http://loinc.org|8867-4,|x,y"),
                ("status", "final"),
            ],
        );
        assert_eq!(p.spec.clauses.len(), 2);
        let Clause::AnyOf {
            predicates,
            negated,
        } = &p.spec.clauses[0]
        else {
            panic!()
        };
        assert!(!negated);
        assert_eq!(
            predicates[0],
            Predicate::Token {
                param: "code".into(),
                system: Some("http://loinc.org".into()),
                code: Some("8867-4".into())
            }
        );
        assert_eq!(
            predicates[1],
            Predicate::Token {
                param: "code".into(),
                system: Some(String::new()),
                code: Some("x".into())
            }
        );
        assert_eq!(
            predicates[2],
            Predicate::Token {
                param: "code".into(),
                system: None,
                code: Some("y".into())
            }
        );
    }

    #[test]
    fn prefixes_and_precision() {
        assert_eq!(prefix_of("ge2024"), (Prefix::Ge, "2024"));
        assert_eq!(prefix_of("2024"), (Prefix::Eq, "2024"));
        let (v, lo, hi) = number_range("n", "100").unwrap();
        assert_eq!((v, lo, hi), (100.0, 99.5, 100.5));
        let (_, lo, hi) = number_range("n", "1.50").unwrap();
        assert!((lo - 1.495).abs() < 1e-9 && (hi - 1.505).abs() < 1e-9);
    }

    #[test]
    fn unknown_and_unsupported_are_reported() {
        let p = parse_q(
            "Patient",
            &[
                ("bogus", "1"),
                ("name:text", "x"),
                ("general-practitioner.bogus", "y"),
                ("name", "rao"),
            ],
        );
        assert_eq!(p.ignored.len(), 3);
        assert_eq!(p.applied, pairs(&[("name", "rao")]));
    }

    #[test]
    fn bad_values_are_errors() {
        let defs = Definitions::shared();
        assert!(parse(&defs, "Patient", &pairs(&[("birthdate", "yesterday")]), "").is_err());
        assert!(parse(&defs, "Patient", &pairs(&[("_count", "-1")]), "").is_err());
        assert!(
            parse(
                &defs,
                "Observation",
                &pairs(&[("value-quantity", "abc")]),
                ""
            )
            .is_err()
        );
        assert!(parse(&defs, "Patient", &pairs(&[("name:missing", "maybe")]), "").is_err());
    }

    #[test]
    fn references_in_every_form() {
        let p = parse_q(
            "Observation",
            &[
                ("subject", "Patient/1"),
                ("patient", "http://h/fhir/Patient/2"),
                ("subject:Patient", "3"),
            ],
        );
        let ids: Vec<_> = p
            .spec
            .clauses
            .iter()
            .map(|c| match c {
                Clause::AnyOf { predicates, .. } => match &predicates[0] {
                    Predicate::Reference {
                        target_type,
                        target_id,
                        ..
                    } => (target_type.clone(), target_id.clone()),
                    _ => panic!(),
                },
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            ids,
            vec![
                (Some("Patient".into()), Some("1".into())),
                (Some("Patient".into()), Some("2".into())),
                (Some("Patient".into()), Some("3".into())),
            ]
        );
    }

    #[test]
    fn composites_and_canonical_units() {
        let p = parse_q(
            "Observation",
            &[(
                "code-value-quantity",
                "http://loinc.org|8480-6$gt5|http://unitsofmeasure.org|mg",
            )],
        );
        let Clause::AnyOf { predicates, .. } = &p.spec.clauses[0] else {
            panic!("composite clause")
        };
        let Predicate::Composite { param, components } = &predicates[0] else {
            panic!("composite predicate: {predicates:?}")
        };
        assert_eq!(param, "code-value-quantity");
        assert!(matches!(&components[0], Predicate::Token { code: Some(c), .. } if c == "8480-6"));
        // Components keep their units as written (composite rows are not canonical).
        assert!(
            matches!(&components[1], Predicate::Quantity { code: Some(c), value, .. } if c == "mg" && *value == 5.0)
        );
        let q = parse_q(
            "Observation",
            &[("value-quantity", "5|http://unitsofmeasure.org|mg")],
        );
        let Clause::AnyOf { predicates, .. } = &q.spec.clauses[0] else {
            panic!()
        };
        assert!(
            matches!(&predicates[0], Predicate::Quantity { param, code: Some(c), value, .. }
            if param == "value-quantity:canonical" && c == "g" && (*value - 0.005).abs() < 1e-12)
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(
            split_or(r"a\,b,c"),
            vec!["a,b".to_string(), "c".to_string()]
        );
        assert_eq!(split_pipe(r"s|c\|d"), Some(("s".into(), "c|d".into())));
    }
}
