//! A lossless SQL tokenizer for MySQL/MariaDB text: strings, quoted identifiers, comments,
//! versioned comments (`/*!50100 ... */`, `/*M!100301 ... */`), user and system variables.
//!
//! Every rewrite of source SQL (a `SHOW CREATE TABLE`, a view, a trigger or routine body) goes
//! through these tokens, never through text search: a name inside a string or a comment is not a
//! reference, and a backtick inside a quoted name is part of the name. Concatenating the `text` of
//! every token gives back the input exactly.

/// How the text was written: the `sql_mode` flags that change what a quote means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// `"x"` is an identifier (`ANSI_QUOTES`), not a string.
    pub ansi_quotes: bool,
    /// A backslash escapes the next character in a string (unless `NO_BACKSLASH_ESCAPES`).
    pub backslash_escapes: bool,
}

impl Dialect {
    /// What the server's own `SHOW CREATE` output uses when read with the default `sql_mode`.
    pub const SHOW_CREATE: Dialect = Dialect {
        ansi_quotes: false,
        backslash_escapes: true,
    };

    /// The dialect of text stored under `sql_mode` (a comma-separated list, as the server
    /// reports it).
    pub fn from_sql_mode(sql_mode: &str) -> Dialect {
        let has = |flag: &str| {
            sql_mode
                .split(',')
                .any(|m| m.trim().eq_ignore_ascii_case(flag))
        };
        Dialect {
            // ANSI is a combination mode that includes ANSI_QUOTES; ORACLE and the other
            // combinations are reported expanded by MariaDB, but accept them anyway.
            ansi_quotes: has("ANSI_QUOTES") || has("ANSI") || has("ORACLE") || has("DB2"),
            backslash_escapes: !has("NO_BACKSLASH_ESCAPES"),
        }
    }
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces, tabs, newlines.
    Space,
    /// `-- ...`, `# ...`, `/* ... */` (not executed).
    Comment,
    /// The opening of a versioned comment (`/*!50100`, `/*M!100301`): its content is SQL.
    VersionOpen,
    /// The `*/` closing a versioned comment.
    VersionClose,
    /// A bare word: a keyword or an unquoted identifier.
    Word,
    /// A quoted identifier (backticks, or double quotes under `ANSI_QUOTES`).
    QuotedIdent,
    /// A string literal.
    Str,
    /// A number literal.
    Number,
    /// `@name`, `@'name'`, `@@name`, `@@session.name`.
    Variable,
    /// Any other character (`(`, `,`, `.`, `=`, operators), one per token.
    Punct,
}

/// One token: its kind and the exact source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub text: String,
}

