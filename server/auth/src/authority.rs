//! The authorization server's state and decisions: the signing key ring (loaded from storage,
//! generated on first start, rotated by age), the JWKS, the `client_credentials` grant of SMART
//! Backend Services, and token introspection (RFC 7662).
//!
//! Times passed in are Unix seconds; [`AuthStore`] keeps microseconds, converted here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use curanet_storage::{AuthStore, ClientKind, OAuthClient, SigningKeyRecord};
use serde_json::{Map, Value, json};

use crate::client_assertion::{
    AssertionExpectations, check_assertion_type, peek_client_assertion, verify_client_assertion,
};
use crate::discovery::Endpoints;
use crate::error::AuthError;
use crate::keys::{DEFAULT_ROTATION_AGE_SECONDS, KeyEncryptionKey, KeyRing, SealedKey, SigningKey};
use crate::scope::{Level, Scope, Scopes};
use crate::token::{
    AccessClaims, AccessGrant, CLOCK_LEEWAY_SECONDS, MAX_BACKEND_ACCESS_TOKEN_SECONDS, TokenKind,
    TokenRejection, mint_access_token, verify_access_token,
};

/// Microseconds per second: storage keeps microseconds, this crate seconds.
const MICROS: i64 = 1_000_000;
/// The only algorithm of the server's signing keys.
const SIGNING_ALGORITHM: &str = "RS256";
/// Least time between two reloads of the key ring for an unknown `kid`.
pub const RELOAD_INTERVAL_SECONDS: i64 = 10;
/// `grant_type` of SMART Backend Services.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
/// `grant_type` of the SMART App Launch code exchange.
pub const AUTHORIZATION_CODE: &str = "authorization_code";
/// `grant_type` of a refresh.
pub const REFRESH_TOKEN: &str = "refresh_token";

/// An OAuth 2 error answer (RFC 6749 §5.2). The description is shown to the client and never
/// holds a secret; `reason` keeps the underlying cause for the server log.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A parameter is missing, repeated or malformed.
    #[error("invalid_request: {description}")]
    InvalidRequest {
        /// What the client is told.
        description: String,
    },
    /// Client authentication failed (unknown client, bad assertion, replay).
    #[error("invalid_client: {description}")]
    InvalidClient {
        /// What the client is told.
        description: String,
        /// Why, for the log.
        reason: Option<AuthError>,
    },
    /// The grant (code, refresh token) is invalid, expired or revoked.
    #[error("invalid_grant: {description}")]
    InvalidGrant {
        /// What the client is told.
        description: String,
    },
    /// The client may not use this grant type.
    #[error("unauthorized_client: {description}")]
    UnauthorizedClient {
        /// What the client is told.
        description: String,
    },
    /// The grant type is not supported.
    #[error("unsupported_grant_type: {description}")]
    UnsupportedGrantType {
        /// What the client is told.
        description: String,
    },
    /// The requested scope is malformed or nothing of it may be granted.
    #[error("invalid_scope: {description}")]
    InvalidScope {
        /// What the client is told.
        description: String,
    },
    /// The server failed (storage, signing); the client learns nothing more.
    #[error("server_error: {0}")]
    Server(AuthError),
}

