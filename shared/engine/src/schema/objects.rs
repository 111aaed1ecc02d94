//! Views, triggers, procedures and functions for the destination: no DEFINER, `SQL SECURITY
//! INVOKER` (views and routines; triggers have none), created in the destination database under
//! the session settings they were stored with, their references rewritten for the name mapping.

use super::catalog::{RoutineKind, SourceRoutine, SourceTrigger, SourceView};
use super::error::SchemaError;
use super::lexer::{Dialect, Token, TokenKind, tokenize};
use super::names::{DatabaseNames, NameMap};
use super::plan::{
    DdlStatement, MappingWarning, ObjectKind, ObjectRef, Phase, SessionVars, TABLE_DDL_SQL_MODE,
};
use super::quote::quote_qualified;
use super::rewrite::{BodyScope, rewrite_references};

/// One object's statement (none when it is left out), its warnings, and the source relations it
/// reads (for ordering views).
#[derive(Debug, Default)]
pub struct ObjectDdl {
    pub statement: Option<DdlStatement>,
    pub warnings: Vec<MappingWarning>,
    pub relations: Vec<(String, String)>,
}

impl ObjectDdl {
    fn warn(&mut self, object: &ObjectRef, message: String) {
        self.warnings.push(MappingWarning {
            object: object.clone(),
            message,
        });
    }
}

/// The session an object is created under: its stored settings, except that text which is not
/// ASCII is always sent as UTF-8, so a non-UTF-8 `character_set_client` would garble it; then
/// UTF-8 is used instead, with a warning.
fn session_for(
    object: &ObjectRef,
    sql_mode: &str,
    character_set_client: &str,
    collation_connection: &str,
    sql: &str,
    ddl: &mut ObjectDdl,
) -> SessionVars {
    let utf8 = character_set_client
        .to_ascii_lowercase()
        .starts_with("utf8");
    let client = if utf8 || sql.is_ascii() {
        character_set_client.to_owned()
    } else {
        ddl.warn(
            object,
            format!(
                "it was stored with character_set_client {character_set_client} and has non-ASCII text, which Tidemark sends as UTF-8; it is created with character_set_client utf8mb4"
            ),
        );
        "utf8mb4".to_owned()
    };
    SessionVars {
        sql_mode: sql_mode.to_owned(),
        character_set_client: client,
        collation_connection: collation_connection.to_owned(),
    }
}

/// Warns about tables a trigger or routine body uses that are not selected: it is created (the
/// server resolves those names only when it runs) but fails unless they exist on the destination.
fn report_unselected(
    ddl: &mut ObjectDdl,
    object: &ObjectRef,
    unselected: &[(String, String, bool)],
) {
    for (d, t, _) in unselected {
        ddl.warn(
            object,
            format!(
                "it uses table {}, which is not selected; it fails when it runs unless that table exists on the destination",
                quote_qualified(d, t)
            ),
        );
    }
}

fn report(
    ddl: &mut ObjectDdl,
    object: &ObjectRef,
    unsafe_references: Vec<String>,
    missing: &[String],
    leave_out: bool,
) -> bool {
    for message in unsafe_references {
        ddl.warn(object, message);
    }
    for message in missing {
        let message = if leave_out {
            format!("{message}; it is left out")
        } else {
            format!("{message}; it will fail when it runs on the destination")
        };
        ddl.warn(object, message);
    }
    leave_out && !missing.is_empty()
}

