//! # The one run driver
//!
//! A run's steps travel on a step queue on every host — SQS on AWS (run-cycle sends, run-worker
//! takes), an in-process queue in `tidemark run` and `tidemark serve` — and [`Driver::handle`]
//! is the one place that decides what follows a step:
//!
//! ```text
//! Schema done      -> chunk messages dispatched, at most `channel.workers` in flight
//! a chunk done     -> the next pending chunk dispatched (none waits for a slot in a busy loop)
//! last chunk done  -> Finalize dispatched, once (a conditional write picks the sender)
//! Finalize done    -> the run succeeded
//! a step failed    -> retryable: sent back after a jittered backoff, up to `step_attempts`;
//!                     otherwise the run fails and what it left is cleaned up
//! ```
//!
//! - A step is claimed with a short lease that its holder renews while it works ([`lease`]), so
//!   a dead holder's step is free again within one lease and its message comes back.
//! - [`Driver::sweep`] is the safety net: it re-sends a step whose message was lost, tops up the
//!   dispatch, and fails a run without progress for `run_lease`.
//! - [`local`] drives a run to its end in this process with consumers over an in-process queue.
//!
//! ## Layout
//! - [`config`]: [`DriverConfig`], every duration as configuration.
//! - [`env`]: the durations and counts from environment variables, on every host.
//! - [`dispatch`]: what is sent next, bounded by `channel.workers`; the sweep.
//! - [`lease`]: a claimed step's lease, renewed while its work runs.
//! - [`local`]: `run_cycle`, one run to its end over consumers in this process.
//! - [`metered`]: a state store that counts its calls, for the benchmarks' breakdown.
//! - [`pools`]: [`EndpointPools`], copy pools kept across the steps a process runs.
//! - [`waking`]: an in-process step inbox that wakes idle consumers on a send.

pub mod config;
pub(crate) mod dispatch;
pub mod env;
mod lease;
pub mod local;
pub mod metered;
pub mod pools;
#[cfg(test)]
mod tests;
pub mod waking;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tidemark_core::TaskSpec;
use tidemark_core::ports::{Clock, StateStore, StepMessage, StepQueue};
use tidemark_core::state::{RunKey, RunPhase, RunStatus, StepKind, StepRecord, StepStatus};
use tidemark_engine::ConnectOptions;

pub use config::DriverConfig;
pub use pools::EndpointPools;

use crate::context::{Ctx, CycleEvent, CycleInput, Events, update_run};
use crate::error::ServiceError;
use crate::steps;
use lease::Held;

