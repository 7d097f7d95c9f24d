//! Password hashing (argon2id with a server-wide pepper) and the password policy.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), so the parameters
//! travel with each hash: raising them later only needs [`needs_rehash`] at the next login.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

use crate::error::AuthError;

/// Argon2 memory cost in KiB: 19 MiB, the OWASP minimum for argon2id.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2 time cost (passes over memory), as OWASP pairs with 19 MiB.
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2 parallelism (lanes); 1 keeps one login from occupying several cores.
pub const ARGON2_PARALLELISM: u32 = 1;
/// Shortest accepted pepper, in bytes.
pub const MIN_PEPPER_LEN: usize = 16;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest accepted password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Local parts shorter than this are only compared whole: a containment check on `"al"` would
/// reject half the dictionary without adding any protection.
const MIN_LOCAL_PART_FOR_CONTAINMENT: usize = 3;

/// The server-wide secret mixed into every hash (argon2's "secret" input), so that a stolen
/// database alone is not enough to run a dictionary attack. It never leaves process memory.
#[derive(Clone)]
pub struct Pepper(Vec<u8>);

impl Pepper {
    /// Accepts a secret of at least [`MIN_PEPPER_LEN`] bytes; production refuses to start otherwise.
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, AuthError> {
        let secret = secret.into();
        if secret.len() < MIN_PEPPER_LEN {
            return Err(AuthError::PepperTooShort {
                len: secret.len(),
                min: MIN_PEPPER_LEN,
            });
        }
        Ok(Pepper(secret))
    }
}

impl fmt::Debug for Pepper {
    // Never print the secret, not even in a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(..)")
    }
}

/// The one rule of the password policy that a candidate password breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyViolation {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    TooShort,
    /// More than [`MAX_PASSWORD_CHARS`] characters.
    TooLong,
    /// Equal to, or containing, the account's email address or its local part.
    ContainsEmail,
    /// One of the most common passwords.
    Common,
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyViolation::TooShort => {
                write!(f, "use at least {MIN_PASSWORD_CHARS} characters")
            }
            PolicyViolation::TooLong => write!(f, "use at most {MAX_PASSWORD_CHARS} characters"),
            PolicyViolation::ContainsEmail => f.write_str("do not use your email address"),
            PolicyViolation::Common => f.write_str("this password is too common"),
        }
    }
}

/// Checks a new password against the policy for the account with this email.
pub fn check_password_policy(password: &str, email: &str) -> Result<(), PolicyViolation> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PolicyViolation::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PolicyViolation::TooLong);
    }
    let lower = password.to_lowercase();
    let email = email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if (!email.is_empty() && lower.contains(&email))
        || (!local.is_empty() && lower == local)
        || (local.chars().count() >= MIN_LOCAL_PART_FOR_CONTAINMENT && lower.contains(local))
    {
        return Err(PolicyViolation::ContainsEmail);
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(PolicyViolation::Common);
    }
    Ok(())
}

/// Hashes a password with argon2id, a fresh random salt and the pepper, as a PHC string.
pub fn hash_password(password: &str, pepper: &Pepper) -> Result<String, AuthError> {
    let hash = hasher(pepper)?
        .hash_password(password.as_bytes())
        .map_err(|e| AuthError::PasswordHashing(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC hash; the comparison is constant-time.
///
/// `Ok(false)` is a wrong password; `Err` means the stored hash itself is unusable.
pub fn verify_password(password: &str, stored: &str, pepper: &Pepper) -> Result<bool, AuthError> {
    let parsed =
        PasswordHash::new(stored).map_err(|e| AuthError::MalformedPasswordHash(e.to_string()))?;
    // The stored hash's own parameters are used (not the current constants), so old hashes
    // still verify after the parameters are raised.
    match hasher(pepper)?.verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(AuthError::MalformedPasswordHash(e.to_string())),
    }
}

/// Whether a stored hash was made with other parameters than the current ones (or is not an
/// argon2id hash at all), so it should be replaced after the next successful login.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm.as_str() != "argon2id"
        || parsed.version != Some(Version::V0x13.into())
        || params.m_cost() != ARGON2_MEMORY_KIB
        || params.t_cost() != ARGON2_ITERATIONS
        || params.p_cost() != ARGON2_PARALLELISM
}

/// Spends the time of one verification without an account to verify against, so that a login
/// for an unknown email takes as long as one with a wrong password (no account enumeration).
pub fn spend_verification_time(password: &str, pepper: &Pepper) {
    let _ = hash_password(password, pepper);
}

fn hasher(pepper: &Pepper) -> Result<Argon2<'_>, AuthError> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .map_err(|e| AuthError::PasswordHashing(e.to_string()))?;
    Argon2::new_with_secret(&pepper.0, Algorithm::Argon2id, Version::V0x13, params)
        .map_err(|e| AuthError::PasswordHashing(e.to_string()))
}

