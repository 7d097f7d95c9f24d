//! A real server on a loopback port over a fresh database, for integration and conformance tests.

use curanet_storage::testing::ThrowawayPostgres;

use crate::{Config, RunningServer, start};

/// The database engines a test can run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

impl TestBackend {
    /// Both engines, in the order tests run them.
    pub const ALL: [TestBackend; 2] = [TestBackend::Sqlite, TestBackend::Postgres];
}

/// A running server with its own database, removed by [`TestServer::stop`].
pub struct TestServer {
    pub server: RunningServer,
    /// The FHIR base URL.
    pub base_url: String,
    /// The database URL the server uses.
    pub database_url: String,
    _dir: Option<TempDir>,
    postgres: Option<ThrowawayPostgres>,
}

/// A temporary directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestServer {
    /// Starts a server on `backend`; `None` when PostgreSQL is wanted but absent (and not required).
    pub async fn start(backend: TestBackend, label: &str) -> Option<TestServer> {
        let (database_url, dir, postgres) = match backend {
            TestBackend::Sqlite => {
                let dir = std::env::temp_dir()
                    .join(format!("curanet-test-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).expect("create temp dir");
                let url = format!("sqlite:{}", dir.join("test.db").display());
                (url, Some(TempDir(dir)), None)
            }
            TestBackend::Postgres => {
                let pg = ThrowawayPostgres::create(label).await?;
                (pg.url.clone(), None, Some(pg))
            }
        };
        let server = start(Config::for_database(database_url.clone()))
            .await
            .expect("test server starts");
        Some(TestServer {
            base_url: server.base_url(),
            server,
            database_url,
            _dir: dir,
            postgres,
        })
    }

    /// Stops the server and removes its database.
    pub async fn stop(self) {
        self.server.stop().await.expect("server stops cleanly");
        if let Some(pg) = self.postgres {
            pg.drop_database().await;
        }
    }
}
