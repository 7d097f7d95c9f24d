//! CuraNet Desktop's core, without any Tauri dependency: the FHIR client and the local cache
//! that keeps records readable when the link drops. The Tauri shell (`desktop/src-tauri`) and
//! the UI call into it; everything here is tested with `cargo test` against a real server.
//!
//! The shell talks to the [`Desktop`] facade (`desktop`): sign-in and sign-out, the status the
//! window shows (`status`), sync, conflicts. Beneath it: the per-account cache, encrypted at
//! rest (`cache`); reads that revalidate cached copies with `If-None-Match`, serve them stale
//! when the server cannot be reached, and evict a patient's data when the server says it is no
//! longer shared (`client`); writes queued offline and replayed in order with `If-Match`,
//! conflicts kept for the user (`outbox`, `client::sync`); SMART sign-in with PKCE through the
//! system browser and a loopback redirect, with silent renewal (`session`); the tokens and
//! cache keys in the OS keyring or a sealed file (`secrets`).

pub mod cache;
pub mod client;
pub mod desktop;
mod error;
pub mod outbox;
pub mod secrets;
pub mod session;
pub mod status;

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
pub use desktop::{Conflict, Desktop, Options, SignInStarted};
pub use error::DesktopError;
pub use outbox::{Method, Outbox, Pending};
pub use secrets::{Backend, SecretKey, SecretStore};
pub use session::{Session, SignIn, Tokens};
pub use status::{Mode, State, Status, StatusTracker, SyncProgress, User};

/// A result of this crate.
pub type Result<T, E = DesktopError> = std::result::Result<T, E>;