impl OAuthError {
    /// The RFC 6749 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest { .. } => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::InvalidGrant { .. } => "invalid_grant",
            OAuthError::UnauthorizedClient { .. } => "unauthorized_client",
            OAuthError::UnsupportedGrantType { .. } => "unsupported_grant_type",
            OAuthError::InvalidScope { .. } => "invalid_scope",
            OAuthError::Server(_) => "server_error",
        }
    }

    /// The `error_description` shown to the client.
    pub fn description(&self) -> &str {
        match self {
            OAuthError::InvalidRequest { description }
            | OAuthError::InvalidClient { description, .. }
            | OAuthError::InvalidGrant { description }
            | OAuthError::UnauthorizedClient { description }
            | OAuthError::UnsupportedGrantType { description }
            | OAuthError::InvalidScope { description } => description,
            OAuthError::Server(_) => "the server could not complete the request",
        }
    }

    /// The underlying cause, for the log (never sent to the client).
    pub fn reason(&self) -> Option<&AuthError> {
        match self {
            OAuthError::InvalidClient { reason, .. } => reason.as_ref(),
            OAuthError::Server(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::InvalidRequest {
            description: description.into(),
        }
    }

    pub(crate) fn invalid_client(
        description: impl Into<String>,
        reason: Option<AuthError>,
    ) -> Self {
        OAuthError::InvalidClient {
            description: description.into(),
            reason,
        }
    }

    pub(crate) fn invalid_scope(description: impl Into<String>) -> Self {
        OAuthError::InvalidScope {
            description: description.into(),
        }
    }
}

impl From<AuthError> for OAuthError {
    fn from(e: AuthError) -> Self {
        OAuthError::Server(e)
    }
}

impl From<curanet_storage::StoreError> for OAuthError {
    fn from(e: curanet_storage::StoreError) -> Self {
        OAuthError::Server(AuthError::Store(e))
    }
}

/// The parameters of a token request (form-encoded), each at most once.
#[derive(Default, Clone)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `client_assertion_type`.
    pub client_assertion_type: Option<String>,
    /// `client_assertion` (a bearer credential: never logged).
    pub client_assertion: Option<String>,
    /// `client_id` (public clients; confidential ones may send it too).
    pub client_id: Option<String>,
    /// `client_secret` (`client_secret_post`; never logged).
    pub client_secret: Option<String>,
    /// HTTP Basic `client_id:client_secret` (`client_secret_basic`; the secret never logged).
    pub basic: Option<(String, String)>,
    /// `code` (authorization_code; never logged).
    pub code: Option<String>,
    /// `redirect_uri` (authorization_code).
    pub redirect_uri: Option<String>,
    /// `code_verifier` (authorization_code, PKCE; never logged).
    pub code_verifier: Option<String>,
    /// `refresh_token` (never logged).
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    // The assertion is a bearer credential until it expires: only whether there is one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("scope", &self.scope)
            .field("client_assertion_type", &self.client_assertion_type)
            .field("has_client_assertion", &self.client_assertion.is_some())
            .field("client_id", &self.client_id)
            .field("has_client_secret", &self.client_secret.is_some())
            .field("basic_client", &self.basic.as_ref().map(|(id, _)| id))
            .field("has_code", &self.code.is_some())
            .field("redirect_uri", &self.redirect_uri)
            .field("has_code_verifier", &self.code_verifier.is_some())
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish()
    }
}

impl TokenRequest {
    /// Reads the form pairs; a parameter sent twice is `invalid_request` (RFC 6749 §3.2).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, OAuthError> {
        let mut request = TokenRequest::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "grant_type" => &mut request.grant_type,
                "scope" => &mut request.scope,
                "client_assertion_type" => &mut request.client_assertion_type,
                "client_assertion" => &mut request.client_assertion,
                "client_id" => &mut request.client_id,
                "client_secret" => &mut request.client_secret,
                "code" => &mut request.code,
                "redirect_uri" => &mut request.redirect_uri,
                "code_verifier" => &mut request.code_verifier,
                "refresh_token" => &mut request.refresh_token,
                _ => continue,
            };
            if slot.is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter '{name}' is repeated"
                )));
            }
            *slot = Some(value.clone());
        }
        Ok(request)
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The granted scopes.
    pub scope: String,
    /// A refresh token (with `offline_access` or `online_access`).
    pub refresh_token: Option<String>,
    /// An OpenID Connect ID token (with `openid`).
    pub id_token: Option<String>,
    /// Launch context: `patient`, `encounter`, `fhirContext`, `need_patient_banner`, ...
    pub context: Map<String, Value>,
}

impl TokenResponse {
    /// The JSON body.
    pub fn to_json(&self) -> Value {
        let mut out = self.context.clone();
        out.insert("access_token".into(), json!(self.access_token));
        out.insert("token_type".into(), json!("Bearer"));
        out.insert("expires_in".into(), json!(self.expires_in));
        out.insert("scope".into(), json!(self.scope));
        if let Some(refresh) = &self.refresh_token {
            out.insert("refresh_token".into(), json!(refresh));
        }
        if let Some(id_token) = &self.id_token {
            out.insert("id_token".into(), json!(id_token));
        }
        Value::Object(out)
    }
}

/// The authorization server: storage, public endpoints, the key-encryption key and the current
/// key ring. The ring is replaced as a whole on rotation, so readers never wait on a rebuild.
pub struct Authority {
    pub(crate) store: Arc<dyn AuthStore>,
    pub(crate) endpoints: Endpoints,
    kek: KeyEncryptionKey,
    ring: RwLock<Arc<KeyRing>>,
    rotation_age: i64,
    /// When the ring was last reloaded from storage for an unknown `kid` (Unix seconds).
    last_reload: AtomicI64,
    /// Tokens whose signature, issuer and audience were verified, with their claims. A signature
    /// check costs far more than serving a cached read; what a token may do is still decided on
    /// every request, and expiry is checked on every hit.
    verified: moka::sync::Cache<String, VerifiedToken>,
    /// Whether each recently seen grant is still active, re-read after a few seconds so a
    /// revocation on another instance takes effect soon; on this instance it is immediate.
    pub(crate) grants: moka::sync::Cache<String, bool>,
    /// Client JWKS registered by URL.
    client_jwks: crate::client_jwks::JwksFetcher,
}

