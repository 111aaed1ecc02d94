//! What schema migration produces: DDL statements as values, in the order a run executes them,
//! the warnings about what was left out or could not be rewritten, and each table's column map
//! for the data copy.

use std::fmt;

use super::quote::{quote_ident, quote_qualified, quote_string};

/// When a statement runs relative to the data copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Databases and tables with their primary key (and any key an AUTO_INCREMENT column needs).
    PreData,
    /// Secondary indexes, foreign keys, routines, views and triggers.
    PostData,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreData => "pre-data",
            Phase::PostData => "post-data",
        }
    }
}

/// The kind of a schema object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Database,
    Table,
    Column,
    Index,
    /// All the secondary (non-FULLTEXT) indexes of one table, added in one ALTER.
    Indexes,
    ForeignKey,
    /// All the foreign keys of one table, added in one ALTER.
    ForeignKeys,
    Check,
    Partitioning,
    View,
    Trigger,
    Procedure,
    Function,
    Sequence,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Database => "database",
            ObjectKind::Table => "table",
            ObjectKind::Column => "column",
            ObjectKind::Index => "index",
            ObjectKind::Indexes => "secondary indexes",
            ObjectKind::ForeignKey => "foreign key",
            ObjectKind::ForeignKeys => "foreign keys",
            ObjectKind::Check => "check constraint",
            ObjectKind::Partitioning => "partitioning of table",
            ObjectKind::View => "view",
            ObjectKind::Trigger => "trigger",
            ObjectKind::Procedure => "procedure",
            ObjectKind::Function => "function",
            ObjectKind::Sequence => "sequence",
        }
    }
}

/// An object by kind and qualified name. For an index, column, check or foreign key, `name` is
/// `table`.`part` so the message points at both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub database: String,
    /// The object's name; for parts of a table, the table.
    pub name: String,
    /// For parts of a table (index, column, check, foreign key): the part's name.
    pub part: Option<String>,
}

impl ObjectRef {
    pub fn new(kind: ObjectKind, database: &str, name: &str) -> ObjectRef {
        ObjectRef {
            kind,
            database: database.to_owned(),
            name: name.to_owned(),
            part: None,
        }
    }

    pub fn part(kind: ObjectKind, database: &str, table: &str, part: &str) -> ObjectRef {
        ObjectRef {
            part: Some(part.to_owned()),
            ..ObjectRef::new(kind, database, table)
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.as_str();
        match (self.kind, &self.part) {
            (ObjectKind::Database, _) => write!(f, "{kind} {}", quote_ident(&self.database)),
            (ObjectKind::Indexes | ObjectKind::ForeignKeys, _) => write!(
                f,
                "{kind} of table {}",
                quote_qualified(&self.database, &self.name)
            ),
            (_, Some(part)) => write!(
                f,
                "{kind} {} of table {}",
                quote_ident(part),
                quote_qualified(&self.database, &self.name)
            ),
            (_, None) => write!(f, "{kind} {}", quote_qualified(&self.database, &self.name)),
        }
    }
}

/// Session settings a statement must run under (a trigger's or routine's stored ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionVars {
    pub sql_mode: String,
    pub character_set_client: String,
    pub collation_connection: String,
}

impl SessionVars {
    /// The `SET SESSION` that establishes these settings; values quoted as strings.
    pub fn set_statement(&self) -> String {
        format!(
            "SET SESSION sql_mode = {}, character_set_client = {}, collation_connection = {}",
            quote_string(&self.sql_mode, true),
            quote_string(&self.character_set_client, true),
            quote_string(&self.collation_connection, true)
        )
    }
}

/// The `sql_mode` tables are created under on the destination: no strict mode and no
/// `NO_ZERO_DATE`, so a default the source accepted (`'0000-00-00'`) is accepted; no engine
/// substitution, so a missing engine is an error rather than a silent InnoDB table.
pub const TABLE_DDL_SQL_MODE: &str = "NO_ENGINE_SUBSTITUTION";

/// One DDL statement for the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlStatement {
    pub phase: Phase,
    /// The object it creates, by destination name.
    pub object: ObjectRef,
    pub sql: String,
    /// Settings to run it under, then reset; `None`: the applier's baseline session.
    pub session: Option<SessionVars>,
}

/// Something the migration left out, or a reference it could not rewrite safely. `object` names
/// the dependent object by its source name; the precheck reports these as warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingWarning {
    pub object: ObjectRef,
    pub message: String,
}

