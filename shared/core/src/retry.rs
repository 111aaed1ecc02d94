//! How every retry waits (a chunk after a deadlock, DynamoDB's unprocessed items, a run's step
//! after an outage): one jittered exponential backoff from `backon`, its durations and count as
//! configuration (each caller names its own defaults), so tests can shorten them. Pure: the
//! caller sleeps.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Up to `max_retries` retries after the first try, waiting between tries a delay that doubles
/// from `min_delay` and is jittered, every wait within `[min_delay, max_delay]`.
///
/// Jitter spreads each wait over `[d, 2d)` (backon's), so the doubling stops at `max_delay / 2`
/// and the spread ends at `max_delay`: workers that failed together do not retry together.
/// `min_delay == max_delay` waits exactly that long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The shortest wait, the first retry's floor.
    pub min_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
    /// Retries after the first try; 0 never retries.
    pub max_retries: usize,
}

impl RetryPolicy {
    /// The waits before each retry, `max_retries` of them. An iterator, so also a backon
    /// `BackoffBuilder` for `Retryable::retry`.
    pub fn delays(&self) -> Delays {
        let base_cap = (self.max_delay / 2).max(self.min_delay);
        Delays {
            backoff: ExponentialBuilder::default()
                .with_min_delay(self.min_delay)
                .with_max_delay(base_cap)
                .with_max_times(self.max_retries)
                .with_jitter()
                .build(),
            max: self.max_delay,
            tries: 1,
        }
    }
}

/// The waits of a [`RetryPolicy`], jittered, none above its `max_delay`.
#[derive(Debug)]
pub struct Delays {
    backoff: ExponentialBackoff,
    max: Duration,
    /// Tries so far, counting the one before the first delay.
    tries: usize,
}

impl Delays {
    /// Tries made so far (1 before the first delay is taken).
    pub fn tries(&self) -> usize {
        self.tries
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // Jitter on a first delay above max/2, or f32 rounding, may pass the cap: clip it.
        let delay = self.backoff.next().map(|d| d.min(self.max));
        if delay.is_some() {
            self.tries += 1;
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min_ms: u64, max_ms: u64, max_retries: usize) -> RetryPolicy {
        RetryPolicy {
            min_delay: Duration::from_millis(min_ms),
            max_delay: Duration::from_millis(max_ms),
            max_retries,
        }
    }

    #[test]
    fn delays_are_jittered_within_min_and_max() {
        let p = policy(250, 2000, 4);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let delays: Vec<Duration> = p.delays().collect();
            assert_eq!(delays.len(), 4, "{delays:?}");
            for d in &delays {
                assert!(
                    (p.min_delay..=p.max_delay).contains(d),
                    "{d:?} outside [{:?}, {:?}]",
                    p.min_delay,
                    p.max_delay
                );
            }
            // Doubling: each wait's floor is the previous floor doubled, up to max/2.
            let floors = [250, 500, 1000, 1000].map(Duration::from_millis);
            for (d, floor) in delays.iter().zip(floors) {
                assert!(
                    *d >= floor && *d < floor * 2 + Duration::from_millis(1),
                    "{d:?}"
                );
            }
            seen.insert(delays[0]);
        }
        assert!(
            seen.len() > 1,
            "the first delay is never jittered: {seen:?}"
        );
    }

    #[test]
    fn the_retry_count_is_honoured() {
        for n in [0, 1, 3, 10] {
            assert_eq!(policy(1, 4, n).delays().count(), n);
        }
    }

    #[test]
    fn equal_bounds_wait_exactly_that_long() {
        let p = policy(5, 5, 3);
        assert!(p.delays().all(|d| d == Duration::from_millis(5)));
    }

    #[test]
    fn a_min_above_half_the_max_stays_under_the_max() {
        let p = policy(900, 1000, 50);
        assert!(p.delays().all(|d| (p.min_delay..=p.max_delay).contains(&d)));
    }
}
