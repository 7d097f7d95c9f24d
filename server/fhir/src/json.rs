//! Strict JSON parsing for request bodies: valid UTF-8, no duplicate keys, bounded nesting.
//!
//! Numbers keep their exact text and objects their key order (serde_json's `arbitrary_precision`
//! and `preserve_order`), so a resource round-trips as the client sent it.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// How deeply objects and arrays may nest in a request body.
pub const MAX_DEPTH: usize = 100;

/// Why a body is not acceptable JSON.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonError {
    #[error("the body is not valid UTF-8 (at byte {0})")]
    InvalidUtf8(usize),
    #[error("the body is not valid JSON: {0}")]
    Syntax(String),
    #[error("duplicate key \"{0}\" in a JSON object")]
    DuplicateKey(String),
    #[error("the JSON nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the body is empty")]
    Empty,
}

/// Parses a request body into a JSON value, refusing what serde_json would silently accept.
pub fn parse_json(bytes: &[u8]) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError::InvalidUtf8(e.valid_up_to()))?;
    if text.trim().is_empty() {
        return Err(JsonError::Empty);
    }
    let mut de = serde_json::Deserializer::from_str(text);
    Checked { depth: 0 }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(classify)?;
    serde_json::from_str(text).map_err(classify)
}

fn classify(e: serde_json::Error) -> JsonError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix(DUPLICATE) {
        let key = rest.split(SEP).next().unwrap_or(rest);
        JsonError::DuplicateKey(key.to_string())
    } else if msg.starts_with(TOO_DEEP) || msg.starts_with("recursion limit exceeded") {
        JsonError::TooDeep
    } else {
        JsonError::Syntax(msg)
    }
}

const DUPLICATE: &str = "\u{1}duplicate:";
const SEP: char = '\u{1}';
const TOO_DEEP: &str = "\u{1}too-deep";

/// A validating pass that walks the document without building it.
struct Checked {
    depth: usize,
}

impl<'de> de::DeserializeSeed<'de> for Checked {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Checked {
    fn deeper<E: de::Error>(&self) -> Result<Checked, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(TOO_DEEP));
        }
        Ok(Checked {
            depth: self.depth + 1,
        })
    }
}

impl<'de> Visitor<'de> for Checked {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while seq
            .next_element_seed(Checked { depth: inner.depth })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value_seed(Checked { depth: inner.depth })?;
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("{DUPLICATE}{key}{SEP}")));
            }
        }
        Ok(())
    }
}

/// Serialises a value compactly, or indented when `pretty` is set.
pub fn to_bytes(value: &Value, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(value)
    } else {
        serde_json::to_vec(value)
    }
    .expect("a serde_json::Value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_decimals_and_key_order() {
        let v = parse_json(br#"{"b":1.50,"a":{"z":0.10,"y":2}}"#).unwrap();
        assert_eq!(
            String::from_utf8(to_bytes(&v, false)).unwrap(),
            r#"{"b":1.50,"a":{"z":0.10,"y":2}}"#
        );
    }

    #[test]
    fn refuses_duplicates_anywhere() {
        assert_eq!(
            parse_json(br#"{"a":1,"b":{"c":1,"c":2}}"#),
            Err(JsonError::DuplicateKey("c".into()))
        );
        assert!(parse_json(br#"{"a":[{"x":1},{"x":1}]}"#).is_ok());
    }

    #[test]
    fn refuses_bad_bytes_and_syntax() {
        assert_eq!(
            parse_json(b"{\"a\":\"\xff\"}"),
            Err(JsonError::InvalidUtf8(6))
        );
        assert!(matches!(parse_json(b"{\"a\":"), Err(JsonError::Syntax(_))));
        assert!(matches!(parse_json(b"{} x"), Err(JsonError::Syntax(_))));
        assert_eq!(parse_json(b"  "), Err(JsonError::Empty));
    }

    #[test]
    fn bounds_depth() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse_json(deep.as_bytes()), Err(JsonError::TooDeep));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse_json(ok.as_bytes()).is_ok());
        let very_deep = "[".repeat(10_000);
        assert_eq!(parse_json(very_deep.as_bytes()), Err(JsonError::TooDeep));
    }
}
