//! What the SMART checks need from the server under test, and the tools to drive it like an app
//! and a browser would: a cookie-keeping browser that fills the sign-in and consent forms, PKCE,
//! token requests, and signed client assertions for backend services.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A person who can sign in on the server's authorization pages.
#[derive(Debug, Clone)]
pub struct Login {
    /// Email or phone.
    pub identifier: String,
    pub password: String,
}

/// A registered app that acts for a user.
#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    pub redirect_uri: String,
    /// The secret of a confidential symmetric client.
    pub secret: Option<String>,
}

/// A registered backend service.
#[derive(Clone)]
pub struct Backend {
    pub client_id: String,
    /// Its private key (RSA, PEM) and the `kid` of the matching registered public key.
    pub key_pem: String,
    pub kid: String,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("client_id", &self.client_id)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The accounts and clients the SMART checks use on the server under test.
#[derive(Debug, Clone)]
pub struct SmartSetup {
    /// A patient account linked to a Patient resource.
    pub patient: Login,
    /// A clinician (doctor) account.
    pub clinician: Login,
    /// A public app registered for `patient/*.cruds user/*.cruds` (and the identity scopes).
    pub app: App,
    /// A confidential symmetric app with the same registration.
    pub confidential_app: App,
    /// A backend service registered for `system/*.cruds`.
    pub backend: Backend,
    /// A second patient account, whose consents the `consent` and `audit` groups change (kept
    /// apart from `patient`, which the SMART groups use at the same time). Without it those
    /// groups fail, saying so.
    pub second_patient: Option<Login>,
    /// A second clinician (a doctor), the actor the `consent` group's consents name; `clinician`
    /// is then the clinician they do not name.
    pub second_clinician: Option<Login>,
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// A random string of URL-safe characters (state, nonce, jti, verifiers).
pub fn random(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

/// The S256 challenge of a PKCE verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The root URL of the server (the FHIR base without `/fhir`), where `/oauth/...` lives when
/// the discovery document does not say otherwise.
pub fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

/// The query parameters of a URL.
pub fn query_of(url: &str) -> HashMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A signed RS384 client assertion for `client_id` at `token_url`, with `claims` merged over
/// the standard ones (`iss`, `sub`, `aud`, `exp` = now + 300, `jti`).
pub fn client_assertion(
    backend: &Backend,
    token_url: &str,
    claims: Value,
) -> Result<String, String> {
    let mut body = json!({
        "iss": backend.client_id,
        "sub": backend.client_id,
        "aud": token_url,
        "exp": now() + 240,
        "jti": random(16),
    });
    if let (Some(target), Some(extra)) = (body.as_object_mut(), claims.as_object()) {
        for (k, v) in extra {
            target.insert(k.clone(), v.clone());
        }
    }
    let key = EncodingKey::from_rsa_pem(backend.key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some(backend.kid.clone());
    header.typ = Some("JWT".into());
    jsonwebtoken::encode(&header, &body, &key).map_err(|e| e.to_string())
}

/// A bearer token source for the FHIR checks: a fixed token, or backend-service tokens fetched
/// (and renewed before they expire) with a client assertion.
#[derive(Clone)]
pub enum Bearer {
    Fixed(String),
    Backend(Arc<BackendTokens>),
}

/// Backend-service tokens for `scope`, renewed when less than a minute is left.
pub struct BackendTokens {
    pub backend: Backend,
    pub token_url: String,
    pub scope: String,
    current: Mutex<Option<(String, Instant)>>,
}

impl BackendTokens {
    pub fn new(backend: Backend, token_url: String, scope: &str) -> Self {
        BackendTokens {
            backend,
            token_url,
            scope: scope.into(),
            current: Mutex::new(None),
        }
    }

    /// A valid token (fetching a new one when needed).
    pub async fn token(&self, http: &reqwest::Client) -> Result<String, String> {
        if let Some((token, until)) = self.current.lock().unwrap().clone()
            && Instant::now() < until
        {
            return Ok(token);
        }
        let assertion = client_assertion(&self.backend, &self.token_url, json!({}))?;
        let reply = http
            .post(&self.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", &self.scope),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &assertion),
            ])
            .send()
            .await
            .map_err(|e| format!("backend token: {e}"))?;
        let status = reply.status();
        let body: Value = reply.json().await.map_err(|e| e.to_string())?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| format!("backend token refused ({status}): {body}"))?
            .to_string();
        let lifetime = body["expires_in"].as_i64().unwrap_or(60).max(61) as u64;
        let until = Instant::now() + Duration::from_secs(lifetime - 60);
        *self.current.lock().unwrap() = Some((token.clone(), until));
        Ok(token)
    }
}

/// A response as a browser sees it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    /// The `Location` of a redirect, absolute.
    pub location: Option<String>,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The forms on the page.
    pub fn forms(&self) -> Vec<Form> {
        forms(&self.text)
    }
}

/// A browser: follows nothing by itself, keeps cookies per name (one site).
pub struct Browser {
    http: reqwest::Client,
    origin: String,
    cookies: Mutex<HashMap<String, String>>,
}

impl Browser {
    /// A browser for the site at `origin` (`http://host:port`).
    pub fn new(origin: &str) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("reqwest client"),
            origin: origin.trim_end_matches('/').into(),
            cookies: Mutex::new(HashMap::new()),
        }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.into()
        } else {
            format!("{}/{}", self.origin, url.trim_start_matches('/'))
        }
    }

    fn cookie_header(&self) -> Option<String> {
        let cookies = self.cookies.lock().unwrap();
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    async fn finish(&self, response: reqwest::Response) -> Result<Page, String> {
        for value in response.headers().get_all("set-cookie") {
            if let Some((pair, _)) = value.to_str().unwrap_or_default().split_once(';')
                && let Some((k, v)) = pair.split_once('=')
            {
                self.cookies
                    .lock()
                    .unwrap()
                    .insert(k.trim().into(), v.trim().into());
            }
        }
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(|l| self.absolute(l));
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok(Page {
            status,
            location,
            text,
            headers,
        })
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Result<Page, String> {
        let mut request = self.http.get(self.absolute(url));
        if let Some(cookie) = self.cookie_header() {
            request = request.header("cookie", cookie);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        self.finish(response).await
    }

    /// POST a form to `url`.
    pub async fn post(&self, url: &str, pairs: &[(String, String)]) -> Result<Page, String> {
        let mut request = self.http.post(self.absolute(url)).form(pairs);
        if let Some(cookie) = self.cookie_header() {
            request = request.header("cookie", cookie);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        self.finish(response).await
    }

    /// Submits `form` with its own values, `fill` replacing or adding fields, and the submit
    /// button `action`.
    pub async fn submit(
        &self,
        form: &Form,
        fill: &[(&str, &str)],
        button: Option<(&str, &str)>,
    ) -> Result<Page, String> {
        let mut pairs: Vec<(String, String)> = form
            .inputs
            .iter()
            .filter(|i| !fill.iter().any(|(n, _)| *n == i.name))
            .filter(|i| match i.kind.as_str() {
                "checkbox" | "radio" => i.checked,
                "submit" | "button" => false,
                _ => true,
            })
            .map(|i| (i.name.clone(), i.value.clone()))
            .collect();
        for (n, v) in fill {
            pairs.push((n.to_string(), v.to_string()));
        }
        if let Some((n, v)) = button {
            pairs.push((n.into(), v.into()));
        }
        self.post(&form.action, &pairs).await
    }
}

/// An HTML form: where it posts and its inputs.
#[derive(Debug, Clone)]
pub struct Form {
    pub action: String,
    pub inputs: Vec<Input>,
    /// `(name, value)` of its submit buttons.
    pub buttons: Vec<(String, String)>,
}

impl Form {
    /// Whether the form has an input of this name.
    pub fn has(&self, name: &str) -> bool {
        self.inputs.iter().any(|i| i.name == name)
    }

    /// The values of the inputs of this name.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.inputs
            .iter()
            .filter(|i| i.name == name)
            .map(|i| i.value.clone())
            .collect()
    }
}

/// An input element.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub value: String,
    pub kind: String,
    pub checked: bool,
}

/// The forms of an HTML page (a small scanner: enough for server-rendered forms).
pub fn forms(html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let after = &rest[start..];
        let end = after.find("</form>").unwrap_or(after.len());
        let body = &after[..end];
        let open_end = body.find('>').unwrap_or(body.len());
        let attrs = attributes(&body[5..open_end]);
        let mut form = Form {
            action: attrs.get("action").cloned().unwrap_or_default(),
            inputs: Vec::new(),
            buttons: Vec::new(),
        };
        for (tag, kind_default) in [("<input", "text"), ("<button", "submit")] {
            let mut scan = body;
            while let Some(i) = scan.find(tag) {
                let tail = &scan[i + tag.len()..];
                let close = tail.find('>').unwrap_or(tail.len());
                let a = attributes(&tail[..close]);
                let kind = a
                    .get("type")
                    .cloned()
                    .unwrap_or_else(|| kind_default.into());
                if let Some(name) = a.get("name") {
                    let value = a.get("value").cloned().unwrap_or_default();
                    if tag == "<button" || kind == "submit" {
                        form.buttons.push((name.clone(), value));
                    } else {
                        form.inputs.push(Input {
                            name: name.clone(),
                            value,
                            checked: a.contains_key("checked"),
                            kind,
                        });
                    }
                }
                scan = &tail[close..];
            }
        }
        out.push(form);
        rest = &after[end..];
    }
    out
}

