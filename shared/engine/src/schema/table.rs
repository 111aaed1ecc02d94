//! `SHOW CREATE TABLE` output, parsed into its parts: one column, key or constraint per element,
//! the table options, the partition clause. Each part keeps its tokens (so it is re-emitted
//! exactly) and knows which of its tokens are column names, which is all a rename or a column
//! selection needs to change.

use super::lexer::{Dialect, Token, TokenKind, tokenize};

/// The kind of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Primary,
    Unique,
    Plain,
    Fulltext,
    Spatial,
}

/// What one element of the table body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElementKind {
    Column {
        generated: bool,
        invisible: bool,
        auto_increment: bool,
        not_null: bool,
    },
    Key(KeyKind),
    ForeignKey {
        /// Token index of the referenced database, when qualified.
        ref_database: Option<usize>,
        /// Token index of the referenced table.
        ref_table: usize,
        /// Token indexes of the referenced columns.
        ref_columns: Vec<usize>,
    },
    Check,
    /// Anything else (e.g. `PERIOD FOR SYSTEM_TIME (...)`), kept as is.
    Other,
}

/// One element of the table body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub kind: ElementKind,
    /// The element's name: the column's, the key's or the constraint's (`PRIMARY` for the primary
    /// key, none for an unnamed one).
    pub name: Option<String>,
    /// The element's tokens, trimmed.
    pub tokens: Vec<Token>,
    /// Indexes into `tokens` of names of this table's columns (for a column: the name itself
    /// first, then those its expressions use; for a key: its parts, in order).
    pub column_slots: Vec<usize>,
}

impl Element {
    /// The source names of the columns at `column_slots`.
    pub fn columns(&self) -> Vec<String> {
        self.column_slots
            .iter()
            .filter_map(|&i| self.tokens[i].ident_value())
            .collect()
    }

    pub fn key_kind(&self) -> Option<KeyKind> {
        match self.kind {
            ElementKind::Key(k) => Some(k),
            _ => None,
        }
    }
}

/// A parsed `SHOW CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    pub name: String,
    pub elements: Vec<Element>,
    /// Table options (`ENGINE=... COMMENT='...'`), trimmed.
    pub options: Vec<Token>,
    /// The partition clause from `PARTITION BY`, trimmed; empty when not partitioned.
    pub partition: Vec<Token>,
    /// Indexes into `partition` of column names (partition and subpartition names excluded).
    pub partition_column_slots: Vec<usize>,
}

impl TableDef {
    pub fn columns(&self) -> impl Iterator<Item = &Element> {
        self.elements
            .iter()
            .filter(|e| matches!(e.kind, ElementKind::Column { .. }))
    }
}

/// Parses `SHOW CREATE TABLE` text. The error says what was unexpected.
pub fn parse_create_table(sql: &str) -> Result<TableDef, String> {
    // Versioned-comment markers are dropped: the destination is at least as new as the source
    // and runs what the source printed (MySQL wraps the partition clause in one).
    let tokens: Vec<Token> = tokenize(sql, Dialect::SHOW_CREATE)
        .into_iter()
        .filter(|t| !matches!(t.kind, TokenKind::VersionOpen | TokenKind::VersionClose))
        .collect();
    let open = tokens
        .iter()
        .position(|t| t.is_punct('('))
        .ok_or("no opening parenthesis after CREATE TABLE")?;
    let name = tokens[..open]
        .iter()
        .rev()
        .find(|t| t.kind == TokenKind::QuotedIdent)
        .and_then(Token::ident_value)
        .ok_or("no table name before the column list")?;
    let mut depth = 0usize;
    let mut close = None;
    let mut pieces: Vec<Vec<Token>> = vec![Vec::new()];
    for (i, t) in tokens.iter().enumerate().skip(open + 1) {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            if depth == 0 {
                close = Some(i);
                break;
            }
            depth -= 1;
        } else if t.is_punct(',') && depth == 0 {
            pieces.push(Vec::new());
            continue;
        }
        if let Some(last) = pieces.last_mut() {
            last.push(t.clone());
        }
    }
    let close = close.ok_or("the column list is not closed")?;
    let elements = pieces
        .into_iter()
        .map(|p| trim(&p).to_vec())
        .filter(|p| !p.is_empty())
        .map(parse_element)
        .collect::<Result<Vec<_>, _>>()?;

    let tail = &tokens[close + 1..];
    let partition_at = tail
        .iter()
        .position(|t| t.is_word("PARTITION"))
        .unwrap_or(tail.len());
    let options = trim(&tail[..partition_at]).to_vec();
    let partition = trim(&tail[partition_at..]).to_vec();
    let partition_column_slots = partition_columns(&partition);
    Ok(TableDef {
        name,
        elements,
        options,
        partition,
        partition_column_slots,
    })
}

