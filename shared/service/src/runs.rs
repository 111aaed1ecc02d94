//! Runs: a cycle now (in the background), the run history, one run with its per-table progress,
//! and cancelling a run. Every cycle of this process, manual or scheduled, goes through
//! [`TaskService::launch_cycle`], which keeps the task's status and its failure policy.

use std::sync::Arc;

use jiff::Timestamp;
use tidemark_core::FailurePolicy;
use tidemark_core::schedule::Schedule;
use tidemark_core::state::{
    LastRun, Page, RunKey, RunRecord, RunStatus, RunTrigger, TableProgress, TaskStatus,
};

use crate::cycle::manual_scheduled_time;
use crate::error::ServiceError;
use crate::lifecycle::{conflict_shutting_down, precheck_gate};
use crate::tasks::{TaskService, bad_cursor, page_limit};
use crate::worker::CycleStart;

/// Why a task is `completed`.
pub(crate) const SCHEDULE_OVER: &str = "the schedule's end date has passed: no cycle is left";

/// One run with its tables' counters.
#[derive(Debug, Clone)]
pub struct RunDetail {
    pub run: RunRecord,
    pub tables: Vec<TableProgress>,
}

impl TaskService {
    /// Runs a cycle now, outside the schedule, as if scheduled at this minute. Answers with the
    /// run (`pending`) at once; its steps go to the workers through the step queue.
    pub async fn run_now(self: &Arc<Self>, id: &str) -> Result<RunRecord, ServiceError> {
        let task = self.get_live(id).await?;
        // What `start` requires: a run now copies as a scheduled cycle does.
        precheck_gate(&task, "run")?;
        self.check_hosts(&task.spec).await?;
        self.check_secrets(&task.spec).await?;
        if self.jobs.is_closed() {
            return Err(conflict_shutting_down());
        }
        let now = self.ports.clock.now();
        let key = RunKey {
            task_id: task.id.clone(),
            scheduled_time: manual_scheduled_time(now),
        };
        match self
            .begin_cycle(id, key.scheduled_time, RunTrigger::Manual)
            .await?
        {
            CycleStart::Started(key) => self
                .ports
                .store
                .get_run(&key)
                .await?
                .ok_or_else(|| run_not_found(&key)),
            CycleStart::Duplicate(key) => Err(run_exists(id, &key)),
            CycleStart::Skipped(_) => Err(ServiceError::Conflict {
                code: "run_in_progress",
                message: format!(
                    "task {id} has a run in progress: wait for it to end or cancel it (POST /tasks/{id}/runs/{{run}}/cancel)"
                ),
                checks: Vec::new(),
            }),
            CycleStart::Ignored(reason) => Err(ServiceError::NotFound { what: reason }),
        }
    }

    /// The task after a run ended: its `last_run`, and its status —
    /// - `failed`, its schedule removed, when a scheduled run failed under the `stop` failure
    ///   policy (the reason names the run);
    /// - `completed`, its schedule removed, when the schedule has no cycle left;
    /// - back to `scheduled` while a schedule is installed, else to `created`/`prechecked`.
    pub(crate) async fn after_run(
        &self,
        key: &RunKey,
        trigger: RunTrigger,
        policy: FailurePolicy,
        failed: Option<String>,
    ) {
        let id = key.task_id.as_str();
        let now = self.ports.clock.now();
        let last = match self.ports.store.get_run(key).await {
            Ok(Some(run)) if run.status.is_final() => Some(LastRun {
                id: key.time_key(),
                scheduled_time: key.scheduled_time,
                trigger: run.trigger,
                status: run.status,
                finished_at: run.finished_at.unwrap_or(now),
            }),
            _ => None,
        };
        let stop =
            failed.is_some() && trigger == RunTrigger::Schedule && policy == FailurePolicy::Stop;
        // Over when no cycle follows this one: the last scheduled cycle's run completes the
        // task even when it ends before its own scheduled time passed (a manual run's time is
        // now).
        let over = !stop && self.schedule_over(id, now.max(key.scheduled_time)).await;
        if (stop || over)
            && let Err(e) = self.ports.scheduler.remove_schedule(id).await
        {
            tracing::error!(task = %id, error = %e, "the schedule could not be removed");
        }
        let scheduled = match self.ports.scheduler.get_schedule(id).await {
            Ok(s) => s.is_some(),
            Err(_) => !stop && !over,
        };
        let reason = failed.map(|e| {
            format!(
                "the run scheduled at {} failed under the stop failure policy: {e}",
                key.time_key()
            )
        });
        let result = self
            .modify_task(id, |t| {
                let mut changed = false;
                if let Some(last) = &last
                    && t.last_run
                        .as_ref()
                        .is_none_or(|l| l.scheduled_time <= last.scheduled_time)
                    && t.last_run.as_ref() != Some(last)
                {
                    t.last_run = Some(last.clone());
                    changed = true;
                }
                if t.status == TaskStatus::Deleting {
                    return changed;
                }
                if stop && t.status != TaskStatus::Stopped {
                    // A user's stop meanwhile stays `stopped`; `last_run` shows the failure.
                    t.status = TaskStatus::Failed;
                    t.status_reason = reason.clone();
                } else if stop || t.status != TaskStatus::Running {
                    return changed;
                } else if over {
                    t.status = TaskStatus::Completed;
                    t.status_reason = Some(SCHEDULE_OVER.into());
                } else if scheduled {
                    t.status = TaskStatus::Scheduled;
                } else {
                    t.status = TaskStatus::Created;
                    if t.precheck.as_ref().is_some_and(|p| p.at > t.changed_at) {
                        t.status = TaskStatus::Prechecked;
                    }
                }
                true
            })
            .await;
        if let Err(e) = result {
            tracing::error!(task = %id, error = %e, "the task's status after its run was not recorded");
        }
        if over {
            tracing::info!(task = %id, "task completed: its schedule has no cycle left");
        }
    }

