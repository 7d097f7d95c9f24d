//! Verification of `private_key_jwt` client assertions (RFC 7523 §3, as profiled by SMART
//! backend services and confidential asymmetric clients): RS384 or ES384, a `kid` naming
//! exactly one key of the client's JWKS, `iss` = `sub` = client id, `aud` = the token endpoint,
//! `exp` at most five minutes ahead, and a `jti` the caller remembers to refuse replays.
//!
//! The flow at the token endpoint: [`peek_client_assertion`] tells the caller which client to
//! load and which JWKS URL (if any) to fetch; [`verify_client_assertion`] then decides. Every
//! failure is `AuthError::InvalidClient`, answered as `invalid_client`; the reason is for logs.

use std::fmt;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::error::AuthError;

/// The only `client_assertion_type` accepted.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far ahead of now an assertion's `exp` may lie (SMART: at most five minutes).
pub const MAX_ASSERTION_LIFETIME_SECONDS: i64 = 300;
/// Clock skew tolerated between the client and this server.
pub const ASSERTION_CLOCK_SKEW_SECONDS: i64 = 30;
/// Smallest RSA modulus accepted from a client key, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Why a client assertion was refused (for logs; the client only learns `invalid_client`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssertionRejection {
    /// `client_assertion_type` is missing or not the JWT bearer type.
    WrongAssertionType,
    /// Not a compact JWT, or its header or claims are not JSON of the right shape.
    Malformed,
    /// The header `alg` is not RS384 or ES384 (e.g. `none`, `HS256`, `RS256`).
    AlgorithmNotAllowed(String),
    /// The header `typ` is missing or not `JWT`.
    WrongType,
    /// The header has no `kid`.
    MissingKeyId,
    /// The header `jku` is not one of the client's registered JWKS URLs.
    JkuNotAllowed(String),
    /// The JWKS has no key with this `kid` whose type fits `alg`.
    NoMatchingKey,
    /// The JWKS has several keys with this `kid` that fit `alg`.
    AmbiguousKey,
    /// The matching key cannot be used (missing members, RSA modulus under 2048 bits, ...).
    UnusableKey(String),
    /// The signature does not verify with the registered key.
    BadSignature,
    /// `iss` is missing or not the client id.
    WrongIssuer,
    /// `sub` is missing or differs from `iss`.
    WrongSubject,
    /// `aud` is missing or does not name the token endpoint.
    WrongAudience,
    /// `exp` is missing.
    MissingExpiry,
    /// `exp` has passed.
    Expired,
    /// `exp` lies more than five minutes ahead.
    ExpiryTooFar,
    /// `nbf` or `iat` lies in the future.
    NotYetValid,
    /// `jti` is missing or empty.
    MissingJti,
}

impl fmt::Display for AssertionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssertionRejection::WrongAssertionType => f.write_str("wrong client_assertion_type"),
            AssertionRejection::Malformed => f.write_str("malformed JWT"),
            AssertionRejection::AlgorithmNotAllowed(alg) => {
                write!(f, "alg '{alg}' is not allowed (RS384 or ES384)")
            }
            AssertionRejection::WrongType => f.write_str("typ must be JWT"),
            AssertionRejection::MissingKeyId => f.write_str("no kid in the header"),
            AssertionRejection::JkuNotAllowed(jku) => write!(f, "jku '{jku}' is not registered"),
            AssertionRejection::NoMatchingKey => {
                f.write_str("no registered key matches kid and alg")
            }
            AssertionRejection::AmbiguousKey => {
                f.write_str("several registered keys match kid and alg")
            }
            AssertionRejection::UnusableKey(why) => write!(f, "registered key unusable: {why}"),
            AssertionRejection::BadSignature => f.write_str("bad signature"),
            AssertionRejection::WrongIssuer => f.write_str("iss is not the client id"),
            AssertionRejection::WrongSubject => f.write_str("sub differs from iss"),
            AssertionRejection::WrongAudience => f.write_str("aud is not the token endpoint"),
            AssertionRejection::MissingExpiry => f.write_str("no exp"),
            AssertionRejection::Expired => f.write_str("expired"),
            AssertionRejection::ExpiryTooFar => f.write_str("exp is more than 5 minutes ahead"),
            AssertionRejection::NotYetValid => f.write_str("nbf or iat in the future"),
            AssertionRejection::MissingJti => f.write_str("no jti"),
        }
    }
}

