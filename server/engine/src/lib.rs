//! The FHIR interactions as plain functions over a [`Store`]: create, read, vread, update, delete,
//! patch, history, search, batch/transaction, the operations (`$validate`, `$everything`, `$lastn`,
//! `$meta`) and the CapabilityStatement. No HTTP here: the `http` crate extracts
//! requests, calls these, and maps [`EngineError`] to status codes and OperationOutcomes.

mod bundle;
mod capabilities;
mod error;
mod everything;
mod health_ids;
mod history;
mod interactions;
mod lastn;
mod meta;
mod patch;
mod reindex;
mod search;

pub use bundle::{MAX_CONDITIONAL_DELETES, MAX_ENTRIES, error_outcome, error_status};
pub use capabilities::capability_statement;
pub use error::EngineError;
pub use everything::{EntryMode, EverythingPage, EverythingParams, parameters_to_pairs};
pub use history::{HistoryPage, HistoryParams};
pub use interactions::{Deleted, Engine, ValidateMode, Written};
pub use patch::PatchFormat;
pub use reindex::ReindexScope;
pub use search::{SearchResult, encode_cursor};

/// Result of an interaction.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
