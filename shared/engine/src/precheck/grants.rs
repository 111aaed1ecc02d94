//! The current user's privileges, parsed from `SHOW GRANTS`.
//!
//! `SHOW GRANTS` (without `FOR`) is the one statement every user may run, and on MariaDB it also
//! lists the grants of the session's active role; `information_schema.*_PRIVILEGES` miss routine
//! grants and, for a user who can read `mysql.*`, list everybody's. Only the part before ` TO ` is
//! read: what follows may carry a password hash, which is never kept.

use std::collections::BTreeSet;

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantScope {
    /// `*.*`
    Global,
    /// `` `db`.* ``: a LIKE pattern (`_` and `%` are wildcards unless escaped with `\`).
    Database(String),
    /// `` `db`.`table` ``
    Table { database: String, table: String },
    /// `` PROCEDURE `db`.`name` `` or `` FUNCTION `db`.`name` ``
    Routine { database: String, name: String },
}

/// One `GRANT ... ON ...` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Upper-case privilege names; `ALL PRIVILEGES` is kept as `ALL`. Column-level privileges
    /// (`SELECT (a, b)`) are in [`Grant::column_privileges`] instead.
    pub privileges: BTreeSet<String>,
    /// `(privilege, columns)` of column-level grants.
    pub column_privileges: Vec<(String, Vec<String>)>,
    pub scope: GrantScope,
}

/// Everything `SHOW GRANTS` said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub grants: Vec<Grant>,
    /// Roles granted to the user (`GRANT role TO user`).
    pub roles: Vec<String>,
}

impl Grants {
    /// Parses the lines of `SHOW GRANTS`; lines it cannot read are skipped (a privilege it
    /// misses can only make a check stricter, never let a missing one pass).
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Grants {
        let mut grants = Grants::default();
        for line in lines {
            match parse_line(line) {
                Some(Parsed::Grant(g)) => grants.grants.push(g),
                Some(Parsed::Roles(r)) => grants.roles.extend(r),
                None => {}
            }
        }
        grants
    }

    /// Whether `privilege` is held on every object (`*.*`).
    pub fn global(&self, privilege: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.scope == GrantScope::Global && holds(g, privilege))
    }

    /// Whether `privilege` is held on database `db` as a whole (globally or by a database grant
    /// whose pattern matches). `fold_case`: the server compares database names case-insensitively.
    pub fn on_database(&self, privilege: &str, db: &str, fold_case: bool) -> bool {
        self.grants.iter().any(|g| {
            holds(g, privilege)
                && match &g.scope {
                    GrantScope::Global => true,
                    GrantScope::Database(pattern) => like(pattern, db, fold_case),
                    _ => false,
                }
        })
    }

    /// Whether `privilege` is held on table `db.table` (globally, on its database, or on it).
    pub fn on_table(&self, privilege: &str, db: &str, table: &str, fold_case: bool) -> bool {
        self.on_database(privilege, db, fold_case)
            || self.grants.iter().any(|g| {
                holds(g, privilege)
                    && matches!(&g.scope, GrantScope::Table { database, table: t }
                        if names_eq(database, db, fold_case) && names_eq(t, table, fold_case))
            })
    }

    /// Whether `privilege` is held on each of `columns` of `db.table` (or on the whole table).
    pub fn on_columns(
        &self,
        privilege: &str,
        db: &str,
        table: &str,
        columns: &[&str],
        fold_case: bool,
    ) -> bool {
        if self.on_table(privilege, db, table, fold_case) {
            return true;
        }
        let granted: Vec<&str> = self
            .grants
            .iter()
            .filter(|g| {
                matches!(&g.scope, GrantScope::Table { database, table: t }
                    if names_eq(database, db, fold_case) && names_eq(t, table, fold_case))
            })
            .flat_map(|g| g.column_privileges.iter())
            .filter(|(p, _)| p == privilege)
            .flat_map(|(_, cols)| cols.iter().map(String::as_str))
            .collect();
        !columns.is_empty()
            && columns
                .iter()
                .all(|c| granted.iter().any(|g| g.eq_ignore_ascii_case(c)))
    }

    /// Whether `privilege` is held on a routine by a routine-level grant.
    pub fn on_routine(&self, privilege: &str, db: &str, name: &str, fold_case: bool) -> bool {
        self.grants.iter().any(|g| {
            holds(g, privilege)
                && matches!(&g.scope, GrantScope::Routine { database, name: n }
                    if names_eq(database, db, fold_case) && n.eq_ignore_ascii_case(name))
        })
    }
}