/// The attributes of a tag's inside (`name="x" checked`), entities decoded.
fn attributes(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == '/') {
            chars.next();
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=' && *c != '>'))
                .collect();
        if name.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            match chars.peek() {
                Some(&q @ ('"' | '\'')) => {
                    chars.next();
                    value = std::iter::from_fn(|| chars.next_if(|c| *c != q)).collect();
                    chars.next();
                }
                _ => value = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect(),
            }
        }
        out.insert(name.to_ascii_lowercase(), decode_entities(&value));
    }
    out
}

fn decode_entities(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// What an authorization request asks for.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub app: App,
    pub scope: String,
    pub aud: String,
    pub state: String,
    pub verifier: String,
    /// Replaces or removes (`None`) standard parameters, or adds others.
    pub overrides: Vec<(String, Option<String>)>,
    /// Send the request as a form POST.
    pub post: bool,
}

impl AuthRequest {
    /// A standard request of `app` for `scope` against the FHIR base `aud`.
    pub fn new(app: &App, scope: &str, aud: &str) -> Self {
        AuthRequest {
            app: app.clone(),
            scope: scope.into(),
            aud: aud.into(),
            state: uuid::Uuid::new_v4().to_string(),
            verifier: random(48),
            overrides: Vec::new(),
            post: false,
        }
    }

