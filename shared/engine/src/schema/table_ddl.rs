//! One table's DDL for the destination: `CREATE TABLE` with the columns, the primary key, any key
//! an AUTO_INCREMENT column needs, CHECK constraints, options and partitioning (pre-data); the
//! other indexes in one `ALTER TABLE`, each FULLTEXT index in its own (InnoDB builds one at a
//! time), and the foreign keys (post-data). Column selection and renames are applied here.

use std::collections::HashSet;

use tidemark_core::ident::same_name;

use super::error::SchemaError;
use super::lexer::{Token, render};
use super::names::{DatabaseNames, NameMap, RelationNames};
use super::plan::{
    ColumnPlan, DdlStatement, MappingWarning, ObjectKind, ObjectRef, Phase, TablePlan,
};
use super::quote::{quote_ident, quote_qualified};
use super::table::{Element, ElementKind, KeyKind, TableDef};

/// Everything one table contributes to the plan.
#[derive(Debug, Default)]
pub struct TableDdl {
    pub pre_data: Vec<DdlStatement>,
    pub indexes: Vec<DdlStatement>,
    pub foreign_keys: Vec<DdlStatement>,
    pub warnings: Vec<MappingWarning>,
    pub plan: Option<TablePlan>,
    /// The `CREATE TABLE` with the secondary (non-FULLTEXT) indexes inline, when it has any:
    /// for a table small enough that keeping them during its load costs less than the ALTER
    /// that would add them after it.
    pub inline_create: Option<String>,
    /// Source (database, table) of the tables its foreign keys reference, for ordering.
    pub references: Vec<(String, String)>,
}

