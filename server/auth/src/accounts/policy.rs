//! The numbers of the account rules, and the pure functions behind sign-in throttling: how long
//! an account (or an identifier without an account) is locked after failures, and the back-off
//! between attempts before the lock. Times are Unix seconds.

/// Failed sign-ins in a row that lock an account; each further multiple locks it again.
pub const FAILURES_BEFORE_LOCK: i64 = 5;
/// The first lock; each later lock lasts twice as long as the one before.
pub const FIRST_LOCK_SECONDS: i64 = 15 * 60;
/// The longest lock.
pub const MAX_LOCK_SECONDS: i64 = 24 * 3600;
/// Failures of one account (or identifier) counted for throttling look back this far.
pub const FAILURE_WINDOW_SECONDS: i64 = 24 * 3600;
/// Failed sign-ins from one IP address within [`IP_WINDOW_SECONDS`] before it must wait.
pub const IP_FAILURE_LIMIT: u64 = 30;
/// The window of the per-IP limit (and how long the IP then waits).
pub const IP_WINDOW_SECONDS: i64 = 15 * 60;
/// Longest back-off between two attempts.
pub const MAX_BACKOFF_SECONDS: i64 = 60;

/// Messages sent on request (verification resends, reset links) per account and hour.
pub const MESSAGES_PER_HOUR: u64 = 5;

/// Lifetime of an email verification token.
pub const EMAIL_CODE_SECONDS: i64 = 30 * 60;
/// Lifetime of an SMS verification code.
pub const SMS_CODE_SECONDS: i64 = 15 * 60;
/// Lifetime of a password reset token.
pub const RESET_TOKEN_SECONDS: i64 = 30 * 60;
/// Lifetime of an access token for CuraNet's own apps.
pub const ACCESS_TOKEN_SECONDS: i64 = 15 * 60;
/// Longest life of a session (and of its refresh tokens).
pub const SESSION_SECONDS: i64 = 30 * 24 * 3600;
/// Lifetime of a TOTP enrollment that was not confirmed.
pub const ENROLLMENT_SECONDS: i64 = 15 * 60;

/// How long the `failures`-th consecutive failure locks the account: the 5th for 15 minutes,
/// the 10th for 30, the 15th for an hour, ... at most a day; other failures do not lock.
pub fn lock_seconds(failures: i64) -> Option<i64> {
    if failures < FAILURES_BEFORE_LOCK || failures % FAILURES_BEFORE_LOCK != 0 {
        return None;
    }
    let doublings = (failures / FAILURES_BEFORE_LOCK - 1).min(16) as u32;
    Some((FIRST_LOCK_SECONDS << doublings).min(MAX_LOCK_SECONDS))
}

/// How long to wait after the `failures`-th consecutive failure before the next attempt is
/// even checked: nothing after the first two of each round of five, then 1 s, 2 s, ... doubling
/// with each round, at most a minute.
pub fn backoff_seconds(failures: i64) -> i64 {
    if failures <= 0 {
        return 0;
    }
    let in_round = failures % FAILURES_BEFORE_LOCK;
    if in_round < 3 {
        return 0;
    }
    let round = (failures / FAILURES_BEFORE_LOCK).min(8) as u32;
    ((1i64 << (in_round - 3)) << round).min(MAX_BACKOFF_SECONDS)
}

/// Whether a code issued at `issued_at` that lives `lifetime` seconds still works at `now`.
pub fn code_is_fresh(issued_at: i64, lifetime: i64, now: i64) -> bool {
    now >= issued_at && now < issued_at + lifetime
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fifth_failure_locks_and_each_lock_doubles() {
        let locks: Vec<(i64, Option<i64>)> = (0..=21).map(|n| (n, lock_seconds(n))).collect();
        for (n, lock) in locks {
            let expected = match n {
                5 => Some(900),
                10 => Some(1800),
                15 => Some(3600),
                20 => Some(7200),
                _ => None,
            };
            assert_eq!(lock, expected, "failure {n}");
        }
        assert_eq!(lock_seconds(500), Some(MAX_LOCK_SECONDS));
    }

    #[test]
    fn back_off_grows_within_a_round_and_across_rounds() {
        let table = [
            (0, 0),
            (1, 0),
            (2, 0),
            (3, 1),
            (4, 2),
            (5, 0), // the lock takes over
            (6, 0),
            (7, 0),
            (8, 2),
            (9, 4),
            (13, 4),
            (14, 8),
        ];
        for (n, expected) in table {
            assert_eq!(backoff_seconds(n), expected, "failure {n}");
        }
        assert_eq!(backoff_seconds(1004), MAX_BACKOFF_SECONDS);
    }

    #[test]
    fn codes_expire() {
        assert!(code_is_fresh(100, 60, 100));
        assert!(code_is_fresh(100, 60, 159));
        assert!(!code_is_fresh(100, 60, 160));
        assert!(!code_is_fresh(100, 60, 99));
        // The lifetimes the brief asks for: SMS 15 minutes, email 30, reset 30, tokens ≤ 15.
        const { assert!(SMS_CODE_SECONDS >= 15 * 60 && EMAIL_CODE_SECONDS <= 30 * 60) };
        const { assert!(RESET_TOKEN_SECONDS == 30 * 60 && ACCESS_TOKEN_SECONDS <= 15 * 60) };
    }
}