/// A view: `CREATE ALGORITHM=... SQL SECURITY INVOKER VIEW db.v AS ...`.
pub fn view_ddl(names: &NameMap, db: &DatabaseNames, view: &SourceView) -> ObjectDdl {
    let mut ddl = ObjectDdl::default();
    let source = ObjectRef::new(ObjectKind::View, &db.source, &view.name);
    let target_name = db
        .relation(&view.name)
        .map_or(view.name.as_str(), |r| r.target.as_str());
    let tokens = tokenize(&view.definition, Dialect::SHOW_CREATE);
    let scope = BodyScope {
        names,
        database: &db.source,
        trigger_table: None,
    };
    let rewritten = rewrite_references(&tokens, scope);
    ddl.relations = rewritten.relations.clone();
    // MariaDB qualifies every table in a stored view definition; an unqualified name in table
    // position is a CTE. A view on a table that is not selected cannot be created.
    if let Some((d, t, _)) = rewritten.unselected_relations.iter().find(|(_, _, q)| *q) {
        ddl.warn(
            &source,
            format!(
                "it reads {}, which is not selected; it is left out (select that table too to keep it)",
                quote_qualified(d, t)
            ),
        );
        return ddl;
    }
    // CREATE VIEW checks every column it names: a view on an unselected column cannot be made.
    if report(
        &mut ddl,
        &source,
        rewritten.unsafe_references,
        &rewritten.missing_columns,
        true,
    ) {
        return ddl;
    }
    let algorithm = match view.algorithm.to_ascii_uppercase().as_str() {
        a @ ("MERGE" | "TEMPTABLE" | "UNDEFINED") => format!("ALGORITHM={a} "),
        _ => String::new(),
    };
    let check = match view.check_option.to_ascii_uppercase().as_str() {
        c @ ("CASCADED" | "LOCAL") => format!(" WITH {c} CHECK OPTION"),
        _ => String::new(),
    };
    let sql = format!(
        "CREATE {algorithm}SQL SECURITY INVOKER VIEW {} AS {}{check}",
        quote_qualified(&db.target, target_name),
        rewritten.sql
    );
    let target = ObjectRef::new(ObjectKind::View, &db.target, target_name);
    let session = session_for(
        &source,
        TABLE_DDL_SQL_MODE,
        &view.character_set_client,
        &view.collation_connection,
        &sql,
        &mut ddl,
    );
    ddl.statement = Some(DdlStatement {
        phase: Phase::PostData,
        object: target,
        sql,
        session: Some(session),
    });
    ddl
}

/// A trigger: `CREATE TRIGGER db.name timing event ON db.table FOR EACH ROW body`.
pub fn trigger_ddl(names: &NameMap, db: &DatabaseNames, trigger: &SourceTrigger) -> ObjectDdl {
    let mut ddl = ObjectDdl::default();
    let source = ObjectRef::new(ObjectKind::Trigger, &db.source, &trigger.name);
    let Some(table) = db.relation(&trigger.table) else {
        return ddl;
    };
    let timing = trigger.timing.to_ascii_uppercase();
    let event = trigger.event.to_ascii_uppercase();
    if !matches!(timing.as_str(), "BEFORE" | "AFTER")
        || !matches!(event.as_str(), "INSERT" | "UPDATE" | "DELETE")
    {
        ddl.warn(
            &source,
            format!("its timing `{timing} {event}` is not one Tidemark knows; it is left out"),
        );
        return ddl;
    }
    let tokens = tokenize(
        &trigger.statement,
        Dialect::from_sql_mode(&trigger.sql_mode),
    );
    let scope = BodyScope {
        names,
        database: &db.source,
        trigger_table: Some(&trigger.table),
    };
    let rewritten = rewrite_references(&tokens, scope);
    ddl.relations = rewritten.relations.clone();
    report_unselected(&mut ddl, &source, &rewritten.unselected_relations);
    // CREATE TRIGGER checks NEW.col and OLD.col against its table; other names are only resolved
    // when it fires. Either way a trigger that names a column left out cannot work.
    if report(
        &mut ddl,
        &source,
        rewritten.unsafe_references,
        &rewritten.missing_columns,
        true,
    ) {
        return ddl;
    }
    let sql = format!(
        "CREATE TRIGGER {} {timing} {event} ON {} FOR EACH ROW {}",
        quote_qualified(&db.target, &trigger.name),
        quote_qualified(&db.target, &table.target),
        rewritten.sql
    );
    let session = session_for(
        &source,
        &trigger.sql_mode,
        &trigger.character_set_client,
        &trigger.collation_connection,
        &sql,
        &mut ddl,
    );
    ddl.statement = Some(DdlStatement {
        phase: Phase::PostData,
        object: ObjectRef::new(ObjectKind::Trigger, &db.target, &trigger.name),
        sql,
        session: Some(session),
    });
    ddl
}