impl fmt::Display for MappingWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// One column as the data copy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPlan {
    pub source: String,
    pub target: String,
    /// A generated column: computed by the destination, never written.
    pub generated: bool,
    /// An INVISIBLE column: `SELECT *` skips it, so name it explicitly.
    pub invisible: bool,
}

/// One table as the data copy sees it: where it comes from, where it goes, and its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    pub source_database: String,
    pub source_table: String,
    pub target_database: String,
    pub target_table: String,
    /// The destination table's columns in order (the selected ones).
    pub columns: Vec<ColumnPlan>,
    /// Source names of the primary key's columns, or of the first unique key's whose columns are
    /// all NOT NULL; empty when the table has neither.
    pub key_columns: Vec<String>,
}

/// A table's `CREATE TABLE` with its secondary (non-FULLTEXT) indexes inline, the form
/// [`SchemaPlan::inline_indexes`] swaps in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineCreate {
    /// The table, by destination name.
    pub table: ObjectRef,
    pub sql: String,
}

/// The whole schema migration of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaPlan {
    /// Every statement, pre-data ones first, each phase in execution order.
    pub statements: Vec<DdlStatement>,
    pub warnings: Vec<MappingWarning>,
    pub tables: Vec<TablePlan>,
    /// For each table with secondary indexes, its `CREATE TABLE` with them inline.
    pub inline: Vec<InlineCreate>,
}

impl SchemaPlan {
    /// Creates the tables `pick` picks with their secondary
    /// indexes inline, and drops the post-data `ALTER TABLE .. ADD` that would add them after
    /// the load. For a small table the deferred build gains nothing: an index kept during a
    /// load of a few MB costs the server less than the ALTER's own fixed cost (measured on the
    /// 2-core benchmark machine: 0.12 s for one ALTER of a 2,000-row table, under load), and an
    /// empty table loaded in one transaction has every index built by the bulk path anyway.
    /// FULLTEXT indexes stay deferred (InnoDB builds them one at a time). Returns how many
    /// tables changed.
    pub fn inline_indexes(&mut self, pick: impl Fn(&TablePlan) -> bool) -> usize {
        let mut changed = 0;
        for inline in &self.inline {
            let (db, table) = (&inline.table.database, &inline.table.name);
            let picked = self
                .tables
                .iter()
                .find(|t| &t.target_database == db && &t.target_table == table)
                .is_some_and(&pick);
            if !picked {
                continue;
            }
            let is = |s: &DdlStatement, kind: ObjectKind| {
                s.object.kind == kind && &s.object.database == db && &s.object.name == table
            };
            if let Some(create) = self
                .statements
                .iter_mut()
                .find(|s| s.phase == Phase::PreData && is(s, ObjectKind::Table))
            {
                create.sql = inline.sql.clone();
                self.statements
                    .retain(|s| !(s.phase == Phase::PostData && is(s, ObjectKind::Indexes)));
                changed += 1;
            }
        }
        changed
    }

    /// The statements of one phase, in order.
    pub fn phase(&self, phase: Phase) -> impl Iterator<Item = &DdlStatement> {
        self.statements.iter().filter(move |s| s.phase == phase)
    }

    /// The plan as a script a `mysql`/`mariadb` client can run: one `-- phase:` header per
    /// phase, the session settings around the statements that need them, and a `DELIMITER` around
    /// statements with a compound body.
    pub fn to_script(&self) -> String {
        let baseline = format!(
            "SET SESSION sql_mode = {}, foreign_key_checks = 0;\n",
            quote_string(TABLE_DDL_SQL_MODE, true)
        );
        let mut out = String::new();
        for phase in [Phase::PreData, Phase::PostData] {
            out.push_str(&format!("-- phase: {}\n", phase.as_str()));
            out.push_str(&baseline);
            for stmt in self.phase(phase) {
                out.push_str(&format!("-- {}\n", stmt.object));
                if let Some(session) = &stmt.session {
                    out.push_str("SET @tidemark_saved_sql_mode = @@session.sql_mode, @tidemark_saved_cs_client = @@session.character_set_client, @tidemark_saved_collation = @@session.collation_connection;\n");
                    out.push_str(&session.set_statement());
                    out.push_str(";\n");
                }
                if stmt.sql.contains(';') {
                    let delimiter = delimiter_for(&stmt.sql);
                    out.push_str(&format!(
                        "DELIMITER {delimiter}\n{}{delimiter}\nDELIMITER ;\n",
                        stmt.sql
                    ));
                } else {
                    out.push_str(&stmt.sql);
                    out.push_str(";\n");
                }
                if stmt.session.is_some() {
                    out.push_str("SET SESSION sql_mode = @tidemark_saved_sql_mode, character_set_client = @tidemark_saved_cs_client, collation_connection = @tidemark_saved_collation;\n");
                }
            }
            out.push('\n');
        }
        out
    }
}

