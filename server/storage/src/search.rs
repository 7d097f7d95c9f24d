//! Search over the index tables: a typed query (what the `search` crate parses from a URL) and
//! its translation to one SQL statement per page, keyset-paged, on either engine.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::Result;
use crate::sql::{self, Arg, Dialect, VERSION_COLUMNS};

mod operations;
pub use operations::{Compartment, LastN, OperationFilter};

/// How a value compares with a range, by FHIR search prefix (`eq`, `gt`, ... `ap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

/// How a string parameter matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// Starts with the normalised value (the default).
    Prefix(String),
    /// Equals the value exactly, case and accents included (`:exact`).
    Exact(String),
    /// Contains the normalised value (`:contains`).
    Contains(String),
}

/// How a uri parameter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMatch {
    /// The same URI.
    Exact,
    /// The stored URI starts with the value (`:below`).
    Below,
    /// The value starts with the stored URI (`:above`).
    Above,
}

/// One condition on a resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `_id`.
    Id(String),
    /// `_lastUpdated` against the range `[lo, hi)`.
    LastUpdated { prefix: Prefix, lo: i64, hi: i64 },
    /// A string parameter.
    String {
        param: String,
        matching: StringMatch,
    },
    /// A token parameter: `system` `None` = any system, `Some("")` = no system; `code` `None` = any code.
    Token {
        param: String,
        system: Option<String>,
        code: Option<String>,
    },
    /// A reference parameter, by target id (and type when known) or by URL.
    Reference {
        param: String,
        target_type: Option<String>,
        target_id: Option<String>,
        url: Option<String>,
    },
    /// A date parameter against the range `[lo, hi)`.
    Date {
        param: String,
        prefix: Prefix,
        lo: i64,
        hi: i64,
    },
    /// A number parameter: `value` as written, `[lo, hi)` its precision range.
    Number {
        param: String,
        prefix: Prefix,
        value: f64,
        lo: f64,
        hi: f64,
    },
    /// A quantity parameter, optionally with system and code.
    Quantity {
        param: String,
        prefix: Prefix,
        value: f64,
        lo: f64,
        hi: f64,
        system: Option<String>,
        code: Option<String>,
    },
    /// A uri parameter.
    Uri {
        param: String,
        value: String,
        matching: UriMatch,
    },
    /// A composite parameter (`code-value-quantity=loinc|8480-6$gt100`): one tuple of the
    /// parameter matches every component predicate, in order (their `param` is not used).
    Composite {
        param: String,
        components: Vec<Predicate>,
    },
    /// A chained parameter (`subject:Patient.name=x`): the reference `param` points at a resource
    /// of one of the target types for which the clause holds.
    Chain {
        param: String,
        targets: Vec<(String, Clause)>,
    },
    /// Reverse chaining (`_has:Observation:patient:code=x`): some resource of `source_type` whose
    /// reference `param` points here satisfies the clause.
    Has {
        source_type: String,
        param: String,
        clause: Box<Clause>,
    },
    /// A condition of an operation (`$everything`, `$lastn`).
    Operation(Box<OperationFilter>),
}

/// Which index table a parameter type lives in (for `:missing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexTable {
    String,
    Token,
    Reference,
    Date,
    Number,
    Quantity,
    Uri,
}

impl IndexTable {
    fn sort_column(self, descending: bool) -> (&'static str, SortKind) {
        match (self, descending) {
            (IndexTable::Date, false) => ("MIN(t.lo)", SortKind::Int),
            (IndexTable::Date, true) => ("MAX(t.hi)", SortKind::Int),
            (IndexTable::Number | IndexTable::Quantity, false) => ("MIN(t.value)", SortKind::Float),
            (IndexTable::Number | IndexTable::Quantity, true) => ("MAX(t.value)", SortKind::Float),
            (IndexTable::Token, false) => ("MIN(t.code)", SortKind::Text),
            (IndexTable::Token, true) => ("MAX(t.code)", SortKind::Text),
            (IndexTable::Reference, false) => ("MIN(t.target_id)", SortKind::Text),
            (IndexTable::Reference, true) => ("MAX(t.target_id)", SortKind::Text),
            (_, false) => ("MIN(t.value)", SortKind::Text),
            (_, true) => ("MAX(t.value)", SortKind::Text),
        }
    }

    fn name(self) -> &'static str {
        match self {
            IndexTable::String => "idx_string",
            IndexTable::Token => "idx_token",
            IndexTable::Reference => "idx_reference",
            IndexTable::Date => "idx_date",
            IndexTable::Number => "idx_number",
            IndexTable::Quantity => "idx_quantity",
            IndexTable::Uri => "idx_uri",
        }
    }
}

