//! Runs driven by a step queue, one step per message (run-cycle and run-worker on AWS), through
//! the one driver ([`crate::driver`]) that `tidemark run` and `tidemark serve` run too.
//!
//! - [`TaskService::begin_cycle`]: the scheduler's trigger. The run is created with a
//!   conditional write keyed by task and scheduled time, so a trigger delivered twice (or three
//!   times at once) makes one run; a cycle due while the task's previous run goes on is recorded
//!   as `skipped`. The Schema step's message is sent.
//! - [`TaskService::run_step`]: one message, handed to [`Driver::handle`]; a run that ends
//!   gets its task's status and failure policy applied here.
//! - [`TaskService::dead_letter`]: a message the queue gave up on fails its run under the
//!   task's failure policy; [`TaskService::reap_stalled`] sweeps every run that is not over
//!   (lost messages sent again, stalled runs failed).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use jiff::Timestamp;
use tidemark_core::ports::StepMessage;
use tidemark_core::state::{RunKey, RunStatus, RunTrigger, TaskStatus};

use crate::context::new_run;
use crate::context::{Ctx, CycleInput};
pub use crate::driver::WorkerConfig;
use crate::driver::{Driver, RunSubject, RunSubjects, StepOutcome, finish_of, log_events};
use crate::error::ServiceError;
use crate::steps;
use crate::tasks::TaskService;

/// What a cycle trigger did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleStart {
    /// The run was created and its first step sent.
    Started(RunKey),
    /// A run for this scheduled time exists: nothing was done.
    Duplicate(RunKey),
    /// The task's previous run still goes on: recorded as skipped.
    Skipped(RunKey),
    /// The task is gone, stopped or completed: nothing was done.
    Ignored(String),
}

impl TaskService {
    /// The scheduler's trigger for `task_id` at `scheduled_time`.
    pub async fn begin_cycle(
        self: &Arc<Self>,
        task_id: &str,
        scheduled_time: Timestamp,
        trigger: RunTrigger,
    ) -> Result<CycleStart, ServiceError> {
        let worker = self.worker.clone();
        let key = RunKey {
            task_id: task_id.to_owned(),
            scheduled_time,
        };
        let Some(task) = self.ports.store.get_task(task_id).await? else {
            return Ok(CycleStart::Ignored(format!(
                "task {task_id} does not exist"
            )));
        };
        if task.status == TaskStatus::Deleting
            || trigger == RunTrigger::Schedule
                && matches!(
                    task.status,
                    TaskStatus::Stopped | TaskStatus::Failed | TaskStatus::Completed
                )
        {
            return Ok(CycleStart::Ignored(format!(
                "task {task_id} is {:?}",
                task.status
            )));
        }
        self.reap_task(&task.id).await?;
        let now = self.ports.clock.now();
        let runs = self.ports.store.list_runs(task_id, 20, None).await?;
        if let Some(existing) = runs.items.iter().find(|r| r.key == key) {
            // A trigger that made the run but ended before sending its Schema step (its
            // invocation timed out) is retried: the retry sends it.
            if existing.status == RunStatus::Pending {
                steps::ensure_schema_step(self.ports.store.as_ref(), &key).await?;
                self.driver(&worker).send_schema(&key).await?;
            }
            return Ok(CycleStart::Duplicate(existing.key.clone()));
        }
        if runs.items.iter().any(|r| !r.status.is_final()) {
            let expires_at = self.worker.driver.expiry(now);
            let mut skipped = new_run(&key, trigger, RunStatus::Skipped, now, expires_at);
            skipped.error = Some("the task's previous run was still going".into());
            skipped.finished_at = Some(now);
            if self.ports.store.create_run(&skipped).await? {
                return Ok(CycleStart::Skipped(key));
            }
            return Ok(CycleStart::Duplicate(key));
        }
        if !self
            .ports
            .store
            .create_run(&new_run(
                &key,
                trigger,
                RunStatus::Pending,
                now,
                self.worker.driver.expiry(now),
            ))
            .await?
        {
            return Ok(CycleStart::Duplicate(key));
        }
        let _ = self
            .modify_task(task_id, |t| {
                if matches!(
                    t.status,
                    TaskStatus::Stopped | TaskStatus::Failed | TaskStatus::Completed
                ) {
                    return false;
                }
                t.status = TaskStatus::Running;
                true
            })
            .await;
        steps::ensure_schema_step(self.ports.store.as_ref(), &key).await?;
        self.driver(&worker).send_schema(&key).await?;
        tracing::info!(task = %task_id, run = %key.time_key(), "run created, schema step sent");
        Ok(CycleStart::Started(key))
    }

