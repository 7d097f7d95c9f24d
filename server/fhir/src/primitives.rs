//! Checks of JSON values against the FHIR primitive types (JSON kind and lexical format).

use serde_json::Value;

use crate::datetime::{is_date, is_date_time, parse_instant, parse_time};

/// Why a primitive value is invalid, or `None` when it is valid.
pub(crate) fn check(type_code: &str, value: &Value) -> Option<String> {
    match type_code {
        "boolean" => (!value.is_boolean()).then(|| "expected a JSON boolean".into()),
        "integer" | "unsignedInt" | "positiveInt" => check_integer(type_code, value),
        "decimal" => (!value.is_number()).then(|| "expected a JSON number".into()),
        _ => match value.as_str() {
            None => Some("expected a JSON string".into()),
            Some("") => Some("empty strings are not allowed (omit the element instead)".into()),
            Some(s) => check_string(type_code, s),
        },
    }
}

fn check_integer(type_code: &str, value: &Value) -> Option<String> {
    let Some(n) = value.as_number() else {
        return Some("expected a JSON number".into());
    };
    let Some(i) = n.as_i64() else {
        return Some(format!("{n} is not an integer"));
    };
    let (min, max) = match type_code {
        "unsignedInt" => (0, i32::MAX as i64),
        "positiveInt" => (1, i32::MAX as i64),
        _ => (i32::MIN as i64, i32::MAX as i64),
    };
    // arbitrary_precision keeps "1.0" as a distinct lexical form; an integer must not have a fraction.
    if n.to_string().contains(['.', 'e', 'E']) {
        return Some(format!("{n} is not an integer"));
    }
    (i < min || i > max).then(|| format!("{i} is out of range for {type_code} ({min}..{max})"))
}

fn check_string(type_code: &str, s: &str) -> Option<String> {
    let ok = match type_code {
        "string" | "markdown" => s.len() <= 1024 * 1024,
        "code" => s.trim() == s && !s.contains("  ") && !s.contains(['\n', '\r', '\t']),
        "id" => crate::is_valid_id(s),
        "uri" | "url" | "canonical" => !s.chars().any(char::is_whitespace),
        "oid" => is_oid(s),
        "uuid" => is_uuid(s),
        "base64Binary" => is_base64(s),
        "date" => is_date(s),
        "dateTime" => is_date_time(s),
        "instant" => parse_instant(s).is_some(),
        "time" => parse_time(s).is_some_and(|(_, used)| used == s.len()),
        "xhtml" => {
            let t = s.trim();
            t.starts_with("<div") && t.ends_with("</div>")
        }
        _ => true,
    };
    (!ok).then(|| format!("'{}' is not a valid {type_code}", truncate(s)))
}

fn truncate(s: &str) -> String {
    if s.chars().count() > 60 {
        s.chars().take(60).collect::<String>() + "…"
    } else {
        s.to_string()
    }
}

fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    let mut arcs = rest.split('.');
    matches!(arcs.next(), Some("0" | "1" | "2")) && {
        let others: Vec<&str> = arcs.collect();
        !others.is_empty()
            && others.iter().all(|a| {
                !a.is_empty()
                    && a.bytes().all(|b| b.is_ascii_digit())
                    && (a.len() == 1 || !a.starts_with('0'))
            })
    }
}

fn is_uuid(s: &str) -> bool {
    s.strip_prefix("urn:uuid:").is_some_and(|u| {
        u.len() == 36
            && u.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            })
    })
}

fn is_base64(s: &str) -> bool {
    let mut n = 0;
    let mut padding = 0;
    for b in s.bytes() {
        match b {
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            b'=' => padding += 1,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if padding == 0 => {}
            _ => return false,
        }
        n += 1;
    }
    n % 4 == 0 && padding <= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(t: &str, v: Value) -> bool {
        check(t, &v).is_none()
    }

    #[test]
    fn kinds_and_formats() {
        assert!(ok("boolean", json!(true)));
        assert!(!ok("boolean", json!("true")));
        assert!(ok("integer", json!(-5)));
        assert!(!ok("integer", json!(3_000_000_000_i64)));
        assert!(!ok("integer", serde_json::from_str("1.0").unwrap()));
        assert!(!ok("positiveInt", json!(0)));
        assert!(ok("unsignedInt", json!(0)));
        assert!(ok("decimal", serde_json::from_str("1.50").unwrap()));
        assert!(!ok("decimal", json!("1.5")));
        assert!(!ok("string", json!("")));
        assert!(ok("code", json!("final")));
        assert!(!ok("code", json!(" final")));
        assert!(!ok("id", json!("a b")));
        assert!(ok("uri", json!("http://x.org/a")));
        assert!(!ok("uri", json!("http://x .org")));
        assert!(ok("oid", json!("urn:oid:2.16.840.1")));
        assert!(!ok("oid", json!("urn:oid:3.1")));
        assert!(ok(
            "uuid",
            json!("urn:uuid:c757873d-ec9a-4326-a141-556f43239520")
        ));
        assert!(!ok("uuid", json!("c757873d-ec9a-4326-a141-556f43239520")));
        assert!(ok("base64Binary", json!("aGVsbG8=")));
        assert!(!ok("base64Binary", json!("aGVsbG8")));
        assert!(ok("date", json!("2024-02")));
        assert!(!ok("date", json!("2024-02-30")));
        assert!(ok("dateTime", json!("2024-02-03T10:00:00Z")));
        assert!(!ok("instant", json!("2024-02-03")));
        assert!(ok("time", json!("10:00:00")));
        assert!(!ok("time", json!("10:00")));
        assert!(ok(
            "xhtml",
            json!("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>")
        ));
        assert!(!ok("xhtml", json!("plain text")));
    }
}