/// The SQL type of a sort value.
#[derive(Debug, Clone, Copy)]
enum SortKind {
    Int,
    Float,
    Text,
}

/// One search parameter's condition: alternatives joined by OR (`a,b`), possibly negated
/// (`:not`), or a `:missing` test.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// Any of the predicates holds (`negated`: none of them holds).
    AnyOf {
        predicates: Vec<Predicate>,
        negated: bool,
    },
    /// The parameter has no value (`missing: true`) or has one (`false`).
    Missing {
        table: IndexTable,
        param: String,
        missing: bool,
    },
}

/// What results can be sorted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortBy {
    /// `_lastUpdated`.
    LastUpdated,
    /// A search parameter: its smallest value ascending, its largest descending.
    Param { table: IndexTable, param: String },
}

/// One `_sort` key; results without a value sort last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub by: SortBy,
    pub descending: bool,
}

/// A sort value of the last result of a page.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

/// Where a page starts: after (or, `backward`, before) the result with these sort values and id.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub values: Vec<SortValue>,
    pub id: String,
    /// The page ends just before this result (a `previous` link) instead of starting after it.
    pub backward: bool,
}

/// An `_include` (`reverse`: `_revinclude`) of resources referenced by (or referencing) the matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub reverse: bool,
    /// The type holding the reference.
    pub source_type: String,
    /// The reference parameter (`None`: every reference parameter, `*`).
    pub param: Option<String>,
    /// Only references to this type.
    pub target_type: Option<String>,
    /// `:iterate`: also apply to what was included.
    pub iterate: bool,
}

/// Most resources a page may include, so an `_include` cannot make a response unbounded.
pub const MAX_INCLUDED: usize = 5000;

/// A typed search over one resource type.
#[derive(Debug, Clone)]
pub struct SearchSpec {
    pub resource_type: String,
    /// All must hold (repeated parameters = AND).
    pub clauses: Vec<Clause>,
    /// `_sort` keys (empty: by id, which is stable under concurrent writes).
    pub sort: Vec<SortKey>,
    pub count: u32,
    pub after: Option<Cursor>,
    /// Whether to count all matches.
    pub total: bool,
    /// `_include` and `_revinclude`.
    pub includes: Vec<Include>,
}

/// A page of results.
#[derive(Debug)]
pub struct SearchPage {
    pub resources: Vec<crate::StoredVersion>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
    /// Where the previous page ends, when there is one.
    pub previous: Option<Cursor>,
    /// The number of matches, when asked for.
    pub total: Option<u64>,
    /// Resources added by `_include` / `_revinclude` (not matches).
    pub included: Vec<crate::StoredVersion>,
    /// Whether includes were cut at [`MAX_INCLUDED`].
    pub included_truncated: bool,
}

struct Builder {
    dialect: Dialect,
    args: Vec<Arg>,
    /// Nesting depth, for unique aliases of chained and `_has` subqueries.
    depth: usize,
    /// The resource type of the clause being built (the target of `_has`).
    current_type: String,
    /// Build index-table conditions as per-candidate probes (not as the driving set).
    probe: bool,
    /// This clause drives the query: build it as a set even when it is a range.
    drives: bool,
}

impl Builder {
    fn new(dialect: Dialect, resource_type: &str) -> Self {
        Self {
            dialect,
            args: Vec::new(),
            depth: 0,
            current_type: resource_type.to_string(),
            probe: false,
            drives: false,
        }
    }

    fn arg(&mut self, a: Arg) -> String {
        self.args.push(a);
        self.dialect.ph(self.args.len())
    }

    fn text(&mut self, s: &str) -> String {
        self.arg(Arg::Text(s.to_string()))
    }

    fn range(&mut self, prefix: Prefix, lo_col: &str, hi_col: &str, lo: i64, hi: i64) -> String {
        let (l, h) = (self.arg(Arg::Int(lo)), self.arg(Arg::Int(hi)));
        match prefix {
            // `lo < h` follows from the rest; it bounds an index range scan on lo.
            Prefix::Eq => format!("({lo_col} >= {l} AND {lo_col} < {h} AND {hi_col} <= {h})"),
            Prefix::Ap => format!("({lo_col} < {h} AND {hi_col} > {l})"),
            Prefix::Ne => format!("NOT ({lo_col} >= {l} AND {hi_col} <= {h})"),
            Prefix::Gt => format!("{hi_col} > {h}"),
            Prefix::Lt => format!("{lo_col} < {l}"),
            Prefix::Ge => format!("{hi_col} > {l}"),
            Prefix::Le => format!("{lo_col} < {h}"),
            Prefix::Sa => format!("{lo_col} >= {h}"),
            Prefix::Eb => format!("{hi_col} <= {l}"),
        }
    }