/// Builds the DDL of `def`, a table of `db` selected as `rel`.
pub fn table_ddl(
    names: &NameMap,
    db: &DatabaseNames,
    rel: &RelationNames,
    def: &TableDef,
) -> Result<TableDdl, SchemaError> {
    let mut out = TableDdl::default();
    let source_columns: Vec<String> = def.columns().filter_map(|c| c.name.clone()).collect();
    if let Some(selected) = &rel.columns {
        for (column, _) in selected {
            if !source_columns.iter().any(|c| same_name(c, column)) {
                return Err(SchemaError::ColumnNotFound {
                    database: db.source.clone(),
                    table: rel.source.clone(),
                    column: column.clone(),
                });
            }
        }
    }
    let warn = |out: &mut TableDdl, kind: ObjectKind, part: &str, message: String| {
        out.warnings.push(MappingWarning {
            object: ObjectRef::part(kind, &db.source, &rel.source, part),
            message,
        });
    };

    // Columns that stay: the selected ones, minus any whose expression needs a column that does
    // not (repeated, since a generated column may use another generated column).
    let mut kept: HashSet<String> = source_columns
        .iter()
        .filter(|c| rel.column(c).is_some())
        .map(|c| c.to_lowercase())
        .collect();
    loop {
        let mut changed = false;
        for col in def.columns() {
            let Some(name) = &col.name else { continue };
            if !kept.contains(&name.to_lowercase()) {
                continue;
            }
            if let Some(missing) = col
                .columns()
                .into_iter()
                .find(|c| !kept.contains(&c.to_lowercase()))
            {
                kept.remove(&name.to_lowercase());
                changed = true;
                warn(
                    &mut out,
                    ObjectKind::Column,
                    name,
                    format!(
                        "its expression uses column {}, which is not selected; the column is left out (select {} too to keep it)",
                        quote_ident(&missing),
                        quote_ident(&missing)
                    ),
                );
            }
        }
        if !changed {
            break;
        }
    }
    let target_of = |c: &str| -> Option<String> {
        kept.contains(&c.to_lowercase())
            .then(|| rel.column(c).unwrap_or(c).to_owned())
    };
    let missing_of = |e: &Element| e.columns().into_iter().find(|c| target_of(c).is_none());
    let target_table = quote_qualified(&db.target, &rel.target);

    let mut columns_sql = Vec::new();
    let mut column_plans = Vec::new();
    let mut primary: Option<&Element> = None;
    let mut keys: Vec<&Element> = Vec::new();
    let mut checks_sql = Vec::new();
    let mut foreign_keys = Vec::new();
    for element in &def.elements {
        let part = element.name.clone().unwrap_or_else(|| "(unnamed)".into());
        match &element.kind {
            ElementKind::Column {
                generated,
                invisible,
                ..
            } => {
                let Some(name) = &element.name else { continue };
                let Some(target) = target_of(name) else {
                    continue;
                };
                columns_sql.push(render_columns(element, &target_of));
                column_plans.push(ColumnPlan {
                    source: name.clone(),
                    target,
                    generated: *generated,
                    invisible: *invisible,
                });
            }
            ElementKind::Key(kind) => {
                if let Some(missing) = missing_of(element) {
                    warn(
                        &mut out,
                        ObjectKind::Index,
                        &part,
                        format!(
                            "it needs column {}, which is not selected; it is left out",
                            quote_ident(&missing)
                        ),
                    );
                } else if *kind == KeyKind::Primary {
                    primary = Some(element);
                } else {
                    keys.push(element);
                }
            }
            ElementKind::Check | ElementKind::Other => {
                if let Some(missing) = missing_of(element) {
                    warn(
                        &mut out,
                        ObjectKind::Check,
                        &part,
                        format!(
                            "it needs column {}, which is not selected; it is left out",
                            quote_ident(&missing)
                        ),
                    );
                } else {
                    checks_sql.push(render_columns(element, &target_of));
                }
            }
            ElementKind::ForeignKey { .. } => {
                match foreign_key_sql(names, db, element, &target_of) {
                    Ok((sql, reference)) => {
                        out.references.push(reference);
                        foreign_keys.push(sql);
                    }
                    Err(message) => warn(&mut out, ObjectKind::ForeignKey, &part, message),
                }
            }
        }
    }

    // An AUTO_INCREMENT column must lead some key from the start.
    let auto_increment = def.columns().find_map(|c| match c.kind {
        ElementKind::Column {
            auto_increment: true,
            ..
        } => c.name.as_ref().filter(|n| target_of(n).is_some()),
        _ => None,
    });
    let leads = |e: &Element, col: &str| e.columns().first().is_some_and(|c| same_name(c, col));
    let mut pre_keys: Vec<String> = primary
        .iter()
        .map(|p| render_columns(p, &target_of))
        .collect();
    let mut auto_key: Option<usize> = None;
    if let Some(ai) = auto_increment
        && !primary.is_some_and(|p| leads(p, ai))
    {
        auto_key = keys.iter().position(|k| {
            matches!(k.key_kind(), Some(KeyKind::Unique | KeyKind::Plain)) && leads(k, ai)
        });
        match auto_key {
            Some(i) => pre_keys.push(render_columns(keys[i], &target_of)),
            None => {
                let target = target_of(ai).unwrap_or_else(|| ai.clone());
                pre_keys.push(format!("KEY ({})", quote_ident(&target)));
            }
        }
    }

    let secondary: Vec<String> = keys
        .iter()
        .enumerate()
        .filter(|(i, k)| Some(*i) != auto_key && k.key_kind() != Some(KeyKind::Fulltext))
        .map(|(_, k)| render_columns(k, &target_of))
        .collect();
    let mut body: Vec<String> = columns_sql;
    body.extend(pre_keys);
    let create_with = |keys: &[String], out: &mut TableDdl| {
        let mut parts = body.clone();
        parts.extend(keys.iter().cloned());
        parts.extend(checks_sql.iter().cloned());
        let mut create = format!(
            "CREATE TABLE {target_table} (\n  {}\n)",
            parts.join(",\n  ")
        );
        if !def.options.is_empty() {
            create.push(' ');
            create.push_str(&render(&def.options));
        }
        if !def.partition.is_empty() {
            let missing = def
                .partition_column_slots
                .iter()
                .filter_map(|&i| def.partition[i].ident_value())
                .find(|c| target_of(c).is_none());
            match missing {
                Some(missing) => {
                    let message = format!(
                        "the partitioning uses column {}, which is not selected; the table is created without partitions",
                        quote_ident(&missing)
                    );
                    // Said once, of the form the plan executes by default.
                    if keys.is_empty() {
                        warn(out, ObjectKind::Partitioning, &rel.source, message);
                    }
                }
                None => {
                    create.push('\n');
                    create.push_str(&render_slots(
                        &def.partition,
                        &def.partition_column_slots,
                        &target_of,
                    ));
                }
            }
        }
        create
    };
    let create = create_with(&[], &mut out);
    if !secondary.is_empty() {
        out.inline_create = Some(create_with(&secondary, &mut out));
    }
    let table_ref = ObjectRef::new(ObjectKind::Table, &db.target, &rel.target);
    out.pre_data.push(DdlStatement {
        phase: Phase::PreData,
        object: table_ref.clone(),
        sql: create,
        session: None,
    });

    if !secondary.is_empty() {
        let adds: Vec<String> = secondary.iter().map(|k| format!("ADD {k}")).collect();
        out.indexes.push(DdlStatement {
            phase: Phase::PostData,
            object: ObjectRef::new(ObjectKind::Indexes, &db.target, &rel.target),
            sql: format!("ALTER TABLE {target_table}\n  {}", adds.join(",\n  ")),
            session: None,
        });
    }
    for key in keys
        .iter()
        .filter(|k| k.key_kind() == Some(KeyKind::Fulltext))
    {
        out.indexes.push(DdlStatement {
            phase: Phase::PostData,
            object: table_part(
                ObjectKind::Index,
                db,
                rel,
                key.name.as_deref().unwrap_or("fulltext"),
            ),
            sql: format!(
                "ALTER TABLE {target_table}\n  ADD {}",
                render_columns(key, &target_of)
            ),
            session: None,
        });
    }
    if !foreign_keys.is_empty() {
        out.foreign_keys.push(DdlStatement {
            phase: Phase::PostData,
            object: ObjectRef::new(ObjectKind::ForeignKeys, &db.target, &rel.target),
            sql: format!(
                "ALTER TABLE {target_table}\n  {}",
                foreign_keys
                    .iter()
                    .map(|f| format!("ADD {f}"))
                    .collect::<Vec<_>>()
                    .join(",\n  ")
            ),
            session: None,
        });
    }

    let key_columns = match primary {
        Some(p) => p.columns(),
        None => keys
            .iter()
            .find(|k| {
                k.key_kind() == Some(KeyKind::Unique)
                    && k.columns().iter().all(|c| column_not_null(def, c))
            })
            .map(|k| k.columns())
            .unwrap_or_default(),
    };
    out.plan = Some(TablePlan {
        source_database: db.source.clone(),
        source_table: rel.source.clone(),
        target_database: db.target.clone(),
        target_table: rel.target.clone(),
        columns: column_plans,
        key_columns,
    });
    Ok(out)
}

