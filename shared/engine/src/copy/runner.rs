//! The table copier: plans tables, then copies all their chunks with `workers` chunks at once,
//! reporting progress as it goes and a report per table at the end.
//!
//! The run orchestrator calls [`plan_table`] after the schema's pre-data phase (tables exist,
//! with their primary keys) and [`copy_tables`] before its post-data phase (secondary indexes,
//! triggers). On Lambda the same [`Chunk`]s are copied one by one with
//! [`super::chunk::copy_chunk`]; this runner is the local, in-process fan-out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::Retryable;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use tidemark_core::Channel;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::chunk::{
    ChunkOptions, ChunkProgress, ChunkReport, SessionHold, WriteMethod, copy_chunk, copy_chunk_held,
};
use super::plan::{Chunk, RowWindow, by_size, plan_chunks_split, plan_window_chunks};
use super::session::CopyEndpoints;
use super::shape::{TableCopySpec, TableShape, read_shape};
use super::sql::qualified;
use crate::error::CopyError;
use crate::retry::RetryPolicy;

/// One table, planned: its shape, its chunks, and whether the destination table was empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePlan {
    pub shape: TableShape,
    pub chunks: Vec<Chunk>,
    /// An empty destination table copied as one chunk is loaded with `unique_checks = 0`.
    pub dest_was_empty: bool,
    /// The bytes its rows are expected to carry (0 when not estimated): several small tables
    /// share a step up to a chunk's worth.
    #[serde(default)]
    pub estimated_bytes: u64,
}

/// Reads a table's shape, plans its chunks of about `target_bytes` (see
/// [`super::plan::chunk_bytes`]) and checks whether the destination table is empty.
pub async fn plan_table(
    endpoints: &CopyEndpoints,
    spec: &TableCopySpec,
    target_bytes: u64,
) -> Result<TablePlan, CopyError> {
    let started = Instant::now();
    let mut src = endpoints.source_conn().await?;
    let shape = read_shape(&mut src, spec).await?;
    drop(src);
    let chunks = plan_chunks_split(endpoints, &shape, target_bytes, endpoints.workers).await?;
    tracing::debug!(
        table = %spec.display(),
        chunks = chunks.len(),
        plan_ms = started.elapsed().as_millis(),
        "table planned"
    );
    let mut dst = endpoints.destination_conn().await?;
    let dest = qualified(&spec.dest_db, &spec.dest_table);
    let any: Option<u8> = dst
        .query_first(format!("SELECT 1 FROM {dest} LIMIT 1"))
        .await
        .map_err(|e| CopyError::dest_sql(&dest, "checking whether the table is empty", e))?;
    Ok(TablePlan {
        shape,
        chunks,
        dest_was_empty: any.is_none(),
        estimated_bytes: 0,
    })
}

/// Like [`plan_table`] for an incremental run: the chunks carry `window`, so each upserts the
/// window's rows and never clears its range.
pub async fn plan_table_in_window(
    endpoints: &CopyEndpoints,
    spec: &TableCopySpec,
    target_bytes: u64,
    window: &RowWindow,
) -> Result<TablePlan, CopyError> {
    let mut src = endpoints.source_conn().await?;
    let shape = read_shape(&mut src, spec).await?;
    let chunks = plan_window_chunks(&mut src, &shape, target_bytes, window).await?;
    Ok(TablePlan {
        shape,
        chunks,
        dest_was_empty: false,
        estimated_bytes: 0,
    })
}

/// How to run a copy.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// Chunks copied at once.
    pub workers: u32,
    pub verify: bool,
    /// `None`: LOAD DATA where the destination allows it.
    pub method: Option<WriteMethod>,
    /// How a chunk that failed retryably is retried.
    pub retry: RetryPolicy,
}

impl From<&Channel> for CopyOptions {
    fn from(channel: &Channel) -> Self {
        CopyOptions {
            workers: channel.workers,
            verify: channel.verify,
            method: None,
            retry: crate::retry::CHUNK_RETRY,
        }
    }
}

/// What the copier reports while it runs (for progress bars) — `table` is the source
/// `` `db`.`table` ``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyEvent {
    /// More rows of a chunk were sent.
    Progress {
        table: String,
        chunk: u32,
        rows: u64,
        bytes: u64,
    },
    /// A chunk committed.
    ChunkDone { table: String, report: ChunkReport },
}

/// Whether a table's rows were verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Every chunk's row count and checksum matched.
    Verified,
    /// Verification was turned off.
    Off,
    /// An incremental (upsert) copy: rows sent = rows stored, with no warning; a range checksum
    /// does not apply (the destination keeps rows of earlier windows and rows deleted since).
    Counted,
}

