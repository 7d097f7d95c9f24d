//! `Observation/$lastn`: for each subject and each code (`system|code` of `Observation.code`),
//! the `max` most recent observations by the `date` parameter (`effective[x]`), computed over the
//! index tables by the ordinary search with a ranking condition (see
//! [`curanet_storage::LastN`]).

use curanet_storage::{Clause, LastN, OperationFilter, Predicate};

use crate::search::SearchResult;
use crate::{Engine, EngineError, Result};

/// The types `$lastn` is defined on.
const LASTN_TYPES: &[&str] = &["Observation"];

/// Largest `max` a client may ask for.
pub const MAX_LASTN: u32 = 1000;

impl Engine {
    /// `$lastn` on `resource_type` with the URL's parameters: `max` (default 1), the search
    /// parameters of the type (`patient`, `subject`, `category`, `code`, ...) selecting the
    /// candidates, and the result parameters of a search (`_count`, `_sort`, `_include`, ...;
    /// newest first by default). Under `strict` handling, parameters that cannot be applied are
    /// an error (400).
    pub async fn lastn(
        &self,
        resource_type: &str,
        pairs: &[(String, String)],
        base: &str,
        strict: bool,
    ) -> Result<SearchResult> {
        self.check_type(resource_type)?;
        if !LASTN_TYPES.contains(&resource_type) {
            return Err(EngineError::NotFound(format!(
                "operation $lastn on {resource_type}"
            )));
        }
        let mut max = 1;
        let mut max_text = None;
        let mut rest = Vec::new();
        for (k, v) in pairs {
            if k == "max" {
                max = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LASTN).contains(n))
                    .ok_or_else(|| {
                        EngineError::BadRequest(format!(
                            "max must be a whole number from 1 to {MAX_LASTN}, not '{v}'"
                        ))
                    })?;
                max_text = Some(v.clone());
            } else {
                rest.push((k.clone(), v.clone()));
            }
        }
        if !rest.iter().any(|(k, _)| k == "_sort") {
            rest.push(("_sort".into(), "-date".into()));
        }
        let mut parsed =
            curanet_search::query::parse(self.definitions(), resource_type, &rest, base)
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
        // `code=a,b` both selects the candidates and limits the groups to those codes (an
        // observation with several codings is ranked in each group of a code it has).
        let mut codes = Vec::new();
        for clause in &parsed.spec.clauses {
            if let Clause::AnyOf {
                predicates,
                negated: false,
            } = clause
            {
                for p in predicates {
                    if let Predicate::Token {
                        param,
                        system,
                        code,
                    } = p
                        && param == "code"
                    {
                        codes.push((system.clone(), code.clone()));
                    }
                }
            }
        }
        let candidates = std::mem::take(&mut parsed.spec.clauses);
        parsed.spec.clauses = vec![Clause::AnyOf {
            predicates: vec![Predicate::Operation(Box::new(OperationFilter::LastN(
                LastN {
                    max,
                    subject_param: "subject".into(),
                    code_param: "code".into(),
                    date_param: "date".into(),
                    codes,
                    clauses: candidates,
                },
            )))],
            negated: false,
        }];
        if let Some(m) = max_text {
            parsed.applied.insert(0, ("max".into(), m));
        }
        let page = self.store().search(&parsed.spec).await?;
        Ok(SearchResult::new(page, parsed))
    }
}
