//! Runs driven by a step queue, one step per message (run-cycle and run-worker on AWS): the
//! same steps as [`crate::cycle::run_cycle`] runs in one process (see [`crate::steps`]).
//!
//! - [`TaskService::begin_cycle`]: the scheduler's trigger. The run is created with a
//!   conditional write keyed by task and scheduled time, so a trigger delivered twice (or three
//!   times at once) makes one run; a cycle due while the task's previous run goes on is recorded
//!   as `skipped`. The Schema step's message is sent.
//! - [`TaskService::run_step`]: one message. A message for a done step, a finished run or a step
//!   another worker holds does nothing (duplicate deliveries are normal). A chunk takes one of
//!   the run's `channel.workers` slots (counted in the state store: the queue's concurrency is
//!   per queue, not per run) or is sent again after a short delay. A step that could not finish
//!   before the caller's deadline is not started: it goes back to the queue as a new message,
//!   which is not a failed delivery. The worker that commits the last chunk sends Finalize.
//! - [`TaskService::dead_letter`]: a message the queue gave up on fails its run under the
//!   task's failure policy; [`TaskService::reap_stalled`] does the same for runs whose heartbeat
//!   stopped.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tidemark_core::ports::{StepMessage, StepQueue};
use tidemark_core::state::{
    RunKey, RunPhase, RunStatus, RunTrigger, StepKind, StepRecord, StepStatus, TaskStatus,
};
use tidemark_engine::copy::CopyEndpoints;

use crate::cycle::{Ctx, CycleEvent, CycleInput, Events, update_run};
use crate::error::ServiceError;
use crate::runs::new_run;
use crate::steps::{self, Takeover};
use crate::tasks::TaskService;

/// How a queue-driven worker paces itself.
#[derive(Clone)]
pub struct WorkerConfig {
    pub queue: Arc<dyn StepQueue>,
    /// The time a step is expected to need at most: one is not started closer than this to the
    /// caller's deadline.
    pub step_budget: Duration,
    /// How long a chunk that found no free worker slot waits before its message comes back.
    pub slot_wait: Duration,
    /// Who holds the leases this process takes.
    pub owner: String,
}

impl WorkerConfig {
    pub fn new(queue: Arc<dyn StepQueue>, owner: &str) -> WorkerConfig {
        WorkerConfig {
            queue,
            step_budget: Duration::from_secs(120),
            slot_wait: Duration::from_secs(5),
            owner: steps::owner_id(owner),
        }
    }
}

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

