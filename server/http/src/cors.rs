//! CORS for browser apps (SMART App Launch: any origin on the discovery documents and the
//! CapabilityStatement; the origins registered on some OAuth client on the token endpoint and
//! the FHIR API).
//!
//! - **Public** (`/fhir/metadata`, `/fhir/.well-known/*`, `/.well-known/*`, `/oauth/jwks`):
//!   `Access-Control-Allow-Origin: *` on every answer.
//! - **Registered origins only** (`/fhir` and below, `/oauth/token`, `/oauth/introspect`,
//!   `/oauth/revoke`): `Access-Control-Allow-Origin: <origin>` when the request's `Origin` is in
//!   some client's `allowed_origins`, never otherwise; always `Vary: Origin`. The registered
//!   origins are read from storage at most every [`ORIGINS_TTL`].
//! - **Preflights** (`OPTIONS` with `Access-Control-Request-Method`) on either kind are answered
//!   here, 204 without a token, with the methods, the request headers a FHIR client sends
//!   (Authorization, Content-Type, If-Match, Prefer, ...) and a max-age. A preflight from an
//!   unregistered origin gets the 204 without any allow header, which the browser refuses.
//!
//! The layer sits outside the resource-server check, so 401 and 403 answers carry the headers
//! too and the browser app can read them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use curanet_storage::AuthStore;

use crate::app::AppState;

/// How long the registered origins are reused before storage is asked again.
pub const ORIGINS_TTL: Duration = Duration::from_secs(30);

/// How long a browser may reuse a preflight answer (seconds).
const MAX_AGE: &str = "600";

const PUBLIC_METHODS: &str = "GET, HEAD, OPTIONS";
const API_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Accept, If-Match, If-None-Match, \
     If-None-Exist, If-Modified-Since, Prefer, X-Request-Id";
const EXPOSED_HEADERS: &str =
    "Location, Content-Location, ETag, Last-Modified, X-Request-Id, WWW-Authenticate";

/// The browser origins registered on OAuth clients, cached for [`ORIGINS_TTL`]. Cloned with
/// the app state on every request, so the cache sits behind one `Arc` (a moka cache's own
/// clone touches several reference counts and channels).
#[derive(Clone)]
pub struct Origins {
    store: Arc<dyn AuthStore>,
    cache: Arc<moka::sync::Cache<(), Arc<HashSet<String>>>>,
}

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origins").finish_non_exhaustive()
    }
}

impl Origins {
    /// Origins read from `store`'s OAuth clients.
    pub fn new(store: Arc<dyn AuthStore>) -> Self {
        Origins {
            store,
            cache: Arc::new(
                moka::sync::Cache::builder()
                    .max_capacity(1)
                    .time_to_live(ORIGINS_TTL)
                    .build(),
            ),
        }
    }

    /// Whether some client registered `origin`.
    pub async fn allows(&self, origin: &str) -> bool {
        let origins = match self.cache.get(&()) {
            Some(o) => o,
            None => match self.store.list_clients().await {
                Ok(clients) => {
                    let set: HashSet<String> = clients
                        .iter()
                        .flat_map(|c| c.allowed_origins.iter())
                        .map(|o| normalise(o))
                        .collect();
                    let set = Arc::new(set);
                    self.cache.insert((), set.clone());
                    set
                }
                Err(e) => {
                    // No origin is allowed while storage does not answer; not cached.
                    tracing::warn!(error = %e, "could not read the registered CORS origins");
                    return false;
                }
            },
        };
        origins.contains(&normalise(origin))
    }
}

/// Scheme and host compare case-insensitively; a trailing slash is not part of an origin.
fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// Which CORS policy a path has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// Any origin.
    Public,
    /// Registered origins only.
    Registered,
    /// No CORS headers (probes, the authorize pages, ...).
    None,
}

fn policy(path: &str) -> Policy {
    match path {
        "/fhir/metadata" | "/oauth/jwks" => Policy::Public,
        p if p.starts_with("/.well-known/") || p.starts_with("/fhir/.well-known/") => {
            Policy::Public
        }
        "/oauth/token" | "/oauth/introspect" | "/oauth/revoke" => Policy::Registered,
        p if p == "/fhir" || p.starts_with("/fhir/") => Policy::Registered,
        _ => Policy::None,
    }
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &'static str) {
    headers.insert(name, HeaderValue::from_static(value));
}

/// The middleware (the outermost layer of the router).
pub async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let policy = policy(request.uri().path());
    if policy == Policy::None {
        return next.run(request).await;
    }
    let origin = request.headers().get(header::ORIGIN).cloned();
    let allowed = match (policy, &origin) {
        (Policy::Public, _) => Some(HeaderValue::from_static("*")),
        (_, Some(o)) => match o.to_str() {
            Ok(text) if state.origins.allows(text).await => Some(o.clone()),
            _ => None,
        },
        _ => None,
    };
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if allowed.is_some() {
            let h = r.headers_mut();
            let methods = if policy == Policy::Public {
                PUBLIC_METHODS
            } else {
                API_METHODS
            };
            set(h, header::ACCESS_CONTROL_ALLOW_METHODS, methods);
            set(h, header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS);
            set(h, header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
        }
        r
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    if policy == Policy::Registered {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if let Some(value) = allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if !preflight {
            set(h, header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED_HEADERS);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_have_their_policy() {
        let cases = [
            ("/fhir/metadata", Policy::Public),
            ("/fhir/.well-known/smart-configuration", Policy::Public),
            ("/.well-known/openid-configuration", Policy::Public),
            ("/oauth/jwks", Policy::Public),
            ("/oauth/token", Policy::Registered),
            ("/oauth/introspect", Policy::Registered),
            ("/oauth/revoke", Policy::Registered),
            ("/fhir", Policy::Registered),
            ("/fhir/Patient/1", Policy::Registered),
            ("/fhirx", Policy::None),
            ("/oauth/authorize", Policy::None),
            ("/healthz", Policy::None),
        ];
        for (path, expected) in cases {
            assert_eq!(policy(path), expected, "{path}");
        }
        assert_eq!(normalise("HTTPS://App.Example/"), "https://app.example");
    }
}