fn table_part(kind: ObjectKind, db: &DatabaseNames, rel: &RelationNames, part: &str) -> ObjectRef {
    ObjectRef::part(kind, &db.target, &rel.target, part)
}

fn column_not_null(def: &TableDef, column: &str) -> bool {
    def.columns().any(|c| {
        c.name.as_deref().is_some_and(|n| same_name(n, column))
            && matches!(c.kind, ElementKind::Column { not_null: true, .. })
    })
}

/// The element with its column names replaced by their destination names.
fn render_columns(element: &Element, target_of: &dyn Fn(&str) -> Option<String>) -> String {
    render_slots(&element.tokens, &element.column_slots, target_of)
}

fn render_slots(
    tokens: &[Token],
    slots: &[usize],
    target_of: &dyn Fn(&str) -> Option<String>,
) -> String {
    let mut out = String::new();
    for (i, t) in tokens.iter().enumerate() {
        let renamed = slots
            .contains(&i)
            .then(|| t.ident_value())
            .flatten()
            .and_then(|name| target_of(&name));
        match renamed {
            Some(target) => out.push_str(&quote_ident(&target)),
            None => out.push_str(&t.text),
        }
    }
    out
}

/// A foreign key's `CONSTRAINT ... REFERENCES ...` for the destination, the referenced table
/// always qualified; or why it is left out.
fn foreign_key_sql(
    names: &NameMap,
    db: &DatabaseNames,
    element: &Element,
    target_of: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, (String, String)), String> {
    let ElementKind::ForeignKey {
        ref_database,
        ref_table,
        ref_columns,
    } = &element.kind
    else {
        return Err("not a foreign key".to_owned());
    };
    if let Some(missing) = element
        .columns()
        .into_iter()
        .find(|c| target_of(c).is_none())
    {
        return Err(format!(
            "it needs column {}, which is not selected; it is left out",
            quote_ident(&missing)
        ));
    }
    let ref_db_name = ref_database
        .and_then(|i| element.tokens[i].ident_value())
        .unwrap_or_else(|| db.source.clone());
    let ref_table_name = element.tokens[*ref_table]
        .ident_value()
        .ok_or("the referenced table has no name")?;
    let (Some(ref_db), Some(ref_rel)) = (
        names.database(&ref_db_name),
        names.relation(&ref_db_name, &ref_table_name),
    ) else {
        return Err(format!(
            "it references table {}, which is not selected; it is left out (select that table too to keep it)",
            quote_qualified(&ref_db_name, &ref_table_name)
        ));
    };
    let mut ref_targets = Vec::new();
    for &i in ref_columns {
        let column = element.tokens[i].ident_value().unwrap_or_default();
        match ref_rel.column(&column) {
            Some(t) => ref_targets.push((i, t.to_owned())),
            None => {
                return Err(format!(
                    "it references column {} of {}, which is not selected; it is left out",
                    quote_ident(&column),
                    quote_qualified(&ref_db_name, &ref_table_name)
                ));
            }
        }
    }
    let mut sql = String::new();
    for (i, t) in element.tokens.iter().enumerate() {
        if Some(i) == *ref_database {
            sql.push_str(&quote_ident(&ref_db.target));
        } else if i == *ref_table {
            if ref_database.is_none() {
                sql.push_str(&quote_ident(&ref_db.target));
                sql.push('.');
            }
            sql.push_str(&quote_ident(&ref_rel.target));
        } else if let Some((_, target)) = ref_targets.iter().find(|(slot, _)| *slot == i) {
            sql.push_str(&quote_ident(target));
        } else if element.column_slots.contains(&i) {
            let name = t.ident_value().unwrap_or_default();
            sql.push_str(&quote_ident(&target_of(&name).unwrap_or(name)));
        } else {
            sql.push_str(&t.text);
        }
    }
    Ok((sql, (ref_db_name, ref_table_name)))
}
