//! Client registration: the one set of rules for clients registered on the command line
//! (`curanet client add`) and by admins through dynamic registration (RFC 7591,
//! `POST /oauth/register`).

use curanet_storage::{ClientKind, OAuthClient};
use serde_json::{Value, json};

use crate::scope::{Level, Scopes};
use crate::token::{hash_opaque_token, new_opaque_token};

/// Why a registration is refused (RFC 7591 §3.2.2 error codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// A redirect URI is missing or not acceptable.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// Any other metadata field is invalid.
    #[error("{0}")]
    InvalidClientMetadata(String),
}

impl RegistrationError {
    /// The RFC 7591 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            RegistrationError::InvalidClientMetadata(_) => "invalid_client_metadata",
        }
    }
}

/// What a client asks to be registered as.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientRegistration {
    /// The client id (generated when `None`).
    pub client_id: Option<String>,
    /// The app's name, shown on the consent page.
    pub name: String,
    /// How it authenticates.
    pub kind: Option<ClientKind>,
    /// Where codes may be sent (apps acting for users).
    pub redirect_uris: Vec<String>,
    /// The public JWKS by value (asymmetric and backend clients).
    pub jwks: Option<Value>,
    /// The JWKS by URL (asymmetric and backend clients).
    pub jwks_url: Option<String>,
    /// The scopes it may ask for.
    pub scope: String,
    /// Browser origins allowed by CORS; when empty, those of the redirect URIs.
    pub allowed_origins: Vec<String>,
}

/// A registered client and, for a confidential symmetric client, its secret (shown once).
#[derive(Debug)]
pub struct RegisteredClient {
    /// The record to store.
    pub client: OAuthClient,
    /// The client secret in clear; only its hash is stored.
    pub secret: Option<String>,
}

/// CuraNet Desktop's client id.
pub const DESKTOP_CLIENT_ID: &str = "curanet-desktop";

/// CuraNet Desktop, the first-party native app: a public client (PKCE, no secret) whose code
/// comes back to a loopback redirect on any port (RFC 8252 §7.3). It acts for the people who
/// sign in to it, so it gets user and patient scopes; consent still governs what it sees.
pub fn desktop_client() -> ClientRegistration {
    ClientRegistration {
        client_id: Some(DESKTOP_CLIENT_ID.into()),
        name: "CuraNet Desktop".into(),
        kind: Some(ClientKind::Public),
        redirect_uris: vec!["http://127.0.0.1/callback".into()],
        scope: "user/*.cruds patient/*.cruds openid fhirUser offline_access".into(),
        ..ClientRegistration::default()
    }
}

/// Checks a registration and makes the record to store at `now` (Unix seconds).
pub fn register(
    request: ClientRegistration,
    created_by: Option<String>,
    now: i64,
) -> Result<RegisteredClient, RegistrationError> {
    let metadata = RegistrationError::InvalidClientMetadata;
    let kind = request.kind.unwrap_or(ClientKind::Public);
    let client_id = match request.client_id {
        Some(id) => id,
        None => uuid::Uuid::now_v7().simple().to_string(),
    };
    if client_id.trim().is_empty()
        || client_id.len() > 200
        || client_id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(metadata(
            "the client id must be 1 to 200 characters without spaces".into(),
        ));
    }
    let name = request.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(metadata(
            "client_name is required (at most 200 characters)".into(),
        ));
    }
    let scopes = Scopes::parse(&request.scope).map_err(|e| metadata(format!("scope: {e}")))?;
    if scopes.is_empty() {
        return Err(metadata(
            "scope must list the scopes the client may ask for".into(),
        ));
    }
    let system = scopes.has_level(Level::System);
    let other = scopes.has_level(Level::Patient) || scopes.has_level(Level::User);
    match kind {
        ClientKind::Backend if other || !system => {
            return Err(metadata(
                "a backend client may only be registered for system/ scopes".into(),
            ));
        }
        ClientKind::Backend => {}
        _ if system => {
            return Err(metadata(
                "system/ scopes are for backend clients (client_credentials) only".into(),
            ));
        }
        _ => {}
    }
    let asymmetric = matches!(
        kind,
        ClientKind::Backend | ClientKind::ConfidentialAsymmetric
    );
    if asymmetric {
        match (&request.jwks, &request.jwks_url) {
            (Some(jwks), None) => check_public_jwks(jwks)?,
            (None, Some(url)) => check_url(url, "jwks_uri").map_err(metadata)?,
            _ => {
                return Err(metadata(
                    "a private_key_jwt client registers exactly one of jwks and jwks_uri".into(),
                ));
            }
        }
    } else if request.jwks.is_some() || request.jwks_url.is_some() {
        return Err(metadata(
            "only private_key_jwt clients register a JWKS".into(),
        ));
    }
    if kind == ClientKind::Backend {
        if !request.redirect_uris.is_empty() {
            return Err(RegistrationError::InvalidRedirectUri(
                "a backend client has no redirect URIs".into(),
            ));
        }
    } else if request.redirect_uris.is_empty() {
        return Err(RegistrationError::InvalidRedirectUri(
            "redirect_uris is required for apps that act for a user".into(),
        ));
    }
    for uri in &request.redirect_uris {
        check_redirect_uri(uri).map_err(RegistrationError::InvalidRedirectUri)?;
    }
    let mut allowed_origins = request.allowed_origins;
    for origin in &allowed_origins {
        if origin_of(origin).as_deref() != Some(origin.as_str()) {
            return Err(metadata(format!(
                "'{origin}' is not an origin (scheme://host[:port])"
            )));
        }
    }
    if allowed_origins.is_empty() {
        allowed_origins = request
            .redirect_uris
            .iter()
            .filter_map(|u| origin_of(u))
            .filter(|o| o.starts_with("http"))
            .collect();
        allowed_origins.dedup();
    }
    let secret = (kind == ClientKind::ConfidentialSymmetric).then(new_opaque_token);
    Ok(RegisteredClient {
        client: OAuthClient {
            client_id,
            name,
            kind,
            secret_hash: secret.as_ref().map(|s| s.hash.clone()),
            redirect_uris: request.redirect_uris,
            jwks: request.jwks,
            jwks_url: request.jwks_url,
            scope: scopes.to_string(),
            allowed_origins,
            created_by,
            created_at: now * 1_000_000,
        },
        secret: secret.map(|s| s.value),
    })
}

