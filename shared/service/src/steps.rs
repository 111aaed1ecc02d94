//! A run as steps, each recorded under the run and idempotent on retry, so that any process
//! (a Lambda invocation, `tidemark serve` after a restart) can pick a run up where it stopped:
//!
//! ```text
//! STEP#0        Schema    the policy's preparation (names, leftovers dropped, pre-data DDL,
//!                         windows, triggers set aside), then every table's chunks planned and
//!                         written as the steps below — the Finalize step last, so its presence
//!                         says the plan is complete
//! STEP#1..=N    Chunk     one key range of one table, copied and verified in one transaction
//!                         (a retry clears the range first; an incremental chunk only upserts)
//! STEP#N+1      Finalize  the policy's ending (indexes, swap, foreign keys, views, routines,
//!                         triggers, watermarks, old replicas), then the run's report
//! ```
//!
//! A step is claimed by writing a lease on its record, conditional on the version read, so two
//! workers never run one step at once; a lost race is an ordinary outcome. A step whose lease
//! has expired was left by a worker that died and may be claimed again. What a failed run leaves
//! is cleaned up by [`abort`] from the Finalize step's payload (shadow tables, half-made
//! replicas, triggers set aside).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tidemark_core::Policy;
use tidemark_core::ports::{ProgressDelta, StoreError};
use tidemark_core::state::{RunKey, RunPhase, StepKind, StepRecord, StepStatus};
use tidemark_engine::copy::{
    Chunk, ChunkOptions, ChunkProgress, CopyEndpoints, TablePlan as EnginePlan, TableShape,
    Verification, by_size, copy_chunk_retrying, unique_checks_off,
};
use tidemark_engine::crash;
use tidemark_engine::policy::incremental::SavedTrigger;

use crate::checks::{StepChecksum, defers_check};
use crate::cycle::{Ctx, CycleEvent, TableOutcome, update_run};
use crate::error::ServiceError;

/// The Schema step's number; chunks follow it, the Finalize step closes the list.
pub const SCHEMA_STEP: u32 = 0;

/// One table of a run, as its report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// `db.table` on the source.
    pub table: String,
    /// `db.table` on the destination, under the name readers use (not a shadow's).
    pub dest_table: String,
    pub chunks: u32,
    pub estimated_rows: u64,
    /// An incremental window, upserted (counted, not checksummed against the whole range).
    pub upsert: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A Chunk step's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkPayload {
    /// `db.table` on the source (the per-table counters' name).
    pub table: String,
    pub shape: TableShape,
    pub chunk: Chunk,
    pub unique_checks_off: bool,
}

/// The Finalize step's input: what the policy's ending and a failed run's clean-up need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FinalizePayload {
    pub tables: Vec<TableEntry>,
    pub finish: Finish,
}

/// What each policy's ending needs beyond the schema plan (which the Finalize step reads from
/// the source again, so no step record has to hold DDL).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub(crate) enum Finish {
    Replica {
        replicas: Vec<String>,
    },
    Resync {
        /// Shadow and retired tables, `(database, table)`: what a failed run drops.
        working: Vec<(String, String)>,
    },
    Incremental {
        /// Tables on their first cycle, `(database, table)` on the destination.
        firsts: Vec<(String, String)>,
        everything_first: bool,
        /// Destination triggers set aside for the load.
        triggers: Vec<SavedTrigger>,
        /// Watermarks to advance once every chunk committed: `(db.table, high)`.
        marks: Vec<(String, String)>,
    },
}

/// What the Schema step's policy part hands over.
pub(crate) struct Prepared {
    pub plans: Vec<EnginePlan>,
    pub tables: Vec<TableEntry>,
    pub finish: Finish,
}

/// A new, pending step record.
pub(crate) fn step(run: &RunKey, n: u32, kind: StepKind, payload: serde_json::Value) -> StepRecord {
    StepRecord {
        run: run.clone(),
        n,
        kind,
        status: StepStatus::Pending,
        lease_owner: None,
        lease_until: None,
        attempts: 0,
        rows: 0,
        bytes: 0,
        checksum: None,
        error: None,
        payload,
        started_at: None,
        finished_at: None,
        queued_at: None,
        version: 1,
    }
}

