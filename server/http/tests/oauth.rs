//! The authorization server against the real binary on both engines: discovery, JWKS, SMART
//! Backend Services (`client_credentials` with `private_key_jwt`) and its failure cases,
//! introspection, signing keys across a restart, and `curanet client add`. The numbers are the
//! checklist cases of `smart-consent-abdm-audit.md` §7.

// The shared fixtures serve several test files; this one does not use all of them.
#[allow(dead_code)]
#[macro_use]
mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::smart::{client_add, keys, now, rs384, sign};
use common::{Database, Process, patient, post};
use curanet_http::testing::TestBackend;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// The public URL the servers are configured with (`--base-url`), so tokens survive a restart
/// on another port.
const PUBLIC: &str = "http://curanet.test";
const TOKEN_URL: &str = "http://curanet.test/oauth/token";
const CLIENT: &str = "bulk-exporter";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A key-encryption key for the restart test (32 bytes of base64).
const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_KEK: &str = "HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

on_both_backends!(discovery_documents_and_jwks, discovery);
on_both_backends!(backend_services_tokens_and_introspection, backend_services);
on_both_backends!(signing_keys_survive_a_restart_with_the_same_kek, restart);
on_both_backends!(client_keys_registered_by_url, jwks_by_url);

/// Valid assertion claims with a fresh `jti`.
fn claims() -> Value {
    json!({
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": TOKEN_URL,
        "exp": now() + 240,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

/// Registers the backend client with `curanet client add` (the CLI under test).
fn register_client(database_url: &str) {
    let dir = std::env::temp_dir().join(format!("curanet-jwks-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&jwks_file, keys().jwks.to_string()).unwrap();
    let run = |scope: &str, jwks: &std::path::Path| client_add(database_url, CLIENT, scope, jwks);
    // Refused: user-level scopes for a backend client, and a JWKS holding a private key.
    let refused = run("user/*.rs", &jwks_file);
    assert!(!refused.status.success());
    let private = dir.join("private.json");
    std::fs::write(
        &private,
        r#"{"keys":[{"kty":"EC","kid":"x","d":"secret"}]}"#,
    )
    .unwrap();
    assert!(!run("system/Patient.rs", &private).status.success());

    let out = run("system/Patient.rs system/Observation.rs", &jwks_file);
    assert!(
        out.status.success(),
        "client add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), CLIENT);
    // A second registration of the same id fails.
    assert!(!run("system/Patient.rs", &jwks_file).status.success());
    let _ = std::fs::remove_dir_all(dir);
}

/// The issuer root of a server started by [`Process::start`].
fn root(server: &Process) -> String {
    server.base.trim_end_matches("/fhir").to_string()
}

async fn start(database_url: &str, kek: &str) -> Process {
    Process::start(
        database_url,
        &[
            "--base-url",
            &format!("{PUBLIC}/fhir"),
            "--key-encryption-key",
            kek,
        ],
    )
    .await
}

/// `POST /oauth/token` with these form pairs: (status, headers, body).
async fn token_request(
    client: &reqwest::Client,
    server: &Process,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = client
        .post(format!("{}/oauth/token", root(server)))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

async fn backend_token(
    client: &reqwest::Client,
    server: &Process,
    scope: &str,
    assertion: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    token_request(
        client,
        server,
        &[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

async fn introspect(client: &reqwest::Client, server: &Process, token: &str) -> Value {
    let r = client
        .post(format!("{}/oauth/introspect", root(server)))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

fn assert_no_store(headers: &reqwest::header::HeaderMap) {
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
}

/// An OAuth error answer: status, code, JSON `{error, error_description}`, never cached.
fn assert_oauth_error(
    (status, headers, body): &(u16, reqwest::header::HeaderMap, Value),
    expected_status: u16,
    code: &str,
    case: &str,
) {
    assert_eq!(*status, expected_status, "{case}: {body}");
    assert_eq!(body["error"], code, "{case}: {body}");
    assert!(body["error_description"].is_string(), "{case}: {body}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_no_store(headers);
}

async fn discovery(backend: TestBackend) {
    let Some(db) = Database::create(backend, "oauthdisc").await else {
        return;
    };
    let server = Process::start(&db.url, &[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/.well-known/smart-configuration", server.base);

    // 1: no Accept header → JSON with the endpoints and capabilities, every URL absolute.
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let smart: Value = r.json().await.unwrap();
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "introspection_endpoint",
    ] {
        let value = smart[field].as_str().unwrap_or_else(|| panic!("{field}"));
        assert!(value.starts_with("http://127.0.0.1:"), "{field}: {value}");
    }
    assert_eq!(
        smart["token_endpoint"],
        format!("{}/oauth/token", root(&server))
    );
    let grants = smart["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!("authorization_code")));
    assert!(grants.contains(&json!("client_credentials")));
    let pkce = smart["code_challenge_methods_supported"]
        .as_array()
        .unwrap();
    assert!(pkce.contains(&json!("S256")) && !pkce.contains(&json!("plain")));
    let capabilities = smart["capabilities"].as_array().unwrap();
    assert!(!capabilities.is_empty() && capabilities.iter().all(Value::is_string));

    // 2: JSON whatever the Accept header asks for.
    let r = client
        .get(&url)
        .header("accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.json::<Value>().await.unwrap(), smart);

    // 3: readable from any origin, and so is the CapabilityStatement.
    for u in [url.clone(), format!("{}/metadata", server.base)] {
        let r = client
            .get(&u)
            .header("origin", "https://app.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{u}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{u}");
    }

    // 5: OpenID configuration with the required fields and a JWKS with an RSA key.
    let r = client
        .get(format!(
            "{}/.well-known/openid-configuration",
            root(&server)
        ))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let oidc: Value = r.json().await.unwrap();
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(!oidc[field].is_null(), "{field} missing");
    }
    assert!(
        oidc["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("RS256"))
    );
    let r = client
        .get(oidc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let jwks: Value = r.json().await.unwrap();
    let rsa = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kty"] == "RSA")
        .expect("an RSA key");
    assert_eq!(rsa["alg"], "RS256");
    assert!(rsa["kid"].is_string() && rsa["n"].is_string() && rsa["e"].is_string());
    assert!(
        rsa.get("d").is_none(),
        "the JWKS must not publish private keys"
    );

    // Public endpoints stay public, and in this slice the FHIR API is still open.
    let r = client
        .get(format!("{}/healthz", root(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _) = post(&client, &server.base, &patient(1)).await;
    assert_eq!(status, 201);

    drop(server);
    db.remove().await;
}

async fn backend_services(backend: TestBackend) {
    let Some(db) = Database::create(backend, "oauthbackend").await else {
        return;
    };
    register_client(&db.url);
    let server = start(&db.url, KEK).await;
    let client = reqwest::Client::new();
    let keys = keys();

    // 46: a valid RS384 assertion → a bearer token of ≤ 300 s, no refresh token, never cached.
    let (status, headers, body) =
        backend_token(&client, &server, "system/Patient.rs", &rs384(&claims())).await;
    assert_eq!(status, 200, "{body}");
    assert_no_store(&headers);
    assert!(
        body["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{body}"
    );
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!(expires_in > 0 && expires_in <= 300, "{body}");
    assert_eq!(body["scope"], "system/Patient.rs");
    assert!(body.get("refresh_token").is_none());
    let access_token = body["access_token"].as_str().unwrap().to_string();

    // 43: introspection of the issued token matches the token response.
    let info = introspect(&client, &server, &access_token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["scope"], "system/Patient.rs");
    assert_eq!(info["client_id"], CLIENT);
    assert_eq!(info["sub"], CLIENT);
    assert_eq!(info["iss"], PUBLIC);
    assert_eq!(info["aud"], format!("{PUBLIC}/fhir"));
    let (exp, iat) = (info["exp"].as_i64().unwrap(), info["iat"].as_i64().unwrap());
    assert_eq!(exp - iat, expires_in);
    assert!((iat - now()).abs() < 60);

    // 44: garbage, a tampered token and an assertion are all exactly {"active": false}.
    let tampered = format!("{}x", &access_token[..access_token.len() - 1]);
    for bad in [
        "invalid_token_value",
        "",
        tampered.as_str(),
        &rs384(&claims()),
    ] {
        assert_eq!(
            introspect(&client, &server, bad).await,
            json!({"active": false}),
            "{bad}"
        );
    }

    // 46 with ES384, and 56: a wider request is narrowed to the registered scopes.
    let es384 = sign(Algorithm::ES384, "ec-1", &keys.ec, &claims());
    let (status, _, body) = backend_token(&client, &server, "system/*.cruds", &es384).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "system/Patient.rs system/Observation.rs");

    // 56: nothing of the request is registered → invalid_scope; so are other levels.
    for scope in [
        "system/Encounter.rs",
        "patient/Patient.rs",
        "user/*.rs openid",
    ] {
        assert_oauth_error(
            &backend_token(&client, &server, scope, &rs384(&claims())).await,
            400,
            "invalid_scope",
            scope,
        );
    }

    // 52: the same assertion twice → the replay is refused.
    let once = rs384(&claims());
    let (status, _, _) = backend_token(&client, &server, "system/Patient.rs", &once).await;
    assert_eq!(status, 200);
    assert_oauth_error(
        &backend_token(&client, &server, "system/Patient.rs", &once).await,
        401,
        "invalid_client",
        "replayed jti",
    );

    // 47: an unknown grant type.
    assert_oauth_error(
        &token_request(
            &client,
            &server,
            &[
                ("grant_type", "not_a_grant_type"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &rs384(&claims())),
            ],
        )
        .await,
        400,
        "unsupported_grant_type",
        "unknown grant type",
    );

    // 48: a wrong client_assertion_type.
    let answer = token_request(
        &client,
        &server,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
            ("client_assertion_type", "not_an_assertion_type"),
            ("client_assertion", &rs384(&claims())),
        ],
    )
    .await;
    assert_oauth_error(&answer, 401, "invalid_client", "wrong assertion type");

    // 49–55: assertions that must not authenticate the client.
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims();
        edit(&mut c);
        c
    };
    let header_none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    let refused: Vec<(&str, String)> = vec![
        (
            "49 unregistered key",
            sign(Algorithm::RS384, "rsa-1", &keys.unregistered, &claims()),
        ),
        (
            "50 aud is not the token URL",
            rs384(&with(&|c| c["aud"] = json!("https://other.example/token"))),
        ),
        (
            "51 exp 10 minutes ahead",
            rs384(&with(&|c| c["exp"] = json!(now() + 600))),
        ),
        (
            "51 exp in the past",
            rs384(&with(&|c| c["exp"] = json!(now() - 120))),
        ),
        (
            "53 iss differs from sub",
            rs384(&with(&|c| c["sub"] = json!("someone-else"))),
        ),
        (
            "53 unknown iss",
            rs384(&with(&|c| {
                c["iss"] = json!("nobody");
                c["sub"] = json!("nobody");
            })),
        ),
        ("55 alg none", format!("{header_none}.{payload}.")),
        (
            "55 HS256",
            sign(
                Algorithm::HS256,
                "rsa-1",
                &EncodingKey::from_secret(b"a shared secret of thirty-two by").unwrap(),
                &claims(),
            ),
        ),
        ("not a JWT", "not-a-jwt".to_string()),
    ];
    for (case, assertion) in &refused {
        let answer = backend_token(&client, &server, "system/Patient.rs", assertion).await;
        assert_oauth_error(&answer, 401, "invalid_client", case);
        // The description never echoes the assertion.
        assert!(
            !answer.2["error_description"]
                .as_str()
                .unwrap()
                .contains(assertion.as_str())
        );
    }

    // Missing pieces and repeated parameters are invalid requests.
    assert_oauth_error(
        &token_request(&client, &server, &[("scope", "system/Patient.rs")]).await,
        400,
        "invalid_request",
        "no grant_type",
    );
    assert_oauth_error(
        &backend_token(&client, &server, "", &rs384(&claims())).await,
        400,
        "invalid_request",
        "no scope",
    );
    assert_oauth_error(
        &token_request(
            &client,
            &server,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
        )
        .await,
        400,
        "invalid_request",
        "repeated grant_type",
    );
    let r = client
        .post(format!("{}/oauth/token", root(&server)))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");

    drop(server);
    db.remove().await;
}

async fn restart(backend: TestBackend) {
    let Some(db) = Database::create(backend, "oauthrestart").await else {
        return;
    };
    register_client(&db.url);
    let client = reqwest::Client::new();
    let server = start(&db.url, KEK).await;
    let jwks = |server: &Process| {
        let url = format!("{}/oauth/jwks", root(server));
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let first_jwks = jwks(&server).await;
    let (status, _, body) =
        backend_token(&client, &server, "system/Patient.rs", &rs384(&claims())).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(server.terminate().code(), Some(0));

    // Same key-encryption key: the same signing key, so the token still introspects.
    let server = start(&db.url, KEK).await;
    assert_eq!(jwks(&server).await, first_jwks);
    let info = introspect(&client, &server, &token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], CLIENT);
    drop(server);

    // Another key-encryption key: the stored key cannot be opened, so it is skipped, a new
    // one is made and the old token is no longer active.
    let server = start(&db.url, OTHER_KEK).await;
    let new_jwks = jwks(&server).await;
    assert_ne!(new_jwks["keys"][0]["kid"], first_jwks["keys"][0]["kid"]);
    assert_eq!(
        introspect(&client, &server, &token).await,
        json!({"active": false})
    );
    drop(server);

    // Back to the first key: the first key opens again; the server still starts.
    let server = start(&db.url, KEK).await;
    let (status, _, body) =
        backend_token(&client, &server, "system/Patient.rs", &rs384(&claims())).await;
    assert_eq!(status, 200, "{body}");
    drop(server);
    db.remove().await;
}

/// Two instances on one PostgreSQL database sign with the same stored key: a token issued by
/// one introspects as active at the other, and a replayed assertion is refused across them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_postgres_share_keys_and_jtis() {
    let Some(db) = Database::create(TestBackend::Postgres, "oauthtwo").await else {
        return;
    };
    register_client(&db.url);
    let a = start(&db.url, KEK).await;
    let b = start(&db.url, KEK).await;
    let client = reqwest::Client::new();
    let assertion = rs384(&claims());
    let (status, _, body) = backend_token(&client, &a, "system/Patient.rs", &assertion).await;
    assert_eq!(status, 200, "{body}");
    let info = introspect(&client, &b, body["access_token"].as_str().unwrap()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_oauth_error(
        &backend_token(&client, &b, "system/Patient.rs", &assertion).await,
        401,
        "invalid_client",
        "jti replayed at another instance",
    );
    drop((a, b));
    db.remove().await;
}

/// Serves `jwks` at `/jwks.json` on a loopback port with `Cache-Control: max-age=60`, counting
/// the fetches; the URL and the counter.
async fn serve_jwks(jwks: Value) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let counter = counter.clone();
            let body = jwks.to_string();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (
                    [
                        ("content-type", "application/json"),
                        ("cache-control", "public, max-age=60"),
                    ],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/jwks.json"), hits)
}

/// 49, 54 with keys registered by URL: the JWKS is fetched from the registered URL, cached as
/// its Cache-Control allows, and a `jku` other than the registered URL is refused.
async fn jwks_by_url(backend: TestBackend) {
    use std::sync::atomic::Ordering;
    let Some(db) = Database::create(backend, "jwks_url").await else {
        return;
    };
    let (url, hits) = serve_jwks(keys().jwks.clone()).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_curanet"))
        .args(["client", "add", "--database-url", &db.url])
        .args([
            "--client-id",
            CLIENT,
            "--name",
            "by url",
            "--kind",
            "backend",
        ])
        .args(["--jwks-url", &url, "--scope", "system/Patient.rs"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = start(&db.url, KEK).await;
    let client = reqwest::Client::new();

    let ok = backend_token(&client, &server, "system/Patient.rs", &rs384(&claims())).await;
    assert_eq!(ok.0, 200, "{}", ok.2);
    let again = backend_token(&client, &server, "system/Patient.rs", &rs384(&claims())).await;
    assert_eq!(again.0, 200, "{}", again.2);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "max-age=60 lets the server reuse the JWKS"
    );

    let with_jku = |jku: &str| {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS384);
        header.kid = Some("rsa-1".into());
        header.typ = Some("JWT".into());
        header.jku = Some(jku.to_string());
        jsonwebtoken::encode(&header, &claims(), &keys().rsa).unwrap()
    };
    let registered = backend_token(&client, &server, "system/Patient.rs", &with_jku(&url)).await;
    assert_eq!(registered.0, 200, "registered jku: {}", registered.2);
    let other = backend_token(
        &client,
        &server,
        "system/Patient.rs",
        &with_jku("http://127.0.0.1:9/evil.json"),
    )
    .await;
    assert_oauth_error(&other, 401, "invalid_client", "unregistered jku");
    let unknown_kid = sign(Algorithm::RS384, "not-there", &keys().rsa, &claims());
    let refused = backend_token(&client, &server, "system/Patient.rs", &unknown_kid).await;
    assert_oauth_error(&refused, 401, "invalid_client", "kid not in the JWKS");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "an unknown kid refetches the JWKS once (a rotated key)"
    );
    server.terminate();
    db.remove().await;
}