/// `tokens` without leading and trailing whitespace and comments.
pub fn trim(tokens: &[Token]) -> &[Token] {
    let start = tokens
        .iter()
        .position(|t| !t.is_trivia())
        .unwrap_or(tokens.len());
    let end = tokens
        .iter()
        .rposition(|t| !t.is_trivia())
        .map_or(start, |e| e + 1);
    &tokens[start..end]
}

/// Indexes of the significant tokens.
fn significant(tokens: &[Token]) -> Vec<usize> {
    (0..tokens.len())
        .filter(|&i| !tokens[i].is_trivia())
        .collect()
}

fn parse_element(tokens: Vec<Token>) -> Result<Element, String> {
    let sig = significant(&tokens);
    let first = &tokens[sig[0]];
    let word = |k: usize| sig.get(k).map(|&i| &tokens[i]);
    if first.kind == TokenKind::QuotedIdent {
        return Ok(parse_column(tokens, &sig));
    }
    let upper = first.text.to_ascii_uppercase();
    let key = |kind: KeyKind| -> Result<Element, String> {
        let (name, slots) = key_parts(&tokens, &sig)?;
        Ok(Element {
            kind: ElementKind::Key(kind),
            name: if kind == KeyKind::Primary {
                Some("PRIMARY".to_owned())
            } else {
                name
            },
            column_slots: slots,
            tokens: tokens.clone(),
        })
    };
    match upper.as_str() {
        "PRIMARY" => key(KeyKind::Primary),
        "UNIQUE" => key(KeyKind::Unique),
        "KEY" | "INDEX" => key(KeyKind::Plain),
        "FULLTEXT" => key(KeyKind::Fulltext),
        "SPATIAL" => key(KeyKind::Spatial),
        "CONSTRAINT" | "FOREIGN" | "CHECK" => {
            let (name, body_at) = if upper == "CONSTRAINT" {
                match word(1) {
                    Some(t) if t.kind == TokenKind::QuotedIdent => (t.ident_value(), 2),
                    _ => (None, 1),
                }
            } else {
                (None, 0)
            };
            let body = word(body_at).ok_or("a constraint without a body")?;
            if body.is_word("CHECK") {
                let slots = sig[body_at + 1..]
                    .iter()
                    .copied()
                    .filter(|&i| tokens[i].kind == TokenKind::QuotedIdent)
                    .collect();
                Ok(Element {
                    kind: ElementKind::Check,
                    name,
                    column_slots: slots,
                    tokens,
                })
            } else if body.is_word("FOREIGN") {
                parse_foreign_key(tokens, &sig, name, body_at)
            } else {
                Err(format!("an unknown constraint `{}`", body.text))
            }
        }
        _ => {
            let slots = sig
                .iter()
                .copied()
                .filter(|&i| tokens[i].kind == TokenKind::QuotedIdent)
                .collect();
            Ok(Element {
                kind: ElementKind::Other,
                name: None,
                column_slots: slots,
                tokens,
            })
        }
    }
}

