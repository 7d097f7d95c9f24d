//! The desktop facade against a real CuraNet server (in-process, SQLite, tokens required), the
//! way the shell drives it: a doctor signs in through the browser and works; the session and the
//! encrypted cache come back when the app is reopened; the status goes offline when the server
//! stops and online when it returns, and the writes made meanwhile are replayed by the
//! background loop; sign-out revokes the grant and wipes the cache and the secrets; a
//! pharmacist gets the pharmacy mode.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{PASSWORD, browser_sign_in, register_desktop, scratch};
use curanet_desktop_core::desktop::{CLIENT_ID, SCOPES};
use curanet_desktop_core::{
    Desktop, DesktopError, Mode, Options, SecretStore, State, Status, Written, session,
};
use curanet_http::testing::{TestBackend, TestServer};
use curanet_storage::Role;
use serde_json::{Value, json};

/// A server that requires tokens, with a doctor, a pharmacist and the desktop app registered.
async fn server(label: &str) -> TestServer {
    let server = TestServer::start_with(TestBackend::Sqlite, label, |c| c.require_auth = true)
        .await
        .expect("a SQLite server");
    server
        .create_user(Role::Doctor, "dr@example.in", PASSWORD, "Meera Iyer")
        .await;
    server
        .create_user(Role::Pharmacist, "rx@example.in", PASSWORD, "Farhan Sheikh")
        .await;
    register_desktop(&server, SCOPES).await;
    server
}

/// The desktop over `dir`, its key in a file (CI has no keyring), its loop quick.
async fn open(dir: &Path) -> Desktop {
    Desktop::open_with(
        dir,
        Options {
            keyring: false,
            poll_every: Duration::from_millis(300),
        },
    )
    .await
    .unwrap()
}

/// Signs `email` in at `base` through the facade, the browser played by the test.
async fn sign_in(desktop: &Desktop, base: &str, email: &str) -> Status {
    let started = desktop.begin_sign_in(base).await.unwrap();
    let finishing = tokio::spawn({
        let desktop = desktop.clone();
        async move { desktop.finish_sign_in().await }
    });
    browser_sign_in(&started.authorize_url, email).await;
    finishing.await.unwrap().unwrap()
}

/// Waits (at most 20 s) for a status that `want` accepts.
async fn until(desktop: &Desktop, what: &str, want: impl Fn(&Status) -> bool) -> Status {
    let mut changes = desktop.subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let status = changes.borrow_and_update().clone();
            if want(&status) {
                return status;
            }
            changes.changed().await.unwrap();
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{what}: still {:?}", desktop.status()))
}

/// The session kept in the secret store.
fn stored_session(dir: &Path) -> Option<Value> {
    SecretStore::without_keyring(dir)
        .unwrap()
        .get::<Value>("session")
        .unwrap()
}

/// Whether a file under `dir` holds `text`.
fn any_file_holds(dir: &Path, text: &str) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(text.len())
                .any(|w| w == text.as_bytes())
            {
                return true;
            }
        }
    }
    false
}

