//! Authorization server scenarios: sign-in latency (argon2id dominates it) and token-endpoint
//! throughput for SMART Backend Services (`client_credentials` with a signed assertion), plus
//! `keygen` to make the backend client's key pair.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Client;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::load::{self, LoadConfig};
use crate::report::Report;

/// The server root of a FHIR base (`http://host:port/fhir` → `http://host:port`).
fn root(base: &str) -> String {
    base.strip_suffix("/fhir").unwrap_or(base).to_string()
}

/// Signs in again and again with one account (`POST /api/auth/login`): each sign-in verifies the
/// password (argon2id), checks throttling and creates a session.
pub async fn login(
    client: Client,
    base: &str,
    identifier: &str,
    password: &str,
    cfg: LoadConfig,
) -> Report {
    let url = format!("{}/api/auth/login", root(base));
    let body = json!({"identifier": identifier, "password": password, "device": "curanet-bench"})
        .to_string();
    load::run("login", cfg, move |_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let bytes = r.bytes().await.map_err(|e| e.to_string())?;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)))
            }
        }
    })
    .await
}

/// What the token scenario signs its assertions with.
pub struct BackendKey {
    pub client_id: String,
    pub kid: String,
    pub pem: String,
}

/// `client_credentials` requests, each with its own assertion (signed before the run on every
/// core, so the load generator's RSA signing does not compete with the server during it).
pub async fn token(
    client: Client,
    base: &str,
    key: &BackendKey,
    scope: &str,
    assertions: usize,
    cfg: LoadConfig,
) -> Result<Report, String> {
    let token_url = format!("{}/oauth/token", root(base));
    let signed = std::sync::Arc::new(presign(key, &token_url, assertions)?);
    let scope = scope.to_string();
    Ok(load::run("token", cfg, move |n| {
        let (client, url, signed, scope) = (
            client.clone(),
            token_url.clone(),
            signed.clone(),
            scope.clone(),
        );
        async move {
            let assertion = signed
                .get(n as usize)
                .ok_or("out of pre-signed assertions: raise --assertions")?;
            let r = client
                .post(&url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", scope.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = r.status();
            let body: Value = r.json().await.map_err(|e| e.to_string())?;
            if status.is_success() && body["access_token"].is_string() {
                Ok(())
            } else {
                Err(format!("{status}: {body}"))
            }
        }
    })
    .await)
}

/// One backend-services access token (for `CURANET_BENCH_TOKEN`).
pub async fn one_token(
    client: &Client,
    base: &str,
    key: &BackendKey,
    scope: &str,
) -> Result<String, String> {
    let token_url = format!("{}/oauth/token", root(base));
    let assertion = presign(key, &token_url, 1)?.remove(0);
    let r = client
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no token: {body}"))
}

/// `count` RS384 assertions with distinct `jti`s, valid for five minutes.
fn presign(key: &BackendKey, token_url: &str, count: usize) -> Result<Vec<String>, String> {
    let encoding =
        EncodingKey::from_rsa_pem(key.pem.as_bytes()).map_err(|e| format!("the key: {e}"))?;
    let exp = chrono::Utc::now().timestamp() + 290;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = count.div_ceil(threads);
    let run = uuid::Uuid::new_v4().simple().to_string();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (encoding, run) = (&encoding, &run);
                s.spawn(move || -> Result<Vec<String>, String> {
                    let mut header = Header::new(Algorithm::RS384);
                    header.kid = Some(key.kid.clone());
                    header.typ = Some("JWT".into());
                    (t * chunk..((t + 1) * chunk).min(count))
                        .map(|i| {
                            let claims = json!({
                                "iss": key.client_id, "sub": key.client_id, "aud": token_url,
                                "exp": exp, "jti": format!("{run}-{i}"),
                            });
                            jsonwebtoken::encode(&header, &claims, encoding)
                                .map_err(|e| e.to_string())
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for h in handles {
            all.extend(
                h.join()
                    .map_err(|_| "a signing thread panicked".to_string())??,
            );
        }
        Ok(all)
    })
}

/// Writes a new RSA key pair for a backend client: `key.pem` (private, PKCS#8) and
/// `jwks.json` (public, kid `kid`, for `curanet client add --jwks-file`).
pub fn keygen(dir: &Path, kid: &str) -> Result<(), String> {
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).map_err(|e| e.to_string())?;
    let public = key.as_public_key();
    let jwks = json!({"keys": [{
        "kty": "RSA", "kid": kid, "alg": "RS384", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.n_bytes()),
        "e": URL_SAFE_NO_PAD.encode(public.e_bytes()),
    }]});
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("key.pem"), pem.as_bytes()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).map_err(|e| e.to_string())?;
    Ok(())
}
