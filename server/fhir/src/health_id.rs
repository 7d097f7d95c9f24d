//! The CuraNet Health ID: `HID-YYYY-XXXXXXXX`, seven random symbols and a Luhn mod 32 check symbol.
//!
//! The format and algorithm are published in the NamingSystem in `fhir-profiles/curanet/`.

use std::fmt;

use rand::Rng;

pub use curanet_fhir_profiles::curanet::HEALTH_ID_SYSTEM;

/// Crockford's base-32 alphabet: no I, L, O or U, so no two symbols are easily confused.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A valid Health ID, in canonical upper-case form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HealthId(String);

/// Why a string is not a Health ID.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HealthIdError {
    #[error("a Health ID has the form HID-YYYY-XXXXXXXX")]
    Format,
    #[error("'{0}' is not a Health ID symbol (allowed: 0-9 and A-Z without I, L, O, U)")]
    Symbol(char),
    #[error("the check symbol does not match: the Health ID is mistyped")]
    Check,
}

fn index(symbol: u8) -> Option<u32> {
    ALPHABET
        .iter()
        .position(|&a| a == symbol.to_ascii_uppercase())
        .map(|i| i as u32)
}

/// Luhn mod 32 over `values`; with `has_check` the last value is the check symbol itself.
fn luhn_sum(values: impl DoubleEndedIterator<Item = u32>, has_check: bool) -> u32 {
    let mut double = !has_check;
    let mut sum = 0;
    for v in values.rev() {
        let a = if double { v * 2 } else { v };
        sum += a / 32 + a % 32;
        double = !double;
    }
    sum
}

impl HealthId {
    /// Generates a fresh Health ID for a person registered in `year`.
    pub fn generate(year: i32, rng: &mut impl Rng) -> Self {
        let year = year.clamp(0, 9999);
        let mut body = String::with_capacity(7);
        for _ in 0..7 {
            body.push(ALPHABET[rng.random_range(0..32)] as char);
        }
        let values = format!("{year:04}{body}");
        let sum = luhn_sum(values.bytes().map(|b| index(b).unwrap_or(0)), false);
        let check = ALPHABET[((32 - sum % 32) % 32) as usize] as char;
        HealthId(format!("HID-{year:04}-{body}{check}"))
    }

    /// Parses and checks a Health ID (case-insensitive; canonicalised to upper case).
    pub fn parse(text: &str) -> Result<Self, HealthIdError> {
        let bytes = text.as_bytes();
        if bytes.len() != 17
            || !text[..4].eq_ignore_ascii_case("HID-")
            || bytes[8] != b'-'
            || !bytes[4..8].iter().all(u8::is_ascii_digit)
        {
            return Err(HealthIdError::Format);
        }
        let mut values = Vec::with_capacity(12);
        for &b in bytes[4..8].iter().chain(&bytes[9..]) {
            values.push(index(b).ok_or(HealthIdError::Symbol(b as char))?);
        }
        if luhn_sum(values.into_iter(), true) % 32 != 0 {
            return Err(HealthIdError::Check);
        }
        Ok(HealthId(text.to_ascii_uppercase()))
    }

    /// The canonical text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The year of registration.
    pub fn year(&self) -> i32 {
        self.0[4..8].parse().unwrap_or_default()
    }
}

impl fmt::Display for HealthId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let id = HealthId::generate(2026, &mut rng);
            assert_eq!(HealthId::parse(id.as_str()), Ok(id.clone()));
            assert_eq!(id.year(), 2026);
            assert!(id.as_str().starts_with("HID-2026-"));
        }
    }

    #[test]
    fn detects_every_single_substitution() {
        let mut rng = rand::rng();
        for _ in 0..200 {
            let id = HealthId::generate(2025, &mut rng);
            let s = id.as_str().as_bytes().to_vec();
            for pos in (4..8).chain(9..17) {
                for &sym in ALPHABET {
                    if sym == s[pos] || (pos < 8 && !sym.is_ascii_digit()) {
                        continue;
                    }
                    let mut t = s.clone();
                    t[pos] = sym;
                    let t = String::from_utf8(t).unwrap();
                    assert!(HealthId::parse(&t).is_err(), "{t} should fail");
                }
            }
        }
    }

    #[test]
    fn detects_adjacent_swaps_except_0_and_z() {
        let mut rng = rand::rng();
        for _ in 0..500 {
            let s = HealthId::generate(2024, &mut rng)
                .as_str()
                .as_bytes()
                .to_vec();
            for pos in (9..16).chain(4..7) {
                if s[pos] == s[pos + 1]
                    || matches!((s[pos], s[pos + 1]), (b'0', b'Z') | (b'Z', b'0'))
                {
                    continue;
                }
                let mut t = s.clone();
                t.swap(pos, pos + 1);
                let t = String::from_utf8(t).unwrap();
                if t[4..8].bytes().all(|b| b.is_ascii_digit()) {
                    assert_eq!(HealthId::parse(&t), Err(HealthIdError::Check), "{t}");
                }
            }
        }
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(
            HealthId::parse("HID-2026-1234567"),
            Err(HealthIdError::Format)
        );
        assert_eq!(
            HealthId::parse("XID-2026-12345678"),
            Err(HealthIdError::Format)
        );
        assert_eq!(
            HealthId::parse("HID-20X6-12345678"),
            Err(HealthIdError::Format)
        );
        assert_eq!(
            HealthId::parse("HID-2026-1234567I"),
            Err(HealthIdError::Symbol('I'))
        );
        let id = HealthId::generate(2026, &mut rand::rng());
        assert_eq!(
            HealthId::parse(&id.as_str().to_lowercase()).unwrap(),
            id,
            "case-insensitive"
        );
    }
}
