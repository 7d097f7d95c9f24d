//! Search: [`fhirpath`] evaluates the R4 SearchParameter expressions, [`index`] turns their
//! results into index rows on every write, [`query`] parses search URLs into typed searches that
//! the storage runs over those rows.

pub mod fhirpath;
pub mod index;
pub mod normalize;
pub mod query;
pub mod ucum;

pub use fhirpath::{Expression, FhirPathError, Item};
pub use index::Indexer;
pub use query::{ParsedSearch, QueryError};
