//! What a table looks like to the copier: the columns it writes (never generated ones, always the
//! invisible ones), how each is read exactly and written back, and the key chunks are cut along.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use super::sql::quote_ident;
use crate::error::CopyError;

/// One table to copy: where from, where to, and optionally which columns under which names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCopySpec {
    pub source_db: String,
    pub source_table: String,
    pub dest_db: String,
    pub dest_table: String,
    /// `(source column, destination column)` pairs; `None` copies every written column under
    /// its own name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<(String, String)>>,
}

impl TableCopySpec {
    /// Same database and table names on both sides, all columns.
    pub fn same_names(db: &str, table: &str) -> TableCopySpec {
        TableCopySpec {
            source_db: db.to_owned(),
            source_table: table.to_owned(),
            dest_db: db.to_owned(),
            dest_table: table.to_owned(),
            columns: None,
        }
    }

    /// `` `db`.`table` `` of the source, for messages.
    pub fn display(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.source_db),
            quote_ident(&self.source_table)
        )
    }
}

/// How a column's value travels. Every kind is read and written so that the bytes stored on the
/// destination equal the source's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ColumnKind {
    /// TINYINT .. BIGINT, signed or not: decimal text, exact.
    Integer,
    /// DECIMAL: decimal text, exact.
    Decimal,
    /// FLOAT: MariaDB prints it with ~6 digits, so it is read as `CAST(c AS DOUBLE)`, whose
    /// shortest round-trip text parses back to the same float.
    Float,
    /// DOUBLE: MariaDB prints the shortest text that round-trips.
    Double,
    /// BIT(n): its bytes (big-endian), which LOAD DATA and INSERT store back as bits. Not through
    /// a user variable and `SET`: MariaDB 10.11's LOAD DATA with a SET clause ignores
    /// NO_AUTO_VALUE_ON_ZERO and turns an AUTO_INCREMENT id 0 into the next id.
    Bit,
    /// CHAR, VARCHAR, TEXT, ENUM, SET, JSON: the column's bytes in its own character set.
    Text { charset: String },
    /// BINARY, VARBINARY, BLOB: bytes.
    Binary,
    /// DATE, DATETIME, TIMESTAMP (in UTC on both sessions), TIME, YEAR: the server's text.
    Temporal,
    /// GEOMETRY and its subtypes: the server's internal bytes (SRID + WKB), stored back as is.
    Geometry,
    /// Anything else (UUID, INET6, ...): read as `CAST(c AS BINARY)`, the type's binary form,
    /// which these types take back from a binary string (their text form, under LOAD DATA's
    /// `CHARACTER SET binary`, would be taken as binary and rejected).
    Other,
}

/// One written column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub source_name: String,
    pub dest_name: String,
    /// `information_schema.COLUMNS.DATA_TYPE`, e.g. `bigint`, `enum`.
    pub data_type: String,
    pub kind: ColumnKind,
    pub nullable: bool,
}

impl Column {
    /// The expression the source reads this column with (exact text or bytes).
    pub fn read_expr(&self) -> String {
        let c = quote_ident(&self.source_name);
        match self.kind {
            ColumnKind::Float => format!("CAST({c} AS DOUBLE)"),
            ColumnKind::Other => format!("CAST({c} AS BINARY)"),
            _ => c,
        }
    }

    /// The server-side expression whose value the verification digest hashes: the same bytes
    /// or text the source reads with [`Column::read_expr`] (FLOAT through `CAST(.. AS DOUBLE)`,
    /// whose text is its shortest round-trip form; text as its bytes in its own character set,
    /// never converted, since `CRC32` and `LENGTH` take a string's bytes as they are), except
    /// BIT, which is read as bytes and digested as its number (the client converts). NULL stays
    /// NULL; see `verify` for how the digest tells it from ''.
    pub fn digest_expr(&self, name: &str) -> String {
        let c = quote_ident(name);
        match self.kind {
            ColumnKind::Float => format!("CAST({c} AS DOUBLE)"),
            ColumnKind::Bit => format!("{c} + 0"),
            ColumnKind::Geometry | ColumnKind::Other => format!("CAST({c} AS BINARY)"),
            ColumnKind::Integer
            | ColumnKind::Decimal
            | ColumnKind::Double
            | ColumnKind::Text { .. }
            | ColumnKind::Binary
            | ColumnKind::Temporal => c,
        }
    }

    /// Whether keyset ranges over this column are ordered the way `ORDER BY` orders them.
    fn can_be_key(&self) -> bool {
        match &self.kind {
            ColumnKind::Integer
            | ColumnKind::Decimal
            | ColumnKind::Double
            | ColumnKind::Binary
            | ColumnKind::Temporal
            | ColumnKind::Other => true,
            // ENUM and SET sort by their index but compare with strings as text.
            ColumnKind::Text { .. } => !matches!(self.data_type.as_str(), "enum" | "set"),
            ColumnKind::Float | ColumnKind::Bit | ColumnKind::Geometry => false,
        }
    }
}

