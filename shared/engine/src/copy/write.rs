//! The three writers of a chunk's rows, each reading the source's rows (text protocol, in the
//! chunk's snapshot) while it writes them on the destination, inside the chunk's transaction:
//!
//! - [`bulk`] (MariaDB 10.2+, the default there): one prepared INSERT run with
//!   `COM_STMT_BULK_EXECUTE` over batches of about 64 KB of parameters. The server takes each value
//!   as it is, without parsing a text stream byte by byte: measured on the benchmark's table it
//!   costs the destination a third less CPU than LOAD DATA.
//! - [`load`] (MySQL, where `local_infile` is on): one `LOAD DATA LOCAL INFILE` fed from a bounded
//!   channel.
//! - [`insert`] (neither): multi-row INSERTs of about 2 MB.
//!
//! Memory stays bounded by a few buffers or batches plus the largest row. Every writer checks
//! that the destination stored every row it was sent, with no warning.

use std::future::Future;
use std::io;

use bytes::Bytes;
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Statement};
use tokio::sync::mpsc;

use super::encode::{
    BulkBatch, BulkEncoder, InsertEncoder, LoadEncoder, RowEncoder, insert_params_sql,
    load_data_sql,
};
use super::shape::TableShape;
use super::types::ChunkProgress;
use super::verify::RowDigest;
use crate::error::CopyError;

/// Buffers handed to the LOAD stream are about this big.
const LOAD_BUFFER_BYTES: usize = 256 * 1024;
/// How many buffers may wait between the reader and the LOAD: the memory bound.
const LOAD_CHANNEL_BUFFERS: usize = 4;
/// How many bulk batches may wait between the reader and the writer (a batch's rows take about
/// three times their parameter bytes in memory).
const BULK_CHANNEL_BATCHES: usize = 2;
/// INSERT statements are about this big (the 1-4 MB).
const INSERT_STATEMENT_BYTES: usize = 2 * 1024 * 1024;

/// What every writer needs besides the two sessions.
pub(super) struct RowsOut<'a> {
    pub shape: &'a TableShape,
    /// The source's `SELECT` of the chunk's rows.
    pub select: Vec<u8>,
    /// An incremental chunk's upsert (`REPLACE`).
    pub upsert: bool,
    /// The source side's digest, fed every row as it streams by.
    pub digest: Option<&'a mut RowDigest>,
    pub progress: &'a (dyn Fn(ChunkProgress) + Send + Sync),
    /// The chunk, for errors.
    pub what: &'a str,
}

/// Runs a bulk load: the reader batches rows while the writer executes the batches before them.
/// Returns the rows and parameter bytes sent. The session's `character_set_client` is left
/// `binary`: the caller restores it with [`RESTORE_CLIENT_CS`] before its next statement that
/// holds text (in the same round trip as its COMMIT where it can).
pub(super) async fn bulk(
    src: &mut Conn,
    dst: &mut Conn,
    out: RowsOut<'_>,
    batch_bytes: usize,
    max_allowed_packet: u64,
) -> Result<(u64, u64), CopyError> {
    let (shape, upsert, what) = (out.shape, out.upsert, out.what);
    let stmt = dst
        .prep(insert_params_sql(shape, upsert))
        .await
        .map_err(|e| CopyError::dest_sql(what, "preparing the bulk INSERT", e))?;
    // Parameters are taken in the client character set of each execution: binary stores the
    // source's bytes as they are, in the column's own character set (as LOAD DATA's CHARACTER
    // SET binary does). Only for the bulk executions: other statements hold text literals.
    dst.query_drop(
        "SET @tidemark_client_cs = @@character_set_client, character_set_client = binary",
    )
    .await
    .map_err(|e| CopyError::dest_sql(what, "setting the client character set", e))?;
    let writer = &mut *dst;
    let sent = pump(
        src,
        out,
        BulkEncoder::new(batch_bytes),
        BULK_CHANNEL_BATCHES,
        |mut rx| {
            async move {
                // An `Err` is the reader's failure, which it reports itself.
                while let Some(Ok(batch)) = rx.recv().await {
                    fits_a_packet(&batch, shape.columns.len(), max_allowed_packet, what)?;
                    write_batch(writer, &stmt, batch, upsert, what).await?;
                }
                Ok(())
            }
        },
    )
    .await?;
    Ok(sent)
}