impl Token {
    /// Whether this is the bare word `word` (case-insensitive).
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(word)
    }

    /// Whether this is the punctuation `c`.
    pub fn is_punct(&self, c: char) -> bool {
        self.kind == TokenKind::Punct && self.text.len() == c.len_utf8() && self.text.starts_with(c)
    }

    /// Whitespace and comments: tokens the parser steps over.
    pub fn is_trivia(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::Space
                | TokenKind::Comment
                | TokenKind::VersionOpen
                | TokenKind::VersionClose
        )
    }

    /// The name an identifier token stands for: a quoted identifier unquoted, a word as written.
    pub fn ident_value(&self) -> Option<String> {
        match self.kind {
            TokenKind::Word => Some(self.text.clone()),
            TokenKind::QuotedIdent => {
                let mut chars = self.text.chars();
                let quote = chars.next()?;
                let inner = &self.text[quote.len_utf8()..self.text.len() - quote.len_utf8()];
                let doubled: String = [quote, quote].iter().collect();
                Some(inner.replace(&doubled, &quote.to_string()))
            }
            _ => None,
        }
    }

    /// The value of a string literal (quotes removed, escapes resolved as the dialect says).
    pub fn string_value(&self, dialect: Dialect) -> Option<String> {
        if self.kind != TokenKind::Str {
            return None;
        }
        let quote = self.text.chars().next()?;
        let inner = &self.text[1..self.text.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == quote && chars.peek() == Some(&quote) {
                chars.next();
                out.push(quote);
            } else if c == '\\' && dialect.backslash_escapes {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('0') => out.push('\0'),
                    Some('Z') => out.push('\u{1a}'),
                    Some('b') => out.push('\u{8}'),
                    // `\%` and `\_` keep their backslash (they are LIKE escapes).
                    Some(e @ ('%' | '_')) => {
                        out.push('\\');
                        out.push(e);
                    }
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        Some(out)
    }
}

/// Splits `sql` into tokens. Never fails: an unterminated string or comment runs to the end of
/// the text (the server will reject such text anyway, with its own message).
pub fn tokenize(sql: &str, dialect: Dialect) -> Vec<Token> {
    let mut lexer = Lexer {
        src: sql,
        pos: 0,
        dialect,
        tokens: Vec::new(),
        version_depth: 0,
    };
    lexer.run();
    lexer.tokens
}

/// The concatenated text of `tokens`.
pub fn render(tokens: &[Token]) -> String {
    tokens.iter().map(|t| t.text.as_str()).collect()
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    dialect: Dialect,
    tokens: Vec<Token>,
    version_depth: usize,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || (!c.is_ascii() && !c.is_whitespace())
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            text: self.src[start..self.pos].to_owned(),
        });
    }

    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }

    fn run(&mut self) {
        while let Some(c) = self.peek() {
            let start = self.pos;
            match c {
                c if c.is_whitespace() => {
                    while self.peek().is_some_and(char::is_whitespace) {
                        self.bump();
                    }
                    self.push(TokenKind::Space, start);
                }
                '#' => self.line_comment(start),
                '-' if self.peek_at(1) == Some('-')
                    && self
                        .peek_at(2)
                        .is_none_or(|c| c.is_whitespace() || c.is_control()) =>
                {
                    self.line_comment(start)
                }
                '/' if self.peek_at(1) == Some('*') => self.block_comment(start),
                '*' if self.peek_at(1) == Some('/') && self.version_depth > 0 => {
                    self.pos += 2;
                    self.version_depth -= 1;
                    self.push(TokenKind::VersionClose, start);
                }
                '`' => self.quoted(start, '`', TokenKind::QuotedIdent, false),
                '"' if self.dialect.ansi_quotes => {
                    self.quoted(start, '"', TokenKind::QuotedIdent, false)
                }
                '\'' | '"' => self.quoted(start, c, TokenKind::Str, self.dialect.backslash_escapes),
                '@' => self.variable(start),
                c if c.is_ascii_digit() => self.number_or_word(start),
                '.' if self.peek_at(1).is_some_and(|c| c.is_ascii_digit())
                    && !self.after_identifier() =>
                {
                    self.number_or_word(start)
                }
                c if is_ident_char(c) => {
                    while self.peek().is_some_and(is_ident_char) {
                        self.bump();
                    }
                    self.push(TokenKind::Word, start);
                }
                _ => {
                    self.bump();
                    self.push(TokenKind::Punct, start);
                }
            }
        }
    }

    /// Whether the previous token can be qualified by a following `.`, as in `t.1col`.
    fn after_identifier(&self) -> bool {
        self.tokens
            .last()
            .is_some_and(|t| matches!(t.kind, TokenKind::Word | TokenKind::QuotedIdent))
    }

    fn line_comment(&mut self, start: usize) {
        while self.peek().is_some_and(|c| c != '\n') {
            self.bump();
        }
        self.push(TokenKind::Comment, start);
    }

    fn block_comment(&mut self, start: usize) {
        let rest = self.rest();
        let versioned = rest.starts_with("/*!") || rest.starts_with("/*M!");
        if versioned {
            // The marker and its version digits open a region of ordinary SQL.
            self.pos += if rest.starts_with("/*M!") { 4 } else { 3 };
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
            self.version_depth += 1;
            self.push(TokenKind::VersionOpen, start);
            return;
        }
        match self.rest()[2..].find("*/") {
            Some(end) => self.pos += 2 + end + 2,
            None => self.pos = self.src.len(),
        }
        self.push(TokenKind::Comment, start);
    }

    fn quoted(&mut self, start: usize, quote: char, kind: TokenKind, backslash: bool) {
        self.bump();
        while let Some(c) = self.peek() {
            self.bump();
            if backslash && c == '\\' {
                self.bump();
            } else if c == quote {
                if self.peek() == Some(quote) {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        self.push(kind, start);
    }

    fn variable(&mut self, start: usize) {
        self.bump();
        if self.peek() == Some('@') {
            self.bump();
        }
        match self.peek() {
            Some(q @ ('`' | '\'' | '"')) => {
                let inner = self.pos;
                self.quoted(inner, q, TokenKind::Variable, false);
                self.tokens.pop();
            }
            _ => {
                while self.peek().is_some_and(|c| is_ident_char(c) || c == '.') {
                    self.bump();
                }
            }
        }
        self.push(TokenKind::Variable, start);
    }

    fn number_or_word(&mut self, start: usize) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        let exponent = matches!(self.peek(), Some('e' | 'E'))
            && (self.peek_at(1).is_some_and(|c| c.is_ascii_digit())
                || (matches!(self.peek_at(1), Some('+' | '-'))
                    && self.peek_at(2).is_some_and(|c| c.is_ascii_digit())));
        if exponent {
            self.bump();
            self.bump();
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        // `1abc` and `0x1F` are words to us (an identifier may start with a digit; a hex literal
        // is never a name we rewrite).
        if self.peek().is_some_and(is_ident_char) && !self.src[start..self.pos].contains('.') {
            while self.peek().is_some_and(is_ident_char) {
                self.bump();
            }
            self.push(TokenKind::Word, start);
        } else {
            self.push(TokenKind::Number, start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(TokenKind, String)> {
        tokenize(sql, Dialect::SHOW_CREATE)
            .into_iter()
            .filter(|t| t.kind != TokenKind::Space)
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn round_trips_exactly() {
        for sql in [
            "SELECT `a``b`, 'it''s', \"q\\\"x\", @v, @@session.sql_mode -- c\n# d\n/* e */ 1.5e3",
            "/*!50100 PARTITION BY RANGE (`a`) */ x",
            "unterminated 'string",
            "名前 = `名前`",
        ] {
            assert_eq!(render(&tokenize(sql, Dialect::SHOW_CREATE)), sql);
        }
    }

    #[test]
    fn names_in_strings_and_comments_are_not_identifiers() {
        let toks = kinds("'`t`' /* `t` */ -- `t`\n`t`");
        let idents: Vec<_> = toks
            .iter()
            .filter(|(k, _)| *k == TokenKind::QuotedIdent)
            .collect();
        assert_eq!(idents.len(), 1);
    }

    #[test]
    fn quoted_identifiers_unquote() {
        let t = &tokenize("`x``; DROP DATABASE y; --`", Dialect::SHOW_CREATE)[0];
        assert_eq!(t.kind, TokenKind::QuotedIdent);
        assert_eq!(t.ident_value().as_deref(), Some("x`; DROP DATABASE y; --"));
    }

    #[test]
    fn ansi_quotes_make_double_quotes_identifiers() {
        let ansi = Dialect::from_sql_mode("ANSI_QUOTES,STRICT_TRANS_TABLES");
        let t = &tokenize("\"a\"\"b\"", ansi)[0];
        assert_eq!(t.kind, TokenKind::QuotedIdent);
        assert_eq!(t.ident_value().as_deref(), Some("a\"b"));
        let t = &tokenize("\"a\"", Dialect::SHOW_CREATE)[0];
        assert_eq!(t.kind, TokenKind::Str);
    }

    #[test]
    fn backslashes_escape_only_when_the_mode_says_so() {
        let sql = r"'a\' b' c";
        let with = tokenize(sql, Dialect::SHOW_CREATE);
        assert_eq!(with[0].text, r"'a\' b'");
        let without = tokenize(sql, Dialect::from_sql_mode("NO_BACKSLASH_ESCAPES"));
        assert_eq!(without[0].text, r"'a\'");
        assert_eq!(
            with[0].string_value(Dialect::SHOW_CREATE).as_deref(),
            Some("a' b")
        );
    }

    #[test]
    fn versioned_comments_hold_sql() {
        let toks = kinds("/*!50100 `a` */ /*M!100301 b */ */");
        assert_eq!(toks[0].0, TokenKind::VersionOpen);
        assert_eq!(toks[1].0, TokenKind::QuotedIdent);
        assert_eq!(toks[2].0, TokenKind::VersionClose);
        assert_eq!(toks[3].0, TokenKind::VersionOpen);
        assert_eq!(toks[4], (TokenKind::Word, "b".into()));
        assert_eq!(toks[5].0, TokenKind::VersionClose);
        // Outside a versioned comment `*/` is two operators.
        assert_eq!(toks[6], (TokenKind::Punct, "*".into()));
    }

    #[test]
    fn variables_and_definers() {
        let toks = kinds("`root`@`localhost` @'x y' @@global.x");
        assert_eq!(toks[0].0, TokenKind::QuotedIdent);
        assert_eq!(toks[1], (TokenKind::Variable, "@`localhost`".into()));
        assert_eq!(toks[2], (TokenKind::Variable, "@'x y'".into()));
        assert_eq!(toks[3], (TokenKind::Variable, "@@global.x".into()));
    }

    #[test]
    fn numbers_words_and_qualified_names() {
        let toks = kinds("t.c 1.5 1abc -- x\n--y");
        assert_eq!(toks[0], (TokenKind::Word, "t".into()));
        assert_eq!(toks[1], (TokenKind::Punct, ".".into()));
        assert_eq!(toks[2], (TokenKind::Word, "c".into()));
        assert_eq!(toks[3], (TokenKind::Number, "1.5".into()));
        assert_eq!(toks[4], (TokenKind::Word, "1abc".into()));
        assert_eq!(toks[5].0, TokenKind::Comment);
        assert_eq!(toks[6], (TokenKind::Punct, "-".into()));
    }
}