    fn number(&mut self, prefix: Prefix, col: &str, value: f64, lo: f64, hi: f64) -> String {
        let v = self.arg(Arg::Float(value));
        match prefix {
            Prefix::Eq => {
                let (l, h) = (self.arg(Arg::Float(lo)), self.arg(Arg::Float(hi)));
                format!("({col} >= {l} AND {col} < {h})")
            }
            Prefix::Ne => {
                let (l, h) = (self.arg(Arg::Float(lo)), self.arg(Arg::Float(hi)));
                format!("NOT ({col} >= {l} AND {col} < {h})")
            }
            Prefix::Ap => {
                let margin = (value * 0.1).abs();
                let (l, h) = (
                    self.arg(Arg::Float(value - margin)),
                    self.arg(Arg::Float(value + margin)),
                );
                format!("({col} >= {l} AND {col} <= {h})")
            }
            Prefix::Gt | Prefix::Sa => format!("{col} > {v}"),
            Prefix::Lt | Prefix::Eb => format!("{col} < {v}"),
            Prefix::Ge => format!("{col} >= {v}"),
            Prefix::Le => format!("{col} <= {v}"),
        }
    }

    /// A string match on a normalised column (`value`) and an as-written one (`exact`).
    fn string_cond(&mut self, value: &str, exact: &str, matching: &StringMatch) -> String {
        match matching {
            StringMatch::Prefix(v) => {
                let lo = self.text(v);
                match crate::search::upper_bound(v) {
                    Some(up) => {
                        let hi = self.text(&up);
                        format!("({value} >= {lo} AND {value} < {hi})")
                    }
                    None => format!("{value} >= {lo}"),
                }
            }
            StringMatch::Exact(v) => format!("{exact} = {}", self.text(v)),
            StringMatch::Contains(v) => format!(
                "{value} LIKE {} ESCAPE '\\'",
                self.text(&format!("%{}%", like_escape(v)))
            ),
        }
    }

    /// A quantity match; `unit` is the column holding the unit as written.
    #[allow(clippy::too_many_arguments)]
    fn quantity_cond(
        &mut self,
        prefix: Prefix,
        value: f64,
        lo: f64,
        hi: f64,
        system: Option<&str>,
        code: Option<&str>,
        unit: &str,
    ) -> String {
        let mut cond = self.number(prefix, "t.value", value, lo, hi);
        if let Some(s) = system {
            cond = format!("{cond} AND t.system = {}", self.text(s));
        }
        if let Some(c) = code {
            let c1 = self.text(c);
            let c2 = self.text(c);
            cond = format!("{cond} AND (t.code = {c1} OR {unit} = {c2})");
        }
        format!("({cond})")
    }

    /// A reference match on the columns holding the target type, target id and URL.
    fn reference_cond(
        &mut self,
        columns: [&str; 3],
        target_type: Option<&str>,
        target_id: Option<&str>,
        url: Option<&str>,
    ) -> String {
        let [type_col, id_col, url_col] = columns;
        let mut conds = Vec::new();
        if let Some(id) = target_id {
            conds.push(format!("{id_col} = {}", self.text(id)));
        }
        if let Some(t) = target_type {
            conds.push(format!("{type_col} = {}", self.text(t)));
        }
        if let Some(u) = url {
            conds.push(format!("{url_col} = {}", self.text(u)));
        }
        if conds.is_empty() {
            conds.push("1 = 0".into());
        }
        format!("({})", conds.join(" AND "))
    }

    /// The condition on an `idx_composite` row (alias `t`) for one component predicate.
    fn component_cond(&mut self, p: &Predicate) -> String {
        match p {
            Predicate::Token { .. } | Predicate::Number { .. } | Predicate::Date { .. } => {
                // Same column names as their own tables.
                self.predicate("t", p).2
            }
            Predicate::Quantity {
                prefix,
                value,
                lo,
                hi,
                system,
                code,
                ..
            } => self.quantity_cond(
                *prefix,
                *value,
                *lo,
                *hi,
                system.as_deref(),
                code.as_deref(),
                "t.text",
            ),
            Predicate::String { matching, .. } => self.string_cond("t.text", "t.text", matching),
            Predicate::Reference {
                target_type,
                target_id,
                url,
                ..
            } => self.reference_cond(
                ["t.system", "t.code", "t.text"],
                target_type.as_deref(),
                target_id.as_deref(),
                url.as_deref(),
            ),
            _ => "1 = 0".into(),
        }
    }

