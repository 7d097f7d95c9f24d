//! Tokens the server issues: access tokens and ID tokens as RS256 JWTs signed by the key ring's
//! current key, and opaque tokens (authorization codes, refresh tokens, session ids) of which
//! storage keeps only a hash.
//!
//! Times are Unix seconds, passed in by the caller; the system clock is never read here.

use std::fmt;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::AuthError;
use crate::keys::KeyRing;

/// Longest lifetime of an access token for a user-facing app (SMART: SHOULD be ≤ 1 hour).
pub const MAX_ACCESS_TOKEN_SECONDS: i64 = 3600;
/// Longest lifetime of an access token for a backend service (SMART: short-lived, ≤ 5 minutes).
pub const MAX_BACKEND_ACCESS_TOKEN_SECONDS: i64 = 300;
/// Longest lifetime of an ID token.
pub const MAX_ID_TOKEN_SECONDS: i64 = 3600;
/// Clock skew tolerated between the instances that mint and verify tokens.
pub const CLOCK_LEEWAY_SECONDS: i64 = 30;
/// Header `typ` of access tokens (RFC 9068), so an ID token can never pass as an access token.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Random bytes in an opaque token (256 bits).
pub const OPAQUE_TOKEN_BYTES: usize = 32;
/// Longest `sub` accepted in an ID token (OpenID conformance checks ≤ 255 characters).
const MAX_SUBJECT_CHARS: usize = 255;

/// Who an access token is for; it decides the longest lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An app acting for a user or patient (authorization code or refresh).
    User,
    /// A backend service (client credentials).
    Backend,
}

impl TokenKind {
    /// The longest lifetime allowed for this kind, in seconds.
    pub fn max_lifetime(self) -> i64 {
        match self {
            TokenKind::User => MAX_ACCESS_TOKEN_SECONDS,
            TokenKind::Backend => MAX_BACKEND_ACCESS_TOKEN_SECONDS,
        }
    }
}

/// One SMART 2.2 `fhirContext` entry: a reference, canonical or identifier, with optional
/// `type` and `role`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FhirContext {
    /// A relative reference such as `Encounter/123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// A canonical URL, e.g. of a Questionnaire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// A FHIR Identifier object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Value>,
    /// The resource type, when `reference` alone does not say it.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The role of the context item (a URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// What an access token grants, before the server adds `iat`, `exp` and `jti`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessGrant {
    /// The issuer (this server's base URL for OAuth).
    pub issuer: String,
    /// The FHIR base URL the token is for.
    pub audience: String,
    /// The account id (user tokens) or the client id (backend tokens).
    pub subject: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// The patient in context, as a Patient id.
    pub patient: Option<String>,
    /// The encounter in context, as an Encounter id.
    pub encounter: Option<String>,
    /// The user's FHIR resource URL (Patient, Practitioner, PractitionerRole, ...).
    pub fhir_user: Option<String>,
    /// Further launch context.
    pub fhir_context: Vec<FhirContext>,
    /// The grant (authorization) the token belongs to; revoking it ends the token at once.
    pub grant_id: Option<String>,
}

/// The claims of an access token, as minted and as returned by verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the account id or, for backend services, the client id.
    pub sub: String,
    /// Audience: the FHIR base URL.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issue time (Unix seconds).
    pub iat: i64,
    /// Unique token id (for revocation lists and audit).
    pub jti: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The patient in context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The encounter in context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    /// The user's FHIR resource URL.
    #[serde(default, rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    /// Further launch context.
    #[serde(default, rename = "fhirContext", skip_serializing_if = "Vec::is_empty")]
    pub fhir_context: Vec<FhirContext>,
    /// The grant the token belongs to (tokens of user authorizations; not backend tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
}

/// A freshly signed access token and the claims in it.
#[derive(Debug, Clone)]
pub struct MintedAccessToken {
    /// The compact JWT.
    pub token: String,
    /// Its claims (`exp - iat` is the `expires_in` of the token response).
    pub claims: AccessClaims,
}