/// Whether `secret` is the client's secret (constant time over the hashes).
pub fn secret_matches(client: &OAuthClient, secret: &str) -> bool {
    use subtle::ConstantTimeEq;
    client.secret_hash.as_ref().is_some_and(|stored| {
        stored
            .as_bytes()
            .ct_eq(hash_opaque_token(secret).as_bytes())
            .into()
    })
}

/// The RFC 7591 metadata of a registration request.
pub fn from_metadata(body: &Value) -> Result<ClientRegistration, RegistrationError> {
    let metadata = RegistrationError::InvalidClientMetadata;
    let object = body
        .as_object()
        .ok_or_else(|| metadata("the body must be a JSON object".into()))?;
    let text = |key: &str| -> Result<Option<String>, RegistrationError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(metadata(format!("{key} must be a string"))),
        }
    };
    let list = |key: &str| -> Result<Vec<String>, RegistrationError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| metadata(format!("{key} must be an array of strings")))
                })
                .collect(),
            Some(_) => Err(metadata(format!("{key} must be an array of strings"))),
        }
    };
    let grant_types = list("grant_types")?;
    let auth_method = text("token_endpoint_auth_method")?.unwrap_or_else(|| "none".into());
    let backend = grant_types.iter().any(|g| g == "client_credentials");
    if backend && grant_types.iter().any(|g| g == "authorization_code") {
        return Err(metadata(
            "register client_credentials and authorization_code as two clients".into(),
        ));
    }
    for grant in &grant_types {
        if !matches!(
            grant.as_str(),
            "authorization_code" | "refresh_token" | "client_credentials"
        ) {
            return Err(metadata(format!(
                "the grant type '{grant}' is not supported"
            )));
        }
    }
    let kind = match (auth_method.as_str(), backend) {
        ("private_key_jwt", true) => ClientKind::Backend,
        (_, true) => {
            return Err(metadata(
                "client_credentials needs token_endpoint_auth_method private_key_jwt".into(),
            ));
        }
        ("none", false) => ClientKind::Public,
        ("client_secret_basic" | "client_secret_post", false) => ClientKind::ConfidentialSymmetric,
        ("private_key_jwt", false) => ClientKind::ConfidentialAsymmetric,
        (other, _) => {
            return Err(metadata(format!(
                "token_endpoint_auth_method '{other}' is not supported"
            )));
        }
    };
    let jwks = match object.get("jwks") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    Ok(ClientRegistration {
        client_id: None,
        name: text("client_name")?.unwrap_or_default(),
        kind: Some(kind),
        redirect_uris: list("redirect_uris")?,
        jwks,
        jwks_url: text("jwks_uri")?,
        scope: text("scope")?.unwrap_or_default(),
        allowed_origins: list("curanet_allowed_origins")?,
    })
}

