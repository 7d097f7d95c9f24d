//! Signing in to a CuraNet server the way a native app should (RFC 8252, SMART App Launch):
//! the server's own sign-in and consent pages in the system browser, so the app never sees the
//! password; PKCE S256; the code comes back to a loopback redirect on a port the system gives
//! (`http://127.0.0.1:{port}/callback`). Then refresh and revocation (sign-out).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{DesktopError, Result};

/// The tokens of a signed-in session.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    pub scope: String,
    /// The patient in context (a patient's own session).
    pub patient: Option<String>,
    /// The user's FHIR resource URL.
    pub fhir_user: Option<String>,
}

/// The server's OAuth endpoints, from its SMART configuration.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorize: String,
    pub token: String,
    pub revoke: Option<String>,
}

/// A sign-in in progress: open [`SignIn::authorize_url`] in the browser, then [`SignIn::finish`].
pub struct SignIn {
    /// The URL to open in the system browser.
    pub authorize_url: String,
    /// Where the browser comes back with the code.
    pub redirect_uri: String,
    /// The `state` sent (checked on return).
    pub state: String,
    /// The PKCE challenge sent (S256 of the verifier, which never leaves the app).
    pub code_challenge: String,
    verifier: String,
    client_id: String,
    endpoints: Endpoints,
    listener: TcpListener,
}

fn random(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

fn protocol(e: impl std::fmt::Display) -> DesktopError {
    DesktopError::Protocol(e.to_string())
}

/// Reads the server's SMART configuration (`{fhir_base}/.well-known/smart-configuration`).
pub async fn endpoints(http: &reqwest::Client, fhir_base: &str) -> Result<Endpoints> {
    let config: Value = http
        .get(format!("{fhir_base}/.well-known/smart-configuration"))
        .send()
        .await
        .map_err(protocol)?
        .json()
        .await
        .map_err(protocol)?;
    let text = |k: &str| config[k].as_str().map(str::to_string);
    Ok(Endpoints {
        authorize: text("authorization_endpoint")
            .ok_or_else(|| protocol("no authorization_endpoint"))?,
        token: text("token_endpoint").ok_or_else(|| protocol("no token_endpoint"))?,
        revoke: text("revocation_endpoint"),
    })
}

/// Starts a sign-in of `client_id` (a public client registered with the redirect
/// `http://127.0.0.1/callback`) for `scope` at the server of `fhir_base`.
pub async fn begin(
    http: &reqwest::Client,
    fhir_base: &str,
    client_id: &str,
    scope: &str,
) -> Result<SignIn> {
    let endpoints = endpoints(http, fhir_base).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(protocol)?;
    let port = listener.local_addr().map_err(protocol)?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let verifier = random(32);
    let code_challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state = random(16);
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", &redirect_uri),
            ("scope", scope),
            ("state", &state),
            ("aud", fhir_base),
            ("code_challenge", &code_challenge),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    Ok(SignIn {
        authorize_url: format!("{}?{query}", endpoints.authorize),
        redirect_uri,
        state,
        code_challenge,
        verifier,
        client_id: client_id.to_string(),
        endpoints,
        listener,
    })
}

impl SignIn {
    /// Waits (at most `wait`) for the browser to come back, checks `state`, and exchanges the
    /// code for tokens.
    pub async fn finish(self, http: &reqwest::Client, wait: Duration) -> Result<Tokens> {
        let query = tokio::time::timeout(wait, callback(&self.listener))
            .await
            .map_err(|_| protocol("the sign-in was not completed in time"))??;
        let params: std::collections::HashMap<String, String> =
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        if let Some(error) = params.get("error") {
            return Err(DesktopError::Refused {
                status: 400,
                message: params
                    .get("error_description")
                    .cloned()
                    .unwrap_or_else(|| error.clone()),
            });
        }
        if params.get("state") != Some(&self.state) {
            return Err(protocol(
                "the sign-in answer is not for this request (state)",
            ));
        }
        let code = params.get("code").ok_or_else(|| protocol("no code"))?;
        token_request(
            http,
            &self.endpoints.token,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("client_id", &self.client_id),
                ("code_verifier", &self.verifier),
            ],
        )
        .await
    }
}

/// Accepts the browser's one request to the loopback redirect and returns its query.
async fn callback(listener: &TcpListener) -> Result<String> {
    loop {
        let (mut stream, _) = listener.accept().await.map_err(protocol)?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut buf).await.map_err(protocol)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let target = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let Some(query) = target.strip_prefix("/callback?") else {
            // A favicon or other request of the browser: not ours.
            let _ = stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        };
        let page = "<!doctype html><title>CuraNet</title><p>You are signed in to CuraNet Desktop. You can close this window.</p>";
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = stream.write_all(answer.as_bytes()).await;
        return Ok(query.to_string());
    }
}

/// Refreshes a session (the refresh token rotates: keep the new one).
pub async fn refresh(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    refresh_token: &str,
) -> Result<Tokens> {
    token_request(
        http,
        &endpoints.token,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
    )
    .await
}

/// Revokes a token (sign-out): the refresh token ends the whole grant.
pub async fn revoke(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    client_id: &str,
    token: &str,
) -> Result<()> {
    let Some(url) = &endpoints.revoke else {
        return Ok(());
    };
    let r = http
        .post(url)
        .form(&[("token", token), ("client_id", client_id)])
        .send()
        .await
        .map_err(protocol)?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(DesktopError::Refused {
            status: r.status().as_u16(),
            message: r.text().await.unwrap_or_default(),
        })
    }
}

async fn token_request(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Result<Tokens> {
    let r = http.post(url).form(form).send().await.map_err(protocol)?;
    let status = r.status();
    let body: Value = r.json().await.map_err(protocol)?;
    if !status.is_success() {
        return Err(DesktopError::Refused {
            status: status.as_u16(),
            message: body["error_description"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or_default()
                .to_string(),
        });
    }
    let text = |k: &str| body[k].as_str().map(str::to_string);
    Ok(Tokens {
        access_token: text("access_token").ok_or_else(|| protocol("no access_token"))?,
        refresh_token: text("refresh_token"),
        expires_at: chrono::Utc::now().timestamp() + body["expires_in"].as_i64().unwrap_or(0),
        scope: text("scope").unwrap_or_default(),
        patient: text("patient"),
        fhir_user: text("fhirUser"),
    })
}
