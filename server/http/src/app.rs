//! The router and the state every handler shares.

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use curanet_auth::Authority;
use curanet_engine::Engine;

use crate::access;
use crate::handlers::{
    authorize, consent, discovery, fallback, health, history, metadata, oauth, operations, patch,
    resources, search, validate,
};

/// What handlers share, behind one `Arc`: every layer and extractor clones the state for each
/// request, so a clone must be one reference count, not one per field (measured: cloning and
/// dropping the fields one by one cost a fifth of a read's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state around `shared`.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The engine, the authorization server and the server's settings.
pub struct Shared {
    pub engine: Engine,
    /// The configured public FHIR base URL, if any (else derived from the Host header).
    pub base_url: Option<Arc<str>>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The browser origins registered on OAuth clients (CORS).
    pub origins: crate::cors::Origins,
    /// The authorization server (keys, tokens, introspection).
    pub authority: Arc<Authority>,
    /// Whether `/fhir` needs an access token (`--require-auth`).
    pub require_auth: bool,
    /// Whether every interaction is recorded as an AuditEvent (`--audit`).
    pub audit_enabled: bool,
    /// First-party accounts (`/api/auth`).
    pub accounts: Arc<curanet_auth::accounts::Accounts>,
    /// Emergency share links (`/api/emergency-links`, `/emergency/{token}`).
    pub emergency: Arc<curanet_auth::sharing::ShareLinks>,
    /// The audit trail's recorder (every `/fhir` interaction).
    pub audit: crate::audit::Recorder,
    /// The patients' consents, as clinicians' requests consult them.
    pub consents: Arc<crate::consents::ConsentRegistry>,
    /// Notifications to patients about their consents.
    pub notifier: Arc<crate::notifications::Notifier>,
    /// Who may claim emergency access (`--break-glass-roles`), and for how long.
    pub break_glass: curanet_auth::consent_workflow::BreakGlassPolicy,
}

/// The whole HTTP API: `/fhir/...`, the discovery documents, `/oauth/...`, `/healthz`, `/readyz`.
pub fn router(state: AppState) -> Router {
    let fhir = Router::new()
        .route("/", post(resources::bundle).get(search::system_get))
        .route("/_search", post(search::system_post))
        .route("/metadata", get(metadata::capabilities))
        .route(
            "/.well-known/smart-configuration",
            get(discovery::smart_configuration),
        )
        .route("/_history", get(history::system))
        .route(
            "/$meta",
            get(operations::meta_system).post(operations::meta_system),
        )
        .route(
            "/{rtype}",
            post(resources::create)
                .get(search::get)
                .put(resources::conditional_update)
                .delete(resources::conditional_delete)
                .patch(patch::conditional_patch),
        )
        .route("/{rtype}/_search", post(search::post))
        .route("/{rtype}/_history", get(history::type_level))
        .route("/{rtype}/$validate", post(validate::type_level))
        .route(
            "/{rtype}/$everything",
            get(operations::everything_type).post(operations::everything_type),
        )
        .route("/{rtype}/$lastn", get(operations::lastn))
        .route(
            "/{rtype}/$meta",
            get(operations::meta_type).post(operations::meta_type),
        )
        .route(
            "/{rtype}/{id}",
            get(resources::read)
                .put(resources::update)
                .delete(resources::delete)
                .patch(patch::patch),
        )
        .route(
            "/{rtype}/{id}/$validate",
            get(validate::instance).post(validate::instance),
        )
        .route(
            "/{rtype}/{id}/$everything",
            get(operations::everything_instance).post(operations::everything_instance),
        )
        .route(
            "/{rtype}/{id}/$meta",
            get(operations::meta_instance).post(operations::meta_instance),
        )
        .route("/{rtype}/{id}/$meta-add", post(operations::meta_add))
        .route("/{rtype}/{id}/$meta-delete", post(operations::meta_delete))
        .route(
            "/{rtype}/{id}/$request-consent",
            post(consent::request_consent),
        )
        .route("/{rtype}/{id}/$break-glass", post(consent::break_glass))
        .route("/{rtype}/{id}/$approve", post(consent::approve))
        .route("/{rtype}/{id}/$reject", post(consent::reject_consent))
        .route("/{rtype}/{id}/$revoke", post(consent::revoke_consent))
        .route("/{rtype}/{id}/_history", get(history::instance))
        .route("/{rtype}/{id}/_history/{vid}", get(resources::vread))
        .method_not_allowed_fallback(fallback::method_not_allowed);
    let router = Router::new()
        .nest("/fhir", fhir)
        // Some clients post Bundles to the base with a trailing slash.
        .route("/fhir/", post(resources::bundle).get(search::system_get))
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/oauth/jwks", get(discovery::jwks))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/oauth/revoke", post(oauth::revoke))
        .route("/oauth/register", post(oauth::register))
        .route(
            "/oauth/authorize",
            get(authorize::authorize).post(authorize::authorize),
        )
        .route(
            "/oauth/manage",
            get(authorize::manage).post(authorize::manage),
        )
        .route("/oauth/smart-style.json", get(oauth::smart_style))
        .route("/api/launch", post(oauth::launch))
        .nest("/api/auth", crate::handlers::accounts::router())
        .merge(crate::handlers::emergency::router())
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .fallback(fallback::not_found)
        .layer(axum::middleware::from_fn(crate::audit::append_only_guard))
        .layer(from_fn_with_state(state.clone(), access::require_token));
    let router = if state.audit_enabled {
        router.layer(crate::audit::RecordLayer::new(state.clone()))
    } else {
        router
    };
    router
        .layer(from_fn_with_state(state.clone(), crate::cors::cors))
        .with_state(state)
}