/// Signs an access token with the ring's current key, living `lifetime` seconds from `now`.
pub fn mint_access_token(
    ring: &KeyRing,
    grant: &AccessGrant,
    kind: TokenKind,
    lifetime: i64,
    now: i64,
) -> Result<MintedAccessToken, AuthError> {
    check_lifetime(lifetime, kind.max_lifetime())?;
    if grant.subject.trim().is_empty() || grant.client_id.trim().is_empty() {
        return Err(AuthError::InvalidClaims(
            "sub and client_id must not be empty".into(),
        ));
    }
    let claims = AccessClaims {
        iss: grant.issuer.clone(),
        sub: grant.subject.clone(),
        aud: grant.audience.clone(),
        exp: now + lifetime,
        iat: now,
        jti: random_id(),
        scope: grant.scope.clone(),
        client_id: grant.client_id.clone(),
        patient: grant.patient.clone(),
        encounter: grant.encounter.clone(),
        fhir_user: grant.fhir_user.clone(),
        fhir_context: grant.fhir_context.clone(),
        grant_id: grant.grant_id.clone(),
    };
    let token = sign(ring, ACCESS_TOKEN_TYPE, &claims)?;
    Ok(MintedAccessToken { token, claims })
}

/// Why a bearer token was not accepted (for logs; the client only learns "invalid_token").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not a JWT, or claims missing or of the wrong type.
    Malformed,
    /// The header `typ` is not `at+jwt` (e.g. an ID token presented as an access token).
    WrongType,
    /// The header `alg` is not RS256.
    UnsupportedAlgorithm,
    /// The header has no `kid`.
    MissingKeyId,
    /// No key in the ring has this `kid` (forged, or signed by a key since retired).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `iat` lies in the future (beyond the leeway).
    IssuedInFuture,
    /// `iss` is not this server.
    WrongIssuer,
    /// `aud` is not this FHIR base.
    WrongAudience,
    /// The grant it belongs to was revoked.
    Revoked,
}

impl fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenRejection::Malformed => "malformed token",
            TokenRejection::WrongType => "not an access token (typ)",
            TokenRejection::UnsupportedAlgorithm => "algorithm is not RS256",
            TokenRejection::MissingKeyId => "no kid in the header",
            TokenRejection::UnknownKey => "unknown kid",
            TokenRejection::BadSignature => "bad signature",
            TokenRejection::Expired => "expired",
            TokenRejection::IssuedInFuture => "issued in the future",
            TokenRejection::WrongIssuer => "wrong issuer",
            TokenRejection::WrongAudience => "wrong audience",
            TokenRejection::Revoked => "the authorization was revoked",
        })
    }
}

impl From<TokenRejection> for AuthError {
    fn from(r: TokenRejection) -> Self {
        AuthError::InvalidToken(r)
    }
}

/// Verifies an access token at `now`: RS256 signature by the ring key named in `kid`, `typ`,
/// `exp` and `iat` within [`CLOCK_LEEWAY_SECONDS`], `iss` and `aud`.
pub fn verify_access_token(
    ring: &KeyRing,
    token: &str,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<AccessClaims, AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejection::Malformed)?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenRejection::UnsupportedAlgorithm.into());
    }
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE))
    {
        return Err(TokenRejection::WrongType.into());
    }
    let kid = header.kid.ok_or(TokenRejection::MissingKeyId)?;
    let key = ring.get(&kid).ok_or(TokenRejection::UnknownKey)?;
    let claims =
        jsonwebtoken::decode::<AccessClaims>(token, key.decoding_key(), signature_only_rs256())
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenRejection::BadSignature,
                _ => TokenRejection::Malformed,
            })?
            .claims;
    if now > claims.exp + CLOCK_LEEWAY_SECONDS {
        return Err(TokenRejection::Expired.into());
    }
    if claims.iat > now + CLOCK_LEEWAY_SECONDS {
        return Err(TokenRejection::IssuedInFuture.into());
    }
    if claims.iss != issuer {
        return Err(TokenRejection::WrongIssuer.into());
    }
    if claims.aud != audience {
        return Err(TokenRejection::WrongAudience.into());
    }
    Ok(claims)
}