    /// The table, parameter and row condition of a predicate on an index table.
    fn predicate(
        &mut self,
        a: &str,
        p: &Predicate,
    ) -> (Option<&'static str>, Option<String>, String) {
        match p {
            Predicate::Id(id) => (None, None, format!("{a}.id = {}", self.text(id))),
            Predicate::LastUpdated { prefix, lo, hi } => (
                None,
                None,
                self.range(
                    *prefix,
                    &format!("{a}.last_updated"),
                    &format!("({a}.last_updated + 1)"),
                    *lo,
                    *hi,
                ),
            ),
            Predicate::Chain { param, targets } => {
                // The reference points at a resource of one of the target types that matches.
                // PostgreSQL: one set of (type, id) pairs, so the planner starts from the
                // (usually few) matching targets whatever the number of types (an OR of one IN
                // per type made it scan every reference). SQLite plans the OR form well and the
                // row-value form worse.
                let mut alternatives = Vec::new();
                for (target_type, clause) in targets {
                    self.depth += 1;
                    let c = format!("c{}", self.depth);
                    let tt = self.text(target_type);
                    let tt2 = self.text(target_type);
                    let inner = self.nested_clause(&c, target_type, clause);
                    let targets = format!(
                        "FROM resources {c} WHERE {c}.resource_type = {tt2} AND {c}.deleted = FALSE AND {inner}"
                    );
                    alternatives.push(match self.dialect {
                        Dialect::Postgres => format!("SELECT {tt}, {c}.id {targets}"),
                        Dialect::Sqlite => format!(
                            "(t.target_type = {tt} AND t.target_id IN (SELECT {c}.id {targets}))"
                        ),
                    });
                }
                let cond = match self.dialect {
                    Dialect::Postgres => format!(
                        "(t.target_type, t.target_id) IN ({})",
                        alternatives.join(" UNION ALL ")
                    ),
                    Dialect::Sqlite => format!("({})", alternatives.join(" OR ")),
                };
                (Some("idx_reference"), Some(param.clone()), cond)
            }
            Predicate::Has {
                source_type,
                param,
                clause,
            } => {
                self.depth += 1;
                let h = format!("h{}", self.depth);
                let (st, p) = (self.text(source_type), self.text(param));
                let rt = self.current_type.clone();
                let target = self.text(&rt);
                let inner = self.nested_clause(&h, source_type, clause);
                (
                    None,
                    None,
                    format!(
                        "{a}.id IN (SELECT t.target_id FROM idx_reference t WHERE t.resource_type = {st} \
                     AND t.param = {p} AND t.target_type = {target} AND t.id IN (SELECT {h}.id FROM resources {h} \
                     WHERE {h}.resource_type = {st} AND {h}.deleted = FALSE AND {inner}))"
                    ),
                )
            }
            Predicate::String { param, matching } => {
                let cond = self.string_cond("t.value", "t.exact", matching);
                (Some("idx_string"), Some(param.clone()), cond)
            }
            Predicate::Token {
                param,
                system,
                code,
            } => {
                let mut conds = Vec::new();
                if let Some(c) = code {
                    conds.push(format!("t.code = {}", self.text(c)));
                }
                if let Some(s) = system {
                    conds.push(format!("t.system = {}", self.text(s)));
                }
                if conds.is_empty() {
                    conds.push("1 = 1".into());
                }
                (
                    Some("idx_token"),
                    Some(param.clone()),
                    format!("({})", conds.join(" AND ")),
                )
            }
            Predicate::Reference {
                param,
                target_type,
                target_id,
                url,
            } => {
                let cond = self.reference_cond(
                    ["t.target_type", "t.target_id", "t.url"],
                    target_type.as_deref(),
                    target_id.as_deref(),
                    url.as_deref(),
                );
                (Some("idx_reference"), Some(param.clone()), cond)
            }
            Predicate::Date {
                param,
                prefix,
                lo,
                hi,
            } => (
                Some("idx_date"),
                Some(param.clone()),
                self.range(*prefix, "t.lo", "t.hi", *lo, *hi),
            ),
            Predicate::Number {
                param,
                prefix,
                value,
                lo,
                hi,
            } => (
                Some("idx_number"),
                Some(param.clone()),
                self.number(*prefix, "t.value", *value, *lo, *hi),
            ),
            Predicate::Quantity {
                param,
                prefix,
                value,
                lo,
                hi,
                system,
                code,
            } => {
                let cond = self.quantity_cond(
                    *prefix,
                    *value,
                    *lo,
                    *hi,
                    system.as_deref(),
                    code.as_deref(),
                    "t.unit",
                );
                (Some("idx_quantity"), Some(param.clone()), cond)
            }
            Predicate::Uri {
                param,
                value,
                matching,
            } => {
                let cond = match matching {
                    UriMatch::Exact => format!("t.value = {}", self.text(value)),
                    UriMatch::Below => format!(
                        "t.value LIKE {} ESCAPE '\\'",
                        self.text(&format!("{}%", like_escape(value)))
                    ),
                    // The stored URI is a prefix of the value.
                    UriMatch::Above => {
                        let v = self.text(value);
                        format!("(t.value <> '' AND substr({v}, 1, length(t.value)) = t.value)")
                    }
                };
                (Some("idx_uri"), Some(param.clone()), cond)
            }
            Predicate::Composite { param, components } => {
                // One tuple (grp) must match at every position.
                let mut per_pos = Vec::new();
                for (pos, component) in components.iter().enumerate() {
                    let cond = self.component_cond(component);
                    per_pos.push(format!("(t.pos = {pos} AND {cond})"));
                }
                let rt = self.current_type.clone();
                let (t, p) = (self.text(&rt), self.text(param));
                (
                    None,
                    None,
                    format!(
                        "{a}.id IN (SELECT t.id FROM idx_composite t WHERE t.resource_type = {t} \
                         AND t.param = {p} AND ({}) GROUP BY t.id, t.grp HAVING COUNT(DISTINCT t.pos) = {})",
                        per_pos.join(" OR "),
                        components.len()
                    ),
                )
            }
            Predicate::Operation(filter) => (None, None, self.operation(a, filter)),
        }
    }