/// The RFC 7591 §3.2.1 answer for a registered client.
pub fn metadata_response(registered: &RegisteredClient) -> Value {
    let c = &registered.client;
    let (auth_method, grant_types) = match c.kind {
        ClientKind::Public => ("none", vec!["authorization_code", "refresh_token"]),
        ClientKind::ConfidentialSymmetric => (
            "client_secret_basic",
            vec!["authorization_code", "refresh_token"],
        ),
        ClientKind::ConfidentialAsymmetric => (
            "private_key_jwt",
            vec!["authorization_code", "refresh_token"],
        ),
        ClientKind::Backend => ("private_key_jwt", vec!["client_credentials"]),
    };
    let mut out = json!({
        "client_id": c.client_id,
        "client_id_issued_at": c.created_at / 1_000_000,
        "client_name": c.name,
        "token_endpoint_auth_method": auth_method,
        "grant_types": grant_types,
        "response_types": if c.kind == ClientKind::Backend { vec![] } else { vec!["code"] },
        "redirect_uris": c.redirect_uris,
        "scope": c.scope,
        "curanet_allowed_origins": c.allowed_origins,
    });
    if let Some(secret) = &registered.secret {
        out["client_secret"] = json!(secret);
        out["client_secret_expires_at"] = json!(0);
    }
    if let Some(jwks) = &c.jwks {
        out["jwks"] = jwks.clone();
    }
    if let Some(url) = &c.jwks_url {
        out["jwks_uri"] = json!(url);
    }
    out
}

/// A JWKS of public signing keys, each with a `kid`.
fn check_public_jwks(jwks: &Value) -> Result<(), RegistrationError> {
    let keys = jwks.get("keys").and_then(Value::as_array);
    let Some(keys) = keys.filter(|k| !k.is_empty()) else {
        return Err(RegistrationError::InvalidClientMetadata(
            "the JWKS has no keys".into(),
        ));
    };
    if keys
        .iter()
        .any(|k| k.get("d").is_some() || k.get("kid").and_then(Value::as_str).is_none())
    {
        return Err(RegistrationError::InvalidClientMetadata(
            "every key needs a kid, and the JWKS must hold public keys only (no 'd')".into(),
        ));
    }
    Ok(())
}

/// Whether `url` is an absolute `https` URL, or `http` on a loopback host (development and
/// tests): the URLs CuraNet sends codes to or fetches keys from.
pub fn is_https_or_loopback(url: &str) -> bool {
    origin_of(url).is_some_and(|origin| {
        origin.starts_with("https://")
            || ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| origin == *p || origin.starts_with(&format!("{p}:")))
    })
}

/// Whether a requested redirect URI matches a registered one: exactly, or — for a native app's
/// loopback IP redirect (`http://127.0.0.1/...`, `http://[::1]/...`) — on any port, since the
/// app listens on whatever port the system gives it (RFC 8252 §7.3; `localhost` is not
/// treated so, §8.3).
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let loopback = |uri: &str| -> Option<(&'static str, String)> {
        for host in ["http://127.0.0.1", "http://[::1]"] {
            if let Some(rest) = uri.strip_prefix(host) {
                let rest = match rest.strip_prefix(':') {
                    Some(port_and_path) => {
                        let cut = port_and_path
                            .find(['/', '?'])
                            .unwrap_or(port_and_path.len());
                        let (port, path) = port_and_path.split_at(cut);
                        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                            return None;
                        }
                        path
                    }
                    None => rest,
                };
                let path = if rest.is_empty() { "/" } else { rest };
                return Some((host, path.to_string()));
            }
        }
        None
    };
    matches!((loopback(registered), loopback(requested)), (Some(a), Some(b)) if a == b)
}

/// [`is_https_or_loopback`], with the reason when it is not.
fn check_url(url: &str, what: &str) -> Result<(), String> {
    if origin_of(url).is_none() {
        Err(format!("{what} '{url}' is not an absolute URL"))
    } else if is_https_or_loopback(url) {
        Ok(())
    } else {
        Err(format!(
            "{what} '{url}' must use https (http only on loopback)"
        ))
    }
}

