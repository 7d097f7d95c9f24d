//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits) and recovery codes.
//!
//! Replay protection is the caller's half of the job: [`verify_totp`] returns the time step that
//! matched, the caller stores it, and passes it back as `last_used_step` next time so the same
//! code (or an older one) is refused.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::AuthError;

/// Length of a time step in seconds.
pub const TOTP_STEP_SECONDS: i64 = 30;
/// Digits in a code.
pub const TOTP_DIGITS: u32 = 6;
/// Steps accepted on either side of the current one, for clock drift and typing time.
pub const TOTP_WINDOW_STEPS: i64 = 1;
/// Secret length in bytes (160 bits, the HMAC-SHA1 block recommendation of RFC 4226).
pub const TOTP_SECRET_BYTES: usize = 20;
/// How many recovery codes a user gets at once.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Characters of a recovery code (base32, 5 bits each: 80 bits, beyond offline guessing even
/// though only an unsalted SHA-256 is stored).
const RECOVERY_CODE_CHARS: usize = 16;

/// A shared TOTP secret. Storage must keep it encrypted (see `keys::KeyEncryptionKey::seal`).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A new random secret of [`TOTP_SECRET_BYTES`] bytes.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; TOTP_SECRET_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        TotpSecret(bytes)
    }

    /// Wraps raw secret bytes (at least 16, as RFC 4226 requires).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, AuthError> {
        if bytes.len() < 16 {
            return Err(AuthError::InvalidTotpSecret(format!(
                "{} bytes is shorter than the 16 required",
                bytes.len()
            )));
        }
        Ok(TotpSecret(bytes))
    }

    /// Parses the base32 form (case-insensitive, spaces and padding ignored).
    pub fn from_base32(text: &str) -> Result<Self, AuthError> {
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = BASE32_NOPAD
            .decode(cleaned.as_bytes())
            .map_err(|e| AuthError::InvalidTotpSecret(e.to_string()))?;
        TotpSecret::from_bytes(bytes)
    }

    /// The base32 form without padding, as authenticator apps expect it.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    /// The raw bytes (for sealing before storage).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

/// The HOTP value (RFC 4226 §5.3) of `key` at `counter`, zero-padded to `digits` digits.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    let value = u64::from(binary) % 10u64.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The time step that contains `now` (Unix seconds); `None` before 1970.
pub fn time_step(now: i64) -> Option<u64> {
    // Converted before dividing: -5 / 30 would round toward zero into step 0.
    Some(u64::try_from(now).ok()? / TOTP_STEP_SECONDS as u64)
}

/// The current code for `secret` at `now` (Unix seconds).
pub fn totp_code(secret: &TotpSecret, now: i64) -> Option<String> {
    Some(hotp(&secret.0, time_step(now)?, TOTP_DIGITS))
}

/// Checks a code typed by the user at `now` within ±[`TOTP_WINDOW_STEPS`] steps, and returns the
/// step that matched. Steps at or before `last_used_step` are refused, so a code works once.
pub fn verify_totp(
    secret: &TotpSecret,
    code: &str,
    now: i64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = time_step(now)?;
    let mut matched = None;
    // Every step in the window is computed and compared, so timing does not reveal which one
    // matched.
    for delta in -TOTP_WINDOW_STEPS..=TOTP_WINDOW_STEPS {
        let Some(step) = current.checked_add_signed(delta) else {
            continue;
        };
        let expected = hotp(&secret.0, step, TOTP_DIGITS);
        let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        let fresh = last_used_step.is_none_or(|last| step > last);
        if equal && fresh && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// The `otpauth://` URI that authenticator apps read from a QR code.
pub fn provisioning_uri(secret: &TotpSecret, issuer: &str, account: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let issuer_enc = utf8_percent_encode(issuer, NON_ALPHANUMERIC).to_string();
    let account_enc = utf8_percent_encode(account, NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECONDS}",
        secret.to_base32()
    )
}

/// A fresh set of recovery codes: show `codes` to the user once, store only `hashes`.
#[derive(Debug, Clone)]
pub struct RecoveryCodes {
    /// The codes as the user types them (`XXXX-XXXX-XXXX-XXXX`).
    pub codes: Vec<String>,
    /// Their hashes (lowercase hex SHA-256 of the normalised code), in the same order.
    pub hashes: Vec<String>,
}

/// Generates [`RECOVERY_CODE_COUNT`] random recovery codes and their hashes.
pub fn generate_recovery_codes() -> RecoveryCodes {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut codes = Vec::with_capacity(RECOVERY_CODE_COUNT);
    for _ in 0..RECOVERY_CODE_COUNT {
        let mut bytes = [0u8; RECOVERY_CODE_CHARS];
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        // 256 is a multiple of 32, so masking to 5 bits keeps every symbol equally likely.
        let raw: String = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 0x1f)]))
            .collect();
        let grouped = raw
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("ASCII"))
            .collect::<Vec<_>>()
            .join("-");
        codes.push(grouped);
    }
    let hashes = codes.iter().map(|c| hash_recovery_code(c)).collect();
    RecoveryCodes { codes, hashes }
}

/// The stored form of a recovery code: SHA-256 (hex) of the code without dashes or spaces, in
/// upper case, so that `abcd efgh…` and `ABCD-EFGH-…` are the same code.
pub fn hash_recovery_code(code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex(&Sha256::digest(normalised.as_bytes()))
}

