//! Reading the selected objects from the source: database defaults, `SHOW CREATE TABLE`, view
//! definitions, triggers and routines with the session settings they were stored with. Values are
//! bound as statement parameters; names in `SHOW CREATE` are quoted by [`quote_qualified`].

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tidemark_core::DatabaseSelection;
use tidemark_core::ident::same_name;

use super::error::SchemaError;
use super::names::{DatabaseNames, NameMap, RelationKind, RelationNames};
use super::plan::{MappingWarning, ObjectKind, ObjectRef};
use super::quote::quote_qualified;

/// A base table's `SHOW CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub name: String,
    pub create_sql: String,
}

/// A view, from information_schema.VIEWS (MariaDB stores the definition fully qualified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceView {
    pub name: String,
    pub definition: String,
    /// `NONE`, `CASCADED` or `LOCAL`.
    pub check_option: String,
    /// `UNDEFINED`, `MERGE` or `TEMPTABLE`.
    pub algorithm: String,
    pub character_set_client: String,
    pub collation_connection: String,
}

/// A trigger, from information_schema.TRIGGERS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTrigger {
    pub name: String,
    pub table: String,
    pub timing: String,
    pub event: String,
    pub order: u64,
    pub statement: String,
    pub sql_mode: String,
    pub character_set_client: String,
    pub collation_connection: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutineKind {
    Procedure,
    Function,
}

/// A stored procedure or function, with its `SHOW CREATE` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRoutine {
    pub name: String,
    pub kind: RoutineKind,
    pub create_sql: String,
    pub sql_mode: String,
    pub character_set_client: String,
    pub collation_connection: String,
}

/// One selected database and its selected objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceDatabase {
    pub name: String,
    pub charset: String,
    pub collation: String,
    pub tables: Vec<SourceTable>,
    pub views: Vec<SourceView>,
    pub triggers: Vec<SourceTrigger>,
    pub routines: Vec<SourceRoutine>,
}

/// Everything selected on the source, with the resolved name mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSchema {
    pub databases: Vec<SourceDatabase>,
    pub names: NameMap,
    /// Objects that exist but are not migrated (e.g. sequences).
    pub warnings: Vec<MappingWarning>,
}

