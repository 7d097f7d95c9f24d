//! A small FHIR HTTP client for the checks: raw requests, replies with parsed JSON.

use std::sync::Arc;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::smart::{Bearer, SmartSetup};

/// The client a check uses, bound to a FHIR base URL, sending a bearer token when the server
/// needs one, and carrying the SMART set-up for the authorization checks.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    bearer: Option<Bearer>,
    smart: Option<Arc<SmartSetup>>,
}

/// A reply: status, headers, raw body and the body parsed as JSON (when it is).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Fails unless the status is `want`.
    pub fn expect(&self, want: u16) -> Result<&Self, String> {
        if self.status == want {
            Ok(self)
        } else {
            Err(format!(
                "expected HTTP {want}, got {}: {}",
                self.status,
                truncate(&self.text)
            ))
        }
    }

    /// Fails unless this is an error reply with an OperationOutcome body of status `want`.
    pub fn expect_outcome(&self, want: u16) -> Result<&Self, String> {
        self.expect(want)?;
        if self.json["resourceType"] != "OperationOutcome" {
            return Err(format!(
                "HTTP {want} without an OperationOutcome body: {}",
                truncate(&self.text)
            ));
        }
        if !self
            .header("content-type")
            .starts_with("application/fhir+json")
        {
            return Err(format!(
                "OperationOutcome served as '{}'",
                self.header("content-type")
            ));
        }
        Ok(self)
    }

    /// Whether an OperationOutcome issue has this expression.
    pub fn has_issue_at(&self, expression: &str) -> bool {
        self.json["issue"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| {
                i["expression"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e == expression)
            })
    }

    /// The resource id in the body.
    pub fn id(&self) -> String {
        self.json["id"].as_str().unwrap_or_default().to_string()
    }

    /// The `meta.versionId` in the body.
    pub fn version_id(&self) -> String {
        self.json["meta"]["versionId"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(400).collect()
}

/// Where a request goes and what it carries.
pub struct Request<'a> {
    pub method: Method,
    pub path: &'a str,
    pub body: Option<Vec<u8>>,
    pub headers: Vec<(&'a str, String)>,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080/fhir`).
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("reqwest client");
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            bearer: None,
            smart: None,
        }
    }

    /// The same client sending `bearer` on every request (unless a check sets Authorization).
    pub fn with_bearer(&self, bearer: Option<Bearer>) -> Self {
        Client {
            bearer,
            ..self.clone()
        }
    }

    /// The same client sending this access token.
    pub fn with_token(&self, token: &str) -> Self {
        self.with_bearer(Some(Bearer::Fixed(token.to_string())))
    }

    /// The same client without any token.
    pub fn anonymous(&self) -> Self {
        self.with_bearer(None)
    }

    /// The same client with the SMART set-up.
    pub fn with_smart(&self, smart: Option<Arc<SmartSetup>>) -> Self {
        Client {
            smart,
            ..self.clone()
        }
    }

    /// The SMART set-up (accounts, apps, backend client), when one was given.
    pub fn smart(&self) -> Result<&SmartSetup, String> {
        self.smart
            .as_deref()
            .ok_or_else(|| "no SMART set-up was given (accounts and clients)".to_string())
    }

    /// The server's root URL (the FHIR base without its last path segment `/fhir`).
    pub fn root(&self) -> String {
        self.base
            .strip_suffix("/fhir")
            .unwrap_or(&self.base)
            .to_string()
    }

    /// The authorization server's endpoint `/oauth/{name}`.
    pub fn oauth(&self, name: &str) -> String {
        format!("{}/oauth/{name}", self.root())
    }

    /// The FHIR base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request (path relative to the base, or an absolute URL).
    pub async fn send(&self, req: Request<'_>) -> Result<Reply, String> {
        let url = if req.path.starts_with("http") {
            req.path.to_string()
        } else if req.path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, req.path.trim_start_matches('/'))
        };
        let mut builder = self.http.request(req.method.clone(), &url);
        let mut has_accept = false;
        let has_authorization = req
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if !has_authorization {
            match &self.bearer {
                Some(Bearer::Fixed(token)) => builder = builder.bearer_auth(token),
                Some(Bearer::Backend(source)) => {
                    builder = builder.bearer_auth(source.token(&self.http).await?)
                }
                None => {}
            }
        }
        for (k, v) in &req.headers {
            has_accept |= k.eq_ignore_ascii_case("accept");
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
            let value = HeaderValue::from_str(v).map_err(|e| e.to_string())?;
            builder = builder.header(name, value);
        }
        if !has_accept {
            builder = builder.header("accept", "application/fhir+json");
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| format!("{} {url}: {e}", req.method))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            text,
            json,
        })
    }

    /// GET with extra headers.
    pub async fn get_with(
        &self,
        path: &str,
        headers: Vec<(&str, String)>,
    ) -> Result<Reply, String> {
        self.send(Request {
            method: Method::GET,
            path,
            body: None,
            headers,
        })
        .await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.get_with(path, vec![]).await
    }

    /// A write with a JSON body and `Content-Type: application/fhir+json`, plus extra headers.
    pub async fn write(
        &self,
        method: Method,
        path: &str,
        body: &Value,
        headers: Vec<(&str, String)>,
    ) -> Result<Reply, String> {
        self.write_raw(
            method,
            path,
            serde_json::to_vec(body).expect("json"),
            headers,
        )
        .await
    }

    /// A write with raw body bytes.
    pub async fn write_raw(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        mut headers: Vec<(&str, String)>,
    ) -> Result<Reply, String> {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("content-type", "application/fhir+json".into()));
        }
        self.send(Request {
            method,
            path,
            body: Some(body),
            headers,
        })
        .await
    }

    /// POST a resource to its type endpoint.
    pub async fn create(&self, resource: &Value) -> Result<Reply, String> {
        let rt = resource["resourceType"]
            .as_str()
            .unwrap_or("Basic")
            .to_string();
        self.write(Method::POST, &rt, resource, vec![]).await
    }

    /// PUT a resource to `Type/id`.
    pub async fn update(&self, resource: &Value) -> Result<Reply, String> {
        let path = format!(
            "{}/{}",
            resource["resourceType"].as_str().unwrap_or(""),
            resource["id"].as_str().unwrap_or("")
        );
        self.write(Method::PUT, &path, resource, vec![]).await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Result<Reply, String> {
        self.send(Request {
            method: Method::DELETE,
            path,
            body: None,
            headers: vec![],
        })
        .await
    }
}

/// A unique suffix for ids and names, so checks never collide.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}
