//! Signing in to a real CuraNet server (in-process, tokens required) as a native app: the
//! server's sign-in and consent pages are driven like a browser would (the conformance suite's
//! browser), the code comes back to the app's loopback redirect on a port of its own, and the
//! tokens read the patient's record through the cache; refresh rotates, sign-out revokes and
//! wipes the cache.

mod common;

use std::time::Duration;

use common::{PASSWORD, browser_sign_in, register_desktop};
use curanet_desktop_core::{Cache, FhirClient, Freshness, session};
use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_signs_in_through_the_browser_and_reads_their_record() {
    let server = TestServer::start_with(TestBackend::Sqlite, "desktop_session", |c| {
        c.require_auth = true
    })
    .await
    .expect("a SQLite server");
    let base = server.base_url.clone();
    let account = server
        .create_user(Role::Patient, "asha@example.in", PASSWORD, "Asha Rao")
        .await;
    let patient = account
        .fhir_user
        .unwrap()
        .trim_start_matches("Patient/")
        .to_string();
    register_desktop(&server, "patient/*.rs openid fhirUser offline_access").await;

    let http = reqwest::Client::new();
    let sign_in = session::begin(
        &http,
        &base,
        "curanet-desktop",
        "patient/*.rs openid fhirUser offline_access",
    )
    .await
    .unwrap();
    assert!(sign_in.redirect_uri.starts_with("http://127.0.0.1:"));
    assert!(!sign_in.redirect_uri.starts_with("http://127.0.0.1:/"));

    // The browser: the user signs in and allows on the server's pages, and is sent back to
    // the app's loopback redirect.
    let authorize_url = sign_in.authorize_url.clone();
    let finished = tokio::spawn({
        let http = http.clone();
        async move { sign_in.finish(&http, Duration::from_secs(10)).await }
    });
    browser_sign_in(&authorize_url, "asha@example.in").await;
    let tokens = finished.await.unwrap().unwrap();
    assert_eq!(tokens.patient.as_deref(), Some(patient.as_str()));
    assert!(tokens.refresh_token.is_some());

    // The token reads the record through the cache.
    let dir = std::env::temp_dir().join(format!("curanet-desktop-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = Cache::open(&dir.join("cache.db"), "asha", 1_000_000)
        .await
        .unwrap();
    let client = FhirClient::new(&base, Some(tokens.access_token.clone()), cache.clone()).unwrap();
    let read = client.read("Patient", &patient).await.unwrap();
    assert_eq!(read.freshness, Freshness::Fresh);

    // Refresh rotates the refresh token; sign-out revokes the grant and wipes the cache.
    let endpoints = session::endpoints(&http, &base).await.unwrap();
    let old_refresh = tokens.refresh_token.clone().unwrap();
    let renewed = session::refresh(&http, &endpoints, "curanet-desktop", &old_refresh)
        .await
        .unwrap();
    let new_refresh = renewed.refresh_token.clone().unwrap();
    assert_ne!(new_refresh, old_refresh);
    session::revoke(&http, &endpoints, "curanet-desktop", &new_refresh)
        .await
        .unwrap();
    cache.wipe().await.unwrap();
    assert_eq!(client.cached("Patient", &patient).await.unwrap(), None);
    let after = session::refresh(&http, &endpoints, "curanet-desktop", &new_refresh).await;
    assert!(after.is_err(), "a revoked session cannot be refreshed");
    // The access token of the revoked grant no longer reads.
    let revoked = FhirClient::new(&base, Some(renewed.access_token), cache).unwrap();
    assert!(revoked.read("Patient", &patient).await.is_err());

    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
