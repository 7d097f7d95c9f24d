//! The JWKS of clients registered by URL (SMART asymmetric client authentication): fetched over
//! HTTPS (plain HTTP only on loopback, for development and tests), never following redirects,
//! at most 64 KiB, and cached no longer than the response's `Cache-Control: max-age` allows.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::AuthError;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Longest time a fetched JWKS is trusted, whatever its headers say.
const MAX_CACHE_SECONDS: u64 = 3600;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches and caches client JWKS documents.
pub struct JwksFetcher {
    http: reqwest::Client,
    cache: moka::sync::Cache<String, (Value, Instant)>,
}

impl std::fmt::Debug for JwksFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksFetcher").finish_non_exhaustive()
    }
}

impl Default for JwksFetcher {
    fn default() -> Self {
        JwksFetcher::new()
    }
}

impl JwksFetcher {
    /// A fetcher with an empty cache.
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .expect("an HTTP client with the default TLS settings");
        JwksFetcher {
            http,
            cache: moka::sync::Cache::builder().max_capacity(1000).build(),
        }
    }

    /// The JWKS at `url`: cached while its `max-age` lasts, else fetched.
    pub async fn get(&self, url: &str) -> Result<Value, AuthError> {
        if let Some((jwks, until)) = self.cache.get(url) {
            if Instant::now() < until {
                return Ok(jwks);
            }
            self.cache.invalidate(url);
        }
        self.fetch(url).await
    }

    /// Fetches the JWKS at `url` now (e.g. when a `kid` is missing from the cached copy).
    pub async fn fetch(&self, url: &str) -> Result<Value, AuthError> {
        let failed = |why: String| AuthError::ClientKeys(format!("JWKS at {url}: {why}"));
        if !crate::registration::is_https_or_loopback(url) {
            return Err(failed(
                "only https URLs (http on loopback) are fetched".into(),
            ));
        }
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status())));
        }
        let max_age = response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .and_then(cacheable_seconds);
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(failed("larger than 64 KiB".into()));
        }
        let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(failed("larger than 64 KiB".into()));
        }
        let jwks: Value = serde_json::from_slice(&bytes).map_err(|e| failed(e.to_string()))?;
        if !jwks.get("keys").is_some_and(Value::is_array) {
            return Err(failed("not a JWK Set (no keys array)".into()));
        }
        if let Some(seconds) = max_age.filter(|s| *s > 0) {
            let until = Instant::now() + Duration::from_secs(seconds.min(MAX_CACHE_SECONDS));
            self.cache.insert(url.to_string(), (jwks.clone(), until));
        }
        Ok(jwks)
    }
}

/// How long a response with this `Cache-Control` may be kept: `max-age` seconds, none when it
/// says `no-store`, `no-cache` or gives no `max-age`.
fn cacheable_seconds(header: &str) -> Option<u64> {
    let directives: Vec<String> = header
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives
        .iter()
        .any(|d| d == "no-store" || d == "no-cache" || d == "private")
    {
        return None;
    }
    directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|s| s.trim_matches('"').parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_only_what_cache_control_allows() {
        assert_eq!(cacheable_seconds("public, max-age=300"), Some(300));
        assert_eq!(cacheable_seconds("max-age=\"60\""), Some(60));
        assert_eq!(cacheable_seconds("no-store"), None);
        assert_eq!(cacheable_seconds("max-age=300, no-cache"), None);
        assert_eq!(cacheable_seconds("public"), None);
    }

    #[test]
    fn fetches_https_or_loopback_http_only() {
        use crate::registration::is_https_or_loopback as fetchable;
        assert!(fetchable("https://app.example/jwks.json"));
        assert!(fetchable("http://127.0.0.1:8123/jwks.json"));
        assert!(!fetchable("http://app.example/jwks.json"));
        assert!(!fetchable("file:///etc/passwd"));
    }
}