fn holds(grant: &Grant, privilege: &str) -> bool {
    grant.privileges.contains(privilege)
        || (grant.privileges.contains("ALL") && privilege != "GRANT OPTION")
}

fn names_eq(a: &str, b: &str, fold_case: bool) -> bool {
    if fold_case {
        a.to_lowercase() == b.to_lowercase()
    } else {
        a == b
    }
}

/// SQL LIKE with `\` escapes, as grant database patterns use it.
fn like(pattern: &str, text: &str, fold_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if fold_case {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    like_from(&p, &t)
}

fn like_from(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('%') => (0..=t.len()).any(|i| like_from(&p[1..], &t[i..])),
        Some('_') => !t.is_empty() && like_from(&p[1..], &t[1..]),
        Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && like_from(&p[2..], &t[1..]),
        Some(c) => t.first() == Some(c) && like_from(&p[1..], &t[1..]),
    }
}

enum Parsed {
    Grant(Grant),
    Roles(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A bare word or a backtick-quoted identifier, with its quoting.
    Word(String, bool),
    Str,
    Sym(char),
}

fn tokenize(line: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '`' => {
                let mut name = String::new();
                while let Some(c) = chars.next() {
                    if c == '`' {
                        if chars.peek() == Some(&'`') {
                            chars.next();
                            name.push('`');
                        } else {
                            break;
                        }
                    } else {
                        name.push(c);
                    }
                }
                out.push(Token::Word(name, true));
            }
            '\'' | '"' => {
                // Skipped, not kept: a quoted string may be a password hash.
                let quote = c;
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == quote {
                        if chars.peek() == Some(&quote) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push(Token::Str);
            }
            ',' | '(' | ')' | '.' | '*' | '@' => out.push(Token::Sym(c)),
            _ => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, ',' | '(' | ')' | '.' | '*' | '@' | '`') {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                out.push(Token::Word(word, false));
            }
        }
    }
    out
}

fn keyword(t: Option<&Token>, kw: &str) -> bool {
    matches!(t, Some(Token::Word(w, false)) if w.eq_ignore_ascii_case(kw))
}