fn parse_column(tokens: Vec<Token>, sig: &[usize]) -> Element {
    let name = tokens[sig[0]].ident_value();
    let has = |w: &str| sig.iter().any(|&i| tokens[i].is_word(w));
    // Both MariaDB and MySQL print `GENERATED ALWAYS AS (...)` whatever the user wrote.
    let generated = has("GENERATED");
    let not_null = sig
        .windows(2)
        .any(|w| tokens[w[0]].is_word("NOT") && tokens[w[1]].is_word("NULL"));
    // Every other quoted identifier in a column definition is a column its generated expression,
    // default expression or CHECK uses: types, charsets and collations are never quoted.
    let slots = sig
        .iter()
        .copied()
        .filter(|&i| tokens[i].kind == TokenKind::QuotedIdent)
        .collect();
    Element {
        kind: ElementKind::Column {
            generated,
            invisible: has("INVISIBLE"),
            auto_increment: has("AUTO_INCREMENT"),
            not_null,
        },
        name,
        column_slots: slots,
        tokens,
    }
}

/// A key's name (the quoted identifier before its part list) and its part columns (the first
/// quoted identifier of each part; a prefix length or ASC/DESC follows it).
fn key_parts(tokens: &[Token], sig: &[usize]) -> Result<(Option<String>, Vec<usize>), String> {
    let open_pos = sig
        .iter()
        .position(|&i| tokens[i].is_punct('('))
        .ok_or("an index without a column list")?;
    let name = sig[..open_pos]
        .iter()
        .rev()
        .find(|&&i| tokens[i].kind == TokenKind::QuotedIdent)
        .and_then(|&i| tokens[i].ident_value());
    let slots = group_columns(tokens, &sig[open_pos..]);
    Ok((name, slots))
}

/// In a parenthesised list starting at `sig[0]`, the first quoted identifier of each item.
fn group_columns(tokens: &[Token], sig: &[usize]) -> Vec<usize> {
    let mut slots = Vec::new();
    let mut depth = 0usize;
    let mut want = true;
    for &i in sig {
        let t = &tokens[i];
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                break;
            }
        } else if t.is_punct(',') && depth == 1 {
            want = true;
        } else if want && depth == 1 && t.kind == TokenKind::QuotedIdent {
            slots.push(i);
            want = false;
        }
    }
    slots
}

fn parse_foreign_key(
    tokens: Vec<Token>,
    sig: &[usize],
    name: Option<String>,
    body_at: usize,
) -> Result<Element, String> {
    let local_open = sig[body_at..]
        .iter()
        .position(|&i| tokens[i].is_punct('('))
        .map(|p| p + body_at)
        .ok_or("a foreign key without columns")?;
    let local = group_columns(&tokens, &sig[local_open..]);
    let refs_at = sig
        .iter()
        .position(|&i| tokens[i].is_word("REFERENCES"))
        .ok_or("a foreign key without REFERENCES")?;
    let ref_open = sig[refs_at..]
        .iter()
        .position(|&i| tokens[i].is_punct('('))
        .map(|p| p + refs_at)
        .ok_or("a foreign key without referenced columns")?;
    let names: Vec<usize> = sig[refs_at + 1..ref_open]
        .iter()
        .copied()
        .filter(|&i| tokens[i].kind == TokenKind::QuotedIdent)
        .collect();
    let (ref_database, ref_table) = match names.as_slice() {
        [table] => (None, *table),
        [db, table] => (Some(*db), *table),
        _ => return Err("a foreign key whose referenced table is not a name".to_owned()),
    };
    let ref_columns = group_columns(&tokens, &sig[ref_open..]);
    Ok(Element {
        kind: ElementKind::ForeignKey {
            ref_database,
            ref_table,
            ref_columns,
        },
        name,
        column_slots: local,
        tokens,
    })
}