/// How long a grant's liveness is trusted before it is read again (other instances' revocations).
const GRANT_LIVENESS_SECONDS: u64 = 5;

/// A verified access token: its claims and parsed scopes, shared (not copied) by every request
/// that presents it.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The claims.
    pub claims: Arc<AccessClaims>,
    /// The parsed `scope` claim.
    pub scopes: Arc<Scopes>,
}

/// How many verified tokens are remembered.
const VERIFIED_TOKENS: u64 = 10_000;

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("endpoints", &self.endpoints)
            .field("rotation_age", &self.rotation_age)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads the signing keys sealed in storage (skipping, with a warning, any that do not open
    /// with `kek`), generates and stores a first key when none can be current, and rotates a
    /// current key older than the default rotation age.
    pub async fn start(
        store: Arc<dyn AuthStore>,
        endpoints: Endpoints,
        kek: KeyEncryptionKey,
        now: i64,
    ) -> Result<Authority, AuthError> {
        Authority::start_with_rotation(store, endpoints, kek, DEFAULT_ROTATION_AGE_SECONDS, now)
            .await
    }

    /// [`Authority::start`] with another rotation age (seconds).
    pub async fn start_with_rotation(
        store: Arc<dyn AuthStore>,
        endpoints: Endpoints,
        kek: KeyEncryptionKey,
        rotation_age: i64,
        now: i64,
    ) -> Result<Authority, AuthError> {
        let keys = load_keys(store.as_ref(), &kek).await?;
        let ring = match KeyRing::from_keys(keys, now) {
            Some(ring) => ring,
            None => {
                let key = generate_key(now).await?;
                store.insert_signing_key(record_of(&key, &kek)?).await?;
                tracing::info!(kid = %key.kid(), "generated the first signing key");
                KeyRing::new(key)
            }
        };
        let authority = Authority {
            store,
            endpoints,
            kek,
            ring: RwLock::new(Arc::new(ring)),
            rotation_age,
            last_reload: AtomicI64::new(i64::MIN),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                // No token lives longer than an hour; forget it then.
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
            client_jwks: crate::client_jwks::JwksFetcher::new(),
            grants: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .time_to_live(std::time::Duration::from_secs(GRANT_LIVENESS_SECONDS))
                .build(),
        };
        authority.maintain_keys(now).await?;
        Ok(authority)
    }

    /// Rotates the current key when it is older than the rotation age and drops replaced keys
    /// whose time has come, in the ring and in storage. Returns whether a new key was made.
    pub async fn maintain_keys(&self, now: i64) -> Result<bool, AuthError> {
        // Another instance on the same database may have rotated meanwhile: start from storage.
        self.reload_keys(now).await?;
        let mut ring = KeyRing::clone(&self.ring());
        let rotate = ring.needs_rotation(now, self.rotation_age);
        if rotate {
            let key = generate_key(now).await?;
            // Stored before it signs anything, so a token never names a key storage lacks.
            self.store
                .insert_signing_key(record_of(&key, &self.kek)?)
                .await?;
            let kid = key.kid().to_owned();
            for retired in ring.rotate(key, now) {
                self.store
                    .retire_signing_key(&retired.kid, Some(retired.retire_at * MICROS))
                    .await?;
            }
            tracing::info!(%kid, "rotated the signing key");
        }
        let removed = ring.prune(now);
        // Keys whose time has come leave storage too (the reload already left them out of
        // the ring, so the ring alone does not name them all).
        for record in self.store.list_signing_keys().await? {
            if record.retire_at.is_some_and(|r| r <= now * MICROS) {
                self.store.delete_signing_key(&record.kid).await?;
            }
        }
        if rotate || !removed.is_empty() {
            *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        }
        Ok(rotate)
    }

    /// Rebuilds the ring from storage, so keys made by other instances on the same database
    /// (first start, rotation) sign and verify here too.
    pub async fn reload_keys(&self, now: i64) -> Result<(), AuthError> {
        let keys = load_keys(self.store.as_ref(), &self.kek).await?;
        if let Some(ring) = KeyRing::from_keys(keys, now) {
            *self.ring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        }
        Ok(())
    }

    /// Verifies an access token of this server at `now`. A `kid` the ring does not know makes
    /// the ring reload from storage (at most every [`RELOAD_INTERVAL_SECONDS`]), for tokens
    /// signed by another instance's newer key.
    pub async fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, AuthError> {
        Ok(AccessClaims::clone(
            &self.verify_token(token, now).await?.claims,
        ))
    }

    /// [`Authority::verify`] for the resource server: the claims and parsed scopes, shared with
    /// the cache (a token with malformed scopes is refused as malformed).
    pub async fn verify_token(&self, token: &str, now: i64) -> Result<VerifiedToken, AuthError> {
        let verified = match self.verified.get(token) {
            Some(v) if now > v.claims.exp + CLOCK_LEEWAY_SECONDS => {
                self.verified.invalidate(token);
                return Err(TokenRejection::Expired.into());
            }
            Some(v) => v,
            None => {
                let claims = self.verify_signed(token, now).await?;
                let scopes = Scopes::parse(&claims.scope).map_err(|_| TokenRejection::Malformed)?;
                let v = VerifiedToken {
                    claims: Arc::new(claims),
                    scopes: Arc::new(scopes),
                };
                self.verified.insert(token.to_string(), v.clone());
                v
            }
        };
        if let Some(grant_id) = &verified.claims.grant_id
            && !self.grant_is_active(grant_id).await?
        {
            return Err(TokenRejection::Revoked.into());
        }
        Ok(verified)
    }

    /// Verifies a token's signature, expiry, issuer and audience against the key ring.
    async fn verify_signed(&self, token: &str, now: i64) -> Result<AccessClaims, AuthError> {
        let verify = |ring: &KeyRing| {
            verify_access_token(
                ring,
                token,
                &self.endpoints.issuer,
                &self.endpoints.fhir_base,
                now,
            )
        };
        let result = verify(&self.ring());
        if matches!(
            result,
            Err(AuthError::InvalidToken(TokenRejection::UnknownKey))
        ) && self.may_reload(now)
        {
            if let Err(e) = self.reload_keys(now).await {
                tracing::warn!(error = %e, "could not reload the signing keys");
                return result;
            }
            return verify(&self.ring());
        }
        result
    }

    /// Whether a reload for an unknown `kid` may run now; forged `kid`s cannot make every
    /// request read the database.
    fn may_reload(&self, now: i64) -> bool {
        let last = self.last_reload.load(Ordering::Relaxed);
        now.saturating_sub(last) >= RELOAD_INTERVAL_SECONDS
            && self
                .last_reload
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// The current key ring.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The public endpoints (issuer, FHIR base, token URL, ...).
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The public JWK Set of the ring.
    pub fn jwks(&self) -> Value {
        self.ring().jwks()
    }

    /// Answers a token request at `now`.
    pub async fn token(
        &self,
        request: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        match request.grant_type.as_deref() {
            None => Err(OAuthError::invalid_request("grant_type is required")),
            Some(CLIENT_CREDENTIALS) => self.client_credentials(request, now).await,
            Some(AUTHORIZATION_CODE) => self.authorization_code(request, now).await,
            Some(REFRESH_TOKEN) => self.refresh(request, now).await,
            Some(other) => Err(OAuthError::UnsupportedGrantType {
                description: format!("the grant type '{}' is not supported", printable(other)),
            }),
        }
    }

    /// The `client_credentials` grant of SMART Backend Services, authenticated by a
    /// `private_key_jwt` client assertion; grants the requested `system/` scopes narrowed to the
    /// client's registered ones, as a short-lived access token without refresh token.
    pub async fn client_credentials(
        &self,
        request: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.authenticate(request, now).await?;
        if client.kind != ClientKind::Backend {
            return Err(OAuthError::UnauthorizedClient {
                description: "only backend clients may use client_credentials".into(),
            });
        }
        let requested = request
            .scope
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| OAuthError::invalid_request("scope is required"))?;
        let scope = grantable_scopes(requested, &client.scope)?;
        let grant = AccessGrant {
            issuer: self.endpoints.issuer.clone(),
            audience: self.endpoints.fhir_base.clone(),
            subject: client.client_id.clone(),
            client_id: client.client_id.clone(),
            scope,
            ..AccessGrant::default()
        };
        let minted = mint_access_token(
            &self.ring(),
            &grant,
            TokenKind::Backend,
            MAX_BACKEND_ACCESS_TOKEN_SECONDS,
            now,
        )
        .map_err(OAuthError::Server)?;
        Ok(TokenResponse {
            access_token: minted.token,
            expires_in: minted.claims.exp - minted.claims.iat,
            scope: minted.claims.scope,
            ..TokenResponse::default()
        })
    }

    /// Authenticates the client by its assertion: type, registered client, registered JWKS,
    /// signature and claims, and a `jti` not seen before.
    pub(crate) async fn authenticate(
        &self,
        request: &TokenRequest,
        now: i64,
    ) -> Result<OAuthClient, OAuthError> {
        let failed =
            |e: AuthError| OAuthError::invalid_client("client authentication failed", Some(e));
        check_assertion_type(request.client_assertion_type.as_deref()).map_err(|e| {
            OAuthError::invalid_client(
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                Some(e),
            )
        })?;
        let assertion = request
            .client_assertion
            .as_deref()
            .ok_or_else(|| OAuthError::invalid_client("client_assertion is required", None))?;
        let peeked = peek_client_assertion(assertion).map_err(failed)?;
        let client_id = peeked
            .issuer
            .ok_or_else(|| OAuthError::invalid_client("the client assertion has no iss", None))?;
        // RFC 7521 §4.2: a client_id sent beside the assertion must name the same client.
        if request
            .client_id
            .as_deref()
            .is_some_and(|named| named != client_id)
        {
            return Err(OAuthError::invalid_client(
                "client_id does not match the client assertion's iss",
                None,
            ));
        }
        let client = self
            .store
            .get_client(&client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("unknown client", None))?;
        // Keys by value, or fetched from the registered URL (a header `jku` must name it).
        let allowed_jku: Vec<String> = client.jwks_url.iter().cloned().collect();
        let fetched;
        let jwks = match (&client.jwks, &client.jwks_url) {
            (Some(jwks), _) => jwks,
            (None, Some(url)) => {
                if peeked.jwks_url.as_ref().is_some_and(|jku| jku != url) {
                    return Err(OAuthError::invalid_client(
                        "the assertion's jku is not the client's registered JWKS URL",
                        None,
                    ));
                }
                let mut keys = self.client_jwks.get(url).await.map_err(failed)?;
                // A kid missing from a cached copy may be a rotated key: fetch once more.
                if !has_kid(&keys, peeked.key_id.as_deref()) {
                    keys = self.client_jwks.fetch(url).await.map_err(failed)?;
                }
                fetched = keys;
                &fetched
            }
            (None, None) => {
                return Err(OAuthError::invalid_client(
                    "the client has no registered JWKS",
                    None,
                ));
            }
        };
        let token_endpoint = self.endpoints.token();
        let verified = verify_client_assertion(
            assertion,
            &AssertionExpectations {
                client_id: &client.client_id,
                token_endpoint: &token_endpoint,
                jwks,
                allowed_jku: &allowed_jku,
            },
            now,
        )
        .map_err(failed)?;
        let first_use = self
            .store
            .record_client_assertion_jti(
                &client.client_id,
                &verified.jti,
                verified.remember_until() * MICROS,
                now * MICROS,
            )
            .await?;
        if !first_use {
            return Err(OAuthError::invalid_client(
                "the client assertion was already used (jti replay)",
                None,
            ));
        }
        Ok(client)
    }

    /// RFC 7662 introspection of an access token at `now`: its claims when it verifies, else
    /// exactly `{"active": false}`.
    pub async fn introspect(&self, token: &str, now: i64) -> Value {
        let claims = match self.verify(token, now).await {
            Ok(claims) => claims,
            Err(_) => return json!({ "active": false }),
        };
        let mut out = Map::new();
        out.insert("active".into(), Value::Bool(true));
        out.insert("scope".into(), claims.scope.into());
        out.insert("client_id".into(), claims.client_id.into());
        out.insert("token_type".into(), "bearer".into());
        out.insert("exp".into(), claims.exp.into());
        out.insert("iat".into(), claims.iat.into());
        out.insert("sub".into(), claims.sub.into());
        out.insert("aud".into(), claims.aud.into());
        out.insert("iss".into(), claims.iss.into());
        out.insert("jti".into(), claims.jti.into());
        if let Some(patient) = claims.patient {
            out.insert("patient".into(), patient.into());
        }
        if let Some(encounter) = claims.encounter {
            out.insert("encounter".into(), encounter.into());
        }
        if let Some(fhir_user) = claims.fhir_user {
            out.insert("fhirUser".into(), fhir_user.into());
        }
        if !claims.fhir_context.is_empty() {
            out.insert("fhirContext".into(), json!(claims.fhir_context));
        }
        Value::Object(out)
    }
}