fn encode<T: Serialize>(value: &T) -> Result<serde_json::Value, ServiceError> {
    serde_json::to_value(value).map_err(|e| {
        ServiceError::Store(StoreError::Backend {
            detail: format!("a step does not encode: {e}"),
            retryable: false,
        })
    })
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(step: &StepRecord) -> Result<T, ServiceError> {
    serde_json::from_value(step.payload.clone()).map_err(|e| {
        ServiceError::Store(StoreError::Backend {
            detail: format!(
                "step {} of run {} does not decode: {e}",
                step.n,
                step.run.time_key()
            ),
            retryable: false,
        })
    })
}

/// The Finalize step of a complete plan, if the plan is complete.
pub(crate) fn finalize_of(steps: &[StepRecord]) -> Option<&StepRecord> {
    steps.iter().find(|s| s.kind == StepKind::Finalize)
}

pub(crate) fn finalize_payload(step: &StepRecord) -> Result<FinalizePayload, ServiceError> {
    decode(step)
}

/// Makes sure the Schema step's record exists (a run's first step).
pub(crate) async fn ensure_schema_step(
    store: &dyn tidemark_core::ports::StateStore,
    key: &RunKey,
) -> Result<(), ServiceError> {
    store
        .put_steps(&[step(
            key,
            SCHEMA_STEP,
            StepKind::Schema,
            serde_json::Value::Null,
        )])
        .await?;
    Ok(())
}

/// Claims step `n` for `owner` with a lease of `lease`: the claimed record, or `None` when it is
/// done, failed, or held by a live lease of someone else (a lost race included).
pub(crate) async fn claim(
    ctx: &Ctx<'_>,
    n: u32,
    owner: &str,
    lease: SignedDuration,
) -> Result<Option<StepRecord>, ServiceError> {
    let now = ctx.clock.now();
    let Some(mut record) = ctx.store.get_step(ctx.key, n).await? else {
        return Ok(None);
    };
    match record.status {
        StepStatus::Done | StepStatus::Failed => return Ok(None),
        StepStatus::Leased if record.lease_until.is_some_and(|until| until > now) => {
            return Ok(None);
        }
        StepStatus::Pending | StepStatus::Queued | StepStatus::Leased => {}
    }
    if record.status == StepStatus::Leased {
        tracing::info!(task = %ctx.key.task_id, run = %ctx.key.time_key(), step = n, holder = ?record.lease_owner, "a step whose holder's lease lapsed is taken over");
    }
    record.status = StepStatus::Leased;
    record.lease_owner = Some(owner.to_owned());
    record.lease_until = Some(now.saturating_add(lease).unwrap_or(now));
    record.attempts += 1;
    record.error = None;
    record.started_at = Some(now);
    record.finished_at = None;
    match ctx.store.update_step(&record).await {
        Ok(version) => {
            record.version = version;
            Ok(Some(record))
        }
        Err(e) if e.is_conflict() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes a step its holder changed. The holder's lease renewals move the stored version, so a
/// conflict is settled by reading it again: still held by `owner`, the change is written over
/// the newer version; taken by someone else, the conflict stands.
pub(crate) async fn write_own(
    ctx: &Ctx<'_>,
    record: &mut StepRecord,
    owner: Option<&str>,
) -> Result<(), ServiceError> {
    loop {
        match ctx.store.update_step(record).await {
            Ok(version) => {
                record.version = version;
                return Ok(());
            }
            Err(e) if e.is_conflict() => {
                let fresh = ctx.store.get_step(ctx.key, record.n).await?;
                match fresh {
                    Some(fresh)
                        if fresh.status == StepStatus::Leased
                            && fresh.lease_owner.as_deref() == owner =>
                    {
                        record.version = fresh.version;
                    }
                    _ => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Gives a claimed step back untouched (its work postponed), for another delivery to take.
pub(crate) async fn release(ctx: &Ctx<'_>, mut record: StepRecord) -> Result<(), ServiceError> {
    let owner = record.lease_owner.take();
    record.status = StepStatus::Queued;
    record.lease_until = None;
    record.attempts = record.attempts.saturating_sub(1);
    match write_own(ctx, &mut record, owner.as_deref()).await {
        Err(ServiceError::Store(e)) if e.is_conflict() => Ok(()),
        other => other,
    }
}

/// Records a claimed step as done (or failed, with its error).
pub(crate) async fn settle(
    ctx: &Ctx<'_>,
    mut record: StepRecord,
    outcome: Result<(u64, u64, Option<String>), String>,
) -> Result<StepRecord, ServiceError> {
    record.lease_until = None;
    record.finished_at = Some(ctx.clock.now());
    match outcome {
        Ok((rows, bytes, checksum)) => {
            record.status = StepStatus::Done;
            record.rows = rows;
            record.bytes = bytes;
            record.checksum = checksum;
        }
        Err(error) => {
            record.status = StepStatus::Failed;
            record.error = Some(error);
        }
    }
    let owner = record.lease_owner.clone();
    write_own(ctx, &mut record, owner.as_deref()).await?;
    Ok(record)
}

/// The Schema step's work: the policy's preparation, then the chunk and Finalize steps written
/// (the Finalize step last). Returns the number of chunks. A run taken over after a crash may
/// find steps of an earlier, incomplete attempt: they are overwritten.
pub(crate) async fn schema(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
) -> Result<u32, ServiceError> {
    ctx.phase(RunPhase::Schema).await?;
    let prepared = match ctx.spec().policy.clone() {
        Policy::MultiReplica(_) => crate::policies::replica::prepare(ctx, endpoints).await?,
        Policy::Resync(_) => crate::policies::resync::prepare(ctx, endpoints).await?,
        Policy::Incremental(policy) => {
            crate::policies::incremental::prepare(ctx, endpoints, &policy).await?
        }
    };
    // Test hook: the policy prepared the destination, no step is written yet.
    crash::point("schema.planned");
    let mut payloads = Vec::new();
    for (plan, entry) in prepared.plans.iter().zip(&prepared.tables) {
        for chunk in &plan.chunks {
            payloads.push(ChunkPayload {
                table: entry.table.clone(),
                shape: plan.shape.clone(),
                chunk: chunk.clone(),
                unique_checks_off: unique_checks_off(plan, chunk),
            });
        }
    }
    // Steps run in number order: the largest chunks first, the short ones at the end.
    by_size(&mut payloads, |p| p.chunk.estimated_rows);
    let chunks: Vec<StepRecord> = (1..)
        .zip(&payloads)
        .map(|(n, p)| Ok(step(ctx.key, n, StepKind::Chunk, encode(p)?)))
        .collect::<Result<_, ServiceError>>()?;
    let total = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    let finalize = step(
        ctx.key,
        total + 1,
        StepKind::Finalize,
        encode(&FinalizePayload {
            tables: prepared.tables,
            finish: prepared.finish,
        })?,
    );
    write_steps(ctx, chunks).await?;
    update_run(ctx.store, ctx.key, |r| {
        r.chunks_total = total;
        r.chunks_done = 0;
    })
    .await?;
    write_steps(ctx, vec![finalize]).await?;
    ctx.save_record().await?;
    // Test hook: the plan is complete, the Schema step is not marked done.
    crash::point("schema.steps_written");
    Ok(total)
}

/// Writes steps, replacing any of the same number an earlier attempt left.
async fn write_steps(ctx: &Ctx<'_>, steps: Vec<StepRecord>) -> Result<(), ServiceError> {
    let existing: HashMap<u32, u64> = ctx
        .store
        .list_steps(ctx.key)
        .await?
        .into_iter()
        .filter(|s| s.n != SCHEMA_STEP)
        .map(|s| (s.n, s.version))
        .collect();
    let (replace, create): (Vec<StepRecord>, Vec<StepRecord>) =
        steps.into_iter().partition(|s| existing.contains_key(&s.n));
    for batch in create.chunks(25) {
        ctx.store.put_steps(batch).await?;
    }
    for mut s in replace {
        s.version = existing[&s.n];
        ctx.store.update_step(&s).await?;
    }
    Ok(())
}

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
    ctx.store.add_progress(ctx.key, &table, &delta).await?;
    ctx.store.increment_chunks_done(ctx.key).await?;
    let now = ctx.clock.now();
    update_run(ctx.store, ctx.key, |r| r.heartbeat = now).await?;
    (ctx.on_event)(CycleEvent::ChunkDone { table });
    Ok(())
}

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
            crate::policies::replica::finalize(ctx, policy, replicas, retry).await?;
        }
        (Policy::Resync(_), Finish::Resync { .. }) => {
            crate::policies::resync::finalize(ctx, retry).await?;
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
        let Some(table) = s.payload.get("table").and_then(|t| t.as_str()) else {
            continue;
        };
        let sum = sums.entry(table.to_owned()).or_default();
        sum.rows += s.rows;
        sum.bytes += s.bytes;
        sum.chunks_done += 1;
        sum.verified += u32::from(s.checksum.is_some());
    }
    let current = ctx.store.list_progress(ctx.key).await?;
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
            ctx.store.add_progress(ctx.key, table, &missing).await?;
        }
    }
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
    type Sums = (u64, u64, u32, Option<(Timestamp, Timestamp)>);
    let mut sums: HashMap<&str, Sums> = HashMap::new();
    for s in steps
        .iter()
        .filter(|s| s.kind == StepKind::Chunk && s.status == StepStatus::Done)
    {
        let Some(table) = s.payload.get("table").and_then(|t| t.as_str()) else {
            continue;
        };
        let entry = sums.entry(table).or_default();
        entry.0 += s.rows;
        entry.1 += s.bytes;
        entry.2 += 1;
        if let (Some(start), Some(end)) = (s.started_at, s.finished_at) {
            entry.3 = Some(match entry.3 {
                Some((first, last)) => (first.min(start), last.max(end)),
                None => (start, end),
            });
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
/// cannot be cleaned up is a warning on the run, never a second error.
pub(crate) async fn abort(ctx: &mut Ctx<'_>, finish: Option<&Finish>) {
    let result = match finish {
        Some(Finish::Replica { replicas }) => crate::policies::replica::abort(ctx, replicas).await,
        Some(Finish::Resync { working }) => crate::policies::resync::abort(ctx, working).await,
        Some(Finish::Incremental { triggers, .. }) => {
            crate::policies::incremental::abort(ctx, triggers).await
        }
        None => Ok(()),
    };
    if let Err(e) = result {
        ctx.warn(format!("the failed run was not fully cleaned up: {e}"));
    }
}

/// The owner name a lease carries: the process (and, on Lambda, the invocation).
pub fn owner_id(prefix: &str) -> String {
    format!(
        "{prefix}:{}:{}",
        std::process::id(),
        Timestamp::now().as_millisecond()
    )
}
