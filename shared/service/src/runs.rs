//! Runs: a cycle now (in the background), the run history, one run with its per-table progress,
//! and cancelling a run. Every cycle of this process, manual or scheduled, goes through
//! [`TaskService::launch_cycle`], which keeps the task's status and its failure policy.

use std::sync::Arc;

use jiff::Timestamp;
use tidemark_core::FailurePolicy;
use tidemark_core::state::{
    Page, RunKey, RunRecord, RunStatus, RunTrigger, TableProgress, TaskStatus,
};
use tokio::sync::oneshot;

use crate::context::new_run;
use crate::cycle::{CycleEvent, CycleInput, manual_scheduled_time, run_cycle_with};
use crate::error::ServiceError;
use crate::lifecycle::conflict_shutting_down;
use crate::tasks::{TaskService, bad_cursor, page_limit};

/// One run with its tables' counters.
#[derive(Debug, Clone)]
pub struct RunDetail {
    pub run: RunRecord,
    pub tables: Vec<TableProgress>,
}

impl TaskService {
    /// Runs a cycle now, outside the schedule, as if scheduled at this minute. Answers with the
    /// run (`pending`) at once; the cycle goes on in the background.
    pub async fn run_now(self: &Arc<Self>, id: &str) -> Result<RunRecord, ServiceError> {
        let task = self.get(id).await?;
        self.check_hosts(&task.spec)?;
        let now = self.ports.clock.now();
        let key = RunKey {
            task_id: task.id.clone(),
            scheduled_time: manual_scheduled_time(now),
        };
        if self.worker.get().is_some() {
            // Queue-driven (Lambda): this process may freeze once it answers, so the run goes
            // to the workers through the step queue.
            return match self
                .begin_cycle(id, key.scheduled_time, RunTrigger::Manual)
                .await?
            {
                crate::worker::CycleStart::Started(key) => self
                    .ports
                    .store
                    .get_run(&key)
                    .await?
                    .ok_or_else(|| run_not_found(&key)),
                crate::worker::CycleStart::Duplicate(key) => Err(run_exists(id, &key)),
                crate::worker::CycleStart::Skipped(_) => Err(ServiceError::Conflict {
                    code: "run_in_progress",
                    message: format!(
                        "task {id} has a run in progress: wait for it to end or cancel it (POST /tasks/{id}/runs/{{run}}/cancel)"
                    ),
                    checks: Vec::new(),
                }),
                crate::worker::CycleStart::Ignored(reason) => {
                    Err(ServiceError::NotFound { what: reason })
                }
            };
        }
        let run = new_run(&key, RunTrigger::Manual, RunStatus::Pending, now);
        if !self.ports.store.create_run(&run).await? {
            return Err(run_exists(id, &key));
        }
        if !self.launch_cycle(key, RunTrigger::Manual) {
            return Err(conflict_shutting_down());
        }
        Ok(run)
    }

    /// Starts the cycle of a run that exists (`pending`, or `running` when a dead process left
    /// it): the cycle takes it over. `false` when the process is shutting down.
    pub(crate) fn launch_cycle(self: &Arc<Self>, key: RunKey, trigger: RunTrigger) -> bool {
        let (line, cancelled) = oneshot::channel();
        self.jobs.add_run(key.clone(), line);
        let this = Arc::clone(self);
        let job_key = key.clone();
        let spawned = self.jobs.spawn(async move {
            this.cycle_job(&job_key, trigger, cancelled).await;
            this.jobs.remove_run(&job_key);
        });
        if !spawned {
            self.jobs.remove_run(&key);
        }
        spawned
    }