/// Whether the JWKS has a key with this `kid`.
fn has_kid(jwks: &Value, kid: Option<&str>) -> bool {
    jwks["keys"]
        .as_array()
        .is_some_and(|keys| keys.iter().any(|k| k["kid"].as_str() == kid))
}

/// The stored signing keys that open with `kek`; the others are skipped with a warning (a key
/// sealed under an earlier key-encryption key, or of an unknown algorithm).
async fn load_keys(
    store: &dyn AuthStore,
    kek: &KeyEncryptionKey,
) -> Result<Vec<SigningKey>, AuthError> {
    let mut keys = Vec::new();
    for record in store.list_signing_keys().await? {
        if record.algorithm != SIGNING_ALGORITHM {
            tracing::warn!(kid = %record.kid, algorithm = %record.algorithm, "skipping a signing key of an unknown algorithm");
            continue;
        }
        let sealed = SealedKey {
            kid: record.kid.clone(),
            created_at: record.created_at.div_euclid(MICROS),
            retire_at: record.retire_at.map(|r| r.div_euclid(MICROS)),
            ciphertext: record.private_key,
        };
        match SigningKey::open(&sealed, kek) {
            Ok(key) => keys.push(key),
            Err(e) => tracing::warn!(
                kid = %record.kid,
                error = %e,
                "skipping a stored signing key that does not open with the key-encryption key"
            ),
        }
    }
    Ok(keys)
}

