//! What a run sends next, and the sweep that repairs what a crash lost.
//!
//! The dispatch model, the same on every host: a run has at most `channel.workers` chunk
//! messages in flight (steps `Queued` or `Leased`); the Schema step's end fills that room, and
//! each chunk's end fills it again, which sends the next chunk. A step goes from `Pending` to
//! `Queued` with a conditional write before its message is sent, so two workers finishing at
//! once never send the same step, and Finalize is sent once, by the worker whose write wins.
//! Chunks are sent in number order and the run counts them (`chunks_dispatched`), so after a
//! chunk's end [`Driver::dispatch_next`] reads the run record alone, however many steps the run
//! has; [`Driver::dispatch`], which reads every step, serves the Schema step's end, duplicates
//! and the sweep, and puts the count right where a crash left it behind.

use std::collections::{HashMap, HashSet};

use tidemark_core::state::{RunKey, RunRecord, RunStatus, StepKind, StepRecord, StepStatus};

use super::Driver;
use crate::error::ServiceError;
use crate::payload::TABLE_CAPS;
use crate::steps;

/// The run's per-table caps on chunks in flight (`channel.table_workers`, as the Schema step
/// settled them: `db.table` -> cap), recorded on the run; empty when no table is capped.
pub(crate) fn table_caps(run: &RunRecord) -> HashMap<String, u32> {
    run.plan
        .get(TABLE_CAPS)
        .and_then(|caps| serde_json::from_value(caps.clone()).ok())
        .unwrap_or_default()
}

/// The capped table a chunk step copies, if it is one (a step of several small tables never
/// is: they are one chunk each).
fn capped_table<'c>(caps: &'c HashMap<String, u32>, step: &StepRecord) -> Option<&'c str> {
    let table = step.payload.get("table")?.as_str()?;
    caps.get_key_value(table).map(|(t, _)| t.as_str())
}

/// What a sweep did to one run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Steps whose message was sent again (lost, or their holder died).
    pub resent: Vec<u32>,
    /// The run had no progress for `run_lease` and was failed.
    pub stalled: bool,
}

