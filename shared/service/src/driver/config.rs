//! How the driver paces itself: every duration a run depends on, as configuration (environment
//! on Lambda, flags or defaults locally, short in tests).

use std::time::Duration;

use jiff::Timestamp;
use tidemark_engine::RetryPolicy;

use crate::steps;

/// The driver's durations and counts. `Default` is what a host uses unless told otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// Who holds the leases this process takes.
    pub owner: String,
    /// A step is not started closer than this to the caller's deadline (a Lambda invocation's):
    /// it goes back to the queue as a new message instead.
    pub step_budget: Duration,
    /// How long a claim on a step lasts without renewal. Its holder renews it every third of it
    /// while the step works, so a dead holder's step is free again within one lease.
    pub step_lease: Duration,
    /// Retryable failures of one step (an endpoint restarting, a lost connection, a deadlock
    /// that outlasted the chunk's own retries) before its run fails.
    pub step_attempts: u32,
    /// The wait before a failed step's first retry; it doubles (with jitter) up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// A step dispatched this long ago whose message nobody took (lost with a crashed sender, or
    /// a dead consumer's) is sent again by the sweep.
    pub resend_after: Duration,
    /// A run without progress for this long is failed by the sweep under its failure policy.
    pub run_lease: Duration,
    /// How often a Schema or Chunk step at work looks whether its run is being cancelled (it
    /// then stops and rolls back).
    pub cancel_check: Duration,
    /// How often a host that drives a run in-process sweeps it while its consumers are idle (on
    /// AWS the sweep is `run-cycle`'s, on its own schedule).
    pub sweep_every: Duration,
    /// A pooled session idle longer than this is pinged before a step uses it, and replaced if
    /// it does not answer (a warm Lambda container's, dropped by a NAT or the server while the
    /// container was frozen). Given to the process's [`super::EndpointPools`].
    pub idle_ping: Duration,
    /// How long a run's records (the run, its steps and progress) and a precheck report are
    /// kept: each gets its expiry from this when it is made, so a change affects new runs only.
    /// None: kept for good.
    pub record_retention: Option<Duration>,
}

impl DriverConfig {
    /// The defaults, with leases held by `owner` (see [`steps::owner_id`]).
    pub fn new(owner: &str) -> DriverConfig {
        DriverConfig {
            owner: steps::owner_id(owner),
            step_budget: Duration::from_secs(120),
            step_lease: Duration::from_secs(60),
            step_attempts: 6,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            resend_after: Duration::from_secs(15 * 60),
            run_lease: Duration::from_secs(60 * 60),
            cancel_check: Duration::from_secs(2),
            sweep_every: Duration::from_secs(5),
            idle_ping: tidemark_engine::copy::DEFAULT_IDLE_PING,
            record_retention: None,
        }
    }

    /// The expiry of a record made at `now`: `record_retention` later (none when kept).
    pub fn expiry(&self, now: Timestamp) -> Option<Timestamp> {
        let retention = jiff::SignedDuration::try_from(self.record_retention?).ok()?;
        // An expiry past what a timestamp holds is no expiry.
        now.checked_add(retention).ok()
    }

    /// `self` with the durations that follow from the timeout of the function that runs the
    /// steps (run-worker's on Lambda, at most 900 s), as the template sets them together:
    /// - the step budget is two fifths of it (120 s of 300 s): a chunk is sized to take seconds,
    ///   so a step started earlier has most of the invocation left;
    /// - the run lease is seven times it, and never below the host's (an hour): a step's message can be
    ///   invisible for the step queue's visibility timeout (six times the function's timeout)
    ///   after an invocation that died with it, and the invocation itself ran up to the timeout,
    ///   so a run is only stalled once neither can explain its silence.
    ///
    /// At 300 s both are the defaults.
    pub fn for_worker_timeout(self, timeout: Duration) -> DriverConfig {
        DriverConfig {
            step_budget: timeout * 2 / 5,
            run_lease: (timeout * 7).max(self.run_lease),
            ..self
        }
    }

    /// The wait before retry `attempt` (1-based): doubling from `first_backoff`, jittered (so
    /// that the steps of runs that failed together do not come back together), never above
    /// `max_backoff` — the engine's [`RetryPolicy`], one backoff for every retry.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let attempt = usize::try_from(attempt.max(1)).unwrap_or(usize::MAX);
        RetryPolicy {
            min_delay: self.first_backoff,
            max_delay: self.max_backoff,
            max_retries: attempt,
        }
        .delays()
        .nth(attempt - 1)
        .unwrap_or(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_timeout_gives_the_budget_and_the_run_lease() {
        let secs = Duration::from_secs;
        let defaults = DriverConfig::new("t");
        assert_eq!(defaults.clone().for_worker_timeout(secs(300)), defaults);
        for timeout in [60, 120, 300, 600, 900].map(secs) {
            let config = DriverConfig::new("t").for_worker_timeout(timeout);
            assert!(config.step_budget < timeout, "{timeout:?}");
            assert!(config.run_lease >= timeout * 7, "{timeout:?}");
            assert_eq!(config.step_lease, defaults.step_lease);
        }
        let long = DriverConfig::new("t").for_worker_timeout(secs(900));
        assert_eq!((long.step_budget, long.run_lease), (secs(360), secs(6300)));
        let short = DriverConfig::new("t").for_worker_timeout(secs(60));
        assert_eq!((short.step_budget, short.run_lease), (secs(24), secs(3600)));
    }

    #[test]
    fn a_record_expires_its_retention_after_it_is_made() {
        let now: Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
        let mut config = DriverConfig::new("t");
        assert_eq!(config.expiry(now), None, "kept for good by default");
        config.record_retention = Some(Duration::from_secs(90 * 86_400));
        let expiry = config.expiry(now).expect("an expiry");
        assert_eq!(expiry, "2027-03-01T02:30:00Z".parse().expect("time"));
        config.record_retention = Some(Duration::MAX);
        assert_eq!(config.expiry(now), None, "beyond any timestamp");
    }

    #[test]
    fn backoff_grows_jittered_within_its_bounds() {
        let mut config = DriverConfig::new("t");
        config.first_backoff = Duration::from_millis(400);
        config.max_backoff = Duration::from_millis(3200);
        for attempt in 1..=9 {
            for _ in 0..20 {
                let wait = config.backoff(attempt);
                assert!(
                    wait >= config.first_backoff && wait <= config.max_backoff,
                    "{attempt}: {wait:?}"
                );
            }
        }
        // The third retry waits at least twice the first's floor.
        assert!(config.backoff(3) >= Duration::from_millis(1600));
        let waits: std::collections::HashSet<Duration> =
            (0..20).map(|_| config.backoff(2)).collect();
        assert!(waits.len() > 1, "no jitter: {waits:?}");
    }
}
