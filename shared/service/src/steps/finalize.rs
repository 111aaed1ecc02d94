//! The Finalize step: the policy's ending and the run's report; and the clean-up of a run
//! that did not get there.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use tidemark_core::Policy;
use tidemark_core::ports::ProgressDelta;
use tidemark_core::state::{RunPhase, StepKind, StepRecord, StepStatus};
use tidemark_engine::copy::Verification;
use tidemark_engine::crash;

use super::record::settle;
use crate::context::{Ctx, TableOutcome, update_run};
use crate::error::ServiceError;
use crate::payload::{Finish, TableEntry, copied_parts, finalize_payload};

/// A claimed Finalize step's work: the policy's ending, then the tables' report from the chunk
/// steps (each counted once, whatever number of times it ran).
pub(crate) async fn finalize(
    ctx: &mut Ctx<'_>,
    record: StepRecord,
) -> Result<Vec<TableOutcome>, ServiceError> {
    ctx.phase(RunPhase::Finalizing).await?;
    // Test hook: every chunk is done; the policy's ending (and the deferred checks) is to come.
    crash::point("finalize.claimed");
    let payload = finalize_payload(&record)?;
    let retry = record.attempts > 1;
    match (&ctx.spec().policy.clone(), &payload.finish) {
        (Policy::MultiReplica(policy), Finish::Replica { replicas }) => {
            crate::policies::replica::finalize(ctx, policy, replicas, retry, &payload.tables)
                .await?;
        }
        (Policy::Resync(_), Finish::Resync { .. }) => {
            crate::policies::resync::finalize(ctx, retry, &payload.tables).await?;
        }
        (
            Policy::Incremental(_),
            Finish::Incremental {
                firsts,
                everything_first,
                triggers,
                marks,
            },
        ) => {
            crate::policies::incremental::finalize(ctx, firsts, *everything_first, triggers, marks)
                .await?;
        }
        _ => {
            return Err(ServiceError::Invalid {
                field: "policy".into(),
                message: "the run was planned under another policy than the task's".into(),
            });
        }
    }
    let steps = ctx.store.list_steps(ctx.key).await?;
    reconcile_counters(ctx, &steps).await?;
    let outcomes = outcomes(ctx, &payload.tables, &steps);
    // Test hook: the policy's ending is done, the step is not recorded done.
    crash::point("finalize.before_done");
    settle(ctx, record, Ok((0, 0, None))).await?;
    Ok(outcomes)
}

/// Makes the run's counters agree with its done chunk steps. A chunk's step is recorded done
/// before the counters are added to (so no chunk is ever counted twice); a process that dies
/// between the two leaves the counters short, and this makes up the difference, once every chunk
/// is done. Run again, it adds nothing.
async fn reconcile_counters(ctx: &Ctx<'_>, steps: &[StepRecord]) -> Result<(), ServiceError> {
    let mut sums: HashMap<String, ProgressDelta> = HashMap::new();
    let mut done = 0u32;
    for s in steps
        .iter()
        .filter(|s| s.kind == StepKind::Chunk && s.status == StepStatus::Done)
    {
        done += 1;
        for (table, rows, bytes, checksum) in copied_parts(s) {
            let sum = sums.entry(table).or_default();
            sum.rows += rows;
            sum.bytes += bytes;
            sum.chunks_done += 1;
            sum.verified += u32::from(checksum.is_some());
        }
    }
    let current = ctx.store.list_progress(ctx.key).await?;
    let mut additions: Vec<(String, ProgressDelta)> = Vec::new();
    for (table, sum) in &sums {
        let have = current.iter().find(|p| &p.table == table);
        let missing = ProgressDelta {
            rows: sum.rows.saturating_sub(have.map_or(0, |p| p.rows)),
            bytes: sum.bytes.saturating_sub(have.map_or(0, |p| p.bytes)),
            chunks_done: sum
                .chunks_done
                .saturating_sub(have.map_or(0, |p| p.chunks_done)),
            elapsed_ms: 0,
            verified: sum.verified.saturating_sub(have.map_or(0, |p| p.verified)),
            mismatched: 0,
        };
        if missing.rows > 0 || missing.bytes > 0 || missing.chunks_done > 0 {
            tracing::info!(task = %ctx.key.task_id, run = %ctx.key.time_key(), %table, chunks = missing.chunks_done, rows = missing.rows, "counters of chunks done before a crash added");
        }
        // Chunks whose check Finalize deferred are counted verified here, once it passed.
        if missing.rows > 0 || missing.bytes > 0 || missing.chunks_done > 0 || missing.verified > 0
        {
            additions.push((table.clone(), missing));
        }
    }
    // One write for them all where the store can (a thousand tables' deferred checks).
    ctx.store
        .add_progress_many(ctx.key, &additions, ctx.expires_at)
        .await?;
    let run = ctx.store.get_run(ctx.key).await?;
    if run.is_some_and(|r| r.chunks_done != done) {
        update_run(ctx.store, ctx.key, |r| r.chunks_done = done).await?;
    }
    Ok(())
}

