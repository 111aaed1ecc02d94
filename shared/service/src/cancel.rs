//! Cancelling a run and deleting a task while steps are in flight, the same on every host.
//!
//! ```text
//! POST .../cancel    pending|running -> cancelling    (steps in flight stop between batches
//!                                                      and roll back, giving up their leases)
//! settle_cancel      cancelling -> cancelled          once no step holds a live lease and the
//!                                                      clean-up ran (the sweep retries it)
//! DELETE /tasks/{id} task -> deleting, its runs cancelling; gone once every clean-up is done
//!                    (secrets kept until then); `?force=true` abandons the clean-ups and
//!                    answers with what they left
//! ```
//!
//! A Finalize step at work is not stopped (a cancel then comes too late: the run succeeds).

use std::sync::Arc;

use tidemark_core::FailurePolicy;
use tidemark_core::state::{RunKey, RunRecord, RunStatus, StepStatus, TaskRecord, TaskStatus};

use crate::error::ServiceError;
use crate::runs::RunDetail;
use crate::tasks::TaskService;

/// On a cancelling run's plan: until when one host holds its clean-up (RFC 3339).
const CLEANING_UNTIL: &str = "cleaning_until";

/// What `DELETE /tasks/{id}` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deleted {
    /// The task and everything stored under it are gone.
    Gone,
    /// A run's clean-up is pending: the task reads `deleting` until it is done.
    Pending(Box<TaskRecord>),
    /// Gone, with the clean-ups abandoned (`?force=true`): what each left on the destination.
    Forced { left_behind: Vec<String> },
}

impl TaskService {
    /// Cancels a run that has not ended: it is marked `cancelling` and settled at once when no
    /// step holds it; otherwise its steps stop between batches and the last one settles it.
    pub async fn cancel_run(&self, id: &str, run: &str) -> Result<RunDetail, ServiceError> {
        let key = crate::runs::run_key(id, run)?;
        let current = self.get_run(id, run).await?;
        if current.run.status.is_final() {
            return Err(crate::runs::run_over(&current.run));
        }
        self.mark_cancelling(&key, "cancelled by the user").await?;
        self.settle_cancel(&key).await;
        self.get_run(id, run).await
    }

    /// `pending`/`running` -> `cancelling` with `why` as its error; a run already cancelling or
    /// over is left as it is.
    async fn mark_cancelling(&self, key: &RunKey, why: &str) -> Result<(), ServiceError> {
        crate::context::update_run(self.ports.store.as_ref(), key, |r| {
            if r.status.takes_steps() {
                r.status = RunStatus::Cancelling;
                r.error = Some(why.to_owned());
            }
        })
        .await?;
        tracing::info!(task = %key.task_id, run = %key.time_key(), why, "run cancelling");
        Ok(())
    }

    /// Ends a cancelling run once no step holds a live lease on it: its clean-up runs (one host
    /// at a time) and the run becomes `cancelled`. A clean-up that cannot run leaves the run
    /// `cancelling` with the reason as a warning, for the sweep to try again. A task being
    /// deleted goes once its last run is settled.
    pub(crate) async fn settle_cancel(&self, key: &RunKey) {
        if let Err(e) = self.try_settle_cancel(key).await {
            tracing::error!(task = %key.task_id, run = %key.time_key(), error = %e, "the cancel could not be settled; the sweep tries again");
        }
    }

