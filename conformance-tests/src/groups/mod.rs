//! The groups of checks.

mod audit;
mod bundles;
mod capabilities;
mod consent;
mod crud;
mod emergency;
mod errors;
mod fixtures;
mod health_id;
mod history;
mod operations;
mod patch;
mod search;
mod smart_access;
mod smart_backend;
mod smart_discovery;
mod smart_launch;
mod smart_tokens;
mod validation;
mod versioning;

/// Every case, group by group.
pub(crate) fn all() -> Vec<crate::Case> {
    [
        capabilities::cases(),
        crud::cases(),
        versioning::cases(),
        patch::cases(),
        history::cases(),
        validation::cases(),
        errors::cases(),
        health_id::cases(),
        search::cases(),
        operations::cases(),
        bundles::cases(),
        smart_discovery::cases(),
        smart_launch::cases(),
        smart_access::cases(),
        smart_backend::cases(),
        smart_tokens::cases(),
        consent::cases(),
        audit::cases(),
        emergency::cases(),
    ]
    .concat()
}
