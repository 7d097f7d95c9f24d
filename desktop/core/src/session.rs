//! Signing in to a CuraNet server the way a native app should (RFC 8252, SMART App Launch):
//! the server's own sign-in and consent pages in the system browser, so the app never sees the
//! password; PKCE S256; the code comes back to a loopback redirect on a port the system gives
//! (`http://127.0.0.1:{port}/callback`). Then refresh and revocation (sign-out), and the
//! [`Session`] that hands out a valid access token, refreshing it silently.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{DesktopError, Result};

/// The tokens of a signed-in session (never printed: `Debug` leaves the tokens out).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("patient", &self.patient)
            .field("fhir_user", &self.fhir_user)
            .finish_non_exhaustive()
    }
}

/// The server's OAuth endpoints, from its SMART configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A failed request to the authorization server: unreachable, or a protocol failure.
fn transport(e: reqwest::Error) -> DesktopError {
    if e.is_connect() || e.is_timeout() || e.is_request() {
        DesktopError::Unreachable(e.to_string())
    } else {
        protocol(e)
    }
}

/// Reads the server's SMART configuration (`{fhir_base}/.well-known/smart-configuration`).
pub async fn endpoints(http: &reqwest::Client, fhir_base: &str) -> Result<Endpoints> {
    let config: Value = http
        .get(format!("{fhir_base}/.well-known/smart-configuration"))
        .send()
        .await
        .map_err(transport)?
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
    /// The server's OAuth endpoints (kept with the session, to refresh and revoke offline-first).
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

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
        .map_err(transport)?;
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
    let r = http.post(url).form(form).send().await.map_err(transport)?;
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
        fhir_user: text("fhirUser").or_else(|| id_token_claim(&body, "fhirUser")),
    })
}

/// A claim of the answer's ID token. Its signature is not checked: it came straight from the
/// token endpoint, which the app called itself (OpenID Connect Core §3.1.3.7).
fn id_token_claim(body: &Value, claim: &str) -> Option<String> {
    let payload = body["id_token"].as_str()?.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims[claim].as_str().map(str::to_string)
}

/// How long before its expiry an access token is renewed (clock skew, a slow request).
const RENEW_BEFORE_SECS: i64 = 60;

/// Told of every change of a session's tokens: `Some` after a renewal (keep the new tokens),
/// `None` when the session has ended (the server refused to renew it: revoked or expired).
pub type OnTokens = Arc<dyn Fn(Option<&Tokens>) + Send + Sync>;

/// A signed-in session: hands out a valid access token, renewing it silently before it expires
/// and once after the server refuses it (401). One renewal at a time: refresh tokens rotate,
/// and a second renewal with the old one would fail (or end the grant).
#[derive(Clone)]
pub struct Session {
    inner: Arc<SessionInner>,
}

struct SessionInner {
    http: reqwest::Client,
    endpoints: Endpoints,
    client_id: String,
    /// `None` once the session has ended.
    tokens: tokio::sync::Mutex<Option<Tokens>>,
    on_tokens: OnTokens,
}

fn ended() -> DesktopError {
    DesktopError::NotSignedIn("the session has ended (expired or revoked): sign in again".into())
}

impl Session {
    /// The session of `tokens` issued to `client_id` by the server of `endpoints`.
    pub fn new(
        http: reqwest::Client,
        endpoints: Endpoints,
        client_id: &str,
        tokens: Tokens,
        on_tokens: OnTokens,
    ) -> Session {
        Session {
            inner: Arc::new(SessionInner {
                http,
                endpoints,
                client_id: client_id.to_string(),
                tokens: tokio::sync::Mutex::new(Some(tokens)),
                on_tokens,
            }),
        }
    }

    /// The server's OAuth endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The current tokens; `None` once the session has ended.
    pub async fn tokens(&self) -> Option<Tokens> {
        self.inner.tokens.lock().await.clone()
    }

    /// A valid access token: the current one, renewed first when it expires within a minute.
    /// When the server cannot be reached the current one is given (the request will find out).
    pub async fn access_token(&self) -> Result<String> {
        let mut tokens = self.inner.tokens.lock().await;
        let current = tokens.as_ref().ok_or_else(ended)?;
        let expiring = current.expires_at - RENEW_BEFORE_SECS <= chrono::Utc::now().timestamp();
        if expiring
            && current.refresh_token.is_some()
            && let Some(renewed) = self.renew(&mut tokens).await?
        {
            return Ok(renewed);
        }
        tokens
            .as_ref()
            .map(|t| t.access_token.clone())
            .ok_or_else(ended)
    }

    /// The server refused `rejected` (401): renews once, unless another request already did.
    /// `None` when it cannot be renewed now (the server is unreachable).
    pub async fn renew_after_refusal(&self, rejected: &str) -> Result<Option<String>> {
        let mut tokens = self.inner.tokens.lock().await;
        let current = tokens.as_ref().ok_or_else(ended)?;
        if current.access_token != rejected {
            return Ok(Some(current.access_token.clone()));
        }
        self.renew(&mut tokens).await
    }

    /// Renews with the refresh token (the caller holds the lock).
    async fn renew(&self, tokens: &mut Option<Tokens>) -> Result<Option<String>> {
        let Some(current) = tokens.as_ref() else {
            return Err(ended());
        };
        let Some(refresh_token) = current.refresh_token.clone() else {
            *tokens = None;
            (self.inner.on_tokens)(None);
            return Err(ended());
        };
        match refresh(
            &self.inner.http,
            &self.inner.endpoints,
            &self.inner.client_id,
            &refresh_token,
        )
        .await
        {
            Ok(mut renewed) => {
                // A refresh answer may leave out what does not change.
                renewed.refresh_token = renewed.refresh_token.or(Some(refresh_token));
                renewed.fhir_user = renewed.fhir_user.or_else(|| current.fhir_user.clone());
                renewed.patient = renewed.patient.or_else(|| current.patient.clone());
                let access = renewed.access_token.clone();
                (self.inner.on_tokens)(Some(&renewed));
                *tokens = Some(renewed);
                tracing::debug!("the session was renewed");
                Ok(Some(access))
            }
            Err(DesktopError::Unreachable(_)) => Ok(None),
            Err(DesktopError::Refused { status, .. }) if status == 400 || status == 401 => {
                tracing::info!(
                    status,
                    "the server refused to renew the session: it has ended"
                );
                *tokens = None;
                (self.inner.on_tokens)(None);
                Err(ended())
            }
            Err(e) => Err(e),
        }
    }

    /// Ends the session: the grant is revoked at the server (its refresh token, which ends the
    /// whole grant; else the access token) and the tokens are forgotten. The tokens are
    /// forgotten even when the revocation fails (the error says so).
    pub async fn end(&self) -> Result<()> {
        let Some(tokens) = self.inner.tokens.lock().await.take() else {
            return Ok(());
        };
        let token = tokens
            .refresh_token
            .as_deref()
            .unwrap_or(&tokens.access_token);
        revoke(
            &self.inner.http,
            &self.inner.endpoints,
            &self.inner.client_id,
            token,
        )
        .await
    }
}
