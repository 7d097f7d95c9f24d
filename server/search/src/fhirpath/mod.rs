//! A FHIRPath evaluator for the subset the R4 SearchParameter expressions use, plus the basics.
//!
//! Parse once with [`Expression::parse`], evaluate many times with [`Expression::evaluate`]: the
//! result is a collection of [`Item`]s that borrow from the resource JSON (no copies).
//!
//! # Supported
//!
//! - Paths: `Patient.name.given`; a leading type name selects the focus when it is of that type
//!   (`Observation.code` on an Observation; `Resource.id` on anything; `Patient.x` on an
//!   Observation yields nothing). Arrays flatten; `null`s and primitive extensions (`_given`) are
//!   ignored. `%resource`, `%rootResource`, `%context`, `$this`, `$index`, `x[n]`, `(...)`, `{}`.
//! - Choice elements: `value` finds `valueQuantity`, `valueString`, ... and types the item from the
//!   property name (`Quantity`, `string`, `dateTime`).
//! - Types: every item reached from a resource is typed from the R4 definitions
//!   (`Observation.code` is a `CodeableConcept`, `Patient.birthDate` a `date`, backbone elements
//!   `BackboneElement`); JSON objects with a `resourceType` are that resource. `ofType(T)`,
//!   `as(T)`, `is(T)` and the `as` / `is` operators use the type hierarchy (`Age` is a `Quantity`,
//!   `code` a `string`, `Patient` a `Resource`), accept `FHIR.` / `System.` qualifiers, and let a
//!   System name match the FHIR primitives that map to it (`DateTime` matches `dateTime` and
//!   `instant`). `as` filters like `ofType` (also on several items); `is` needs a single item.
//!   Items whose type is unknown (under a resource type the definitions do not know) match only
//!   by JSON shape: a JSON boolean is a `boolean`, a number an `integer`/`decimal`, a string a
//!   `string`; an untyped object matches no type.
//! - Literals: strings (all escapes), integers, decimals (exact), `true`/`false`, `@` dates,
//!   date-times and times; constants `%ucum`, `%sct`, `%loinc`, `%vs-*`, `%ext-*`.
//! - Operators: `|` (union, duplicates removed), `=`, `!=`, `~`, `!~`, `<`, `<=`, `>`, `>=`,
//!   `in`, `contains`, `and`, `or`, `xor`, `implies` (three-valued), `&`, string `+`, Integer
//!   `+ - * div mod`, unary `-`.
//! - Functions: `where`, `select`, `repeat`, `exists`, `all`, `empty`, `count`, `first`, `last`,
//!   `tail`, `single`, `skip`, `take`, `distinct`, `isDistinct`, `union`, `combine`, `intersect`,
//!   `exclude`, `subsetOf`, `supersetOf`, `allTrue`, `anyTrue`, `allFalse`, `anyFalse`, `not`,
//!   `iif`, `startsWith`, `endsWith`, `contains`, `lower`, `upper`, `length`, `trace`,
//!   `children`, `descendants`, `hasValue`, `ofType`, `as`, `is`, `extension(url)`, `resolve()`.
//! - `resolve()` fetches nothing: on a Reference (or a reference string) it yields a pseudo-item
//!   whose type is the resource type named by `reference` (`Patient/1`, `.../Patient/1`,
//!   `Patient/1/_history/2`), else by `Reference.type`, so `where(resolve() is Patient)` works; the
//!   pseudo-item's value is the Reference and it has no children. `#id` yields the contained
//!   resource. `urn:uuid:` references resolve to nothing.
//!
//! # Parsed but evaluated to empty
//!
//! Quantity literals (`5 'mg'`, `3 days`), `$total`, `/` and decimal arithmetic, and the functions
//! `memberOf`, `subsumes`, `subsumedBy`, `conformsTo`, `htmlChecks`, `elementDefinition`,
//! `slice`, `checkModifiers`, `getValue`, `aggregate`, `matches`, `replaceMatches`, `replace`,
//! `indexOf`, `substring`, `toChars`, the `toX()` / `convertsToX()` conversions, `now`, `today`,
//! `timeOfDay`. Unknown functions and variables are parse errors.
//!
//! # Approximations
//!
//! Dates and times compare as text: `=` is textual equality, and `<`/`>` answer only when both
//! sides have the same precision and time zone (otherwise empty). `~` on strings ignores case and
//! collapses whitespace. Evaluation errors (e.g. `is` on several items) give empty, not an error.

mod compare;
mod eval;
mod lexer;
mod parser;
mod types;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use eval::Item;

/// Errors parsing a FHIRPath expression (positions are byte offsets into the text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirPathError {
    #[error("FHIRPath syntax error at {position}: {message}")]
    Syntax { position: usize, message: String },
    #[error("unknown FHIRPath function '{name}' at {position}")]
    UnknownFunction { name: String, position: usize },
    #[error("wrong number of arguments ({got}) for FHIRPath function '{name}' at {position}")]
    Arity {
        name: String,
        position: usize,
        got: usize,
    },
    #[error("unknown FHIRPath environment variable '%{name}' at {position}")]
    UnknownVariable { name: String, position: usize },
}

/// A parsed FHIRPath expression, ready to be evaluated any number of times (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct Expression {
    text: String,
    ast: parser::Expr,
}

impl Expression {
    /// Parses an expression.
    pub fn parse(text: &str) -> Result<Expression, FhirPathError> {
        Ok(Expression {
            text: text.to_string(),
            ast: parser::parse(text)?,
        })
    }

    /// The expression's source text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates the expression on a resource (the focus, `%resource` and `%context`).
    pub fn evaluate<'a>(&self, resource: &'a Value) -> Vec<Item<'a>> {
        let root = Item::resource(resource);
        let env = eval::Env {
            resource: root.clone(),
            context: root,
        };
        eval::evaluate(&self.ast, &env)
    }

    /// Evaluates the expression on an item of `resource` (e.g. a composite parameter's component).
    pub fn evaluate_on<'a>(&self, focus: &Item<'a>, resource: &'a Value) -> Vec<Item<'a>> {
        let env = eval::Env {
            resource: Item::resource(resource),
            context: focus.clone(),
        };
        eval::evaluate(&self.ast, &env)
    }
}

impl std::fmt::Display for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}