    async fn try_settle_cancel(&self, key: &RunKey) -> Result<(), ServiceError> {
        let store = self.ports.store.as_ref();
        let now = self.ports.clock.now();
        let Some(mut run) = store.get_run(key).await? else {
            return Ok(());
        };
        if run.status != RunStatus::Cancelling {
            return Ok(());
        }
        let held = store.list_steps(key).await?.into_iter().any(|s| {
            s.status == StepStatus::Leased && s.lease_until.is_some_and(|until| until > now)
        });
        if held || cleaning(&run, now) {
            // The holder settles it when it stops; the sweep once its lease lapses.
            return Ok(());
        }
        let until = now
            .saturating_add(
                jiff::SignedDuration::try_from(self.worker.driver.step_lease).unwrap_or_default(),
            )
            .unwrap_or(now);
        set_plan(
            &mut run,
            CLEANING_UNTIL,
            serde_json::json!(until.to_string()),
        );
        match store.update_run(&run).await {
            Ok(_) => {}
            // Another host took the clean-up.
            Err(e) if e.is_conflict() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let done = self.clean_up(key).await;
        let reason = run.error.clone();
        if !done {
            crate::context::update_run(store, key, |r| {
                set_plan(r, CLEANING_UNTIL, serde_json::Value::Null);
            })
            .await?;
            return Ok(());
        }
        self.finish_run(key, RunStatus::Cancelled, reason.clone())
            .await;
        tracing::info!(task = %key.task_id, run = %key.time_key(), "run cancelled, cleaned up");
        self.after_run(key, run.trigger, FailurePolicy::Continue, None)
            .await;
        if let Some(task) = store.get_task(&key.task_id).await?
            && task.status == TaskStatus::Deleting
        {
            self.finish_delete(&task).await?;
        }
        Ok(())
    }

    /// Deletes a task: its schedule removed, its runs cancelled and cleaned up while its
    /// secrets still exist, then the secrets and the task with everything stored under it.
    /// A clean-up still pending leaves the task `deleting` ([`Deleted::Pending`]); `force`
    /// abandons it and answers with what it left.
    pub async fn delete(&self, id: &str, force: bool) -> Result<Deleted, ServiceError> {
        let task = self.get(id).await?;
        self.ports.scheduler.remove_schedule(id).await?;
        let task = self
            .modify_task(id, |t| {
                if t.status == TaskStatus::Deleting {
                    return false;
                }
                t.status = TaskStatus::Deleting;
                t.status_reason = Some(
                    "deleting: the task goes once its runs are cancelled and cleaned up".into(),
                );
                true
            })
            .await
            .unwrap_or(task);
        let mut left_behind = Vec::new();
        for run in self.unfinished_runs(id).await? {
            self.mark_cancelling(&run.key, "the task was deleted")
                .await?;
            self.settle_cancel(&run.key).await;
            let Some(run) = self.ports.store.get_run(&run.key).await? else {
                continue;
            };
            if force && !run.status.is_final() {
                let left = self
                    .finish_of(&run.key)
                    .await
                    .map(|f| f.left_behind())
                    .unwrap_or_default();
                tracing::warn!(task = %id, run = %run.key.time_key(), ?left, "deleted with force: the run's clean-up was abandoned");
                self.finish_run(
                    &run.key,
                    RunStatus::Cancelled,
                    Some("the task was deleted with force: the clean-up was abandoned".into()),
                )
                .await;
                left_behind.extend(left);
            }
        }
        if !self.unfinished_runs(id).await?.is_empty() {
            return Ok(Deleted::Pending(Box::new(self.get(id).await?)));
        }
        // Settling the last run's cancel above may have finished the delete already.
        if self.ports.store.get_task(id).await?.is_some() {
            self.finish_delete(&task).await?;
        }
        Ok(if force {
            Deleted::Forced { left_behind }
        } else {
            Deleted::Gone
        })
    }

    /// The last part of a delete: the task's secrets, then the task and its records.
    pub(crate) async fn finish_delete(&self, task: &TaskRecord) -> Result<(), ServiceError> {
        self.delete_owned_secrets(task).await?;
        self.ports.store.delete_task(&task.id).await?;
        tracing::info!(task = %task.id, "task deleted");
        Ok(())
    }

    /// The task's runs that have not ended (cancelling ones included), newest first.
    pub(crate) async fn unfinished_runs(&self, id: &str) -> Result<Vec<RunRecord>, ServiceError> {
        let runs = self.ports.store.list_runs(id, 20, None).await?;
        Ok(runs
            .items
            .into_iter()
            .filter(|r| !r.status.is_final())
            .collect())
    }

    /// What the sweep does for a task being deleted whose runs are all over: the delete is
    /// finished (a secret that could not be deleted before is tried again).
    pub(crate) async fn sweep_deleting(self: &Arc<Self>, task: &TaskRecord) {
        if task.status != TaskStatus::Deleting {
            return;
        }
        match self.unfinished_runs(&task.id).await {
            Ok(runs) if runs.is_empty() => {
                if let Err(e) = self.finish_delete(task).await {
                    tracing::error!(task = %task.id, error = %e, "the delete could not be finished; the sweep tries again");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(task = %task.id, error = %e, "the task's runs could not be read");
            }
        }
    }
}

fn cleaning(run: &RunRecord, now: jiff::Timestamp) -> bool {
    run.plan
        .get(CLEANING_UNTIL)
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .is_some_and(|until| until > now)
}

fn set_plan(run: &mut RunRecord, field: &str, value: serde_json::Value) {
    if !run.plan.is_object() {
        run.plan = serde_json::json!({});
    }
    if let serde_json::Value::Object(plan) = &mut run.plan {
        if value.is_null() {
            plan.remove(field);
        } else {
            plan.insert(field.to_owned(), value);
        }
    }
}