/// Restores the client character set [`bulk`] switched to `binary`.
pub(super) const RESTORE_CLIENT_CS: &str = "SET character_set_client = @tidemark_client_cs";

/// A bulk packet's bytes besides the parameters: command, statement id, flags, the packet
/// header, and two bytes of type per column.
fn bulk_overhead(columns: usize) -> u64 {
    16 + 2 * columns as u64
}

/// A batch goes to the server as one packet, and only a single row can make one bigger than the
/// destination's `max_allowed_packet` (see `BulkEncoder`); the driver would refuse it before
/// sending, so it is a clear error instead (the chunk falls back to LOAD DATA where that is
/// allowed, which streams a row in pieces).
fn fits_a_packet(
    batch: &BulkBatch,
    columns: usize,
    max_allowed_packet: u64,
    what: &str,
) -> Result<(), CopyError> {
    let bytes = batch.bytes as u64;
    if bytes + bulk_overhead(columns) <= max_allowed_packet {
        return Ok(());
    }
    Err(CopyError::RowTooLarge {
        chunk: what.to_owned(),
        bytes,
        max_allowed_packet,
        suggested: (2 * bytes).div_ceil(1 << 20) << 20,
    })
}

/// One batch: a bulk execution, then its accounting.
async fn write_batch(
    dst: &mut Conn,
    stmt: &Statement,
    batch: BulkBatch,
    upsert: bool,
    what: &str,
) -> Result<(), CopyError> {
    let sent = batch.rows.len() as u64;
    // `Params::Positional` as they are: the driver's `From<Vec<_>>` would copy every value.
    let rows = batch.rows.into_iter().map(Params::Positional);
    let result = dst.exec_batch(stmt, rows).await;
    result.map_err(|e| CopyError::dest_sql(what, "inserting the rows (bulk)", e))?;
    check_stored(dst, sent, upsert, what).await
}

/// Reads rows and feeds them to a LOAD DATA running at the same time on the destination.
pub(super) async fn load(
    src: &mut Conn,
    dst: &mut Conn,
    out: RowsOut<'_>,
) -> Result<(u64, u64), CopyError> {
    let (shape, upsert, what) = (out.shape, out.upsert, out.what);
    let encoder = LoadEncoder::new(LOAD_BUFFER_BYTES);
    let writer = &mut *dst;
    let (rows, bytes) = pump(src, out, encoder, LOAD_CHANNEL_BUFFERS, |rx| {
        // One-shot: set before every LOAD.
        writer.set_infile_handler(async move {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
            .flat_map(|item| futures_util::stream::iter(pieces(item)));
            Ok(stream.boxed())
        });
        async move {
            writer
                .query_drop(load_data_sql(shape, upsert))
                .await
                .map_err(|e| CopyError::dest_sql(what, "loading the rows (LOAD DATA)", e))
        }
    })
    .await?;
    check_stored(dst, rows, upsert, what).await?;
    Ok((rows, bytes))
}

/// A buffer in pieces of at most [`LOAD_BUFFER_BYTES`] for the LOAD's stream: the driver writes
/// each piece as one packet, and a packet over `max_allowed_packet` (a row of 60 MB, escaped) is
/// refused. The reader's failure becomes the stream's error, so the LOAD fails rather than end
/// cleanly on a partial stream.
fn pieces(item: Result<Bytes, String>) -> Vec<io::Result<Bytes>> {
    match item {
        Ok(mut buffer) => {
            let mut out = Vec::with_capacity(1 + buffer.len() / LOAD_BUFFER_BYTES);
            while buffer.len() > LOAD_BUFFER_BYTES {
                out.push(Ok(buffer.split_to(LOAD_BUFFER_BYTES)));
            }
            out.push(Ok(buffer));
            out
        }
        Err(e) => vec![Err(io::Error::other(e))],
    }
}