/// One table's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReport {
    /// `` `db`.`table` `` on the source.
    pub table: String,
    /// `` `db`.`table` `` on the destination.
    pub dest_table: String,
    pub rows: u64,
    pub bytes: u64,
    pub chunks: u32,
    /// From its first chunk's start to its last chunk's end.
    pub elapsed: Duration,
    pub verification: Verification,
    /// Why the table was copied as one stream, if it was.
    pub warning: Option<String>,
}

/// Copies every chunk of every plan, `options.workers` at a time. The first failure stops new
/// chunks from starting; chunks already running finish (each commits or rolls back on its own),
/// and the first error is returned. Committed chunks stay: running the copy again redoes every
/// chunk idempotently.
pub async fn copy_tables(
    endpoints: Arc<CopyEndpoints>,
    plans: Arc<Vec<TablePlan>>,
    options: CopyOptions,
    on_event: Arc<dyn Fn(CopyEvent) + Send + Sync>,
) -> Result<Vec<TableReport>, CopyError> {
    let permits = Arc::new(Semaphore::new(
        usize::try_from(options.workers.max(1)).unwrap_or(1),
    ));
    let mut tasks = JoinSet::new();
    let mut first_error: Option<CopyError> = None;
    let mut reports: HashMap<usize, (TableReport, Instant, Instant)> = HashMap::new();

    let mut work: Vec<(usize, usize)> = plans
        .iter()
        .enumerate()
        .flat_map(|(t, plan)| (0..plan.chunks.len()).map(move |c| (t, c)))
        .collect();
    by_size(&mut work, |&(t, c)| plans[t].chunks[c].estimated_rows);
    for (t, c) in work {
        // Wait for a free worker, collecting finished chunks meanwhile.
        let permit = loop {
            tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => break permit,
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    record(done, &plans, &mut reports, &mut first_error);
                }
            }
        };
        let Ok(permit) = permit else { break };
        if first_error.is_some() {
            break;
        }
        let endpoints = Arc::clone(&endpoints);
        let plans_for_task = Arc::clone(&plans);
        let on_event = Arc::clone(&on_event);
        tasks.spawn(async move {
            let _permit = permit;
            let plan = &plans_for_task[t];
            let chunk = &plan.chunks[c];
            let table = plan.shape.spec.display();
            let chunk_options = ChunkOptions {
                verify: options.verify,
                defer_check: false,
                method: options.method,
            };
            let started = Instant::now();
            let report_progress = |p: ChunkProgress| {
                on_event(CopyEvent::Progress {
                    table: table.clone(),
                    chunk: chunk.index,
                    rows: p.rows,
                    bytes: p.bytes,
                })
            };
            let result = copy_chunk_with_retry(
                &endpoints,
                &plan.shape,
                chunk,
                &chunk_options,
                &options.retry,
                &report_progress,
            )
            .await;
            if let Ok(report) = &result {
                on_event(CopyEvent::ChunkDone {
                    table: table.clone(),
                    report: report.clone(),
                });
            }
            (t, started, result)
        });
    }
    while let Some(done) = tasks.join_next().await {
        record(done, &plans, &mut reports, &mut first_error);
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let mut out = Vec::with_capacity(plans.len());
    for (t, plan) in plans.iter().enumerate() {
        let (mut report, first, last) = reports
            .remove(&t)
            .unwrap_or_else(|| (empty_report(plan), Instant::now(), Instant::now()));
        report.elapsed = last.saturating_duration_since(first);
        let upserted = plan.chunks.iter().any(|c| c.window.is_some());
        report.verification = if options.verify && upserted {
            Verification::Counted
        } else if options.verify {
            Verification::Verified
        } else {
            Verification::Off
        };
        out.push(report);
    }
    Ok(out)
}

/// Copies one chunk, retrying a retryable failure as [`RetryPolicy::default`] says. A chunk is
/// idempotent (its range is cleared in the same transaction as the load), so a deadlock between
/// neighbouring chunks, a lost connection or a restarted server is retried before it fails the
/// copy.
/// `hold`: see [`copy_chunk_held`].
pub async fn copy_chunk_retrying(
    endpoints: &CopyEndpoints,
    hold: Option<&SessionHold>,
    shape: &TableShape,
    chunk: &Chunk,
    options: &ChunkOptions,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
) -> Result<ChunkReport, CopyError> {
    retrying(&crate::retry::CHUNK_RETRY, &chunk.display(), || {
        copy_chunk_held(endpoints, hold, shape, chunk, options, progress)
    })
    .await
}

