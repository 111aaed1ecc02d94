//! The chunk copier: one key range, read from a consistent snapshot on the source and written in
//! one destination transaction that first clears the range, so that running a chunk twice (after
//! a crash, a retry, a duplicate queue message) leaves exactly one copy of every row.
//!
//! Writing (see [`super::write`]) is bulk executions of one prepared INSERT on MariaDB, one
//! `LOAD DATA LOCAL INFILE` elsewhere, or 1-4 MB multi-row INSERTs where the destination refuses
//! LOCAL INFILE, always while the rows stream in. LOAD DATA LOCAL turns errors into warnings and
//! commits whatever it received when its stream fails, so for every writer: one transaction,
//! rows sent == rows stored, no warning, the checksum compared, and only then COMMIT; anything
//! else rolls back.

use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use super::plan::Chunk;
use super::pooled::Session;
use super::session::CopyEndpoints;
use super::shape::TableShape;
use super::sql::{SqlBuf, qualified, quote_ident};
pub use super::types::{ChunkProgress, WriteMethod};
use super::verify::{Checksum, RowDigest, SumSql, checksum_with, compare};
use super::write::{self, RowsOut};
use crate::error::{CopyError, Side};

/// Server errors that mean "LOCAL INFILE is off here": fall back to INSERTs.
const LOCAL_INFILE_REFUSED: &[u16] = &[1148, 3948, 4166];

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
    /// `None`: the destination's best ([`CopyEndpoints::default_method`]).
    pub method: Option<WriteMethod>,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            verify: true,
            defer_check: false,
            method: None,
        }
    }
}

/// What one committed chunk did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkReport {
    pub index: u32,
    pub rows: u64,
    /// Bytes of row data sent (bulk parameters, LOAD DATA or INSERT text).
    pub bytes: u64,
    pub elapsed: Duration,
    pub method: WriteMethod,
    /// The checksum both sides agreed on (with `defer_check`: the source's side, still to be
    /// compared); `None` when verification was off.
    pub checksum: Option<Checksum>,
}

/// The two sessions a step that copies several small tables keeps from one chunk to the next.
/// A chunk that committed leaves its sessions here, their transactions ended, and the next chunk
/// takes them: returned to the pool, each would be reset and set up again, three round trips a
/// side for every table. A chunk that fails drops its sessions, and the pool resets them (a
/// reset also ends whatever transaction the failure left open).
#[derive(Default)]
pub struct SessionHold(std::sync::Mutex<Option<(Session, Session)>>);

impl SessionHold {
    fn take(&self) -> Option<(Session, Session)> {
        self.0.lock().ok()?.take()
    }

    fn keep(&self, src: Session, dst: Session) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((src, dst));
        }
    }
}

/// Copies one chunk, exactly once in effect, and reports progress deltas through `progress`.
pub async fn copy_chunk(
    endpoints: &CopyEndpoints,
    shape: &TableShape,
    chunk: &Chunk,
    options: &ChunkOptions,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
) -> Result<ChunkReport, CopyError> {
    copy_chunk_held(endpoints, None, shape, chunk, options, progress).await
}

/// [`copy_chunk`] on the sessions `hold` keeps, if it keeps any, leaving them there once the
/// chunk committed.
pub async fn copy_chunk_held(
    endpoints: &CopyEndpoints,
    hold: Option<&SessionHold>,
    shape: &TableShape,
    chunk: &Chunk,
    options: &ChunkOptions,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
) -> Result<ChunkReport, CopyError> {
    let method = options.method.unwrap_or(endpoints.default_method());
    let first = copy_chunk_with(endpoints, hold, shape, chunk, options, method, progress).await;
    let fallback = match &first {
        Err(CopyError::RowTooLarge { bytes, .. })
            if method == WriteMethod::Bulk && endpoints.local_infile =>
        {
            tracing::warn!(
                "{}: a row of {bytes} bytes does not fit in one packet of the destination's \
                 max_allowed_packet; copying this chunk with LOAD DATA LOCAL, which streams it",
                chunk.display()
            );
            WriteMethod::LoadData
        }
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
            WriteMethod::Insert
        }
        _ => return first,
    };
    copy_chunk_with(endpoints, hold, shape, chunk, options, fallback, progress).await
}