    /// Sets (or with `None` removes) a parameter.
    pub fn with(mut self, name: &str, value: Option<&str>) -> Self {
        self.overrides
            .push((name.into(), value.map(str::to_string)));
        self
    }

    /// The parameters.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = [
            ("response_type", "code".to_string()),
            ("client_id", self.app.client_id.clone()),
            ("redirect_uri", self.app.redirect_uri.clone()),
            ("scope", self.scope.clone()),
            ("state", self.state.clone()),
            ("aud", self.aud.clone()),
            ("code_challenge", s256(&self.verifier)),
            ("code_challenge_method", "S256".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (name, value) in &self.overrides {
            pairs.retain(|(k, _)| k != name);
            if let Some(v) = value {
                pairs.push((name.clone(), v.clone()));
            }
        }
        pairs
    }
}

/// What the user does on the consent page.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// Deny instead of allow.
    pub deny: bool,
    /// Grant exactly these offered scopes (default: what the page pre-selects).
    pub only: Option<Vec<String>>,
    /// The patient a clinician picks (searched by this text, the first match taken).
    pub patient: Option<String>,
}

/// How an authorization ended for the app.
#[derive(Debug)]
pub enum Outcome {
    /// Redirected to the app's redirect URI with these query parameters.
    Redirected(HashMap<String, String>),
    /// Stopped on a page (an error page, or a page the flow did not expect).
    Stopped(Page),
}

