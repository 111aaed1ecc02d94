//! A claimed step's lease: short, and renewed by its holder while the step's work runs, so a
//! holder that died (a killed process, a Lambda invocation that timed out) loses it within one
//! lease and the step's message, back on the queue, finds it free.

use std::future::Future;

use jiff::SignedDuration;
use tidemark_core::ports::{Clock, StateStore};
use tidemark_core::state::{RunKey, StepRecord, StepStatus};

use super::DriverConfig;
use crate::context::{Ctx, update_run};
use crate::error::ServiceError;
use crate::steps;

/// How [`Lease::hold_while`] ended.
pub(super) enum Held<T> {
    /// The work ran to its end.
    Done(T),
    /// The lease was lost to another worker; the work was dropped.
    Lost,
    /// The run is being cancelled (or ended); the work was dropped.
    Stopped,
}

pub(super) struct Lease<'a> {
    store: &'a dyn StateStore,
    clock: &'a dyn Clock,
    config: &'a DriverConfig,
    key: &'a RunKey,
    n: u32,
}

impl<'a> Lease<'a> {
    pub fn new(
        store: &'a dyn StateStore,
        clock: &'a dyn Clock,
        config: &'a DriverConfig,
        key: &'a RunKey,
        n: u32,
    ) -> Lease<'a> {
        Lease {
            store,
            clock,
            config,
            key,
            n,
        }
    }

    fn length(&self) -> SignedDuration {
        SignedDuration::try_from(self.config.step_lease).unwrap_or(SignedDuration::from_secs(60))
    }

    /// Claims the step, as `read` found it: `None` when it is done, failed, or held by a live
    /// lease.
    pub async fn claim(
        &self,
        ctx: &Ctx<'_>,
        read: StepRecord,
    ) -> Result<Option<StepRecord>, ServiceError> {
        steps::claim(ctx, read, &self.config.owner, self.length()).await
    }

    /// Runs `work`, renewing the lease every third of its length and, when `cancellable`,
    /// looking every `cancel_check` whether the run is being cancelled. Dropping the work rolls
    /// its transaction back: when the lease was found lost (it lapsed, and another worker claimed
    /// the step, which the new holder does) or the run is cancelling (its clean-up follows).
    pub async fn hold_while<T>(&self, work: impl Future<Output = T>, cancellable: bool) -> Held<T> {
        let floor = std::time::Duration::from_millis(10);
        let every = (self.config.step_lease / 3).max(floor);
        let check = self.config.cancel_check.max(floor);
        let work = std::pin::pin!(work);
        let mut work = work;
        let mut renew_at = tokio::time::Instant::now() + every;
        loop {
            let next_check = tokio::time::Instant::now() + check;
            tokio::select! {
                out = &mut work => return Held::Done(out),
                () = tokio::time::sleep_until(next_check), if cancellable && next_check < renew_at => {
                    if let Ok(Some(run)) = self.store.get_run(self.key).await
                        && !run.status.takes_steps()
                    {
                        tracing::info!(task = %self.key.task_id, run = %self.key.time_key(), step = self.n, status = ?run.status, "the run is being stopped; the step's work is dropped and rolled back");
                        return Held::Stopped;
                    }
                }
                () = tokio::time::sleep_until(renew_at) => match self.renew().await {
                    Ok(true) => renew_at = tokio::time::Instant::now() + every,
                    Ok(false) => {
                        tracing::warn!(task = %self.key.task_id, run = %self.key.time_key(), step = self.n, "the step's lease was lost; its work is dropped");
                        return Held::Lost;
                    }
                    // The store did not answer: the work goes on, the next renewal tries again.
                    Err(e) => {
                        renew_at = tokio::time::Instant::now() + every;
                        tracing::warn!(task = %self.key.task_id, run = %self.key.time_key(), step = self.n, error = %e, "the step's lease could not be renewed");
                    }
                },
            }
        }
    }

    /// Extends the lease (and the run's heartbeat). `false` only when another holder has it.
    async fn renew(&self) -> Result<bool, ServiceError> {
        loop {
            let Some(mut record) = self.store.get_step(self.key, self.n).await? else {
                return Ok(false);
            };
            if record.status != StepStatus::Leased {
                // Settled (or sent back) by this very holder's work, which is finishing.
                return Ok(true);
            }
            if record.lease_owner.as_deref() != Some(self.config.owner.as_str()) {
                return Ok(false);
            }
            let now = self.clock.now();
            record.lease_until = Some(now.saturating_add(self.length()).unwrap_or(now));
            match self.store.update_step(&record).await {
                Ok(_) => break,
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let now = self.clock.now();
        update_run(self.store, self.key, |r| r.heartbeat = now).await?;
        Ok(true)
    }
}
