//! The chunk planner: key ranges of about `chunk_mb` MB, found by walking the key on the source.
//!
//! Rows per chunk come from the real sizes of a sample of rows (the first rows in key order);
//! boundaries are real keys (`ORDER BY key LIMIT 1 OFFSET n-1` after the previous boundary), so
//! sparse, negative, composite and UUID keys split as evenly as dense ones. Never min/max
//! arithmetic, never `AVG_ROW_LENGTH` (stale, and useless on sparse keys).

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use super::range::{KeyBound, KeyRange, KeyValue};
use super::shape::TableShape;
use super::sql::{SqlBuf, qualified, quote_ident};
use crate::error::CopyError;

/// How many rows the size sample reads.
const SAMPLE_ROWS: u32 = 2000;

/// One unit of copy work: a key range of one table. Serializable: it travels in queue messages
/// and state records, and copying it twice leaves the same destination as copying it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub source_db: String,
    pub source_table: String,
    /// 0-based position in the table's plan.
    pub index: u32,
    #[serde(flatten)]
    pub range: KeyRange,
    /// The planner's estimate, for progress bars; never used for correctness.
    pub estimated_rows: u64,
}

impl Chunk {
    /// `` `db`.`t` chunk 3 (key in (..]) `` for messages.
    pub fn display(&self) -> String {
        format!(
            "{} chunk {} ({})",
            qualified(&self.source_db, &self.source_table),
            self.index,
            self.range.display()
        )
    }
}

/// `chunk_mb` in bytes, at least 1 MB.
pub fn chunk_bytes(chunk_mb: u32) -> u64 {
    u64::from(chunk_mb.max(1)) * 1024 * 1024
}

/// Plans the chunks of one table of about `target_bytes` each (see [`chunk_bytes`]).
pub async fn plan_chunks(
    source: &mut Conn,
    shape: &TableShape,
    target_bytes: u64,
) -> Result<Vec<Chunk>, CopyError> {
    let spec = &shape.spec;
    let whole = |estimated_rows| Chunk {
        source_db: spec.source_db.clone(),
        source_table: spec.source_table.clone(),
        index: 0,
        range: KeyRange::default(),
        estimated_rows,
    };
    let key = shape.key_columns();
    if key.is_empty() {
        if let Some(warning) = &shape.key_warning {
            tracing::warn!("{warning}");
        }
        return Ok(vec![whole(0)]);
    }
    let table = qualified(&spec.source_db, &spec.source_table);
    let names: Vec<&str> = key.iter().map(|c| c.source_name.as_str()).collect();
    let order_by = names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");

    // Average row size, as LOAD DATA will carry it: every field plus a separator.
    let row_len = shape
        .columns
        .iter()
        .map(|c| format!("COALESCE(LENGTH({}), 2)", c.read_expr()))
        .collect::<Vec<_>>()
        .join(" + ");
    let sample_sql = format!(
        "SELECT COUNT(*), COALESCE(SUM(len), 0) FROM \
         (SELECT {row_len} + {} AS len FROM {table} ORDER BY {order_by} LIMIT {SAMPLE_ROWS}) s",
        shape.columns.len()
    );
    let display = spec.display();
    let sampled: Option<(u64, String)> = source
        .query_first(sample_sql)
        .await
        .map_err(|e| CopyError::source_sql(&display, "sampling row sizes", e))?;
    let (rows, bytes) = sampled.unwrap_or((0, "0".into()));
    let bytes: u64 = bytes.split('.').next().unwrap_or("0").parse().unwrap_or(0);
    if rows == 0 {
        return Ok(vec![whole(0)]);
    }
    let avg = (bytes / rows).max(1);
    let rows_per_chunk = (target_bytes / avg).max(1);

    let select_key = key
        .iter()
        .map(|c| c.read_expr())
        .collect::<Vec<_>>()
        .join(", ");
    let mut chunks = Vec::new();
    let mut lower: Option<KeyBound> = None;
    loop {
        let mut sql = SqlBuf::new();
        sql.push(&format!("SELECT {select_key} FROM {table}"));
        KeyRange {
            lower: lower.clone(),
            upper: None,
        }
        .push_where(&mut sql, &key, &names);
        sql.push(&format!(
            " ORDER BY {order_by} LIMIT 1 OFFSET {}",
            rows_per_chunk - 1
        ));
        let row: Option<mysql_async::Row> = source
            .query_first(sql.into_bytes())
            .await
            .map_err(|e| CopyError::source_sql(&display, "walking the key", e))?;
        let index = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
        let base = Chunk {
            index,
            range: KeyRange {
                lower: lower.clone(),
                upper: None,
            },
            estimated_rows: rows_per_chunk,
            ..whole(0)
        };
        let Some(row) = row else {
            chunks.push(base);
            break;
        };
        let upper = bound_from_row(row, &display)?;
        chunks.push(Chunk {
            range: KeyRange {
                lower: base.range.lower,
                upper: Some(upper.clone()),
            },
            ..base
        });
        lower = Some(upper);
    }
    Ok(chunks)
}

fn bound_from_row(row: mysql_async::Row, table: &str) -> Result<KeyBound, CopyError> {
    let mut values = Vec::with_capacity(row.len());
    for value in row.unwrap_raw() {
        match value {
            Some(mysql_async::Value::Bytes(b)) => values.push(KeyValue(b)),
            other => {
                return Err(CopyError::Invariant {
                    table: table.to_owned(),
                    detail: format!(
                        "a key value came back as {other:?}, not as text; the key must be NOT NULL"
                    ),
                });
            }
        }
    }
    Ok(KeyBound(values))
}
