//! Quoting for the SQL the precheck reads with, and shows in remedies.
//!
//! Local to the precheck until the engine has one shared quoting module (schema and copy are being
//! built beside it); values are always bound as parameters, never quoted.

/// A MySQL identifier in backticks, backticks inside doubled.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `` `db`.`table` ``.
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(db), quote_ident(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backticks_are_doubled() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(qualified("s", "t`"), "`s`.`t```");
    }
}