    /// Takes a run over in the process that is its only driver (`tidemark serve` after a
    /// restart): see [`Driver::take_over`].
    /// A run with no step yet (its Schema step was never written) gets one.
    pub(crate) async fn take_over(
        &self,
        key: &RunKey,
        workers: u32,
    ) -> Result<Vec<u32>, ServiceError> {
        steps::ensure_schema_step(self.ports.store.as_ref(), key).await?;
        let worker = self.worker.clone();
        self.driver(&worker).take_over(key, workers).await
    }

    fn driver<'a>(&'a self, worker: &'a WorkerConfig) -> Driver<'a> {
        Driver {
            store: self.ports.store.as_ref(),
            clock: self.ports.clock.as_ref(),
            queue: worker.queue.as_ref(),
            config: &worker.driver,
            pools: &worker.pools,
        }
    }

    /// One step message, with the caller's deadline (the Lambda invocation's). A run the step
    /// ended gets its task's status and failure policy applied.
    pub async fn run_step(
        self: &Arc<Self>,
        message: &StepMessage,
        deadline: Option<Instant>,
    ) -> Result<StepOutcome, ServiceError> {
        let worker = self.worker.clone();
        let key = &message.run;
        let events = log_events(key);
        let handled = self
            .driver(&worker)
            .handle(message, self.as_ref(), &events, deadline)
            .await?;
        if handled.cancelling {
            // This step stopped for the cancel, or its dispatch found the run cancelling after
            // it settled: the last step out settles the cancel.
            self.settle_cancel(key).await;
        }
        if let Some(end) = handled.ended {
            // Test hook: the run's end is recorded, its task not told yet.
            tidemark_engine::crash::point("run.ended");
            if let (Some(run), Some(task)) = (
                self.ports.store.get_run(key).await?,
                self.ports.store.get_task(&key.task_id).await?,
            ) {
                let failed = match &end.error {
                    Some(e) => Some(e.to_string()),
                    None if run.status == RunStatus::Failed => {
                        Some(run.error.clone().unwrap_or_else(|| "the run failed".into()))
                    }
                    None => None,
                };
                if self.newer_run_in_flight(key).await {
                    // A redelivered Finalize of an older run: the task belongs to the newer one.
                    return Ok(handled.outcome);
                }
                if end.status == RunStatus::Failed && !end.cleaned_up {
                    // Failed outside its steps (a password unreadable): cleaned up here, where
                    // the task is at hand, or marked pending for the sweep.
                    let _ = self.clean_up(key).await;
                }
                self.after_run(key, run.trigger, task.spec.failure_policy, failed)
                    .await;
            }
        }
        Ok(handled.outcome)
    }

    /// Whether a run of the task newer than `key` has not ended.
    async fn newer_run_in_flight(&self, key: &RunKey) -> bool {
        match self.ports.store.list_runs(&key.task_id, 1, None).await {
            Ok(page) => page
                .items
                .first()
                .is_some_and(|r| r.key.scheduled_time > key.scheduled_time && !r.status.is_final()),
            Err(_) => false,
        }
    }

    /// A step message the queue gave up on (the dead-letter queue): its run fails under the
    /// task's failure policy.
    pub async fn dead_letter(self: &Arc<Self>, message: &StepMessage) -> Result<(), ServiceError> {
        let Some(run) = self.ports.store.get_run(&message.run).await? else {
            return Ok(());
        };
        if run.status.is_final() {
            return Ok(());
        }
        let error = format!(
            "step {} of the run could not be delivered to a worker (it reached the dead-letter \
             queue): check the run-worker function's logs, then run the task again",
            message.step
        );
        let finish = finish_of(self.ports.store.as_ref(), &message.run).await;
        self.fail_run(&message.run, &error, finish.as_ref()).await;
        Ok(())
    }

