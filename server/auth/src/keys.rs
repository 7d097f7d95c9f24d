//! The server's RSA signing keys (RS256): generation, the key ring with rotation, the public
//! JWKS (RFC 7517), and sealing private keys with AES-256-GCM for storage.
//!
//! Times are Unix seconds, passed in by the caller.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey};
use rsa::PrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::AuthError;

/// Modulus size of generated keys. 2048 bits is what RS256 verifiers universally accept, and
/// generation stays fast enough for a first start.
pub const RSA_KEY_BITS: usize = 2048;
/// Default age after which the current key is replaced (the caller may choose another).
pub const DEFAULT_ROTATION_AGE_SECONDS: i64 = 30 * 24 * 3600;
/// How long a replaced key stays in the ring and the JWKS: the longest token lifetime plus the
/// verification leeway, so every token it signed can still be verified until it expires.
pub const RETAIN_AFTER_ROTATION_SECONDS: i64 =
    crate::token::MAX_ACCESS_TOKEN_SECONDS + crate::token::CLOCK_LEEWAY_SECONDS;
/// Length of the key-encryption key in bytes (AES-256).
pub const KEY_ENCRYPTION_KEY_BYTES: usize = 32;
/// First byte of a sealed key, so the format can change later without guessing.
const SEALED_FORMAT_V1: u8 = 1;
/// AES-GCM nonce length in bytes.
const NONCE_BYTES: usize = 12;

/// One RSA signing key with its identity and lifetime. The jsonwebtoken encoding and decoding
/// keys are built once here, so signing and verification never re-derive them per request.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    created_at: i64,
    retire_at: Option<i64>,
    private: PrivateKey,
    encoding: EncodingKey,
    decoding: DecodingKey,
    n: String,
    e: String,
}

impl SigningKey {
    /// Generates a new 2048-bit key created at `now` (0.1–0.4 s in a debug build, randomly).
    pub fn generate(now: i64) -> Result<Self, AuthError> {
        let private = PrivateKey::new(&mut getrandom::SysRng, RSA_KEY_BITS)
            .map_err(|e| AuthError::Key(format!("cannot generate an RSA key: {e}")))?;
        SigningKey::from_private_key(private, now, None)
    }

    /// Rebuilds a key from its PKCS#8 PEM (the decrypted form of a [`SealedKey`]).
    pub fn from_pkcs8_pem(
        pem: &str,
        created_at: i64,
        retire_at: Option<i64>,
    ) -> Result<Self, AuthError> {
        let private = PrivateKey::from_pkcs8_pem(pem)
            .map_err(|e| AuthError::Key(format!("not an RSA PKCS#8 private key: {e}")))?;
        SigningKey::from_private_key(private, created_at, retire_at)
    }

    pub(crate) fn from_private_key(
        private: PrivateKey,
        created_at: i64,
        retire_at: Option<i64>,
    ) -> Result<Self, AuthError> {
        let der = private
            .to_pkcs1_der()
            .map_err(|e| AuthError::Key(format!("cannot encode the key: {e}")))?;
        let encoding = EncodingKey::from_rsa_der(der.as_bytes());
        let public = private.as_public_key();
        let (n_bytes, e_bytes) = (public.n_bytes(), public.e_bytes());
        let decoding = DecodingKey::from_rsa_raw_components(&n_bytes, &e_bytes);
        let n = URL_SAFE_NO_PAD.encode(&n_bytes);
        let e = URL_SAFE_NO_PAD.encode(&e_bytes);
        Ok(SigningKey {
            kid: rfc7638_thumbprint(&n, &e),
            created_at,
            retire_at,
            private,
            encoding,
            decoding,
            n,
            e,
        })
    }

    /// The key id (RFC 7638 SHA-256 thumbprint), put in every token header as `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// When the key was generated.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }

    /// When the key leaves the ring; `None` while it is the current key.
    pub fn retire_at(&self) -> Option<i64> {
        self.retire_at
    }

