//! Authentication and authorization without HTTP or SQL: the SMART scope grammar and what a set
//! of scopes permits, password hashing, TOTP, PKCE, signing keys, access and ID tokens, and the
//! verification of client assertions. [`Authority`] ties them to the state the storage keeps
//! (clients, keys, assertion `jti`s; accounts, codes and refresh tokens later) through the
//! `AuthStore` trait; the `http` crate serves it.

pub mod access;
pub mod accounts;
pub mod app_grants;
pub mod audit;
pub mod authority;
pub mod authorize;
pub mod client_assertion;
pub mod client_jwks;
pub mod compartment;
pub mod consent;
pub mod consent_workflow;
pub mod discovery;
pub mod error;
pub mod keys;
pub mod password;
pub mod pkce;
pub mod registration;
pub mod roles;
pub mod scope;
pub mod sharing;
pub mod token;
pub mod totp;

pub use authority::{Authority, OAuthError, TokenRequest};
pub use error::AuthError;
