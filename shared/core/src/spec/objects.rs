//! Validation of the object selection: identifiers, duplicates, destination-name collisions,
//! and what each policy needs from the tables.

use super::validate::{Errors, host_key};
use super::{DatabaseSelection, Policy, TableSelection, TaskSpec};
use crate::ident::{IdentKind, MAX_IDENTIFIER_CHARS, check_identifier, same_name};

/// Length of the suffix multi-replica appends to a database name: `_yyyymmdd_HH_mm_ss`.
pub const REPLICA_SUFFIX_CHARS: usize = "_yyyymmdd_HH_mm_ss".len();

/// One entry of a list whose names must be unique, on the source and on the destination.
struct Named<'a> {
    /// Path of the entry, e.g. `objects[0].tables[1]`.
    path: String,
    /// The JSON key holding the source name (`database` or `name`).
    name_key: &'static str,
    source: &'a str,
    target: &'a str,
    renamed: bool,
}

pub(super) fn check_objects(spec: &TaskSpec, e: &mut Errors) {
    if spec.objects.is_empty() {
        e.add(
            "objects",
            "`objects` must select at least one database, e.g. [{\"database\": \"shop\"}]",
        );
        return;
    }
    let same_server = host_key(&spec.source.host) == host_key(&spec.destination.host)
        && spec.source.port == spec.destination.port;
    let mut names = Vec::new();
    for (i, db) in spec.objects.iter().enumerate() {
        let at = format!("objects[{i}]");
        check_database(spec, &at, db, same_server, e);
        names.push(Named {
            path: at,
            name_key: "database",
            source: &db.database,
            target: db.target_name(),
            renamed: db.rename.is_some(),
        });
    }
    check_unique(&names, "database", "", e);
}

fn check_database(
    spec: &TaskSpec,
    at: &str,
    db: &DatabaseSelection,
    same_server: bool,
    e: &mut Errors,
) {
    ident(
        e,
        format!("{at}.database"),
        IdentKind::Database,
        &db.database,
    );
    if let Some(rename) = &db.rename {
        ident(e, format!("{at}.rename"), IdentKind::Database, rename);
    }
    let target_field = if db.rename.is_some() {
        format!("{at}.rename")
    } else {
        format!("{at}.database")
    };
    let target = db.target_name();
    let target_chars = target.chars().count();
    if matches!(spec.policy, Policy::MultiReplica(_))
        && target_chars <= MAX_IDENTIFIER_CHARS
        && target_chars + REPLICA_SUFFIX_CHARS > MAX_IDENTIFIER_CHARS
    {
        let max = MAX_IDENTIFIER_CHARS - REPLICA_SUFFIX_CHARS;
        e.add(
            target_field.clone(),
            format!(
                "multi_replica names each replica `<database>_yyyymmdd_HH_mm_ss`, which must fit \
                 in {MAX_IDENTIFIER_CHARS} characters; the destination name {target:?} has \
                 {target_chars}, use `rename` to give one of at most {max}"
            ),
        );
    }
    if same_server
        && !matches!(spec.policy, Policy::MultiReplica(_))
        && same_name(target, &db.database)
    {
        e.add(
            format!("{at}.rename"),
            format!(
                "source and destination are the same server, so database {:?} would be \
                 copied onto itself; set `rename` to a different destination database",
                db.database
            ),
        );
    }
    let incremental = spec.policy.is_incremental();
    let Some(tables) = &db.tables else {
        if incremental {
            e.add(
                format!("{at}.tables"),
                "incremental mode copies tables or columns, each with a timestamp_column; \
                 list the tables (a whole database cannot be selected)",
            );
        }
        return;
    };
    if tables.is_empty() {
        e.add(
            format!("{at}.tables"),
            "`tables` is empty, which selects nothing; list the tables, or omit `tables` to \
             select the whole database",
        );
        return;
    }
    let mut names = Vec::new();
    for (j, t) in tables.iter().enumerate() {
        let tat = format!("{at}.tables[{j}]");
        check_table(&tat, t, incremental, e);
        names.push(Named {
            path: tat,
            name_key: "name",
            source: &t.name,
            target: t.target_name(),
            renamed: t.rename.is_some(),
        });
    }
    check_unique(&names, "table", &format!(" in {at}"), e);
}

