//! Rewrites the references a view, trigger or routine body makes to renamed databases, tables and
//! columns, token by token, and reports the ones it cannot rewrite safely.
//!
//! What is rewritten: qualified names (`db.t`, `db.t.c`, `t.c`, `alias.c`), `NEW.c`/`OLD.c` in a
//! trigger, table names in table position (after FROM, JOIN, INTO, UPDATE, TABLE and in a FROM
//! list) and the column list of `INSERT INTO t (...)`. What is reported instead: a bare name equal
//! to a renamed column of a table the body uses, or to a renamed table outside table position — it
//! may be that column, or a variable, parameter or alias of the same name; only a person can tell.
//! MariaDB stores view definitions fully qualified, so views rewrite without such warnings.

use std::collections::HashMap;

use tidemark_core::ident::same_name;

use super::lexer::{Token, TokenKind};
use super::names::{NameMap, RelationNames};
use super::quote::{quote_ident, quote_qualified};

/// Where a body lives: its database (unqualified names resolve there) and, for a trigger, its
/// table (what `NEW` and `OLD` are). Source names.
#[derive(Debug, Clone, Copy)]
pub struct BodyScope<'a> {
    pub names: &'a NameMap,
    pub database: &'a str,
    pub trigger_table: Option<&'a str>,
}

/// The rewritten body and what was learned on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewritten {
    pub sql: String,
    /// Source (database, relation) of every selected relation it names.
    pub relations: Vec<(String, String)>,
    /// References that may point at a renamed object and were left as written.
    pub unsafe_references: Vec<String>,
    /// References to columns that are not selected (the object cannot work on the destination).
    pub missing_columns: Vec<String>,
    /// Tables in a selected database that the body names in table position but that are not
    /// selected, as (database, table, written qualified).
    pub unselected_relations: Vec<(String, String, bool)>,
}

/// Words that start a clause naming tables.
const TABLE_CLAUSE: &[&str] = &["FROM", "JOIN", "STRAIGHT_JOIN", "INTO", "UPDATE", "TABLE"];

/// Words that end such a clause.
const CLAUSE_END: &[&str] = &[
    "WHERE",
    "ON",
    "USING",
    "SET",
    "GROUP",
    "ORDER",
    "HAVING",
    "LIMIT",
    "VALUES",
    "VALUE",
    "SELECT",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "WINDOW",
    "RETURN",
    "RETURNING",
    "FOR",
    "LOCK",
    "WHEN",
    "THEN",
    "ELSE",
    "DO",
    "END",
    "BEGIN",
    "IF",
    "WHILE",
    "REPEAT",
    "CALL",
    "DECLARE",
    "INNER",
    "LEFT",
    "RIGHT",
    "CROSS",
    "NATURAL",
    "FULL",
    "OUTER",
    "PARTITION",
    "USE",
    "IGNORE",
    "FORCE",
    "AS",
    "INTO",
];

/// Reserved words that are never bare references (a table or column with such a name must be
/// quoted, and then it is a quoted identifier).
const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "INSERT",
    "UPDATE",
    "DELETE",
    "INTO",
    "VALUES",
    "SET",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "AS",
    "ON",
    "JOIN",
    "BEGIN",
    "END",
    "IF",
    "THEN",
    "ELSE",
    "CASE",
    "WHEN",
    "RETURN",
    "DECLARE",
    "CALL",
    "ORDER",
    "GROUP",
    "BY",
    "HAVING",
    "LIMIT",
    "TABLE",
    "CREATE",
    "DROP",
    "ALTER",
    "INDEX",
    "KEY",
    "PRIMARY",
    "FOREIGN",
    "REFERENCES",
    "DEFAULT",
    "LIKE",
    "BETWEEN",
    "EXISTS",
    "DISTINCT",
    "ALL",
    "UNION",
    "LEFT",
    "RIGHT",
    "INNER",
    "OUTER",
    "CROSS",
    "USING",
    "WHILE",
    "REPEAT",
    "UNTIL",
    "LOOP",
    "LEAVE",
    "ITERATE",
    "FOR",
    "EACH",
    "ROW",
    "NEW",
    "OLD",
    "TRUE",
    "FALSE",
    "DIV",
    "MOD",
    "XOR",
    "REPLACE",
    "IGNORE",
    "INTERVAL",
    "SIGNAL",
    "READS",
    "MODIFIES",
    "SQL",
    "WITH",
    "OVER",
    "PARTITION",
    "ELSEIF",
    "DO",
    "OPEN",
    "CLOSE",
    "FETCH",
    "CURSOR",
    "CONTINUE",
    "EXIT",
    "HANDLER",
    "CONDITION",
    "SQLSTATE",
    "DATABASE",
    "SCHEMA",
    "CHECK",
    "CONSTRAINT",
    "UNIQUE",
    "COLLATE",
    "CONVERT",
    "CAST",
    "CHARACTER",
];