/// A table as the copier sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableShape {
    pub spec: TableCopySpec,
    pub columns: Vec<Column>,
    /// Positions in `columns` of the key chunks are cut along (the primary key, else the first
    /// unique key over NOT NULL columns); `None` when there is no usable key.
    pub key: Option<Vec<usize>>,
    /// Why there is no key, for the run report and the precheck.
    pub key_warning: Option<String>,
    /// It has an AUTO_INCREMENT column: parallel loads into it contend for the table's AUTO-INC
    /// lock where `innodb_autoinc_lock_mode` is below 2. Absent in earlier versions' payloads.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_increment: bool,
}

impl TableShape {
    pub fn key_columns(&self) -> Vec<&Column> {
        self.key
            .iter()
            .flatten()
            .filter_map(|&i| self.columns.get(i))
            .collect()
    }
}

fn kind_of(data_type: &str, charset: Option<String>) -> ColumnKind {
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => ColumnKind::Integer,
        "decimal" | "numeric" => ColumnKind::Decimal,
        "float" => ColumnKind::Float,
        "double" | "real" | "double precision" => ColumnKind::Double,
        "bit" => ColumnKind::Bit,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnKind::Binary
        }
        "date" | "datetime" | "timestamp" | "time" | "year" => ColumnKind::Temporal,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => ColumnKind::Geometry,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        | "json" => match charset {
            Some(cs) if cs != "binary" => ColumnKind::Text { charset: cs },
            _ => ColumnKind::Binary,
        },
        _ => ColumnKind::Other,
    }
}

/// A row of [`COLUMNS_SQL`]: name, data type, character set, nullable, extra, generated.
pub(crate) type ColumnRow = (String, String, Option<String>, String, String, String);
/// A row of [`KEYS_SQL`]: index, column, non-unique.
pub(crate) type IndexRow = (String, String, i64);

/// A table's columns, in order (its schema and name follow, bound or escaped).
pub(crate) const COLUMNS_SQL: &str = "SELECT COLUMN_NAME, LOWER(DATA_TYPE), CHARACTER_SET_NAME, \
     IS_NULLABLE, UPPER(EXTRA), IS_GENERATED FROM information_schema.COLUMNS \
     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
/// A table's index columns, the primary key's first.
pub(crate) const KEYS_SQL: &str = "SELECT INDEX_NAME, COLUMN_NAME, NON_UNIQUE \
     FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
     ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX";

/// Reads the table's written columns and key on the source.
pub async fn read_shape(source: &mut Conn, spec: &TableCopySpec) -> Result<TableShape, CopyError> {
    let table = spec.display();
    let rows: Vec<ColumnRow> = source
        .exec(COLUMNS_SQL, (&spec.source_db, &spec.source_table))
        .await
        .map_err(|e| CopyError::source_sql(&table, "reading the table's columns", e))?;
    let index_rows: Vec<IndexRow> = source
        .exec(KEYS_SQL, (&spec.source_db, &spec.source_table))
        .await
        .map_err(|e| CopyError::source_sql(&table, "reading the table's keys", e))?;
    shape_of(spec, rows, &index_rows)
}

/// The shape of `spec` from its [`COLUMNS_SQL`] and [`KEYS_SQL`] rows.
pub(crate) fn shape_of(
    spec: &TableCopySpec,
    rows: Vec<ColumnRow>,
    index_rows: &[IndexRow],
) -> Result<TableShape, CopyError> {
    let table = spec.display();
    if rows.is_empty() {
        return Err(CopyError::TableNotFound { table });
    }
    let mut written = Vec::new();
    let auto_increment = rows
        .iter()
        .any(|(_, _, _, _, extra, _)| extra.contains("AUTO_INCREMENT"));
    for (name, data_type, charset, nullable, extra, generated) in rows {
        // Generated columns (and system-versioning's ROW START/END) are computed, never written.
        if generated.eq_ignore_ascii_case("ALWAYS")
            || extra.contains("GENERATED")
            || extra.contains("ROW START")
            || extra.contains("ROW END")
        {
            continue;
        }
        written.push(Column {
            dest_name: name.clone(),
            kind: kind_of(&data_type, charset),
            source_name: name,
            data_type,
            nullable: nullable == "YES",
        });
    }
    let columns = match &spec.columns {
        None => written,
        Some(pairs) => {
            let mut picked = Vec::with_capacity(pairs.len());
            for (src, dst) in pairs {
                let found = written
                    .iter()
                    .find(|c| c.source_name.eq_ignore_ascii_case(src))
                    .ok_or_else(|| CopyError::ColumnNotFound {
                        table: table.clone(),
                        column: src.clone(),
                    })?;
                picked.push(Column {
                    dest_name: dst.clone(),
                    ..found.clone()
                });
            }
            picked
        }
    };
    let (key, key_warning) = choose_key(&table, &columns, index_rows);
    Ok(TableShape {
        spec: spec.clone(),
        columns,
        key,
        key_warning,
        auto_increment,
    })
}