/// What one step message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The step ran and is done (or failed its run, which is recorded).
    Ran,
    /// Nothing to do: done already, held by another worker, or the run is over.
    Ignored(&'static str),
    /// Sent back to the queue (deadline near, no free slot, or a retryable failure).
    Postponed(&'static str),
}

/// How long a queue-driven run may go without progress before it is failed: longer than a
/// step's message takes to come back after its worker died (the step queue's visibility
/// timeout, 30 minutes) plus a step's lease, so a crashed worker's step is retried first.
pub const QUEUE_RUN_LEASE: jiff::SignedDuration = jiff::SignedDuration::from_secs(60 * 60);

/// Retryable failures of one step, across deliveries, before the run fails.
const STEP_ATTEMPTS: u32 = 5;

pub(crate) type WorkerSlot = OnceLock<WorkerConfig>;

impl TaskService {
    /// Makes this service drive runs through a step queue (run-cycle, run-worker).
    pub fn set_worker(&self, config: WorkerConfig) {
        let _ = self.worker.set(config);
    }

    fn worker(&self) -> Result<&WorkerConfig, ServiceError> {
        self.worker.get().ok_or_else(|| ServiceError::Invalid {
            field: "worker".into(),
            message: "this process has no step queue configured (set TIDEMARK_STEP_QUEUE_URL)"
                .into(),
        })
    }

    /// The scheduler's trigger for `task_id` at `scheduled_time`.
    pub async fn begin_cycle(
        self: &Arc<Self>,
        task_id: &str,
        scheduled_time: Timestamp,
        trigger: RunTrigger,
    ) -> Result<CycleStart, ServiceError> {
        let worker = self.worker()?.clone();
        let key = RunKey {
            task_id: task_id.to_owned(),
            scheduled_time,
        };
        let Some(task) = self.ports.store.get_task(task_id).await? else {
            return Ok(CycleStart::Ignored(format!(
                "task {task_id} does not exist"
            )));
        };
        if trigger == RunTrigger::Schedule
            && matches!(task.status, TaskStatus::Stopped | TaskStatus::Completed)
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
            return Ok(CycleStart::Duplicate(existing.key.clone()));
        }
        if runs.items.iter().any(|r| !r.status.is_final()) {
            let mut skipped = new_run(&key, trigger, RunStatus::Skipped, now);
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
            .create_run(&new_run(&key, trigger, RunStatus::Pending, now))
            .await?
        {
            return Ok(CycleStart::Duplicate(key));
        }
        let _ = self
            .modify_task(task_id, |t| {
                if matches!(t.status, TaskStatus::Stopped | TaskStatus::Completed) {
                    return false;
                }
                t.status = TaskStatus::Running;
                true
            })
            .await;
        self.ports
            .store
            .put_steps(&[steps::step(
                &key,
                steps::SCHEMA_STEP,
                StepKind::Schema,
                serde_json::Value::Null,
            )])
            .await?;
        send(&worker, &key, steps::SCHEMA_STEP, None).await?;
        tracing::info!(task = %task_id, run = %key.time_key(), "run created, schema step sent");
        Ok(CycleStart::Started(key))
    }

    /// One step message, with the caller's deadline (the Lambda invocation's).
    pub async fn run_step(
        self: &Arc<Self>,
        message: &StepMessage,
        deadline: Option<Instant>,
    ) -> Result<StepOutcome, ServiceError> {
        let worker = self.worker()?.clone();
        let key = &message.run;
        let Some(run) = self.ports.store.get_run(key).await? else {
            return Ok(StepOutcome::Ignored("the run does not exist"));
        };
        if run.status.is_final() {
            return Ok(StepOutcome::Ignored("the run is over"));
        }
        let Some(record) = self.ports.store.get_step(key, message.step).await? else {
            return Ok(StepOutcome::Ignored("the step does not exist"));
        };
        let Some(task) = self.ports.store.get_task(&key.task_id).await? else {
            self.finish_run(key, RunStatus::Failed, Some("the task was deleted".into()))
                .await;
            return Ok(StepOutcome::Ignored("the task was deleted"));
        };
        if record.status == StepStatus::Done {
            if record.kind != StepKind::Finalize {
                self.send_next(&worker, key).await?;
            }
            return Ok(StepOutcome::Ignored("the step is done"));
        }
        if let Some(deadline) = deadline
            && deadline.saturating_duration_since(Instant::now()) < worker.step_budget
        {
            send(&worker, key, message.step, None).await?;
            return Ok(StepOutcome::Postponed("too close to the deadline"));
        }
        let passwords = match self.passwords(&task.spec).await {
            Ok(p) => p,
            Err(e) => {
                self.fail_run(key, &e.to_string(), None).await;
                return Ok(StepOutcome::Ran);
            }
        };
        let input = CycleInput::of_task(&task, key, run.trigger, passwords);
        let events = log_events(key);
        let store = Arc::clone(&self.ports.store);
        let clock = Arc::clone(&self.ports.clock);
        let mut ctx = Ctx::new(store.as_ref(), clock.as_ref(), key, &input, &events).await?;
        let Some(claimed) =
            steps::claim(&ctx, message.step, &worker.owner, Takeover::Expired).await?
        else {
            return Ok(StepOutcome::Ignored("another worker holds the step"));
        };
        match claimed.kind {
            StepKind::Schema => self.schema_step(&worker, &mut ctx, claimed).await,
            StepKind::Chunk => self.chunk_step(&worker, &mut ctx, claimed).await,
            StepKind::Finalize => self.finalize_step(&worker, &mut ctx, claimed).await,
        }
    }

    async fn schema_step(
        self: &Arc<Self>,
        worker: &WorkerConfig,
        ctx: &mut Ctx<'_>,
        record: StepRecord,
    ) -> Result<StepOutcome, ServiceError> {
        let list = ctx.store.list_steps(ctx.key).await?;
        if steps::finalize_of(&list).is_some() {
            // The plan was written by an attempt that died before it said so.
            steps::settle(ctx, record, Ok((0, 0, None))).await?;
            self.send_next(worker, ctx.key).await?;
            return Ok(StepOutcome::Ran);
        }
        update_run(ctx.store, ctx.key, |r| r.status = RunStatus::Running).await?;
        let planned = async {
            // The Schema step walks a big table's key in parts, one session each.
            let endpoints = open_endpoints(ctx, ctx.spec().channel.workers).await?;
            let total = steps::schema(ctx, &endpoints).await;
            endpoints.disconnect().await;
            total
        }
        .await;
        match planned {
            Ok(_) => {
                steps::settle(ctx, record, Ok((0, 0, None))).await?;
                self.send_next(worker, ctx.key).await?;
                Ok(StepOutcome::Ran)
            }
            Err(e) => self.step_failed(worker, ctx, record, e, None).await,
        }
    }

    async fn chunk_step(
        self: &Arc<Self>,
        worker: &WorkerConfig,
        ctx: &mut Ctx<'_>,
        record: StepRecord,
    ) -> Result<StepOutcome, ServiceError> {
        let workers = ctx.spec().channel.workers.max(1);
        if !ctx.store.acquire_slot(ctx.key, workers).await? {
            steps::release(ctx, record.clone()).await?;
            send(worker, ctx.key, record.n, Some(worker.slot_wait)).await?;
            return Ok(StepOutcome::Postponed(
                "every worker slot of the run is taken",
            ));
        }
        if ctx.store.get_run(ctx.key).await?.and_then(|r| r.phase) != Some(RunPhase::Copying) {
            let _ = ctx.phase(RunPhase::Copying).await;
        }
        let copied = async {
            let endpoints = open_endpoints(ctx, 1).await?;
            let done = steps::chunk(ctx, &endpoints, record.clone()).await;
            endpoints.disconnect().await;
            done
        }
        .await;
        ctx.store.release_slot(ctx.key).await?;
        match copied {
            Ok(done) => {
                let total = ctx
                    .store
                    .get_run(ctx.key)
                    .await?
                    .map_or(u32::MAX, |r| r.chunks_total);
                if done.chunks_done >= total {
                    self.send_next(worker, ctx.key).await?;
                }
                Ok(StepOutcome::Ran)
            }
            Err(e) => {
                let finish = self.finish_of(ctx.key).await;
                self.step_failed(worker, ctx, record, e, finish).await
            }
        }
    }

    async fn finalize_step(
        self: &Arc<Self>,
        worker: &WorkerConfig,
        ctx: &mut Ctx<'_>,
        record: StepRecord,
    ) -> Result<StepOutcome, ServiceError> {
        let list = ctx.store.list_steps(ctx.key).await?;
        let pending = list
            .iter()
            .filter(|s| s.kind == StepKind::Chunk && s.status != StepStatus::Done)
            .count();
        if pending > 0 {
            // A Finalize sent early (a duplicate of a chunk's "last" message): the last chunk
            // sends it again.
            steps::release(ctx, record).await?;
            return Ok(StepOutcome::Ignored("chunks are still to copy"));
        }
        match steps::finalize(ctx, record.clone()).await {
            Ok(_) => {
                let run = ctx.finish_run(&Ok::<(), ServiceError>(())).await?;
                tracing::info!(task = %ctx.key.task_id, run = %ctx.key.time_key(), "run succeeded");
                self.after_run(ctx.key, run.trigger, ctx.spec().failure_policy, None)
                    .await;
                Ok(StepOutcome::Ran)
            }
            Err(e) => {
                let finish = steps::finalize_payload(&record).ok().map(|p| p.finish);
                self.step_failed(worker, ctx, record, e, finish).await
            }
        }
    }

    /// A step's failure: a retryable one goes back to the queue with a delay (up to
    /// [`STEP_ATTEMPTS`] attempts); any other fails the run, which is cleaned up.
    async fn step_failed(
        self: &Arc<Self>,
        worker: &WorkerConfig,
        ctx: &mut Ctx<'_>,
        record: StepRecord,
        error: ServiceError,
        finish: Option<steps::Finish>,
    ) -> Result<StepOutcome, ServiceError> {
        if retryable(&error) && record.attempts < STEP_ATTEMPTS {
            tracing::warn!(task = %ctx.key.task_id, run = %ctx.key.time_key(), step = record.n, attempt = record.attempts, error = %error, "a step failed; it will be retried");
            let n = record.n;
            let attempts = record.attempts;
            let mut back = record;
            back.status = StepStatus::Pending;
            back.lease_owner = None;
            back.lease_until = None;
            back.error = Some(error.to_string());
            ctx.store.update_step(&back).await?;
            let delay = Duration::from_secs(2u64.saturating_pow(attempts).min(60));
            send(worker, ctx.key, n, Some(delay)).await?;
            return Ok(StepOutcome::Postponed("a retryable failure"));
        }
        let message = error.to_string();
        steps::settle(ctx, record, Err(message.clone())).await?;
        steps::abort(ctx, finish.as_ref()).await;
        let run = ctx.finish_run(&Err::<(), _>(error)).await?;
        tracing::warn!(task = %ctx.key.task_id, run = %ctx.key.time_key(), error = %message, "run failed");
        self.after_run(
            ctx.key,
            run.trigger,
            ctx.spec().failure_policy,
            Some(message),
        )
        .await;
        Ok(StepOutcome::Ran)
    }

    /// Sends what comes next for a run: the chunks not done, or Finalize when every chunk is.
    async fn send_next(&self, worker: &WorkerConfig, key: &RunKey) -> Result<(), ServiceError> {
        let list = self.ports.store.list_steps(key).await?;
        let Some(finalize) = steps::finalize_of(&list) else {
            return Ok(());
        };
        let pending: Vec<u32> = list
            .iter()
            .filter(|s| s.kind == StepKind::Chunk && s.status != StepStatus::Done)
            .map(|s| s.n)
            .collect();
        if pending.is_empty() {
            if finalize.status != StepStatus::Done {
                send(worker, key, finalize.n, None).await?;
            }
            return Ok(());
        }
        // Only the chunks nobody holds: a leased one has its own message in flight.
        for n in list
            .iter()
            .filter(|s| s.kind == StepKind::Chunk && s.status == StepStatus::Pending)
            .map(|s| s.n)
        {
            send(worker, key, n, None).await?;
        }
        Ok(())
    }

    pub(crate) async fn finish_of(&self, key: &RunKey) -> Option<steps::Finish> {
        let list = self.ports.store.list_steps(key).await.ok()?;
        steps::finalize_payload(steps::finalize_of(&list)?)
            .ok()
            .map(|p| p.finish)
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
        let finish = self.finish_of(&message.run).await;
        self.fail_run(&message.run, &error, finish.as_ref()).await;
        Ok(())
    }

    /// Fails every run whose heartbeat is older than the lease, under its task's failure
    /// policy, cleaning up what it left. Returns their keys.
    pub async fn reap_stalled(self: &Arc<Self>) -> Result<Vec<RunKey>, ServiceError> {
        let mut reaped = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.ports.store.list_tasks(100, next.as_deref()).await?;
            for task in &page.items {
                reaped.extend(self.reap_task(&task.id).await?);
            }
            match page.next {
                Some(n) => next = Some(n),
                None => return Ok(reaped),
            }
        }
    }

    async fn reap_task(self: &Arc<Self>, task_id: &str) -> Result<Vec<RunKey>, ServiceError> {
        let now = self.ports.clock.now();
        let mut reaped = Vec::new();
        let runs = self.ports.store.list_runs(task_id, 20, None).await?;
        for run in runs.items.into_iter().filter(|r| !r.status.is_final()) {
            let idle = now.duration_since(run.heartbeat);
            if idle <= QUEUE_RUN_LEASE {
                continue;
            }
            let error = format!(
                "no progress for {} s (the lease is {} s): the run was stopped; check that both \
                 endpoints answer and the run-worker function's logs, then run it again",
                idle.as_secs(),
                QUEUE_RUN_LEASE.as_secs()
            );
            let finish = self.finish_of(&run.key).await;
            self.fail_run(&run.key, &error, finish.as_ref()).await;
            reaped.push(run.key);
        }
        Ok(reaped)
    }

    /// Fails a run from outside its steps (dead letter, stalled, passwords unreadable): cleaned
    /// up from its plan when the endpoints answer, recorded failed, the failure policy applied.
    pub(crate) async fn fail_run(&self, key: &RunKey, error: &str, finish: Option<&steps::Finish>) {
        self.end_run(key, RunStatus::Failed, error, finish).await;
    }

    /// Ends a run that has not ended (failed or cancelled) and cleans up what it left.
    pub(crate) async fn end_run(
        &self,
        key: &RunKey,
        status: RunStatus,
        error: &str,
        finish: Option<&steps::Finish>,
    ) {
        let Ok(Some(run)) = self.ports.store.get_run(key).await else {
            return;
        };
        if run.status.is_final() {
            return;
        }
        self.finish_run(key, status, Some(error.to_owned())).await;
        let Ok(Some(task)) = self.ports.store.get_task(&key.task_id).await else {
            return;
        };
        if finish.is_some()
            && let Ok(passwords) = self.passwords(&task.spec).await
        {
            let input = CycleInput::of_task(&task, key, run.trigger, passwords);
            let events = log_events(key);
            let store = Arc::clone(&self.ports.store);
            let clock = Arc::clone(&self.ports.clock);
            if let Ok(mut ctx) =
                Ctx::new(store.as_ref(), clock.as_ref(), key, &input, &events).await
            {
                steps::abort(&mut ctx, finish).await;
                if !ctx.warnings.is_empty() {
                    tracing::warn!(task = %key.task_id, run = %key.time_key(), warnings = ?ctx.warnings, "clean-up incomplete");
                }
            }
        }
        let failed = (status == RunStatus::Failed).then(|| error.to_owned());
        let policy = if status == RunStatus::Failed {
            task.spec.failure_policy
        } else {
            tidemark_core::FailurePolicy::Continue
        };
        self.after_run(key, run.trigger, policy, failed).await;
        if status == RunStatus::Failed {
            // The failed-run metric filter (template.yaml) counts this message.
            tracing::warn!(task = %key.task_id, run = %key.time_key(), error, "run failed");
        } else {
            tracing::info!(task = %key.task_id, run = %key.time_key(), ?status, error, "run ended");
        }
    }

    pub(crate) async fn passwords(
        &self,
        spec: &tidemark_core::TaskSpec,
    ) -> Result<(secrecy::SecretString, secrecy::SecretString), ServiceError> {
        let source = self.password(&spec.source, "source").await?;
        let destination = self.password(&spec.destination, "destination").await?;
        Ok((source, destination))
    }
}

