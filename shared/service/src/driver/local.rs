//! One run driven to its end in this process (`tidemark run`, `tidemark serve`): its steps go
//! through an in-process queue with SQS's semantics and `channel.workers` consumers hand them to
//! [`Driver::handle`], the same driver run-worker runs on Lambda.
//!
//! The queue holds no state of its own that matters: the step records do. A run taken over after
//! a crash has its unfinished steps sent again ([`Driver::take_over`]); a message that a
//! consumer received and did not acknowledge comes back after its visibility timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tidemark_core::ports::{Clock, StateStore, StepInbox, StoreError, SystemClock};
use tidemark_core::state::{RunKey, RunPhase, RunRecord, RunStatus, RunTrigger, StepStatus};
use tidemark_engine::crash;
use tidemark_local::MemoryQueue;

use super::metered::MeteredStore;
use super::waking::Waking;
use super::{
    Driver, DriverConfig, EndpointPools, RunEnd, RunSubject, RunSubjects, announce_tables,
};
use crate::context::{Ctx, CycleInput, Events, TableOutcome, new_run, update_run};
use crate::error::ServiceError;
use crate::steps;

/// How long an idle consumer waits for a send before it looks again (a delayed message becomes
/// visible with no send). How often it sweeps the run is `DriverConfig::sweep_every`.
const POLL: Duration = Duration::from_millis(50);

/// A finished cycle.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub run: RunRecord,
    pub tables: Vec<TableOutcome>,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

/// How a run in this process rides out a transient failure (an endpoint restarting, a dropped
/// connection, a deadlock) that outlasted a chunk's own retries: the steps are driven again from
/// where they stopped, after a backoff, up to `attempts` more times — committed chunks are not
/// copied again. A failure that is not retryable (a wrong spec, a privilege, a statement the
/// server refuses) fails the run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepRetry {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for StepRetry {
    /// 1, 2, 4, 8, 16 and 30 s: an endpoint that is back within about a minute loses no run.
    fn default() -> StepRetry {
        StepRetry {
            attempts: 6,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl DriverConfig {
    /// Retries steps as `retry` says (its attempts are retries: one more attempt in all).
    pub fn retry_steps(&mut self, retry: StepRetry) {
        self.step_attempts = retry.attempts + 1;
        self.first_backoff = retry.first_backoff;
        self.max_backoff = retry.max_backoff;
    }
}

/// Creates the run, or takes over one for the same scheduled time that a dead process left
/// unfinished (its steps say where it stopped): `true` then. A finished one is not run again.
pub(crate) async fn start_run(
    store: &dyn StateStore,
    clock: &dyn Clock,
    key: &RunKey,
    trigger: RunTrigger,
    config: &DriverConfig,
) -> Result<bool, ServiceError> {
    let now = clock.now();
    let mut run = new_run(key, trigger, RunStatus::Running, now, config.expiry(now));
    run.phase = Some(RunPhase::Schema);
    if store.create_run(&run).await? {
        return Ok(false);
    }
    let existing = store
        .get_run(key)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("run {}", key.time_key()),
        })?;
    if existing.status.is_final() {
        return Err(ServiceError::AlreadyRan {
            scheduled_time: key.time_key(),
            status: format!("{:?}", existing.status).to_lowercase(),
        });
    }
    update_run(store, key, |r| {
        r.status = RunStatus::Running;
        r.error = None;
        r.heartbeat = now;
    })
    .await?;
    Ok(true)
}

/// The one task of a `run_cycle`.
struct OneTask<'a> {
    task_id: &'a str,
    subject: RunSubject,
}

#[async_trait]
impl RunSubjects for OneTask<'_> {
    async fn subject(&self, task_id: &str) -> Result<Option<RunSubject>, ServiceError> {
        Ok((task_id == self.task_id).then(|| self.subject.clone()))
    }
}