    async fn cycle_job(
        &self,
        key: &RunKey,
        trigger: RunTrigger,
        mut cancelled: oneshot::Receiver<oneshot::Sender<()>>,
    ) {
        let id = key.task_id.as_str();
        let Ok(task) = self.get(id).await else {
            return;
        };
        let passwords = match self.password(&task.spec.source, "source").await {
            Ok(s) => match self.password(&task.spec.destination, "destination").await {
                Ok(d) => Ok((s, d)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let (source_password, destination_password) = match passwords {
            Ok(p) => p,
            Err(e) => {
                self.finish_run(key, RunStatus::Failed, Some(e.to_string()))
                    .await;
                return;
            }
        };
        let _ = self
            .modify_task(id, |t| {
                if matches!(t.status, TaskStatus::Stopped | TaskStatus::Completed) {
                    return false;
                }
                t.status = TaskStatus::Running;
                true
            })
            .await;
        let input =
            CycleInput::of_task(&task, key, trigger, (source_password, destination_password));
        let (task_label, run_label) = (id.to_owned(), key.time_key());
        let events = Arc::new(move |event: CycleEvent| {
            tracing::debug!(task = %task_label, run = %run_label, ?event, "cycle progress");
        });
        let store = Arc::clone(&self.ports.store);
        let clock = Arc::clone(&self.ports.clock);
        tokio::select! {
            outcome = run_cycle_with(store.as_ref(), clock.as_ref(), input, events, self.step_retry()) => {
                let failed = outcome.as_ref().err().map(ToString::to_string);
                match &failed {
                    None => tracing::info!(task = %id, run = %key.time_key(), "run succeeded"),
                    Some(e) => tracing::warn!(task = %id, run = %key.time_key(), error = %e, "run failed"),
                }
                self.after_run(key, trigger, task.spec.failure_policy, failed).await;
            }
            Ok(reply) = &mut cancelled => {
                // The cycle's future is dropped here: its chunk tasks are aborted, each chunk's
                // transaction rolls back, and the run's committed chunks stay as they are.
                let finish = self.finish_of(key).await;
                self.end_run(key, RunStatus::Cancelled, "cancelled by the user", finish.as_ref())
                    .await;
                tracing::info!(task = %id, run = %key.time_key(), "run cancelled");
                let _ = reply.send(());
            }
        }
    }

    /// The task's status after a run: back to `scheduled` while a schedule is installed, or
    /// `stopped` when a scheduled run failed under the `stop` failure policy.
    pub(crate) async fn after_run(
        &self,
        key: &RunKey,
        trigger: RunTrigger,
        policy: FailurePolicy,
        failed: Option<String>,
    ) {
        let id = key.task_id.as_str();
        let stop =
            failed.is_some() && trigger == RunTrigger::Schedule && policy == FailurePolicy::Stop;
        if stop && let Err(e) = self.ports.scheduler.remove_schedule(id).await {
            tracing::error!(task = %id, error = %e, "the schedule could not be removed");
        }
        let scheduled = match self.ports.scheduler.get_schedule(id).await {
            Ok(s) => s.is_some(),
            Err(_) => !stop,
        };
        let reason = failed.map(|e| {
            format!(
                "the run scheduled at {} failed under the stop failure policy: {e}",
                key.time_key()
            )
        });
        let _ = self
            .modify_task(id, |t| {
                if t.status != TaskStatus::Running && !stop {
                    return false;
                }
                if stop {
                    t.status = TaskStatus::Stopped;
                    t.status_reason = reason.clone();
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

    /// Cancels a run that has not ended: a run of this process stops between its chunks'
    /// transactions; one left by a process that died is only recorded as cancelled.
    pub async fn cancel_run(&self, id: &str, run: &str) -> Result<RunDetail, ServiceError> {
        let key = run_key(id, run)?;
        let current = self.get_run(id, run).await?;
        if current.run.status.is_final() {
            return Err(run_over(&current.run));
        }
        if !self.jobs.cancel(&key).await {
            // Not running in this process (a queue-driven run, or one a dead process left):
            // recorded as cancelled and cleaned up; a chunk in flight finds it over.
            let finish = self.finish_of(&key).await;
            self.end_run(
                &key,
                RunStatus::Cancelled,
                "cancelled by the user",
                finish.as_ref(),
            )
            .await;
        }
        let detail = self.get_run(id, run).await?;
        if detail.run.status != RunStatus::Cancelled {
            return Err(run_over(&detail.run));
        }
        Ok(detail)
    }
}

fn run_key(id: &str, run: &str) -> Result<RunKey, ServiceError> {
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

fn run_over(run: &RunRecord) -> ServiceError {
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
