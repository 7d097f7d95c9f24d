//! CuraNet Desktop's core, without any Tauri dependency: the FHIR client and the local cache
//! that keeps records readable when the link drops. The Tauri shell (`desktop/src-tauri`) and
//! the UI call into it; everything here is tested with `cargo test` against a real server.
//!
//! Built so far: the per-account cache (`cache`), and reads that revalidate cached copies with
//! `If-None-Match`, serve them stale when the server cannot be reached, and evict a patient's
//! data when the server says it is no longer shared (`client`). Next: SMART sign-in, the
//! outbox and sync, encryption at rest.

pub mod cache;
pub mod client;
mod error;

pub use cache::{Cache, Cached};
pub use client::{FhirClient, Freshness, Read};
pub use error::DesktopError;

/// A result of this crate.
pub type Result<T, E = DesktopError> = std::result::Result<T, E>;
