//! Reading a server's facts, once per endpoint: variables, character sets, collations, engines,
//! the user's grants, and the metadata of the databases the task concerns. Everything is read from
//! `information_schema`, `SHOW GRANTS` and server variables, with values bound as parameters; the
//! only table scans are on the source: the largest row of tables with BLOB/TEXT/JSON columns
//! (one scan each) and whether an incremental timestamp column holds NULL (stops at the first).

use std::collections::BTreeSet;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tidemark_core::TaskSpec;

use super::checks::selected_tables;
use super::facts::{
    ColumnFacts, ForeignKeyFacts, Hosting, KeyFacts, RoutineFacts, SchemaFacts, ServerFacts,
    ServerVariables, TableFacts, TableKind, TriggerFacts,
};
use super::grants::Grants;
use super::sql::{qualified, quote_ident};
use crate::connect::ServerInfo;
use crate::error::FactsError;

/// InnoDB's limit on a row without off-page (BLOB/TEXT) columns.
pub const ROW_LIMIT_WITHOUT_LOBS: u64 = 65_535;

/// The names and tables of one database's (`?`) triggers, looked up by EVENT_OBJECT_SCHEMA as
/// the schema reader does (see [`crate::schema::catalog::TRIGGERS_SQL`]).
pub const TRIGGER_NAMES_SQL: &str = "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE \
     FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? ORDER BY TRIGGER_NAME";

/// Which side is read, and so which databases and scans.
#[derive(Debug, Clone, Copy)]
pub enum Side<'a> {
    /// The selected databases, with the source-only scans.
    Source(&'a TaskSpec),
    /// These target databases (those that exist), with whether each table holds rows.
    Destination(&'a [String]),
}

struct Reader<'c> {
    conn: &'c mut Conn,
    endpoint: String,
}

impl Reader<'_> {
    fn err(&self, what: &'static str) -> impl Fn(mysql_async::Error) -> FactsError + '_ {
        move |e| FactsError::Query {
            endpoint: self.endpoint.clone(),
            what,
            detail: e.to_string(),
        }
    }
}

/// Reads everything the checks need from one open session.
pub async fn read_facts(
    conn: &mut Conn,
    endpoint: &str,
    info: ServerInfo,
    side: Side<'_>,
) -> Result<ServerFacts, FactsError> {
    let mut r = Reader {
        conn,
        endpoint: endpoint.to_owned(),
    };
    type Vars = (
        String,
        u64,
        u64,
        u64,
        u64,
        u64,
        String,
        String,
        String,
        String,
        u64,
        String,
    );
    let vars: Option<Vars> = r
        .conn
        .query_first(
            "SELECT CURRENT_USER(), @@lower_case_table_names, @@local_infile, \
             @@max_allowed_packet, @@log_bin, @@log_bin_trust_function_creators, @@sql_mode, \
             @@time_zone, @@system_time_zone, COALESCE(@@basedir, ''), \
             @@innodb_autoinc_lock_mode, UPPER(@@binlog_format)",
        )
        .await
        .map_err(r.err("server variables"))?;
    let Some((
        current_user,
        lctn,
        infile,
        packet,
        log_bin,
        trust,
        sql_mode,
        tz,
        system_tz,
        basedir,
        autoinc_lock_mode,
        binlog_format,
    )) = vars
    else {
        return Err(r.err("server variables")(mysql_async::Error::Other(
            "no row returned".into(),
        )));
    };
    let (user, host) = current_user
        .rsplit_once('@')
        .map(|(u, h)| (u.to_owned(), h.to_owned()))
        .unwrap_or((current_user.clone(), String::new()));
    // Readable only with privileges on `mysql`; unknown otherwise.
    let auth_plugin: Option<String> = r
        .conn
        .exec_first(
            "SELECT plugin FROM mysql.user WHERE User = ? AND Host = ?",
            (user, host),
        )
        .await
        .ok()
        .flatten();
    let charsets = r
        .strings(
            "SELECT LOWER(CHARACTER_SET_NAME) FROM information_schema.CHARACTER_SETS",
            "character sets",
        )
        .await?;
    // MariaDB 10.10+ lists the UCA 14 collations as `uca1400_ai_ci`, once for many character
    // sets, while tables and columns name them `utf8mb4_uca1400_ai_ci`: keep both forms.
    let pairs: Vec<(String, String)> = r
        .conn
        .query(
            "SELECT LOWER(COLLATION_NAME), LOWER(CHARACTER_SET_NAME) \
             FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
        )
        .await
        .map_err(r.err("collations"))?;
    let mut collations = BTreeSet::new();
    for (collation, charset) in pairs {
        if !collation.starts_with(&format!("{charset}_")) && collation != charset {
            collations.insert(format!("{charset}_{collation}"));
        }
        collations.insert(collation);
    }
    let engines = r
        .strings(
            "SELECT UPPER(ENGINE) FROM information_schema.ENGINES WHERE SUPPORT IN ('YES', 'DEFAULT')",
            "storage engines",
        )
        .await?;
    let grant_lines: Vec<String> = r
        .conn
        .query("SHOW GRANTS")
        .await
        .map_err(r.err("SHOW GRANTS"))?;
    let databases = r.strings("SHOW DATABASES", "databases").await?;
    // Exists only on Aurora MySQL (an empty answer elsewhere).
    let aurora: Option<(String, String)> = r
        .conn
        .query_first("SHOW VARIABLES LIKE 'aurora_version'")
        .await
        .map_err(r.err("server variables"))?;
    let hosting = Hosting::detect(
        &basedir,
        aurora.as_ref().map(|(_, v)| v.as_str()),
        &r.endpoint,
    );
    let variables = ServerVariables {
        lower_case_table_names: u8::try_from(lctn).unwrap_or(u8::MAX),
        local_infile: infile != 0,
        max_allowed_packet: packet,
        log_bin: log_bin != 0,
        log_bin_trust_function_creators: trust != 0,
        sql_mode,
        time_zone: tz,
        system_time_zone: system_tz,
        innodb_autoinc_lock_mode: autoinc_lock_mode,
        binlog_format,
        hosting,
    };
    let mut facts = ServerFacts {
        info,
        current_user,
        auth_plugin,
        variables,
        charsets,
        collations,
        engines,
        grants: Grants::parse(grant_lines.iter().map(String::as_str)),
        databases,
        schemas: Vec::new(),
    };
    let wanted: Vec<String> = match side {
        Side::Source(spec) => spec.objects.iter().map(|d| d.database.clone()).collect(),
        Side::Destination(targets) => targets.to_vec(),
    };
    for name in wanted {
        let found = facts
            .databases
            .iter()
            .find(|d| **d == name || (facts.folds_case() && d.eq_ignore_ascii_case(&name)))
            .cloned();
        if let Some(found) = found
            && !facts.schemas.iter().any(|s| s.name == found)
        {
            let schema = r.schema(&found).await?;
            facts.schemas.push(schema);
        }
    }
    match side {
        Side::Source(spec) => r.source_scans(spec, &mut facts).await?,
        Side::Destination(_) => r.destination_rows(&mut facts).await?,
    }
    Ok(facts)
}

