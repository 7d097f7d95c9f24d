//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::app::AppState;

/// `/healthz`: the process answers.
pub async fn alive() -> impl IntoResponse {
    (StatusCode::OK, "ok")
}

/// `/readyz`: the database answers too.
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.engine.store().ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}