async fn send(
    worker: &WorkerConfig,
    key: &RunKey,
    step: u32,
    delay: Option<Duration>,
) -> Result<(), ServiceError> {
    let message = StepMessage {
        run: key.clone(),
        step,
    };
    worker.queue.send_step(&message, delay).await.map_err(|e| {
        ServiceError::Store(tidemark_core::ports::StoreError::Backend {
            detail: e.to_string(),
            retryable: e.is_retryable(),
        })
    })
}

async fn open_endpoints(ctx: &Ctx<'_>, workers: u32) -> Result<CopyEndpoints, ServiceError> {
    ctx.source_conn().await?.disconnect().await.ok();
    ctx.destination_conn().await?.disconnect().await.ok();
    Ok(CopyEndpoints::open(&ctx.source, &ctx.destination, workers).await?)
}

fn log_events(key: &RunKey) -> Events {
    let (task, run) = (key.task_id.clone(), key.time_key());
    Arc::new(move |event: CycleEvent| {
        if let CycleEvent::Warning(w) = &event {
            tracing::warn!(task = %task, run = %run, warning = %w, "run warning");
        }
    })
}

/// Whether a step's failure may pass if the step runs again unchanged (a server restarting, a
/// connection lost, a deadlock, the state store throttled).
fn retryable(error: &ServiceError) -> bool {
    error.is_retryable()
}
