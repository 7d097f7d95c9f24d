//! The search interaction: parse the parameters, run the typed search, report what was not applied.

pub use curanet_search::ParsedSearch;
pub use curanet_search::query::encode_cursor;
use curanet_storage::SearchPage;

use crate::{Engine, EngineError, Result};

/// A page of search results and how the query was read.
#[derive(Debug)]
pub struct SearchResult {
    pub page: SearchPage,
    pub parsed: ParsedSearch,
}

impl Engine {
    /// Searches `resource_type` with the URL's parameters. Under `strict` handling, parameters that
    /// cannot be applied are an error (400); otherwise they are reported in the result.
    pub async fn search(
        &self,
        resource_type: &str,
        pairs: &[(String, String)],
        base: &str,
        strict: bool,
    ) -> Result<SearchResult> {
        self.check_type(resource_type)?;
        let parsed =
            curanet_search::query::parse(self.definitions(), resource_type, pairs, base)
                .map_err(|e| EngineError::BadRequest(format!("invalid search parameter {e}")))?;
        if strict && !parsed.ignored.is_empty() {
            let names: Vec<String> = parsed
                .ignored
                .iter()
                .map(|(name, reason)| format!("{name} ({reason})"))
                .collect();
            return Err(EngineError::BadRequest(format!(
                "cannot apply: {}",
                names.join("; ")
            )));
        }
        let page = self.store().search(&parsed.spec).await?;
        Ok(SearchResult { page, parsed })
    }
}