    /// The public key as a JWK with `kty`, `kid`, `use`, `alg`, `n` and `e`.
    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": self.n,
            "e": self.e,
        })
    }

    /// The private key as PKCS#8 PEM (only for sealing; never log or store it in clear).
    pub fn to_pkcs8_pem(&self) -> Result<String, AuthError> {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| AuthError::Key(format!("cannot encode the key: {e}")))
    }

    /// Encrypts the private key for storage.
    pub fn seal(&self, kek: &KeyEncryptionKey) -> Result<SealedKey, AuthError> {
        let pem = self.to_pkcs8_pem()?;
        Ok(SealedKey {
            kid: self.kid.clone(),
            created_at: self.created_at,
            retire_at: self.retire_at,
            ciphertext: kek.seal(pem.as_bytes(), self.kid.as_bytes())?,
        })
    }

    /// Decrypts a stored key; fails if the key-encryption key is wrong or the row was altered.
    pub fn open(sealed: &SealedKey, kek: &KeyEncryptionKey) -> Result<Self, AuthError> {
        let pem = kek.open(&sealed.ciphertext, sealed.kid.as_bytes())?;
        let pem = String::from_utf8(pem)
            .map_err(|_| AuthError::KeyEncryption("the sealed key is not PEM".into()))?;
        let key = SigningKey::from_pkcs8_pem(&pem, sealed.created_at, sealed.retire_at)?;
        if key.kid != sealed.kid {
            return Err(AuthError::KeyEncryption(format!(
                "the sealed key has kid {} but is stored as {}",
                key.kid, sealed.kid
            )));
        }
        Ok(key)
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl fmt::Debug for SigningKey {
    // The private key stays out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retire_at", &self.retire_at)
            .finish_non_exhaustive()
    }
}

/// What storage keeps for a signing key: its identity and lifetime in clear, the private key
/// sealed (format byte, 12-byte nonce, AES-256-GCM ciphertext with the `kid` as associated
/// data, so a sealed key cannot be moved to another row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// The key id.
    pub kid: String,
    /// When the key was generated (Unix seconds).
    pub created_at: i64,
    /// When the key leaves the ring (Unix seconds); `None` for the current key.
    pub retire_at: Option<i64>,
    /// The sealed private key.
    pub ciphertext: Vec<u8>,
}

/// The 32-byte AES-256-GCM key that seals private keys (and other secrets such as TOTP
/// secrets) at rest; it comes from the environment as base64.
#[derive(Clone)]
pub struct KeyEncryptionKey(Aes256Gcm);

impl KeyEncryptionKey {
    /// Parses the standard base64 form of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, AuthError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| AuthError::KeyEncryption(format!("the key is not base64: {e}")))?;
        if bytes.len() != KEY_ENCRYPTION_KEY_BYTES {
            return Err(AuthError::KeyEncryption(format!(
                "the key must be {KEY_ENCRYPTION_KEY_BYTES} bytes, got {}",
                bytes.len()
            )));
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes)
            .map_err(|e| AuthError::KeyEncryption(e.to_string()))?;
        Ok(KeyEncryptionKey(cipher))
    }

    /// A new random key in base64, for operators setting up a deployment.
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; KEY_ENCRYPTION_KEY_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        STANDARD.encode(bytes)
    }

    /// Encrypts `plaintext` bound to `context` (associated data that must be given again to open).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, AuthError> {
        // A random 96-bit nonce per message: safe for far more messages than keys will ever be
        // sealed under one key-encryption key.
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).expect("the operating system's random generator failed");
        let ciphertext = self
            .0
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            .map_err(|_| AuthError::KeyEncryption("encryption failed".into()))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
        sealed.push(SEALED_FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts what [`KeyEncryptionKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, AuthError> {
        let Some((&SEALED_FORMAT_V1, rest)) = sealed.split_first() else {
            return Err(AuthError::KeyEncryption("unknown sealed format".into()));
        };
        if rest.len() < NONCE_BYTES {
            return Err(AuthError::KeyEncryption("sealed data is truncated".into()));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at NONCE_BYTES");
        self.0
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| {
                AuthError::KeyEncryption(
                    "cannot open: wrong key-encryption key or altered data".into(),
                )
            })
    }
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey(..)")
    }
}

/// The keys in use: the current signing key first, then replaced keys kept for verification
/// until their `retire_at`.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
}

/// A key that [`KeyRing::rotate`] replaced; the caller stores its new `retire_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredKey {
    /// The replaced key's id.
    pub kid: String,
    /// When it leaves the ring.
    pub retire_at: i64,
}

impl KeyRing {
    /// A ring with one key, the current one.
    pub fn new(current: SigningKey) -> Self {
        let mut current = current;
        current.retire_at = None;
        KeyRing {
            keys: vec![current],
        }
    }

    /// Builds the ring from stored keys at `now`: keys past their `retire_at` are dropped, and
    /// the newest key without a `retire_at` becomes current. `None` when no key can be current
    /// (first start): the caller generates one.
    pub fn from_keys(keys: Vec<SigningKey>, now: i64) -> Option<Self> {
        let mut keys: Vec<SigningKey> = keys
            .into_iter()
            .filter(|k| k.retire_at.is_none_or(|r| r > now))
            .collect();
        let current = keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.retire_at.is_none())
            .max_by_key(|(_, k)| k.created_at)
            .map(|(i, _)| i)?;
        let current = keys.remove(current);
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        keys.insert(0, current);
        Some(KeyRing { keys })
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> &SigningKey {
        &self.keys[0]
    }

    /// The key with this `kid`, current or replaced.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// All keys, current first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Whether the current key is at least `max_age` seconds old at `now`.
    pub fn needs_rotation(&self, now: i64, max_age: i64) -> bool {
        now - self.current().created_at >= max_age
    }

    /// Makes `new_key` current; the old current key (and any other key that had no `retire_at`,
    /// e.g. one generated by a second instance at first start) is kept until
    /// `now + RETAIN_AFTER_ROTATION_SECONDS`, and keys already past their time are dropped.
    /// Returns the keys whose `retire_at` was set, for storage to record.
    pub fn rotate(&mut self, new_key: SigningKey, now: i64) -> Vec<RetiredKey> {
        let retire_at = now + RETAIN_AFTER_ROTATION_SECONDS;
        let mut retired = Vec::new();
        for key in self.keys.iter_mut().filter(|k| k.retire_at.is_none()) {
            key.retire_at = Some(retire_at);
            retired.push(RetiredKey {
                kid: key.kid.clone(),
                retire_at,
            });
        }
        let mut new_key = new_key;
        new_key.retire_at = None;
        self.keys.insert(0, new_key);
        self.prune(now);
        retired
    }

    /// Drops replaced keys whose `retire_at` has come, returning their ids (storage deletes them).
    pub fn prune(&mut self, now: i64) -> Vec<String> {
        let mut removed = Vec::new();
        let mut index = 0;
        self.keys.retain(|k| {
            let keep = index == 0 || k.retire_at.is_none_or(|r| r > now);
            index += 1;
            if !keep {
                removed.push(k.kid.clone());
            }
            keep
        });
        removed
    }

    /// The public JWK Set served at the `jwks_uri`: every key in the ring.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(SigningKey::public_jwk).collect::<Vec<_>>() })
    }
}

/// RFC 7638 thumbprint of an RSA public key: SHA-256 over `{"e","kty","n"}` in that order.
fn rfc7638_thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// RSA keys shared by every test module of the crate: 2048-bit generation takes 0.1–0.4 s per
/// key in a debug build (prime search is random), so each is generated once per test binary.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::OnceLock;

    use rsa::PrivateKey;

    use super::{RSA_KEY_BITS, SigningKey};

    /// Two independent RSA private keys.
    pub(crate) fn rsa_keys() -> &'static [PrivateKey; 2] {
        static KEYS: OnceLock<[PrivateKey; 2]> = OnceLock::new();
        KEYS.get_or_init(|| {
            // Generated in parallel: the machine has two cores.
            let other = std::thread::spawn(generate);
            [generate(), other.join().expect("key generation thread")]
        })
    }

    fn generate() -> PrivateKey {
        PrivateKey::new(&mut getrandom::SysRng, RSA_KEY_BITS).expect("RSA key generation")
    }

    /// Signing key number `i` (0 or 1), created at `created_at`.
    pub(crate) fn signing_key(i: usize, created_at: i64) -> SigningKey {
        SigningKey::from_private_key(rsa_keys()[i].clone(), created_at, None).expect("test key")
    }
}

