//! Normalisation of string search values: case- and accent-insensitive, as the spec asks.

use unicode_normalization::UnicodeNormalization;

/// Whether `c` is a diacritical accent (not a vowel sign of an Indic script, which changes the word).
fn is_accent(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}')
}

/// Lower-cases `s` and removes accents (`Émile` → `emile`); whitespace runs become one space.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.nfd().filter(|c| !is_accent(*c)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_and_spaces() {
        assert_eq!(fold("Émile  ZOLA "), "emile zola");
        assert_eq!(fold("Ñandú"), "nandu");
        // Devanagari vowel signs are part of the word, not accents.
        assert_ne!(fold("रमेश"), fold("रमश"));
        assert_eq!(
            fold("रमेश"),
            "रमेश".nfc().collect::<String>().nfd().collect::<String>()
        );
        assert_eq!(fold(" Rao"), "rao");
    }
}
