//! How the DynamoDB store retries what the service left undone (a batch's unprocessed items under
//! throttling) and how long it waits for a new table: core's [`RetryPolicy`], with this crate's
//! defaults, and the wait before a retry as a store error once every retry is spent.

use std::time::Duration;

use tidemark_core::ports::StoreError;
pub use tidemark_core::retry::{Delays, RetryPolicy};

/// A batch's unprocessed items: nine retries from 0.1 s, doubling, up to 3.2 s.
pub const BATCH_RETRY: RetryPolicy = RetryPolicy {
    min_delay: Duration::from_millis(100),
    max_delay: Duration::from_millis(3200),
    max_retries: 9,
};

/// Waiting for a created table to become active: every half second, for about a minute. A poll
/// of one table by one caller, so no jitter is needed.
pub const TABLE_ACTIVE: RetryPolicy = RetryPolicy {
    min_delay: Duration::from_millis(500),
    max_delay: Duration::from_millis(500),
    max_retries: 119,
};

/// Waiting before the next try.
pub(crate) trait BeforeRetry {
    /// Waits before the next try; once every retry is spent, a retryable error whose detail
    /// `left` writes from the number of tries made (what failed is left undone, trying later may
    /// finish it).
    async fn before_retry(&mut self, left: impl FnOnce(usize) -> String) -> Result<(), StoreError>;
}

impl BeforeRetry for Delays {
    async fn before_retry(&mut self, left: impl FnOnce(usize) -> String) -> Result<(), StoreError> {
        match self.next() {
            Some(delay) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            None => Err(StoreError::Backend {
                detail: left(self.tries()),
                retryable: true,
            }),
        }
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

    /// Tiny waits: the tests count sends, they do not wait for real.
    fn quick(max_retries: usize) -> RetryPolicy {
        RetryPolicy {
            min_delay: Duration::from_micros(10),
            max_delay: Duration::from_micros(40),
            max_retries,
        }
    }

    #[test]
    fn defaults_are_the_batch_retries_and_the_table_poll() {
        assert_eq!(BATCH_RETRY, policy(100, 3200, 9));
        assert_eq!(TABLE_ACTIVE, policy(500, 500, 119));
    }

    #[test]
    fn delays_are_jittered_within_min_and_max() {
        let p = BATCH_RETRY;
        let floors = [100, 200, 400, 800, 1600, 1600, 1600, 1600, 1600].map(Duration::from_millis);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let delays: Vec<Duration> = p.delays().collect();
            assert_eq!(delays.len(), 9, "{delays:?}");
            for (d, floor) in delays.iter().zip(floors) {
                assert!((p.min_delay..=p.max_delay).contains(d), "{d:?}");
                assert!(*d >= floor && *d <= floor * 2, "{d:?} for {floor:?}");
            }
            seen.insert(delays[0]);
        }
        assert!(
            seen.len() > 1,
            "the first delay is never jittered: {seen:?}"
        );
    }

    #[test]
    fn the_table_poll_waits_half_a_second_each_time() {
        let delays: Vec<Duration> = TABLE_ACTIVE.delays().collect();
        assert_eq!(delays.len(), 119);
        assert!(delays.iter().all(|d| *d == Duration::from_millis(500)));
    }

    #[test]
    fn a_min_above_half_the_max_stays_under_the_max() {
        let p = policy(900, 1000, 50);
        assert!(p.delays().all(|d| (p.min_delay..=p.max_delay).contains(&d)));
    }

    #[tokio::test]
    async fn work_left_after_the_last_retry_fails_retryably() {
        for retries in [0, 1, 9] {
            let mut delays = quick(retries).delays();
            let mut tries = 0;
            let error = loop {
                tries += 1;
                if let Err(e) = delays
                    .before_retry(|n| format!("left after {n} tries"))
                    .await
                {
                    break e;
                }
            };
            assert_eq!(tries, retries + 1);
            match error {
                StoreError::Backend { detail, retryable } => {
                    assert!(retryable);
                    assert_eq!(detail, format!("left after {tries} tries"));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