/// A client delimiter that does not occur in `sql`.
fn delimiter_for(sql: &str) -> String {
    let mut delimiter = String::from("$$");
    while sql.contains(&delimiter) {
        delimiter.push('$');
    }
    delimiter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_display_with_quoted_names() {
        let o = ObjectRef::part(ObjectKind::Index, "d", "t`x", "ix");
        assert_eq!(o.to_string(), "index `ix` of table `d`.`t``x`");
        let d = ObjectRef::new(ObjectKind::Database, "d", "");
        assert_eq!(d.to_string(), "database `d`");
    }

    #[test]
    fn inlined_tables_get_their_indexes_in_the_create_and_no_alter() {
        let statement = |phase, kind, name: &str, sql: &str| DdlStatement {
            phase,
            object: ObjectRef::new(kind, "d", name),
            sql: sql.into(),
            session: None,
        };
        let table = |name: &str| TablePlan {
            source_database: "s".into(),
            source_table: name.into(),
            target_database: "d".into(),
            target_table: name.into(),
            columns: Vec::new(),
            key_columns: Vec::new(),
        };
        let mut plan = SchemaPlan {
            statements: vec![
                statement(Phase::PreData, ObjectKind::Table, "a", "CREATE a"),
                statement(Phase::PreData, ObjectKind::Table, "b", "CREATE b"),
                statement(Phase::PostData, ObjectKind::Indexes, "a", "ALTER a"),
                statement(Phase::PostData, ObjectKind::Index, "a", "ALTER a FULLTEXT"),
                statement(Phase::PostData, ObjectKind::Indexes, "b", "ALTER b"),
            ],
            tables: vec![table("a"), table("b")],
            inline: ["a", "b"]
                .iter()
                .map(|t| InlineCreate {
                    table: ObjectRef::new(ObjectKind::Table, "d", t),
                    sql: format!("CREATE {t} WITH KEYS"),
                })
                .collect(),
            ..SchemaPlan::default()
        };
        assert_eq!(plan.inline_indexes(|t| t.source_table == "a"), 1);
        let sql: Vec<&str> = plan.statements.iter().map(|s| s.sql.as_str()).collect();
        // FULLTEXT indexes stay after the load; the other table is untouched.
        assert_eq!(
            sql,
            [
                "CREATE a WITH KEYS",
                "CREATE b",
                "ALTER a FULLTEXT",
                "ALTER b"
            ]
        );
    }

    #[test]
    fn the_script_has_phase_headers_sessions_and_delimiters() {
        let plan = SchemaPlan {
            statements: vec![
                DdlStatement {
                    phase: Phase::PreData,
                    object: ObjectRef::new(ObjectKind::Table, "d", "t"),
                    sql: "CREATE TABLE `d`.`t` (`a` int)".into(),
                    session: None,
                },
                DdlStatement {
                    phase: Phase::PostData,
                    object: ObjectRef::new(ObjectKind::Trigger, "d", "tr"),
                    sql: "CREATE TRIGGER x BEGIN SET @a = '$$'; END".into(),
                    session: Some(SessionVars {
                        sql_mode: "ANSI_QUOTES".into(),
                        character_set_client: "utf8mb4".into(),
                        collation_connection: "utf8mb4_general_ci".into(),
                    }),
                },
            ],
            ..SchemaPlan::default()
        };
        let script = plan.to_script();
        let pre = script.find("-- phase: pre-data").expect("pre header");
        let post = script.find("-- phase: post-data").expect("post header");
        assert!(pre < post);
        assert!(script.contains("CREATE TABLE `d`.`t` (`a` int);\n"));
        assert!(script.contains("DELIMITER $$$\nCREATE TRIGGER x BEGIN SET @a = '$$'; END$$$\n"));
        assert!(script.contains("sql_mode = 'ANSI_QUOTES'"));
    }
}