/// What one step message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The step ran and is done (or failed its run, which is recorded).
    Ran,
    /// Nothing to do: done already, held by another worker, or the run is over.
    Ignored(&'static str),
    /// Sent back to the queue (deadline near, or a retryable failure).
    Postponed(&'static str),
}

/// How a run ended, for the host to apply to its task (status, failure policy).
#[derive(Debug)]
pub struct RunEnd {
    pub status: RunStatus,
    /// The error that failed the run, as it was raised (none when the end is given again for a
    /// redelivered Finalize: the run's record has it).
    pub error: Option<ServiceError>,
    /// What the run left was cleaned up by the step that ended it; `false` for a run failed
    /// from outside its steps, which its host cleans up.
    pub cleaned_up: bool,
}

/// What [`Driver::handle`] did with one message.
#[derive(Debug)]
pub struct Handled {
    pub outcome: StepOutcome,
    /// Set when this step ended its run.
    pub ended: Option<RunEnd>,
    /// The run is being cancelled: this step did nothing (or stopped and rolled back, its lease
    /// given up), and the host settles the cancel (its clean-up, once no step holds a lease).
    pub cancelling: bool,
}

impl Handled {
    fn of(outcome: StepOutcome) -> Handled {
        Handled {
            outcome,
            ended: None,
            cancelling: false,
        }
    }

    fn cancelling() -> Handled {
        Handled {
            cancelling: true,
            ..Handled::of(StepOutcome::Ignored("the run is being cancelled"))
        }
    }

    /// The step ran; `cancelling` when its dispatch found the run being cancelled meanwhile.
    fn ran(cancelling: bool) -> Handled {
        Handled {
            cancelling,
            ..Handled::of(StepOutcome::Ran)
        }
    }
}

/// A run's task as a step needs it: its spec and how to log in to both endpoints (each with
/// the secret version its password and user were read at, `None` for a password given inline
/// or in the environment).
#[derive(Clone)]
pub struct RunSubject {
    pub spec: Arc<TaskSpec>,
    pub source: ConnectOptions,
    pub destination: ConnectOptions,
}

/// Where the driver finds a run's task: the state store and the secret store (a host's task
/// service), or the one task a `tidemark run` was given.
#[async_trait]
pub trait RunSubjects: Send + Sync {
    /// The task of runs of `task_id`; `None` when the task is gone. An error that is not
    /// retryable (a password that cannot be read) fails the run.
    async fn subject(&self, task_id: &str) -> Result<Option<RunSubject>, ServiceError>;
}

/// How a queue-driven worker reaches its queue and paces itself.
#[derive(Clone)]
pub struct WorkerConfig {
    pub queue: Arc<dyn StepQueue>,
    pub driver: DriverConfig,
    /// Copy pools kept across the messages of a warm container.
    pub pools: Arc<EndpointPools>,
}

impl WorkerConfig {
    pub fn new(queue: Arc<dyn StepQueue>, owner: &str) -> WorkerConfig {
        WorkerConfig {
            queue,
            driver: DriverConfig::new(owner),
            pools: Arc::new(EndpointPools::new()),
        }
    }
}

/// The one driver of runs, over the ports of the host it runs in.
pub struct Driver<'a> {
    pub store: &'a dyn StateStore,
    pub clock: &'a dyn Clock,
    pub queue: &'a dyn StepQueue,
    pub config: &'a DriverConfig,
    pub pools: &'a EndpointPools,
}

