//! MySQL identifier rules for database, table and column names.
//!
//! Names are data: backticks, quotes, spaces, reserved words and non-ASCII text are allowed and
//! are quoted wherever SQL is built. Only what the server itself refuses is rejected here.

/// MySQL's limit for database, table and column names, in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 64;

/// What an identifier names; database names have extra rules (they are directory names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentKind {
    /// A database (schema) name.
    Database,
    /// A table name.
    Table,
    /// A column name.
    Column,
}

impl IdentKind {
    fn noun(self) -> &'static str {
        match self {
            IdentKind::Database => "database",
            IdentKind::Table => "table",
            IdentKind::Column => "column",
        }
    }
}

/// Checks `name` against the server's rules; the error says what to change (it does not
/// repeat the field path, the caller adds that).
pub fn check_identifier(kind: IdentKind, name: &str) -> Result<(), String> {
    let noun = kind.noun();
    if name.is_empty() {
        return Err(format!("the {noun} name must not be empty; give the name"));
    }
    let chars = name.chars().count();
    if chars > MAX_IDENTIFIER_CHARS {
        return Err(format!(
            "the {noun} name is {chars} characters long; MySQL allows at most \
             {MAX_IDENTIFIER_CHARS}, use a shorter name (or a shorter `rename`)"
        ));
    }
    if name.contains('\0') {
        return Err(format!(
            "the {noun} name contains a NUL character, which MySQL does not allow; remove it"
        ));
    }
    if name.ends_with(' ') {
        return Err(format!(
            "the {noun} name {name:?} ends with a space, which MySQL does not allow; \
             remove the trailing space"
        ));
    }
    if let Some(c) = name.chars().find(|c| u32::from(*c) > 0xFFFF) {
        return Err(format!(
            "the {noun} name contains {c:?} (U+{:X}), outside the Basic Multilingual Plane, \
             which MySQL identifiers cannot hold; remove that character",
            u32::from(c)
        ));
    }
    if kind == IdentKind::Database
        && let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\' | '.'))
    {
        return Err(format!(
            "the database name {name:?} contains {c:?}; database names must not contain \
             '/', '\\' or '.', choose a name without it (or `rename` it)"
        ));
    }
    Ok(())
}

/// The form two names are compared in: servers with `lower_case_table_names=1` and column
/// names treat letter case as the same name.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// Whether two identifiers name the same object (case-insensitively).
pub fn same_name(a: &str, b: &str) -> bool {
    a == b || fold(a) == fold(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_but_valid_names_pass() {
        for name in [
            "a`b",
            "it's",
            "say \"hi\"",
            "a b",
            "select",
            "名前",
            " lead",
        ] {
            assert_eq!(
                check_identifier(IdentKind::Database, name),
                Ok(()),
                "{name}"
            );
            assert_eq!(check_identifier(IdentKind::Column, name), Ok(()), "{name}");
        }
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let ok = "名".repeat(64);
        assert_eq!(check_identifier(IdentKind::Table, &ok), Ok(()));
        let long = "名".repeat(65);
        let err = check_identifier(IdentKind::Table, &long).unwrap_err();
        assert!(err.contains("65 characters"), "{err}");
    }

    #[test]
    fn server_refusals_are_rejected() {
        let cases = [
            (IdentKind::Table, "", "must not be empty"),
            (IdentKind::Table, "a\0b", "NUL"),
            (IdentKind::Column, "trail ", "ends with a space"),
            (IdentKind::Column, "emoji😀", "Basic Multilingual Plane"),
            (IdentKind::Database, "a.b", "must not contain"),
            (IdentKind::Database, "a/b", "must not contain"),
            (IdentKind::Database, "a\\b", "must not contain"),
        ];
        for (kind, name, want) in cases {
            let err = check_identifier(kind, name).unwrap_err();
            assert!(err.contains(want), "{name:?}: {err}");
        }
        // Dots are fine in table names: only database names are directories.
        assert_eq!(check_identifier(IdentKind::Table, "a.b"), Ok(()));
    }

    #[test]
    fn names_compare_case_insensitively() {
        assert!(same_name("Orders", "oRDERS"));
        assert!(same_name("ÄBC", "äbc"));
        assert!(!same_name("a", "b"));
    }
}
