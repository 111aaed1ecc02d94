//! Per-chunk verification: the row count and a checksum of a key range, computed by the same SQL
//! on both sides.
//!
//! A row is the CRC32 of its columns' exact values joined by '#', followed by every column's
//! length (-1 for NULL): the lengths tell NULL from '' and pin each value's boundaries, so bytes
//! cannot move between neighbouring columns unnoticed. FLOAT is read through `CAST(.. AS DOUBLE)`,
//! whose text is exact, so its last bit counts. The chunk is the row count and the exact
//! (DECIMAL) sum of its rows' CRCs: order-free, and a removed, added or changed row moves it (a
//! changed value goes unnoticed with odds of 2^-32, as with a per-column CRC, at a third of the
//! server's CPU: one CRC a row instead of one a column plus an MD5). Computed on the source in the
//! snapshot the rows were read from, so writes on the source during the copy never cause a false
//! mismatch.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use super::plan::Chunk;
use super::range::KeyRange;
use super::session::CopyEndpoints;
use super::shape::TableShape;
use super::sql::{SqlBuf, qualified};
use crate::error::{CopyError, Side};

/// A chunk's row count and checksum on one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub rows: u64,
    /// The exact decimal sum of the rows' CRC32s.
    pub sum: String,
}

/// The checksum query of a key range, with the names of `side`.
pub fn checksum_sql(shape: &TableShape, range: &KeyRange, side: Side) -> Vec<u8> {
    let name = |c: &super::shape::Column| match side {
        Side::Source => c.source_name.clone(),
        Side::Destination => c.dest_name.clone(),
    };
    let digests: Vec<String> = shape
        .columns
        .iter()
        .map(|c| c.digest_expr(&name(c)))
        .collect();
    let table = match side {
        Side::Source => qualified(&shape.spec.source_db, &shape.spec.source_table),
        Side::Destination => qualified(&shape.spec.dest_db, &shape.spec.dest_table),
    };
    let mut sql = SqlBuf::new();
    let lengths: Vec<String> = digests
        .iter()
        .map(|d| format!("COALESCE(LENGTH({d}), -1)"))
        .collect();
    sql.push(&format!(
        "SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('#', {}, CONCAT_WS(',', {})))), 0) \
         FROM {table}",
        digests.join(", "),
        lengths.join(", ")
    ));
    let key = shape.key_columns();
    let names: Vec<String> = key.iter().map(|c| name(c)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    range.push_where(&mut sql, &key, &names);
    sql.into_bytes()
}

/// Computes the checksum of `chunk` on one side, in whatever transaction `conn` is in.
pub async fn checksum(
    conn: &mut Conn,
    shape: &TableShape,
    chunk: &Chunk,
    side: Side,
) -> Result<Checksum, CopyError> {
    let row: Option<(u64, String)> = conn
        .query_first(checksum_sql(shape, &chunk.range, side))
        .await
        .map_err(|e| CopyError::sql(side, &chunk.display(), "computing the checksum", e))?;
    let (rows, sum) = row.unwrap_or((0, "0".to_owned()));
    Ok(Checksum { rows, sum })
}

/// Compares the two sides' checksums; a difference is a [`CopyError::VerifyMismatch`] that names
/// the table and the range.
pub fn compare(chunk: &Chunk, source: &Checksum, dest: &Checksum) -> Result<(), CopyError> {
    if source == dest {
        Ok(())
    } else {
        Err(CopyError::VerifyMismatch {
            chunk: chunk.display(),
            source_rows: source.rows,
            dest_rows: dest.rows,
            source_checksum: source.sum.clone(),
            dest_checksum: dest.sum.clone(),
        })
    }
}

/// Verifies a chunk that was copied earlier: the source in a fresh consistent snapshot, the
/// destination as committed. Meant for a re-check (or a verify-only run) while nothing writes to
/// the source range; during a copy, [`super::chunk::copy_chunk`] verifies inside the snapshot it
/// read from.
pub async fn verify_chunk(
    endpoints: &CopyEndpoints,
    shape: &TableShape,
    chunk: &Chunk,
) -> Result<Checksum, CopyError> {
    let mut src = endpoints.source_conn().await?;
    let mut dst = endpoints.destination_conn().await?;
    let what = chunk.display();
    src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(|e| CopyError::source_sql(&what, "starting a snapshot", e))?;
    let (s, d) = tokio::join!(
        checksum(&mut src, shape, chunk, Side::Source),
        checksum(&mut dst, shape, chunk, Side::Destination)
    );
    let _ = src.query_drop("COMMIT").await;
    let (s, d) = (s?, d?);
    compare(chunk, &s, &d)?;
    Ok(s)
}
