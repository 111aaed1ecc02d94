//! A clock that moves only when a test moves it, so time-driven behaviour (delays, visibility
//! timeouts) is tested without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use tidemark_core::ports::Clock;

/// Microseconds since the epoch, moved by [`ManualClock::advance`].
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    /// A clock at 2026-12-01T02:30:00Z (any fixed instant would do).
    pub fn new() -> Arc<ManualClock> {
        let start: Timestamp = "2026-12-01T02:30:00Z".parse().expect("a start instant");
        Arc::new(ManualClock {
            micros: AtomicI64::new(start.as_microsecond()),
        })
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).expect("a step a clock can take");
        self.micros.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_microsecond(self.micros.load(Ordering::SeqCst)).expect("a valid instant")
    }
}