/// Verifies a recovery code against the stored hashes and removes the one it matched, so each
/// code works once. Returns whether a code was consumed; the caller persists `hashes`.
pub fn consume_recovery_code(hashes: &mut Vec<String>, input: &str) -> bool {
    let candidate = hash_recovery_code(input);
    let mut found = None;
    for (i, stored) in hashes.iter().enumerate() {
        let equal: bool = stored.as_bytes().ct_eq(candidate.as_bytes()).into();
        if equal && found.is_none() {
            found = Some(i);
        }
    }
    match found {
        Some(i) => {
            hashes.remove(i);
            true
        }
        None => false,
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA1 seed of RFC 6238 Appendix B.
    const RFC_SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        // (time, 8-digit TOTP) from the SHA1 rows of the table in RFC 6238 Appendix B.
        let cases: &[(i64, &str)] = &[
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, expected) in cases {
            let step = time_step(*time).unwrap();
            assert_eq!(hotp(RFC_SEED, step, 8), *expected, "T = {time}");
            // The 6-digit code is the same value modulo 10^6.
            let secret = TotpSecret::from_bytes(RFC_SEED.to_vec()).unwrap();
            assert_eq!(
                totp_code(&secret, *time).unwrap(),
                expected[2..],
                "T = {time}"
            );
        }
    }

    #[test]
    fn rfc4226_appendix_d_hotp_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(
                hotp(RFC_SEED, counter as u64, 6),
                *code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn verify_window_and_replay() {
        let secret = TotpSecret::from_bytes(RFC_SEED.to_vec()).unwrap();
        let now = 1_111_111_111; // step 37037037
        let step = time_step(now).unwrap();
        let at = |s: u64| hotp(RFC_SEED, s, 6);
        let cases: &[(String, Option<u64>, Option<u64>)] = &[
            (at(step), None, Some(step)),
            (at(step - 1), None, Some(step - 1)),
            (at(step + 1), None, Some(step + 1)),
            (at(step - 2), None, None),
            (at(step + 2), None, None),
            // Replay: the step already used, or an older one, is refused.
            (at(step), Some(step), None),
            (at(step - 1), Some(step - 1), None),
            (at(step + 1), Some(step), Some(step + 1)),
            (at(step), Some(step - 1), Some(step)),
            // Formatting.
            (
                format!("{} {}", &at(step)[..3], &at(step)[3..]),
                None,
                Some(step),
            ),
            ("12345".into(), None, None),
            ("1234567".into(), None, None),
            ("abcdef".into(), None, None),
            (String::new(), None, None),
        ];
        for (code, last, expected) in cases {
            assert_eq!(
                verify_totp(&secret, code, now, *last),
                *expected,
                "{code} {last:?}"
            );
        }
        assert_eq!(verify_totp(&secret, &at(0), -5, None), None);
    }

    #[test]
    fn secrets_round_trip_through_base32() {
        let secret = TotpSecret::generate();
        assert_eq!(secret.as_bytes().len(), TOTP_SECRET_BYTES);
        let text = secret.to_base32();
        assert_eq!(text.len(), 32);
        assert!(!text.contains('='));
        assert_eq!(TotpSecret::from_base32(&text).unwrap(), secret);
        assert_eq!(
            TotpSecret::from_base32(&text.to_lowercase()).unwrap(),
            secret
        );
        assert_ne!(TotpSecret::generate(), secret);
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");

        let cases: &[(&str, bool)] = &[
            ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", true), // the RFC seed
            ("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", true),
            ("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====", true),
            ("GEZDGNBVGY3TQOJQ", false), // 10 bytes: too short
            ("GEZDGNBVGY3TQOJ1GEZDGNBVGY3TQOJQ", false), // '1' is not base32
            ("", false),
        ];
        for (text, ok) in cases {
            assert_eq!(TotpSecret::from_base32(text).is_ok(), *ok, "{text}");
        }
        assert_eq!(
            TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
                .unwrap()
                .as_bytes(),
            RFC_SEED
        );
    }

    #[test]
    fn provisioning_uri_is_what_authenticators_read() {
        let secret = TotpSecret::from_bytes(RFC_SEED.to_vec()).unwrap();
        assert_eq!(
            provisioning_uri(&secret, "CuraNet", "asha.rao@example.in"),
            "otpauth://totp/CuraNet:asha%2Erao%40example%2Ein?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=CuraNet&algorithm=SHA1&digits=6&period=30"
        );
        assert!(
            provisioning_uri(&secret, "Cura Net", "a b")
                .starts_with("otpauth://totp/Cura%20Net:a%20b?")
        );
    }

    #[test]
    fn recovery_codes_work_once() {
        let set = generate_recovery_codes();
        assert_eq!(set.codes.len(), RECOVERY_CODE_COUNT);
        assert_eq!(set.hashes.len(), RECOVERY_CODE_COUNT);
        for code in &set.codes {
            assert_eq!(code.len(), 19, "{code}");
            assert!(code.chars().all(|c| c == '-' || c.is_ascii_alphanumeric()));
            assert!(!set.hashes.contains(code), "only hashes are stored");
        }
        let mut unique = set.codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODE_COUNT);

        let mut stored = set.hashes.clone();
        let third = set.codes[2].clone();
        let sloppy = third.replace('-', " ").to_lowercase();
        let cases: &[(&str, bool, usize)] = &[
            ("WRONG-CODE-0000-0000", false, 10),
            (&sloppy, true, 9),
            (&third, false, 9), // already consumed
            (&set.codes[0], true, 8),
            ("", false, 8),
        ];
        for (input, consumed, left) in cases {
            assert_eq!(
                consume_recovery_code(&mut stored, input),
                *consumed,
                "{input}"
            );
            assert_eq!(stored.len(), *left, "{input}");
        }
    }

    #[test]
    fn hex_encodes_lowercase() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }
}
