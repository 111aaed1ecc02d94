//! The one way identifiers and values enter generated SQL. A name from the source is data: it is
//! quoted here and nowhere else, so a name like ``x`; DROP DATABASE y; --`` names an object and
//! never runs.

/// A backtick-quoted identifier, backticks doubled. Valid in every `sql_mode` (`ANSI_QUOTES` only
/// adds double quotes as a second form).
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// `db`.`name`.
pub fn quote_qualified(db: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(db), quote_ident(name))
}

/// A single-quoted string literal that means the same with and without `NO_BACKSLASH_ESCAPES`:
/// quotes are doubled, and a backslash is written as `\\` only when the mode lets it escape (it
/// never appears otherwise: the literal is built with the right escaping for the session it runs
/// in). NUL and control characters pass through, as the server stores them.
pub fn quote_string(value: &str, backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if backslash_escapes => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_double_their_backticks() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(
            quote_ident("x`; DROP DATABASE y; --"),
            "`x``; DROP DATABASE y; --`"
        );
        assert_eq!(quote_ident("名前"), "`名前`");
        assert_eq!(quote_qualified("d", "t"), "`d`.`t`");
    }

    #[test]
    fn strings_double_quotes_and_escape_backslashes_when_the_mode_does() {
        assert_eq!(quote_string(r"it's a \ back", true), r"'it''s a \\ back'");
        assert_eq!(quote_string(r"it's a \ back", false), r"'it''s a \ back'");
    }
}