    /// The SQL condition on the resource row aliased `a` (of type `rt`) for one clause.
    fn clause(&mut self, a: &str, rt: &str, clause: &Clause) -> String {
        let outer_type = std::mem::replace(&mut self.current_type, rt.to_string());
        let sql = self.clause_of(a, rt, clause);
        self.current_type = outer_type;
        sql
    }

    /// A clause inside a chain or `_has`: a set of its own, never probed per candidate.
    fn nested_clause(&mut self, a: &str, rt: &str, clause: &Clause) -> String {
        let probe = std::mem::replace(&mut self.probe, false);
        let sql = self.clause(a, rt, clause);
        self.probe = probe;
        sql
    }

    fn clause_of(&mut self, a: &str, rt: &str, clause: &Clause) -> String {
        match clause {
            Clause::Missing {
                table,
                param,
                missing,
            } => {
                let (t, p) = (self.text(rt), self.text(param));
                let not = if *missing { "NOT " } else { "" };
                format!(
                    "{a}.id {not}IN (SELECT t.id FROM {} t WHERE t.resource_type = {t} AND t.param = {p})",
                    table.name()
                )
            }
            Clause::AnyOf {
                predicates,
                negated,
            } => {
                let mut on_resource = Vec::new();
                let mut on_table: Option<(&'static str, String)> = None;
                let mut table_conds = Vec::new();
                for p in predicates {
                    match self.predicate(a, p) {
                        (None, _, cond) => on_resource.push(cond),
                        (Some(table), Some(param), cond) => {
                            on_table.get_or_insert((table, param));
                            table_conds.push(cond);
                        }
                        (Some(_), None, cond) => on_resource.push(cond),
                    }
                }
                if let Some((table, param)) = on_table {
                    let p = self.text(&param);
                    let conds = table_conds.join(" OR ");
                    // Equality predicates (tokens, references, uris, exact strings) are selective:
                    // let them drive as a set. Ranges (dates, numbers, prefixes) usually are not:
                    // probe them per candidate through the owner index instead.
                    let ranged = predicates.iter().any(|p| {
                        matches!(
                            p,
                            Predicate::Date { .. }
                                | Predicate::Number { .. }
                                | Predicate::Quantity { .. }
                                | Predicate::String {
                                    matching: StringMatch::Prefix(_) | StringMatch::Contains(_),
                                    ..
                                }
                        )
                    });
                    let drives = self.drives;
                    on_resource.push(if (ranged && !drives) || self.probe {
                        // SQLite without statistics may pick a range index here; the owner index
                        // is always right for a per-candidate probe.
                        let hint = match self.dialect {
                            Dialect::Sqlite => format!(" INDEXED BY {table}_owner"),
                            Dialect::Postgres => String::new(),
                        };
                        format!(
                            "EXISTS (SELECT 1 FROM {table} t{hint} WHERE t.resource_type = {a}.resource_type \
                             AND t.id = {a}.id AND t.param = {p} AND ({conds}))"
                        )
                    } else {
                        let t = self.text(rt);
                        format!(
                            "{a}.id IN (SELECT t.id FROM {table} t WHERE t.resource_type = {t} AND t.param = {p} AND ({conds}))"
                        )
                    });
                }
                let any = format!("({})", on_resource.join(" OR "));
                if *negated { format!("NOT {any}") } else { any }
            }
        }
    }
}

/// Rows after the cursor (`backward`: before it) in the order of `keys` (nulls last), then id.
fn keyset(b: &mut Builder, keys: &[SortKey], cursor: &Cursor, i: usize) -> String {
    let values = &cursor.values;
    if i == keys.len() || i == values.len() {
        let op = if cursor.backward { "<" } else { ">" };
        return format!("q.id {op} {}", b.text(&cursor.id));
    }
    let col = format!("q.s{i}");
    let (strictly, equal) = match &values[i] {
        // Nulls sort last: every value is before a null, none after it.
        SortValue::Null if cursor.backward => {
            (format!("{col} IS NOT NULL"), format!("{col} IS NULL"))
        }
        SortValue::Null => ("1 = 0".to_string(), format!("{col} IS NULL")),
        value => {
            let v = match value {
                SortValue::Int(n) => b.arg(Arg::Int(*n)),
                SortValue::Float(f) => b.arg(Arg::Float(*f)),
                SortValue::Text(t) => b.text(t),
                SortValue::Null => unreachable!("handled above"),
            };
            let after = if keys[i].descending { "<" } else { ">" };
            let before = if keys[i].descending { ">" } else { "<" };
            (
                if cursor.backward {
                    format!("{col} {before} {v}")
                } else {
                    format!("({col} {after} {v} OR {col} IS NULL)")
                },
                format!("{col} = {v}"),
            )
        }
    };
    let rest = keyset(b, keys, cursor, i + 1);
    format!("({strictly} OR ({equal} AND {rest}))")
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The smallest string above every string starting with `prefix`.
pub(crate) fn upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// An SQL statement with its arguments.
type Statement = (String, Vec<Arg>);

/// The page query and, when a total is wanted, the count query, with their arguments.
pub(crate) fn statements(dialect: Dialect, spec: &SearchSpec) -> (Statement, Option<Statement>) {
    let mut b = Builder::new(dialect, &spec.resource_type);
    let rt = b.text(&spec.resource_type);
    let mut conds = vec![
        format!("r.resource_type = {rt}"),
        "r.deleted = FALSE".to_string(),
    ];
    // One selective clause drives the query as a set (a reference first: patient-scoped searches
    // are the common case); the others are checked per candidate through the owner indexes.
    let is_reference = |c: &Clause| {
        matches!(c, Clause::AnyOf { predicates, negated: false }
            if predicates.iter().all(|p| matches!(p, Predicate::Reference { .. })))
    };
    let is_equality = |c: &Clause| {
        matches!(c, Clause::AnyOf { predicates, negated: false }
            if predicates.iter().all(|p| matches!(p, Predicate::Reference { .. } | Predicate::Token { .. }
                | Predicate::Uri { matching: UriMatch::Exact, .. } | Predicate::String { matching: StringMatch::Exact(_), .. })))
    };
    let is_prefix = |c: &Clause| {
        matches!(c, Clause::AnyOf { predicates, negated: false }
            if predicates.iter().all(|p| matches!(p, Predicate::String { matching: StringMatch::Prefix(_), .. })))
    };
    let driver = spec
        .clauses
        .iter()
        .position(is_reference)
        .or_else(|| spec.clauses.iter().position(is_equality))
        .or_else(|| spec.clauses.iter().position(is_prefix));
    for (i, clause) in spec.clauses.iter().enumerate() {
        b.probe = driver.is_some_and(|d| d != i);
        b.drives = driver == Some(i);
        conds.push(b.clause("r", &spec.resource_type, clause));
        b.probe = false;
        b.drives = false;
    }
    let filter_args = b.args.clone();
    let filter = conds.join(" AND ");
    let count = spec.total.then(|| {
        (
            format!("SELECT COUNT(*) FROM resources r WHERE {filter}"),
            filter_args,
        )
    });
    let limit_of = |b: &mut Builder| b.arg(Arg::Int(i64::from(spec.count) + 1));
    // A backward page reads the order in reverse from its cursor; `run` turns it round again.
    let backward = spec.after.as_ref().is_some_and(|c| c.backward);
    if spec.sort.is_empty() {
        let mut page_conds = vec![filter];
        if let Some(c) = &spec.after {
            let op = if backward { "<" } else { ">" };
            page_conds.push(format!("r.id {op} {}", b.text(&c.id)));
        }
        let limit = limit_of(&mut b);
        let page = format!(
            "SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.seq = r.current_seq \
             WHERE {} ORDER BY r.id{} LIMIT {limit}",
            page_conds.join(" AND "),
            if backward { " DESC" } else { "" }
        );
        return ((page, b.args), count);
    }
    // Sorted by keys: the keys are computed in a subquery so the outer query can order and
    // page on them (results without a value last, then by id).
    let mut columns = Vec::new();
    for (i, key) in spec.sort.iter().enumerate() {
        let expr = match &key.by {
            SortBy::LastUpdated => "r.last_updated".to_string(),
            SortBy::Param { table, param } => {
                let p = b.text(param);
                let (agg, _) = table.sort_column(key.descending);
                format!(
                    "(SELECT {agg} FROM {} t WHERE t.resource_type = r.resource_type AND t.id = r.id AND t.param = {p})",
                    table.name()
                )
            }
        };
        columns.push(format!("{expr} AS s{i}"));
    }
    let mut outer = Vec::new();
    if let Some(c) = &spec.after {
        outer.push(keyset(&mut b, &spec.sort, c, 0));
    }
    let order: Vec<String> = spec
        .sort
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let (nulls, dir) = match (k.descending != backward, backward) {
                (true, false) => ("", " DESC"),
                (false, false) => ("", ""),
                (true, true) => (" DESC", " DESC"),
                (false, true) => (" DESC", ""),
            };
            format!("(q.s{i} IS NULL){nulls}, q.s{i}{dir}")
        })
        .chain(std::iter::once(
            if backward { "q.id DESC" } else { "q.id" }.to_string(),
        ))
        .collect();
    let limit = limit_of(&mut b);
    let page = format!(
        "SELECT q.* FROM (SELECT {VERSION_COLUMNS}, {} FROM resources r \
         JOIN resource_versions v ON v.seq = r.current_seq WHERE {filter}) q {} ORDER BY {} LIMIT {limit}",
        columns.join(", "),
        if outer.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", outer.join(" AND "))
        },
        order.join(", ")
    );
    ((page, b.args), count)
}