/// The scopes a backend client gets: the requested `system/` scopes narrowed to its registered
/// ones. Other levels and non-clinical scopes are dropped; nothing left is `invalid_scope`.
pub fn grantable_scopes(requested: &str, registered: &str) -> Result<String, OAuthError> {
    let requested = Scopes::parse(requested)
        .map_err(|e| OAuthError::invalid_scope(format!("malformed scope: {e}")))?;
    // A registration that no longer parses grants nothing rather than failing the server.
    let registered = Scopes::parse(registered).unwrap_or_default();
    let system_only = |s: &Scopes| -> Scopes {
        s.iter()
            .filter(|s| s.as_clinical().is_some_and(|c| c.level() == Level::System))
            .cloned()
            .collect()
    };
    let granted: Scopes = system_only(&requested.intersect(&system_only(&registered)));
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of the requested scopes is allowed for this client (backend clients get system/ scopes they were registered for)",
        ));
    }
    Ok(granted.to_string())
}

/// Whether every scope is a `system/` clinical scope (what a backend client may register).
pub fn only_system_scopes(scopes: &Scopes) -> bool {
    scopes
        .iter()
        .all(|s: &Scope| s.as_clinical().is_some_and(|c| c.level() == Level::System))
}

/// The request's text cut short and without control characters, for an error description.
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// Generates a key off the async threads (RSA prime search takes a noticeable moment).
async fn generate_key(now: i64) -> Result<SigningKey, AuthError> {
    tokio::task::spawn_blocking(move || SigningKey::generate(now))
        .await
        .map_err(|e| AuthError::Key(format!("key generation task failed: {e}")))?
}

