//! Proof Key for Code Exchange (RFC 7636), `S256` only: SMART 2.2 forbids `plain`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AuthError;

/// Shortest verifier allowed by RFC 7636 §4.1.
pub const MIN_VERIFIER_LEN: usize = 43;
/// Longest verifier allowed by RFC 7636 §4.1.
pub const MAX_VERIFIER_LEN: usize = 128;
/// Length of an S256 challenge: base64url of 32 bytes, without padding.
const S256_CHALLENGE_LEN: usize = 43;

/// What is wrong with the PKCE parameters (the caller answers `invalid_request` at the
/// authorization endpoint and `invalid_grant` at the token endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkceError {
    /// No `code_challenge` in the authorization request.
    MissingChallenge,
    /// No `code_challenge_method`; RFC 7636 would default to `plain`, which is refused.
    MissingMethod,
    /// A method other than `S256` (including `plain`).
    UnsupportedMethod(String),
    /// The challenge is not 43 base64url characters.
    MalformedChallenge,
    /// No `code_verifier` at the token endpoint.
    MissingVerifier,
    /// The verifier is not 43–128 characters of `[A-Za-z0-9-._~]`.
    MalformedVerifier,
    /// The verifier does not hash to the challenge.
    Mismatch,
}

impl fmt::Display for PkceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PkceError::MissingChallenge => f.write_str("code_challenge is required"),
            PkceError::MissingMethod => f.write_str("code_challenge_method=S256 is required"),
            PkceError::UnsupportedMethod(m) => {
                write!(f, "code_challenge_method '{m}' is not supported; use S256")
            }
            PkceError::MalformedChallenge => {
                f.write_str("code_challenge must be 43 base64url characters")
            }
            PkceError::MissingVerifier => f.write_str("code_verifier is required"),
            PkceError::MalformedVerifier => {
                f.write_str("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")
            }
            PkceError::Mismatch => f.write_str("code_verifier does not match the code_challenge"),
        }
    }
}

impl From<PkceError> for AuthError {
    fn from(e: PkceError) -> Self {
        AuthError::Pkce(e)
    }
}

/// A validated S256 code challenge, kept with the authorization code until it is exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Checks `code_challenge` and `code_challenge_method` from an authorization request.
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, AuthError> {
        let challenge = challenge
            .filter(|c| !c.is_empty())
            .ok_or(PkceError::MissingChallenge)?;
        match method {
            None | Some("") => return Err(PkceError::MissingMethod.into()),
            Some("S256") => {}
            Some(other) => return Err(PkceError::UnsupportedMethod(other.to_owned()).into()),
        }
        let well_formed = challenge.len() == S256_CHALLENGE_LEN
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(PkceError::MalformedChallenge.into());
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }

    /// The challenge as sent by the client (what storage keeps).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the `code_verifier` of the token request against this challenge, in constant time.
    pub fn verify(&self, verifier: Option<&str>) -> Result<(), AuthError> {
        let verifier = verifier
            .filter(|v| !v.is_empty())
            .ok_or(PkceError::MissingVerifier)?;
        if !is_valid_verifier(verifier) {
            return Err(PkceError::MalformedVerifier.into());
        }
        let computed = s256_challenge(verifier);
        if bool::from(computed.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(PkceError::Mismatch.into())
        }
    }
}

/// Whether `verifier` has the syntax of RFC 7636 §4.1: 43–128 unreserved characters.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `BASE64URL(SHA256(verifier))`, the S256 challenge of a verifier (clients and tests use it).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A new random verifier (32 random bytes, 43 characters), for clients such as the desktop app.
pub fn generate_verifier() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn pkce_err(r: Result<impl fmt::Debug, AuthError>) -> Option<PkceError> {
        match r {
            Err(AuthError::Pkce(e)) => Some(e),
            Ok(_) => None,
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(s256_challenge(RFC_VERIFIER), RFC_CHALLENGE);
    }

    #[test]
    fn authorization_request_parameters() {
        let cases: &[(Option<&str>, Option<&str>, Option<PkceError>)] = &[
            (Some(RFC_CHALLENGE), Some("S256"), None),
            (None, Some("S256"), Some(PkceError::MissingChallenge)),
            (Some(""), Some("S256"), Some(PkceError::MissingChallenge)),
            (Some(RFC_CHALLENGE), None, Some(PkceError::MissingMethod)),
            (
                Some(RFC_CHALLENGE),
                Some("plain"),
                Some(PkceError::UnsupportedMethod("plain".into())),
            ),
            (
                Some(RFC_CHALLENGE),
                Some("s256"),
                Some(PkceError::UnsupportedMethod("s256".into())),
            ),
            (
                Some("abc"),
                Some("S256"),
                Some(PkceError::MalformedChallenge),
            ),
            (
                Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"),
                Some("S256"),
                Some(PkceError::MalformedChallenge),
            ),
            (
                Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="),
                Some("S256"),
                Some(PkceError::MalformedChallenge),
            ),
        ];
        for (challenge, method, expected) in cases {
            let got = pkce_err(CodeChallenge::parse(*challenge, *method));
            assert_eq!(got, *expected, "{challenge:?} {method:?}");
        }
    }

    #[test]
    fn token_request_verifier() {
        let challenge = CodeChallenge::parse(Some(RFC_CHALLENGE), Some("S256")).unwrap();
        assert_eq!(challenge.as_str(), RFC_CHALLENGE);
        let random_73 = "a".repeat(73);
        let cases: &[(Option<&str>, Option<PkceError>)] = &[
            (Some(RFC_VERIFIER), None),
            (None, Some(PkceError::MissingVerifier)), // test case 15
            (Some(""), Some(PkceError::MissingVerifier)), // test case 16
            (Some(&random_73), Some(PkceError::Mismatch)), // test case 17
            (Some(RFC_CHALLENGE), Some(PkceError::Mismatch)), // test case 18
            (Some("short"), Some(PkceError::MalformedVerifier)),
            (
                Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX!"),
                Some(PkceError::MalformedVerifier),
            ),
        ];
        for (verifier, expected) in cases {
            assert_eq!(
                pkce_err(challenge.verify(*verifier)),
                *expected,
                "{verifier:?}"
            );
        }
    }

    #[test]
    fn verifier_syntax() {
        let cases: &[(String, bool)] = &[
            ("a".repeat(42), false),
            ("a".repeat(43), true),
            ("a".repeat(128), true),
            ("a".repeat(129), false),
            (format!("{}-._~", "Z9".repeat(20)), true),
            (format!("{} ", "a".repeat(43)), false),
            (format!("{}é", "a".repeat(43)), false),
            (format!("{}/", "a".repeat(43)), false),
        ];
        for (verifier, ok) in cases {
            assert_eq!(is_valid_verifier(verifier), *ok, "{verifier}");
        }
    }

    #[test]
    fn generated_verifiers_round_trip() {
        let verifier = generate_verifier();
        assert_eq!(verifier.len(), 43);
        assert!(is_valid_verifier(&verifier));
        assert_ne!(generate_verifier(), verifier);
        let challenge =
            CodeChallenge::parse(Some(&s256_challenge(&verifier)), Some("S256")).unwrap();
        assert!(challenge.verify(Some(&verifier)).is_ok());
    }
}
