//! Search support. For now: [`fhirpath`], the evaluator that extracts search index values from
//! resources with the R4 SearchParameter expressions (parse each expression once, evaluate it on
//! every write).

pub mod fhirpath;
pub mod index;
pub mod normalize;

pub use fhirpath::{Expression, FhirPathError, Item};
pub use index::Indexer;
