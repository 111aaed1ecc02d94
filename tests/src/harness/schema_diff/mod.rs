//! Schema equivalence: compare one database on two servers through information_schema, after
//! mapping source names to destination names, and report every difference.
//!
//! It is written apart from the engine's schema code on purpose (its own small tokenizer, its own
//! queries), so that a bug in the engine cannot hide itself here.
//!
//! What it compares, per kind: the database (charset, collation); tables (engine, row format,
//! collation, comment, create options, AUTO_INCREMENT); columns (position, type, nullability,
//! default, charset, collation, extra, generation expression, comment); indexes (uniqueness, type,
//! key parts with prefix length and order, comment); foreign keys (columns, referenced table and
//! columns, rules); CHECK constraints; partitions (method, expression, description, order); views
//! (definition, check option, algorithm, security); triggers (event, timing, order,
//! statement, sql_mode, character sets); routines (type, return type, body, determinism, data
//! access, security, sql_mode, character sets, comment) and their parameters.
//!
//! DEFINERs are not compared (Tidemark drops them); security is expected to be INVOKER on the
//! destination for views and routines.

use std::collections::BTreeMap;
use std::fmt;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::server::Server;

mod mapping;
mod normalize;

pub use mapping::NameMapping;
pub use normalize::normalize_sql;

/// One attribute that differs (or exists on one side only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `database`, `table`, `column`, `index`, `foreign_key`, `check`, `partition`, `view`,
    /// `trigger`, `routine`, `parameter`.
    pub kind: String,
    /// The object in destination names, e.g. `shop_dw.orders_v2.memo`.
    pub object: String,
    /// The attribute, e.g. `COLUMN_TYPE`, or `exists`.
    pub attribute: String,
    pub source: Option<String>,
    pub destination: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_owned());
        write!(
            f,
            "{} {} {}: source {} / destination {}",
            self.kind,
            self.object,
            self.attribute,
            show(&self.source),
            show(&self.destination)
        )
    }
}

type Key = (String, String, String);

/// Everything compared for one database, keyed by (kind, object, attribute), in destination names.
#[derive(Debug, Default, Clone)]
pub struct SchemaSnapshot {
    pub entries: BTreeMap<Key, String>,
}

/// Compares database `source_db` on `source` with its mapped name on `destination`.
pub async fn compare(
    source: &Server,
    destination: &Server,
    source_db: &str,
    mapping: &NameMapping,
) -> Vec<Difference> {
    let src = snapshot(source, source_db, mapping, Side::Source).await;
    let dst_db = mapping.database(source_db);
    let dst = snapshot(
        destination,
        &dst_db,
        &NameMapping::default(),
        Side::Destination,
    )
    .await;
    diff(&src, &dst)
}

/// The differences between two snapshots, in key order.
pub fn diff(src: &SchemaSnapshot, dst: &SchemaSnapshot) -> Vec<Difference> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&Key> =
        src.entries.keys().chain(dst.entries.keys()).collect();
    for key in keys {
        let (a, b) = (src.entries.get(key), dst.entries.get(key));
        if a != b {
            out.push(Difference {
                kind: key.0.clone(),
                object: key.1.clone(),
                attribute: key.2.clone(),
                source: a.cloned(),
                destination: b.cloned(),
            });
        }
    }
    out
}

/// Which side a snapshot is taken on (the source side is mapped to destination names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