/// [`copy_chunk_retrying`] with its retries' count and delays given.
pub async fn copy_chunk_with_retry(
    endpoints: &CopyEndpoints,
    shape: &TableShape,
    chunk: &Chunk,
    options: &ChunkOptions,
    retry: &RetryPolicy,
    progress: &(dyn Fn(ChunkProgress) + Send + Sync),
) -> Result<ChunkReport, CopyError> {
    retrying(retry, &chunk.display(), || {
        copy_chunk(endpoints, shape, chunk, options, progress)
    })
    .await
}

/// Runs `attempt` until it succeeds, fails with an error that retrying cannot fix, or `retry`
/// has no retry left.
async fn retrying<T, F, Fut>(retry: &RetryPolicy, what: &str, attempt: F) -> Result<T, CopyError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CopyError>>,
{
    attempt
        .retry(retry.delays())
        .when(CopyError::is_retryable)
        .notify(|error, delay| {
            tracing::warn!(chunk = %what, ?delay, %error, "retrying a chunk");
        })
        .await
}

type ChunkOutcome = (usize, Instant, Result<ChunkReport, CopyError>);

fn record(
    done: Result<ChunkOutcome, tokio::task::JoinError>,
    plans: &[TablePlan],
    reports: &mut HashMap<usize, (TableReport, Instant, Instant)>,
    first_error: &mut Option<CopyError>,
) {
    match done {
        Ok((t, started, Ok(chunk))) => {
            let Some(plan) = plans.get(t) else { return };
            let entry = reports
                .entry(t)
                .or_insert_with(|| (empty_report(plan), started, started));
            entry.0.rows += chunk.rows;
            entry.0.bytes += chunk.bytes;
            entry.0.chunks += 1;
            entry.1 = entry.1.min(started);
            entry.2 = entry.2.max(Instant::now());
        }
        Ok((_, _, Err(e))) => {
            first_error.get_or_insert(e);
        }
        Err(join) => {
            first_error.get_or_insert(CopyError::Invariant {
                table: "a chunk task".into(),
                detail: join.to_string(),
            });
        }
    }
}

fn empty_report(plan: &TablePlan) -> TableReport {
    let spec = &plan.shape.spec;
    TableReport {
        table: spec.display(),
        dest_table: qualified(&spec.dest_db, &spec.dest_table),
        rows: 0,
        bytes: 0,
        chunks: 0,
        elapsed: Duration::ZERO,
        verification: Verification::Off,
        warning: plan.shape.key_warning.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Tiny waits: the tests count tries, they do not wait for real.
    fn quick(max_retries: usize) -> RetryPolicy {
        RetryPolicy {
            min_delay: Duration::from_micros(10),
            max_delay: Duration::from_micros(40),
            max_retries,
        }
    }

    fn lost_stream() -> CopyError {
        CopyError::Stream {
            chunk: "chunk 0".into(),
            detail: "connection reset".into(),
        }
    }

    #[tokio::test]
    async fn a_retryable_failure_is_tried_once_plus_the_retries() {
        for retries in [0, 1, 4] {
            let tries = AtomicU32::new(0);
            let result: Result<(), CopyError> = retrying(&quick(retries), "chunk 0", || async {
                tries.fetch_add(1, Ordering::Relaxed);
                Err(lost_stream())
            })
            .await;
            assert!(
                matches!(result, Err(CopyError::Stream { .. })),
                "{result:?}"
            );
            assert_eq!(tries.load(Ordering::Relaxed), retries as u32 + 1);
        }
    }

    #[tokio::test]
    async fn a_failure_retrying_cannot_fix_is_not_retried() {
        let tries = AtomicU32::new(0);
        let result: Result<(), CopyError> = retrying(&quick(4), "chunk 0", || async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(CopyError::TableNotFound {
                table: "`db`.`t`".into(),
            })
        })
        .await;
        assert!(matches!(result, Err(CopyError::TableNotFound { .. })));
        assert_eq!(tries.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_retry_that_succeeds_returns_its_result() {
        let tries = AtomicU32::new(0);
        let result = retrying(&quick(4), "chunk 0", || async {
            match tries.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Err(lost_stream()),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(result.ok(), Some(2));
    }

    #[test]
    fn copy_options_from_a_channel_retry_as_today() {
        let options = CopyOptions::from(&Channel::default());
        assert_eq!(options.retry, crate::retry::CHUNK_RETRY);
    }
}
