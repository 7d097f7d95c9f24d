//! How the account and OAuth statements reach a database. A [`Conn`] is a connection of either
//! engine behind one object-safe interface, so each statement is written once; an [`Engine`]
//! (the SQLite or the PostgreSQL store) runs a closure over a `Conn`, for writes inside a
//! transaction that is durable before the closure's result is returned.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, PgConnection, Row, SqliteConnection, Type,
};

use crate::sql::Dialect;
use crate::{Result, StoreError};

/// A boxed future that may hold a borrowed connection.
pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bind parameter.
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    OptBytes(Option<Vec<u8>>),
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_string())
    }
}

impl From<&String> for Param {
    fn from(v: &String) -> Self {
        Param::Text(v.clone())
    }
}

impl From<Option<&str>> for Param {
    fn from(v: Option<&str>) -> Self {
        Param::OptText(v.map(str::to_string))
    }
}

impl From<&Option<String>> for Param {
    fn from(v: &Option<String>) -> Self {
        Param::OptText(v.clone())
    }
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::OptInt(v)
    }
}

impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}

impl From<Option<&[u8]>> for Param {
    fn from(v: Option<&[u8]>) -> Self {
        Param::OptBytes(v.map(<[u8]>::to_vec))
    }
}

/// The parameters of a statement, `$1` first.
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        vec![$($crate::auth::engine::Param::from($p)),*]
    };
}
pub(crate) use params;

/// A result row, read by column position.
pub(crate) trait DbRow: Send {
    /// A nullable text column.
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    /// A nullable integer column.
    fn opt_int(&self, i: usize) -> Result<Option<i64>>;
    /// A nullable BLOB / BYTEA column.
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>>;
    /// A boolean column (INTEGER 0/1 in SQLite).
    fn boolean(&self, i: usize) -> Result<bool>;

    /// A text column.
    fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| null_column(i))
    }

    /// An integer column.
    fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?.ok_or_else(|| null_column(i))
    }

    /// A BLOB / BYTEA column.
    fn bytes(&self, i: usize) -> Result<Vec<u8>> {
        self.opt_bytes(i)?.ok_or_else(|| null_column(i))
    }

    /// A JSON column.
    fn json(&self, i: usize) -> Result<Value> {
        serde_json::from_str(&self.text(i)?).map_err(|e| corrupt(format!("column {i}: {e}")))
    }

    /// A nullable JSON column.
    fn opt_json(&self, i: usize) -> Result<Option<Value>> {
        self.opt_text(i)?
            .map(|t| serde_json::from_str(&t).map_err(|e| corrupt(format!("column {i}: {e}"))))
            .transpose()
    }

    /// A JSON array of strings.
    fn strings(&self, i: usize) -> Result<Vec<String>> {
        serde_json::from_str(&self.text(i)?).map_err(|e| corrupt(format!("column {i}: {e}")))
    }
}

impl<R> DbRow for R
where
    R: Row + Send,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.try_get(i)?)
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.try_get(i)?)
    }

    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(i)?)
    }

    fn boolean(&self, i: usize) -> Result<bool> {
        Ok(self.try_get(i)?)
    }
}

/// A stored value the Rust types cannot read (an unknown enum spelling, broken JSON).
pub(crate) fn corrupt(message: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(message.into()))
}

fn null_column(i: usize) -> StoreError {
    corrupt(format!("column {i} is unexpectedly NULL"))
}

/// Reads a stored enum spelling.
pub(crate) fn parse<T>(text: String, parse: fn(&str) -> Option<T>, what: &str) -> Result<T> {
    parse(&text).ok_or_else(|| corrupt(format!("unknown {what} '{text}'")))
}

/// A connection of either engine, inside a transaction for writes.
#[async_trait::async_trait]
pub(crate) trait Conn: Send {
    /// Which engine this is.
    fn dialect(&self) -> Dialect;