/// Reads one database's schema. On the source side, names and SQL are mapped to destination
/// names, and the security of views and routines is taken as INVOKER (what Tidemark makes).
pub async fn snapshot(
    server: &Server,
    db: &str,
    mapping: &NameMapping,
    side: Side,
) -> SchemaSnapshot {
    let mut conn = server.conn().await;
    let mut snap = SchemaSnapshot::default();
    let m = mapping;
    let new_db = m.database(db);
    let mut put = |kind: &str, object: String, attribute: &str, value: String| {
        snap.entries
            .insert((kind.to_owned(), object, attribute.to_owned()), value);
    };

    for row in rows(&mut conn, "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", db).await {
        put("database", new_db.clone(), "exists", "yes".into());
        put("database", new_db.clone(), "DEFAULT_CHARACTER_SET_NAME", text(&row, 0));
        put("database", new_db.clone(), "DEFAULT_COLLATION_NAME", text(&row, 1));
    }

    let sql = "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, ROW_FORMAT, TABLE_COLLATION, TABLE_COMMENT, \
               CREATE_OPTIONS, AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?";
    for row in rows(&mut conn, sql, db).await {
        let table = text(&row, 0);
        let obj = format!("{new_db}.{}", m.table(db, &table));
        let attrs = [
            "TABLE_TYPE",
            "ENGINE",
            "ROW_FORMAT",
            "TABLE_COLLATION",
            "TABLE_COMMENT",
        ];
        put("table", obj.clone(), "exists", "yes".into());
        for (i, attr) in attrs.iter().enumerate() {
            put("table", obj.clone(), attr, text(&row, i + 1));
        }
        // `partitioned` is reported by the partition rows themselves.
        let options = text(&row, 6).replace("partitioned", "").trim().to_owned();
        put("table", obj.clone(), "CREATE_OPTIONS", options);
        put("table", obj, "AUTO_INCREMENT", text(&row, 7));
    }

    let sql = "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, \
               COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, GENERATION_EXPRESSION, \
               COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
               AND TABLE_NAME IN (SELECT TABLE_NAME FROM information_schema.TABLES \
               WHERE TABLE_SCHEMA = COLUMNS.TABLE_SCHEMA AND TABLE_TYPE = 'BASE TABLE')";
    for row in rows(&mut conn, sql, db).await {
        let (table, column) = (text(&row, 0), text(&row, 1));
        let obj = format!(
            "{new_db}.{}.{}",
            m.table(db, &table),
            m.column(db, &table, &column)
        );
        put("column", obj.clone(), "exists", "yes".into());
        let attrs = [
            "ORDINAL_POSITION",
            "COLUMN_DEFAULT",
            "IS_NULLABLE",
            "COLUMN_TYPE",
            "CHARACTER_SET_NAME",
            "COLLATION_NAME",
            "EXTRA",
        ];
        for (i, attr) in attrs.iter().enumerate() {
            put("column", obj.clone(), attr, text(&row, i + 2));
        }
        put(
            "column",
            obj.clone(),
            "GENERATION_EXPRESSION",
            m.sql(db, &text(&row, 9)),
        );
        put("column", obj, "COLUMN_COMMENT", text(&row, 10));
    }

    let sql = "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, INDEX_TYPE, COLUMN_NAME, SUB_PART, \
               COLLATION, INDEX_COMMENT FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
               ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";
    let mut parts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows(&mut conn, sql, db).await {
        let table = text(&row, 0);
        let obj = format!("{new_db}.{}.{}", m.table(db, &table), text(&row, 1));
        put("index", obj.clone(), "NON_UNIQUE", text(&row, 2));
        put("index", obj.clone(), "INDEX_TYPE", text(&row, 3));
        put("index", obj.clone(), "INDEX_COMMENT", text(&row, 7));
        let column = m.column(db, &table, &text(&row, 4));
        parts
            .entry(obj)
            .or_default()
            .push(format!("{column}({}){}", text(&row, 5), text(&row, 6)));
    }
    for (obj, cols) in parts {
        put("index", obj, "columns", cols.join(","));
    }

    let sql = "SELECT rc.TABLE_NAME, rc.CONSTRAINT_NAME, rc.REFERENCED_TABLE_NAME, rc.UPDATE_RULE, \
               rc.DELETE_RULE, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME \
               FROM information_schema.REFERENTIAL_CONSTRAINTS rc \
               JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA \
               AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME \
               WHERE rc.CONSTRAINT_SCHEMA = ? ORDER BY rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION";
    let mut fk_cols: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows(&mut conn, sql, db).await {
        let (table, referenced) = (text(&row, 0), text(&row, 2));
        let obj = format!("{new_db}.{}.{}", m.table(db, &table), text(&row, 1));
        put(
            "foreign_key",
            obj.clone(),
            "REFERENCED_TABLE_NAME",
            m.table(db, &referenced),
        );
        put("foreign_key", obj.clone(), "UPDATE_RULE", text(&row, 3));
        put("foreign_key", obj.clone(), "DELETE_RULE", text(&row, 4));
        fk_cols.entry(obj).or_default().push(format!(
            "{}->{}",
            m.column(db, &table, &text(&row, 5)),
            m.column(db, &referenced, &text(&row, 6))
        ));
    }
    for (obj, cols) in fk_cols {
        put("foreign_key", obj, "columns", cols.join(","));
    }

    let sql = "SELECT TABLE_NAME, CONSTRAINT_NAME, LEVEL, CHECK_CLAUSE \
               FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?";
    for row in rows(&mut conn, sql, db).await {
        let (table, name) = (text(&row, 0), text(&row, 1));
        // A column-level check is named after its column, so it follows the column's rename.
        let name = if text(&row, 2) == "Column" {
            m.column(db, &table, &name)
        } else {
            name
        };
        let obj = format!("{new_db}.{}.{name}", m.table(db, &table));
        // LEVEL (column or table) is not compared: both forms constrain the same rows.
        put("check", obj, "CHECK_CLAUSE", m.sql(db, &text(&row, 3)));
    }

    let sql = "SELECT TABLE_NAME, PARTITION_NAME, SUBPARTITION_NAME, PARTITION_ORDINAL_POSITION, \
               PARTITION_METHOD, PARTITION_EXPRESSION, SUBPARTITION_METHOD, SUBPARTITION_EXPRESSION, \
               PARTITION_DESCRIPTION, PARTITION_COMMENT FROM information_schema.PARTITIONS \
               WHERE TABLE_SCHEMA = ? AND PARTITION_NAME IS NOT NULL";
    for row in rows(&mut conn, sql, db).await {
        let obj = format!(
            "{new_db}.{}.{}{}",
            m.table(db, &text(&row, 0)),
            text(&row, 1),
            opt(&row, 2).map(|s| format!(".{s}")).unwrap_or_default()
        );
        put(
            "partition",
            obj.clone(),
            "PARTITION_ORDINAL_POSITION",
            text(&row, 3),
        );
        put("partition", obj.clone(), "PARTITION_METHOD", text(&row, 4));
        put(
            "partition",
            obj.clone(),
            "PARTITION_EXPRESSION",
            m.sql(db, &text(&row, 5)),
        );
        put(
            "partition",
            obj.clone(),
            "SUBPARTITION_METHOD",
            text(&row, 6),
        );
        put(
            "partition",
            obj.clone(),
            "SUBPARTITION_EXPRESSION",
            m.sql(db, &text(&row, 7)),
        );
        put(
            "partition",
            obj.clone(),
            "PARTITION_DESCRIPTION",
            text(&row, 8),
        );
        put("partition", obj, "PARTITION_COMMENT", text(&row, 9));
    }

    let sql = "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, IS_UPDATABLE, SECURITY_TYPE, \
               ALGORITHM, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.VIEWS \
               WHERE TABLE_SCHEMA = ?";
    for row in rows(&mut conn, sql, db).await {
        let obj = format!("{new_db}.{}", m.table(db, &text(&row, 0)));
        put(
            "view",
            obj.clone(),
            "VIEW_DEFINITION",
            m.sql(db, &text(&row, 1)),
        );
        put("view", obj.clone(), "CHECK_OPTION", text(&row, 2));
        // IS_UPDATABLE follows from the definition and the algorithm, compared above and below.
        put(
            "view",
            obj.clone(),
            "SECURITY_TYPE",
            security(side, &text(&row, 4)),
        );
        put("view", obj, "ALGORITHM", text(&row, 5));
    }

    let sql = "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_ORDER, \
               ACTION_TIMING, ACTION_STATEMENT, SQL_MODE, CHARACTER_SET_CLIENT, \
               COLLATION_CONNECTION, DATABASE_COLLATION FROM information_schema.TRIGGERS \
               WHERE TRIGGER_SCHEMA = ?";
    for row in rows(&mut conn, sql, db).await {
        let obj = format!("{new_db}.{}", text(&row, 0));
        put("trigger", obj.clone(), "exists", "yes".into());
        put("trigger", obj.clone(), "EVENT_MANIPULATION", text(&row, 1));
        put(
            "trigger",
            obj.clone(),
            "EVENT_OBJECT_TABLE",
            m.table(db, &text(&row, 2)),
        );
        put("trigger", obj.clone(), "ACTION_ORDER", text(&row, 3));
        put("trigger", obj.clone(), "ACTION_TIMING", text(&row, 4));
        put(
            "trigger",
            obj.clone(),
            "ACTION_STATEMENT",
            m.sql(db, &text(&row, 5)),
        );
        put("trigger", obj.clone(), "SQL_MODE", text(&row, 6));
        put(
            "trigger",
            obj.clone(),
            "CHARACTER_SET_CLIENT",
            text(&row, 7),
        );
        put(
            "trigger",
            obj.clone(),
            "COLLATION_CONNECTION",
            text(&row, 8),
        );
        put("trigger", obj, "DATABASE_COLLATION", text(&row, 9));
    }

    let sql = "SELECT ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_DEFINITION, \
               IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE, ROUTINE_COMMENT, \
               CHARACTER_SET_CLIENT, COLLATION_CONNECTION, DATABASE_COLLATION \
               FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?";
    for row in rows(&mut conn, sql, db).await {
        let obj = format!("{new_db}.{}", text(&row, 0));
        put("routine", obj.clone(), "exists", "yes".into());
        put("routine", obj.clone(), "ROUTINE_TYPE", text(&row, 1));
        put("routine", obj.clone(), "DTD_IDENTIFIER", text(&row, 2));
        put(
            "routine",
            obj.clone(),
            "ROUTINE_DEFINITION",
            m.sql(db, &text(&row, 3)),
        );
        put("routine", obj.clone(), "IS_DETERMINISTIC", text(&row, 4));
        put("routine", obj.clone(), "SQL_DATA_ACCESS", text(&row, 5));
        put(
            "routine",
            obj.clone(),
            "SECURITY_TYPE",
            security(side, &text(&row, 6)),
        );
        put("routine", obj.clone(), "SQL_MODE", text(&row, 7));
        put("routine", obj.clone(), "ROUTINE_COMMENT", text(&row, 8));
        put(
            "routine",
            obj.clone(),
            "CHARACTER_SET_CLIENT",
            text(&row, 9),
        );
        put(
            "routine",
            obj.clone(),
            "COLLATION_CONNECTION",
            text(&row, 10),
        );
        put("routine", obj, "DATABASE_COLLATION", text(&row, 11));
    }

    let sql = "SELECT SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, \
               DTD_IDENTIFIER, ROUTINE_TYPE FROM information_schema.PARAMETERS \
               WHERE SPECIFIC_SCHEMA = ?";
    for row in rows(&mut conn, sql, db).await {
        let obj = format!("{new_db}.{}.{}", text(&row, 0), text(&row, 1));
        put("parameter", obj.clone(), "PARAMETER_MODE", text(&row, 2));
        put("parameter", obj.clone(), "PARAMETER_NAME", text(&row, 3));
        put("parameter", obj.clone(), "DTD_IDENTIFIER", text(&row, 4));
        put("parameter", obj, "ROUTINE_TYPE", text(&row, 5));
    }

    let _ = conn.disconnect().await;
    snap
}