fn is_lob(data_type: &str) -> bool {
    data_type.ends_with("blob") || data_type.ends_with("text") || data_type == "json"
}

impl Reader<'_> {
    async fn strings(
        &mut self,
        sql: &str,
        what: &'static str,
    ) -> Result<BTreeSet<String>, FactsError> {
        let rows: Vec<String> = self.conn.query(sql).await.map_err(self.err(what))?;
        Ok(rows.into_iter().collect())
    }

    async fn schema(&mut self, db: &str) -> Result<SchemaFacts, FactsError> {
        let (charset, collation): (String, String) = self
            .conn
            .exec_first(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
                 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (db,),
            )
            .await
            .map_err(self.err("databases"))?
            .unwrap_or_default();
        type TableRow = (String, String, Option<String>, Option<String>, Option<u64>);
        let rows: Vec<TableRow> = self
            .conn
            .exec(
                "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, TABLE_ROWS \
                 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
                (db,),
            )
            .await
            .map_err(self.err("tables"))?;
        let mut tables: Vec<TableFacts> = rows
            .into_iter()
            .map(|(name, kind, engine, collation, rows)| TableFacts {
                name,
                kind: if kind == "VIEW" {
                    TableKind::View
                } else {
                    TableKind::Table
                },
                engine: engine.map(|e| e.to_ascii_uppercase()),
                collation: collation.map(|c| c.to_lowercase()),
                rows_estimate: rows.unwrap_or(0),
                ..TableFacts::default()
            })
            .collect();
        type ColumnRow = (
            String,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
            String,
        );
        let columns: Vec<ColumnRow> = self
            .conn
            .exec(
                "SELECT TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), IS_NULLABLE, \
                 LOWER(CHARACTER_SET_NAME), LOWER(COLLATION_NAME), UPPER(EXTRA) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 ORDER BY TABLE_NAME, ORDINAL_POSITION",
                (db,),
            )
            .await
            .map_err(self.err("columns"))?;
        for (table, name, data_type, nullable, charset, collation, extra) in columns {
            if let Some(t) = tables.iter_mut().find(|t| t.name == table) {
                t.auto_increment |= extra.contains("AUTO_INCREMENT");
                t.columns.push(ColumnFacts {
                    name,
                    data_type,
                    nullable: nullable == "YES",
                    charset,
                    collation,
                    has_nulls: None,
                });
            }
        }
        let keys: Vec<(String, String, i64, String)> = self
            .conn
            .exec(
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME \
                 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
                 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
                (db,),
            )
            .await
            .map_err(self.err("indexes"))?;
        for (table, index, non_unique, column) in keys {
            let Some(t) = tables.iter_mut().find(|t| t.name == table) else {
                continue;
            };
            match t.keys.iter_mut().find(|k| k.name == index) {
                Some(k) => k.columns.push(column),
                None => t.keys.push(KeyFacts {
                    name: index,
                    unique: non_unique == 0,
                    columns: vec![column],
                }),
            }
        }
        let fks: Vec<(String, String, String, String)> = self
            .conn
            .exec(
                "SELECT TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME \
                 FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?",
                (db,),
            )
            .await
            .map_err(self.err("foreign keys"))?;
        for (table, name, ref_db, ref_table) in fks {
            if let Some(t) = tables.iter_mut().find(|t| t.name == table) {
                t.foreign_keys.push(ForeignKeyFacts {
                    name,
                    references: format!("{ref_db}.{ref_table}"),
                });
            }
        }
        let triggers: Vec<(String, String)> = self
            .conn
            .exec(TRIGGER_NAMES_SQL, (db,))
            .await
            .map_err(self.err("triggers"))?;
        let routines: Vec<(String, String, String, i64)> = self
            .conn
            .exec(
                "SELECT ROUTINE_NAME, ROUTINE_TYPE, DEFINER, ROUTINE_DEFINITION IS NOT NULL \
                 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME",
                (db,),
            )
            .await
            .map_err(self.err("routines"))?;
        Ok(SchemaFacts {
            name: db.to_owned(),
            charset: charset.to_lowercase(),
            collation: collation.to_lowercase(),
            tables,
            triggers: triggers
                .into_iter()
                .map(|(name, table)| TriggerFacts { name, table })
                .collect(),
            routines: routines
                .into_iter()
                .map(|(name, kind, definer, readable)| RoutineFacts {
                    name,
                    kind,
                    definer,
                    definition_readable: readable != 0,
                })
                .collect(),
        })
    }

    /// The largest row of each selected table, and NULLs in incremental timestamp columns.
    async fn source_scans(
        &mut self,
        spec: &TaskSpec,
        facts: &mut ServerFacts,
    ) -> Result<(), FactsError> {
        struct Scan {
            db: String,
            table: String,
            lob_columns: Option<Vec<String>>,
            nullable_ts: Option<String>,
        }
        let scans: Vec<Scan> = selected_tables(spec, facts)
            .iter()
            .filter(|t| !t.is_view())
            .map(|t| {
                let columns = t.columns();
                Scan {
                    db: t.database.database.clone(),
                    table: t.facts.name.clone(),
                    lob_columns: columns
                        .iter()
                        .any(|c| is_lob(&c.data_type))
                        .then(|| columns.iter().map(|c| c.name.clone()).collect()),
                    nullable_ts: t
                        .timestamp_column()
                        .filter(|c| c.nullable)
                        .map(|c| c.name.clone()),
                }
            })
            .collect();
        for scan in scans {
            let from = qualified(&scan.db, &scan.table);
            let largest = match &scan.lob_columns {
                None => ROW_LIMIT_WITHOUT_LOBS,
                Some(columns) => {
                    let sum = columns
                        .iter()
                        .map(|c| format!("COALESCE(LENGTH({}), 0)", quote_ident(c)))
                        .collect::<Vec<_>>()
                        .join(" + ");
                    let sql =
                        format!("SELECT CAST(COALESCE(MAX({sum}), 0) AS UNSIGNED) FROM {from}");
                    let bytes: Option<u64> = self
                        .conn
                        .query_first(sql)
                        .await
                        .map_err(self.err("the largest row"))?;
                    bytes.unwrap_or(0)
                }
            };
            let has_nulls = match &scan.nullable_ts {
                None => None,
                Some(column) => {
                    let sql = format!(
                        "SELECT EXISTS (SELECT 1 FROM {from} WHERE {} IS NULL)",
                        quote_ident(column)
                    );
                    let found: Option<i64> = self
                        .conn
                        .query_first(sql)
                        .await
                        .map_err(self.err("timestamp NULLs"))?;
                    Some(found.unwrap_or(0) != 0)
                }
            };
            let Some(t) = facts
                .schemas
                .iter_mut()
                .find(|s| s.name == scan.db || s.name.eq_ignore_ascii_case(&scan.db))
                .and_then(|s| s.tables.iter_mut().find(|t| t.name == scan.table))
            else {
                continue;
            };
            t.largest_row_bytes = Some(largest);
            if let (Some(column), Some(nulls)) = (&scan.nullable_ts, has_nulls)
                && let Some(c) = t.columns.iter_mut().find(|c| &c.name == column)
            {
                c.has_nulls = Some(nulls);
            }
        }
        Ok(())
    }

    /// Whether each base table in the target databases holds a row.
    async fn destination_rows(&mut self, facts: &mut ServerFacts) -> Result<(), FactsError> {
        for schema in &mut facts.schemas {
            for t in schema
                .tables
                .iter_mut()
                .filter(|t| t.kind == TableKind::Table)
            {
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {})",
                    qualified(&schema.name, &t.name)
                );
                let found: Option<i64> = self
                    .conn
                    .query_first(sql)
                    .await
                    .map_err(self.err("whether target tables hold rows"))?;
                t.has_rows = Some(found.unwrap_or(0) != 0);
            }
        }
        Ok(())
    }
}