/// The stored form of a key: sealed private key, public JWK, times in microseconds.
fn record_of(key: &SigningKey, kek: &KeyEncryptionKey) -> Result<SigningKeyRecord, AuthError> {
    let sealed = key.seal(kek)?;
    Ok(SigningKeyRecord {
        kid: sealed.kid,
        algorithm: SIGNING_ALGORITHM.into(),
        public_jwk: key.public_jwk(),
        private_key: sealed.ciphertext,
        created_at: sealed.created_at * MICROS,
        retire_at: sealed.retire_at.map(|r| r * MICROS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn requested_scopes_are_narrowed_to_the_registered_system_scopes() {
        let cases = [
            (
                "system/Patient.rs",
                "system/Patient.rs",
                Some("system/Patient.rs"),
            ),
            (
                "system/*.cruds",
                "system/Patient.rs",
                Some("system/Patient.rs"),
            ),
            (
                "system/Patient.rs system/Observation.rs",
                "system/*.rs",
                Some("system/Patient.rs system/Observation.rs"),
            ),
            (
                "system/Patient.read",
                "system/*.rs",
                Some("system/Patient.read"),
            ),
            // Other levels and non-clinical scopes are never granted to a backend client.
            ("patient/Patient.rs openid", "patient/*.rs openid", None),
            (
                "system/Patient.rs launch",
                "system/Patient.rs launch",
                Some("system/Patient.rs"),
            ),
            ("system/Observation.rs", "system/Patient.rs", None),
            ("system/Patient.c", "system/Patient.rs", None),
        ];
        for (requested, registered, expected) in cases {
            let got = grantable_scopes(requested, registered);
            match expected {
                Some(scope) => assert_eq!(got.unwrap(), scope, "{requested} against {registered}"),
                None => assert_eq!(
                    got.unwrap_err().code(),
                    "invalid_scope",
                    "{requested} against {registered}"
                ),
            }
        }
    }

    #[test]
    fn malformed_scope_is_invalid_scope() {
        let err = grantable_scopes("system/Patient.xyz", "system/*.rs").unwrap_err();
        assert_eq!(err.code(), "invalid_scope");
    }

    #[test]
    fn repeated_token_parameters_are_invalid_requests() {
        let request = TokenRequest::from_pairs(&pairs(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
            ("other", "ignored"),
        ]))
        .unwrap();
        assert_eq!(request.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(request.scope.as_deref(), Some("system/Patient.rs"));
        // No bearer credential reaches a log through Debug.
        let with_credentials = TokenRequest {
            client_assertion: Some("eyJhbGciOiJSUzM4NCJ9.CRED-1.sig".into()),
            client_secret: Some("CRED-2".into()),
            basic: Some(("app".into(), "CRED-3".into())),
            code: Some("CRED-4".into()),
            code_verifier: Some("CRED-5".into()),
            refresh_token: Some("CRED-6".into()),
            ..request
        };
        let shown = format!("{with_credentials:?}");
        assert!(!shown.contains("CRED-"), "{shown}");
        assert!(shown.contains("app"), "the client id may show: {shown}");
        let err = TokenRequest::from_pairs(&pairs(&[("scope", "a"), ("scope", "b")])).unwrap_err();
        assert_eq!(err.code(), "invalid_request");
        assert!(err.description().contains("scope"));
    }

    #[test]
    fn error_codes_follow_rfc_6749() {
        let codes = [
            (OAuthError::invalid_request("x"), "invalid_request"),
            (OAuthError::invalid_client("x", None), "invalid_client"),
            (
                OAuthError::InvalidGrant {
                    description: "x".into(),
                },
                "invalid_grant",
            ),
            (
                OAuthError::UnauthorizedClient {
                    description: "x".into(),
                },
                "unauthorized_client",
            ),
            (
                OAuthError::UnsupportedGrantType {
                    description: "x".into(),
                },
                "unsupported_grant_type",
            ),
            (OAuthError::invalid_scope("x"), "invalid_scope"),
        ];
        for (err, code) in codes {
            assert_eq!(err.code(), code);
        }
        // A server failure tells the client nothing about its cause.
        let err = OAuthError::Server(AuthError::Signing("secret detail".into()));
        assert!(!err.description().contains("secret"));
    }

    #[test]
    fn only_system_scopes_for_backend_registration() {
        assert!(only_system_scopes(
            &Scopes::parse("system/*.rs system/Patient.c").unwrap()
        ));
        assert!(!only_system_scopes(
            &Scopes::parse("system/*.rs openid").unwrap()
        ));
        assert!(!only_system_scopes(&Scopes::parse("user/*.rs").unwrap()));
    }

    #[test]
    fn printable_strips_control_characters_and_cuts() {
        assert_eq!(printable("a\nb\u{7}c"), "abc");
        assert_eq!(printable(&"x".repeat(100)).len(), 64);
    }

    /// A fresh SQLite store in a temporary directory (removed by the caller).
    async fn sqlite_store() -> (
        std::path::PathBuf,
        Arc<dyn curanet_storage::Store>,
        Arc<dyn AuthStore>,
    ) {
        let dir = std::env::temp_dir().join(format!(
            "curanet-authority-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("auth.db").display());
        let (store, auth) = curanet_storage::open_with_auth(&url, &Default::default())
            .await
            .unwrap();
        (dir, store, auth)
    }

    fn kek(byte: u8) -> KeyEncryptionKey {
        use base64::Engine;
        KeyEncryptionKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32]))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_are_stored_reopened_rotated_and_skipped_with_another_kek() {
        const DAY: i64 = 24 * 3600;
        let t0 = 1_750_000_000;
        let (dir, store, auth) = sqlite_store().await;
        let endpoints = Endpoints::new("https://curanet.example");

        // First start: one key, generated and stored sealed.
        let a = Authority::start(auth.clone(), endpoints.clone(), kek(1), t0)
            .await
            .unwrap();
        let first = a.ring().current().kid().to_owned();
        let stored = auth.list_signing_keys().await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].kid, first);
        assert_eq!(stored[0].created_at, t0 * MICROS);
        assert!(!String::from_utf8_lossy(&stored[0].private_key).contains("PRIVATE KEY"));

        // Same kek: the same key comes back; nothing is rotated before its age.
        let b = Authority::start_with_rotation(
            auth.clone(),
            endpoints.clone(),
            kek(1),
            30 * DAY,
            t0 + DAY,
        )
        .await
        .unwrap();
        assert_eq!(b.ring().current().kid(), first);
        assert!(!b.maintain_keys(t0 + 2 * DAY).await.unwrap());

        // Past the rotation age: a new current key, the old one kept (and published) until
        // its tokens have expired, then dropped from the ring and from storage.
        let now = t0 + 30 * DAY;
        assert!(b.maintain_keys(now).await.unwrap());
        let ring = b.ring();
        assert_ne!(ring.current().kid(), first);
        assert!(ring.get(&first).is_some());
        assert_eq!(b.jwks()["keys"].as_array().unwrap().len(), 2);
        let old = auth
            .list_signing_keys()
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.kid == first)
            .unwrap();
        let retire_at = old.retire_at.expect("the replaced key has a retire time");
        assert!(retire_at > now * MICROS);
        assert!(!b.maintain_keys(retire_at / MICROS + 1).await.unwrap());
        assert!(b.ring().get(&first).is_none());
        assert_eq!(auth.list_signing_keys().await.unwrap().len(), 1);

        // Another kek: the stored key is skipped and a new one made, the server still starts.
        let c = Authority::start(auth.clone(), endpoints, kek(2), now + 1)
            .await
            .unwrap();
        assert!(c.ring().get(b.ring().current().kid()).is_none());
        assert_eq!(auth.list_signing_keys().await.unwrap().len(), 2);

        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokens_signed_by_another_instances_newer_key_verify_after_a_reload() {
        const DAY: i64 = 24 * 3600;
        let t0 = 1_750_000_000;
        let (dir, store, auth) = sqlite_store().await;
        let endpoints = Endpoints::new("https://curanet.example");
        // Two instances on one database; the second rotates, the first does not know yet.
        let a = Authority::start(auth.clone(), endpoints.clone(), kek(1), t0)
            .await
            .unwrap();
        let b = Authority::start_with_rotation(auth.clone(), endpoints.clone(), kek(1), DAY, t0)
            .await
            .unwrap();
        assert_eq!(a.ring().current().kid(), b.ring().current().kid());
        let now = t0 + DAY;
        assert!(b.maintain_keys(now).await.unwrap());
        assert!(a.ring().get(b.ring().current().kid()).is_none());

        let grant = AccessGrant {
            issuer: endpoints.issuer.clone(),
            audience: endpoints.fhir_base.clone(),
            subject: "svc".into(),
            client_id: "svc".into(),
            scope: "system/Patient.rs".into(),
            ..AccessGrant::default()
        };
        let token = mint_access_token(&b.ring(), &grant, TokenKind::Backend, 300, now)
            .unwrap()
            .token;
        let info = a.introspect(&token, now + 1).await;
        assert_eq!(info["active"], true, "{info}");
        assert_eq!(info["client_id"], "svc");
        assert_eq!(a.ring().current().kid(), b.ring().current().kid());

        // Unknown kids reload at most every RELOAD_INTERVAL_SECONDS.
        assert!(!a.may_reload(now + 2));
        assert!(a.may_reload(now + 1 + RELOAD_INTERVAL_SECONDS));

        // A verified token is remembered, but never past its expiry; a tampered one is not.
        assert!(a.verify(&token, now + 10).await.is_ok());
        assert!(a.verified.get(&token).is_some());
        assert!(
            a.verify(&token, now + 300 + CLOCK_LEEWAY_SECONDS + 1)
                .await
                .is_err()
        );
        assert!(a.verified.get(&token).is_none());
        let tampered = format!("{}x", &token[..token.len() - 1]);
        assert!(a.verify(&tampered, now + 10).await.is_err());

        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