/// Runs a search on either engine: one query for the page, one for the total when asked.
pub(crate) async fn run<DB>(
    pool: &Pool<DB>,
    dialect: Dialect,
    spec: &SearchSpec,
) -> Result<SearchPage>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
{
    let ((page, args), count) = statements(dialect, spec);
    let mut rows = sql::fetch(pool, page, args).await?;
    let more = rows.len() > spec.count as usize;
    rows.truncate(spec.count as usize);
    let backward = spec.after.as_ref().is_some_and(|c| c.backward);
    if backward {
        rows.reverse();
    }
    let resources = rows
        .iter()
        .map(sql::row_to_version)
        .collect::<Result<Vec<_>>>()?;
    let cursor_at = |row: &DB::Row, id: &str, backward: bool| -> Result<Cursor> {
        let mut values = Vec::new();
        for (i, key) in spec.sort.iter().enumerate() {
            let column = 8 + i;
            let kind = match &key.by {
                SortBy::LastUpdated => SortKind::Int,
                SortBy::Param { table, .. } => table.sort_column(key.descending).1,
            };
            values.push(match kind {
                SortKind::Int => row
                    .try_get::<Option<i64>, _>(column)?
                    .map_or(SortValue::Null, SortValue::Int),
                SortKind::Float => row
                    .try_get::<Option<f64>, _>(column)?
                    .map_or(SortValue::Null, SortValue::Float),
                SortKind::Text => row
                    .try_get::<Option<String>, _>(column)?
                    .map_or(SortValue::Null, SortValue::Text),
            });
        }
        Ok(Cursor {
            values,
            id: id.to_string(),
            backward,
        })
    };
    // Forward pages have a next page when the query found more, and a previous one when they
    // did not start at the beginning; backward pages the other way round.
    let (has_next, has_previous) = if backward {
        (true, more)
    } else {
        (more, spec.after.is_some())
    };
    let next = match (has_next, rows.last(), resources.last()) {
        (true, Some(row), Some(last)) => Some(cursor_at(row, &last.id, false)?),
        _ => None,
    };
    let previous = match (has_previous, rows.first(), resources.first()) {
        (true, Some(row), Some(first)) => Some(cursor_at(row, &first.id, true)?),
        _ => None,
    };
    let total = match count {
        Some((text, args)) => {
            let rows = sql::fetch(pool, text, args).await?;
            let n: i64 = rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
            Some(n as u64)
        }
        None => None,
    };
    let (included, included_truncated) = if spec.includes.is_empty() {
        (Vec::new(), false)
    } else {
        include(pool, dialect, spec, &resources).await?
    };
    Ok(SearchPage {
        resources,
        next,
        previous,
        total,
        included,
        included_truncated,
    })
}