    /// Runs a statement written with `$n` placeholders; returns its rows.
    async fn query(&mut self, text: &str, params: Vec<Param>) -> Result<Vec<Box<dyn DbRow>>>;

    /// Runs a statement; returns how many rows it changed.
    async fn execute(&mut self, text: &str, params: Vec<Param>) -> Result<u64>;

    /// The first row of a statement's result.
    async fn first(&mut self, text: &str, params: Vec<Param>) -> Result<Option<Box<dyn DbRow>>> {
        Ok(self.query(text, params).await?.into_iter().next())
    }

    /// The row-lock clause of a `SELECT` in a write transaction: PostgreSQL runs writers
    /// concurrently, SQLite's writes are serial already (one writer task).
    fn for_update(&self) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// A query of either engine with its parameters bound.
fn build<DB>(text: String, params: Vec<Param>) -> sqlx::query::Query<'static, DB, DB::Arguments>
where
    DB: Database,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Type<DB>,
{
    let mut query = sqlx::query::<DB>(AssertSqlSafe(text));
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v),
            Param::OptText(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
            Param::OptInt(v) => query.bind(v),
            Param::Bool(v) => query.bind(v),
            Param::OptBytes(v) => query.bind(v),
        };
    }
    query
}

/// SQLite reads `$1` as a named parameter numbered by first appearance, which would misnumber a
/// statement that uses `$2` before `$1`; `?1` is positional. The statements hold no other `$`.
fn sqlite_text(text: &str) -> String {
    text.replace('$', "?")
}

#[async_trait::async_trait]
impl Conn for SqliteConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query(&mut self, text: &str, params: Vec<Param>) -> Result<Vec<Box<dyn DbRow>>> {
        let rows = build::<sqlx::Sqlite>(sqlite_text(text), params)
            .fetch_all(self)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Box::new(r) as Box<dyn DbRow>)
            .collect())
    }

    async fn execute(&mut self, text: &str, params: Vec<Param>) -> Result<u64> {
        let done = build::<sqlx::Sqlite>(sqlite_text(text), params)
            .execute(self)
            .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait::async_trait]
impl Conn for PgConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query(&mut self, text: &str, params: Vec<Param>) -> Result<Vec<Box<dyn DbRow>>> {
        let rows = build::<sqlx::Postgres>(text.to_string(), params)
            .fetch_all(self)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Box::new(r) as Box<dyn DbRow>)
            .collect())
    }

    async fn execute(&mut self, text: &str, params: Vec<Param>) -> Result<u64> {
        let done = build::<sqlx::Postgres>(text.to_string(), params)
            .execute(self)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Turns a unique-constraint violation into [`StoreError::Duplicate`], naming the first of
/// `columns` (column, what) the constraint is about, else `otherwise`; other errors pass.
pub(crate) fn duplicate(
    e: StoreError,
    columns: &[(&str, &'static str)],
    otherwise: &'static str,
) -> StoreError {
    let StoreError::Database(sqlx::Error::Database(db)) = &e else {
        return e;
    };
    if !db.is_unique_violation() {
        return e;
    }
    // PostgreSQL names the constraint (`accounts_email_key`); SQLite names the column in its
    // message (`UNIQUE constraint failed: accounts.email`).
    let about = db.constraint().unwrap_or(db.message());
    let what = columns
        .iter()
        .find(|(column, _)| about.contains(column))
        .map_or(otherwise, |(_, what)| what);
    StoreError::Duplicate { what }
}

/// Runs closures over a [`Conn`]: what each engine supplies for [`super::AuthStore`].
#[async_trait::async_trait]
pub(crate) trait Engine: Send + Sync {
    /// Runs `f` on a connection outside any transaction (statements that only read).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFut<'c, Result<T>> + Send + 'static;

    /// Runs `f` in a transaction, committed (durably) when it succeeds and rolled back when it
    /// fails; atomic with respect to every other write.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFut<'c, Result<T>> + Send + 'static;
}
