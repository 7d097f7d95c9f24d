//! SMART Backend Services fixtures: the client's keys, signed assertions, `curanet client add`.

use std::process::{Command, Output};
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p384::ecdsa::SigningKey as EcKey;
use p384::elliptic_curve::Generate;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

/// The client's keys: a registered RSA key (RS384), a registered P-384 key (ES384), and an RSA
/// key that is not registered. Generated once per test binary.
pub struct Keys {
    pub rsa: EncodingKey,
    pub ec: EncodingKey,
    pub unregistered: EncodingKey,
    pub jwks: Value,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let generate = || rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
        let other = std::thread::spawn(generate);
        let registered = generate();
        let unregistered = other.join().unwrap();
        let pem = |k: &rsa::PrivateKey| k.to_pkcs8_pem(LineEnding::LF).unwrap();
        let ec = EcKey::try_generate_from_rng(&mut getrandom::SysRng).unwrap();
        let point = ec.verifying_key().to_sec1_point(false);
        let public = registered.as_public_key();
        Keys {
            rsa: EncodingKey::from_rsa_pem(pem(&registered).as_bytes()).unwrap(),
            unregistered: EncodingKey::from_rsa_pem(pem(&unregistered).as_bytes()).unwrap(),
            ec: EncodingKey::from_ec_pem(ec.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes())
                .unwrap(),
            jwks: json!({ "keys": [
                {
                    "kty": "RSA", "kid": "rsa-1", "alg": "RS384", "use": "sig",
                    "n": URL_SAFE_NO_PAD.encode(public.n_bytes()),
                    "e": URL_SAFE_NO_PAD.encode(public.e_bytes()),
                },
                {
                    "kty": "EC", "kid": "ec-1", "crv": "P-384",
                    "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                    "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
                },
            ]}),
        }
    })
}

/// The current Unix time.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A JWT over `claims` with `alg`, `kid` and `typ: JWT`.
pub fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// An RS384 assertion under the registered RSA key.
pub fn rs384(claims: &Value) -> String {
    sign(Algorithm::RS384, "rsa-1", &keys().rsa, claims)
}

/// Runs `curanet client add` for a backend client with this JWKS file and scope.
pub fn client_add(
    database_url: &str,
    client_id: &str,
    scope: &str,
    jwks: &std::path::Path,
) -> Output {
    Command::new(env!("CARGO_BIN_EXE_curanet"))
        .args(["client", "add", "--database-url", database_url])
        .args(["--client-id", client_id, "--name", client_id])
        .arg("--jwks-file")
        .arg(jwks)
        .args(["--scope", scope])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run curanet client add")
}

/// Registers a backend client with the public keys of [`keys`]; panics when it fails.
pub fn register(database_url: &str, client_id: &str, scope: &str) {
    let dir = std::env::temp_dir().join(format!("curanet-jwks-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, keys().jwks.to_string()).unwrap();
    let out = client_add(database_url, client_id, scope, &jwks);
    let _ = std::fs::remove_dir_all(dir);
    assert!(
        out.status.success(),
        "client add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client-credentials access token for `client_id` with `scope`, from the server at `root`
/// whose token URL is `token_url`.
pub async fn access_token(
    client: &reqwest::Client,
    root: &str,
    token_url: &str,
    client_id: &str,
    scope: &str,
) -> String {
    let assertion = rs384(&json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now() + 240,
        "jti": uuid::Uuid::new_v4().to_string(),
    }));
    let r = client
        .post(format!("{root}/oauth/token"))
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
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token for {scope}: {body}"))
        .to_string()
}
