//! CuraNet Desktop's core, without any Tauri dependency: the FHIR client and the local cache
//! that keeps records readable when the link drops. The Tauri shell (`desktop/src-tauri`) and
//! the UI call into it; everything here is tested with `cargo test` against a real server.
//!
//! Built so far: the per-account cache (`cache`); reads that revalidate cached copies with
//! `If-None-Match`, serve them stale when the server cannot be reached, and evict a patient's
//! data when the server says it is no longer shared (`client`); writes queued offline and
//! replayed in order with `If-Match`, conflicts kept for the user (`outbox`, `client::sync`).
//! SMART sign-in with PKCE through the system browser and a loopback redirect (`session`).
//! Next: the keyring, encryption at rest, background sync of the worklist.

pub mod cache;
pub mod client;
mod error;
pub mod outbox;
pub mod session;

// The hospital and pharmacy screens: plain `async fn`s over a `FhirClient` that return the
// contract's view models (`/work/notes/desktop-contract.md`); `model` holds the FHIR shapes.
pub mod appointments;
pub mod chart;
pub mod consents;
pub mod encounters;
pub mod model;
pub mod patients;
pub mod pharmacy;
pub mod prescriptions;
pub mod search;
pub mod vitals;

pub use cache::{Cache, Cached};
pub use client::{
    FhirClient, Freshness, Progress, Read, Resolution, SyncReport, WorklistSync, Written,
};
pub use error::DesktopError;
pub use outbox::{Method, Outbox, Pending};
pub use session::{SignIn, Tokens};

/// A result of this crate.
pub type Result<T, E = DesktopError> = std::result::Result<T, E>;
