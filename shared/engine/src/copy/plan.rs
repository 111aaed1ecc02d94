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
    /// An incremental chunk: only the rows inside this window, upserted; the range is never
    /// cleared. `None`: a full-copy chunk that clears its range and loads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<RowWindow>,
}

/// The rows of an incremental run: `low <= column <= high` (closed at both ends, so rows tied
/// with the watermark are read again, and upserted rather than doubled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowWindow {
    /// The column's source name.
    pub column: String,
    pub low: Option<String>,
    pub high: String,
}

impl RowWindow {
    /// Appends ` WHERE`/` AND` and the window predicate on `column` (its name on this side).
    pub fn push_predicate(&self, sql: &mut SqlBuf, first: bool, column: &str) {
        sql.push(if first { " WHERE " } else { " AND " });
        if let Some(low) = &self.low {
            sql.ident(column).push(" >= ");
            sql.literal(None, low.as_bytes());
            sql.push(" AND ");
        }
        sql.ident(column).push(" <= ");
        sql.literal(None, self.high.as_bytes());
    }
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
        window: None,
    };
    let key = shape.key_columns();
    if key.is_empty() {
        if let Some(warning) = &shape.key_warning {
            tracing::warn!("{warning}");
        }
        return Ok(vec![whole(0)]);
    }
    let Some(rows_per_chunk) = rows_per_chunk(source, shape, target_bytes).await? else {
        return Ok(vec![whole(0)]);
    };
    let table = qualified(&spec.source_db, &spec.source_table);
    let display = spec.display();
    let names: Vec<&str> = key.iter().map(|c| c.source_name.as_str()).collect();
    let order_by = names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");

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

/// Rows per chunk of about `target_bytes`, from the real sizes of the first rows in key order;
/// `None` when the table is empty.
async fn rows_per_chunk(
    source: &mut Conn,
    shape: &TableShape,
    target_bytes: u64,
) -> Result<Option<u64>, CopyError> {
    let spec = &shape.spec;
    let key = shape.key_columns();
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
        return Ok(None);
    }
    let avg = (bytes / rows).max(1);
    Ok(Some((target_bytes / avg).max(1)))
}

/// Plans the chunks of an incremental run: the rows of `window`, in chunks of about
/// `target_bytes`. The window's rows are counted through the timestamp column's index; when they
/// fit one chunk (the usual case) the table is not walked at all.
pub async fn plan_window_chunks(
    source: &mut Conn,
    shape: &TableShape,
    target_bytes: u64,
    window: &RowWindow,
) -> Result<Vec<Chunk>, CopyError> {
    let spec = &shape.spec;
    let display = spec.display();
    let table = qualified(&spec.source_db, &spec.source_table);
    let mut count_sql = SqlBuf::new();
    count_sql.push(&format!("SELECT COUNT(*) FROM {table}"));
    window.push_predicate(&mut count_sql, true, &window.column);
    let in_window: Option<u64> = source
        .query_first(count_sql.into_bytes())
        .await
        .map_err(|e| CopyError::source_sql(&display, "counting the window's rows", e))?;
    let in_window = in_window.unwrap_or(0);
    let key = shape.key_columns();
    let one = |estimated_rows| Chunk {
        source_db: spec.source_db.clone(),
        source_table: spec.source_table.clone(),
        index: 0,
        range: KeyRange::default(),
        estimated_rows,
        window: Some(window.clone()),
    };
    if key.is_empty() {
        return Ok(vec![one(in_window)]);
    }
    let per_chunk = rows_per_chunk(source, shape, target_bytes)
        .await?
        .unwrap_or(u64::MAX);
    if in_window <= per_chunk {
        return Ok(vec![one(in_window)]);
    }
    let full = plan_chunks(source, shape, target_bytes).await?;
    // Many changed rows: the full table's key ranges, each filtered by the window.
    let share = in_window / u64::try_from(full.len()).unwrap_or(1).max(1);
    Ok(full
        .into_iter()
        .map(|chunk| Chunk {
            estimated_rows: share,
            window: Some(window.clone()),
            ..chunk
        })
        .collect())
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
