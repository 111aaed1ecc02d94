//! One cycle of a task run to the end in this process (`tidemark run`, `tidemark serve`), over
//! the same steps a Lambda worker runs one by one (see [`crate::steps`]):
//!
//! ```text
//! run record (keyed by task + scheduled time: a second trigger for the same time finds it)
//!   -> schema: the policy's preparation and pre-data DDL, every table's chunks planned and
//!      written as steps
//!   -> copying: the chunk steps not yet done, `channel.workers` at a time, each verified and
//!      committed on its own, per-table counters added in the state store
//!   -> finalizing: the policy's ending (post-data DDL, swap, watermarks, old replicas)
//!   -> succeeded | failed (cleaned up, with the error, which names the object and the fix)
//! ```

use jiff::Timestamp;
use tidemark_core::ports::{Clock, StateStore};

pub use crate::context::{CycleEvent, CycleInput, Events, TableOutcome};
pub use crate::driver::local::{CycleReport, StepRetry};
use crate::error::ServiceError;

/// Runs one cycle to its end in this process through the one driver (see
/// [`crate::driver::local`]), with the default retry policy.
pub async fn run_cycle(
    store: &dyn StateStore,
    clock: &dyn Clock,
    input: CycleInput<'_>,
    on_event: Events,
) -> Result<CycleReport, ServiceError> {
    run_cycle_with(store, clock, input, on_event, StepRetry::default()).await
}

/// [`run_cycle`] with an explicit retry policy.
pub use crate::driver::local::run_cycle as run_cycle_with;

/// The scheduled time a manual run takes: now, to the minute (as EventBridge delivers it).
pub fn manual_scheduled_time(now: Timestamp) -> Timestamp {
    let seconds = now.as_second() - now.as_second().rem_euclid(60);
    Timestamp::from_second(seconds).unwrap_or(now)
}