/// The resources that the includes add to a page (each at most once, matches excluded).
async fn include<DB>(
    pool: &Pool<DB>,
    dialect: Dialect,
    spec: &SearchSpec,
    matches: &[crate::StoredVersion],
) -> Result<(Vec<crate::StoredVersion>, bool)>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
{
    let mut seen: std::collections::HashSet<(String, String)> = matches
        .iter()
        .map(|v| (v.resource_type.clone(), v.id.clone()))
        .collect();
    let mut included = Vec::new();
    let mut frontier: Vec<crate::StoredVersion> = matches.to_vec();
    for round in 0..4 {
        let mut found = Vec::new();
        for inc in spec.includes.iter().filter(|i| round == 0 || i.iterate) {
            for (rt, id) in include_targets(pool, dialect, inc, &frontier).await? {
                if seen.insert((rt.clone(), id.clone())) {
                    found.push((rt, id));
                }
            }
        }
        if found.is_empty() {
            break;
        }
        let mut fetched = Vec::new();
        for (rt, ids) in group_by_type(found) {
            for chunk in ids.chunks(500) {
                let mut b = Builder::new(dialect, &rt);
                let t = b.text(&rt);
                let list: Vec<String> = chunk.iter().map(|id| b.text(id)).collect();
                let q = format!(
                    "SELECT {VERSION_COLUMNS} FROM resources r JOIN resource_versions v ON v.seq = r.current_seq \
                     WHERE r.resource_type = {t} AND r.deleted = FALSE AND r.id IN ({})",
                    list.join(", ")
                );
                fetched.extend(sql::fetch_versions(pool, q, b.args).await?);
            }
        }
        if included.len() + fetched.len() > MAX_INCLUDED {
            fetched.truncate(MAX_INCLUDED - included.len());
            included.extend(fetched);
            return Ok((included, true));
        }
        frontier = fetched.clone();
        included.extend(fetched);
    }
    Ok((included, false))
}