    /// Whether the task is scheduled and its schedule has no cycle after `after` (its end date
    /// passed): the task is then `completed` and its schedule removed.
    pub(crate) async fn schedule_over(&self, id: &str, after: Timestamp) -> bool {
        let Ok(Some(task)) = self.ports.store.get_task(id).await else {
            return false;
        };
        if !matches!(task.status, TaskStatus::Scheduled | TaskStatus::Running) {
            return false;
        }
        match Schedule::from_spec(&task.spec.schedule) {
            Ok(schedule) => schedule.next_after(after).is_none(),
            Err(_) => false,
        }
    }

    /// Completes a `scheduled` task whose schedule has no cycle after `after` (now, or later:
    /// the time of a cycle that was dealt with) and no run going on (the last cycle was missed
    /// or skipped, so no run's end did it): its schedule removed, status `completed`. Whether
    /// it did.
    pub(crate) async fn complete_if_over(
        &self,
        id: &str,
        after: Timestamp,
    ) -> Result<bool, ServiceError> {
        let after = after.max(self.ports.clock.now());
        if !self.schedule_over(id, after).await || !self.unfinished_runs(id).await?.is_empty() {
            return Ok(false);
        }
        self.ports.scheduler.remove_schedule(id).await?;
        let task = self
            .modify_task(id, |t| {
                if t.status != TaskStatus::Scheduled {
                    return false;
                }
                t.status = TaskStatus::Completed;
                t.status_reason = Some(SCHEDULE_OVER.into());
                true
            })
            .await?;
        let done = task.status == TaskStatus::Completed;
        if done {
            tracing::info!(task = %id, "task completed: its schedule has no cycle left");
        }
        Ok(done)
    }

    /// Records a run's end unless it has ended already.
    pub(crate) async fn finish_run(&self, key: &RunKey, status: RunStatus, error: Option<String>) {
        let now = self.ports.clock.now();
        let result = self
            .modify_run(key, |run| {
                if run.status.is_final() {
                    return false;
                }
                run.status = status;
                run.phase = None;
                run.error = error.clone();
                run.finished_at = Some(now);
                run.heartbeat = now;
                true
            })
            .await;
        if let Err(e) = result {
            tracing::error!(task = %key.task_id, run = %key.time_key(), error = %e, "the run's end was not recorded");
        }
    }

    async fn modify_run(
        &self,
        key: &RunKey,
        change: impl Fn(&mut RunRecord) -> bool,
    ) -> Result<RunRecord, ServiceError> {
        loop {
            let mut run = self
                .ports
                .store
                .get_run(key)
                .await?
                .ok_or_else(|| run_not_found(key))?;
            if !change(&mut run) {
                return Ok(run);
            }
            match self.ports.store.update_run(&run).await {
                Ok(version) => {
                    run.version = version;
                    return Ok(run);
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A task's runs, newest first.
    pub async fn list_runs(
        &self,
        id: &str,
        limit: Option<u32>,
        next: Option<&str>,
    ) -> Result<Page<RunRecord>, ServiceError> {
        let limit = page_limit(limit)?;
        self.get(id).await?;
        self.ports
            .store
            .list_runs(id, limit, next)
            .await
            .map_err(bad_cursor)
    }

    /// One run (by its scheduled time, RFC 3339) with its per-table progress.
    pub async fn get_run(&self, id: &str, run: &str) -> Result<RunDetail, ServiceError> {
        let key = run_key(id, run)?;
        self.get(id).await?;
        let run = self
            .ports
            .store
            .get_run(&key)
            .await?
            .ok_or_else(|| run_not_found(&key))?;
        let tables = self.ports.store.list_progress(&key).await?;
        Ok(RunDetail { run, tables })
    }
}

pub(crate) fn run_key(id: &str, run: &str) -> Result<RunKey, ServiceError> {
    let scheduled_time: Timestamp = run.parse().map_err(|_| ServiceError::Invalid {
        field: "run".into(),
        message: format!(
            "`{run}` is not a run id: a run is named by its scheduled time in RFC 3339, e.g. 2026-12-01T02:30:00Z"
        ),
    })?;
    Ok(RunKey {
        task_id: id.to_owned(),
        scheduled_time,
    })
}

fn run_exists(id: &str, key: &RunKey) -> ServiceError {
    ServiceError::Conflict {
        code: "run_exists",
        message: format!(
            "task {id} already has a run for {}: runs are kept one per minute; wait for the next minute",
            key.time_key()
        ),
        checks: Vec::new(),
    }
}

fn run_not_found(key: &RunKey) -> ServiceError {
    ServiceError::NotFound {
        what: format!("run {} of task {}", key.time_key(), key.task_id),
    }
}

pub(crate) fn run_over(run: &RunRecord) -> ServiceError {
    ServiceError::Conflict {
        code: "run_finished",
        message: format!(
            "run {} of task {} has already ended ({}); only a pending or running run can be cancelled",
            run.key.time_key(),
            run.key.task_id,
            serde_json::to_value(run.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
        checks: Vec::new(),
    }
}
