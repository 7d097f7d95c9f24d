//! The grants of apps acting for a user (SMART App Launch): the authorization request and the
//! code it issues, the `authorization_code` and `refresh_token` grants, revocation (RFC 7009)
//! and whether a grant is still active.
//!
//! A grant is created when its code is exchanged; every access and refresh token of it names it
//! (`grant_id`), so revoking the grant — by the user, by a reused code or refresh token — ends
//! them all at once.

use curanet_storage::{
    Account, AuthStore, AuthorizationCode, ClientKind, CodeTake, Grant, LaunchContext, OAuthClient,
    Rotation,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::authority::{Authority, OAuthError, TokenRequest, TokenResponse};
use crate::authorize::{
    Approval, AuthorizationRequest, AuthorizeError, AuthorizeParams, CODE_LIFETIME_SECONDS, grant,
    validate, with_query,
};
use crate::error::AuthError;
use crate::pkce::CodeChallenge;
use crate::registration::secret_matches;
use crate::scope::Scopes;
use crate::token::{
    AccessGrant, FhirContext, IdGrant, MAX_ACCESS_TOKEN_SECONDS, MAX_ID_TOKEN_SECONDS, TokenKind,
    hash_opaque_token, mint_access_token, mint_id_token, new_opaque_token,
};

/// Microseconds per second (storage keeps microseconds).
const MICROS: i64 = 1_000_000;
/// How long an `offline_access` refresh token lives unused (each refresh renews it).
pub const OFFLINE_REFRESH_SECONDS: i64 = 30 * 24 * 3600;
/// How long an EHR launch value may wait for its authorization request.
pub const LAUNCH_LIFETIME_SECONDS: i64 = 300;

/// What an EHR opens a launch for.
#[derive(Debug, Clone, Default)]
pub struct LaunchRequest {
    /// The Patient id in context.
    pub patient: Option<String>,
    /// The Encounter id in context.
    pub encounter: Option<String>,
}

impl Authority {
    /// Validates an authorization request: looks up its client and EHR launch, then the rules
    /// of [`validate`].
    pub async fn authorization_request(
        &self,
        params: AuthorizeParams,
        now: i64,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let unavailable =
            |_| AuthorizeError::NoRedirect("the server could not read the client".into());
        let client = match params.client_id.as_deref().filter(|c| !c.is_empty()) {
            Some(id) => self.store.get_client(id).await.map_err(unavailable)?,
            None => None,
        };
        let launch = match params.launch.as_deref() {
            Some(value) => self
                .store
                .get_launch_context(&hash_opaque_token(value), now * MICROS)
                .await
                .map_err(unavailable)?,
            None => None,
        };
        validate(params, client, &self.endpoints.fhir_base, launch)
    }

    /// Issues the code for an approved request: the URL to send the browser back to (with
    /// `code` and `state`). `session_id` ties `online_access` grants to the sign-in session.
    pub async fn approve(
        &self,
        request: &AuthorizationRequest,
        account: &Account,
        approval: &Approval,
        session_id: Option<&str>,
        now: i64,
    ) -> Result<String, AuthorizeError> {
        let granted = grant(request, account, approval, &self.style_url())
            .map_err(|e| request.error("access_denied", e))?;
        if let Some(launch) = &request.launch {
            // A launch value works once.
            let taken = self
                .store
                .take_launch_context(&launch.id, now * MICROS)
                .await
                .map_err(|_| request.error("server_error", "the launch could not be used"))?;
            if taken.is_none() {
                return Err(request.error("invalid_request", "the launch was already used"));
            }
        }
        let code = new_opaque_token();
        self.store
            .insert_authorization_code(AuthorizationCode {
                code_hash: code.hash.clone(),
                client_id: request.client.client_id.clone(),
                account_id: account.id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                scope: granted.scope,
                code_challenge: request.code_challenge.as_str().to_string(),
                context: granted.context,
                nonce: request.nonce.clone(),
                session_id: session_id.map(str::to_string),
                created_at: now * MICROS,
                expires_at: (now + CODE_LIFETIME_SECONDS) * MICROS,
            })
            .await
            .map_err(|_| request.error("server_error", "the code could not be stored"))?;
        let mut query = vec![("code", code.value.as_str())];
        if let Some(state) = &request.state {
            query.push(("state", state));
        }
        Ok(with_query(&request.redirect_uri, &query))
    }

    /// The URL of the EHR's style document (`smart_style_url`).
    pub fn style_url(&self) -> String {
        format!("{}/oauth/smart-style.json", self.endpoints.issuer)
    }

    /// Opens an EHR launch for `account` (a clinician in CuraNet's client): the opaque `launch`
    /// value to pass to the app, valid once for a few minutes.
    pub async fn open_launch(
        &self,
        account: &Account,
        request: LaunchRequest,
        now: i64,
    ) -> Result<String, AuthError> {
        let value = new_opaque_token();
        self.store
            .create_launch_context(LaunchContext {
                id: value.hash,
                patient: request.patient,
                encounter: request.encounter,
                fhir_context: None,
                created_by: account.id.clone(),
                created_at: now * MICROS,
                expires_at: (now + LAUNCH_LIFETIME_SECONDS) * MICROS,
            })
            .await?;
        Ok(value.value)
    }

    /// The `authorization_code` grant: exchanges a code once, for the client it was issued to,
    /// with its PKCE verifier and redirect URI.
    pub(crate) async fn authorization_code(
        &self,
        request: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.authenticate_app(request, now).await?;
        let code = request
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
        let invalid = |d: &str| OAuthError::InvalidGrant {
            description: d.into(),
        };
        let (code, grant) = match self
            .store
            .take_authorization_code(&hash_opaque_token(code), &client.client_id, now * MICROS)
            .await?
        {
            CodeTake::Taken { code, grant } => (code, grant),
            CodeTake::AlreadyUsed { grant_id } => {
                // A replayed code may be stolen: end what its first exchange produced.
                self.revoke_grant(&grant_id, now).await?;
                return Err(invalid(
                    "the code was already used; the tokens issued for it are revoked",
                ));
            }
            CodeTake::WrongClient | CodeTake::Unknown => {
                return Err(invalid("the code is not valid for this client"));
            }
            CodeTake::Expired => return Err(invalid("the code expired")),
        };
        let checks = if request.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
            Err(invalid(
                "redirect_uri must be the one of the authorization request",
            ))
        } else {
            let challenge = CodeChallenge::parse(Some(&code.code_challenge), Some("S256"))
                .map_err(OAuthError::Server)?;
            challenge
                .verify(request.code_verifier.as_deref())
                .map_err(|e| invalid(&format!("PKCE verification failed: {e}")))
        };
        if let Err(e) = checks {
            // The code is spent; so is the grant its exchange created.
            self.revoke_grant(&grant.id, now).await?;
            return Err(e);
        }
        let scopes = Scopes::parse(&grant.scope).unwrap_or_default();
        let mut response = self.tokens_for(&grant, &scopes, now).await?;
        if scopes.openid() {
            let account = self.account_of(&grant).await?;
            response.id_token = Some(
                mint_id_token(
                    &self.ring(),
                    &IdGrant {
                        issuer: self.endpoints.issuer.clone(),
                        subject: account.id.clone(),
                        client_id: grant.client_id.clone(),
                        fhir_user: self.fhir_user_url(&account).unwrap_or_default(),
                        nonce: code.nonce.clone(),
                    },
                    MAX_ID_TOKEN_SECONDS,
                    now,
                )
                .map_err(OAuthError::Server)?,
            );
        }
        if scopes.allows_refresh() {
            response.refresh_token = Some(self.new_refresh_token(&grant, &scopes, now).await?);
        }
        Ok(response)
    }

    /// The `refresh_token` grant: rotates the token (the old one stops working; presenting it
    /// again revokes the grant) and issues an access token for the grant's scopes or a subset.
    pub(crate) async fn refresh(
        &self,
        request: &TokenRequest,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let client = self.authenticate_app(request, now).await?;
        let presented = request
            .refresh_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
        let invalid = |d: &str| OAuthError::InvalidGrant {
            description: d.into(),
        };
        let old_hash = hash_opaque_token(presented);
        let Some((_, grant)) = self.store.find_refresh_token(&old_hash).await? else {
            return Err(invalid("the refresh token is not valid"));
        };
        if grant.client_id != client.client_id {
            return Err(invalid("the refresh token is not valid for this client"));
        }
        let original = Scopes::parse(&grant.scope).unwrap_or_default();
        // Checked before rotating, so a refused scope does not spend the token.
        let scopes = match request.scope.as_deref().filter(|s| !s.trim().is_empty()) {
            None => original.clone(),
            Some(text) => {
                let asked = Scopes::parse(text)
                    .map_err(|e| OAuthError::invalid_scope(format!("malformed scope: {e}")))?;
                if !asked.is_subset_of(&original) {
                    return Err(OAuthError::invalid_scope(
                        "a refresh may narrow the granted scopes, never widen them",
                    ));
                }
                asked
            }
        };
        if let Some(session) = &grant.session_id
            && !original.offline_access()
        {
            let online = self
                .store
                .get_session(session)
                .await?
                .is_some_and(|s| s.is_active(now * MICROS));
            if !online {
                self.revoke_grant(&grant.id, now).await?;
                return Err(invalid(
                    "the sign-in session of this online_access grant ended",
                ));
            }
        }
        let next = new_opaque_token();
        let expires = self.refresh_expiry(&original, now);
        match self
            .store
            .rotate_refresh_token(
                &old_hash,
                &client.client_id,
                &next.hash,
                expires,
                now * MICROS,
            )
            .await?
        {
            Rotation::Rotated { grant } => {
                let mut response = self.tokens_for(&grant, &scopes, now).await?;
                response.refresh_token = Some(next.value);
                Ok(response)
            }
            Rotation::Reused { grant_id } => {
                self.revoke_grant(&grant_id, now).await?;
                Err(invalid(
                    "the refresh token was already used; the authorization is revoked",
                ))
            }
            Rotation::WrongClient | Rotation::Unknown => {
                Err(invalid("the refresh token is not valid"))
            }
            Rotation::Revoked { .. } => Err(invalid("the authorization was revoked")),
            Rotation::Expired { .. } => Err(invalid("the refresh token expired")),
        }
    }

    /// RFC 7009 revocation by the client: a refresh token or an access token of the client ends
    /// its grant. Unknown tokens, and tokens of other clients, change nothing (and the answer is
    /// the same).
    pub async fn revoke(
        &self,
        request: &TokenRequest,
        token: &str,
        now: i64,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate_app(request, now).await?;
        if let Some((_, grant)) = self
            .store
            .find_refresh_token(&hash_opaque_token(token))
            .await?
        {
            if grant.client_id == client.client_id {
                self.revoke_grant(&grant.id, now).await?;
            }
            return Ok(());
        }
        if let Ok(claims) = self.verify(token, now).await
            && claims.client_id == client.client_id
            && let Some(grant_id) = &claims.grant_id
        {
            self.revoke_grant(grant_id, now).await?;
        }
        Ok(())
    }

    /// Ends a grant: its refresh tokens stop working and its access tokens are refused from now
    /// on (here at once; on other instances within a few seconds).
    pub async fn revoke_grant(&self, grant_id: &str, now: i64) -> Result<bool, AuthError> {
        let revoked = self.store.revoke_grant(grant_id, now * MICROS).await?;
        self.grants.insert(grant_id.to_string(), false);
        if revoked {
            tracing::info!(grant = %grant_id, "authorization revoked");
        }
        Ok(revoked)
    }

    /// The account's active grants (the apps it authorised), newest first.
    pub async fn grants_of(&self, account_id: &str) -> Result<Vec<Grant>, AuthError> {
        Ok(self.store.list_grants(account_id).await?)
    }

    /// Whether the grant exists and is not revoked (trusted for a few seconds).
    pub(crate) async fn grant_is_active(&self, grant_id: &str) -> Result<bool, AuthError> {
        if let Some(active) = self.grants.get(grant_id) {
            return Ok(active);
        }
        let active = self
            .store
            .get_grant(grant_id)
            .await?
            .is_some_and(|g| g.revoked_at.is_none());
        self.grants.insert(grant_id.to_string(), active);
        Ok(active)
    }

    /// Authenticates an app at the token or revocation endpoint: by assertion
    /// (`private_key_jwt`), by secret (Basic or form), or as a public client by `client_id`.
    /// A client must use the method it registered.
    pub(crate) async fn authenticate_app(
        &self,
        request: &TokenRequest,
        now: i64,
    ) -> Result<OAuthClient, OAuthError> {
        let wrong_method = || {
            OAuthError::invalid_client(
                "the client must authenticate with the method it registered",
                None,
            )
        };
        if request.client_assertion.is_some() || request.client_assertion_type.is_some() {
            let client = self.authenticate(request, now).await?;
            if client.kind != ClientKind::ConfidentialAsymmetric {
                return Err(wrong_method());
            }
            return Ok(client);
        }
        let (client_id, secret) = match (&request.basic, &request.client_id) {
            (Some((id, secret)), form_id) => {
                if form_id.as_ref().is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id differs from the Authorization header",
                    ));
                }
                (id.clone(), Some(secret.clone()))
            }
            (None, Some(id)) => (id.clone(), request.client_secret.clone()),
            (None, None) => {
                return Err(OAuthError::invalid_client(
                    "client authentication is required (client_id for public clients)",
                    None,
                ));
            }
        };
        let client = self
            .store
            .get_client(&client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_client("unknown client", None))?;
        match (client.kind, secret) {
            (ClientKind::Public, None) => Ok(client),
            (ClientKind::ConfidentialSymmetric, Some(secret)) => {
                if secret_matches(&client, &secret) {
                    Ok(client)
                } else {
                    Err(OAuthError::invalid_client(
                        "client authentication failed",
                        None,
                    ))
                }
            }
            _ => Err(wrong_method()),
        }
    }

    /// An access token of `grant` with `scopes`, and the launch context of the response.
    async fn tokens_for(
        &self,
        grant: &Grant,
        scopes: &Scopes,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let account = self.account_of(grant).await?;
        let context = grant.context.as_object().cloned().unwrap_or_default();
        let text = |key: &str| context.get(key).and_then(Value::as_str).map(str::to_string);
        let fhir_context: Vec<FhirContext> = context
            .get("fhirContext")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let fhir_user = scopes
            .fhir_user()
            .then(|| self.fhir_user_url(&account))
            .flatten();
        let minted = mint_access_token(
            &self.ring(),
            &AccessGrant {
                issuer: self.endpoints.issuer.clone(),
                audience: self.endpoints.fhir_base.clone(),
                subject: account.id.clone(),
                client_id: grant.client_id.clone(),
                scope: scopes.to_string(),
                patient: text("patient"),
                encounter: text("encounter"),
                fhir_user,
                fhir_context,
                grant_id: Some(grant.id.clone()),
            },
            TokenKind::User,
            MAX_ACCESS_TOKEN_SECONDS,
            now,
        )
        .map_err(OAuthError::Server)?;
        let mut shown = Map::new();
        for key in [
            "patient",
            "encounter",
            "fhirContext",
            "need_patient_banner",
            "smart_style_url",
        ] {
            if let Some(value) = context.get(key) {
                shown.insert(key.into(), value.clone());
            }
        }
        Ok(TokenResponse {
            access_token: minted.token,
            expires_in: minted.claims.exp - minted.claims.iat,
            scope: minted.claims.scope,
            refresh_token: None,
            id_token: None,
            context: shown,
        })
    }

    /// Stores a new refresh token of the grant; its value.
    async fn new_refresh_token(
        &self,
        grant: &Grant,
        scopes: &Scopes,
        now: i64,
    ) -> Result<String, OAuthError> {
        let token = new_opaque_token();
        self.store
            .insert_refresh_token(
                &token.hash,
                &grant.id,
                self.refresh_expiry(scopes, now),
                now * MICROS,
            )
            .await?;
        Ok(token.value)
    }

    /// When a refresh token of a grant with `scopes` expires (microseconds): `offline_access`
    /// tokens after a long idle time; `online_access` ones live with the session instead.
    fn refresh_expiry(&self, scopes: &Scopes, now: i64) -> Option<i64> {
        scopes
            .offline_access()
            .then_some((now + OFFLINE_REFRESH_SECONDS) * MICROS)
    }

    /// The account a grant was given by.
    async fn account_of(&self, grant: &Grant) -> Result<Account, OAuthError> {
        self.store
            .get_account(&grant.account_id)
            .await?
            .ok_or_else(|| OAuthError::InvalidGrant {
                description: "the account of this authorization no longer exists".into(),
            })
    }

    /// The storage of accounts and clients (for the command line and tests).
    pub fn store(&self) -> Arc<dyn AuthStore> {
        self.store.clone()
    }

    /// The account with this id.
    pub async fn account(&self, id: &str) -> Result<Option<Account>, AuthError> {
        Ok(self.store.get_account(id).await?)
    }

    /// The registered client with this id.
    pub async fn client(&self, client_id: &str) -> Result<Option<OAuthClient>, AuthError> {
        Ok(self.store.get_client(client_id).await?)
    }

    /// Stores a checked registration (`Duplicate` when the client id is taken).
    pub async fn register_client(&self, client: OAuthClient) -> Result<(), AuthError> {
        Ok(self.store.register_client(client).await?)
    }

    /// The account's FHIR resource as an absolute URL (the `fhirUser` claim).
    pub fn fhir_user_url(&self, account: &Account) -> Option<String> {
        account
            .fhir_user
            .as_ref()
            .map(|r| format!("{}/{r}", self.endpoints.fhir_base))
    }
}

/// The SMART style document an EHR launch points apps to (`smart_style_url`).
pub fn smart_style() -> Value {
    json!({
        "color_background": "#f6f8fa",
        "color_error": "#b00020",
        "color_highlight": "#0b6e4f",
        "color_modal_backdrop": "",
        "color_success": "#1b7f3b",
        "color_text": "#1f2328",
        "dim_border_radius": "6px",
        "dim_font_size": "16px",
        "dim_spacing_size": "16px",
        "font_family_body": "system-ui, sans-serif",
        "font_family_heading": "system-ui, sans-serif"
    })
}
