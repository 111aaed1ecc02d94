//! A Chunk step's message: a duplicate, one too close to the deadline, one for a run that was
//! cancelled, and the last chunk's end sending Finalize exactly once.

use std::time::Instant;

use jiff::Timestamp;
use tidemark_core::state::{RunStatus, StepStatus};

use super::Rig;
use crate::driver::StepOutcome;

#[tokio::test]
async fn a_duplicate_or_a_step_of_an_ended_run_does_nothing() {
    let rig = Rig::new(2, 1).await;
    rig.set(1, |s| {
        s.status = StepStatus::Leased;
        s.lease_owner = Some("another".into());
        s.lease_until = Some(Timestamp::MAX);
    })
    .await;
    // Another worker holds chunk 1: a duplicate of its message is dropped. (The claim fails
    // before any endpoint is opened.)
    assert_eq!(
        rig.handle(1, None).await,
        StepOutcome::Ignored("another worker holds the step")
    );
    assert_eq!(rig.step(1).await.lease_owner.as_deref(), Some("another"));
    // The run is cancelled: whatever is still queued finds it over and touches nothing.
    rig.set_run(RunStatus::Cancelled).await;
    assert_eq!(
        rig.handle(2, None).await,
        StepOutcome::Ignored("the run is over")
    );
    assert_eq!(rig.step(2).await.status, StepStatus::Pending);
    assert_eq!(rig.sent().await, Vec::<u32>::new());
}

#[tokio::test]
async fn a_step_too_close_to_the_deadline_is_sent_back_unclaimed() {
    let rig = Rig::new(1, 1).await;
    let outcome = rig.handle(1, Some(Instant::now())).await;
    assert_eq!(outcome, StepOutcome::Postponed("too close to the deadline"));
    assert_eq!(rig.sent().await, vec![1], "sent back as a new message");
    let step = rig.step(1).await;
    assert_eq!((step.status, step.attempts), (StepStatus::Pending, 0));
}

#[tokio::test]
async fn the_last_chunks_end_sends_finalize_exactly_once() {
    let rig = Rig::new(3, 2).await;
    for n in 1..=3 {
        rig.set(n, |s| s.status = StepStatus::Done).await;
    }
    // Two workers finish their chunks at the same moment: both read Finalize pending, one
    // dispatches first; the other's conditional write of what it read loses, so it sends nothing.
    let stale = rig.step(4).await;
    let driver = rig.driver();
    driver.dispatch(&rig.key, 2).await.expect("dispatch");
    assert!(
        !driver.mark_queued(stale).await.expect("write"),
        "a second sender"
    );
    driver.dispatch(&rig.key, 2).await.expect("dispatch");
    assert_eq!(rig.sent().await, vec![4], "Finalize, once");
    // A redelivered chunk message after that sends nothing more.
    assert_eq!(
        rig.handle(3, None).await,
        StepOutcome::Ignored("the step is done")
    );
    assert_eq!(rig.sent().await, Vec::<u32>::new());
}

#[tokio::test]
async fn a_step_of_a_cancelling_run_does_nothing_and_asks_the_host_to_settle_the_cancel() {
    let rig = Rig::new(2, 1).await;
    rig.set_run(RunStatus::Cancelling).await;
    let handled = rig.handled(1, None).await;
    assert_eq!(
        handled.outcome,
        StepOutcome::Ignored("the run is being cancelled")
    );
    assert!(handled.cancelling, "the host settles the cancel");
    assert_eq!(rig.step(1).await.status, StepStatus::Pending);
    // Nothing more is sent for it: neither by the dispatch nor by the sweep, which leaves a
    // cancelling run to its host (it is not stalled).
    // A step that ended as the cancel came learns it from its own dispatch, with no extra read,
    // and tells its host to settle the cancel.
    assert!(rig.driver().dispatch(&rig.key, 1).await.expect("dispatch"));
    assert!(rig.driver().dispatch_next(&rig.key, 1).await.expect("next"));
    let swept = rig.driver().sweep(&rig.key, 1).await.expect("sweep");
    assert_eq!(swept, crate::driver::dispatch::Swept::default());
    assert_eq!(rig.sent().await, Vec::<u32>::new());
}
