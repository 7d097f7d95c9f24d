//! The search index rows of a resource version, as the storage writes them (one table per
//! search-parameter type), and the hook that extracts them inside the write transaction.

use serde_json::{Value, json};

/// A `string` parameter value: normalised for matching, and as written for `:exact`.
#[derive(Debug, Clone, PartialEq)]
pub struct StringEntry {
    pub param: String,
    pub value: String,
    pub exact: String,
}

/// A `token` parameter value (`system` is empty when the value has none).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEntry {
    pub param: String,
    pub system: String,
    pub code: String,
}

/// A `reference` parameter value.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceEntry {
    pub param: String,
    pub target_type: String,
    pub target_id: String,
    pub url: String,
}

/// A `date` parameter value: the range `[lo, hi)` of microseconds it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct DateEntry {
    pub param: String,
    pub lo: i64,
    pub hi: i64,
}

/// A `number` parameter value.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberEntry {
    pub param: String,
    pub value: f64,
}

/// A `quantity` parameter value.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityEntry {
    pub param: String,
    pub value: f64,
    pub system: String,
    pub code: String,
    pub unit: String,
}

/// A `uri` parameter value.
#[derive(Debug, Clone, PartialEq)]
pub struct UriEntry {
    pub param: String,
    pub value: String,
}

/// One component value of a composite parameter (`code-value-quantity`...): rows sharing `group`
/// form one tuple; `pos` is the component's position. Columns by component type: token
/// (system, code), quantity (value, system, code, text = unit), number (value), date (lo, hi),
/// string (text, normalised), reference (system = target type, code = target id, text = URL).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompositeEntry {
    pub param: String,
    pub group: i64,
    pub pos: i64,
    pub system: Option<String>,
    pub code: Option<String>,
    pub value: Option<f64>,
    pub lo: Option<i64>,
    pub hi: Option<i64>,
    pub text: Option<String>,
}

/// Every index row of one resource version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexRows {
    pub strings: Vec<StringEntry>,
    pub tokens: Vec<TokenEntry>,
    pub references: Vec<ReferenceEntry>,
    pub dates: Vec<DateEntry>,
    pub numbers: Vec<NumberEntry>,
    pub quantities: Vec<QuantityEntry>,
    pub uris: Vec<UriEntry>,
    pub composites: Vec<CompositeEntry>,
}

/// Extracts the index rows of a resource; called by the store inside the write transaction,
/// after the resource is final (e.g. after the Health ID was added).
pub trait Indexing: Send + Sync + std::fmt::Debug {
    /// The rows for `resource` of type `resource_type`.
    fn rows(&self, resource_type: &str, resource: &Value) -> IndexRows;
}

/// The index tables, with their columns after `(resource_type, id, param)`.
pub(crate) const TABLES: [(&str, &[&str]); 8] = [
    ("idx_string", &["value", "exact"]),
    ("idx_token", &["system", "code"]),
    ("idx_reference", &["target_type", "target_id", "url"]),
    ("idx_date", &["lo", "hi"]),
    ("idx_number", &["value"]),
    ("idx_quantity", &["value", "system", "code", "unit"]),
    ("idx_uri", &["value"]),
    (
        "idx_composite",
        &["grp", "pos", "system", "code", "value", "lo", "hi", "text"],
    ),
];

impl IndexRows {
    /// Each table's rows as one JSON array of arrays (`[param, col1, col2, ...]`), in the order of
    /// [`TABLES`]; `None` for a table without rows. One bound JSON value inserts all rows of a
    /// table in one statement on either engine.
    pub(crate) fn as_json(&self) -> [Option<Value>; 8] {
        fn arr<T>(rows: &[T], f: impl Fn(&T) -> Value) -> Option<Value> {
            (!rows.is_empty()).then(|| Value::Array(rows.iter().map(f).collect()))
        }
        [
            arr(&self.strings, |r| json!([r.param, r.value, r.exact])),
            arr(&self.tokens, |r| json!([r.param, r.system, r.code])),
            arr(&self.references, |r| {
                json!([r.param, r.target_type, r.target_id, r.url])
            }),
            arr(&self.dates, |r| json!([r.param, r.lo, r.hi])),
            arr(&self.numbers, |r| json!([r.param, r.value])),
            arr(&self.quantities, |r| {
                json!([r.param, r.value, r.system, r.code, r.unit])
            }),
            arr(&self.uris, |r| json!([r.param, r.value])),
            arr(&self.composites, |r| {
                json!([
                    r.param, r.group, r.pos, r.system, r.code, r.value, r.lo, r.hi, r.text
                ])
            }),
        ]
    }

    /// Only the rows of one parameter.
    pub fn only(&self, param: &str) -> IndexRows {
        fn keep<T: Clone>(rows: &[T], f: impl Fn(&T) -> bool) -> Vec<T> {
            rows.iter().filter(|r| f(r)).cloned().collect()
        }
        IndexRows {
            strings: keep(&self.strings, |r| r.param == param),
            tokens: keep(&self.tokens, |r| r.param == param),
            references: keep(&self.references, |r| r.param == param),
            dates: keep(&self.dates, |r| r.param == param),
            numbers: keep(&self.numbers, |r| r.param == param),
            quantities: keep(&self.quantities, |r| r.param == param),
            uris: keep(&self.uris, |r| r.param == param),
            composites: keep(&self.composites, |r| r.param == param),
        }
    }
}
