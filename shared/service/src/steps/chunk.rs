//! A Chunk step: one key range of one table copied, verified and committed — or several small
//! tables' chunks, one after the other (see [`ChunkWork`]), each committed on its own.

use std::sync::Arc;
use std::time::Instant;

use tidemark_core::ports::ProgressDelta;
use tidemark_core::state::{PartDone, StepRecord};
use tidemark_engine::copy::{
    ChunkOptions, ChunkProgress, ChunkReport, CopyEndpoints, SessionHold, copy_chunk_retrying,
};
use tidemark_engine::crash;

use super::record::{settle, write_own};
use crate::checks::defers_check;
use crate::context::{Ctx, CycleEvent};
use crate::error::ServiceError;
use crate::payload::{ChunkPayload, ChunkWork, StepChecksum, decode, encode};

/// A claimed Chunk step's work: each part's copy (retried on a retryable failure), the step
/// settled, the tables' counters and the run's count added to. A part of a batch that fails
/// retryably does not stop the others: the parts that committed are recorded on the step
/// (`record` is updated), so the step's retry copies only what failed.
pub(crate) async fn chunk(
    ctx: &Ctx<'_>,
    endpoints: &CopyEndpoints,
    record: &mut StepRecord,
) -> Result<(), ServiceError> {
    let work: ChunkWork = decode(record)?;
    let batched = matches!(work, ChunkWork::Batch { .. });
    let parts = work.into_parts();
    let mut done: Vec<PartDone> = record.parts.clone();
    let mut elapsed_ms: Vec<(u32, u64)> = Vec::new();
    let mut failed: Option<ServiceError> = None;
    // The parts run one after the other on the same two sessions while they succeed.
    let hold = SessionHold::default();
    for (index, part) in (0u32..).zip(&parts) {
        if done.iter().any(|d| d.index == index) {
            continue;
        }
        let started = Instant::now();
        match copy_part(ctx, endpoints, &hold, part).await {
            Ok(report) => {
                // Test hook: the chunk committed, its step is not recorded done.
                crash::point("chunk.committed");
                done.push(PartDone {
                    index,
                    rows: report.rows,
                    bytes: report.bytes,
                    checksum: recorded_checksum(ctx, &report)?,
                });
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                elapsed_ms.push((index, ms));
            }
            Err(e) if batched && e.is_retryable() => {
                failed.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    done.sort_by_key(|d| d.index);
    if let Some(error) = failed {
        // The parts that committed are kept on the step: its retry copies only the others.
        record.parts = done;
        let owner = record.lease_owner.clone();
        write_own(ctx, record, owner.as_deref()).await?;
        return Err(error);
    }
    let outcome = if batched {
        let rows = done.iter().map(|d| d.rows).sum();
        let bytes = done.iter().map(|d| d.bytes).sum();
        record.parts = done.clone();
        (rows, bytes, None)
    } else {
        let one = done.first().cloned().ok_or_else(|| ServiceError::Invalid {
            field: "step".into(),
            message: format!("chunk step {} copied nothing", record.n),
        })?;
        (one.rows, one.bytes, one.checksum)
    };
    *record = settle(ctx, record.clone(), Ok(outcome)).await?;
    // Test hook: the step is done, the run's counters are not added to.
    crash::point("chunk.recorded");
    let defer = defers_check(&ctx.spec().policy);
    let deltas: Vec<(String, ProgressDelta)> = done
        .iter()
        .filter_map(|d| {
            let part = parts.get(usize::try_from(d.index).ok()?)?;
            let ms = elapsed_ms
                .iter()
                .find(|(i, _)| *i == d.index)
                .map_or(0, |e| e.1);
            Some((
                part.table.clone(),
                ProgressDelta {
                    rows: d.rows,
                    bytes: d.bytes,
                    chunks_done: 1,
                    elapsed_ms: ms,
                    // A deferred check counts once Finalize has compared it (reconcile_counters).
                    verified: u32::from(d.checksum.is_some() && !defer),
                    mismatched: 0,
                },
            ))
        })
        .collect();
    ctx.store
        .add_progress_many(ctx.key, &deltas, ctx.expires_at)
        .await?;
    ctx.store.increment_chunks_done(ctx.key).await?;
    // The run's heartbeat moves with the dispatch that follows (Driver::dispatch_next).
    for (table, _) in deltas {
        (ctx.on_event)(CycleEvent::ChunkDone { table });
    }
    Ok(())
}

/// One chunk copied (retried on a retryable failure) and committed.
async fn copy_part(
    ctx: &Ctx<'_>,
    endpoints: &CopyEndpoints,
    hold: &SessionHold,
    part: &ChunkPayload,
) -> Result<ChunkReport, ServiceError> {
    let verify = ctx.spec().channel.verify;
    let options = ChunkOptions {
        verify,
        defer_check: verify && defers_check(&ctx.spec().policy),
        method: None,
    };
    let on_event = Arc::clone(ctx.on_event);
    let table = part.table.clone();
    let progress = move |p: ChunkProgress| {
        on_event(CycleEvent::Progress {
            table: table.clone(),
            rows: p.rows,
            bytes: p.bytes,
        });
    };
    Ok(copy_chunk_retrying(
        endpoints,
        Some(hold),
        &part.shape,
        &part.chunk,
        &options,
        &progress,
    )
    .await?)
}

/// What the step records of a part's checksum: the source's side, and whether Finalize is still
/// to compare the destination's.
fn recorded_checksum(ctx: &Ctx<'_>, report: &ChunkReport) -> Result<Option<String>, ServiceError> {
    let pending = ctx.spec().channel.verify && defers_check(&ctx.spec().policy);
    report
        .checksum
        .as_ref()
        .map(|c| {
            encode(&StepChecksum {
                rows: c.rows,
                sum: c.sum.clone(),
                pending,
            })
            .map(|v| v.to_string())
        })
        .transpose()
}