/// The primary key, else the unique key over NOT NULL columns with the fewest columns.
fn choose_key(
    table: &str,
    columns: &[Column],
    index_rows: &[(String, String, i64)],
) -> (Option<Vec<usize>>, Option<String>) {
    let mut indexes: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column, non_unique) in index_rows {
        if *non_unique != 0 {
            continue;
        }
        match indexes.last_mut() {
            Some((name, cols)) if name == index => cols.push(column.clone()),
            _ => indexes.push((index.clone(), vec![column.clone()])),
        }
    }
    let mut candidates: Vec<(bool, usize, Vec<usize>)> = Vec::new();
    let mut problems = Vec::new();
    for (index, key_cols) in &indexes {
        let positions: Vec<Option<usize>> = key_cols
            .iter()
            .map(|k| columns.iter().position(|c| &c.source_name == k))
            .collect();
        if let Some(missing) = key_cols.iter().zip(&positions).find(|(_, p)| p.is_none()) {
            problems.push(format!(
                "key `{index}` uses column {} which is not copied",
                quote_ident(missing.0)
            ));
            continue;
        }
        let positions: Vec<usize> = positions.into_iter().flatten().collect();
        if positions.iter().any(|&p| columns[p].nullable) {
            continue;
        }
        if let Some(&p) = positions.iter().find(|&&p| !columns[p].can_be_key()) {
            problems.push(format!(
                "key `{index}` has a {} column, which cannot be walked in order",
                columns[p].data_type.to_uppercase()
            ));
            continue;
        }
        candidates.push((index != "PRIMARY", positions.len(), positions));
    }
    candidates.sort_by_key(|(not_primary, len, _)| (*not_primary, *len));
    match candidates.into_iter().next() {
        Some((_, _, positions)) => (Some(positions), None),
        None => {
            let why = if problems.is_empty() {
                String::new()
            } else {
                format!(" ({})", problems.join("; "))
            };
            (
                None,
                Some(format!(
                    "table {table} has no usable primary or unique NOT NULL key{why}: it is copied \
                     as one stream, which must finish in one go; add a primary key to split it"
                )),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: &str, nullable: bool) -> Column {
        Column {
            source_name: name.into(),
            dest_name: name.into(),
            data_type: data_type.into(),
            kind: kind_of(data_type, Some("utf8mb4".into())),
            nullable,
        }
    }

    fn idx(rows: &[(&str, &str, i64)]) -> Vec<(String, String, i64)> {
        rows.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
            .collect()
    }

    #[test]
    fn primary_key_wins_then_the_narrowest_not_null_unique_key() {
        let cols = vec![
            col("a", "int", false),
            col("b", "varchar", false),
            col("c", "int", true),
        ];
        let rows = idx(&[("PRIMARY", "b", 0), ("u1", "a", 0)]);
        assert_eq!(choose_key("t", &cols, &rows).0, Some(vec![1]));
        let rows = idx(&[("u_wide", "a", 0), ("u_wide", "b", 0), ("u_one", "b", 0)]);
        assert_eq!(choose_key("t", &cols, &rows).0, Some(vec![1]));
        // A nullable unique key and a non-unique index are not keys.
        let rows = idx(&[("u_null", "c", 0), ("plain", "a", 1)]);
        let (key, warning) = choose_key("t", &cols, &rows);
        assert_eq!(key, None);
        assert!(warning.unwrap().contains("one stream"));
    }

    #[test]
    fn an_enum_key_or_an_uncopied_key_column_is_explained() {
        let cols = vec![col("e", "enum", false)];
        let rows = idx(&[("PRIMARY", "e", 0)]);
        let (key, warning) = choose_key("`d`.`t`", &cols, &rows);
        assert_eq!(key, None);
        assert!(warning.unwrap().contains("ENUM"));
        let rows = idx(&[("PRIMARY", "gone", 0)]);
        let warning = choose_key("`d`.`t`", &cols, &rows).1.unwrap();
        assert!(warning.contains("`gone` which is not copied"), "{warning}");
    }

    #[test]
    fn floats_are_read_and_digested_exactly() {
        let f = col("f", "float", true);
        assert_eq!(f.read_expr(), "CAST(`f` AS DOUBLE)");
        assert_eq!(f.digest_expr("g"), "CAST(`g` AS DOUBLE)");
        assert_eq!(col("b", "bit", true).read_expr(), "`b`");
        assert_eq!(
            kind_of("varchar", Some("binary".into())),
            ColumnKind::Binary
        );
    }
}