impl From<AssertionRejection> for AuthError {
    fn from(r: AssertionRejection) -> Self {
        AuthError::InvalidClient(r)
    }
}

/// Checks the `client_assertion_type` parameter of the token request.
pub fn check_assertion_type(value: Option<&str>) -> Result<(), AuthError> {
    if value == Some(CLIENT_ASSERTION_TYPE) {
        Ok(())
    } else {
        Err(AssertionRejection::WrongAssertionType.into())
    }
}

/// What the caller needs before verification: which client to load (`issuer`) and, when the
/// header names a `jku`, which JWKS URL to fetch. Nothing here is trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedAssertion {
    /// The claimed client id (`iss`).
    pub issuer: Option<String>,
    /// The header `kid`.
    pub key_id: Option<String>,
    /// The header `jku`.
    pub jwks_url: Option<String>,
}

/// Reads the header and `iss` of an assertion without verifying anything.
pub fn peek_client_assertion(assertion: &str) -> Result<UnverifiedAssertion, AuthError> {
    let (header, claims) = split(assertion)?;
    let header: RawHeader = decode_json(header)?;
    let claims: RawClaims = decode_json(claims)?;
    Ok(UnverifiedAssertion {
        issuer: claims.iss,
        key_id: header.kid,
        jwks_url: header.jku,
    })
}

/// What the assertion must match: the registered client and this server's token endpoint.
#[derive(Debug, Clone, Copy)]
pub struct AssertionExpectations<'a> {
    /// The client id, as registered.
    pub client_id: &'a str,
    /// The token endpoint URL, exactly as advertised in the discovery documents.
    pub token_endpoint: &'a str,
    /// The client's JWK Set: registered by value, or fetched by the caller from a registered URL.
    pub jwks: &'a Value,
    /// The JWKS URLs registered for the client; a header `jku` must be one of them.
    pub allowed_jku: &'a [String],
}

/// An accepted assertion: the caller records `jti` for this client and refuses it again until
/// [`VerifiedAssertion::remember_until`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The assertion's unique id.
    pub jti: String,
    /// Its expiry (Unix seconds).
    pub exp: i64,
}

impl VerifiedAssertion {
    /// Until when the `jti` must be remembered: after this the assertion is refused as expired.
    pub fn remember_until(&self) -> i64 {
        self.exp + ASSERTION_CLOCK_SKEW_SECONDS
    }
}