fn group_by_type(pairs: Vec<(String, String)>) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for (rt, id) in pairs {
        match groups.iter_mut().find(|(t, _)| *t == rt) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((rt, vec![id])),
        }
    }
    groups
}

/// The (type, id) pairs one include adds for the given resources.
async fn include_targets<DB>(
    pool: &Pool<DB>,
    dialect: Dialect,
    inc: &Include,
    from: &[crate::StoredVersion],
) -> Result<Vec<(String, String)>>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
{
    let mut out = Vec::new();
    let pairs = from
        .iter()
        .map(|v| (v.resource_type.clone(), v.id.clone()))
        .collect();
    for (rt, ids) in group_by_type(pairs) {
        // _include reads references held by the matches; _revinclude finds references to them.
        if !inc.reverse && rt != inc.source_type {
            continue;
        }
        for chunk in ids.chunks(500) {
            let mut b = Builder::new(dialect, &rt);
            let mut conds = Vec::new();
            let list: Vec<String> = chunk.iter().map(|id| b.text(id)).collect();
            let select = if inc.reverse {
                let (st, t) = (b.text(&inc.source_type), b.text(&rt));
                conds.push(format!(
                    "t.resource_type = {st} AND t.target_type = {t} AND t.target_id IN ({})",
                    list.join(", ")
                ));
                "t.resource_type, t.id"
            } else {
                let st = b.text(&inc.source_type);
                conds.push(format!(
                    "t.resource_type = {st} AND t.id IN ({}) AND t.target_id <> ''",
                    list.join(", ")
                ));
                "t.target_type, t.target_id"
            };
            if let Some(p) = &inc.param {
                conds.push(format!("t.param = {}", b.text(p)));
            }
            if let Some(tt) = &inc.target_type
                && !inc.reverse
            {
                conds.push(format!("t.target_type = {}", b.text(tt)));
            }
            let q = format!(
                "SELECT DISTINCT {select} FROM idx_reference t WHERE {}",
                conds.join(" AND ")
            );
            for row in sql::fetch(pool, q, b.args).await? {
                out.push((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?));
            }
        }
    }
    Ok(out)
}