fn security(side: Side, stored: &str) -> String {
    match side {
        // Tidemark creates every view and routine with SQL SECURITY INVOKER.
        Side::Source => "INVOKER".to_owned(),
        Side::Destination => stored.to_owned(),
    }
}

/// One information_schema query. It is read-only, so a failure is retried twice: other tests
/// create and drop databases all the time, and a read of information_schema can trip over that.
async fn rows(conn: &mut Conn, sql: &str, db: &str) -> Vec<Row> {
    let mut attempt = 0;
    loop {
        match conn.exec(sql, (db,)).await {
            Ok(rows) => return rows,
            Err(e) if attempt < 2 => {
                attempt += 1;
                eprintln!("schema snapshot query failed ({e}); retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("schema snapshot query failed: {e}\n{sql}"),
        }
    }
}

fn opt(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i) {
        None | Some(Value::NULL) => None,
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(other) => Some(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

/// A cell as text, NULL as `NULL` (distinct from the string 'NULL' only in quoting, which is
/// enough here: no compared attribute holds the four letters as data).
fn text(row: &Row, i: usize) -> String {
    opt(row, i).unwrap_or_else(|| "∅".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_each_side() {
        let mut a = SchemaSnapshot::default();
        let mut b = SchemaSnapshot::default();
        let key = (
            "column".to_owned(),
            "d.t.c".to_owned(),
            "COLUMN_TYPE".to_owned(),
        );
        a.entries.insert(key.clone(), "int(11)".into());
        b.entries.insert(key.clone(), "bigint(20)".into());
        b.entries.insert(
            ("table".into(), "d.x".into(), "exists".into()),
            "yes".into(),
        );
        let d = diff(&a, &b);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].attribute, "COLUMN_TYPE");
        assert_eq!(d[1].source, None);
    }
}
