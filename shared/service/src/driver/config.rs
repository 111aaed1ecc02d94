//! How the driver paces itself: every duration a run depends on, as configuration (environment
//! on Lambda, flags or defaults locally, short in tests).

use std::time::Duration;

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
        }
    }

    /// The wait before retry `attempt` (1-based): `first_backoff * 2^(attempt-1)`, capped at
    /// `max_backoff`, with up to a quarter taken off at random so that the steps of runs that
    /// failed together do not come back together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let full = self
            .first_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_backoff);
        let quarter = full / 4;
        full - quarter.mul_f64(jitter())
    }

    /// The longest a step's retries may wait in all.
    pub fn retry_window(&self) -> Duration {
        (1..=self.step_attempts).map(|a| self.backoff(a)).sum()
    }
}

/// A number in [0, 1) that differs from call to call (no cryptographic quality needed).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_at_most_a_quarter_of_jitter() {
        let mut config = DriverConfig::new("t");
        config.first_backoff = Duration::from_millis(400);
        config.max_backoff = Duration::from_millis(2000);
        for (attempt, full) in [(1, 400), (2, 800), (3, 1600), (4, 2000), (9, 2000)] {
            let full = Duration::from_millis(full);
            for _ in 0..50 {
                let wait = config.backoff(attempt);
                assert!(
                    wait <= full && wait >= full - full / 4,
                    "{attempt}: {wait:?}"
                );
            }
        }
        let waits: std::collections::HashSet<Duration> =
            (0..20).map(|_| config.backoff(3)).collect();
        assert!(waits.len() > 1, "no jitter: {waits:?}");
    }
}