#[cfg(test)]
mod tests {
    use super::testing::signing_key;
    use super::*;

    const DAY: i64 = 24 * 3600;

    fn kek() -> KeyEncryptionKey {
        KeyEncryptionKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
    }

    #[test]
    fn generated_key_has_the_right_size_and_a_thumbprint_kid() {
        // The one full generation through the public API (the other tests reuse test keys).
        let key = SigningKey::generate(1_000).unwrap();
        assert_eq!(key.private.size() * 8, RSA_KEY_BITS);
        assert_eq!(key.created_at(), 1_000);
        assert_eq!(key.retire_at(), None);
        assert_eq!(key.kid().len(), 43);
        let jwk = key.public_jwk();
        assert_eq!(
            jwk.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["kty", "kid", "use", "alg", "n", "e"]
        );
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["kid"], key.kid());
        assert!(!format!("{key:?}").contains("BEGIN"));
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        // The example key of RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rfc7638_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn sealed_keys_open_only_with_the_right_key_and_row() {
        let key = signing_key(0, 5 * DAY);
        let sealed = key.seal(&kek()).unwrap();
        assert_eq!(sealed.kid, key.kid());
        assert_eq!(sealed.created_at, 5 * DAY);
        assert_eq!(sealed.ciphertext[0], SEALED_FORMAT_V1);
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(
            !sealed
                .ciphertext
                .windows(10)
                .any(|w| w == &pem.as_bytes()[30..40]),
            "the PEM must not appear in clear"
        );
        // Two seals of the same key differ (random nonce).
        assert_ne!(key.seal(&kek()).unwrap().ciphertext, sealed.ciphertext);

        let opened = SigningKey::open(&sealed, &kek()).unwrap();
        assert_eq!(opened.kid(), key.kid());
        assert_eq!(opened.public_jwk(), key.public_jwk());

