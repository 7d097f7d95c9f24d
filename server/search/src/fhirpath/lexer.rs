//! Tokenizer for FHIRPath expressions.

use super::FhirPathError;

/// A token kind (keywords such as `and`, `is`, `true` are plain identifiers; the parser decides).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A plain identifier (`name`, `Patient`, `and`, `where`).
    Ident(String),
    /// A back-tick delimited identifier (`` `div` ``): never a keyword.
    Delimited(String),
    /// A string literal, escapes resolved.
    Str(String),
    /// A number literal, exact text (`12`, `0.50`).
    Number(String),
    /// A date/time literal without its `@` (`2020-01-01`, `T10:00`).
    DateTime(String),
    /// An environment variable without its `%` (`resource`, `vs-administrative-gender`).
    Var(String),
    /// `$this`, `$index` or `$total`, without the `$`.
    Special(String),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Pipe,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    Lt,
    Le,
    Gt,
    Ge,
    Plus,
    Minus,
    Star,
    Slash,
    Amp,
    Eof,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: usize,
}

/// Splits `text` into tokens, ending with [`Tok::Eof`]. Comments (`//`, `/* */`) are skipped.
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, FhirPathError> {
    let mut lexer = Lexer {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        lexer.skip_trivia()?;
        let pos = lexer.pos;
        let Some(&c) = lexer.bytes.get(pos) else {
            out.push(Token { tok: Tok::Eof, pos });
            return Ok(out);
        };
        let tok = match c {
            b'.' => lexer.single(Tok::Dot),
            b'[' => lexer.single(Tok::LBracket),
            b']' => lexer.single(Tok::RBracket),
            b'(' => lexer.single(Tok::LParen),
            b')' => lexer.single(Tok::RParen),
            b'{' => lexer.single(Tok::LBrace),
            b'}' => lexer.single(Tok::RBrace),
            b',' => lexer.single(Tok::Comma),
            b'|' => lexer.single(Tok::Pipe),
            b'=' => lexer.single(Tok::Eq),
            b'~' => lexer.single(Tok::Equiv),
            b'+' => lexer.single(Tok::Plus),
            b'-' => lexer.single(Tok::Minus),
            b'*' => lexer.single(Tok::Star),
            b'/' => lexer.single(Tok::Slash),
            b'&' => lexer.single(Tok::Amp),
            b'!' => match lexer.bytes.get(pos + 1) {
                Some(b'=') => lexer.double(Tok::Ne),
                Some(b'~') => lexer.double(Tok::NotEquiv),
                _ => return Err(syntax(pos, "expected '!=' or '!~'")),
            },
            b'<' => match lexer.bytes.get(pos + 1) {
                Some(b'=') => lexer.double(Tok::Le),
                _ => lexer.single(Tok::Lt),
            },
            b'>' => match lexer.bytes.get(pos + 1) {
                Some(b'=') => lexer.double(Tok::Ge),
                _ => lexer.single(Tok::Gt),
            },
            b'\'' => Tok::Str(lexer.quoted(b'\'')?),
            b'`' => Tok::Delimited(lexer.quoted(b'`')?),
            b'0'..=b'9' => Tok::Number(lexer.number()),
            b'@' => Tok::DateTime(lexer.date_time()?),
            b'%' => {
                lexer.pos += 1;
                match lexer.bytes.get(lexer.pos) {
                    Some(b'\'') => Tok::Var(lexer.quoted(b'\'')?),
                    Some(b'`') => Tok::Var(lexer.quoted(b'`')?),
                    Some(c) if is_ident_start(*c) => Tok::Var(lexer.identifier()),
                    _ => return Err(syntax(pos, "expected a variable name after '%'")),
                }
            }
            b'$' => {
                lexer.pos += 1;
                match lexer.bytes.get(lexer.pos) {
                    Some(c) if is_ident_start(*c) => Tok::Special(lexer.identifier()),
                    _ => return Err(syntax(pos, "expected 'this', 'index' or 'total' after '$'")),
                }
            }
            c if is_ident_start(c) => Tok::Ident(lexer.identifier()),
            _ => {
                let ch = text[pos..].chars().next().unwrap_or('?');
                return Err(syntax(pos, &format!("unexpected character '{ch}'")));
            }
        };
        out.push(Token { tok, pos });
    }
}