/// Verifies a client assertion at `now` (Unix seconds) per RFC 7523 §3 and SMART.
pub fn verify_client_assertion(
    assertion: &str,
    expected: &AssertionExpectations<'_>,
    now: i64,
) -> Result<VerifiedAssertion, AuthError> {
    let (header_part, _) = split(assertion)?;
    // The header is read here rather than by jsonwebtoken, whose algorithm enum cannot hold
    // `none`; the log then says exactly which algorithm was refused.
    let header: RawHeader = decode_json(header_part)?;
    let alg = match header.alg.as_deref() {
        Some("RS384") => Algorithm::RS384,
        Some("ES384") => Algorithm::ES384,
        other => {
            return Err(
                AssertionRejection::AlgorithmNotAllowed(other.unwrap_or("").to_owned()).into(),
            );
        }
    };
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("JWT"))
    {
        return Err(AssertionRejection::WrongType.into());
    }
    let kid = header
        .kid
        .filter(|k| !k.is_empty())
        .ok_or(AssertionRejection::MissingKeyId)?;
    if let Some(jku) = header.jku
        && !expected.allowed_jku.contains(&jku)
    {
        return Err(AssertionRejection::JkuNotAllowed(jku).into());
    }

    let key = decoding_key(select_key(expected.jwks, &kid, alg)?, alg)?;
    let claims = jsonwebtoken::decode::<RawClaims>(assertion, &key, signature_only(alg))
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => AssertionRejection::BadSignature,
            _ => AssertionRejection::Malformed,
        })?
        .claims;

    let iss = claims.iss.ok_or(AssertionRejection::WrongIssuer)?;
    if iss != expected.client_id {
        return Err(AssertionRejection::WrongIssuer.into());
    }
    if claims.sub.as_deref() != Some(iss.as_str()) {
        return Err(AssertionRejection::WrongSubject.into());
    }
    let audience_ok = match &claims.aud {
        Some(Value::String(aud)) => aud == expected.token_endpoint,
        Some(Value::Array(auds)) => auds.iter().any(|a| a == expected.token_endpoint),
        _ => false,
    };
    if !audience_ok {
        return Err(AssertionRejection::WrongAudience.into());
    }
    let exp = claims.exp.ok_or(AssertionRejection::MissingExpiry)?;
    if exp + ASSERTION_CLOCK_SKEW_SECONDS <= now {
        return Err(AssertionRejection::Expired.into());
    }
    if exp > now + MAX_ASSERTION_LIFETIME_SECONDS + ASSERTION_CLOCK_SKEW_SECONDS {
        return Err(AssertionRejection::ExpiryTooFar.into());
    }
    let future = |t: Option<i64>| t.is_some_and(|t| t > now + ASSERTION_CLOCK_SKEW_SECONDS);
    if future(claims.nbf) || future(claims.iat) {
        return Err(AssertionRejection::NotYetValid.into());
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty())
        .ok_or(AssertionRejection::MissingJti)?;
    Ok(VerifiedAssertion { jti, exp })
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    jku: Option<String>,
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
}

fn split(assertion: &str) -> Result<(&str, &str), AuthError> {
    let mut parts = assertion.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(claims), Some(_signature), None) => Ok((header, claims)),
        _ => Err(AssertionRejection::Malformed.into()),
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AssertionRejection::Malformed)?;
    Ok(serde_json::from_slice(&bytes).map_err(|_| AssertionRejection::Malformed)?)
}

/// The single JWK with this `kid` whose type fits `alg` (SMART's key-resolution rule); a key
/// that states its own `alg` or `use` must agree with them.
fn select_key<'a>(jwks: &'a Value, kid: &str, alg: Algorithm) -> Result<&'a Value, AuthError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| AssertionRejection::UnusableKey("the JWKS has no keys array".into()))?;
    let fits = |k: &&Value| {
        let member = |name: &str| k.get(name).and_then(Value::as_str);
        let type_fits = match alg {
            Algorithm::RS384 => member("kty") == Some("RSA"),
            _ => member("kty") == Some("EC") && member("crv") == Some("P-384"),
        };
        let alg_name = if alg == Algorithm::RS384 {
            "RS384"
        } else {
            "ES384"
        };
        member("kid") == Some(kid)
            && type_fits
            && member("alg").is_none_or(|a| a == alg_name)
            && member("use").is_none_or(|u| u == "sig")
    };
    let mut matching = keys.iter().filter(fits);
    match (matching.next(), matching.next()) {
        (Some(key), None) => Ok(key),
        (None, _) => Err(AssertionRejection::NoMatchingKey.into()),
        (Some(_), Some(_)) => Err(AssertionRejection::AmbiguousKey.into()),
    }
}

