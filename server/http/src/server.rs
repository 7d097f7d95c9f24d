//! Start-up and shutdown: load the definitions, open the store, serve until told to stop, then
//! let in-flight requests finish and flush the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, Request, Response};
use curanet_auth::Authority;
use curanet_auth::keys::KeyEncryptionKey;
use curanet_engine::Engine;
use curanet_fhir::Definitions;
use tokio::sync::oneshot;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::app::{AppState, Shared, router};
use crate::config::Config;

/// Any error that stops the server.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A server running in the background (tests, embedding).
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// What the handlers share (for tests and embedding: the engine, the authority, accounts).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), BoxError>>,
}

impl RunningServer {
    /// The FHIR base URL, e.g. `http://127.0.0.1:41234/fhir`.
    pub fn base_url(&self) -> String {
        format!("http://{}/fhir", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, closes the store.
    pub async fn stop(mut self) -> Result<(), BoxError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await?
    }
}

/// Builds the service with its middleware: request ids, tracing with latency, panics → 500.
fn app(state: AppState) -> axum::Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<_>| {
            let id = req
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-")
                .to_string();
            // An emergency link's path is its bearer secret: logged as `/emergency/{token}`.
            let path = crate::handlers::emergency::loggable_path(req.uri().path());
            tracing::info_span!("request", method = %req.method(), uri = %path, request_id = %id)
        })
        .on_request(())
        .on_response(|res: &Response<_>, latency: Duration, _span: &Span| {
            tracing::info!(
                status = res.status().as_u16(),
                latency_us = latency.as_micros() as u64,
                "served"
            );
        })
        .on_failure(());
    router(state)
        .layer(CatchPanicLayer::new())
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Loads everything and binds; the returned server runs until [`RunningServer::stop`].
pub async fn start(config: Config) -> Result<RunningServer, BoxError> {
    let started = std::time::Instant::now();
    let defs = tokio::task::spawn_blocking(Definitions::shared).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        types = defs.resource_types().len(),
        "FHIR definitions loaded"
    );
    crate::accounts::check_production(&config)?;
    if !config.audit {
        tracing::warn!("--audit=false: FHIR interactions are NOT recorded in the audit trail");
    }
    if !config.require_auth {
        tracing::warn!(
            "--require-auth=false: the FHIR API is served WITHOUT access tokens. Use this for \
             local development only."
        );
    }
    let kek = key_encryption_key(&config)?;
    let url = config.storage.resolved_database_url();
    let (store, auth_store, audit_chain) =
        curanet_storage::open_with_audit(&url, &config.storage.store_options()).await?;
    tracing::info!(database = %crate::cli::redact(&url), backend = ?store.backend(), "store open");
    let origins = crate::cors::Origins::new(auth_store.clone());
    let engine = Engine::new(store.clone(), defs);
    engine.install_conformance_resources().await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let endpoints = config.endpoints(addr);
    tracing::info!(issuer = %endpoints.issuer, "authorization server");
    let authority =
        Arc::new(Authority::start(auth_store.clone(), endpoints, kek.clone(), unix_now()).await?);
    if config.desktop_client {
        ensure_desktop_client(&authority).await?;
    }
    // One pepper for passwords and share-link passcodes (read once: it may warn).
    let pepper = crate::accounts::pepper(&config.accounts)?;
    let emergency = crate::emergency::service(pepper.clone(), auth_store.clone());
    let accounts = crate::accounts::start(
        &config,
        pepper,
        auth_store,
        authority.clone(),
        kek,
        engine.clone(),
        unix_now(),
    )
    .await?;
    let maintenance = tokio::spawn(maintain_keys(authority.clone()));
    let audit = crate::audit::Recorder::start(audit_chain);
    let consents = crate::consents::ConsentRegistry::watching(&engine);
    let break_glass = curanet_auth::consent_workflow::BreakGlassPolicy::new(
        &config.consents.break_glass_roles,
        config.consents.break_glass_max_minutes,
    )
    .map_err(|e| format!("--break-glass-roles / --break-glass-max-minutes: {e}"))?;
    let notifier = Arc::new(crate::notifications::Notifier::new(
        engine.clone(),
        authority.store(),
        crate::accounts::mailer(&config.accounts)?,
        authority.endpoints().fhir_base.clone(),
    ));
    let sweeper = (config.consents.consent_sweep_seconds > 0).then(|| {
        crate::consent_sweeper::Sweeper::start(
            engine.clone(),
            notifier.clone(),
            authority.endpoints().fhir_base.clone(),
            Duration::from_secs(config.consents.consent_sweep_seconds),
        )
    });
    let state = AppState::new(Shared {
        consents,
        engine,
        base_url: config
            .base_url
            .as_deref()
            .map(|b| Arc::from(b.trim_end_matches('/'))),
        max_body_bytes: config.max_body_bytes,
        origins,
        authority,
        require_auth: config.require_auth,
        audit_enabled: config.audit,
        accounts,
        emergency,
        audit: audit.clone(),
        notifier,
        break_glass,
    });
    tracing::info!(%addr, elapsed_ms = started.elapsed().as_millis() as u64, "listening; FHIR base at http://{addr}/fhir");
    let (tx, rx) = oneshot::channel::<()>();
    let shared = state.clone();
    let task = tokio::spawn(async move {
        // The peer address is the client IP of sign-in throttling and security events.
        let service = app(state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await?;
        maintenance.abort();
        if let Some(sweeper) = sweeper {
            sweeper.stop().await;
        }
        // Every request has finished: its audit record is queued; write them all.
        audit.close().await;
        store.close().await;
        tracing::info!("stopped");
        Ok(())
    });
    Ok(RunningServer {
        addr,
        state: shared,
        shutdown: Some(tx),
        task,
    })
}

