//! How the engine retries a failure that retrying can fix: core's [`RetryPolicy`], with a
//! chunk's defaults.

use std::time::Duration;

pub use tidemark_core::retry::{Delays, RetryPolicy};

/// A chunk's: four retries of 0.25-0.5 s, 0.5-1 s, 1-2 s and 1-2 s — long enough for a
/// deadlock's partner to commit or a restarted server to come back, short enough to stay well
/// inside a Lambda invocation.
pub const CHUNK_RETRY: RetryPolicy = RetryPolicy {
    min_delay: Duration::from_millis(250),
    max_delay: Duration::from_secs(2),
    max_retries: 4,
};
