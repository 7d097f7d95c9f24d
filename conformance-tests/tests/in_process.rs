//! The whole suite against CuraNet started in-process, on SQLite and on PostgreSQL.

use curanet_http::testing::{TestBackend, TestServer};

async fn run_suite(backend: TestBackend) {
    let Some(server) = TestServer::start(backend, "conformance").await else {
        return;
    };
    let results = curanet_conformance::run(&server.base_url, "").await;
    let report = curanet_conformance::summary(&results);
    println!("{backend:?}:\n{report}");
    server.stop().await;
    assert!(results.len() >= 85, "only {} cases ran", results.len());
    assert!(
        results.iter().all(|r| r.outcome.is_ok()),
        "{backend:?} failures:\n{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_sqlite() {
    run_suite(TestBackend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_postgres() {
    run_suite(TestBackend::Postgres).await;
}