/// Runs one cycle to its end in this process and records it: creates the run (or takes over
/// one a dead process left: its committed chunks are not copied again), then drives its steps
/// through the one driver. `Ok` carries a run that succeeded; a failed run is cleaned up,
/// recorded as failed (with its error) and returned as `Err`.
pub async fn run_cycle(
    store: &dyn StateStore,
    clock: &dyn Clock,
    input: CycleInput<'_>,
    on_event: Events,
    retry: StepRetry,
) -> Result<CycleReport, ServiceError> {
    let started = Instant::now();
    let metered = MeteredStore::new(store);
    let store: &dyn StateStore = &metered;
    let key = RunKey {
        task_id: input.task_id.to_owned(),
        scheduled_time: input.scheduled_time,
    };
    // The sweep's durations may be shortened through the environment (the fault suite does).
    let mut config = DriverConfig::new("local")
        .with_variables(&|name| std::env::var(name).ok())
        .map_err(|e| ServiceError::Invalid {
            field: e.name.into(),
            message: e.message,
        })?;
    let resumed = start_run(store, clock, &key, input.trigger, &config).await?;
    config.retry_steps(retry);
    // Messages wait on this process's own clock (a test's clock may stand still).
    let queue = Waking::new(MemoryQueue::new(Arc::new(SystemClock), u32::MAX));
    let pools = EndpointPools::with_idle_ping(config.idle_ping);
    let driver = Driver {
        store,
        clock,
        queue: &queue,
        config: &config,
        pools: &pools,
    };
    let workers = input.spec.channel.workers.max(1);
    let subjects = OneTask {
        task_id: input.task_id,
        subject: RunSubject {
            spec: Arc::new(input.spec.clone()),
            source: input.source.clone(),
            destination: input.destination.clone(),
        },
    };
    if resumed {
        tracing::info!(task = %key.task_id, run = %key.time_key(), "resuming the run from its steps");
        let ctx = Ctx::new(store, clock, &key, &input, &on_event).await?;
        announce_tables(&ctx).await?;
    }
    steps::ensure_schema_step(store, &key).await?;
    driver.take_over(&key, workers).await?;

    let done = AtomicBool::new(false);
    let consumers: Vec<_> = (0..workers)
        .map(|i| consume(&driver, &queue, &subjects, &on_event, &key, &done, i == 0))
        .collect();
    let ends = futures_util::future::join_all(consumers).await;
    // The pools close beside the report: the host applies the run's end to its task at once.
    tokio::spawn(async move { pools.close().await });
    let mut error = None;
    for end in ends {
        match end {
            Ok(Some(RunEnd { error: Some(e), .. })) => {
                error.get_or_insert(e);
            }
            Ok(_) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    let report = report(store, clock, &key, &input, &on_event, started, error).await;
    metered.log(&key);
    report
}

/// Fails a run that a dead process left unfinished and cleans up what it left (shadow tables, a
/// half-made replica, triggers set aside): `tidemark run --abandon`.
pub async fn abandon_run(
    store: &dyn StateStore,
    clock: &dyn Clock,
    input: CycleInput<'_>,
) -> Result<tidemark_core::state::RunRecord, ServiceError> {
    let key = RunKey {
        task_id: input.task_id.to_owned(),
        scheduled_time: input.scheduled_time,
    };
    let events: Events = Arc::new(|_| {});
    let mut ctx = Ctx::new(store, clock, &key, &input, &events).await?;
    let finish = super::finish_of(store, &key).await;
    let _ = steps::abort(&mut ctx, finish.as_ref()).await;
    ctx.finish_run(&Err::<(), &str>(
        "abandoned unfinished (tidemark run --abandon); what it left was cleaned up",
    ))
    .await
}

/// One consumer: takes the run's messages and hands them to the driver until the run is over.
/// The first consumer also sweeps the run now and then (a lost message, a stalled run).
async fn consume(
    driver: &Driver<'_>,
    inbox: &Waking<MemoryQueue>,
    subjects: &dyn RunSubjects,
    events: &Events,
    key: &RunKey,
    done: &AtomicBool,
    sweeper: bool,
) -> Result<Option<RunEnd>, ServiceError> {
    let visibility = driver.config.step_lease;
    let mut last_sweep = Instant::now();
    while !done.load(Ordering::Acquire) {
        let Some(delivery) = inbox
            .receive(1, visibility)
            .await
            .map_err(queue_error)?
            .pop()
        else {
            if driver
                .store
                .get_run(key)
                .await?
                .is_none_or(|r| r.status.is_final())
            {
                inbox.stop(done);
                break;
            }
            if sweeper && last_sweep.elapsed() >= driver.config.sweep_every {
                last_sweep = Instant::now();
                let workers = subjects
                    .subject(&key.task_id)
                    .await?
                    .map_or(1, |s| s.spec.channel.workers);
                let swept = driver.sweep(key, workers).await?;
                if swept.stalled {
                    return Err(stalled(driver, key));
                }
            }
            inbox.wait(POLL).await;
            continue;
        };
        let handled = driver
            .handle(&delivery.message, subjects, events, None)
            .await;
        match handled {
            Ok(handled) => {
                // Test hook: the step is settled and what follows it sent; its message is not
                // acknowledged yet (a crash here delivers it again).
                crash::point("step.before_ack");
                inbox.delete(&delivery.receipt).await.map_err(queue_error)?;
                if let Some(end) = handled.ended {
                    inbox.stop(done);
                    return Ok(Some(end));
                }
            }
            Err(e) if e.is_retryable() => {
                // The state store or the queue failed between steps: the message comes back
                // after its visibility timeout; sooner, here.
                tracing::warn!(task = %key.task_id, run = %key.time_key(), error = %e, "a step could not be handled; it will be delivered again");
                inbox
                    .change_visibility(&delivery.receipt, driver.config.first_backoff)
                    .await
                    .map_err(queue_error)?;
            }
            Err(e) => {
                inbox.stop(done);
                return Err(e);
            }
        }
    }
    Ok(None)
}

fn stalled(driver: &Driver<'_>, key: &RunKey) -> ServiceError {
    ServiceError::Invalid {
        field: "run".into(),
        message: format!(
            "run {} of task {} made no progress for {} s: check that both endpoints answer, then \
             run it again",
            key.time_key(),
            key.task_id,
            driver.config.run_lease.as_secs()
        ),
    }
}

fn queue_error(e: tidemark_core::ports::QueueError) -> ServiceError {
    ServiceError::Store(tidemark_core::ports::StoreError::Backend {
        detail: e.to_string(),
        retryable: e.is_retryable(),
    })
}

/// The run's report once it is over: its tables from the done chunk steps, its warnings; a run
/// that did not succeed is recorded failed (when no step did) and returned as its error.
async fn report(
    store: &dyn StateStore,
    clock: &dyn Clock,
    key: &RunKey,
    input: &CycleInput<'_>,
    on_event: &Events,
    started: Instant,
    error: Option<ServiceError>,
) -> Result<CycleReport, ServiceError> {
    let mut ctx = Ctx::new(store, clock, key, input, on_event).await?;
    if let Some(error) = error {
        let run = store.get_run(key).await?;
        if run.is_some_and(|r| !r.status.is_final()) {
            // The driver could not go on (a stalled run, the store gone): the run is failed
            // here and cleaned up from its plan.
            let finish = super::finish_of(store, key).await;
            let _ = steps::abort(&mut ctx, finish.as_ref()).await;
            ctx.finish_run(&Err::<(), &ServiceError>(&error)).await?;
        }
        return Err(error);
    }
    let run = store
        .get_run(key)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            what: format!("run {} of task {}", key.time_key(), key.task_id),
        })?;
    if run.status != RunStatus::Succeeded {
        return Err(ServiceError::Invalid {
            field: "run".into(),
            message: run
                .error
                .clone()
                .unwrap_or_else(|| format!("the run ended {:?}", run.status).to_lowercase()),
        });
    }
    let list = store.list_steps(key).await?;
    let tables = match steps::finalize_of(&list) {
        Some(finalize) if finalize.status == StepStatus::Done => {
            let payload = steps::finalize_payload(finalize)?;
            steps::outcomes(&ctx, &payload.tables, &list)
        }
        _ => Vec::new(),
    };
    Ok(CycleReport {
        run,
        tables,
        warnings: ctx.warnings.clone(),
        elapsed: started.elapsed(),
    })
}
