//! Searches and operations for the clinical screens: a search's matches (and `_include`d
//! resources) go into the local cache as they arrive, so that what a screen listed stays
//! readable offline; operations (`$request-consent`) are sent at once and never queued, since
//! they only mean something when the server answers.
//!
//! A search needs the server: offline it is [`DesktopError::Offline`], and the screens that
//! must work offline (the chart) read the cache instead.

use reqwest::StatusCode;
use serde_json::Value;

use crate::client::next_link;
use crate::{DesktopError, FhirClient, Result};

/// How many pages of a search are followed at most (a screen lists, it does not export).
const MAX_PAGES: usize = 10;

/// What a search found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// The matches (`search.mode` match), in the server's order.
    pub matches: Vec<Value>,
    /// The resources `_include`d with them.
    pub included: Vec<Value>,
}

impl Found {
    /// An included (or matched) resource by type and id.
    pub fn resource(&self, resource_type: &str, id: &str) -> Option<&Value> {
        self.included
            .iter()
            .chain(&self.matches)
            .find(|r| r["resourceType"] == resource_type && r["id"] == id)
    }
}

/// Whether the server sent only part of the resource (`_elements`, `_summary`: the
/// `SUBSETTED` tag), as it does for a patient lookup without consent.
pub fn subsetted(resource: &Value) -> bool {
    resource["meta"]["tag"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|t| t["code"] == "SUBSETTED"))
}

impl FhirClient {
    /// Searches `resource_type` with `params` (following `next` links, up to ten pages) and
    /// caches what it finds. A partial copy (`SUBSETTED`) is cached only where nothing of the
    /// resource is cached yet, and without an ETag, so that it never stands in for the full
    /// resource: the next read fetches the whole.
    pub async fn search(&self, resource_type: &str, params: &[(&str, &str)]) -> Result<Found> {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let mut next = Some(format!("{resource_type}?{query}"));
        let mut found = Found::default();
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            let Some(response) = self.exchange(reqwest::Method::GET, &url, None).await? else {
                return Err(DesktopError::Offline(format!(
                    "a search of {resource_type}"
                )));
            };
            if !response.status().is_success() {
                return Err(FhirClient::refusal(response).await);
            }
            let bundle: Value = response
                .json()
                .await
                .map_err(|e| DesktopError::Protocol(e.to_string()))?;
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                let resource = &entry["resource"];
                if !resource.is_object() || resource["resourceType"] == "OperationOutcome" {
                    continue;
                }
                self.keep(resource).await?;
                if entry["search"]["mode"] == "include" {
                    found.included.push(resource.clone());
                } else {
                    found.matches.push(resource.clone());
                }
            }
            if pages < MAX_PAGES {
                next = next_link(&bundle);
            }
        }
        Ok(found)
    }

    /// Caches a resource a search or an operation sent (see [`FhirClient::search`]).
    async fn keep(&self, resource: &Value) -> Result<()> {
        let (Some(ty), Some(id)) = (resource["resourceType"].as_str(), resource["id"].as_str())
        else {
            return Ok(());
        };
        if subsetted(resource) {
            if self.cache().get(ty, id).await?.is_none() {
                self.cache().put(resource, None).await?;
            }
            return Ok(());
        }
        let etag = resource["meta"]["versionId"]
            .as_str()
            .map(|v| format!("W/\"{v}\""));
        self.cache().put(resource, etag.as_deref()).await
    }

    /// Invokes the operation at `path` (`Patient/x/$request-consent`) with a `Parameters`
    /// body; the resource it answers with is cached and returned. Never queued: offline it is
    /// [`DesktopError::Offline`].
    pub async fn operation(&self, path: &str, parameters: &Value) -> Result<Value> {
        let Some(response) = self
            .exchange(reqwest::Method::POST, path, Some(parameters))
            .await?
        else {
            return Err(DesktopError::Offline(path.to_string()));
        };
        match response.status() {
            s if s.is_success() => {
                let resource: Value = response
                    .json()
                    .await
                    .map_err(|e| DesktopError::Protocol(e.to_string()))?;
                self.keep(&resource).await?;
                Ok(resource)
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                Err(DesktopError::NotAvailable(path.to_string()))
            }
            _ => Err(FhirClient::refusal(response).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_lookups_partial_answer_is_recognised() {
        assert!(subsetted(&json!({"meta": {"tag": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
        ]}})));
        assert!(!subsetted(&json!({"meta": {"versionId": "1"}})));
    }
}