async fn copy_chunk_with(
    endpoints: &CopyEndpoints,
    hold: Option<&SessionHold>,
    shape: &TableShape,
    chunk: &Chunk,
    options: &ChunkOptions,
    method: WriteMethod,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
) -> Result<ChunkReport, CopyError> {
    let started = Instant::now();
    let what = chunk.display();
    let (mut src, mut dst) = match hold.and_then(SessionHold::take) {
        Some(pair) => pair,
        None => (
            endpoints.source_conn().await?,
            endpoints.destination_conn().await?,
        ),
    };
    let result = run(
        &mut src, &mut dst, endpoints, shape, chunk, options, method, progress, &what,
    )
    .await;
    match result {
        Ok((rows, bytes, checksum)) => {
            if let Some(hold) = hold {
                hold.keep(src, dst);
            }
            Ok(ChunkReport {
                index: chunk.index,
                rows,
                bytes,
                elapsed: started.elapsed(),
                method,
                checksum,
            })
        }
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
    // The source's rows are read by one SELECT, itself a consistent read: no transaction there.
    // An incremental chunk upserts the window's rows and never clears its range: the
    // destination's other rows in the range were copied by earlier runs.
    let upsert = chunk.window.is_some();
    // Only a range that holds rows is cleared. The probe is a plain read; a DELETE, even of an
    // empty range, locks the first row past the range's end, and in a table loaded by parallel
    // chunks that row is usually the next chunk's, uncommitted: the DELETE would wait for that
    // whole chunk (measured: 0.42 s of a 1M-row copy's first chunk). A row committed after the
    // probe (a dead earlier attempt's) makes the load store fewer rows than it sent, which
    // fails the chunk; its retry then finds and clears it.
    if begin_and_probe(dst, shape, chunk, upsert, what).await? {
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
    let out = RowsOut {
        shape,
        select,
        upsert,
        digest: digest.as_mut(),
        progress,
        what,
    };
    let (rows, bytes) = match method {
        WriteMethod::Bulk => {
            let (batch, packet) = (endpoints.bulk_batch_bytes(), endpoints.max_allowed_packet);
            write::bulk(src, dst, out, batch, packet).await?
        }
        WriteMethod::LoadData => write::load(src, dst, out).await?,
        WriteMethod::Insert => write::insert(src, dst, out).await?,
    };
    let loaded = started.elapsed();
    // The bulk writer left the client character set binary; it is restored before the next
    // statement that holds text: the checksum's, or in the COMMIT's round trip.
    let mut restore = method == WriteMethod::Bulk;

    let checksum = match digest {
        Some(digest) if options.defer_check => Some(digest.checksum()),
        Some(digest) => {
            if std::mem::take(&mut restore) {
                dst.query_drop(write::RESTORE_CLIENT_CS)
                    .await
                    .map_err(|e| {
                        CopyError::dest_sql(what, "restoring the client character set", e)
                    })?;
            }
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
    let commit = if restore {
        format!("{}; COMMIT", write::RESTORE_CLIENT_CS)
    } else {
        "COMMIT".to_owned()
    };
    dst.query_drop(commit)
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

/// Starts the destination's transaction and, unless the chunk upserts, reads whether the
/// destination holds a row in the chunk's key range (a plain read, no lock), in one round trip.
async fn begin_and_probe(
    dst: &mut Conn,
    shape: &TableShape,
    chunk: &Chunk,
    upsert: bool,
    what: &str,
) -> Result<bool, CopyError> {
    if upsert {
        dst.query_drop("BEGIN")
            .await
            .map_err(|e| CopyError::dest_sql(what, "starting the transaction", e))?;
        return Ok(false);
    }
    let mut sql = b"BEGIN; ".to_vec();
    sql.extend(dest_range_sql("SELECT 1 FROM", shape, chunk, " LIMIT 1"));
    let err = |e| CopyError::dest_sql(what, "looking for rows in the chunk's key range", e);
    let mut result = dst.query_iter(sql).await.map_err(err)?;
    let _: Vec<u8> = result.collect().await.map_err(err)?; // BEGIN's
    let rows: Vec<u8> = result.collect().await.map_err(err)?;
    result.drop_result().await.map_err(err)?;
    Ok(!rows.is_empty())
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