/// The run's per-table report, from the done chunk steps.
pub(crate) fn outcomes(
    ctx: &Ctx<'_>,
    tables: &[TableEntry],
    steps: &[StepRecord],
) -> Vec<TableOutcome> {
    // Per table: rows, bytes, chunks, and the span from its first chunk's start to its last
    // chunk's end (chunks run in parallel, possibly in several processes).
    // (A part of a step that copied several tables is timed by its step.)
    type Sums = (u64, u64, u32, Option<(Timestamp, Timestamp)>);
    let mut sums: HashMap<String, Sums> = HashMap::new();
    for s in steps
        .iter()
        .filter(|s| s.kind == StepKind::Chunk && s.status == StepStatus::Done)
    {
        for (table, rows, bytes, _) in copied_parts(s) {
            let entry = sums.entry(table).or_default();
            entry.0 += rows;
            entry.1 += bytes;
            entry.2 += 1;
            if let (Some(start), Some(end)) = (s.started_at, s.finished_at) {
                entry.3 = Some(match entry.3 {
                    Some((first, last)) => (first.min(start), last.max(end)),
                    None => (start, end),
                });
            }
        }
    }
    let verify = ctx.spec().channel.verify;
    tables
        .iter()
        .map(|t| {
            let (rows, bytes, chunks, span) =
                sums.get(t.table.as_str()).copied().unwrap_or_default();
            let elapsed = span
                .and_then(|(first, last)| Duration::try_from(last.duration_since(first)).ok())
                .unwrap_or_default();
            TableOutcome {
                table: t.table.clone(),
                dest_table: t.dest_table.clone(),
                rows,
                bytes,
                chunks,
                elapsed,
                verification: match (verify, t.upsert) {
                    (false, _) => Verification::Off,
                    (true, true) => Verification::Counted,
                    (true, false) => Verification::Verified,
                },
                warning: t.warning.clone(),
            }
        })
        .collect()
}

/// Cleans up after a failed or cancelled run, from its plan (when the Schema step completed
/// one): shadow tables dropped, a half-made replica dropped, triggers set aside restored. What
/// cannot be cleaned up is a warning on the run, never a second error; `false` then.
pub(crate) async fn abort(ctx: &mut Ctx<'_>, finish: Option<&Finish>) -> bool {
    let result = match finish {
        Some(Finish::Replica { replicas }) => crate::policies::replica::abort(ctx, replicas).await,
        Some(Finish::Resync { working }) => crate::policies::resync::abort(ctx, working).await,
        Some(Finish::Incremental { triggers, .. }) => {
            crate::policies::incremental::abort(ctx, triggers).await
        }
        None => Ok(()),
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            ctx.warn(format!("the run was not fully cleaned up: {e}"));
            false
        }
    }
}