fn read_err(object: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> SchemaError {
    let object = object.into();
    move |e| {
        if crate::error::is_transient(&e) {
            SchemaError::Connection {
                side: "source",
                doing: format!("reading {object}"),
                detail: e.to_string(),
            }
        } else {
            SchemaError::Read {
                object,
                detail: e.to_string(),
            }
        }
    }
}

/// Reads the objects `selection` selects. A database without `tables` brings all its tables,
/// views, triggers, procedures and functions; a table list brings those tables or views, the
/// triggers of those tables, and the database's procedures and functions.
#[tracing::instrument(skip_all, fields(databases = selection.len()))]
pub async fn read_source_schema(
    conn: &mut Conn,
    selection: &[DatabaseSelection],
) -> Result<SourceSchema, SchemaError> {
    // The reading session prints names with backticks and strings with backslash escapes,
    // whatever the server's default sql_mode says; the tokenizer expects exactly that.
    conn.query_drop("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', sql_quote_show_create = 1")
        .await
        .map_err(read_err("the source session"))?;
    let mut schema = SourceSchema {
        databases: Vec::new(),
        names: NameMap::default(),
        warnings: Vec::new(),
    };
    for sel in selection {
        let (db, names) = read_database(conn, sel, &mut schema.warnings).await?;
        schema.databases.push(db);
        schema.names.databases.push(names);
    }
    Ok(schema)
}

async fn read_database(
    conn: &mut Conn,
    sel: &DatabaseSelection,
    warnings: &mut Vec<MappingWarning>,
) -> Result<(SourceDatabase, DatabaseNames), SchemaError> {
    let name = &sel.database;
    let object = || format!("database `{name}`");
    let defaults: Option<(String, String)> = conn
        .exec_first(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
             FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (name,),
        )
        .await
        .map_err(read_err(object()))?;
    let Some((charset, collation)) = defaults else {
        return Err(SchemaError::DatabaseNotFound {
            database: name.clone(),
        });
    };
    let relations: Vec<(String, String)> = conn
        .exec(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (name,),
        )
        .await
        .map_err(read_err(object()))?;

    let mut names = DatabaseNames {
        source: name.clone(),
        target: sel.target_name().to_owned(),
        relations: Vec::new(),
    };
    let kind_of = |table_type: &str| match table_type {
        "VIEW" => Some(RelationKind::View),
        // MariaDB reports system-versioned tables apart; they are base tables all the same.
        "BASE TABLE" | "SYSTEM VERSIONED" => Some(RelationKind::Table),
        _ => None,
    };
    match &sel.tables {
        None => {
            for (table, table_type) in &relations {
                match kind_of(table_type) {
                    Some(kind) => names.relations.push(RelationNames {
                        source: table.clone(),
                        target: table.clone(),
                        kind,
                        columns: None,
                    }),
                    None => warnings.push(MappingWarning {
                        object: ObjectRef::new(ObjectKind::Sequence, name, table),
                        message: format!(
                            "it is a {} and is not migrated; create it on the destination by hand",
                            table_type.to_lowercase()
                        ),
                    }),
                }
            }
        }
        Some(tables) => {
            for t in tables {
                let found = relations
                    .iter()
                    .find(|(n, _)| *n == t.name)
                    .or_else(|| relations.iter().find(|(n, _)| same_name(n, &t.name)));
                let Some((source, kind)) =
                    found.and_then(|(n, ty)| kind_of(ty).map(|k| (n.clone(), k)))
                else {
                    return Err(SchemaError::TableNotFound {
                        database: name.clone(),
                        table: t.name.clone(),
                    });
                };
                names.relations.push(RelationNames {
                    target: t.rename.clone().unwrap_or_else(|| source.clone()),
                    source,
                    kind,
                    columns: t.columns.as_ref().map(|cols| {
                        cols.iter()
                            .map(|c| (c.name.clone(), c.target_name().to_owned()))
                            .collect()
                    }),
                });
            }
        }
    }

    let mut db = SourceDatabase {
        name: name.clone(),
        charset,
        collation,
        tables: Vec::new(),
        views: Vec::new(),
        triggers: Vec::new(),
        routines: Vec::new(),
    };
    // Every selected table's SHOW CREATE TABLE, many to a round trip.
    let tables: Vec<&RelationNames> = names
        .relations
        .iter()
        .filter(|r| r.kind == RelationKind::Table)
        .collect();
    let statements: Vec<Vec<u8>> = tables
        .iter()
        .map(|rel| format!("SHOW CREATE TABLE {}", quote_qualified(name, &rel.source)).into_bytes())
        .collect();
    let shown = crate::batch::read_all(conn, &statements)
        .await
        .map_err(|e| {
            let qualified = quote_qualified(name, &tables[e.index].source);
            read_err(format!("table {qualified}"))(e.error)
        })?;
    for (rel, rows) in tables.iter().zip(shown) {
        let create_sql = rows
            .into_iter()
            .next()
            .and_then(|row| row.get_opt::<String, usize>(1))
            .and_then(Result::ok);
        let Some(create_sql) = create_sql else {
            return Err(SchemaError::TableNotFound {
                database: name.clone(),
                table: rel.source.clone(),
            });
        };
        db.tables.push(SourceTable {
            name: rel.source.clone(),
            create_sql,
        });
    }
    db.views = read_views(conn, &names).await?;
    db.triggers = read_triggers(conn, &names).await?;
    // Routines belong to the database, not to a table: they come with any selection of it, and
    // the plan warns about those that use tables left out.
    db.routines = read_routines(conn, name).await?;
    Ok((db, names))
}

async fn read_views(
    conn: &mut Conn,
    names: &DatabaseNames,
) -> Result<Vec<SourceView>, SchemaError> {
    let db = &names.source;
    // ALGORITHM is MariaDB's; MySQL 8 would need SHOW CREATE VIEW for it.
    type Row = (String, String, String, String, String, String);
    let rows: Vec<Row> = conn
        .exec(
            "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, ALGORITHM, \
             CHARACTER_SET_CLIENT, COLLATION_CONNECTION \
             FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (db,),
        )
        .await
        .map_err(read_err(format!("the views of database `{db}`")))?;
    let mut views = Vec::new();
    for (name, definition, check_option, algorithm, cs, coll) in rows {
        let selected = names
            .relation(&name)
            .is_some_and(|r| r.kind == RelationKind::View);
        if !selected {
            continue;
        }
        if definition.trim().is_empty() {
            return Err(SchemaError::Read {
                object: format!("view {}", quote_qualified(db, &name)),
                detail: "the server shows an empty definition".into(),
            });
        }
        views.push(SourceView {
            name,
            definition,
            check_option,
            algorithm,
            character_set_client: cs,
            collation_connection: coll,
        });
    }
    Ok(views)
}

/// The triggers of one database (`?`), by EVENT_OBJECT_SCHEMA (a trigger lives in its table's
/// database): that is the column the server looks triggers up by. Filtered by TRIGGER_SCHEMA
/// instead, MariaDB opens every table of every database on the server ("Scanned all
/// databases"), 8.6 ms with 480 databases here and far more on a busy server; this way it opens
/// only the database's own (0.3 ms).
pub const TRIGGERS_SQL: &str = "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, \
     EVENT_MANIPULATION, ACTION_ORDER, ACTION_STATEMENT, SQL_MODE, CHARACTER_SET_CLIENT, \
     COLLATION_CONNECTION FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? \
     ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER";

async fn read_triggers(
    conn: &mut Conn,
    names: &DatabaseNames,
) -> Result<Vec<SourceTrigger>, SchemaError> {
    let db = &names.source;
    let rows: Vec<mysql_async::Row> = conn
        .exec(TRIGGERS_SQL, (db,))
        .await
        .map_err(read_err(format!("the triggers of database `{db}`")))?;
    let mut triggers = Vec::new();
    for row in rows {
        let get = |i: usize| -> Result<String, SchemaError> {
            row.get_opt::<String, usize>(i)
                .and_then(Result::ok)
                .ok_or_else(|| SchemaError::Read {
                    object: format!("the triggers of database `{db}`"),
                    detail: format!("column {i} of information_schema.TRIGGERS is not text"),
                })
        };
        let trigger = SourceTrigger {
            name: get(0)?,
            table: get(1)?,
            timing: get(2)?,
            event: get(3)?,
            order: row
                .get_opt::<u64, usize>(4)
                .and_then(Result::ok)
                .unwrap_or(0),
            statement: get(5)?,
            sql_mode: get(6)?,
            character_set_client: get(7)?,
            collation_connection: get(8)?,
        };
        let selected = names
            .relation(&trigger.table)
            .is_some_and(|r| r.kind == RelationKind::Table);
        if selected {
            triggers.push(trigger);
        }
    }
    Ok(triggers)
}

async fn read_routines(conn: &mut Conn, db: &str) -> Result<Vec<SourceRoutine>, SchemaError> {
    let list: Vec<(String, String)> = conn
        .exec(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE IN ('PROCEDURE', 'FUNCTION') \
             ORDER BY ROUTINE_TYPE DESC, ROUTINE_NAME",
            (db,),
        )
        .await
        .map_err(read_err(format!("the routines of database `{db}`")))?;
    let mut routines = Vec::new();
    for (name, routine_type) in list {
        let kind = if routine_type == "FUNCTION" {
            RoutineKind::Function
        } else {
            RoutineKind::Procedure
        };
        let qualified = quote_qualified(db, &name);
        let object = format!("{} {qualified}", routine_type.to_lowercase());
        // Name, sql_mode, text, character_set_client, collation_connection, database collation.
        type Row = (
            String,
            String,
            Option<String>,
            String,
            String,
            Option<String>,
        );
        let row: Option<Row> = conn
            .query_first(format!("SHOW CREATE {routine_type} {qualified}"))
            .await
            .map_err(read_err(object.clone()))?;
        let Some((_, sql_mode, Some(create_sql), cs, coll, _)) = row else {
            return Err(SchemaError::Read {
                object,
                detail: "the server does not show its definition to this user".into(),
            });
        };
        routines.push(SourceRoutine {
            name,
            kind,
            create_sql,
            sql_mode,
            character_set_client: cs,
            collation_connection: coll,
        });
    }
    Ok(routines)
}
