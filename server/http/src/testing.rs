//! A real server on a loopback port over a fresh database, for integration and conformance tests.

use curanet_storage::testing::ThrowawayPostgres;

use crate::server::unix_now;
use crate::{Config, RunningServer, start};

/// The pharmacy the pharmacists of [`TestServer::create_user`] work at.
const TEST_PHARMACY: &str = "Test Pharmacy";

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
    /// The configuration it was started with.
    pub config: Config,
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
        TestServer::start_with(backend, label, |_| {}).await
    }

    /// Starts a server on `backend` with the configuration changed by `configure` (e.g. to
    /// require access tokens).
    pub async fn start_with(
        backend: TestBackend,
        label: &str,
        configure: impl FnOnce(&mut Config),
    ) -> Option<TestServer> {
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
        let mut config = Config::for_database(database_url.clone());
        // A key of its own, so that tokens survive a restart (see `go_offline`).
        config.key_encryption_key = Some(curanet_auth::keys::KeyEncryptionKey::generate_base64());
        configure(&mut config);
        let server = start(config.clone()).await.expect("test server starts");
        Some(TestServer {
            config,
            base_url: server.base_url(),
            server,
            database_url,
            _dir: dir,
            postgres,
        })
    }

    /// Creates an active account with a verified email, linked to its FHIR resource (a
    /// Patient for patients, a Practitioner for the others), as `curanet user create` does.
    pub async fn create_user(
        &self,
        role: curanet_storage::Role,
        email: &str,
        password: &str,
        name: &str,
    ) -> curanet_storage::Account {
        let state = &self.server.state;
        let directory = crate::accounts::EngineDirectory {
            engine: state.engine.clone(),
            base: self.base_url.clone(),
        };
        let pepper = crate::accounts::pepper(&self.config.accounts).expect("pepper");
        let mut words: Vec<String> = name.split_whitespace().map(str::to_string).collect();
        let family = words.pop();
        let staff = curanet_auth::accounts::NewStaff {
            role,
            email: Some(email.into()),
            phone: None,
            password: Some(password.into()),
            person: curanet_auth::accounts::Person {
                given: words,
                family,
                ..Default::default()
            },
            pharmacy: (role == curanet_storage::Role::Pharmacist).then(|| TEST_PHARMACY.into()),
        };
        let store = state.authority.store();
        curanet_auth::accounts::provision(store.as_ref(), &directory, &pepper, staff, unix_now())
            .await
            .expect("account created")
    }

    /// The id of the pharmacy Organization pharmacists created by [`TestServer::create_user`]
    /// work at.
    pub async fn test_pharmacy(&self) -> String {
        let found = self
            .server
            .state
            .engine
            .search(
                "Organization",
                &[("name".to_string(), TEST_PHARMACY.to_string())],
                "",
                false,
            )
            .await
            .expect("the test pharmacy");
        found.page.resources[0].id.clone()
    }

    /// Creates `resource` directly through the engine (no token, no audit); returns its id.
    pub async fn seed(&self, resource: &serde_json::Value) -> String {
        let ty = resource["resourceType"].as_str().expect("a resource type");
        self.server
            .state
            .engine
            .create(ty, resource.to_string().as_bytes(), None, &self.base_url)
            .await
            .expect("seeded resource")
            .version
            .id
    }

    /// Registers an OAuth client, as `curanet client add` does; the secret of a symmetric
    /// client is in the answer.
    pub async fn register_client(
        &self,
        registration: curanet_auth::registration::ClientRegistration,
    ) -> curanet_auth::registration::RegisteredClient {
        let registered = curanet_auth::registration::register(registration, None, unix_now())
            .expect("a valid registration");
        self.server
            .state
            .authority
            .register_client(registered.client.clone())
            .await
            .expect("client stored");
        registered
    }

    /// Stops the server and keeps its database and address, as when the link to it drops;
    /// [`OfflineServer::come_back`] starts it again there, with the same signing keys.
    pub async fn go_offline(mut self) -> OfflineServer {
        let addr = self.server.addr;
        self.server.stop().await.expect("server stops cleanly");
        self.config.listen = addr;
        OfflineServer {
            base_url: self.base_url,
            database_url: self.database_url,
            config: self.config,
            _dir: self._dir,
            postgres: self.postgres,
        }
    }

    /// Stops the server and removes its database.
    pub async fn stop(self) {
        self.server.stop().await.expect("server stops cleanly");
        if let Some(pg) = self.postgres {
            pg.drop_database().await;
        }
    }
}

/// A [`TestServer`] that was stopped with its database kept.
pub struct OfflineServer {
    /// The FHIR base URL it had and will have again.
    pub base_url: String,
    database_url: String,
    config: Config,
    _dir: Option<TempDir>,
    postgres: Option<ThrowawayPostgres>,
}

impl OfflineServer {
    /// Starts the server again on the same address and database.
    pub async fn come_back(self) -> TestServer {
        let server = start(self.config.clone())
            .await
            .expect("test server restarts");
        TestServer {
            base_url: server.base_url(),
            server,
            database_url: self.database_url,
            config: self.config,
            _dir: self._dir,
            postgres: self.postgres,
        }
    }
}