impl Outcome {
    /// The `code` of a successful redirect, else an error describing the outcome.
    pub fn code(&self) -> Result<String, String> {
        match self {
            Outcome::Redirected(q) if q.contains_key("code") => Ok(q["code"].clone()),
            Outcome::Redirected(q) => Err(format!("redirected without a code: {q:?}")),
            Outcome::Stopped(p) => Err(format!(
                "stopped on a page (HTTP {}): {}",
                p.status,
                p.text.chars().take(300).collect::<String>()
            )),
        }
    }
}

/// Runs an authorization: the app's request, the sign-in of `login`, and `decision` on the
/// consent page, in one browser (a new one when `browser` is `None`).
pub async fn authorize(
    authorize_url: &str,
    request: &AuthRequest,
    login: &Login,
    decision: &Decision,
    browser: Option<&Browser>,
) -> Result<Outcome, String> {
    let own;
    let browser = match browser {
        Some(b) => b,
        None => {
            own = Browser::new(&origin_of(authorize_url));
            &own
        }
    };
    let first = if request.post {
        browser.post(authorize_url, &request.pairs()).await?
    } else {
        let url = format!(
            "{authorize_url}?{}",
            form_urlencoded::Serializer::new(String::new())
                .extend_pairs(request.pairs())
                .finish()
        );
        browser.get(&url).await?
    };
    let mut page = first;
    for _ in 0..6 {
        if let Some(location) = &page.location {
            if location.starts_with(&request.app.redirect_uri) {
                return Ok(Outcome::Redirected(query_of(location)));
            }
            page = browser.get(location).await?;
            continue;
        }
        if page.status != 200 {
            return Ok(Outcome::Stopped(page));
        }
        let forms = page.forms();
        if let Some(form) = forms.iter().find(|f| f.has("password")) {
            page = browser
                .submit(
                    form,
                    &[
                        ("identifier", &login.identifier),
                        ("password", &login.password),
                    ],
                    form.buttons.first().map(|(n, v)| (n.as_str(), v.as_str())),
                )
                .await?;
            if page.status == 200 && page.forms().iter().any(|f| f.has("password")) {
                return Ok(Outcome::Stopped(page));
            }
            continue;
        }
        let Some(form) = forms
            .iter()
            .find(|f| f.buttons.iter().any(|(_, v)| v == "approve"))
        else {
            return Ok(Outcome::Stopped(page));
        };
        let mut form = form.clone();
        let picker = form.buttons.iter().any(|(_, v)| v == "find");
        if picker && !form.has("patient") {
            let Some(query) = &decision.patient else {
                return Ok(Outcome::Stopped(page));
            };
            page = browser
                .submit(&form, &[("patient_query", query)], Some(("action", "find")))
                .await?;
            let again = page.forms();
            let Some(next) = again
                .iter()
                .find(|f| f.buttons.iter().any(|(_, v)| v == "approve"))
            else {
                return Ok(Outcome::Stopped(page));
            };
            form = next.clone();
            if !form.has("patient") {
                return Ok(Outcome::Stopped(page));
            }
        }
        if let Some(only) = &decision.only {
            for input in &mut form.inputs {
                if input.name == "grant" {
                    input.checked = only.contains(&input.value);
                }
            }
        }
        if let Some(first) = form.inputs.iter().position(|i| i.name == "patient") {
            form.inputs[first].checked = true;
        }
        let button = if decision.deny { "deny" } else { "approve" };
        page = browser.submit(&form, &[], Some(("action", button))).await?;
        if page.location.is_none() {
            return Ok(Outcome::Stopped(page));
        }
    }
    Ok(Outcome::Stopped(page))
}

