//! Fixtures shared by the desktop core's tests: resources created on a test server, a scratch
//! directory, the desktop's OAuth client, and the browser's part of a sign-in.

// Each test file uses a part of these.
#![allow(dead_code)]

use std::path::PathBuf;

use curanet_auth::registration::ClientRegistration;
use curanet_conformance::smart::{App, AuthRequest, Decision, Login, Outcome, authorize, query_of};
use curanet_http::testing::TestServer;
use curanet_storage::ClientKind;
use serde_json::Value;

/// The password of every test account.
pub const PASSWORD: &str = "correct horse battery staple";

/// Creates `resource` on the open server of `base` (no token); returns its id.
pub async fn create(base: &str, resource: Value) -> String {
    let ty = resource["resourceType"].as_str().unwrap().to_string();
    let r = reqwest::Client::new()
        .post(format!("{base}/{ty}"))
        .header("content-type", "application/fhir+json")
        .body(resource.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A fresh scratch directory for this test process.
pub fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("curanet-desktop-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Registers the desktop app (`curanet-desktop`, a public client with a loopback redirect on
/// any port) for `scope`, as the server does at start-up.
pub async fn register_desktop(server: &TestServer, scope: &str) {
    server
        .register_client(ClientRegistration {
            client_id: Some("curanet-desktop".into()),
            name: "CuraNet Desktop".into(),
            kind: Some(ClientKind::Public),
            // Any port: the app listens where the system lets it (RFC 8252 §7.3).
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            scope: scope.into(),
            ..ClientRegistration::default()
        })
        .await;
}

/// The browser's part of a sign-in: opens the app's `authorize_url`, signs in as `email` and
/// allows on the server's pages, and follows the redirect back to the app's loopback listener.
pub async fn browser_sign_in(authorize_url: &str, email: &str) {
    let (endpoint, _) = authorize_url.split_once('?').unwrap();
    let params = query_of(authorize_url);
    let app = App {
        client_id: params["client_id"].clone(),
        redirect_uri: params["redirect_uri"].clone(),
        secret: None,
    };
    // The app's request exactly as it made it (its state and PKCE challenge).
    let request = params.iter().fold(
        AuthRequest::new(&app, &params["scope"], &params["aud"]),
        |r, (k, v)| r.with(k, Some(v)),
    );
    let login = Login {
        identifier: email.into(),
        password: PASSWORD.into(),
    };
    let outcome = authorize(endpoint, &request, &login, &Decision::default(), None)
        .await
        .unwrap();
    let Outcome::Redirected(query) = outcome else {
        panic!("the sign-in did not come back: {outcome:?}");
    };
    let back = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&query)
        .finish();
    let page = reqwest::Client::new()
        .get(format!("{}?{back}", app.redirect_uri))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("signed in"));
}
