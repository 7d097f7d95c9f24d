//! Equality, equivalence and ordering of values, with exact decimal arithmetic on number texts.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A decimal as `0.DIGITS × 10^exp`, without leading or trailing zeros (zero has no digits).
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exp: i64,
}

impl Decimal {
    /// Parses a JSON / FHIRPath number text (`-12.50`, `1e3`).
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let all: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        let leading = all.iter().take_while(|&&c| c == b'0').count();
        let mut digits = all[leading..].to_vec();
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                exp: 0,
            });
        }
        let exp = int.len() as i64 - leading as i64 + exp;
        Some(Decimal {
            negative,
            digits,
            exp,
        })
    }

    fn sign(&self) -> i8 {
        match (self.digits.is_empty(), self.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_sign = self.sign().cmp(&other.sign());
        if by_sign != Ordering::Equal || self.sign() == 0 {
            return by_sign;
        }
        let magnitude = self
            .exp
            .cmp(&other.exp)
            .then_with(|| self.digits.cmp(&other.digits));
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares two numbers by value (`1.0` = `1` = `1.00`), exactly.
pub(crate) fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if a.as_str() == b.as_str() {
        return Some(Ordering::Equal);
    }
    Some(Decimal::parse(a.as_str())?.cmp(&Decimal::parse(b.as_str())?))
}

/// FHIRPath `=` on two values: primitives by value, objects and arrays property by property.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

/// FHIRPath `~`: strings ignore case and collapse whitespace; objects compare recursively.
pub(crate) fn equivalent(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            let mut xs = x.split_whitespace();
            let mut ys = y.split_whitespace();
            loop {
                match (xs.next(), ys.next()) {
                    (None, None) => return true,
                    (Some(x), Some(y)) if x.to_lowercase() == y.to_lowercase() => {}
                    _ => return false,
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equivalent(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equivalent(v, w)))
        }
        _ => equal(a, b),
    }
}

/// The time-zone suffix of a date/time text (`Z`, `+05:30`), or `""`.
fn time_zone(text: &str) -> &str {
    text.find('T')
        .map(|t| &text[t + 1..])
        .and_then(|time| time.find(['Z', '+', '-']).map(|i| &time[i..]))
        .unwrap_or("")
}

/// Orders two values for `<`, `<=`, `>`, `>=`: numbers by value, strings by code point; date/time
/// texts (`temporal`) only when they have the same precision and time zone, otherwise `None`.
pub(crate) fn order(a: &Value, b: &Value, temporal: bool) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) if temporal => {
            (x.len() == y.len() && time_zone(x) == time_zone(y)).then(|| x.cmp(y))
        }
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(text: &str) -> Number {
        text.parse().unwrap()
    }

    #[test]
    fn decimal_ordering_is_exact() {
        let cases = [
            ("1", "1.0", Ordering::Equal),
            ("1.50", "1.5", Ordering::Equal),
            ("0", "-0.0", Ordering::Equal),
            ("1.5", "10", Ordering::Less),
            ("0.05", "0.5", Ordering::Less),
            ("-2", "-10", Ordering::Greater),
            ("-0.1", "0", Ordering::Less),
            ("1e3", "999.9", Ordering::Greater),
            ("1E-2", "0.01", Ordering::Equal),
            (
                "12345678901234567890.1",
                "12345678901234567890.10",
                Ordering::Equal,
            ),
            (
                "12345678901234567890.1",
                "12345678901234567890.2",
                Ordering::Less,
            ),
            ("176.35499866729558", "176.354998667295581", Ordering::Less),
        ];
        for (a, b, expected) in cases {
            assert_eq!(
                compare_numbers(&num(a), &num(b)),
                Some(expected),
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn equality_and_equivalence() {
        assert!(equal(
            &json!({"a": [1, "x"], "b": true}),
            &json!({"b": true, "a": [1.0, "x"]})
        ));
        assert!(!equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!equal(&json!("1"), &json!(1)));
        assert!(!equal(&json!("Abc"), &json!("abc")));
        assert!(equivalent(&json!("  Abc   def "), &json!("abc DEF")));
        assert!(!equivalent(&json!("abc"), &json!("abd")));
        assert!(equivalent(&json!({"t": "A"}), &json!({"t": "a"})));
    }

    #[test]
    fn ordering_of_strings_and_dates() {
        assert_eq!(order(&json!("a"), &json!("b"), false), Some(Ordering::Less));
        assert_eq!(
            order(&json!("2020-01-01"), &json!("2019-12-31"), true),
            Some(Ordering::Greater)
        );
        assert_eq!(order(&json!("2020-01"), &json!("2019-12-31"), true), None);
        assert_eq!(
            order(
                &json!("2020-01-01T10:00:00Z"),
                &json!("2020-01-01T10:00:00+05:30"),
                true
            ),
            None
        );
        assert_eq!(order(&json!("a"), &json!(1), false), None);
    }
}