/// A token-endpoint reply.
#[derive(Debug)]
pub struct TokenReply {
    pub status: u16,
    pub json: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TokenReply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The string field `name` ("" when absent).
    pub fn field(&self, name: &str) -> String {
        self.json[name].as_str().unwrap_or_default().to_string()
    }
}

/// POSTs a form to an OAuth endpoint, with Basic credentials and extra headers when given.
pub async fn post_form(
    url: &str,
    pairs: &[(&str, &str)],
    basic: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> Result<TokenReply, String> {
    let http = reqwest::Client::new();
    let mut request = http.post(url).form(pairs);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let reply = request
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = reply.status().as_u16();
    let headers = reply.headers().clone();
    let bytes = reply.bytes().await.map_err(|e| e.to_string())?;
    Ok(TokenReply {
        status,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers,
    })
}

/// Exchanges a code of a public `app` (with `verifier`).
pub async fn exchange(
    token_url: &str,
    app: &App,
    code: &str,
    verifier: &str,
) -> Result<TokenReply, String> {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", app.redirect_uri.as_str()),
        ("code_verifier", verifier),
    ];
    let basic = app.secret.as_deref().map(|s| (app.client_id.as_str(), s));
    if basic.is_none() {
        pairs.push(("client_id", app.client_id.as_str()));
    }
    post_form(token_url, &pairs, basic, &[]).await
}

/// The scopes of the standalone patient launch of the SMART checklist (case 6).
pub const PATIENT_LAUNCH_SCOPES: &str =
    "launch/patient openid fhirUser offline_access patient/*.rs";

/// The standard standalone launch (checklist case 6) by the set-up's patient with the public
/// app, approved as the page pre-selects: the token reply.
pub async fn patient_launch(c: &crate::Client) -> Result<TokenReply, String> {
    let s = c.smart()?;
    Ok(launch(
        c,
        &s.app,
        &s.patient,
        PATIENT_LAUNCH_SCOPES,
        &Decision::default(),
    )
    .await?
    .1)
}

/// A whole standalone launch of `app` by `login` for `scope`, approved as the page pre-selects
/// (or as `decision` says): the request made and the token reply of the code exchange.
pub async fn launch(
    c: &crate::Client,
    app: &App,
    login: &Login,
    scope: &str,
    decision: &Decision,
) -> Result<(AuthRequest, TokenReply), String> {
    let request = AuthRequest::new(app, scope, c.base());
    let outcome = authorize(&c.oauth("authorize"), &request, login, decision, None).await?;
    let code = outcome.code()?;
    let reply = exchange(&c.oauth("token"), app, &code, &request.verifier).await?;
    if reply.status != 200 {
        return Err(format!(
            "the code exchange failed with HTTP {}: {}",
            reply.status, reply.json
        ));
    }
    Ok((request, reply))
}

/// Decodes a JWT's header and payload without verifying it (to inspect what a server issued).
pub fn jwt_parts(token: &str) -> Result<(Value, Value), String> {
    let mut parts = token.split('.');
    let mut part = || -> Result<Value, String> {
        let text = parts.next().ok_or("not a JWT")?;
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    Ok((part()?, part()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_forms_like_a_browser() {
        let html = r#"<form method="post" action="/oauth/authorize">
<input type="hidden" name="state" value="a&amp;b">
<label><input type="checkbox" name="grant" value="patient/*.rs" checked> x</label>
<input type="checkbox" name="grant" value="offline_access">
<button type="submit" name="action" value="approve">Allow</button>
</form>"#;
        let forms = forms(html);
        assert_eq!(forms.len(), 1);
        let f = &forms[0];
        assert_eq!(f.action, "/oauth/authorize");
        assert_eq!(f.values("state"), vec!["a&b"]);
        assert_eq!(f.values("grant").len(), 2);
        assert!(
            f.inputs
                .iter()
                .any(|i| i.value == "patient/*.rs" && i.checked)
        );
        assert!(
            f.inputs
                .iter()
                .any(|i| i.value == "offline_access" && !i.checked)
        );
        assert_eq!(
            f.buttons,
            vec![("action".to_string(), "approve".to_string())]
        );
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
