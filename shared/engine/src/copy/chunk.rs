//! The chunk copier: one key range, read from a consistent snapshot on the source and written in
//! one destination transaction that first clears the range, so that running a chunk twice (after
//! a crash, a retry, a duplicate queue message) leaves exactly one copy of every row.
//!
//! Writing is one `LOAD DATA LOCAL INFILE` fed from a bounded channel (memory stays bounded by a
//! few buffers plus the largest row), or 1-4 MB multi-row INSERTs where the destination refuses
//! LOCAL INFILE. LOAD DATA LOCAL turns errors into warnings and commits whatever it received when
//! its stream fails, so: one transaction, rows sent == rows stored, no warning, the checksum
//! compared, and only then COMMIT; anything else rolls back.

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::encode::{InsertEncoder, LoadEncoder, load_data_sql};
use super::plan::Chunk;
use super::session::CopyEndpoints;
use super::shape::TableShape;
use super::sql::{SqlBuf, qualified, quote_ident};
use super::verify::{Checksum, RowDigest, SumSql, checksum_with, compare};
use crate::error::{CopyError, Side};

/// Buffers handed to the LOAD stream are about this big.
const LOAD_BUFFER_BYTES: usize = 256 * 1024;
/// How many buffers may wait between the reader and the LOAD: the memory bound.
const LOAD_CHANNEL_BUFFERS: usize = 4;
/// INSERT statements are about this big (the 1-4 MB).
const INSERT_STATEMENT_BYTES: usize = 2 * 1024 * 1024;

/// Server errors that mean "LOCAL INFILE is off here": fall back to INSERTs.
const LOCAL_INFILE_REFUSED: &[u16] = &[1148, 3948, 4166];

/// How rows are written to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMethod {
    LoadData,
    Insert,
}

/// How to copy one chunk.
#[derive(Debug, Clone, Copy)]
pub struct ChunkOptions {
    /// Compare row counts and checksums before committing (on by default).
    pub verify: bool,
    /// With `verify`: commit once the rows are stored (rows sent = rows stored, no warning) and
    /// leave the destination's side of the checksum to [`super::verify::check_committed`], run
    /// later — while the table's indexes are built, when nothing reads the table before then (a
    /// shadow table, a new replica). The report carries the source's side.
    pub defer_check: bool,
    /// Load with `unique_checks = 0` (MariaDB's bulk path for an empty InnoDB table). Only for a
    /// table that was empty and is copied as ONE chunk: the bulk path takes a table lock, and two
    /// chunks of one table that each cleared their range first (holding an intention lock)
    /// deadlock on it.
    pub unique_checks_off: bool,
    /// `None`: LOAD DATA when the destination allows it, else INSERTs.
    pub method: Option<WriteMethod>,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            verify: true,
            defer_check: false,
            unique_checks_off: false,
            method: None,
        }
    }
}

/// Rows and bytes sent so far, reported while a chunk runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkProgress {
    pub rows: u64,
    pub bytes: u64,
}

/// What one committed chunk did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkReport {
    pub index: u32,
    pub rows: u64,
    /// Bytes of row data sent (as LOAD DATA or INSERT text).
    pub bytes: u64,
    pub elapsed: Duration,
    pub method: WriteMethod,
    /// The checksum both sides agreed on (with `defer_check`: the source's side, still to be
    /// compared); `None` when verification was off.
    pub checksum: Option<Checksum>,
}