/// A procedure or function from its `SHOW CREATE` text, without its DEFINER and with `SQL
/// SECURITY INVOKER`.
pub fn routine_ddl(
    names: &NameMap,
    db: &DatabaseNames,
    routine: &SourceRoutine,
) -> Result<ObjectDdl, SchemaError> {
    let mut ddl = ObjectDdl::default();
    let kind = match routine.kind {
        RoutineKind::Procedure => ObjectKind::Procedure,
        RoutineKind::Function => ObjectKind::Function,
    };
    let source = ObjectRef::new(kind, &db.source, &routine.name);
    let tokens = tokenize(
        &routine.create_sql,
        Dialect::from_sql_mode(&routine.sql_mode),
    );
    let header =
        parse_routine_header(&tokens, routine.kind).map_err(|detail| SchemaError::Parse {
            object: source.to_string(),
            detail,
        })?;
    let scope = BodyScope {
        names,
        database: &db.source,
        trigger_table: None,
    };
    let rewritten = rewrite_references(&tokens[header.body_start..], scope);
    report_unselected(&mut ddl, &source, &rewritten.unselected_relations);
    report(
        &mut ddl,
        &source,
        rewritten.unsafe_references,
        &rewritten.missing_columns,
        false,
    );
    let between: String = (header.after_name..header.body_start)
        .filter(|i| !header.security.contains(i))
        .map(|i| tokens[i].text.as_str())
        .collect();
    let sql = format!(
        "CREATE {}{} {}{}\n    SQL SECURITY INVOKER\n{}",
        header.modifiers,
        kind.as_str().to_ascii_uppercase(),
        quote_qualified(&db.target, &routine.name),
        between.trim_end(),
        rewritten.sql
    );
    let session = session_for(
        &source,
        &routine.sql_mode,
        &routine.character_set_client,
        &routine.collation_connection,
        &sql,
        &mut ddl,
    );
    ddl.statement = Some(DdlStatement {
        phase: Phase::PostData,
        object: ObjectRef::new(kind, &db.target, &routine.name),
        sql,
        session: Some(session),
    });
    Ok(ddl)
}

/// Where the parts of `CREATE [DEFINER=...] [AGGREGATE] PROCEDURE|FUNCTION name (params)
/// [RETURNS type] characteristics... body` are.
#[derive(Debug)]
struct RoutineHeader {
    /// Words between CREATE and PROCEDURE/FUNCTION other than the DEFINER clause, e.g.
    /// `AGGREGATE `.
    modifiers: String,
    /// Token index just after the routine's name.
    after_name: usize,
    /// Tokens of an `SQL SECURITY x` characteristic, dropped.
    security: Vec<usize>,
    /// Token index where the body starts.
    body_start: usize,
}

fn parse_routine_header(tokens: &[Token], kind: RoutineKind) -> Result<RoutineHeader, String> {
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&i| !tokens[i].is_trivia())
        .collect();
    let at = |k: usize| sig.get(k).map(|&i| &tokens[i]);
    let mut k = 0;
    if !at(k).is_some_and(|t| t.is_word("CREATE")) {
        return Err("it does not start with CREATE".into());
    }
    k += 1;
    let mut modifiers = String::new();
    let keyword = match kind {
        RoutineKind::Procedure => "PROCEDURE",
        RoutineKind::Function => "FUNCTION",
    };
    while let Some(t) = at(k) {
        if t.is_word(keyword) {
            break;
        }
        if t.is_word("DEFINER") {
            // DEFINER = user[@host] | CURRENT_USER[()] | role
            k += 2;
            if at(k).is_some_and(|t| t.is_word("CURRENT_USER"))
                && at(k + 1).is_some_and(|t| t.is_punct('('))
            {
                k += 3;
            } else {
                k += 1;
                if at(k).is_some_and(|t| t.kind == TokenKind::Variable) {
                    k += 1;
                } else if at(k).is_some_and(|t| t.is_punct('@')) {
                    k += 2;
                }
            }
            continue;
        }
        if t.is_word("OR") || t.is_word("REPLACE") {
            k += 1;
            continue;
        }
        modifiers.push_str(&t.text.to_ascii_uppercase());
        modifiers.push(' ');
        k += 1;
    }
    if at(k).is_none() {
        return Err(format!("no {keyword} keyword"));
    }
    k += 1;
    if at(k).is_some_and(|t| t.is_word("IF")) {
        k += 3;
    }
    // The name: `name` or `db`.`name`.
    k += 1;
    while at(k).is_some_and(|t| t.is_punct('.')) {
        k += 2;
    }
    let after_name = sig.get(k).copied().ok_or("nothing after the name")?;
    if !at(k).is_some_and(|t| t.is_punct('(')) {
        return Err("no parameter list after the name".into());
    }
    k = skip_group(tokens, &sig, k);
    if kind == RoutineKind::Function {
        if !at(k).is_some_and(|t| t.is_word("RETURNS")) {
            return Err("a function without RETURNS".into());
        }
        k += 2;
        if at(k).is_some_and(|t| t.is_punct('(')) {
            k = skip_group(tokens, &sig, k);
        }
        while let Some(t) = at(k) {
            if [
                "UNSIGNED", "SIGNED", "ZEROFILL", "BINARY", "ASCII", "UNICODE", "BYTE",
            ]
            .iter()
            .any(|w| t.is_word(w))
            {
                k += 1;
            } else if t.is_word("CHARSET") || t.is_word("COLLATE") {
                k += 2;
            } else if t.is_word("CHARACTER") {
                k += 3;
            } else {
                break;
            }
        }
    }
    let mut security = Vec::new();
    while let Some(t) = at(k) {
        let next = |n: usize, w: &str| at(k + n).is_some_and(|t| t.is_word(w));
        if t.is_word("COMMENT")
            || t.is_word("LANGUAGE")
            || (t.is_word("NOT") && next(1, "DETERMINISTIC"))
        {
            k += 2;
        } else if t.is_word("DETERMINISTIC") {
            k += 1;
        } else if (t.is_word("CONTAINS") || t.is_word("NO")) && next(1, "SQL") {
            k += 2;
        } else if (t.is_word("READS") || t.is_word("MODIFIES")) && next(1, "SQL") {
            k += 3;
        } else if t.is_word("SQL") && next(1, "SECURITY") {
            // Drop the characteristic with the space before it.
            let from = sig[k].saturating_sub(1);
            let to = sig.get(k + 2).copied().unwrap_or(tokens.len() - 1);
            security.extend(from..=to);
            k += 3;
        } else {
            break;
        }
    }
    let body_start = sig.get(k).copied().ok_or("a routine without a body")?;
    Ok(RoutineHeader {
        modifiers,
        after_name,
        security,
        body_start,
    })
}