/// Streams the chunk's rows through `encoder` into a channel of `capacity` pieces, which the
/// future `writer` makes of the channel's receiving end consumes at the same time. Returns the
/// rows and bytes sent, once both are done.
async fn pump<E, F, W>(
    src: &mut Conn,
    out: RowsOut<'_>,
    encoder: E,
    capacity: usize,
    writer: F,
) -> Result<(u64, u64), CopyError>
where
    E: RowEncoder,
    F: FnOnce(mpsc::Receiver<Result<E::Out, String>>) -> W,
    W: Future<Output = Result<(), CopyError>>,
{
    let (tx, rx) = mpsc::channel(capacity);
    let RowsOut {
        select,
        digest,
        progress,
        what,
        ..
    } = out;
    let reader = stream_rows(src, select, encoder, tx, digest, progress, what);
    let (read, written) = both(reader, writer(rx)).await;
    settle(read, written, what)
}

/// Polls the reader and the writer together until the writer ends (it ends when the reader has
/// ended its input, or on its own failure: the reader may then be blocked on a full channel, and
/// is dropped unfinished).
async fn both<R, W>(reader: R, writer: W) -> (Option<R::Output>, W::Output)
where
    R: Future,
    W: Future,
{
    tokio::pin!(reader, writer);
    let mut read = None;
    loop {
        tokio::select! {
            r = &mut reader, if read.is_none() => read = Some(r),
            w = &mut writer => return (read, w),
        }
    }
}

/// The outcome of a reader and a writer: the reader's error first (it explains the writer's).
fn settle(
    read: Option<Result<(u64, u64), CopyError>>,
    written: Result<(), CopyError>,
    what: &str,
) -> Result<(u64, u64), CopyError> {
    match (read, written) {
        (Some(Err(read_err)), _) => Err(read_err),
        (_, Err(e)) => Err(e),
        (None, Ok(())) => Err(CopyError::Invariant {
            table: what.to_owned(),
            detail: "the destination finished before the rows were all read".into(),
        }),
        (Some(Ok(sent)), Ok(())) => Ok(sent),
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

/// The reader half of a writer: streams the source rows (text protocol), digests them, encodes
/// them and sends the pieces into the channel. Dropping `tx` (returning) ends the writer's input;
/// a failure is sent as an `Err` first.
async fn stream_rows<E: RowEncoder>(
    src: &mut Conn,
    select: Vec<u8>,
    mut encoder: E,
    tx: mpsc::Sender<Result<E::Out, String>>,
    mut digest: Option<&mut RowDigest>,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
    what: &str,
) -> Result<(u64, u64), CopyError> {
    let fail = |detail: String| CopyError::Stream {
        chunk: what.to_owned(),
        detail,
    };
    let stopped = |_| fail("the destination stopped reading".into());
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
            if let Some(digest) = digest.as_deref_mut() {
                digest.push_row(&values);
            }
            bytes += encoder.push(values) as u64;
            let mut sent = false;
            while let Some(piece) = encoder.full() {
                tx.send(Ok(piece)).await.map_err(stopped)?;
                sent = true;
            }
            if sent {
                // Test hook: rows are on their way to the destination, nothing is committed.
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
        let _ = tx.send(Err(e.to_string())).await;
        return Err(e);
    }
    while let Some(piece) = encoder.rest() {
        tx.send(Ok(piece)).await.map_err(stopped)?;
    }
    progress(ChunkProgress {
        rows: rows - reported.rows,
        bytes: bytes - reported.bytes,
    });
    Ok((rows, bytes))
}

/// The fallback writer: multi-row INSERTs of about 2 MB while the rows stream in.
pub(super) async fn insert(
    src: &mut Conn,
    dst: &mut Conn,
    out: RowsOut<'_>,
) -> Result<(u64, u64), CopyError> {
    let RowsOut {
        shape,
        select,
        upsert,
        mut digest,
        progress,
        what,
    } = out;
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