    /// A scheduled cycle the scheduler gave up delivering (its dead-letter event, or run-cycle's
    /// on-failure destination record after Lambda's retries): recorded as a `missed` run of its
    /// scheduled time with `why`, so the history shows the gap; a run already there for that
    /// time is left as it is. A task whose schedule then has no cycle left is completed.
    /// Whether a run was recorded.
    pub async fn missed_delivery(
        self: &Arc<Self>,
        task_id: &str,
        scheduled_time: Timestamp,
        why: &str,
    ) -> Result<bool, ServiceError> {
        if self.ports.store.get_task(task_id).await?.is_none() {
            return Ok(false);
        }
        let key = RunKey {
            task_id: task_id.to_owned(),
            scheduled_time,
        };
        let now = self.ports.clock.now();
        let expires_at = self.worker.driver.expiry(now);
        let mut run = new_run(
            &key,
            RunTrigger::Schedule,
            RunStatus::Missed,
            now,
            expires_at,
        );
        run.error = Some(format!(
            "the scheduler could not start this cycle ({why}): check the run-cycle function's \
             logs and errors, then run the task now if this cycle's data is needed"
        ));
        run.finished_at = Some(now);
        let created = self.ports.store.create_run(&run).await?;
        if created {
            tracing::warn!(task = %task_id, run = %key.time_key(), why, "scheduled cycle missed");
        }
        self.complete_if_over(task_id, scheduled_time).await?;
        Ok(created)
    }