/// How often the signing keys are checked for rotation and expiry.
const KEY_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);

/// The key-encryption key from the configuration, or an ephemeral one (with a loud warning).
fn key_encryption_key(config: &Config) -> Result<KeyEncryptionKey, BoxError> {
    match config.key_encryption_key.as_deref() {
        Some(text) => KeyEncryptionKey::from_base64(text)
            .map_err(|e| format!("CURANET_KEY_ENCRYPTION_KEY: {e}").into()),
        None => {
            tracing::warn!(
                "CURANET_KEY_ENCRYPTION_KEY is not set: using an ephemeral key-encryption key. \
                 Token-signing keys will NOT survive a restart (every issued token becomes \
                 invalid, keys stored by earlier runs are skipped). Set it to 32 random bytes \
                 in base64, e.g. `openssl rand -base64 32`."
            );
            Ok(KeyEncryptionKey::from_base64(
                &KeyEncryptionKey::generate_base64(),
            )?)
        }
    }
}

/// Registers CuraNet Desktop unless it is registered (by an earlier start, another instance,
/// or an admin who registered it differently, which is kept).
async fn ensure_desktop_client(authority: &Authority) -> Result<(), BoxError> {
    use curanet_auth::registration::{DESKTOP_CLIENT_ID, desktop_client, register};
    if authority.client(DESKTOP_CLIENT_ID).await?.is_some() {
        return Ok(());
    }
    let registered = register(desktop_client(), None, unix_now())?;
    if let Err(e) = authority.register_client(registered.client).await {
        // Another instance starting beside this one may have registered it first.
        if authority.client(DESKTOP_CLIENT_ID).await?.is_none() {
            return Err(e.into());
        }
    }
    tracing::info!(
        client_id = DESKTOP_CLIENT_ID,
        "registered CuraNet Desktop's client"
    );
    Ok(())
}

/// Rotates and prunes signing keys periodically; a failure is logged and retried next time.
async fn maintain_keys(authority: Arc<Authority>) {
    let mut interval = tokio::time::interval(KEY_MAINTENANCE_INTERVAL);
    interval.tick().await; // the first tick is immediate; start-up already did the check
    loop {
        interval.tick().await;
        if let Err(e) = authority.maintain_keys(unix_now()).await {
            tracing::error!(error = %e, "signing key maintenance failed");
        }
    }
}

/// The current time in Unix seconds.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), BoxError> {
    let server = start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.stop().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