impl Driver<'_> {
    /// One step message, with the caller's deadline (a Lambda invocation's), if any.
    pub async fn handle(
        &self,
        message: &StepMessage,
        subjects: &dyn RunSubjects,
        events: &Events,
        deadline: Option<Instant>,
    ) -> Result<Handled, ServiceError> {
        let entered = Instant::now();
        let key = &message.run;
        let Some(run) = self.store.get_run(key).await? else {
            return Ok(Handled::of(StepOutcome::Ignored("the run does not exist")));
        };
        if run.status == RunStatus::Cancelling {
            return Ok(Handled::cancelling());
        }
        if run.status.is_final() {
            // The Finalize step's message again (a duplicate, or a redelivery after the process
            // died between the run's end and its message's acknowledgement): the run's end is
            // given to the host again, which applies it to the task idempotently — the process
            // may have died before it did.
            let finalize = self
                .store
                .get_step(key, message.step)
                .await?
                .is_some_and(|s| s.kind == StepKind::Finalize && s.status == StepStatus::Done);
            let over = Handled::of(StepOutcome::Ignored("the run is over"));
            return Ok(match finalize {
                true => Handled {
                    ended: Some(RunEnd {
                        status: run.status,
                        error: None,
                        cleaned_up: true,
                    }),
                    ..over
                },
                false => over,
            });
        }
        let Some(record) = self.store.get_step(key, message.step).await? else {
            return Ok(Handled::of(StepOutcome::Ignored("the step does not exist")));
        };
        let subject = match subjects.subject(&key.task_id).await {
            Ok(Some(subject)) => subject,
            Ok(None) => {
                let error = ServiceError::NotFound {
                    what: format!("task {} (deleted while its run went on)", key.task_id),
                };
                return self.end_outside(key, error).await;
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => return self.end_outside(key, e).await,
        };
        let workers = subject.spec.channel.workers;
        if record.status == StepStatus::Done {
            // A duplicate delivery, or a redelivery after the process died between the step's
            // end and its message's acknowledgement: what should follow it is sent.
            if record.kind != StepKind::Finalize {
                self.dispatch(key, workers).await?;
            }
            return Ok(Handled::of(StepOutcome::Ignored("the step is done")));
        }
        if let Some(deadline) = deadline
            && deadline.saturating_duration_since(Instant::now()) < self.config.step_budget
        {
            self.send(key, message.step, None).await?;
            return Ok(Handled::of(StepOutcome::Postponed(
                "too close to the deadline",
            )));
        }
        let input = CycleInput {
            task_id: &key.task_id,
            spec: &subject.spec,
            scheduled_time: key.scheduled_time,
            trigger: run.trigger,
            // The copy pools are keyed by the secrets' versions: a rotated one logs in anew.
            source: subject.source.clone(),
            destination: subject.destination.clone(),
        };
        let mut ctx = Ctx::of_run(self.store, self.clock, key, &input, events, Some(&run));
        let lease = lease::Lease::new(self.store, self.clock, self.config, key, message.step);
        let Some(claimed) = lease.claim(&ctx, record).await? else {
            return Ok(Handled::of(StepOutcome::Ignored(
                "another worker holds the step",
            )));
        };
        // A Finalize step, once it works, runs to its end: a cancel then comes too late.
        let cancellable = claimed.kind != StepKind::Finalize;
        let held = claimed.clone();
        let (kind, n, started) = (claimed.kind, claimed.n, Instant::now());
        let work = async {
            match claimed.kind {
                StepKind::Schema => self.schema_step(&mut ctx, claimed, workers).await,
                StepKind::Chunk => self.chunk_step(&mut ctx, claimed, workers, run.phase).await,
                StepKind::Finalize => self.finalize_step(&mut ctx, claimed).await,
            }
        };
        let held_while = lease.hold_while(work, cancellable).await;
        // The benchmarks' breakdown reads these (infra/bench/breakdown.sh).
        tracing::debug!(target: "tidemark::steps", kind = ?kind, n, work_ms = started.elapsed().as_secs_f64() * 1000.0, handled_ms = entered.elapsed().as_secs_f64() * 1000.0, "step");
        match held_while {
            Held::Done(handled) => handled,
            Held::Lost => Ok(Handled::of(StepOutcome::Ignored(
                "the step's lease lapsed and another worker took it",
            ))),
            Held::Stopped => {
                // The work was dropped (its transaction rolled back): the lease is given up so
                // the run's clean-up need not wait for it to lapse.
                steps::release(&ctx, held).await?;
                Ok(Handled::cancelling())
            }
        }
    }

    async fn schema_step(
        &self,
        ctx: &mut Ctx<'_>,
        record: StepRecord,
        workers: u32,
    ) -> Result<Handled, ServiceError> {
        let list = ctx.store.list_steps(ctx.key).await?;
        if steps::finalize_of(&list).is_some() {
            // The plan was written by an attempt that died before it said so.
            steps::settle(ctx, record, Ok((0, 0, None))).await?;
            let cancelling = self.dispatch(ctx.key, workers).await?;
            return Ok(Handled::ran(cancelling));
        }
        update_run(ctx.store, ctx.key, |r| r.status = RunStatus::Running).await?;
        let planned = async {
            // The Schema step walks a big table's key in parts, one session each.
            let endpoints = self.pools.get(ctx, workers).await?;
            steps::schema(ctx, &endpoints).await
        }
        .await;
        match planned {
            Ok(_) => {
                steps::settle(ctx, record, Ok((0, 0, None))).await?;
                announce_tables(ctx).await?;
                let cancelling = self.dispatch(ctx.key, workers).await?;
                Ok(Handled::ran(cancelling))
            }
            Err(e) => self.step_failed(ctx, record, e, None).await,
        }
    }

    async fn chunk_step(
        &self,
        ctx: &mut Ctx<'_>,
        record: StepRecord,
        workers: u32,
        phase: Option<RunPhase>,
    ) -> Result<Handled, ServiceError> {
        // The run's phase as this message found it: the first chunk steps move it.
        if phase != Some(RunPhase::Copying) {
            ctx.enter_phase(RunPhase::Copying).await?;
        }
        let mut record = record;
        let copied = async {
            let endpoints = self.pools.get(ctx, workers).await?;
            steps::chunk(ctx, &endpoints, &mut record).await
        }
        .await;
        match copied {
            Ok(_) => {
                let cancelling = self.dispatch_next(ctx.key, workers).await?;
                Ok(Handled::ran(cancelling))
            }
            Err(e) => {
                let finish = finish_of(ctx.store, ctx.key).await;
                self.step_failed(ctx, record, e, finish).await
            }
        }
    }

    async fn finalize_step(
        &self,
        ctx: &mut Ctx<'_>,
        record: StepRecord,
    ) -> Result<Handled, ServiceError> {
        let list = ctx.store.list_steps(ctx.key).await?;
        if list
            .iter()
            .any(|s| s.kind == StepKind::Chunk && s.status != StepStatus::Done)
        {
            // Sent before every chunk was done (a run of an earlier version): the last chunk
            // sends it again.
            steps::release(ctx, record).await?;
            return Ok(Handled::of(StepOutcome::Ignored(
                "chunks are still to copy",
            )));
        }
        match steps::finalize(ctx, record.clone()).await {
            Ok(_) => {
                ctx.finish_run(&Ok::<(), ServiceError>(())).await?;
                tracing::info!(task = %ctx.key.task_id, run = %ctx.key.time_key(), "run succeeded");
                Ok(Handled {
                    cancelling: false,
                    outcome: StepOutcome::Ran,
                    ended: Some(RunEnd {
                        status: RunStatus::Succeeded,
                        error: None,
                        cleaned_up: true,
                    }),
                })
            }
            Err(e) => {
                let finish = steps::finalize_payload(&record).ok().map(|p| p.finish);
                self.step_failed(ctx, record, e, finish).await
            }
        }
    }

    /// A step's failure: a retryable one goes back to the queue after a backoff (up to
    /// `step_attempts` attempts), recorded as a warning on the run; any other fails the run,
    /// which is cleaned up.
    async fn step_failed(
        &self,
        ctx: &mut Ctx<'_>,
        record: StepRecord,
        error: ServiceError,
        finish: Option<steps::Finish>,
    ) -> Result<Handled, ServiceError> {
        if ctx
            .store
            .get_run(ctx.key)
            .await?
            .is_some_and(|r| r.status == RunStatus::Cancelling)
        {
            // Failed while its run was being cancelled (its endpoint closed under it, say):
            // the cancel's clean-up, not a failure, ends the run.
            steps::release(ctx, record).await?;
            return Ok(Handled::cancelling());
        }
        if error.is_retryable() && record.attempts < self.config.step_attempts {
            let (n, attempts) = (record.n, record.attempts);
            let delay = self.config.backoff(attempts);
            tracing::warn!(task = %ctx.key.task_id, run = %ctx.key.time_key(), step = n, attempt = attempts, wait_ms = delay.as_millis() as u64, error = %error, "a step failed; it will be retried");
            ctx.warn(format!(
                "retry {attempts} of {} after a transient failure: {error}",
                self.config.step_attempts
            ));
            ctx.save_record().await?;
            let mut back = record;
            back.status = StepStatus::Queued;
            back.queued_at = Some(ctx.clock.now());
            back.lease_owner = None;
            back.lease_until = None;
            back.error = Some(error.to_string());
            ctx.store.update_step(&back).await?;
            self.send(ctx.key, n, Some(delay)).await?;
            return Ok(Handled::of(StepOutcome::Postponed("a retryable failure")));
        }
        let message = error.to_string();
        steps::settle(ctx, record, Err(message.clone())).await?;
        let _ = steps::abort(ctx, finish.as_ref()).await;
        ctx.finish_run(&Err::<(), &str>(&message)).await?;
        // The failed-run metric filter (template.yaml) counts this message.
        tracing::warn!(task = %ctx.key.task_id, run = %ctx.key.time_key(), error = %message, "run failed");
        Ok(Handled {
            cancelling: false,
            outcome: StepOutcome::Ran,
            ended: Some(RunEnd {
                status: RunStatus::Failed,
                error: Some(error),
                cleaned_up: true,
            }),
        })
    }

    /// Fails a run from outside its steps (its task gone, a password unreadable): recorded
    /// failed; what it left is cleaned up by the host, which can read the task.
    async fn end_outside(
        &self,
        key: &RunKey,
        error: ServiceError,
    ) -> Result<Handled, ServiceError> {
        let now = self.clock.now();
        let message = error.to_string();
        update_run(self.store, key, |run| {
            if run.status.is_final() {
                return;
            }
            run.status = RunStatus::Failed;
            run.phase = None;
            run.error = Some(message.clone());
            run.finished_at = Some(now);
            run.heartbeat = now;
        })
        .await?;
        tracing::warn!(task = %key.task_id, run = %key.time_key(), error = %message, "run failed");
        Ok(Handled {
            cancelling: false,
            outcome: StepOutcome::Ran,
            ended: Some(RunEnd {
                status: RunStatus::Failed,
                error: Some(error),
                cleaned_up: false,
            }),
        })
    }

    /// Sends step `step` of `key`, after `delay`.
    pub(crate) async fn send(
        &self,
        key: &RunKey,
        step: u32,
        delay: Option<std::time::Duration>,
    ) -> Result<(), ServiceError> {
        let message = StepMessage {
            run: key.clone(),
            step,
        };
        self.queue.send_step(&message, delay).await.map_err(|e| {
            ServiceError::Store(tidemark_core::ports::StoreError::Backend {
                detail: e.to_string(),
                retryable: e.is_retryable(),
            })
        })
    }
}