#[derive(Debug, Clone)]
struct Chain {
    /// Token indexes of the parts, in order.
    parts: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An expression: a column, or `db.routine`.
    Expression,
    /// A table reference.
    Table,
    /// A column of the table `table_ref` (an INSERT column list); index into `tables`.
    InsertColumn(usize),
    /// An alias being defined; never a reference.
    Alias,
}

/// Rewrites `tokens` (a whole body) for the destination.
pub fn rewrite_references(tokens: &[Token], scope: BodyScope<'_>) -> Rewritten {
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&i| !tokens[i].is_trivia())
        .collect();
    let is_ident = |i: usize| matches!(tokens[i].kind, TokenKind::Word | TokenKind::QuotedIdent);
    let value = |i: usize| tokens[i].ident_value().unwrap_or_default();

    // Chains of identifiers joined by adjacent dots.
    let mut chains: Vec<Chain> = Vec::new();
    let mut chain_at: HashMap<usize, usize> = HashMap::new();
    let mut k = 0;
    while k < sig.len() {
        let i = sig[k];
        let after_dot = i > 0 && tokens[i - 1].is_punct('.');
        if is_ident(i) && !after_dot && tokens[i].kind != TokenKind::Variable {
            let mut parts = vec![i];
            let mut j = i;
            while j + 2 < tokens.len() && tokens[j + 1].is_punct('.') && is_ident(j + 2) {
                j += 2;
                parts.push(j);
            }
            chain_at.insert(k, chains.len());
            chains.push(Chain { parts });
            while k < sig.len() && sig[k] <= j {
                k += 1;
            }
            continue;
        }
        k += 1;
    }

    // Pass 1: which chains are tables, aliases or INSERT columns.
    let mut roles = vec![Role::Expression; chains.len()];
    let mut tables: Vec<(String, String)> = Vec::new();
    let mut aliases: HashMap<String, Option<(String, String, bool)>> = HashMap::new();
    let mut add_alias = |alias: &str, db: &str, table: &str, explicit: bool| {
        let entry = aliases
            .entry(alias.to_lowercase())
            .or_insert_with(|| Some((db.to_owned(), table.to_owned(), explicit)));
        if entry
            .as_ref()
            .is_some_and(|(d, t, _)| !same_name(d, db) || t != table)
        {
            *entry = None;
        }
    };
    let mut in_from = false;
    let mut expect_table = false;
    let mut last_clause = String::new();
    // `SELECT ... INTO var` names variables; only INSERT/REPLACE ... INTO names a table.
    let mut inserting = false;
    let mut k = 0;
    while k < sig.len() {
        let t = &tokens[sig[k]];
        let upper = t.text.to_ascii_uppercase();
        let chain = chain_at.get(&k).copied();
        if t.kind == TokenKind::Word && chain.is_some_and(|c| chains[c].parts.len() == 1) {
            if upper == "INSERT" || upper == "REPLACE" {
                inserting = true;
            }
            if TABLE_CLAUSE.contains(&upper.as_str()) && (upper != "INTO" || inserting) {
                if upper == "INTO" {
                    inserting = false;
                }
                in_from = true;
                expect_table = true;
                last_clause = upper;
                k += 1;
                continue;
            }
            if CLAUSE_END.contains(&upper.as_str()) {
                in_from = false;
                expect_table = false;
                if upper == "AS"
                    && let Some(&next) = chain_at.get(&(k + 1))
                {
                    roles[next] = Role::Alias;
                }
                k += 1;
                continue;
            }
        }
        if t.is_punct(',') && in_from {
            expect_table = true;
        }
        if t.is_punct(';') {
            in_from = false;
            expect_table = false;
            inserting = false;
        }
        if let Some(c) = chain
            && expect_table
            && chains[c].parts.len() <= 2
        {
            roles[c] = Role::Table;
            expect_table = false;
            let parts = &chains[c].parts;
            let (db, table) = if parts.len() == 2 {
                (value(parts[0]), value(parts[1]))
            } else {
                (scope.database.to_owned(), value(parts[0]))
            };
            let table_index = tables.len();
            tables.push((db.clone(), table.clone()));
            // Skip to the chain's last token, then look for an alias or an INSERT column list.
            let last = *parts.last().unwrap_or(&sig[k]);
            while k < sig.len() && sig[k] <= last {
                k += 1;
            }
            let mut alias_at = k;
            if alias_at < sig.len() && tokens[sig[alias_at]].is_word("AS") {
                alias_at += 1;
            }
            let alias = chain_at.get(&alias_at).copied().filter(|&a| {
                let tok = &tokens[chains[a].parts[0]];
                chains[a].parts.len() == 1
                    && (tok.kind == TokenKind::QuotedIdent
                        || !(RESERVED.contains(&tok.text.to_ascii_uppercase().as_str())
                            || CLAUSE_END.contains(&tok.text.to_ascii_uppercase().as_str())
                            || TABLE_CLAUSE.contains(&tok.text.to_ascii_uppercase().as_str())))
            });
            match alias {
                Some(a) => {
                    roles[a] = Role::Alias;
                    add_alias(&value(chains[a].parts[0]), &db, &table, true);
                    k = alias_at + 1;
                }
                None => add_alias(&table, &db, &table, false),
            }
            if last_clause == "INTO" && k < sig.len() && tokens[sig[k]].is_punct('(') {
                let mut depth = 0usize;
                while k < sig.len() {
                    let t = &tokens[sig[k]];
                    if t.is_punct('(') {
                        depth += 1;
                    } else if t.is_punct(')') {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            k += 1;
                            break;
                        }
                    } else if let Some(&c) = chain_at.get(&k)
                        && depth == 1
                    {
                        roles[c] = Role::InsertColumn(table_index);
                    }
                    k += 1;
                }
                in_from = false;
            }
            continue;
        }
        if !(t.is_punct('(') || (t.is_punct(',') && in_from)) {
            expect_table = false;
        }
        k += 1;
    }

    // Pass 2: resolve and rewrite.
    let names = scope.names;
    let mut out = Rewritten::default();
    let mut replace: HashMap<usize, String> = HashMap::new();
    let note_relation = |out: &mut Rewritten, db: &str, rel: &RelationNames| {
        let entry = (db.to_owned(), rel.source.clone());
        if !out.relations.contains(&entry) {
            out.relations.push(entry);
        }
    };
    let trigger_rel = scope
        .trigger_table
        .and_then(|t| names.relation(scope.database, t));
    let mut used: Vec<(String, &RelationNames)> = Vec::new();
    if let Some(rel) = trigger_rel {
        used.push((scope.database.to_owned(), rel));
    }
    for (db, table) in &tables {
        if let Some(rel) = names.relation(db, table) {
            used.push((db.clone(), rel));
        }
    }
    let column_in = |out: &mut Rewritten,
                     replace: &mut HashMap<usize, String>,
                     db: &str,
                     rel: &RelationNames,
                     at: usize| {
        let column = value(at);
        match rel.column(&column) {
            Some(target) if target != column => {
                replace.insert(at, quote_ident(target));
            }
            Some(_) => {}
            None => out.missing_columns.push(format!(
                "it uses column {} of table {}, which is not selected",
                quote_ident(&column),
                quote_qualified(db, &rel.source)
            )),
        }
    };
    for (c, chain) in chains.iter().enumerate() {
        let parts = &chain.parts;
        match roles[c] {
            Role::Alias => {}
            Role::Table => {
                let (db, table) = if parts.len() == 2 {
                    (value(parts[0]), value(parts[1]))
                } else {
                    (scope.database.to_owned(), value(parts[0]))
                };
                if parts.len() == 2
                    && let Some(d) = names.database(&db)
                    && d.target != db
                {
                    replace.insert(parts[0], quote_ident(&d.target));
                }
                if let Some(rel) = names.relation(&db, &table) {
                    note_relation(&mut out, &db, rel);
                    if rel.target != table {
                        replace
                            .insert(*parts.last().unwrap_or(&parts[0]), quote_ident(&rel.target));
                    }
                }
            }
            Role::InsertColumn(t) => {
                let (db, table) = &tables[t];
                if let Some(rel) = names.relation(db, table) {
                    column_in(&mut out, &mut replace, db, rel, parts[0]);
                }
            }
            Role::Expression => match parts.len() {
                3 => {
                    let (db, table) = (value(parts[0]), value(parts[1]));
                    if let Some(d) = names.database(&db)
                        && d.target != db
                    {
                        replace.insert(parts[0], quote_ident(&d.target));
                    }
                    if let Some(rel) = names.relation(&db, &table) {
                        note_relation(&mut out, &db, rel);
                        if rel.target != table {
                            replace.insert(parts[1], quote_ident(&rel.target));
                        }
                        column_in(&mut out, &mut replace, &db, rel, parts[2]);
                    }
                }
                2 => {
                    let qualifier = value(parts[0]);
                    let is_row = qualifier.eq_ignore_ascii_case("NEW")
                        || qualifier.eq_ignore_ascii_case("OLD");
                    if let (true, Some(rel)) = (is_row, trigger_rel) {
                        column_in(&mut out, &mut replace, scope.database, rel, parts[1]);
                    } else if let Some(entry) = aliases.get(&qualifier.to_lowercase()) {
                        match entry {
                            Some((db, table, explicit)) => {
                                if let Some(rel) = names.relation(db, table) {
                                    if !explicit && rel.target != *table {
                                        replace.insert(parts[0], quote_ident(&rel.target));
                                    }
                                    column_in(&mut out, &mut replace, db, rel, parts[1]);
                                }
                            }
                            None => {
                                let column = value(parts[1]);
                                if used.iter().any(|(_, r)| {
                                    r.renamed_columns().any(|(s, _)| same_name(s, &column))
                                }) {
                                    out.unsafe_references.push(format!(
                                        "{}.{} names a renamed column through an alias used for more than one table; it is left as written",
                                        quote_ident(&qualifier),
                                        quote_ident(&column)
                                    ));
                                }
                            }
                        }
                    } else if let Some(rel) = names.relation(scope.database, &qualifier) {
                        note_relation(&mut out, scope.database, rel);
                        if rel.target != qualifier {
                            replace.insert(parts[0], quote_ident(&rel.target));
                        }
                        column_in(&mut out, &mut replace, scope.database, rel, parts[1]);
                    } else if let Some(d) = names.database(&qualifier) {
                        if d.target != qualifier {
                            replace.insert(parts[0], quote_ident(&d.target));
                        }
                        let object = value(parts[1]);
                        if let Some(rel) = d.relation(&object) {
                            note_relation(&mut out, &qualifier, rel);
                            if rel.target != object {
                                replace.insert(parts[1], quote_ident(&rel.target));
                            }
                        }
                    }
                }
                1 => {
                    let tok = &tokens[parts[0]];
                    if tok.kind == TokenKind::Word
                        && RESERVED.contains(&tok.text.to_ascii_uppercase().as_str())
                    {
                        continue;
                    }
                    let name = value(parts[0]);
                    for (db, rel) in &used {
                        if let Some((s, t)) =
                            rel.renamed_columns().find(|(s, _)| same_name(s, &name))
                        {
                            out.unsafe_references.push(format!(
                                "the bare name {} may be column {} of {} (renamed to {}) or a variable, parameter or alias; it is left as written: qualify it on the source (e.g. {}.{}) or rewrite the object on the destination",
                                quote_ident(&name),
                                quote_ident(s),
                                quote_qualified(db, &rel.source),
                                quote_ident(t),
                                quote_ident(&rel.source),
                                quote_ident(s)
                            ));
                        }
                    }
                    if let Some(d) = names.database(scope.database)
                        && let Some(rel) = d.relation(&name)
                        && rel.target != name
                    {
                        out.unsafe_references.push(format!(
                            "the name {} outside a FROM, JOIN, INTO or UPDATE may be table {} (renamed to {}); it is left as written",
                            quote_ident(&name),
                            quote_qualified(scope.database, &rel.source),
                            quote_ident(&rel.target)
                        ));
                    }
                }
                _ => {}
            },
        }
    }
    out.unsafe_references.dedup();
    out.missing_columns.dedup();
    out.sql = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| replace.get(&i).map_or(t.text.as_str(), String::as_str))
        .collect();
    out
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