/// What an ID token states about the signed-in user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdGrant {
    /// The issuer (as in the OpenID configuration).
    pub issuer: String,
    /// The account id (non-blank, at most 255 characters).
    pub subject: String,
    /// The client the ID token is for (its `aud`).
    pub client_id: String,
    /// The user's FHIR resource URL.
    pub fhir_user: String,
    /// The `nonce` of the authorization request, if it had one.
    pub nonce: Option<String>,
}

/// The claims of an ID token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the account id.
    pub sub: String,
    /// Audience: the client id.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issue time (Unix seconds).
    pub iat: i64,
    /// The user's FHIR resource URL.
    #[serde(rename = "fhirUser")]
    pub fhir_user: String,
    /// The authorization request's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// Signs an OpenID Connect ID token (RS256, header `kid`) living `lifetime` seconds from `now`.
pub fn mint_id_token(
    ring: &KeyRing,
    grant: &IdGrant,
    lifetime: i64,
    now: i64,
) -> Result<String, AuthError> {
    check_lifetime(lifetime, MAX_ID_TOKEN_SECONDS)?;
    if grant.subject.trim().is_empty() || grant.subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(AuthError::InvalidClaims(format!(
            "sub must be non-blank and at most {MAX_SUBJECT_CHARS} characters"
        )));
    }
    let claims = IdClaims {
        iss: grant.issuer.clone(),
        sub: grant.subject.clone(),
        aud: grant.client_id.clone(),
        exp: now + lifetime,
        iat: now,
        fhir_user: grant.fhir_user.clone(),
        nonce: grant.nonce.clone(),
    };
    sign(ring, "JWT", &claims)
}

/// An opaque token: `value` goes to the client once, `hash` is all that storage keeps.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken {
    /// 32 random bytes, base64url without padding (43 characters).
    pub value: String,
    /// [`hash_opaque_token`] of `value`.
    pub hash: String,
}