/// What cleaning up a run that did not end well means: the Finalize step's plan once the Schema
/// step wrote it; before that, what the Schema step recorded on the run before it created
/// anything (a replica's name, triggers set aside), so a run cancelled or killed in its Schema
/// step leaves no replica and loses no trigger. (Resync's shadows need nothing: a run drops any
/// it finds before it makes its own.)
pub(crate) async fn finish_of(store: &dyn StateStore, key: &RunKey) -> Option<steps::Finish> {
    let list = store.list_steps(key).await.ok()?;
    if let Some(finalize) = steps::finalize_of(&list) {
        return steps::finalize_payload(finalize).ok().map(|p| p.finish);
    }
    let run = store.get_run(key).await.ok()??;
    recorded_so_far(&run.plan)
}

/// The clean-up a Schema step that did not finish had recorded on its run.
fn recorded_so_far(plan: &serde_json::Value) -> Option<steps::Finish> {
    if let Some(replicas) = plan
        .get("replicas")
        .and_then(|r| serde_json::from_value::<Vec<String>>(r.clone()).ok())
        .filter(|r| !r.is_empty())
    {
        return Some(steps::Finish::Replica { replicas });
    }
    let triggers: Vec<tidemark_engine::policy::incremental::SavedTrigger> = plan
        .get("triggers_set_aside")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .filter(|t: &Vec<_>| !t.is_empty())?;
    Some(steps::Finish::Incremental {
        firsts: Vec::new(),
        everything_first: false,
        triggers,
        marks: Vec::new(),
    })
}

/// Tells the run's listener which tables it copies (progress bars), from the written plan.
pub(crate) async fn announce_tables(ctx: &Ctx<'_>) -> Result<(), ServiceError> {
    let list = ctx.store.list_steps(ctx.key).await?;
    if let Some(finalize) = steps::finalize_of(&list) {
        for t in steps::finalize_payload(finalize)?.tables {
            (ctx.on_event)(CycleEvent::TablePlanned {
                table: t.table,
                dest_table: t.dest_table,
                chunks: t.chunks,
                estimated_rows: t.estimated_rows,
            });
        }
    }
    Ok(())
}

/// Logs a run's warnings (the host's events when nobody watches the run).
pub fn log_events(key: &RunKey) -> Events {
    let (task, run) = (key.task_id.clone(), key.time_key());
    Arc::new(move |event: CycleEvent| {
        if let CycleEvent::Warning(w) = &event {
            tracing::warn!(task = %task, run = %run, warning = %w, "run warning");
        }
    })
}