/// A redirect URI: absolute, no fragment; https, loopback http, or a private-use scheme of a
/// native app (`in.example.app:/callback`, RFC 8252 §7.1).
fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.contains('#') {
        return Err(format!("the redirect URI '{uri}' must not have a fragment"));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the redirect URI '{uri}' has spaces"));
    }
    let scheme = uri.split(':').next().unwrap_or_default();
    if scheme == "http" || scheme == "https" {
        return check_url(uri, "the redirect URI");
    }
    // Private-use schemes are reverse domain names, so they contain a dot.
    let private_use = scheme.contains('.')
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
    if private_use && uri.len() > scheme.len() + 1 {
        Ok(())
    } else {
        Err(format!(
            "the redirect URI '{uri}' must be https, loopback http, or a reverse-domain private-use scheme"
        ))
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desktop_client_is_a_valid_public_loopback_client() {
        let registered = register(desktop_client(), None, 1_700_000_000).unwrap();
        assert_eq!(registered.client.client_id, DESKTOP_CLIENT_ID);
        assert_eq!(registered.client.kind, ClientKind::Public);
        assert!(registered.secret.is_none(), "a native app keeps no secret");
        assert!(redirect_matches(
            &registered.client.redirect_uris[0],
            "http://127.0.0.1:53124/callback"
        ));
        assert!(!registered.client.scope.contains("system/"));
    }

    fn app(kind: ClientKind, scope: &str) -> ClientRegistration {
        ClientRegistration {
            client_id: Some("app".into()),
            name: "An app".into(),
            kind: Some(kind),
            redirect_uris: vec!["https://app.example/cb".into()],
            scope: scope.into(),
            ..ClientRegistration::default()
        }
    }

    #[test]
    fn public_apps_get_no_secret_and_their_redirect_origins() {
        let r = register(app(ClientKind::Public, "patient/*.rs openid"), None, 10).unwrap();
        assert!(r.secret.is_none());
        assert_eq!(r.client.allowed_origins, vec!["https://app.example"]);
        assert_eq!(r.client.created_at, 10_000_000);
    }

    #[test]
    fn symmetric_clients_get_a_secret_stored_as_a_hash() {
        let r = register(app(ClientKind::ConfidentialSymmetric, "user/*.rs"), None, 1).unwrap();
        let secret = r.secret.clone().unwrap();
        assert_ne!(r.client.secret_hash.as_deref(), Some(secret.as_str()));
        assert!(secret_matches(&r.client, &secret));
        assert!(!secret_matches(&r.client, "guess"));
    }

    #[test]
    fn refuses_what_does_not_fit_the_kind() {
        let cases = [
            (
                app(ClientKind::Public, "system/*.rs"),
                "invalid_client_metadata",
            ),
            (
                app(ClientKind::Backend, "patient/*.rs"),
                "invalid_client_metadata",
            ),
            (
                app(ClientKind::ConfidentialAsymmetric, "user/*.rs"),
                "invalid_client_metadata",
            ),
            (
                ClientRegistration {
                    redirect_uris: vec!["http://evil.example/cb".into()],
                    ..app(ClientKind::Public, "patient/*.rs")
                },
                "invalid_redirect_uri",
            ),
            (
                ClientRegistration {
                    redirect_uris: vec!["https://app.example/cb#x".into()],
                    ..app(ClientKind::Public, "patient/*.rs")
                },
                "invalid_redirect_uri",
            ),
            (
                ClientRegistration {
                    redirect_uris: vec![],
                    ..app(ClientKind::Public, "patient/*.rs")
                },
                "invalid_redirect_uri",
            ),
        ];
        for (request, code) in cases {
            let e = register(request.clone(), None, 1).unwrap_err();
            assert_eq!(e.code(), code, "{request:?}");
        }
    }

    #[test]
    fn accepts_loopback_and_private_use_redirects() {
        for uri in [
            "http://127.0.0.1:8000/cb",
            "http://localhost/cb",
            "in.curanet.desktop:/callback",
        ] {
            check_redirect_uri(uri).unwrap();
        }
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
    }

    #[test]
    fn reads_rfc7591_metadata() {
        let body = json!({
            "client_name": "Pharmacy app",
            "redirect_uris": ["https://pharm.example/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "user/MedicationDispense.cruds",
        });
        let r = from_metadata(&body).unwrap();
        assert_eq!(r.kind, Some(ClientKind::ConfidentialSymmetric));
        let registered = register(r, Some("admin".into()), 5).unwrap();
        let answer = metadata_response(&registered);
        assert_eq!(
            answer["client_secret"].as_str(),
            registered.secret.as_deref()
        );
        assert_eq!(answer["client_secret_expires_at"], 0);
        assert_eq!(answer["token_endpoint_auth_method"], "client_secret_basic");

        let bad = json!({"client_name": "x", "grant_types": ["password"]});
        assert_eq!(
            from_metadata(&bad).unwrap_err().code(),
            "invalid_client_metadata"
        );
        let backend = json!({"client_name": "x", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"});
        assert!(from_metadata(&backend).is_err());
    }

    #[test]
    fn loopback_redirects_match_on_any_port() {
        assert!(redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb2"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:51234/callback"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1:9/callback",
            "http://127.0.0.1:51234/callback"
        ));
        assert!(redirect_matches("http://[::1]/cb", "http://[::1]:80/cb"));
        assert!(!redirect_matches(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:51234/other"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/callback",
            "http://[::1]:51234/callback"
        ));
        assert!(!redirect_matches(
            "http://localhost/cb",
            "http://localhost:5000/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:x@evil.example/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "http://127.0.0.1:5/cb"
        ));
    }

    #[test]
    fn origins_are_scheme_host_port() {
        assert_eq!(
            origin_of("https://App.Example:8443/x?y").as_deref(),
            Some("https://app.example:8443")
        );
        assert_eq!(origin_of("in.app:/cb"), None);
    }
}
