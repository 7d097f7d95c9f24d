//! The statements of a write transaction, once for both engines.

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::model::{StoredVersion, UniqueKey};
use crate::sql::{self, Arg, Dialect};
use crate::write::{Current, WriteTx};
use crate::{IndexRows, SearchSpec};
use crate::{Result, StoreError};

/// An open transaction (or savepoint) on a connection of either engine.
pub(crate) struct SqlTx<'c, DB: Database> {
    pub conn: &'c mut DB::Connection,
    pub dialect: Dialect,
}

fn text(s: &str) -> Arg {
    Arg::Text(s.to_string())
}

#[async_trait::async_trait]
impl<DB> WriteTx for SqlTx<'_, DB>
where
    DB: Database,
    for<'x> &'x mut DB::Connection: Executor<'x, Database = DB>,
    <DB as Database>::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
{
    async fn current(&mut self, resource_type: &str, id: &str) -> Result<Option<Current>> {
        let query = self.dialect.select_current();
        let rows = sql::fetch(&mut *self.conn, query, vec![text(resource_type), text(id)]).await?;
        rows.first()
            .map(|r| {
                Ok(Current {
                    version: r.try_get(0)?,
                    last_updated: r.try_get(1)?,
                    deleted: r.try_get(2)?,
                })
            })
            .transpose()
    }

    async fn version(
        &mut self,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredVersion>> {
        let (query, args) = sql::version_query(self.dialect, resource_type, id, version);
        let rows = sql::fetch(&mut *self.conn, query, args).await?;
        rows.first().map(sql::row_to_version).transpose()
    }

    async fn owned(&mut self, resource_type: &str, id: &str) -> Result<Vec<UniqueKey>> {
        let query = self.dialect.select_owned();
        let rows = sql::fetch(&mut *self.conn, query, vec![text(resource_type), text(id)]).await?;
        rows.iter()
            .map(|r| {
                Ok(UniqueKey {
                    system: r.try_get(0)?,
                    value: r.try_get(1)?,
                })
            })
            .collect()
    }

    async fn claim(
        &mut self,
        key: &UniqueKey,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<String>> {
        let args = vec![
            text(&key.system),
            text(&key.value),
            text(resource_type),
            text(id),
        ];
        sql::fetch(&mut *self.conn, self.dialect.insert_claim(), args).await?;
        let query = self.dialect.select_owner();
        let rows = sql::fetch(
            &mut *self.conn,
            query,
            vec![text(&key.system), text(&key.value)],
        )
        .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))?;
        let (owner_type, owner_id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        Ok((owner_type != resource_type || owner_id != id)
            .then(|| format!("{owner_type}/{owner_id}")))
    }

    async fn lock(&mut self, key: &str) -> Result<()> {
        if let Some(query) = self.dialect.lock() {
            sql::fetch(&mut *self.conn, query, vec![text(key)]).await?;
        }
        Ok(())
    }

    async fn matching(&mut self, spec: &SearchSpec, limit: u32) -> Result<Vec<StoredVersion>> {
        let mut spec = spec.clone();
        spec.count = limit;
        spec.total = false;
        spec.after = None;
        let ((page, args), _) = crate::search::statements(self.dialect, &spec);
        let rows = sql::fetch(&mut *self.conn, page, args).await?;
        rows.iter().map(sql::row_to_version).collect()
    }

    async fn replace_index(
        &mut self,
        resource_type: &str,
        id: &str,
        rows: &IndexRows,
        existed: bool,
        param: Option<&str>,
    ) -> Result<()> {
        let rows = match param {
            Some(p) => rows.only(p),
            None => rows.clone(),
        };
        if let Some((query, args)) =
            self.dialect
                .replace_index(resource_type, id, &rows, existed, param)
        {
            sql::fetch(&mut *self.conn, query, args).await?;
        }
        Ok(())
    }

    async fn set_marker(&mut self, name: &str, value: Option<&str>) -> Result<()> {
        let (query, args) = match value {
            Some(v) => (self.dialect.upsert_marker(), vec![text(name), text(v)]),
            None => (
                format!(
                    "DELETE FROM maintenance_markers WHERE name = {}",
                    self.dialect.ph(1)
                ),
                vec![text(name)],
            ),
        };
        sql::fetch(&mut *self.conn, query, args).await?;
        Ok(())
    }

    async fn append(&mut self, v: &StoredVersion) -> Result<i64> {
        let args = [
            text(&v.resource_type),
            text(&v.id),
            Arg::Int(v.version),
            Arg::Int(v.last_updated.micros()),
            Arg::Bool(v.deleted),
            text(v.method.as_str()),
            Arg::OptText(v.content.clone()),
        ];
        let mut seq = None;
        for (i, statement) in self.dialect.append().iter().enumerate() {
            // Later statements use only the leading arguments (SQLite refuses extra ones).
            let used = if i == 0 { args.len() } else { 5 };
            let rows = sql::fetch(
                &mut *self.conn,
                statement.to_string(),
                args[..used].to_vec(),
            )
            .await?;
            if seq.is_none() {
                seq = rows.first().map(|r| r.try_get::<i64, _>(0)).transpose()?;
            }
        }
        seq.ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))
    }
}