        let other_kek =
            KeyEncryptionKey::from_base64(&KeyEncryptionKey::generate_base64()).unwrap();
        let mut tampered = sealed.clone();
        let last = tampered.ciphertext.len() - 1;
        tampered.ciphertext[last] ^= 1;
        let mut moved = sealed.clone();
        moved.kid = signing_key(1, 0).kid().to_owned();
        let mut truncated = sealed.clone();
        truncated.ciphertext.truncate(5);
        let mut future_format = sealed.clone();
        future_format.ciphertext[0] = 2;
        let cases: &[(&SealedKey, &KeyEncryptionKey)] = &[
            (&sealed, &other_kek),
            (&tampered, &kek()),
            (&moved, &kek()),
            (&truncated, &kek()),
            (&future_format, &kek()),
        ];
        for (i, (sealed, kek)) in cases.iter().enumerate() {
            assert!(
                matches!(
                    SigningKey::open(sealed, kek),
                    Err(AuthError::KeyEncryption(_))
                ),
                "case {i}"
            );
        }
    }

    #[test]
    fn key_encryption_key_must_be_32_bytes_of_base64() {
        let cases: &[(&str, bool)] = &[
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", true),
            ("  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", true),
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==", false), // 31 bytes
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", false), // 33 bytes
            ("not base64!", false),
            ("", false),
        ];
        for (text, ok) in cases {
            assert_eq!(KeyEncryptionKey::from_base64(text).is_ok(), *ok, "{text:?}");
        }
        assert_eq!(format!("{:?}", kek()), "KeyEncryptionKey(..)");
        assert_eq!(
            kek()
                .open(
                    &kek().seal(b"totp secret", b"account 7").unwrap(),
                    b"account 7"
                )
                .unwrap(),
            b"totp secret"
        );
        assert!(
            kek()
                .open(
                    &kek().seal(b"totp secret", b"account 7").unwrap(),
                    b"account 8"
                )
                .is_err()
        );
    }

    #[test]
    fn rotation_keeps_old_keys_until_their_tokens_expire() {
        let first = signing_key(0, 0);
        let second = signing_key(1, 30 * DAY);
        let mut ring = KeyRing::new(first.clone());
        let cases: &[(i64, bool)] = &[(0, false), (29 * DAY, false), (30 * DAY, true)];
        for (now, due) in cases {
            assert_eq!(
                ring.needs_rotation(*now, DEFAULT_ROTATION_AGE_SECONDS),
                *due,
                "{now}"
            );
        }

        let now = 30 * DAY;
        let retired = ring.rotate(second.clone(), now);
        assert_eq!(
            retired,
            [RetiredKey {
                kid: first.kid().to_owned(),
                retire_at: now + RETAIN_AFTER_ROTATION_SECONDS
            }]
        );
        let retired = &retired[0];
        assert_eq!(ring.current().kid(), second.kid());
        assert!(ring.get(first.kid()).is_some(), "old key still verifies");
        let kids = |ring: &KeyRing| -> Vec<String> {
            ring.jwks()["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kids(&ring), [second.kid(), first.kid()]);

        assert!(ring.prune(retired.retire_at - 1).is_empty());
        assert_eq!(ring.prune(retired.retire_at), [first.kid()]);
        assert_eq!(kids(&ring), [second.kid()]);
        assert!(ring.get(first.kid()).is_none());
    }

    #[test]
    fn ring_from_stored_keys() {
        let k0 = signing_key(0, 0);
        let k1 = signing_key(1, 10);
        let retired = |k: &SigningKey, at: i64| {
            let mut k = k.clone();
            k.retire_at = Some(at);
            k
        };
        // (stored keys, now, expected kids current first; None = no usable current key)
        type Case<'a> = (Vec<SigningKey>, i64, Option<Vec<&'a str>>);
        let cases: Vec<Case> = vec![
            (vec![], 0, None),
            (vec![k0.clone()], 5, Some(vec![k0.kid()])),
            (
                vec![k0.clone(), k1.clone()],
                20,
                Some(vec![k1.kid(), k0.kid()]),
            ),
            (
                vec![retired(&k0, 100), k1.clone()],
                20,
                Some(vec![k1.kid(), k0.kid()]),
            ),
            (
                vec![retired(&k0, 100), k1.clone()],
                100,
                Some(vec![k1.kid()]),
            ),
            (vec![retired(&k0, 100)], 20, None),
        ];
        for (i, (keys, now, expected)) in cases.into_iter().enumerate() {
            let ring = KeyRing::from_keys(keys, now);
            let got = ring.map(|r| {
                r.keys()
                    .iter()
                    .map(|k| k.kid().to_owned())
                    .collect::<Vec<_>>()
            });
            let expected = expected.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(got, expected, "case {i}");
        }
    }
}
