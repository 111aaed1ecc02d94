//! The local host's step consumers (`tidemark serve`): one pool of `--workers` consumers takes
//! every task's step messages from the step queue and hands each to
//! [`TaskService::run_step`] — the one driver, as run-worker runs it on Lambda. Each run's own
//! concurrency is held by the dispatch bound (`channel.workers` chunk messages in flight), so
//! the pool's size bounds the whole process, not a run.
//!
//! A sweeper beside them does what Lambda's event source and the scheduled sweep do on AWS:
//! dead letters fail their runs ([`TaskService::dead_letter`]), and every run that is not over
//! is swept ([`TaskService::reap_stalled`]: lost messages sent again, stalled runs failed,
//! pending clean-ups and cancels settled, deletes finished).

use std::sync::Arc;
use std::time::Duration;

use tidemark_core::ports::StepInbox;
use tidemark_engine::crash;

use crate::driver::waking::Waking;
use crate::tasks::TaskService;

/// The pool's size and pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Consumers, each handling one step at a time.
    pub workers: u32,
    /// How long an idle consumer waits for a send before it looks again (a delayed message
    /// becomes visible with no send). The sweeper runs every `DriverConfig::sweep_every`.
    pub poll: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            workers: 4,
            poll: Duration::from_millis(200),
        }
    }
}

impl TaskService {
    /// Starts the consumers and the sweeper over `inbox` (the queue this service's runs are sent
    /// to). They stop at [`TaskService::shutdown`], which waits for the steps in hand. `false`
    /// when the process is shutting down already.
    pub fn start_consumers<Q: StepInbox + 'static>(
        self: &Arc<Self>,
        inbox: Arc<Waking<Q>>,
        config: ConsumerConfig,
    ) -> bool {
        for _ in 0..config.workers.max(1) {
            let (service, inbox) = (Arc::clone(self), Arc::clone(&inbox));
            if !self.jobs.spawn(consume(service, inbox, config.poll)) {
                return false;
            }
        }
        let every = self.worker.driver.sweep_every;
        let (service, inbox) = (Arc::clone(self), inbox);
        self.jobs.spawn(sweep(service, inbox, every))
    }
}

/// One consumer: a message at a time, until shutdown.
async fn consume<Q: StepInbox>(service: Arc<TaskService>, inbox: Arc<Waking<Q>>, poll: Duration) {
    let config = service.worker.driver.clone();
    while !service.jobs.is_closed() {
        let delivery = match inbox.receive(1, config.step_lease).await {
            Ok(mut received) => received.pop(),
            Err(e) => {
                tracing::warn!(error = %e, "the step queue could not be read; trying again");
                service.jobs.pause(poll).await;
                continue;
            }
        };
        let Some(delivery) = delivery else {
            inbox.wait(poll).await;
            continue;
        };
        match service.run_step(&delivery.message, None).await {
            Ok(outcome) => {
                tracing::debug!(task = %delivery.message.run.task_id, run = %delivery.message.run.time_key(), step = delivery.message.step, ?outcome, "step handled");
                // Test hook: the step is settled and what follows it sent; its message is not
                // acknowledged yet (a crash here delivers it again).
                crash::point("step.before_ack");
                if let Err(e) = inbox.delete(&delivery.receipt).await {
                    tracing::warn!(error = %e, "a handled step's message could not be deleted; it will be delivered again");
                }
            }
            Err(e) => {
                // As on Lambda: the message comes back (sooner after a transient failure), and
                // one that keeps failing goes to the dead letters, which fail its run.
                let back = if e.is_retryable() {
                    config.first_backoff
                } else {
                    config.step_lease
                };
                tracing::warn!(task = %delivery.message.run.task_id, run = %delivery.message.run.time_key(), step = delivery.message.step, error = %e, receives = delivery.receive_count, "a step could not be handled; it will be delivered again");
                if let Err(e) = inbox.change_visibility(&delivery.receipt, back).await {
                    tracing::warn!(error = %e, "a step's message could not be put back");
                }
            }
        }
    }
}

/// The sweeper: dead letters, then every run that is not over, every `every`.
async fn sweep<Q: StepInbox>(service: Arc<TaskService>, inbox: Arc<Waking<Q>>, every: Duration) {
    loop {
        service.jobs.pause(every).await;
        if service.jobs.is_closed() {
            return;
        }
        match inbox.take_dead_letters(10).await {
            Ok(letters) => {
                for message in letters {
                    if let Err(e) = service.dead_letter(&message).await {
                        tracing::error!(task = %message.run.task_id, run = %message.run.time_key(), error = %e, "a dead letter could not fail its run");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "the dead letters could not be read"),
        }
        if let Err(e) = service.reap_stalled().await {
            tracing::warn!(error = %e, "the sweep failed; trying again");
        }
    }
}