impl Driver<'_> {
    /// Sends what the run needs next: chunk messages up to `workers` in flight, or Finalize
    /// (once) when every chunk is done. `true` when the run is being cancelled (nothing is
    /// sent; the caller settles the cancel): read here, so no step reads the run again for it.
    pub(crate) async fn dispatch(&self, key: &RunKey, workers: u32) -> Result<bool, ServiceError> {
        let run = match self.store.get_run(key).await? {
            Some(run) if run.status.takes_steps() => run,
            run => return Ok(run.is_some_and(|r| r.status == RunStatus::Cancelling)),
        };
        let list = self.store.list_steps(key).await?;
        self.dispatch_from(key, workers, &run, &list).await?;
        Ok(false)
    }

    /// [`Driver::dispatch`] from the run and its steps as read (possibly a moment ago: another
    /// worker may have sent some of them since, which the conditional writes find).
    pub(super) async fn dispatch_from(
        &self,
        key: &RunKey,
        workers: u32,
        run: &RunRecord,
        list: &[StepRecord],
    ) -> Result<(), ServiceError> {
        let Some(finalize) = steps::finalize_of(list) else {
            return Ok(());
        };
        let chunks = || list.iter().filter(|s| s.kind == StepKind::Chunk);
        if chunks().all(|s| s.status == StepStatus::Done) {
            if finalize.status == StepStatus::Pending && self.mark_queued(finalize.clone()).await? {
                self.send(key, finalize.n, None).await?;
            }
            return Ok(());
        }
        let flying = |s: &&StepRecord| matches!(s.status, StepStatus::Queued | StepStatus::Leased);
        let in_flight = chunks().filter(flying).count();
        let mut room = usize::try_from(workers.max(1))
            .unwrap_or(1)
            .saturating_sub(in_flight);
        let mut highest = chunks()
            .filter(|s| s.status != StepStatus::Pending)
            .map(|s| s.n)
            .max()
            .unwrap_or(0);
        // `channel.table_workers`: a table at its cap waits; later steps of other tables go. A
        // capped table's steps are taken lowest number first, and a lost race for one (another
        // worker sent it) ends this dispatch's sending for that table: two workers dispatching
        // at once from views that each count the table below its cap then try the same steps,
        // and the conditional writes let each go once, so the cap holds.
        let caps = table_caps(run);
        let mut per_table: HashMap<&str, u32> = HashMap::new();
        for s in chunks().filter(flying) {
            if let Some(table) = capped_table(&caps, s) {
                *per_table.entry(table).or_default() += 1;
            }
        }
        let mut raced: HashSet<&str> = HashSet::new();
        for step in chunks().filter(|s| s.status == StepStatus::Pending) {
            if room == 0 {
                break;
            }
            let table = capped_table(&caps, step);
            if let Some(table) = table
                && (raced.contains(table)
                    || per_table.get(table).copied().unwrap_or(0) >= caps[table])
            {
                continue;
            }
            if self.mark_queued(step.clone()).await? {
                self.send(key, step.n, None).await?;
                room -= 1;
                if let Some(table) = table {
                    *per_table.entry(table).or_default() += 1;
                }
            } else if let Some(table) = table {
                raced.insert(table);
            }
            highest = highest.max(step.n);
        }
        self.count_dispatched(key, highest).await?;
        Ok(())
    }

    /// After a chunk's end: the next chunk in number order if the run has room for it, or
    /// Finalize (once) when every chunk is done. Reads the run record, not the steps; the write
    /// that counts the chunk sent also moves the run's heartbeat, which is otherwise written
    /// only when older than a third of a step's lease (a chunk step's end does not write it on
    /// its own). `true` when the run is being cancelled, as for [`Driver::dispatch`].
    pub(crate) async fn dispatch_next(
        &self,
        key: &RunKey,
        workers: u32,
    ) -> Result<bool, ServiceError> {
        let (run, picked) = loop {
            let Some(mut run) = self.store.get_run(key).await? else {
                return Ok(false);
            };
            if !run.status.takes_steps() {
                return Ok(run.status == RunStatus::Cancelling);
            }
            if !table_caps(&run).is_empty() {
                // Steps go out of number order past a table at its cap: the steps say which.
                return self.dispatch(key, workers).await;
            }
            let now = self.clock.now();
            if run.chunks_done >= run.chunks_total {
                self.beat(key, &run).await?;
                break (run, None);
            }
            let in_flight = run.chunks_dispatched.saturating_sub(run.chunks_done);
            if run.chunks_dispatched >= run.chunks_total || in_flight >= workers.max(1) {
                self.beat(key, &run).await?;
                return Ok(false);
            }
            run.chunks_dispatched += 1;
            run.heartbeat = now;
            match self.store.update_run(&run).await {
                Ok(_) => {
                    let n = run.chunks_dispatched;
                    break (run, Some(n));
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        };
        // The next chunk, or Finalize after the last.
        let n = picked.unwrap_or(run.chunks_total + 1);
        if let Some(step) = self.store.get_step(key, n).await?
            && step.status == StepStatus::Pending
            && (picked.is_some() || step.kind == StepKind::Finalize)
            && self.mark_queued(step).await?
        {
            self.send(key, n, None).await?;
        }
        Ok(false)
    }

    /// Moves the run's heartbeat if it is older than a third of a step's lease (as a lease
    /// renewal would): a stalled run is still told from a live one, with a write per few steps
    /// rather than per step.
    async fn beat(
        &self,
        key: &RunKey,
        run: &tidemark_core::state::RunRecord,
    ) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let every = jiff::SignedDuration::try_from(self.config.step_lease / 3).unwrap_or_default();
        if now.duration_since(run.heartbeat) < every {
            return Ok(());
        }
        crate::context::update_run(self.store, key, |r| r.heartbeat = r.heartbeat.max(now)).await?;
        Ok(())
    }

    /// Records that the chunks up to `highest` were sent (the count never goes back).
    async fn count_dispatched(&self, key: &RunKey, highest: u32) -> Result<(), ServiceError> {
        let Some(run) = self.store.get_run(key).await? else {
            return Ok(());
        };
        if run.chunks_dispatched >= highest {
            return Ok(());
        }
        crate::context::update_run(self.store, key, |r| {
            r.chunks_dispatched = r.chunks_dispatched.max(highest);
        })
        .await?;
        Ok(())
    }

    /// Sends a run's Schema step, marked `Queued` first like every step before its message goes,
    /// so that the sweep sends it again if the message is lost. Nothing is sent when it is no
    /// longer `Pending` (another trigger of the same cycle queued it).
    pub(crate) async fn send_schema(&self, key: &RunKey) -> Result<(), ServiceError> {
        if let Some(step) = self.store.get_step(key, steps::SCHEMA_STEP).await?
            && step.status == StepStatus::Pending
            && self.mark_queued(step).await?
        {
            self.send(key, steps::SCHEMA_STEP, None).await?;
        }
        Ok(())
    }

    /// `Pending` -> `Queued`, conditionally: `false` when another worker changed it first.
    pub(super) async fn mark_queued(&self, mut step: StepRecord) -> Result<bool, ServiceError> {
        step.status = StepStatus::Queued;
        step.queued_at = Some(self.clock.now());
        match self.store.update_step(&step).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_conflict() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Repairs one run that is not over: a step queued longer than `resend_after` ago that no
    /// worker took, or one whose holder's lease lapsed, is sent again (duplicates are harmless:
    /// a step is claimed once); the dispatch is topped up. A run whose heartbeat is older than
    /// `run_lease` is reported stalled and changed no further: the host fails it (with its
    /// clean-up and failure policy).
    pub async fn sweep(&self, key: &RunKey, workers: u32) -> Result<Swept, ServiceError> {
        let mut swept = Swept::default();
        let Some(run) = self.store.get_run(key).await? else {
            return Ok(swept);
        };
        // A cancelling run's steps are over; its host settles the cancel.
        if !run.status.takes_steps() {
            return Ok(swept);
        }
        let now = self.clock.now();
        let idle = now.duration_since(run.heartbeat);
        if idle > jiff::SignedDuration::try_from(self.config.run_lease).unwrap_or_default()
            && run.status != RunStatus::Pending
        {
            swept.stalled = true;
            return Ok(swept);
        }
        let resend_after =
            jiff::SignedDuration::try_from(self.config.resend_after).unwrap_or_default();
        for step in self.store.list_steps(key).await? {
            let lost = match step.status {
                StepStatus::Queued => step
                    .queued_at
                    .is_none_or(|at| now.duration_since(at) > resend_after),
                StepStatus::Leased => step.lease_until.is_none_or(|until| until <= now),
                _ => false,
            };
            if lost && self.requeue(step.clone()).await? {
                // Test hook: a lost step is marked queued again, its message not yet sent.
                tidemark_engine::crash::point("sweep.resend");
                self.send(key, step.n, None).await?;
                swept.resent.push(step.n);
            }
        }
        self.dispatch(key, workers).await?;
        Ok(swept)
    }

    /// Marks a step queued now (its lease, if any, given up), conditionally.
    async fn requeue(&self, mut step: StepRecord) -> Result<bool, ServiceError> {
        step.status = StepStatus::Queued;
        step.lease_owner = None;
        step.lease_until = None;
        self.mark_queued(step).await
    }

    /// Takes a run over in a process that is its only driver (the next `tidemark run` after one
    /// that crashed, `tidemark serve` after a restart): whatever a dead process held or had sent
    /// is sent again now, without waiting for leases to lapse. A step recorded failed by a run
    /// that never ended is tried again. Returns the steps sent.
    pub(crate) async fn take_over(
        &self,
        key: &RunKey,
        workers: u32,
    ) -> Result<Vec<u32>, ServiceError> {
        let mut sent = Vec::new();
        let list = self.store.list_steps(key).await?;
        let planned = steps::finalize_of(&list).is_some();
        for step in list {
            let again = match step.status {
                StepStatus::Queued | StepStatus::Leased | StepStatus::Failed => true,
                // Before the plan is complete only the Schema step is sent.
                StepStatus::Pending => step.n == steps::SCHEMA_STEP && !planned,
                StepStatus::Done => false,
            };
            if again && self.requeue(step.clone()).await? {
                self.send(key, step.n, None).await?;
                sent.push(step.n);
            }
        }
        self.dispatch(key, workers).await?;
        Ok(sent)
    }
}
