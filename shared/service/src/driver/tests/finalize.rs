//! The Finalize step's message: sent before every chunk was done (given back), a duplicate once
//! it is done, one too close to the deadline, one for a cancelled run.

use std::time::Instant;

use tidemark_core::state::{RunStatus, StepStatus};

use super::Rig;
use crate::driver::StepOutcome;

#[tokio::test]
async fn a_finalize_sent_before_every_chunk_is_done_is_given_back_for_the_last_chunk_to_send() {
    let rig = Rig::new(2, 2).await;
    rig.set(1, |s| s.status = StepStatus::Done).await;
    rig.set(3, |s| s.status = StepStatus::Queued).await;
    assert_eq!(
        rig.handle(3, None).await,
        StepOutcome::Ignored("chunks are still to copy")
    );
    let step = rig.step(3).await;
    assert_eq!((step.status, step.lease_owner), (StepStatus::Queued, None));
    assert_eq!(step.attempts, 0, "a given-back claim is not an attempt");
    assert_eq!(rig.sent().await, Vec::<u32>::new());
}

#[tokio::test]
async fn a_duplicate_of_the_done_finalize_sends_nothing() {
    let rig = Rig::new(1, 1).await;
    rig.set(1, |s| s.status = StepStatus::Done).await;
    rig.set(2, |s| s.status = StepStatus::Done).await;
    assert_eq!(
        rig.handle(2, None).await,
        StepOutcome::Ignored("the step is done")
    );
    assert_eq!(rig.sent().await, Vec::<u32>::new());
}

#[tokio::test]
async fn a_finalize_too_close_to_the_deadline_or_of_a_cancelled_run_is_not_claimed() {
    let rig = Rig::new(1, 1).await;
    rig.set(1, |s| s.status = StepStatus::Done).await;
    rig.set(2, |s| s.status = StepStatus::Queued).await;
    assert_eq!(
        rig.handle(2, Some(Instant::now())).await,
        StepOutcome::Postponed("too close to the deadline")
    );
    assert_eq!(rig.sent().await, vec![2]);
    rig.set_run(RunStatus::Cancelled).await;
    assert_eq!(
        rig.handle(2, None).await,
        StepOutcome::Ignored("the run is over")
    );
    assert_eq!(rig.step(2).await.status, StepStatus::Queued);
    assert_eq!(rig.sent().await, Vec::<u32>::new());
}
