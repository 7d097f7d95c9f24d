//! The history interactions (instance, type and system level): `_since`, `_at`, `_count` and
//! keyset paging.

use curanet_fhir::datetime::{parse_date_time, parse_instant};
use curanet_storage::{HistoryQuery, HistoryScope, StoredVersion};

use crate::{Engine, EngineError, Result};

/// Default page size of a history Bundle.
pub const DEFAULT_COUNT: u32 = 50;
/// Largest page size a client may ask for.
pub const MAX_COUNT: u32 = 1000;

/// The history parameters a client sent.
#[derive(Debug, Clone, Default)]
pub struct HistoryParams {
    pub since: Option<String>,
    pub at: Option<String>,
    pub count: Option<u32>,
    /// The paging cursor from a `next` link.
    pub cursor: Option<i64>,
}

impl HistoryParams {
    /// Reads the parameters from URL query pairs; unknown ones are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut p = HistoryParams::default();
        for (k, v) in pairs {
            match k {
                "_since" => p.since = Some(v.to_string()),
                "_at" => p.at = Some(v.to_string()),
                "_count" => {
                    p.count = Some(v.parse().map_err(|_| {
                        EngineError::BadRequest(format!("_count must be a whole number, not '{v}'"))
                    })?)
                }
                "_cursor" => {
                    p.cursor = Some(v.parse().map_err(|_| {
                        EngineError::BadRequest(format!("invalid paging cursor '{v}'"))
                    })?)
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// The query pairs that reproduce these parameters (for paging links), with another cursor.
    pub fn to_pairs(&self, cursor: Option<i64>) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if let Some(s) = &self.since {
            pairs.push(("_since".into(), s.clone()));
        }
        if let Some(a) = &self.at {
            pairs.push(("_at".into(), a.clone()));
        }
        pairs.push(("_count".into(), self.page_size().to_string()));
        if let Some(c) = cursor {
            pairs.push(("_cursor".into(), c.to_string()));
        }
        pairs
    }

    fn page_size(&self) -> u32 {
        self.count.unwrap_or(DEFAULT_COUNT).clamp(1, MAX_COUNT)
    }
}

/// One page of history, newest first.
#[derive(Debug)]
pub struct HistoryPage {
    pub versions: Vec<StoredVersion>,
    /// The cursor for the next page, when there is one.
    pub next_cursor: Option<i64>,
}

impl Engine {
    /// A page of history for the scope (an unknown instance is 404; a type must be known).
    pub async fn history(
        &self,
        scope: HistoryScope,
        params: &HistoryParams,
    ) -> Result<HistoryPage> {
        match &scope {
            HistoryScope::System => {}
            HistoryScope::Type(t) => self.check_type(t)?,
            HistoryScope::Instance(t, id) => {
                self.check_type(t)?;
                if self.store().read(t, id).await?.is_none() {
                    return Err(EngineError::NotFound(format!("{t}/{id}")));
                }
            }
        }
        let since = match &params.since {
            Some(s) => Some(parse_instant(s).ok_or_else(|| {
                EngineError::BadRequest(format!(
                    "_since must be an instant (e.g. 2024-01-01T00:00:00Z), not '{s}'"
                ))
            })?),
            None => None,
        };
        let at = match &params.at {
            Some(a) => {
                let p = parse_date_time(a).ok_or_else(|| {
                    EngineError::BadRequest(format!("_at must be a date or dateTime, not '{a}'"))
                })?;
                Some((p.start, p.end))
            }
            None => None,
        };
        let count = params.page_size();
        let query = HistoryQuery {
            scope,
            since,
            at,
            before: params.cursor,
            count,
        };
        let mut versions = self.store().history(&query).await?;
        let next_cursor = if versions.len() > count as usize {
            versions.truncate(count as usize);
            versions.last().map(|v| v.seq)
        } else {
            None
        };
        Ok(HistoryPage {
            versions,
            next_cursor,
        })
    }
}