impl fmt::Debug for OpaqueToken {
    // The value is a bearer secret; only the hash may appear in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpaqueToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// A new opaque token (authorization code, refresh token, session id, reset token).
pub fn new_opaque_token() -> OpaqueToken {
    let mut bytes = [0u8; OPAQUE_TOKEN_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    let value = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_opaque_token(&value);
    OpaqueToken { value, hash }
}

/// The stored form of an opaque token: SHA-256, base64url without padding. A plain hash is
/// enough because the token has 256 bits of entropy; storage looks tokens up by this value.
pub fn hash_opaque_token(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

fn check_lifetime(lifetime: i64, max: i64) -> Result<(), AuthError> {
    if lifetime <= 0 || lifetime > max {
        return Err(AuthError::TokenLifetime {
            requested: lifetime,
            max,
        });
    }
    Ok(())
}

fn sign<T: Serialize>(ring: &KeyRing, typ: &str, claims: &T) -> Result<String, AuthError> {
    let key = ring.current();
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some(typ.to_owned());
    header.kid = Some(key.kid().to_owned());
    jsonwebtoken::encode(&header, claims, key.encoding_key())
        .map_err(|e| AuthError::Signing(e.to_string()))
}

/// A 128-bit random id, base64url (22 characters), for `jti`.
fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signature and algorithm check only: the time and audience checks are done here against the
/// caller's `now` rather than jsonwebtoken's reading of the system clock. Built once.
fn signature_only_rs256() -> &'static Validation {
    static VALIDATION: OnceLock<Validation> = OnceLock::new();
    VALIDATION.get_or_init(|| {
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, EncodingKey};
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};

    use super::*;
    use crate::keys::testing::{rsa_keys, signing_key};

    const ISS: &str = "https://curanet.example/oauth";
    const AUD: &str = "https://curanet.example/fhir";
    const NOW: i64 = 1_750_000_000;

    fn ring() -> KeyRing {
        KeyRing::new(signing_key(0, NOW - 100))
    }

    fn grant() -> AccessGrant {
        AccessGrant {
            issuer: ISS.into(),
            audience: AUD.into(),
            subject: "account-7".into(),
            client_id: "growth-chart".into(),
            scope: "launch/patient openid fhirUser patient/*.rs".into(),
            patient: Some("p-123".into()),
            encounter: None,
            fhir_user: Some("https://curanet.example/fhir/Patient/p-123".into()),
            fhir_context: vec![FhirContext {
                reference: Some("Encounter/e-9".into()),
                ..FhirContext::default()
            }],
            grant_id: Some("g-1".into()),
        }
    }

    fn rejection(r: Result<AccessClaims, AuthError>) -> TokenRejection {
        match r {
            Err(AuthError::InvalidToken(reason)) => reason,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    /// Signs arbitrary claims with an arbitrary header, for the negative cases.
    fn forge(header: &Header, claims: &Value, key: &EncodingKey) -> String {
        jsonwebtoken::encode(header, claims, key).unwrap()
    }

    #[test]
    fn minted_access_token_round_trips() {
        let ring = ring();
        let minted = mint_access_token(&ring, &grant(), TokenKind::User, 3600, NOW).unwrap();
        let header = jsonwebtoken::decode_header(&minted.token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(ring.current().kid()));
        assert_eq!(minted.claims.exp - minted.claims.iat, 3600);
        assert_eq!(minted.claims.jti.len(), 22);

        let claims = verify_access_token(&ring, &minted.token, ISS, AUD, NOW + 10).unwrap();
        assert_eq!(claims, minted.claims);
        assert_eq!(claims.patient.as_deref(), Some("p-123"));

        // The JSON uses the SMART claim names and leaves out what is absent.
        let payload: Value = serde_json::to_value(&claims).unwrap();
        assert_eq!(
            payload["fhirUser"],
            "https://curanet.example/fhir/Patient/p-123"
        );
        assert_eq!(payload["fhirContext"][0]["reference"], "Encounter/e-9");
        assert!(payload.get("encounter").is_none());

        let other = mint_access_token(&ring, &grant(), TokenKind::User, 3600, NOW).unwrap();
        assert_ne!(other.claims.jti, minted.claims.jti);
    }

    #[test]
    fn lifetimes_are_capped_at_minting() {
        let ring = ring();
        let cases: &[(TokenKind, i64, bool)] = &[
            (TokenKind::User, 3600, true),
            (TokenKind::User, 3601, false),
            (TokenKind::User, 0, false),
            (TokenKind::User, -5, false),
            (TokenKind::Backend, 300, true),
            (TokenKind::Backend, 301, false),
        ];
        for (kind, lifetime, ok) in cases {
            let result = mint_access_token(&ring, &grant(), *kind, *lifetime, NOW);
            assert_eq!(result.is_ok(), *ok, "{kind:?} {lifetime}");
            if !ok {
                assert!(matches!(result, Err(AuthError::TokenLifetime { .. })));
            }
        }
        let nobody = AccessGrant {
            subject: " ".into(),
            ..grant()
        };
        assert!(matches!(
            mint_access_token(&ring, &nobody, TokenKind::User, 60, NOW),
            Err(AuthError::InvalidClaims(_))
        ));
    }

    #[test]
    fn verification_failures() {
        let ring = ring();
        let token = mint_access_token(&ring, &grant(), TokenKind::User, 600, NOW)
            .unwrap()
            .token;
        let exp = NOW + 600;
        let cases: &[(i64, &str, &str, Option<TokenRejection>)] = &[
            (NOW, ISS, AUD, None),
            (exp + CLOCK_LEEWAY_SECONDS, ISS, AUD, None),
            (
                exp + CLOCK_LEEWAY_SECONDS + 1,
                ISS,
                AUD,
                Some(TokenRejection::Expired),
            ),
            (NOW - CLOCK_LEEWAY_SECONDS, ISS, AUD, None),
            (
                NOW - CLOCK_LEEWAY_SECONDS - 1,
                ISS,
                AUD,
                Some(TokenRejection::IssuedInFuture),
            ),
            (
                NOW,
                "https://evil.example",
                AUD,
                Some(TokenRejection::WrongIssuer),
            ),
            (
                NOW,
                ISS,
                "https://evil.example/fhir",
                Some(TokenRejection::WrongAudience),
            ),
        ];
        for (now, iss, aud, expected) in cases {
            let got = verify_access_token(&ring, &token, iss, aud, *now).err();
            let expected = expected.clone().map(AuthError::InvalidToken);
            assert_eq!(
                got.map(|e| e.to_string()),
                expected.map(|e| e.to_string()),
                "now={now} iss={iss} aud={aud}"
            );
        }
    }

    #[test]
    fn forged_and_foreign_tokens_are_rejected() {
        let ring = ring();
        let valid = mint_access_token(&ring, &grant(), TokenKind::User, 600, NOW)
            .unwrap()
            .token;
        let claims =
            serde_json::to_value(verify_access_token(&ring, &valid, ISS, AUD, NOW).unwrap())
                .unwrap();
        let kid = ring.current().kid().to_owned();
        let own_key = EncodingKey::from_rsa_pem(
            rsa_keys()[0]
                .to_pkcs8_pem(LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let other_key = EncodingKey::from_rsa_pem(
            rsa_keys()[1]
                .to_pkcs8_pem(LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let header = |alg, typ: Option<&str>, kid: Option<&str>| {
            let mut h = Header::new(alg);
            h.typ = typ.map(str::to_owned);
            h.kid = kid.map(str::to_owned);
            h
        };
        let at = Some("at+jwt");
        let mut tampered_claims = claims.clone();
        tampered_claims["scope"] = "patient/*.cruds".into();
        let tampered = {
            let forged = forge(
                &header(Algorithm::RS256, at, Some(&kid)),
                &tampered_claims,
                &own_key,
            );
            // Keep the forged payload but the genuine signature.
            let parts: Vec<&str> = forged.split('.').collect();
            let sig = valid.rsplit('.').next().unwrap();
            format!("{}.{}.{sig}", parts[0], parts[1])
        };
        let mut missing_scope = claims.clone();
        missing_scope.as_object_mut().unwrap().remove("scope");
        let id_token = mint_id_token(
            &ring,
            &IdGrant {
                issuer: ISS.into(),
                subject: "account-7".into(),
                client_id: AUD.into(), // even with a FHIR-base aud, typ keeps it out
                fhir_user: "Patient/p-123".into(),
                nonce: None,
            },
            600,
            NOW,
        )
        .unwrap();
        let cases: Vec<(String, TokenRejection)> = vec![
            ("garbage".into(), TokenRejection::Malformed),
            (String::new(), TokenRejection::Malformed),
            ("a.b.c".into(), TokenRejection::Malformed),
            (tampered, TokenRejection::BadSignature),
            (
                forge(
                    &header(Algorithm::RS256, at, Some(&kid)),
                    &claims,
                    &other_key,
                ),
                TokenRejection::BadSignature,
            ),
            (
                forge(
                    &header(Algorithm::RS256, at, Some("nope")),
                    &claims,
                    &own_key,
                ),
                TokenRejection::UnknownKey,
            ),
            (
                forge(&header(Algorithm::RS256, at, None), &claims, &own_key),
                TokenRejection::MissingKeyId,
            ),
            (
                forge(&header(Algorithm::RS384, at, Some(&kid)), &claims, &own_key),
                TokenRejection::UnsupportedAlgorithm,
            ),
            (
                forge(
                    &header(Algorithm::HS256, at, Some(&kid)),
                    &claims,
                    &EncodingKey::from_secret(
                        ring.current().public_jwk()["n"]
                            .as_str()
                            .unwrap()
                            .as_bytes(),
                    )
                    .unwrap(),
                ),
                TokenRejection::UnsupportedAlgorithm,
            ),
            (
                forge(
                    &header(Algorithm::RS256, Some("JWT"), Some(&kid)),
                    &claims,
                    &own_key,
                ),
                TokenRejection::WrongType,
            ),
            (
                forge(
                    &header(Algorithm::RS256, at, Some(&kid)),
                    &missing_scope,
                    &own_key,
                ),
                TokenRejection::Malformed,
            ),
            (id_token, TokenRejection::WrongType),
        ];
        for (i, (token, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                rejection(verify_access_token(&ring, &token, ISS, AUD, NOW)),
                expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn tokens_of_a_rotated_key_verify_until_it_is_pruned() {
        let mut ring = ring();
        let old = mint_access_token(&ring, &grant(), TokenKind::User, 3600, NOW).unwrap();
        let retired = ring.rotate(signing_key(1, NOW + 60), NOW + 60);
        let new = mint_access_token(&ring, &grant(), TokenKind::User, 3600, NOW + 60).unwrap();
        assert_ne!(
            jsonwebtoken::decode_header(&old.token).unwrap().kid,
            jsonwebtoken::decode_header(&new.token).unwrap().kid
        );
        assert!(verify_access_token(&ring, &old.token, ISS, AUD, NOW + 120).is_ok());
        assert!(verify_access_token(&ring, &new.token, ISS, AUD, NOW + 120).is_ok());
        // The old key outlives every token it signed, including the leeway.
        assert!(retired[0].retire_at > old.claims.exp + CLOCK_LEEWAY_SECONDS);
        ring.prune(retired[0].retire_at);
        assert_eq!(
            rejection(verify_access_token(&ring, &old.token, ISS, AUD, NOW + 120)),
            TokenRejection::UnknownKey
        );
    }

    #[test]
    fn id_token_has_the_openid_claims() {
        let ring = ring();
        let grant = IdGrant {
            issuer: ISS.into(),
            subject: "account-7".into(),
            client_id: "growth-chart".into(),
            fhir_user: "https://curanet.example/fhir/Patient/p-123".into(),
            nonce: Some("n-0S6_WzA2Mj".into()),
        };
        let token = mint_id_token(&ring, &grant, 600, NOW).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some(ring.current().kid()));
        // Verified the way a client would: from the published JWK.
        let jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(ring.jwks()["keys"][0].clone()).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.set_audience(&["growth-chart"]);
        validation.set_issuer(&[ISS]);
        let claims = jsonwebtoken::decode::<IdClaims>(
            &token,
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(
            claims,
            IdClaims {
                iss: ISS.into(),
                sub: "account-7".into(),
                aud: "growth-chart".into(),
                exp: NOW + 600,
                iat: NOW,
                fhir_user: grant.fhir_user.clone(),
                nonce: grant.nonce.clone(),
            }
        );
        let payload = token.split('.').nth(1).unwrap();
        let raw: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(raw["fhirUser"], grant.fhir_user.as_str());

        let cases: &[(&str, i64, bool)] = &[
            ("account-7", 600, true),
            ("", 600, false),
            ("   ", 600, false),
            (&"s".repeat(255), 600, true),
            (&"s".repeat(256), 600, false),
            ("account-7", 3601, false),
        ];
        for (sub, lifetime, ok) in cases {
            let g = IdGrant {
                subject: (*sub).into(),
                ..grant.clone()
            };
            assert_eq!(
                mint_id_token(&ring, &g, *lifetime, NOW).is_ok(),
                *ok,
                "{sub} {lifetime}"
            );
        }
    }

    #[test]
    fn opaque_tokens_are_random_and_stored_hashed() {
        let token = new_opaque_token();
        assert_eq!(token.value.len(), 43);
        assert!(
            token
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(token.hash, hash_opaque_token(&token.value));
        assert_ne!(token.hash, token.value);
        assert!(!format!("{token:?}").contains(&token.value));
        assert_ne!(new_opaque_token().value, token.value);
        // SHA-256("abc"), base64url.
        assert_eq!(
            hash_opaque_token("abc"),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }
}
