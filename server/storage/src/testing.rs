//! Throwaway databases for tests: each test gets its own, dropped afterwards.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The PostgreSQL server tests use (`CURANET_TEST_POSTGRES_URL`, default the local one).
pub fn postgres_server_url() -> String {
    std::env::var("CURANET_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Whether CI demands PostgreSQL tests run (`CURANET_REQUIRE_POSTGRES=1`).
pub fn postgres_required() -> bool {
    std::env::var("CURANET_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A database created for one test and dropped by [`ThrowawayPostgres::drop_database`].
pub struct ThrowawayPostgres {
    server_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl ThrowawayPostgres {
    /// Creates a uniquely named database; `None` (with a message) when no PostgreSQL answers,
    /// unless `CURANET_REQUIRE_POSTGRES=1`, in which case it panics.
    pub async fn create(label: &str) -> Option<Self> {
        let server_url = postgres_server_url();
        let mut conn = match PgConnection::connect(&server_url).await {
            Ok(c) => c,
            Err(e) if !postgres_required() => {
                eprintln!("skipping PostgreSQL test {label}: no PostgreSQL at {server_url} ({e})");
                return None;
            }
            Err(e) => {
                panic!("CURANET_REQUIRE_POSTGRES=1 but PostgreSQL at {server_url} fails: {e}")
            }
        };
        let name = format!(
            "curanet_test_{}_{}",
            label
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect::<String>()
                .to_lowercase(),
            uuid::Uuid::new_v4().simple()
        );
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = server_url
            .rsplit_once('/')
            .map_or(server_url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Self {
            server_url,
            name,
            url,
        })
    }

    /// Drops the database (closing other sessions first).
    pub async fn drop_database(self) {
        if let Ok(mut conn) = PgConnection::connect(&self.server_url).await {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
        }
    }
}
