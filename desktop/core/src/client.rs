//! The FHIR client of the desktop app: reads go through the local cache. A cached copy is
//! revalidated with `If-None-Match` (a 304 keeps it), served stale when the server cannot be
//! reached, and evicted — with everything of its patient — when the server says it no longer
//! exists or is no longer shared (403, 404, 410: consent revoked or expired).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use serde_json::Value;

use crate::cache::{Cache, patient_of};
use crate::{DesktopError, Result};

const FHIR_JSON: &str = "application/fhir+json";

/// How fresh a read's answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Just sent by the server.
    Fresh,
    /// The cached copy, confirmed unchanged by the server (304).
    Confirmed,
    /// The cached copy, the server being unreachable; last confirmed at this Unix time.
    Stale { since: i64 },
}

/// A resource read, and how fresh it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub resource: Value,
    pub freshness: Freshness,
}

/// A FHIR server, through the local cache.
#[derive(Clone)]
pub struct FhirClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    cache: Cache,
}

impl FhirClient {
    /// A client of the FHIR base `base`, sending `token` (if any) as a bearer token.
    pub fn new(base: &str, token: Option<String>, cache: Cache) -> Result<FhirClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| DesktopError::Protocol(e.to_string()))?;
        Ok(FhirClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            cache,
        })
    }

    /// The local cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The cached copy at once (for the first paint, before [`FhirClient::read`] revalidates).
    pub async fn cached(&self, resource_type: &str, id: &str) -> Result<Option<Value>> {
        Ok(self.cache.get(resource_type, id).await?.map(|c| c.resource))
    }

    /// Reads `resource_type/id`: from the server, revalidating the cached copy, or from the
    /// cache when the server cannot be reached.
    pub async fn read(&self, resource_type: &str, id: &str) -> Result<Read> {
        let reference = format!("{resource_type}/{id}");
        let cached = self.cache.get(resource_type, id).await?;
        let mut request = self
            .http
            .get(format!("{}/{reference}", self.base))
            .header(ACCEPT, FHIR_JSON);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(etag) = cached.as_ref().and_then(|c| c.etag.as_deref()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = match request.send().await {
            Ok(r) => r,
            // Unreachable (or timed out): what we have, marked stale.
            Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                tracing::info!(%reference, error = %e, "offline: serving the cached copy");
                return match cached {
                    Some(c) => Ok(Read {
                        resource: c.resource,
                        freshness: Freshness::Stale {
                            since: c.fetched_at,
                        },
                    }),
                    None => Err(DesktopError::Offline(reference)),
                };
            }
            Err(e) => return Err(DesktopError::Protocol(e.to_string())),
        };
        let status = response.status();
        match status {
            StatusCode::NOT_MODIFIED => match cached {
                Some(c) => {
                    self.cache.confirmed(resource_type, id).await?;
                    Ok(Read {
                        resource: c.resource,
                        freshness: Freshness::Confirmed,
                    })
                }
                None => Err(DesktopError::Protocol(format!(
                    "{reference}: 304 without a cached copy"
                ))),
            },
            s if s.is_success() => {
                let etag = response
                    .headers()
                    .get(ETAG)
                    .and_then(|e| e.to_str().ok())
                    .map(str::to_string);
                let resource: Value = response
                    .json()
                    .await
                    .map_err(|e| DesktopError::Protocol(e.to_string()))?;
                self.cache.put(&resource, etag.as_deref()).await?;
                Ok(Read {
                    resource,
                    freshness: Freshness::Fresh,
                })
            }
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::GONE => {
                // Gone or no longer shared: nothing of it may stay on this machine.
                self.cache.remove(resource_type, id).await?;
                let patient = match cached.as_ref().and_then(|c| patient_of(&c.resource)) {
                    Some(p) => Some(p),
                    None => (resource_type == "Patient").then(|| id.to_string()),
                };
                if let Some(patient) = patient {
                    let evicted = self.cache.evict_patient(&patient).await?;
                    tracing::info!(%reference, %patient, evicted, "no longer available: the patient's cached data is evicted");
                }
                Err(DesktopError::NotAvailable(reference))
            }
            s => {
                let text = response.text().await.unwrap_or_default();
                Err(DesktopError::Refused {
                    status: s.as_u16(),
                    message: text.chars().take(500).collect(),
                })
            }
        }
    }
}
