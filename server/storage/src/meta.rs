//! The tags, security labels and profiles in use (`$meta`), read from the search index: every
//! live resource has `_tag` and `_security` token rows and `_profile` uri rows, and deletes remove
//! them, so one distinct scan of those rows answers without reading any resource.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::Result;
use crate::model::MetaSummary;
use crate::sql::{self, Arg, Dialect};

/// The distinct tags, security labels and profiles of live resources of `resource_types`.
pub(crate) async fn summary<DB>(
    pool: &Pool<DB>,
    dialect: Dialect,
    resource_types: &[&str],
) -> Result<MetaSummary>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
{
    let mut summary = MetaSummary::default();
    if resource_types.is_empty() {
        return Ok(summary);
    }
    // An IN list over the leading (resource_type, param) columns of the value indexes: one short
    // range scan per type instead of a scan of the whole table.
    let types: Vec<String> = (1..=resource_types.len()).map(|n| dialect.ph(n)).collect();
    let types = types.join(", ");
    let query = format!(
        "SELECT param, system, code FROM idx_token \
         WHERE resource_type IN ({types}) AND param IN ('_tag', '_security') \
         UNION \
         SELECT param, '', value FROM idx_uri \
         WHERE resource_type IN ({types}) AND param = '_profile' \
         ORDER BY 1, 2, 3"
    );
    let args = resource_types
        .iter()
        .map(|t| Arg::Text((*t).to_string()))
        .collect();
    for row in sql::fetch(pool, query, args).await? {
        let (param, system, code): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        match param.as_str() {
            "_tag" => summary.tags.push((system, code)),
            "_security" => summary.security.push((system, code)),
            _ => summary.profiles.push(code),
        }
    }
    Ok(summary)
}
