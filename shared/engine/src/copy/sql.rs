//! The only two ways text reaches SQL in the copy engine: identifiers through [`quote_ident`]
//! (the engine's one quoting function, re-exported), values through [`push_string_literal`]. Statements are built as bytes, because values are the
//! server's own bytes (a latin1 or binary column is not UTF-8) and must travel unchanged.

// Identifiers are quoted by the engine's one function (schema::quote), shared with the schema.
pub use crate::schema::quote::{quote_ident, quote_qualified as qualified};

/// Appends `_<charset>'...'` (or `'...'` with no charset) with every byte that the lexer treats
/// specially escaped by a backslash. The introducer makes the server take the bytes as they are,
/// in that character set, whatever the connection's character set is.
///
/// Safe because the sessions that run these statements use a `utf8mb4` client character set, in
/// which no multi-byte sequence contains a backslash or a quote, and because both sessions have
/// `NO_BACKSLASH_ESCAPES` removed from their `sql_mode` (see `session.rs`).
pub fn push_string_literal(out: &mut Vec<u8>, charset: Option<&str>, value: &[u8]) {
    if let Some(charset) = charset {
        out.push(b'_');
        // Character set names come from information_schema: [a-z0-9_] only. Anything else would
        // be a bug; fall back to binary rather than format it into SQL.
        if charset
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            out.extend_from_slice(charset.as_bytes());
        } else {
            out.extend_from_slice(b"binary");
        }
    }
    out.reserve(value.len() + 2);
    out.push(b'\'');
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            0 => out.extend_from_slice(b"\\0"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0x1a => out.extend_from_slice(b"\\Z"),
            _ => out.push(b),
        }
    }
    out.push(b'\'');
}

/// A SQL statement under construction, as bytes.
#[derive(Debug, Default, Clone)]
pub struct SqlBuf(pub Vec<u8>);

impl SqlBuf {
    pub fn new() -> SqlBuf {
        SqlBuf(Vec::new())
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.0.extend_from_slice(sql.as_bytes());
        self
    }

    pub fn ident(&mut self, name: &str) -> &mut Self {
        self.push(&quote_ident(name))
    }

    pub fn literal(&mut self, charset: Option<&str>, value: &[u8]) -> &mut Self {
        push_string_literal(&mut self.0, charset, value);
        self
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_their_backticks() {
        assert_eq!(quote_ident("plain"), "`plain`");
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_ident("``"), "``````");
        assert_eq!(qualified("d`b", "t"), "`d``b`.`t`");
    }

    #[test]
    fn literals_escape_every_special_byte() {
        let mut out = Vec::new();
        push_string_literal(&mut out, Some("latin1"), b"a'b\\c\0d\ne\rf\x1ag\xff");
        assert_eq!(out, b"_latin1'a\\'b\\\\c\\0d\\ne\\rf\\Zg\xff'".to_vec());
        let mut out = Vec::new();
        push_string_literal(&mut out, Some("bad'charset"), b"");
        assert_eq!(out, b"_binary''".to_vec());
        let mut out = Vec::new();
        push_string_literal(&mut out, None, b"x");
        assert_eq!(out, b"'x'".to_vec());
    }
}
