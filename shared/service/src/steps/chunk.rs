//! A Chunk step: one key range of one table copied, verified and committed.

use std::sync::Arc;
use std::time::Instant;

use tidemark_core::ports::ProgressDelta;
use tidemark_core::state::StepRecord;
use tidemark_engine::copy::{ChunkOptions, ChunkProgress, CopyEndpoints, copy_chunk_retrying};
use tidemark_engine::crash;

use super::record::settle;
use crate::checks::defers_check;
use crate::context::{Ctx, CycleEvent, update_run};
use crate::error::ServiceError;
use crate::payload::{ChunkPayload, StepChecksum, decode, encode};

/// A claimed Chunk step's work: the copy (retried on a retryable failure), the step settled, the
/// table's counters and the run's count added to.
pub(crate) async fn chunk(
    ctx: &Ctx<'_>,
    endpoints: &CopyEndpoints,
    record: StepRecord,
) -> Result<(), ServiceError> {
    let payload: ChunkPayload = decode(&record)?;
    let verify = ctx.spec().channel.verify;
    let options = ChunkOptions {
        verify,
        defer_check: verify && defers_check(&ctx.spec().policy),
        unique_checks_off: payload.unique_checks_off,
        method: None,
    };
    let table = payload.table.clone();
    let on_event = Arc::clone(ctx.on_event);
    let progress_table = table.clone();
    let progress = move |p: ChunkProgress| {
        on_event(CycleEvent::Progress {
            table: progress_table.clone(),
            rows: p.rows,
            bytes: p.bytes,
        });
    };
    let started = Instant::now();
    let report = copy_chunk_retrying(
        endpoints,
        &payload.shape,
        &payload.chunk,
        &options,
        &progress,
    )
    .await?;
    // Test hook: the chunk committed, its step is not recorded done.
    crash::point("chunk.committed");
    let checksum = match &report.checksum {
        Some(c) => Some(
            encode(&StepChecksum {
                rows: c.rows,
                sum: c.sum.clone(),
                pending: options.defer_check,
            })?
            .to_string(),
        ),
        None => None,
    };
    settle(ctx, record, Ok((report.rows, report.bytes, checksum))).await?;
    // Test hook: the step is done, the run's counters are not added to.
    crash::point("chunk.recorded");
    let delta = ProgressDelta {
        rows: report.rows,
        bytes: report.bytes,
        chunks_done: 1,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        // A deferred check counts once Finalize has compared it (see reconcile_counters).
        verified: u32::from(report.checksum.is_some() && !options.defer_check),
        mismatched: 0,
    };
    ctx.store
        .add_progress(ctx.key, &table, &delta, ctx.expires_at)
        .await?;
    ctx.store.increment_chunks_done(ctx.key).await?;
    let now = ctx.clock.now();
    update_run(ctx.store, ctx.key, |r| r.heartbeat = now).await?;
    (ctx.on_event)(CycleEvent::ChunkDone { table });
    Ok(())
}