fn check_table(at: &str, t: &TableSelection, incremental: bool, e: &mut Errors) {
    ident(e, format!("{at}.name"), IdentKind::Table, &t.name);
    if let Some(rename) = &t.rename {
        ident(e, format!("{at}.rename"), IdentKind::Table, rename);
    }
    let ts_field = format!("{at}.timestamp_column");
    match (&t.timestamp_column, incremental) {
        (None, true) => e.add(
            ts_field,
            "incremental mode needs a `timestamp_column` on every table: a DATETIME or \
             TIMESTAMP column updated on every change (e.g. \"updated_at\"); add it",
        ),
        (Some(_), false) => e.add(
            ts_field,
            "`timestamp_column` is only used by the incremental policy; remove it, or use \
             policy mode \"incremental\"",
        ),
        (Some(ts), true) => {
            if ident(e, ts_field.clone(), IdentKind::Column, ts)
                && let Some(columns) = &t.columns
                && !columns.is_empty()
                && !columns.iter().any(|c| same_name(&c.name, ts))
            {
                e.add(
                    ts_field,
                    format!(
                        "the timestamp column {ts:?} is not among the selected `columns`; add \
                         {{\"name\": {ts:?}}} to `columns`"
                    ),
                );
            }
        }
        (None, false) => {}
    }
    let Some(columns) = &t.columns else { return };
    if columns.is_empty() {
        e.add(
            format!("{at}.columns"),
            "`columns` is empty, which selects nothing; list the columns, or omit `columns` to \
             select them all",
        );
        return;
    }
    let mut names = Vec::new();
    for (k, c) in columns.iter().enumerate() {
        let cat = format!("{at}.columns[{k}]");
        ident(e, format!("{cat}.name"), IdentKind::Column, &c.name);
        if let Some(rename) = &c.rename {
            ident(e, format!("{cat}.rename"), IdentKind::Column, rename);
        }
        names.push(Named {
            path: cat,
            name_key: "name",
            source: &c.name,
            target: c.target_name(),
            renamed: c.rename.is_some(),
        });
    }
    check_unique(&names, "column", &format!(" in {at}"), e);
}

/// Checks one identifier; records an error and returns false when it breaks a rule.
fn ident(e: &mut Errors, field: String, kind: IdentKind, name: &str) -> bool {
    match check_identifier(kind, name) {
        Ok(()) => true,
        Err(m) => {
            e.add(field, m);
            false
        }
    }
}

/// Reports source duplicates, then destination collisions among the rest (case-insensitive).
fn check_unique(items: &[Named<'_>], what: &str, scope: &str, e: &mut Errors) {
    let mut duplicate = vec![false; items.len()];
    for (k, item) in items.iter().enumerate() {
        if let Some(first) = items[..k].iter().find(|o| same_name(o.source, item.source)) {
            duplicate[k] = true;
            e.add(
                format!("{}.{}", item.path, item.name_key),
                format!(
                    "{what} {:?} is selected twice{scope} (also at {}; names are compared \
                     case-insensitively); list it once",
                    item.source, first.path
                ),
            );
        }
    }
    for (k, item) in items.iter().enumerate() {
        if duplicate[k] {
            continue;
        }
        let clash = items[..k]
            .iter()
            .zip(&duplicate)
            .find(|(o, dup)| !**dup && same_name(o.target, item.target));
        if let Some((other, _)) = clash {
            let key = if item.renamed {
                "rename"
            } else {
                item.name_key
            };
            e.add(
                format!("{}.{key}", item.path),
                format!(
                    "{what} {:?} at {} and {what} {:?} at {} both map to the destination name \
                     {:?}{scope} (compared case-insensitively); give one of them a different \
                     `rename`",
                    item.source, item.path, other.source, other.path, item.target
                ),
            );
        }
    }
}