fn decoding_key(jwk: &Value, alg: Algorithm) -> Result<DecodingKey, AuthError> {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| AssertionRejection::UnusableKey(format!("no '{name}'")))
    };
    let unusable = |e: jsonwebtoken::errors::Error| AssertionRejection::UnusableKey(e.to_string());
    let key = if alg == Algorithm::RS384 {
        let n = member("n")?;
        let modulus = URL_SAFE_NO_PAD
            .decode(n)
            .map_err(|_| AssertionRejection::UnusableKey("'n' is not base64url".into()))?;
        let significant = modulus.iter().skip_while(|b| **b == 0).count();
        if significant < MIN_RSA_MODULUS_BYTES {
            return Err(
                AssertionRejection::UnusableKey("RSA modulus under 2048 bits".into()).into(),
            );
        }
        DecodingKey::from_rsa_components(n, member("e")?).map_err(unusable)?
    } else {
        DecodingKey::from_ec_components(member("x")?, member("y")?).map_err(unusable)?
    };
    Ok(key)
}

/// Signature and algorithm only: claims are checked here against the caller's `now`.
fn signature_only(alg: Algorithm) -> &'static Validation {
    static RS384: OnceLock<Validation> = OnceLock::new();
    static ES384: OnceLock<Validation> = OnceLock::new();
    let cell = if alg == Algorithm::RS384 {
        &RS384
    } else {
        &ES384
    };
    cell.get_or_init(|| {
        let mut v = Validation::new(alg);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use p384::ecdsa::SigningKey as EcKey;
    use p384::elliptic_curve::Generate;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    use serde_json::json;

    use super::*;
    use crate::keys::testing::rsa_keys;

    const CLIENT: &str = "bulk-exporter";
    const TOKEN_URL: &str = "https://curanet.example/oauth/token";
    const JWKS_URL: &str = "https://client.example/.well-known/jwks.json";
    const NOW: i64 = 1_750_000_000;

    /// The client's keys: RSA for RS384 (shared test key), two P-384 keys for ES384, and an
    /// RSA key that is not registered.
    struct Keys {
        rsa: EncodingKey,
        rsa_unregistered: EncodingKey,
        ec: EncodingKey,
        ec_unregistered: EncodingKey,
        jwks: Value,
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            let [registered, unregistered] = rsa_keys();
            let pem = |k: &rsa::PrivateKey| k.to_pkcs8_pem(LineEnding::LF).unwrap();
            let ec = EcKey::try_generate_from_rng(&mut getrandom::SysRng).unwrap();
            let ec_other = EcKey::try_generate_from_rng(&mut getrandom::SysRng).unwrap();
            let ec_pem = |k: &EcKey| k.to_pkcs8_pem(LineEnding::LF).unwrap();
            let point = ec.verifying_key().to_sec1_point(false);
            let public = registered.as_public_key();
            Keys {
                rsa: EncodingKey::from_rsa_pem(pem(registered).as_bytes()).unwrap(),
                rsa_unregistered: EncodingKey::from_rsa_pem(pem(unregistered).as_bytes()).unwrap(),
                ec: EncodingKey::from_ec_pem(ec_pem(&ec).as_bytes()).unwrap(),
                ec_unregistered: EncodingKey::from_ec_pem(ec_pem(&ec_other).as_bytes()).unwrap(),
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

    fn claims() -> Value {
        json!({
            "iss": CLIENT,
            "sub": CLIENT,
            "aud": TOKEN_URL,
            "exp": NOW + 300,
            "iat": NOW,
            "jti": "4c2b8d8e-6a57-4b5e-9e36-0d1c1f3f3b11",
        })
    }

    fn header(alg: Algorithm, kid: Option<&str>) -> Header {
        let mut h = Header::new(alg);
        h.kid = kid.map(str::to_owned);
        h
    }

    fn sign(header: &Header, claims: &Value, key: &EncodingKey) -> String {
        jsonwebtoken::encode(header, claims, key).unwrap()
    }

    fn rs384(claims: &Value) -> String {
        sign(
            &header(Algorithm::RS384, Some("rsa-1")),
            claims,
            &keys().rsa,
        )
    }

    fn verify(assertion: &str) -> Result<VerifiedAssertion, AssertionRejection> {
        let allowed = vec![JWKS_URL.to_owned()];
        let expected = AssertionExpectations {
            client_id: CLIENT,
            token_endpoint: TOKEN_URL,
            jwks: &keys().jwks,
            allowed_jku: &allowed,
        };
        verify_client_assertion(assertion, &expected, NOW).map_err(|e| match e {
            AuthError::InvalidClient(reason) => reason,
            other => panic!("not invalid_client: {other}"),
        })
    }

    /// A JWT with a raw header and claims and a dummy signature, for headers jsonwebtoken
    /// cannot produce (`alg: none`).
    fn unsigned(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    fn with(changes: &[(&str, Value)]) -> Value {
        let mut c = claims();
        for (name, value) in changes {
            if value.is_null() {
                c.as_object_mut().unwrap().remove(*name);
            } else {
                c[*name] = value.clone();
            }
        }
        c
    }

    #[test]
    fn valid_rs384_and_es384_assertions_are_accepted() {
        let expected = VerifiedAssertion {
            jti: "4c2b8d8e-6a57-4b5e-9e36-0d1c1f3f3b11".into(),
            exp: NOW + 300,
        };
        let es384 = sign(
            &header(Algorithm::ES384, Some("ec-1")),
            &claims(),
            &keys().ec,
        );
        let mut with_jku = header(Algorithm::RS384, Some("rsa-1"));
        with_jku.jku = Some(JWKS_URL.into());
        let cases: Vec<(&str, String)> = vec![
            ("RS384", rs384(&claims())),
            ("ES384", es384),
            ("registered jku", sign(&with_jku, &claims(), &keys().rsa)),
            (
                "aud as an array",
                rs384(&with(&[(
                    "aud",
                    json!(["https://other.example", TOKEN_URL]),
                )])),
            ),
            ("no iat", rs384(&with(&[("iat", Value::Null)]))),
            ("exp just ahead", rs384(&with(&[("exp", json!(NOW + 1))]))),
        ];
        for (name, assertion) in cases {
            let got = verify(&assertion);
            let want_exp = if name == "exp just ahead" {
                NOW + 1
            } else {
                NOW + 300
            };
            assert_eq!(
                got,
                Ok(VerifiedAssertion {
                    exp: want_exp,
                    ..expected.clone()
                }),
                "{name}"
            );
        }
        assert_eq!(
            expected.remember_until(),
            NOW + 300 + ASSERTION_CLOCK_SKEW_SECONDS
        );
    }

    #[test]
    fn replayed_assertion_yields_the_same_jti() {
        // Test case 52: the caller refuses the second use; it needs the same jti both times.
        let assertion = rs384(&claims());
        let first = verify(&assertion).unwrap();
        let second = verify(&assertion).unwrap();
        assert_eq!(first.jti, second.jti);
        assert!(first.remember_until() > NOW + MAX_ASSERTION_LIFETIME_SECONDS);
    }

    #[test]
    fn every_failure_is_invalid_client_with_a_reason() {
        use AssertionRejection as R;
        let k = keys();
        let rs = |kid: Option<&str>| header(Algorithm::RS384, kid);
        let mut jku_unregistered = rs(Some("rsa-1"));
        jku_unregistered.jku = Some("https://evil.example/jwks.json".into());
        let mut no_typ = rs(Some("rsa-1"));
        no_typ.typ = None;
        let mut wrong_typ = rs(Some("rsa-1"));
        wrong_typ.typ = Some("at+jwt".into());
        let hs256_key =
            EncodingKey::from_secret(k.jwks["keys"][0]["n"].as_str().unwrap().as_bytes()).unwrap();
        let rsa_kid_on_ec = sign(&header(Algorithm::ES384, Some("rsa-1")), &claims(), &k.ec);
        let cases: Vec<(&str, String, R)> = vec![
            // 49: signed with a key that is not registered.
            (
                "unregistered RSA key",
                sign(&rs(Some("rsa-1")), &claims(), &k.rsa_unregistered),
                R::BadSignature,
            ),
            (
                "unregistered EC key",
                sign(
                    &header(Algorithm::ES384, Some("ec-1")),
                    &claims(),
                    &k.ec_unregistered,
                ),
                R::BadSignature,
            ),
            // 50: aud is not the token endpoint.
            (
                "aud elsewhere",
                rs384(&with(&[("aud", json!("https://curanet.example/fhir"))])),
                R::WrongAudience,
            ),
            (
                "aud array without the endpoint",
                rs384(&with(&[("aud", json!(["https://other.example"]))])),
                R::WrongAudience,
            ),
            (
                "no aud",
                rs384(&with(&[("aud", Value::Null)])),
                R::WrongAudience,
            ),
            // 51: exp too far ahead or in the past.
            (
                "exp 10 minutes ahead",
                rs384(&with(&[("exp", json!(NOW + 600))])),
                R::ExpiryTooFar,
            ),
            (
                "exp in the past",
                rs384(&with(&[("exp", json!(NOW - 60))])),
                R::Expired,
            ),
            (
                "exp at the skew limit",
                rs384(&with(&[("exp", json!(NOW - ASSERTION_CLOCK_SKEW_SECONDS))])),
                R::Expired,
            ),
            (
                "no exp",
                rs384(&with(&[("exp", Value::Null)])),
                R::MissingExpiry,
            ),
            (
                "nbf in the future",
                rs384(&with(&[("nbf", json!(NOW + 120))])),
                R::NotYetValid,
            ),
            (
                "iat in the future",
                rs384(&with(&[("iat", json!(NOW + 120))])),
                R::NotYetValid,
            ),
            // 53: iss differs from sub, or is another client.
            (
                "iss != sub",
                rs384(&with(&[("sub", json!("someone-else"))])),
                R::WrongSubject,
            ),
            (
                "no sub",
                rs384(&with(&[("sub", Value::Null)])),
                R::WrongSubject,
            ),
            (
                "unknown iss",
                rs384(&with(&[
                    ("iss", json!("unknown")),
                    ("sub", json!("unknown")),
                ])),
                R::WrongIssuer,
            ),
            (
                "no iss",
                rs384(&with(&[("iss", Value::Null)])),
                R::WrongIssuer,
            ),
            // 54: jku not registered; kid not in the JWKS.
            (
                "unregistered jku",
                sign(&jku_unregistered, &claims(), &k.rsa),
                R::JkuNotAllowed("https://evil.example/jwks.json".into()),
            ),
            (
                "unknown kid",
                sign(&rs(Some("rsa-2")), &claims(), &k.rsa),
                R::NoMatchingKey,
            ),
            ("kid of the wrong key type", rsa_kid_on_ec, R::NoMatchingKey),
            (
                "no kid",
                sign(&rs(None), &claims(), &k.rsa),
                R::MissingKeyId,
            ),
            // 55: alg none or HS256, and other algorithms outside RS384/ES384.
            (
                "alg none",
                unsigned(
                    &json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"}),
                    &claims(),
                ),
                R::AlgorithmNotAllowed("none".into()),
            ),
            (
                "no alg",
                unsigned(&json!({"typ": "JWT", "kid": "rsa-1"}), &claims()),
                R::AlgorithmNotAllowed(String::new()),
            ),
            (
                "HS256 keyed with the public modulus",
                sign(
                    &header(Algorithm::HS256, Some("rsa-1")),
                    &claims(),
                    &hs256_key,
                ),
                R::AlgorithmNotAllowed("HS256".into()),
            ),
            (
                "RS256",
                sign(&header(Algorithm::RS256, Some("rsa-1")), &claims(), &k.rsa),
                R::AlgorithmNotAllowed("RS256".into()),
            ),
            // Header and claim shape.
            ("no typ", sign(&no_typ, &claims(), &k.rsa), R::WrongType),
            (
                "typ at+jwt",
                sign(&wrong_typ, &claims(), &k.rsa),
                R::WrongType,
            ),
            (
                "no jti",
                rs384(&with(&[("jti", Value::Null)])),
                R::MissingJti,
            ),
            (
                "empty jti",
                rs384(&with(&[("jti", json!(""))])),
                R::MissingJti,
            ),
            ("not a JWT", "not-a-jwt".into(), R::Malformed),
            (
                "four parts",
                format!("{}.x", rs384(&claims())),
                R::Malformed,
            ),
            (
                "exp as a string",
                rs384(&with(&[("exp", json!("soon"))])),
                R::Malformed,
            ),
        ];
        for (name, assertion, expected) in cases {
            assert_eq!(verify(&assertion), Err(expected), "{name}");
        }
    }

    #[test]
    fn key_resolution_against_the_registered_jwks() {
        use AssertionRejection as R;
        let k = keys();
        let rsa_jwk = k.jwks["keys"][0].clone();
        let mut small = rsa_jwk.clone();
        small["n"] = json!(URL_SAFE_NO_PAD.encode([0xffu8; 128])); // 1024 bits
        let mut rs256_only = rsa_jwk.clone();
        rs256_only["alg"] = json!("RS256");
        let mut enc_only = rsa_jwk.clone();
        enc_only["use"] = json!("enc");
        let mut no_n = rsa_jwk.clone();
        no_n.as_object_mut().unwrap().remove("n");
        let cases: Vec<(&str, Value, Result<(), R>)> = vec![
            ("registered", json!({"keys": [rsa_jwk.clone()]}), Ok(())),
            (
                "duplicate kid",
                json!({"keys": [rsa_jwk.clone(), rsa_jwk.clone()]}),
                Err(R::AmbiguousKey),
            ),
            ("empty set", json!({"keys": []}), Err(R::NoMatchingKey)),
            (
                "not a JWKS",
                json!([rsa_jwk.clone()]),
                Err(R::UnusableKey("the JWKS has no keys array".into())),
            ),
            (
                "RSA modulus under 2048 bits",
                json!({"keys": [small]}),
                Err(R::UnusableKey("RSA modulus under 2048 bits".into())),
            ),
            (
                "key restricted to RS256",
                json!({"keys": [rs256_only]}),
                Err(R::NoMatchingKey),
            ),
            (
                "encryption key",
                json!({"keys": [enc_only]}),
                Err(R::NoMatchingKey),
            ),
            (
                "key without n",
                json!({"keys": [no_n]}),
                Err(R::UnusableKey("no 'n'".into())),
            ),
        ];
        let assertion = rs384(&claims());
        for (name, jwks, expected) in cases {
            let expectations = AssertionExpectations {
                client_id: CLIENT,
                token_endpoint: TOKEN_URL,
                jwks: &jwks,
                allowed_jku: &[],
            };
            let got = verify_client_assertion(&assertion, &expectations, NOW)
                .map(|_| ())
                .map_err(|e| match e {
                    AuthError::InvalidClient(r) => r,
                    other => panic!("{other}"),
                });
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn peek_reads_iss_kid_and_jku_unverified() {
        let mut h = header(Algorithm::RS384, Some("rsa-1"));
        h.jku = Some(JWKS_URL.into());
        let assertion = sign(&h, &claims(), &keys().rsa_unregistered);
        assert_eq!(
            peek_client_assertion(&assertion).unwrap(),
            UnverifiedAssertion {
                issuer: Some(CLIENT.into()),
                key_id: Some("rsa-1".into()),
                jwks_url: Some(JWKS_URL.into()),
            }
        );
        assert!(matches!(
            peek_client_assertion("garbage"),
            Err(AuthError::InvalidClient(AssertionRejection::Malformed))
        ));
    }

    #[test]
    fn assertion_type_parameter() {
        let cases: &[(Option<&str>, bool)] = &[
            (Some(CLIENT_ASSERTION_TYPE), true),
            (Some("not_an_assertion_type"), false), // test case 48
            (Some(""), false),
            (None, false),
        ];
        for (value, ok) in cases {
            assert_eq!(check_assertion_type(*value).is_ok(), *ok, "{value:?}");
        }
    }
}