/// From a `(` at `sig[k]`, the position just after its matching `)`.
fn skip_group(tokens: &[Token], sig: &[usize], mut k: usize) -> usize {
    let mut depth = 0usize;
    while let Some(&i) = sig.get(k) {
        if tokens[i].is_punct('(') {
            depth += 1;
        } else if tokens[i].is_punct(')') {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return k + 1;
            }
        }
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::super::lexer::render as text;
    use super::*;

    fn header(sql: &str, kind: RoutineKind) -> (RoutineHeader, Vec<Token>) {
        let tokens = tokenize(sql, Dialect::SHOW_CREATE);
        (parse_routine_header(&tokens, kind).expect("header"), tokens)
    }

    #[test]
    fn finds_the_body_after_returns_and_characteristics() {
        let sql = "CREATE DEFINER=`root`@`localhost` FUNCTION `f1`(t INT) RETURNS varchar(20) CHARSET utf8mb4 COLLATE utf8mb4_general_ci\n    READS SQL DATA\n    DETERMINISTIC\n    SQL SECURITY DEFINER\n    COMMENT 'x'\nBEGIN RETURN 1; END";
        let (h, tokens) = header(sql, RoutineKind::Function);
        assert_eq!(text(&tokens[h.body_start..]), "BEGIN RETURN 1; END");
        assert_eq!(text(&tokens[h.after_name..h.after_name + 1]), "(");
        let kept: String = (h.after_name..h.body_start)
            .filter(|i| !h.security.contains(i))
            .map(|i| tokens[i].text.as_str())
            .collect();
        assert!(!kept.contains("SECURITY"), "{kept}");
        assert!(kept.contains("COMMENT 'x'"), "{kept}");
        assert_eq!(h.modifiers, "");
    }

    #[test]
    fn procedures_with_a_bare_statement_body_and_odd_definers() {
        let sql = "CREATE DEFINER=CURRENT_USER() AGGREGATE PROCEDURE `p`()\nSELECT 1";
        let (h, tokens) = header(sql, RoutineKind::Procedure);
        assert_eq!(text(&tokens[h.body_start..]), "SELECT 1");
        assert_eq!(h.modifiers, "AGGREGATE ");
        let sql = "CREATE DEFINER='a b'@'%' PROCEDURE `x``y`(IN a INT) NO SQL lbl: BEGIN END";
        let (h, tokens) = header(sql, RoutineKind::Procedure);
        assert_eq!(text(&tokens[h.body_start..]), "lbl: BEGIN END");
    }
}