/// The most common passwords of public breach lists (lowercase). Most are shorter than the
/// minimum length and already refused by it; they stay listed so the policy holds if the
/// minimum is ever lowered.
const COMMON_PASSWORDS: &[&str] = &[
    "123456",
    "password",
    "12345678",
    "qwerty",
    "123456789",
    "12345",
    "1234",
    "111111",
    "1234567",
    "dragon",
    "123123",
    "baseball",
    "abc123",
    "football",
    "monkey",
    "letmein",
    "696969",
    "shadow",
    "master",
    "666666",
    "qwertyuiop",
    "123321",
    "mustang",
    "1234567890",
    "michael",
    "654321",
    "superman",
    "1qaz2wsx",
    "7777777",
    "121212",
    "000000",
    "qazwsx",
    "123qwe",
    "killer",
    "trustno1",
    "jordan",
    "jennifer",
    "zxcvbnm",
    "asdfgh",
    "hunter",
    "buster",
    "soccer",
    "harley",
    "batman",
    "andrew",
    "tigger",
    "sunshine",
    "iloveyou",
    "2000",
    "charlie",
    "robert",
    "thomas",
    "hockey",
    "ranger",
    "daniel",
    "starwars",
    "klaster",
    "112233",
    "george",
    "computer",
    "michelle",
    "jessica",
    "pepper",
    "1111",
    "zxcvbn",
    "555555",
    "11111111",
    "131313",
    "freedom",
    "777777",
    "pass",
    "maggie",
    "159753",
    "aaaaaa",
    "ginger",
    "princess",
    "joshua",
    "cheese",
    "amanda",
    "summer",
    "love",
    "ashley",
    "6969",
    "nicole",
    "chelsea",
    "biteme",
    "matthew",
    "access",
    "yankees",
    "987654321",
    "dallas",
    "austin",
    "thunder",
    "taylor",
    "matrix",
    "welcome",
    "admin",
    "password1",
    "password123",
    "qwerty123",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "qwertyuiop123",
    "0987654321",
    "1234567891",
    "123456789a",
    "iloveyou123",
    "password1234",
    "qwerty12345",
    "qwerty123456",
    "1111111111",
    "0000000000",
    "passw0rd123",
    "welcome123",
    "administrator",
    "india@123",
    "india12345",
];

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn pepper() -> Pepper {
        Pepper::new(*b"0123456789abcdef").unwrap()
    }

    #[test]
    fn pepper_needs_sixteen_bytes() {
        let cases: &[(&[u8], bool)] = &[
            (b"", false),
            (b"short", false),
            (b"0123456789abcde", false),
            (b"0123456789abcdef", true),
            (b"a much longer server-wide pepper value", true),
        ];
        for (secret, ok) in cases {
            let result = Pepper::new(secret.to_vec());
            assert_eq!(result.is_ok(), *ok, "{secret:?}");
        }
        assert_eq!(format!("{:?}", pepper()), "Pepper(..)");
    }

    #[test]
    fn policy_names_the_broken_rule() {
        let email = "asha.rao@example.in";
        let cases: &[(&str, &str, Result<(), PolicyViolation>)] = &[
            ("short", email, Err(PolicyViolation::TooShort)),
            ("nine char", email, Err(PolicyViolation::TooShort)),
            ("ten chars!", email, Ok(())),
            ("ḱ ü ñ ì ç ø đ é !", email, Ok(())), // characters, not bytes
            ("ḱüñìçøđé", email, Err(PolicyViolation::TooShort)),
            (&"x".repeat(128), email, Ok(())),
            (&"x".repeat(129), email, Err(PolicyViolation::TooLong)),
            (
                "asha.rao@example.in",
                email,
                Err(PolicyViolation::ContainsEmail),
            ),
            ("ASHA.RAO2024!", email, Err(PolicyViolation::ContainsEmail)),
            ("my asha.rao pw", email, Err(PolicyViolation::ContainsEmail)),
            ("al-is-my-password", "al@example.in", Ok(())),
            (
                "al@example.in",
                "al@example.in",
                Err(PolicyViolation::ContainsEmail),
            ),
            (
                "raj-is-great",
                "raj@example.in",
                Err(PolicyViolation::ContainsEmail),
            ),
            ("1234567890", email, Err(PolicyViolation::Common)),
            ("QwertyUiop", email, Err(PolicyViolation::Common)),
            ("Password123", email, Err(PolicyViolation::Common)),
            ("correct horse battery staple", email, Ok(())),
        ];
        for (password, email, expected) in cases {
            assert_eq!(
                check_password_policy(password, email),
                *expected,
                "{password}"
            );
        }
    }

    #[test]
    fn common_list_is_lowercase_and_about_a_hundred() {
        assert!(COMMON_PASSWORDS.len() >= 100);
        for p in COMMON_PASSWORDS {
            assert_eq!(*p, p.to_lowercase());
        }
    }

    #[test]
    fn hash_verify_and_rehash() {
        let started = Instant::now();
        let hash = hash_password("correct horse battery", &pepper()).unwrap();
        let hash_time = started.elapsed();
        // Visible with `cargo test -- --nocapture`: the debug-build cost of one hash.
        println!("argon2id hash took {hash_time:?} (debug build)");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!needs_rehash(&hash));

        let other = hash_password("correct horse battery", &pepper()).unwrap();
        assert_ne!(hash, other, "each hash has its own salt");

        let other_pepper = Pepper::new(*b"fedcba9876543210").unwrap();
        let cases: &[(&str, &Pepper, bool)] = &[
            ("correct horse battery", &pepper(), true),
            ("correct horse batterY", &pepper(), false),
            ("", &pepper(), false),
            ("correct horse battery", &other_pepper, false),
        ];
        for (password, pepper, expected) in cases {
            assert_eq!(
                verify_password(password, &hash, pepper).unwrap(),
                *expected,
                "{password}"
            );
        }
        assert!(matches!(
            verify_password("x", "not a hash", &pepper()),
            Err(AuthError::MalformedPasswordHash(_))
        ));
    }

    #[test]
    fn rehash_when_parameters_differ() {
        let weak = Argon2::new_with_secret(
            &pepper().0,
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .unwrap()
        .hash_password(b"correct horse battery")
        .unwrap()
        .to_string();
        // An old hash still verifies with its own parameters, and asks to be replaced.
        assert!(verify_password("correct horse battery", &weak, &pepper()).unwrap());
        let cases: &[(&str, bool)] = &[
            (&weak, true),
            (
                "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                true,
            ),
            (
                "$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                true,
            ),
            (
                "$argon2id$v=19$m=19456,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                true,
            ),
            (
                "$argon2id$v=19$m=19456,t=2,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                true,
            ),
            (
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                false,
            ),
            ("$2b$12$abcdefghijklmnopqrstuv", true),
            ("", true),
        ];
        for (stored, expected) in cases {
            assert_eq!(needs_rehash(stored), *expected, "{stored}");
        }
    }
}
