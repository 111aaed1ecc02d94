//! Where a host's prechecks go when its process cannot run them after answering (Lambda), and how
//! long a queued one counts as running (see [`crate::queued_precheck`]). A leaf below the task
//! service.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tidemark_core::ports::PrecheckQueue;
use tidemark_core::state::PrecheckSummary;

/// Where prechecks go, and how long one counts as running.
pub(crate) struct QueuedPrechecks {
    pub(crate) queue: Arc<dyn PrecheckQueue>,
    pub(crate) window: SignedDuration,
}

impl QueuedPrechecks {
    pub(crate) fn within(&self, summary: &PrecheckSummary, now: Timestamp) -> bool {
        now.duration_since(summary.at) < self.window
    }

    /// The window as a message says it (`360 s`).
    pub(crate) fn describe_window(&self) -> String {
        format!("{} s", self.window.as_secs())
    }
}