fn syntax(position: usize, message: &str) -> FhirPathError {
    FhirPathError::Syntax {
        position,
        message: message.to_string(),
    }
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

struct Lexer<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.pos += 1;
        tok
    }

    fn double(&mut self, tok: Tok) -> Tok {
        self.pos += 2;
        tok
    }

    fn skip_trivia(&mut self) -> Result<(), FhirPathError> {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(c), _) if c.is_ascii_whitespace() => self.pos += 1,
                (Some(b'/'), Some(b'/')) => {
                    while self.peek(0).is_some_and(|c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                (Some(b'/'), Some(b'*')) => {
                    let start = self.pos;
                    let Some(end) = self.text[self.pos + 2..].find("*/") else {
                        return Err(syntax(start, "unterminated comment"));
                    };
                    self.pos += 2 + end + 2;
                }
                _ => return Ok(()),
            }
        }
    }

    fn identifier(&mut self) -> String {
        let start = self.pos;
        while self.peek(0).is_some_and(is_ident_char) {
            self.pos += 1;
        }
        self.text[start..self.pos].to_string()
    }

    fn number(&mut self) -> String {
        let start = self.pos;
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.peek(0) == Some(b'.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        self.text[start..self.pos].to_string()
    }

    /// A `'...'` or `` `...` `` literal with FHIRPath escapes; the cursor is on the opening quote.
    fn quoted(&mut self, quote: u8) -> Result<String, FhirPathError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(syntax(start, "unterminated string"));
            };
            if c == quote {
                self.pos += 1;
                return Ok(out);
            }
            if c != b'\\' {
                let ch = self.text[self.pos..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                self.pos += ch.len_utf8();
                continue;
            }
            let escape_pos = self.pos;
            self.pos += 2;
            match self.bytes.get(escape_pos + 1) {
                Some(b'\'') => out.push('\''),
                Some(b'"') => out.push('"'),
                Some(b'`') => out.push('`'),
                Some(b'\\') => out.push('\\'),
                Some(b'/') => out.push('/'),
                Some(b'f') => out.push('\u{c}'),
                Some(b'n') => out.push('\n'),
                Some(b'r') => out.push('\r'),
                Some(b't') => out.push('\t'),
                Some(b'u') => {
                    let high = self.hex4(escape_pos)?;
                    let code = if (0xD800..0xDC00).contains(&high) {
                        if self.peek(0) != Some(b'\\') || self.peek(1) != Some(b'u') {
                            return Err(syntax(escape_pos, "unpaired surrogate in \\u escape"));
                        }
                        self.pos += 2;
                        let low = self.hex4(escape_pos)?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return Err(syntax(escape_pos, "unpaired surrogate in \\u escape"));
                        }
                        0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        high
                    };
                    let Some(ch) = char::from_u32(code) else {
                        return Err(syntax(escape_pos, "invalid \\u escape"));
                    };
                    out.push(ch);
                }
                _ => return Err(syntax(escape_pos, "invalid escape sequence")),
            }
        }
    }

    fn hex4(&mut self, escape_pos: usize) -> Result<u32, FhirPathError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| syntax(escape_pos, "expected four hex digits after \\u"))?;
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| syntax(escape_pos, "invalid \\u escape"))
    }

    /// `@YYYY[-MM[-DD]][T[hh[:mm[:ss[.fff]]]][tz]]` or `@Thh[:mm[:ss[.fff]]]`; cursor on `@`.
    fn date_time(&mut self) -> Result<String, FhirPathError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek(0) == Some(b'T') {
            self.pos += 1;
            if !self.time() {
                return Err(syntax(start, "invalid time literal"));
            }
        } else {
            if !self.digits(4) {
                return Err(syntax(start, "invalid date literal"));
            }
            if self.peek(0) == Some(b'-') && self.digits_at(1, 2) {
                self.pos += 3;
                if self.peek(0) == Some(b'-') && self.digits_at(1, 2) {
                    self.pos += 3;
                }
            }
            if self.peek(0) == Some(b'T') {
                self.pos += 1;
                if self.time() {
                    self.timezone();
                }
            }
        }
        Ok(self.text[start + 1..self.pos].to_string())
    }

    fn digits_at(&self, offset: usize, n: usize) -> bool {
        (0..n).all(|i| self.peek(offset + i).is_some_and(|c| c.is_ascii_digit()))
    }

    fn digits(&mut self, n: usize) -> bool {
        let ok = self.digits_at(0, n);
        if ok {
            self.pos += n;
        }
        ok
    }

    fn time(&mut self) -> bool {
        if !self.digits(2) {
            return false;
        }
        if self.peek(0) == Some(b':') && self.digits_at(1, 2) {
            self.pos += 3;
            if self.peek(0) == Some(b':') && self.digits_at(1, 2) {
                self.pos += 3;
                if self.peek(0) == Some(b'.') && self.digits_at(1, 1) {
                    self.pos += 1;
                    while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                        self.pos += 1;
                    }
                }
            }
        }
        true
    }

    fn timezone(&mut self) {
        match self.peek(0) {
            Some(b'Z') => self.pos += 1,
            Some(b'+' | b'-')
                if self.digits_at(1, 2) && self.peek(3) == Some(b':') && self.digits_at(4, 2) =>
            {
                self.pos += 6;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok> {
        tokenize(text).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens_of_a_search_expression() {
        assert_eq!(
            kinds("Observation.value.ofType(Quantity) | x.where(a!='b')"),
            vec![
                Tok::Ident("Observation".into()),
                Tok::Dot,
                Tok::Ident("value".into()),
                Tok::Dot,
                Tok::Ident("ofType".into()),
                Tok::LParen,
                Tok::Ident("Quantity".into()),
                Tok::RParen,
                Tok::Pipe,
                Tok::Ident("x".into()),
                Tok::Dot,
                Tok::Ident("where".into()),
                Tok::LParen,
                Tok::Ident("a".into()),
                Tok::Ne,
                Tok::Str("b".into()),
                Tok::RParen,
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn literals_variables_and_comments() {
        let cases: &[(&str, Tok)] = &[
            (r"'it\'s \u00e9\n'", Tok::Str("it's é\n".into())),
            (r"'\uD83D\uDE00'", Tok::Str("😀".into())),
            ("`div`", Tok::Delimited("div".into())),
            ("12.50", Tok::Number("12.50".into())),
            ("@2020-01-02", Tok::DateTime("2020-01-02".into())),
            (
                "@2020-01-02T10:00:00.5+05:30",
                Tok::DateTime("2020-01-02T10:00:00.5+05:30".into()),
            ),
            ("@T10:30", Tok::DateTime("T10:30".into())),
            ("%resource", Tok::Var("resource".into())),
            ("%`vs-x`", Tok::Var("vs-x".into())),
            ("$this", Tok::Special("this".into())),
            ("/* c */ <= // tail", Tok::Le),
        ];
        for (text, tok) in cases {
            assert_eq!(kinds(text), vec![tok.clone(), Tok::Eof], "{text}");
        }
        // `1.` followed by a name is a number then an invocation.
        assert_eq!(
            kinds("1.x"),
            vec![
                Tok::Number("1".into()),
                Tok::Dot,
                Tok::Ident("x".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn lexical_errors_have_positions() {
        for (text, position) in [("'abc", 0), ("a ! b", 2), (r"'\q'", 1), ("a # b", 2)] {
            match tokenize(text) {
                Err(FhirPathError::Syntax { position: p, .. }) => assert_eq!(p, position, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
