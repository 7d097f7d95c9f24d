//! Normalisation of string search values: case- and accent-insensitive, as the spec asks.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-cases `s` and removes accents (`Émile` → `emile`); whitespace runs become one space.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.nfd().filter(|c| !is_combining_mark(*c)) {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The smallest string greater than every string that starts with `prefix` (for range scans);
/// `None` when there is none.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = char::from_u32(last as u32 + 1) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_and_spaces() {
        assert_eq!(fold("Émile  ZOLA "), "emile zola");
        assert_eq!(fold("Ñandú"), "nandu");
        assert_eq!(fold("रमेश"), fold("रमेश"));
        assert_eq!(fold(" Rao"), "rao");
    }

    #[test]
    fn prefix_bounds() {
        assert_eq!(prefix_upper_bound("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_upper_bound("").as_deref(), None);
    }
}
