//! The Schema step's message: a duplicate once it is done (what should follow it is sent), one
//! too close to the deadline, one for a cancelled or cancelling run.

use std::time::Instant;

use tidemark_core::state::{RunStatus, StepStatus};

use super::Rig;
use crate::driver::StepOutcome;
use crate::steps::SCHEMA_STEP;

#[tokio::test]
async fn a_duplicate_of_the_done_schema_step_sends_what_follows_it_once() {
    let rig = Rig::new(3, 2).await;
    // Done, its end's dispatch lost with a crashed process: the redelivery sends it.
    assert_eq!(
        rig.handle(SCHEMA_STEP, None).await,
        StepOutcome::Ignored("the step is done")
    );
    assert_eq!(rig.sent().await, vec![1, 2]);
    // Delivered again: the chunks are in flight, nothing more goes.
    assert_eq!(
        rig.handle(SCHEMA_STEP, None).await,
        StepOutcome::Ignored("the step is done")
    );
    assert_eq!(rig.sent().await, Vec::<u32>::new());
}

#[tokio::test]
async fn a_schema_step_too_close_to_the_deadline_is_sent_back_unclaimed() {
    let rig = Rig::new(1, 1).await;
    rig.set(SCHEMA_STEP, |s| s.status = StepStatus::Queued)
        .await;
    assert_eq!(
        rig.handle(SCHEMA_STEP, Some(Instant::now())).await,
        StepOutcome::Postponed("too close to the deadline")
    );
    assert_eq!(rig.sent().await, vec![SCHEMA_STEP]);
    let step = rig.step(SCHEMA_STEP).await;
    assert_eq!((step.status, step.lease_owner), (StepStatus::Queued, None));
}

#[tokio::test]
async fn a_schema_step_of_a_cancelled_or_cancelling_run_touches_nothing() {
    let rig = Rig::new(1, 1).await;
    rig.set(SCHEMA_STEP, |s| s.status = StepStatus::Queued)
        .await;
    rig.set_run(RunStatus::Cancelling).await;
    let handled = rig.handled(SCHEMA_STEP, None).await;
    assert!(handled.cancelling, "the host settles the cancel");
    rig.set_run(RunStatus::Cancelled).await;
    assert_eq!(
        rig.handle(SCHEMA_STEP, None).await,
        StepOutcome::Ignored("the run is over")
    );
    assert_eq!(rig.step(SCHEMA_STEP).await.status, StepStatus::Queued);
    assert_eq!(rig.sent().await, Vec::<u32>::new());
}