    /// Sweeps every run that is not over ([`Driver::sweep`]): lost step messages sent again,
    /// the dispatch topped up, and a run without progress for the driver's `run_lease` failed
    /// under its task's failure policy, cleaned up. A failed run whose clean-up could not run
    /// earlier is cleaned up now. Returns the keys of the runs failed.
    pub async fn reap_stalled(self: &Arc<Self>) -> Result<Vec<RunKey>, ServiceError> {
        let mut reaped = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.ports.store.list_tasks(100, next.as_deref()).await?;
            for task in &page.items {
                reaped.extend(self.reap_task(&task.id).await?);
                // On AWS no loop watches the end date: the sweep completes a task whose last
                // cycle was missed or skipped (a run's end completes the others).
                if let Err(e) = self
                    .complete_if_over(&task.id, self.ports.clock.now())
                    .await
                {
                    tracing::error!(task = %task.id, error = %e, "the task's end could not be recorded; the sweep tries again");
                }
            }
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(reaped),
            }
        }
    }

    pub(crate) async fn reap_task(
        self: &Arc<Self>,
        task_id: &str,
    ) -> Result<Vec<RunKey>, ServiceError> {
        let worker = self.worker.clone();
        let driver = self.driver(&worker);
        let mut reaped = Vec::new();
        let Some(task) = self.ports.store.get_task(task_id).await? else {
            return Ok(reaped);
        };
        let runs = self.ports.store.list_runs(task_id, 20, None).await?;
        for run in runs.items {
            if run.status == RunStatus::Cancelling {
                self.settle_cancel(&run.key).await;
                continue;
            }
            if run.status.is_final() {
                if clean_up_pending(&run) {
                    let _ = self.clean_up(&run.key).await;
                }
                continue;
            }
            let swept = driver.sweep(&run.key, task.spec.channel.workers).await?;
            if !swept.resent.is_empty() {
                tracing::warn!(task = %task_id, run = %run.key.time_key(), steps = ?swept.resent, "steps whose message was lost were sent again");
            }
            if swept.stalled {
                let idle = self.ports.clock.now().duration_since(run.heartbeat);
                let error = format!(
                    "no progress for {} s (the lease is {} s): the run was stopped; check that \
                     both endpoints answer and the run-worker function's logs, then run it again",
                    idle.as_secs(),
                    worker.driver.run_lease.as_secs()
                );
                let finish = finish_of(self.ports.store.as_ref(), &run.key).await;
                self.fail_run(&run.key, &error, finish.as_ref()).await;
                reaped.push(run.key);
            }
        }
        self.sweep_deleting(&task).await;
        Ok(reaped)
    }

    /// Fails a run from outside its steps (dead letter, stalled): cleaned up from its plan when
    /// the endpoints answer, recorded failed, the failure policy applied. A run that is over, or
    /// being cancelled (its cancel settles it), is left as it is.
    pub(crate) async fn fail_run(&self, key: &RunKey, error: &str, finish: Option<&steps::Finish>) {
        let Ok(Some(run)) = self.ports.store.get_run(key).await else {
            return;
        };
        if !run.status.takes_steps() {
            return;
        }
        self.finish_run(key, RunStatus::Failed, Some(error.to_owned()))
            .await;
        let Ok(Some(task)) = self.ports.store.get_task(&key.task_id).await else {
            return;
        };
        if finish.is_some() {
            let _ = self.clean_up(key).await;
        }
        self.after_run(
            key,
            run.trigger,
            task.spec.failure_policy,
            Some(error.to_owned()),
        )
        .await;
        // The failed-run metric filter (template.yaml) counts this message.
        tracing::warn!(task = %key.task_id, run = %key.time_key(), error, "run failed");
    }

    /// Cleans up what an ended run left (shadow tables, a half-made replica, triggers set
    /// aside), from its plan. A clean-up that cannot run (a password unreadable, an endpoint
    /// down) is never skipped silently: it is logged as an error, shown on the run as a warning
    /// and marked pending there, and the sweep ([`TaskService::reap_stalled`]) tries it again.
    /// `true` when it is done (or there was nothing to clean up).
    pub(crate) async fn clean_up(&self, key: &RunKey) -> bool {
        let Some(finish) = finish_of(self.ports.store.as_ref(), key).await else {
            return true;
        };
        let outcome = async {
            let run = self
                .ports
                .store
                .get_run(key)
                .await?
                .ok_or_else(|| ServiceError::NotFound {
                    what: format!("run {}", key.time_key()),
                })?;
            let task = self.get(&key.task_id).await?;
            let logins = self.both_endpoints(&task.spec).await?;
            let input = CycleInput::of_task(&task, key, run.trigger, logins);
            let events = log_events(key);
            let mut ctx = Ctx::new(
                self.ports.store.as_ref(),
                self.ports.clock.as_ref(),
                key,
                &input,
                &events,
            )
            .await?;
            let incomplete = !steps::abort(&mut ctx, Some(&finish)).await;
            ctx.record
                .insert(CLEAN_UP_PENDING.into(), serde_json::json!(incomplete));
            ctx.save_record().await?;
            if incomplete {
                tracing::error!(task = %key.task_id, run = %key.time_key(), warnings = ?ctx.warnings, "clean-up incomplete; the sweep tries it again");
            }
            Ok::<bool, ServiceError>(!incomplete)
        }
        .await;
        match outcome {
            Ok(done) => return done,
            Err(e) => {
                tracing::error!(task = %key.task_id, run = %key.time_key(), error = %e, "the run's clean-up could not run; the sweep tries it again");
                let warning = format!("the clean-up after this run could not run yet: {e}");
                let _ = crate::context::update_run(self.ports.store.as_ref(), key, |r| {
                    if let serde_json::Value::Object(plan) = &mut r.plan {
                        plan.insert(CLEAN_UP_PENDING.into(), serde_json::json!(true));
                        let warnings = plan
                            .entry("warnings")
                            .or_insert_with(|| serde_json::json!([]));
                        if let Some(list) = warnings.as_array_mut()
                            && !list.iter().any(|w| w == &serde_json::json!(warning))
                        {
                            list.push(serde_json::json!(warning));
                        }
                    } else {
                        r.plan =
                            serde_json::json!({ CLEAN_UP_PENDING: true, "warnings": [warning] });
                    }
                })
                .await;
            }
        }
        false
    }

    /// The Finalize step's plan for cleaning up a run, when its Schema step wrote one.
    pub(crate) async fn finish_of(&self, key: &RunKey) -> Option<steps::Finish> {
        finish_of(self.ports.store.as_ref(), key).await
    }
}

/// On a run's record: its clean-up has yet to run (or to finish).
const CLEAN_UP_PENDING: &str = "clean_up_pending";

fn clean_up_pending(run: &tidemark_core::state::RunRecord) -> bool {
    run.plan.get(CLEAN_UP_PENDING) == Some(&serde_json::Value::Bool(true))
}

/// The driver finds a run's task and logins through the service.
#[async_trait]
impl RunSubjects for TaskService {
    async fn subject(&self, task_id: &str) -> Result<Option<RunSubject>, ServiceError> {
        let Some(task) = self.ports.store.get_task(task_id).await? else {
            return Ok(None);
        };
        let (source, destination) = self.both_endpoints(&task.spec).await?;
        Ok(Some(RunSubject {
            spec: Arc::new(task.spec),
            source,
            destination,
        }))
    }
}