/// Copies one chunk, exactly once in effect, and reports progress deltas through `progress`.
pub async fn copy_chunk(
    endpoints: &CopyEndpoints,
    shape: &TableShape,
    chunk: &Chunk,
    options: &ChunkOptions,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
) -> Result<ChunkReport, CopyError> {
    let method = options.method.unwrap_or(if endpoints.local_infile {
        WriteMethod::LoadData
    } else {
        WriteMethod::Insert
    });
    match copy_chunk_with(endpoints, shape, chunk, options, method, progress).await {
        Err(CopyError::Sql {
            side: Side::Destination,
            source: mysql_async::Error::Server(e),
            ..
        }) if method == WriteMethod::LoadData && LOCAL_INFILE_REFUSED.contains(&e.code) => {
            tracing::warn!(
                "the destination refuses LOAD DATA LOCAL INFILE ({}); copying {} with INSERTs",
                e.message,
                chunk.display()
            );
            copy_chunk_with(
                endpoints,
                shape,
                chunk,
                options,
                WriteMethod::Insert,
                progress,
            )
            .await
        }
        other => other,
    }
}

async fn copy_chunk_with(
    endpoints: &CopyEndpoints,
    shape: &TableShape,
    chunk: &Chunk,
    options: &ChunkOptions,
    method: WriteMethod,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
) -> Result<ChunkReport, CopyError> {
    let started = Instant::now();
    let what = chunk.display();
    let mut src = endpoints.source_conn().await?;
    let mut dst = endpoints.destination_conn().await?;
    let result = run(
        &mut src, &mut dst, endpoints, shape, chunk, options, method, progress, &what,
    )
    .await;
    match result {
        Ok((rows, bytes, checksum)) => Ok(ChunkReport {
            index: chunk.index,
            rows,
            bytes,
            elapsed: started.elapsed(),
            method,
            checksum,
        }),
        Err(e) => {
            // Best effort: a broken session is dropped by the pool anyway, and a pool reset also
            // ends the transaction. The source may hold an unread result: drop, do not drain it.
            let _ = tokio::time::timeout(Duration::from_secs(10), dst.query_drop("ROLLBACK")).await;
            drop(src);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    src: &mut Conn,
    dst: &mut Conn,
    endpoints: &CopyEndpoints,
    shape: &TableShape,
    chunk: &Chunk,
    options: &ChunkOptions,
    method: WriteMethod,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
    what: &str,
) -> Result<(u64, u64, Option<Checksum>), CopyError> {
    src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(|e| CopyError::source_sql(what, "starting a consistent snapshot", e))?;
    let unique_checks = if options.unique_checks_off { 0 } else { 1 };
    dst.query_drop(format!("SET SESSION unique_checks = {unique_checks}"))
        .await
        .map_err(|e| CopyError::dest_sql(what, "setting unique_checks", e))?;
    dst.query_drop("BEGIN")
        .await
        .map_err(|e| CopyError::dest_sql(what, "starting the transaction", e))?;
    // An incremental chunk upserts the window's rows and never clears its range: the
    // destination's other rows in the range were copied by earlier runs.
    let upsert = chunk.window.is_some();
    // Only a range that holds rows is cleared. The probe is a plain read; a DELETE, even of an
    // empty range, locks the first row past the range's end, and in a table loaded by parallel
    // chunks that row is usually the next chunk's, uncommitted: the DELETE would wait for that
    // whole chunk (measured: 0.42 s of a 1M-row copy's first chunk). A row committed after the
    // probe (a dead earlier attempt's) makes the load store fewer rows than it sent, which
    // fails the chunk; its retry then finds and clears it.
    if !upsert && range_has_rows(dst, shape, chunk, what).await? {
        dst.query_drop(delete_sql(shape, chunk))
            .await
            .map_err(|e| CopyError::dest_sql(what, "clearing the chunk's key range", e))?;
    }

    // The checksum compares a whole key range on both sides; an incremental chunk's range on the
    // destination also holds rows of earlier windows and rows deleted on the source since (deletes
    // are not carried), so only its row accounting is checked. The source side is digested from
    // the rows as they stream by (read in the snapshot): no second scan of the source.
    let mut digest = (options.verify && !upsert).then(|| RowDigest::new(shape));
    let started = Instant::now();
    let select = select_sql(shape, chunk);
    let (rows, bytes) = match method {
        WriteMethod::LoadData => {
            load(
                src,
                dst,
                shape,
                select,
                upsert,
                digest.as_mut(),
                progress,
                what,
            )
            .await?
        }
        WriteMethod::Insert => {
            insert(
                src,
                dst,
                shape,
                select,
                upsert,
                digest.as_mut(),
                progress,
                what,
            )
            .await?
        }
    };
    // The source transaction only read, and every row is in hand; ending it cannot lose anything.
    let _ = src.query_drop("COMMIT").await;
    let loaded = started.elapsed();

    let checksum = match digest {
        Some(digest) if options.defer_check => Some(digest.checksum()),
        Some(digest) => {
            let s = digest.checksum();
            let d = checksum_with(
                dst,
                shape,
                chunk,
                Side::Destination,
                endpoints.destination_digest,
                SumSql::for_rows(rows),
            )
            .await?;
            compare(chunk, &s, &d)?;
            Some(s)
        }
        None => None,
    };
    let checked = started.elapsed();
    // Test hook: loaded and verified, not committed.
    crate::crash::point("chunk.before_commit");
    dst.query_drop("COMMIT")
        .await
        .map_err(|e| CopyError::dest_sql(what, "committing", e))?;
    tracing::debug!(
        chunk = what,
        rows,
        load_ms = loaded.as_millis(),
        check_ms = (checked - loaded).as_millis(),
        commit_ms = (started.elapsed() - checked).as_millis(),
        "chunk committed"
    );
    Ok((rows, bytes, checksum))
}

/// `SELECT <exact read expressions> FROM src WHERE <range> ORDER BY <key>`.
fn select_sql(shape: &TableShape, chunk: &Chunk) -> Vec<u8> {
    let exprs: Vec<String> = shape.columns.iter().map(|c| c.read_expr()).collect();
    let key = shape.key_columns();
    let names: Vec<&str> = key.iter().map(|c| c.source_name.as_str()).collect();
    let mut sql = SqlBuf::new();
    sql.push(&format!(
        "SELECT {} FROM {}",
        exprs.join(", "),
        qualified(&shape.spec.source_db, &shape.spec.source_table)
    ));
    chunk.range.push_where(&mut sql, &key, &names);
    if let Some(window) = &chunk.window {
        let first = chunk.range.lower.is_none() && chunk.range.upper.is_none();
        window.push_predicate(&mut sql, first, &window.column);
    }
    if !names.is_empty() {
        let order: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
        sql.push(&format!(" ORDER BY {}", order.join(", ")));
    }
    sql.into_bytes()
}

/// Whether the destination holds a row in the chunk's key range (a plain read, no lock).
async fn range_has_rows(
    dst: &mut Conn,
    shape: &TableShape,
    chunk: &Chunk,
    what: &str,
) -> Result<bool, CopyError> {
    let row: Option<u8> = dst
        .query_first(dest_range_sql("SELECT 1 FROM", shape, chunk, " LIMIT 1"))
        .await
        .map_err(|e| CopyError::dest_sql(what, "looking for rows in the chunk's key range", e))?;
    Ok(row.is_some())
}

/// `DELETE FROM dst WHERE <range>`: what makes a chunk idempotent.
fn delete_sql(shape: &TableShape, chunk: &Chunk) -> Vec<u8> {
    dest_range_sql("DELETE FROM", shape, chunk, "")
}

/// `<head> dst WHERE <range><tail>`, with the destination's names.
fn dest_range_sql(head: &str, shape: &TableShape, chunk: &Chunk, tail: &str) -> Vec<u8> {
    let key = shape.key_columns();
    let names: Vec<&str> = key.iter().map(|c| c.dest_name.as_str()).collect();
    let mut sql = SqlBuf::new();
    sql.push(&format!(
        "{head} {}",
        qualified(&shape.spec.dest_db, &shape.spec.dest_table)
    ));
    chunk.range.push_where(&mut sql, &key, &names);
    sql.push(tail);
    sql.into_bytes()
}

/// Reads rows and feeds them to a LOAD DATA running at the same time on the destination.
#[allow(clippy::too_many_arguments)]
async fn load(
    src: &mut Conn,
    dst: &mut Conn,
    shape: &TableShape,
    select: Vec<u8>,
    upsert: bool,
    digest: Option<&mut RowDigest>,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
    what: &str,
) -> Result<(u64, u64), CopyError> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(LOAD_CHANNEL_BUFFERS);
    // One-shot: set before every LOAD.
    dst.set_infile_handler(async move {
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(stream.boxed())
    });
    let (read, loaded) = {
        let reader = stream_rows(src, select, tx, digest, progress, what);
        let writer = dst.query_drop(load_data_sql(shape, upsert));
        tokio::pin!(reader, writer);
        let mut read: Option<Result<(u64, u64), CopyError>> = None;
        let loaded = loop {
            tokio::select! {
                r = &mut reader, if read.is_none() => read = Some(r),
                w = &mut writer => break w,
            }
        };
        (read, loaded)
    };
    // If the LOAD ended first (it failed, or the server never asked for the file), the reader
    // may be blocked on a full channel: it is dropped here, unfinished.
    match (read, loaded) {
        (Some(Err(read_err)), _) => Err(read_err),
        (_, Err(e)) => Err(CopyError::dest_sql(what, "loading the rows (LOAD DATA)", e)),
        (None, Ok(())) => Err(CopyError::Invariant {
            table: what.to_owned(),
            detail: "the LOAD finished before the rows were all read".into(),
        }),
        (Some(Ok((rows, bytes))), Ok(())) => {
            check_stored(dst, rows, upsert, what).await?;
            Ok((rows, bytes))
        }
    }
}

/// Rows sent must equal rows stored, with no warning (LOAD DATA LOCAL reports truncations,
/// conversions and duplicate keys as warnings and goes on). An upsert counts a replaced row as a
/// delete plus an insert, so there at least every row sent must have been stored.
async fn check_stored(
    dst: &mut Conn,
    sent: u64,
    upsert: bool,
    what: &str,
) -> Result<(), CopyError> {
    let stored = dst.affected_rows();
    if dst.get_warnings() > 0 {
        let warnings: Vec<(String, u32, String)> = dst
            .query("SHOW WARNINGS LIMIT 5")
            .await
            .map_err(|e| CopyError::dest_sql(what, "reading the load's warnings", e))?;
        let text = warnings
            .iter()
            .map(|(level, code, message)| format!("{level} {code}: {message}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(CopyError::Warnings {
            chunk: what.to_owned(),
            warnings: text,
        });
    }
    if (upsert && stored < sent) || (!upsert && stored != sent) {
        return Err(CopyError::RowCountMismatch {
            chunk: what.to_owned(),
            sent,
            stored,
        });
    }
    Ok(())
}

/// The reader half of a LOAD: streams the source rows (text protocol), encodes them, and sends
/// buffers into the channel. Dropping `tx` (returning) ends the LOAD's input.
async fn stream_rows(
    src: &mut Conn,
    select: Vec<u8>,
    tx: mpsc::Sender<io::Result<Bytes>>,
    mut digest: Option<&mut RowDigest>,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
    what: &str,
) -> Result<(u64, u64), CopyError> {
    let fail = |detail: String| CopyError::Stream {
        chunk: what.to_owned(),
        detail,
    };
    let mut encoder = LoadEncoder::new(LOAD_BUFFER_BYTES);
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut reported = ChunkProgress::default();
    let outcome: Result<(), CopyError> = async {
        let mut result = src
            .query_iter(select)
            .await
            .map_err(|e| CopyError::source_sql(what, "reading the rows", e))?;
        let mut stream = result
            .stream::<Row>()
            .await
            .map_err(|e| CopyError::source_sql(what, "reading the rows", e))?
            .ok_or_else(|| fail("the SELECT returned no result set".into()))?;
        while let Some(row) = stream.next().await {
            let row = row.map_err(|e| CopyError::source_sql(what, "reading the rows", e))?;
            let values = row.unwrap_raw();
            rows += 1;
            bytes += encoder.push_row(&values) as u64;
            if let Some(digest) = digest.as_deref_mut() {
                digest.push_row(&values);
            }
            if let Some(buffer) = encoder.take_full() {
                send_pieces(&tx, buffer)
                    .await
                    .map_err(|_| fail("the destination stopped reading".into()))?;
                // Test hook: rows are on their way into the LOAD, nothing is committed.
                crate::crash::point("chunk.mid_load");
                progress(ChunkProgress {
                    rows: rows - reported.rows,
                    bytes: bytes - reported.bytes,
                });
                reported = ChunkProgress { rows, bytes };
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        // Make the LOAD fail rather than end cleanly on a partial stream.
        let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
        return Err(e);
    }
    if let Some(buffer) = encoder.take_rest() {
        send_pieces(&tx, buffer)
            .await
            .map_err(|_| fail("the destination stopped reading".into()))?;
    }
    progress(ChunkProgress {
        rows: rows - reported.rows,
        bytes: bytes - reported.bytes,
    });
    Ok((rows, bytes))
}

/// Sends a buffer in pieces of at most [`LOAD_BUFFER_BYTES`]: the driver writes each piece as
/// one packet, and a packet over `max_allowed_packet` (a row of 60 MB, escaped) is refused.
async fn send_pieces(
    tx: &mpsc::Sender<io::Result<Bytes>>,
    mut buffer: Bytes,
) -> Result<(), mpsc::error::SendError<io::Result<Bytes>>> {
    while buffer.len() > LOAD_BUFFER_BYTES {
        tx.send(Ok(buffer.split_to(LOAD_BUFFER_BYTES))).await?;
    }
    tx.send(Ok(buffer)).await
}

/// The fallback writer: multi-row INSERTs of about 2 MB while the rows stream in.
#[allow(clippy::too_many_arguments)]
async fn insert(
    src: &mut Conn,
    dst: &mut Conn,
    shape: &TableShape,
    select: Vec<u8>,
    upsert: bool,
    mut digest: Option<&mut RowDigest>,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
    what: &str,
) -> Result<(u64, u64), CopyError> {
    let read_err = |e| CopyError::source_sql(what, "reading the rows", e);
    let mut encoder = InsertEncoder::new(shape, INSERT_STATEMENT_BYTES, upsert);
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut result = src.query_iter(select).await.map_err(read_err)?;
    let mut stream = result
        .stream::<Row>()
        .await
        .map_err(read_err)?
        .ok_or_else(|| CopyError::Stream {
            chunk: what.to_owned(),
            detail: "the SELECT returned no result set".into(),
        })?;
    let mut pending = None;
    loop {
        let next = stream.next().await;
        let done = next.is_none();
        if let Some(row) = next {
            let row = row.map_err(read_err)?;
            let values = row.unwrap_raw();
            rows += 1;
            bytes += encoder.push_row(&values) as u64;
            if let Some(digest) = digest.as_deref_mut() {
                digest.push_row(&values);
            }
            pending = encoder.take_full();
        } else {
            pending = pending.or_else(|| encoder.take_rest());
        }
        if let Some((sql, n)) = pending.take() {
            let sql_bytes = sql.len() as u64;
            dst.query_drop(sql)
                .await
                .map_err(|e| CopyError::dest_sql(what, "inserting the rows", e))?;
            check_stored(dst, n, upsert, what).await?;
            progress(ChunkProgress {
                rows: n,
                bytes: sql_bytes,
            });
        }
        if done {
            break;
        }
    }
    Ok((rows, bytes))
}
