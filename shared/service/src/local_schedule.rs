//! The local scheduler's loop: fires started tasks' cycles at their scheduled times, from the
//! schedules the [`LocalScheduler`] keeps, reading the time from the [`Clock`] port (so a test
//! moves the clock and calls [`TaskService::fire_due`], and nothing sleeps until a wall-clock
//! time).
//!
//! Missed cycles (decided): each schedule remembers up to when its cycles were dealt with. A
//! cycle is run when the loop sees it within [`MISFIRE_GRACE`] of its scheduled time and no later
//! cycle of the task is also due; every other cycle that came due (the server was down, or
//! several fell due at once) is recorded as a run with status `missed`, so the history shows the
//! gap and nothing runs a burst of stale cycles on start. A cycle due while the task's previous
//! run still goes on is recorded as `skipped`. When the window has no cycle left, the schedule is
//! removed and the task is `completed`.
//!
//! A cycle that runs is begun as on AWS ([`TaskService::begin_cycle`]): its steps go through the
//! step queue to the host's consumers ([`crate::consumers`]). At start, runs left unfinished by a
//! process that stopped are taken over (their steps sent again; chunks are idempotent). A run
//! whose heartbeat is older than the driver's `run_lease` ([`RUN_LEASE`] for `tidemark serve`)
//! is failed under the task's failure policy.
//!
//! [`Clock`]: tidemark_core::ports::Clock

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tidemark_core::ports::TaskScheduler;
use tidemark_core::schedule::Schedule;
use tidemark_core::state::{RunKey, RunStatus, RunTrigger};
use tidemark_local::LocalScheduler;

use crate::context::new_run;
use crate::error::ServiceError;
use crate::tasks::TaskService;
use crate::worker::CycleStart;

/// How late the loop may see a cycle and still run it.
pub const MISFIRE_GRACE: SignedDuration = SignedDuration::from_secs(300);

/// How long a run may go without progress before the loop fails it under the task's failure
/// policy. The heartbeat moves at every phase and every committed chunk, and a chunk is sized to
/// take seconds, so a quarter of an hour without one means the run is stuck or its process died.
pub const RUN_LEASE: SignedDuration = SignedDuration::from_secs(15 * 60);

/// What one pass of the loop did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FireReport {
    pub started: Vec<RunKey>,
    pub missed: Vec<RunKey>,
    pub skipped: Vec<RunKey>,
    pub completed: Vec<String>,
    /// Runs failed for making no progress for longer than [`RUN_LEASE`].
    pub stalled: Vec<RunKey>,
}

impl TaskService {
    /// One pass: deals with every cycle that came due since the last pass. A cycle that is run
    /// goes through [`TaskService::begin_cycle`], as the scheduler's trigger does on AWS.
    pub async fn fire_due(
        self: &Arc<Self>,
        scheduler: &LocalScheduler,
    ) -> Result<FireReport, ServiceError> {
        let now = self.ports.clock.now();
        let mut report = FireReport::default();
        for entry in scheduler.list().await? {
            let id = entry.task_id.as_str();
            let Some(task) = self.ports.store.get_task(id).await? else {
                scheduler.remove_schedule(id).await?;
                continue;
            };
            report.stalled.extend(self.reap_task(id).await?);
            let schedule = match Schedule::from_spec(&task.spec.schedule) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(task = %id, error = %e, "the task's schedule is not valid");
                    continue;
                }
            };
            let due = schedule.between(entry.checked_until, now);
            for (i, at) in due.iter().enumerate() {
                let key = RunKey {
                    task_id: id.to_owned(),
                    scheduled_time: at.timestamp(),
                };
                let superseded = i + 1 < due.len();
                let late = now.duration_since(at.timestamp()) > MISFIRE_GRACE;
                if superseded || late {
                    self.record(
                        &key,
                        RunStatus::Missed,
                        "the server was not running (or was behind) at the scheduled time",
                        now,
                    )
                    .await?;
                    report.missed.push(key);
                    continue;
                }
                match self
                    .begin_cycle(id, key.scheduled_time, RunTrigger::Schedule)
                    .await?
                {
                    CycleStart::Started(key) => report.started.push(key),
                    CycleStart::Skipped(key) => report.skipped.push(key),
                    CycleStart::Duplicate(_) | CycleStart::Ignored(_) => {}
                }
            }
            scheduler.set_checked_until(id, now).await?;
            if self.complete_if_over(id, now).await? {
                scheduler.remove_schedule(id).await?;
                report.completed.push(id.to_owned());
            }
        }
        Ok(report)
    }

    async fn record(
        &self,
        key: &RunKey,
        status: RunStatus,
        why: &str,
        now: Timestamp,
    ) -> Result<(), ServiceError> {
        let expires_at = self.worker.driver.expiry(now);
        let mut run = new_run(key, RunTrigger::Schedule, status, now, expires_at);
        run.error = Some(why.to_owned());
        run.finished_at = Some(now);
        // An existing run for this time (a duplicate pass) is left as it is.
        self.ports.store.create_run(&run).await?;
        tracing::info!(task = %key.task_id, run = %key.time_key(), ?status, "cycle not run");
        Ok(())
    }

    /// Takes over the runs a stopped process left unfinished: this process is their only
    /// driver, so what the dead one held or had sent is sent again now, without waiting for
    /// leases to lapse; a cancelling run is settled. Returns their keys.
    pub async fn resume_unfinished(self: &Arc<Self>) -> Result<Vec<RunKey>, ServiceError> {
        let mut resumed = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.ports.store.list_tasks(100, next.as_deref()).await?;
            for task in &page.items {
                for run in self.unfinished_runs(&task.id).await? {
                    if run.status == RunStatus::Cancelling {
                        self.settle_cancel(&run.key).await;
                        continue;
                    }
                    self.take_over(&run.key, task.spec.channel.workers).await?;
                    tracing::info!(task = %task.id, run = %run.key.time_key(), "run resumed");
                    resumed.push(run.key);
                }
                self.sweep_deleting(task).await;
            }
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(resumed),
            }
        }
    }

    /// Calls [`TaskService::fire_due`] every `every` until `shutdown` resolves.
    pub async fn run_scheduler(
        self: Arc<Self>,
        scheduler: LocalScheduler,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.fire_due(&scheduler).await {
                tracing::error!(error = %e, "the scheduler's pass failed; trying again");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Stops taking work and waits up to `grace` for the steps and prechecks in hand; what is
    /// left is dropped: its message comes back at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        tracing::info!(grace_s = grace.as_secs(), "waiting for the steps in hand");
        self.jobs.shutdown(grace).await;
    }
}
