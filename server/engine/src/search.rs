//! The search interaction: parse the parameters, run the typed search, report what was not applied.
//! Type-level search runs one typed search; system-level search (`GET /fhir?_type=...`) runs one
//! per type and pages through the types in order.

use curanet_fhir::subset::Subset;
pub use curanet_search::ParsedSearch;
pub use curanet_search::query::encode_cursor;
use curanet_storage::{SearchPage, StoredVersion};

use crate::{Engine, EngineError, Result};

/// A page of search results, how the query was read, and the cursors of the paging links.
#[derive(Debug)]
pub struct SearchResult {
    pub page: SearchPage,
    pub parsed: ParsedSearch,
    /// The `_cursor` of the `next` link.
    pub next_cursor: Option<String>,
    /// The `_cursor` of the `previous` link.
    pub previous_cursor: Option<String>,
}

impl SearchResult {
    /// A type-level result: the cursors come from the page.
    pub fn new(page: SearchPage, parsed: ParsedSearch) -> Self {
        Self {
            next_cursor: page.next.as_ref().map(encode_cursor),
            previous_cursor: page.previous.as_ref().map(encode_cursor),
            page,
            parsed,
        }
    }
}

/// Parameters that a system-level search handles itself.
const SYSTEM_PARAMS: &[&str] = &["_type", "_cursor"];

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
        let parsed = self.parse_search(resource_type, pairs, base)?;
        refuse_ignored(&parsed, strict)?;
        let mut page = self.store().search(&parsed.spec).await?;
        self.apply_subset(&mut page, &parsed);
        Ok(SearchResult::new(page, parsed))
    }

    /// `_summary` / `_elements` on a read or vread: cuts the version's resource down to what the
    /// URL asks for (`_summary=count` and `false` change nothing).
    pub fn subset_read(&self, v: &mut StoredVersion, pairs: &[(String, String)]) -> Result<()> {
        let subset = Subset::requested(pairs)
            .map_err(|reason| EngineError::BadRequest(format!("_summary: {reason}")))?;
        if let Some(subset) = subset {
            self.cut(v, &subset);
        }
        Ok(())
    }

    /// `_summary` / `_elements`: cuts every resource of the page down to what was asked for.
    fn apply_subset(&self, page: &mut SearchPage, parsed: &ParsedSearch) {
        if let Some(subset) = &parsed.subset {
            for v in page.resources.iter_mut().chain(page.included.iter_mut()) {
                self.cut(v, subset);
            }
        }
    }

    /// Replaces a version's stored JSON by its subset (tombstones have none).
    fn cut(&self, v: &mut StoredVersion, subset: &Subset) {
        if let Some(mut resource) = v.resource() {
            subset.apply(self.definitions(), &mut resource);
            v.content = Some(resource.to_string());
        }
    }

    fn parse_search(
        &self,
        resource_type: &str,
        pairs: &[(String, String)],
        base: &str,
    ) -> Result<ParsedSearch> {
        curanet_search::query::parse(self.definitions(), resource_type, pairs, base)
            .map_err(|e| EngineError::BadRequest(format!("invalid search parameter {e}")))
    }

    /// System-level search over the types in `_type` (all types when absent). A parameter that
    /// cannot be applied to one of the types is applied to none (and reported), so every type is
    /// filtered alike; `_include`s apply to the types they start from. Results come type by type
    /// (in `_type` order), by id within a type; `_sort` needs a single type.
    pub async fn search_system(
        &self,
        pairs: &[(String, String)],
        base: &str,
        strict: bool,
    ) -> Result<SearchResult> {
        let defs = self.definitions().clone();
        let mut types: Vec<String> = Vec::new();
        for (name, value) in pairs.iter().filter(|(n, _)| n == "_type") {
            for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                self.check_type(t)?;
                if !types.iter().any(|x| x == t) {
                    types.push(t.to_string());
                }
            }
            if types.is_empty() {
                return Err(EngineError::BadRequest(format!("{name} needs a value")));
            }
        }
        if types.is_empty() {
            types = defs.resource_types().to_vec();
        }
        let cursor = pairs
            .iter()
            .find(|(n, _)| n == "_cursor")
            .map(|(_, v)| v.clone());
        let mut common: Vec<(String, String)> = pairs
            .iter()
            .filter(|(n, _)| !SYSTEM_PARAMS.contains(&n.as_str()))
            .cloned()
            .collect();
        // Parameters that some type cannot apply are dropped for all and reported once.
        let mut ignored: Vec<(String, String)> = Vec::new();
        if types.len() > 1 && common.iter().any(|(n, _)| n == "_sort") {
            ignored.push((
                "_sort".into(),
                "a system-level search over several types is ordered by type and id".into(),
            ));
        }
        for t in &types {
            let parsed = self.parse_search(t, &common, base)?;
            for (name, reason) in parsed.ignored {
                let include = name.starts_with("_include") || name.starts_with("_revinclude");
                if !include && !ignored.iter().any(|(n, _)| *n == name) {
                    ignored.push((name, reason));
                }
            }
        }
        common.retain(|(n, _)| !ignored.iter().any(|(i, _)| i == n));
        let mut first = self.parse_search(&types[0], &common, base)?;
        first.ignored = ignored;
        if pairs.iter().any(|(n, _)| n == "_type") {
            first.applied.insert(0, ("_type".into(), types.join(",")));
        }
        refuse_ignored(&first, strict)?;
        let count = first.spec.count;

        // Where this page starts: `Type:cursor` (or `Type:` for the start of a type).
        let (start_type, type_cursor) = match &cursor {
            Some(c) => {
                let (t, rest) = c.split_once(':').ok_or_else(|| {
                    EngineError::BadRequest("_cursor: invalid paging cursor".into())
                })?;
                let index = types.iter().position(|x| x == t).ok_or_else(|| {
                    EngineError::BadRequest("_cursor: invalid paging cursor".into())
                })?;
                (index, (!rest.is_empty()).then(|| rest.to_string()))
            }
            None => (0, None),
        };
        let mut resources = Vec::new();
        let mut included = Vec::new();
        let mut included_truncated = false;
        let mut total: Option<u64> = first.spec.total.then_some(0);
        let mut next_cursor = None;
        for (i, t) in types.iter().enumerate() {
            let mut type_pairs = common.clone();
            if i == start_type
                && let Some(c) = &type_cursor
            {
                type_pairs.push(("_cursor".into(), c.clone()));
            }
            let mut parsed = self.parse_search(t, &type_pairs, base)?;
            parsed
                .spec
                .includes
                .retain(|inc| inc.reverse || inc.source_type == *t);
            let remaining = count.saturating_sub(resources.len() as u32);
            let wanted = i >= start_type && next_cursor.is_none();
            if !wanted {
                // Before the page's first type, or after it is full: only the count matters.
                if let Some(n) = total.as_mut() {
                    parsed.spec.count = 0;
                    parsed.spec.after = None;
                    parsed.spec.includes.clear();
                    *n += self.store().search(&parsed.spec).await?.total.unwrap_or(0);
                }
                continue;
            }
            parsed.spec.count = remaining;
            if i != start_type {
                parsed.spec.after = None;
            }
            let page = self.store().search(&parsed.spec).await?;
            if let Some(n) = total.as_mut() {
                *n += page.total.unwrap_or(0);
            }
            resources.extend(page.resources);
            included.extend(page.included);
            included_truncated |= page.included_truncated;
            if let Some(next) = &page.next {
                next_cursor = Some(format!("{t}:{}", encode_cursor(next)));
            } else if resources.len() as u32 >= count && count > 0 {
                // Full at the end of this type: the next page starts at the next type with data.
                for later in &types[i + 1..] {
                    let mut probe = self.parse_search(later, &common, base)?;
                    probe.spec.count = 1;
                    probe.spec.total = false;
                    probe.spec.includes.clear();
                    if !self.store().search(&probe.spec).await?.resources.is_empty() {
                        next_cursor = Some(format!("{later}:"));
                        break;
                    }
                }
                if next_cursor.is_none() {
                    // Nothing follows: stop counting too.
                    next_cursor = Some(String::new());
                }
            }
        }
        let next_cursor = next_cursor.filter(|c| !c.is_empty());
        let mut page = SearchPage {
            resources,
            next: None,
            previous: None,
            total,
            included,
            included_truncated,
        };
        self.apply_subset(&mut page, &first);
        Ok(SearchResult {
            page,
            parsed: first,
            next_cursor,
            previous_cursor: None,
        })
    }
}

/// Under `strict` handling, parameters that cannot be applied are a 400 that names them.
fn refuse_ignored(parsed: &ParsedSearch, strict: bool) -> Result<()> {
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
    Ok(())
}
