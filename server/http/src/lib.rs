//! CuraNet's HTTP server: the FHIR REST API on axum, content negotiation, the mapping of errors to
//! OperationOutcomes, the CLI, configuration, start-up and graceful shutdown.

pub mod access;
pub mod accounts;
pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod consent_sweeper;
pub mod consents;
mod cors;
pub mod emergency;
mod error;
mod fhir_headers;
mod handlers;
mod negotiation;
pub mod notifications;
mod pages;
pub mod server;
pub mod testing;

pub use config::Config;
pub use server::{RunningServer, start};