fn parse_line(line: &str) -> Option<Parsed> {
    let tokens = tokenize(line);
    let mut it = tokens.iter().peekable();
    if !keyword(it.next(), "GRANT") {
        return None;
    }
    let mut privileges = BTreeSet::new();
    let mut column_privileges = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut roles = Vec::new();
    let finish = |current: &mut Vec<String>, privileges: &mut BTreeSet<String>| {
        if !current.is_empty() {
            let name = current.join(" ").to_ascii_uppercase();
            privileges.insert(if name == "ALL PRIVILEGES" {
                "ALL".to_owned()
            } else {
                name
            });
            current.clear();
        }
    };
    loop {
        let token = it.next()?;
        match token {
            Token::Word(w, false) if w.eq_ignore_ascii_case("ON") => {
                finish(&mut current, &mut privileges);
                break;
            }
            Token::Word(w, false) if w.eq_ignore_ascii_case("TO") => {
                if !current.is_empty() {
                    roles.push(current.join(" "));
                }
                return Some(Parsed::Roles(roles));
            }
            Token::Word(w, true) => roles.push(w.clone()),
            Token::Word(w, false) => current.push(w.clone()),
            Token::Sym(',') => {
                if !current.is_empty() {
                    roles.push(current.join(" "));
                }
                finish(&mut current, &mut privileges);
            }
            Token::Sym('(') => {
                let name = current.join(" ").to_ascii_uppercase();
                current.clear();
                let mut cols = Vec::new();
                for t in it.by_ref() {
                    match t {
                        Token::Sym(')') => break,
                        Token::Word(c, _) => cols.push(c.clone()),
                        _ => {}
                    }
                }
                column_privileges.push((name, cols));
            }
            _ => return None,
        }
    }
    let routine = if keyword(it.peek().copied(), "PROCEDURE")
        || keyword(it.peek().copied(), "FUNCTION")
        || keyword(it.peek().copied(), "PACKAGE")
    {
        it.next();
        true
    } else {
        if keyword(it.peek().copied(), "TABLE") {
            it.next();
        }
        false
    };
    let first = it.next()?;
    let db = match first {
        Token::Sym('*') => None,
        Token::Word(w, _) => Some(w.clone()),
        _ => return None,
    };
    let second = if it.peek() == Some(&&Token::Sym('.')) {
        it.next();
        match it.next()? {
            Token::Sym('*') => None,
            Token::Word(w, _) => Some(w.clone()),
            _ => return None,
        }
    } else {
        None
    };
    let scope = match (db, second, routine) {
        (None, None, false) => GrantScope::Global,
        (Some(db), None, false) => GrantScope::Database(db),
        (Some(database), Some(table), false) => GrantScope::Table { database, table },
        (Some(database), Some(name), true) => GrantScope::Routine { database, name },
        _ => return None,
    };
    Some(Parsed::Grant(Grant {
        privileges,
        column_privileges,
        scope,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(lines: &[&str]) -> Grants {
        Grants::parse(lines.iter().copied())
    }

    #[test]
    fn reads_mariadb_grant_lines() {
        let g = grants(&[
            "GRANT USAGE ON *.* TO `visu`@`127.0.0.1` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'",
            "GRANT SELECT, SHOW VIEW ON `shop`.* TO `visu`@`127.0.0.1`",
            "GRANT INSERT, UPDATE ON `other`.`t``q` TO `visu`@`127.0.0.1`",
            "GRANT SELECT (`id`, `note`) ON `x`.`orders` TO `visu`@`127.0.0.1`",
            "GRANT EXECUTE ON PROCEDURE `shop`.`p` TO `visu`@`127.0.0.1`",
            "GRANT `reader` TO `visu`@`127.0.0.1`",
        ]);
        assert!(!g.global("SELECT"));
        assert!(g.on_database("SHOW VIEW", "shop", false));
        assert!(g.on_table("SELECT", "shop", "orders", false));
        assert!(!g.on_table("SELECT", "Shop", "orders", false));
        assert!(g.on_table("SELECT", "Shop", "orders", true));
        assert!(g.on_table("UPDATE", "other", "t`q", false));
        assert!(!g.on_database("UPDATE", "other", false));
        assert!(g.on_columns("SELECT", "x", "orders", &["id", "note"], false));
        assert!(!g.on_columns("SELECT", "x", "orders", &["id", "secret"], false));
        assert!(g.on_routine("EXECUTE", "shop", "p", false));
        assert_eq!(g.roles, ["reader"]);
        // Nothing of the password hash is kept.
        assert!(!format!("{g:?}").contains("D821809F"));
    }

    #[test]
    fn all_privileges_and_wildcard_databases() {
        let g =
            grants(&["GRANT ALL PRIVILEGES ON *.* TO `tidemark`@`127.0.0.1` WITH GRANT OPTION"]);
        assert!(g.global("SUPER"));
        assert!(g.on_table("DROP", "any", "thing", false));
        let g = grants(&["GRANT CREATE, DROP ON `shop\\_%`.* TO 'u'@'%'"]);
        assert!(g.on_database("CREATE", "shop_20260101_02_30_00", false));
        assert!(!g.on_database("CREATE", "shopx", false));
        assert!(!g.on_database("CREATE", "shop", false));
        let g = grants(&["GRANT CREATE ON `shop_`.* TO 'u'@'%'"]);
        assert!(g.on_database("CREATE", "shopx", false), "`_` is a wildcard");
    }

    #[test]
    fn mysql8_lines_with_dynamic_privileges() {
        let g = grants(&[
            "GRANT SELECT, RELOAD ON *.* TO `dts`@`%`",
            "GRANT SHOW_ROUTINE,BACKUP_ADMIN ON *.* TO `dts`@`%`",
        ]);
        assert!(g.global("SHOW_ROUTINE"));
        assert!(g.global("SELECT"));
        assert!(!g.global("SUPER"));
    }
}