/// Column names in a partition clause: quoted identifiers, except the name after `PARTITION` or
/// `SUBPARTITION` (a partition's own name).
fn partition_columns(tokens: &[Token]) -> Vec<usize> {
    let sig = significant(tokens);
    sig.iter()
        .enumerate()
        .filter(|&(k, &i)| {
            tokens[i].kind == TokenKind::QuotedIdent
                && !(k > 0
                    && (tokens[sig[k - 1]].is_word("PARTITION")
                        || tokens[sig[k - 1]].is_word("SUBPARTITION")))
        })
        .map(|(_, &i)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDERS: &str = "CREATE TABLE `orders` (
  `tenant` int(11) NOT NULL,
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `qty` int(11) NOT NULL DEFAULT 1 CHECK (`qty` > 0),
  `total` decimal(12,2) GENERATED ALWAYS AS (`qty` * `price`) STORED,
  `note` text DEFAULT 'a,b ''(c)' COMMENT 'x`y',
  `secret` int(11) INVISIBLE DEFAULT 7,
  PRIMARY KEY (`tenant`,`id`),
  UNIQUE KEY `uq` (`tenant`,`note`(10) DESC),
  FULLTEXT KEY `ft1` (`note`),
  CONSTRAINT `fk_cat` FOREIGN KEY (`tenant`) REFERENCES `other`.`cat` (`id`) ON DELETE CASCADE,
  CONSTRAINT `chk` CHECK (`qty` >= 0)
) ENGINE=InnoDB AUTO_INCREMENT=1000 DEFAULT CHARSET=latin1 COMMENT='has PARTITION in it'
 PARTITION BY RANGE (`tenant`)
(PARTITION `p0` VALUES LESS THAN (10) ENGINE = InnoDB,
 PARTITION `p1` VALUES LESS THAN MAXVALUE ENGINE = InnoDB)";

    #[test]
    fn parses_every_kind_of_element() {
        let t = parse_create_table(ORDERS).expect("parse");
        assert_eq!(t.name, "orders");
        let names: Vec<_> = t.elements.iter().map(|e| e.name.clone()).collect();
        assert_eq!(
            names,
            [
                Some("tenant".into()),
                Some("id".into()),
                Some("qty".into()),
                Some("total".into()),
                Some("note".into()),
                Some("secret".into()),
                Some("PRIMARY".into()),
                Some("uq".into()),
                Some("ft1".into()),
                Some("fk_cat".into()),
                Some("chk".into()),
            ]
        );
        let total = &t.elements[3];
        assert!(matches!(
            total.kind,
            ElementKind::Column {
                generated: true,
                ..
            }
        ));
        assert_eq!(total.columns(), ["total", "qty", "price"]);
        assert_eq!(t.elements[4].columns(), ["note"], "strings are not columns");
        assert!(matches!(
            t.elements[5].kind,
            ElementKind::Column {
                invisible: true,
                ..
            }
        ));
        assert!(matches!(
            t.elements[1].kind,
            ElementKind::Column {
                auto_increment: true,
                not_null: true,
                ..
            }
        ));
        assert_eq!(t.elements[6].columns(), ["tenant", "id"]);
        assert_eq!(t.elements[7].columns(), ["tenant", "note"]);
        assert_eq!(t.elements[8].key_kind(), Some(KeyKind::Fulltext));
        let fk = &t.elements[9];
        assert_eq!(fk.columns(), ["tenant"]);
        let ElementKind::ForeignKey {
            ref_database,
            ref_table,
            ref_columns,
        } = &fk.kind
        else {
            panic!("not a foreign key: {fk:?}");
        };
        assert_eq!(
            fk.tokens[ref_database.expect("qualified")]
                .ident_value()
                .as_deref(),
            Some("other")
        );
        assert_eq!(fk.tokens[*ref_table].ident_value().as_deref(), Some("cat"));
        assert_eq!(ref_columns.len(), 1);
        assert_eq!(t.elements[10].kind, ElementKind::Check);
        assert_eq!(t.elements[10].columns(), ["qty"]);
        assert!(super::super::lexer::render(&t.options).ends_with("COMMENT='has PARTITION in it'"));
        assert!(super::super::lexer::render(&t.partition).starts_with("PARTITION BY RANGE"));
        let part_cols: Vec<_> = t
            .partition_column_slots
            .iter()
            .filter_map(|&i| t.partition[i].ident_value())
            .collect();
        assert_eq!(part_cols, ["tenant"]);
    }

    #[test]
    fn hostile_names_parse_as_names() {
        let sql = "CREATE TABLE `x``; DROP DATABASE y; --` (\n  `a``,b` int(11) NOT NULL,\n  PRIMARY KEY (`a``,b`)\n) ENGINE=InnoDB";
        let t = parse_create_table(sql).expect("parse");
        assert_eq!(t.name, "x`; DROP DATABASE y; --");
        assert_eq!(t.elements.len(), 2);
        assert_eq!(t.elements[1].columns(), ["a`,b"]);
    }
}