fn id_of(written: Written) -> String {
    match written {
        Written::Sent(v) => v["id"].as_str().unwrap().to_string(),
        Written::Queued { .. } => panic!("queued while the server was up"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_signs_in_works_reopens_and_signs_out() {
    let server = server("desktop_facade").await;
    let base = server.base_url.clone();
    let dir = scratch("facade");
    let desktop = open(&dir).await;
    assert_eq!(desktop.status().state, State::SignedOut);
    assert_eq!(desktop.last_server(), None);
    let refused = desktop.client().err().unwrap();
    assert_eq!(refused.code(), "not_signed_in", "{refused}");
    assert!(matches!(
        desktop.finish_sign_in().await,
        Err(DesktopError::NotSignedIn(_))
    ));

    // Sign-in through the browser: who it is, where, online.
    let status = sign_in(&desktop, &base, "dr@example.in").await;
    assert_eq!(status.state, State::Online, "{status:?}");
    assert_eq!(status.server.as_deref(), Some(base.as_str()));
    let user = status.user.clone().unwrap();
    assert_eq!(user.name, "Meera Iyer");
    assert_eq!(user.mode, Mode::Hospital);
    assert!(user.reference.starts_with("Practitioner/"), "{user:?}");
    assert_eq!(desktop.user(), Some(user.clone()));
    assert_eq!(desktop.last_server(), Some(base.clone()));
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["user"]["mode"], "hospital");
    assert_eq!(json["state"], "online");

    // The doctor registers a patient and opens the chart; the sync keeps it current.
    let client = desktop.client().unwrap();
    let patient = id_of(
        client
            .create(json!({"resourceType": "Patient",
                "name": [{"family": "Raghunathan", "given": ["Kavya"]}]}))
            .await
            .unwrap(),
    );
    desktop.opened(&patient).await.unwrap();
    let synced = desktop.sync_now().await.unwrap();
    assert_eq!(
        (synced.state, synced.progress, synced.pending),
        (State::Online, None, 0)
    );

    // At rest: no name, no token in any file of the data directory.
    let tokens = stored_session(&dir).unwrap()["tokens"].clone();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    for secret in ["Raghunathan", access.as_str(), refresh.as_str()] {
        assert!(!any_file_holds(&dir, secret), "in plain text on disk");
    }

    // Reopened (the app restarted): the session and the cache come back.
    drop(client);
    drop(desktop);
    let desktop = open(&dir).await;
    assert_eq!(desktop.user(), Some(user.clone()));
    assert_eq!(desktop.status().server.as_deref(), Some(base.as_str()));
    let client = desktop.client().unwrap();
    assert_eq!(
        client.cached("Patient", &patient).await.unwrap().unwrap()["name"][0]["family"],
        "Raghunathan"
    );
    let read = client.read("Patient", &patient).await.unwrap();
    assert_eq!(read.resource["name"][0]["given"][0], "Kavya");

    // Sign-out: the grant is revoked, the cache and the secrets are gone.
    let endpoints = session::endpoints(&reqwest::Client::new(), &base)
        .await
        .unwrap();
    let tokens = stored_session(&dir).unwrap()["tokens"].clone();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let status = desktop.sign_out().await.unwrap();
    assert_eq!(status.state, State::SignedOut);
    assert_eq!((status.user, status.server), (None, None));
    assert!(
        session::refresh(&reqwest::Client::new(), &endpoints, CLIENT_ID, &refresh)
            .await
            .is_err(),
        "a revoked session cannot be refreshed"
    );
    assert!(!dir.join("accounts").exists(), "the cache is deleted");
    assert!(!dir.join("secrets.enc").exists(), "the secrets are deleted");
    assert_eq!(stored_session(&dir), None);
    assert_eq!(desktop.client().err().unwrap().code(), "not_signed_in");
    let reopened = open(&dir).await;
    assert_eq!(reopened.status().state, State::SignedOut);
    assert_eq!(
        reopened.last_server(),
        Some(base.clone()),
        "kept to prefill"
    );
    drop(reopened);

    // A pharmacist gets the pharmacy screens.
    let status = sign_in(&desktop, &base, "rx@example.in").await;
    let user = status.user.unwrap();
    assert_eq!(
        (user.name.as_str(), user.mode),
        ("Farhan Sheikh", Mode::Pharmacy)
    );
    desktop.sign_out().await.unwrap();

    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_follows_the_link_and_the_outbox_replays_when_it_returns() {
    let test_server = server("desktop_link").await;
    let base = test_server.base_url.clone();
    let mut config = test_server.config.clone();
    let dir = scratch("link");
    let desktop = open(&dir).await;
    sign_in(&desktop, &base, "dr@example.in").await;
    let client = desktop.client().unwrap();
    let patient = id_of(
        client
            .create(json!({"resourceType": "Patient", "name": [{"family": "Rao"}]}))
            .await
            .unwrap(),
    );
    let online = until(&desktop, "online", |s| s.state == State::Online).await;

    // The server stops (its database stays): the next request finds out, and the status says
    // offline since then; the write is queued.
    let running = test_server.server;
    let addr = running.addr;
    running.stop().await.unwrap();
    let queued = client
        .create(json!({"resourceType": "Observation", "status": "final",
            "code": {"text": "pulse"}, "subject": {"reference": format!("Patient/{patient}")}}))
        .await
        .unwrap();
    assert!(matches!(queued, Written::Queued { .. }), "{queued:?}");
    let offline = until(&desktop, "offline", |s| {
        s.state == State::Offline && s.pending == 1
    })
    .await;
    assert!(offline.since >= online.since, "{offline:?}");
    let json = serde_json::to_value(&offline).unwrap();
    assert_eq!(
        (json["state"].as_str(), json["pending"].as_u64()),
        (Some("offline"), Some(1))
    );

    // It comes back on the same address: the background loop notices, goes online and replays
    // the outbox.
    config.listen = addr;
    let restarted = curanet_http::server::start(config).await.unwrap();
    let back = until(&desktop, "online with the outbox replayed", |s| {
        s.state == State::Online && s.pending == 0
    })
    .await;
    assert!(back.since >= offline.since);
    let found = client
        .search("Observation", &[("patient", patient.as_str())])
        .await
        .unwrap();
    assert_eq!(found.matches.len(), 1, "{found:?}");
    assert_eq!(found.matches[0]["code"]["text"], "pulse");
    assert!(desktop.conflicts().await.unwrap().is_empty());

    desktop.sign_out().await.unwrap();
    restarted.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
