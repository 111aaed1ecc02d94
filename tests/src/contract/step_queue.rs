//! The step-queue contract: SQS's semantics, which every queue a host polls itself (SQLite,
//! memory) must keep so one step driver behaves the same everywhere. Every queue runs these
//! through [`crate::step_queue_contract!`], each case as its own test on a fresh queue, with a
//! [`ManualClock`] that only the case moves.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tidemark_core::ports::{ReceivedStep, StepInbox, StepMessage};
use tidemark_core::state::RunKey;

use crate::harness::ManualClock;

/// A queue under test, shared by the concurrent consumers of a case.
pub type Inbox = Arc<dyn StepInbox>;

/// The `max_receive_count` every queue under test is built with.
pub const MAX_RECEIVE_COUNT: u32 = 3;

/// The visibility timeout the cases receive with.
pub const VISIBILITY: Duration = Duration::from_secs(30);

const SECOND: Duration = Duration::from_secs(1);

/// Step `step` of one fixed run: a case tells messages apart by their step.
pub fn message(step: u32) -> StepMessage {
    StepMessage {
        run: RunKey {
            task_id: "contract".into(),
            scheduled_time: "2026-12-01T02:30:00Z".parse().expect("a run time"),
        },
        step,
    }
}

async fn send(queue: &Inbox, step: u32, delay: Option<Duration>) {
    queue.send_step(&message(step), delay).await.expect("send");
}

async fn receive(queue: &Inbox, max: u32) -> Vec<ReceivedStep> {
    queue.receive(max, VISIBILITY).await.expect("receive")
}

/// The one message a receive must deliver.
async fn receive_one(queue: &Inbox) -> ReceivedStep {
    let mut got = receive(queue, 10).await;
    assert_eq!(got.len(), 1, "exactly one message: {got:?}");
    got.remove(0)
}

fn steps(received: &[ReceivedStep]) -> Vec<u32> {
    received.iter().map(|r| r.message.step).collect()
}

pub async fn sent_received_and_deleted(queue: Inbox, clock: Arc<ManualClock>) {
    send(&queue, 1, None).await;
    let got = receive_one(&queue).await;
    assert_eq!(got.message, message(1));
    assert_eq!(got.receive_count, 1);
    assert!(
        receive(&queue, 10).await.is_empty(),
        "a received message is invisible"
    );
    queue.delete(&got.receipt).await.expect("delete");
    clock.advance(VISIBILITY * 2);
    assert!(
        receive(&queue, 10).await.is_empty(),
        "a deleted message never comes back"
    );
    queue
        .delete(&got.receipt)
        .await
        .expect("deleting a message that is gone is a no-op");
    assert!(queue.take_dead_letters(10).await.expect("take").is_empty());
}

pub async fn a_delay_holds_a_message_back(queue: Inbox, clock: Arc<ManualClock>) {
    send(&queue, 1, Some(Duration::from_secs(60))).await;
    send(&queue, 2, None).await;
    let undelayed = receive_one(&queue).await;
    assert_eq!(
        undelayed.message.step, 2,
        "only the undelayed message is available"
    );
    queue.delete(&undelayed.receipt).await.expect("delete");
    clock.advance(Duration::from_secs(59));
    assert!(receive(&queue, 10).await.is_empty(), "one second early");
    clock.advance(SECOND);
    let got = receive_one(&queue).await;
    assert_eq!((got.message.step, got.receive_count), (1, 1));
}

pub async fn an_undeleted_message_comes_back_after_its_visibility_timeout(
    queue: Inbox,
    clock: Arc<ManualClock>,
) {
    send(&queue, 1, None).await;
    let first = receive_one(&queue).await;
    clock.advance(VISIBILITY - SECOND);
    assert!(
        receive(&queue, 10).await.is_empty(),
        "still invisible a second before the timeout"
    );
    clock.advance(SECOND);
    let second = receive_one(&queue).await;
    assert_eq!(second.message, message(1));
    assert_eq!(second.receive_count, 2);
    assert_ne!(
        second.receipt, first.receipt,
        "each delivery has its own receipt"
    );
}

pub async fn a_stale_receipt_neither_deletes_nor_changes_visibility(
    queue: Inbox,
    clock: Arc<ManualClock>,
) {
    send(&queue, 1, None).await;
    let first = receive_one(&queue).await;
    clock.advance(VISIBILITY);
    let second = receive_one(&queue).await;
    queue
        .delete(&first.receipt)
        .await
        .expect("a stale delete is a no-op, not an error");
    queue
        .change_visibility(&first.receipt, Duration::ZERO)
        .await
        .expect("a stale change is a no-op, not an error");
    assert!(
        receive(&queue, 10).await.is_empty(),
        "the new receipt's invisibility is untouched"
    );
    // The message is still there, and the new receipt still holds it.
    queue
        .change_visibility(&second.receipt, Duration::ZERO)
        .await
        .expect("change visibility");
    let third = receive_one(&queue).await;
    assert_eq!((third.message.step, third.receive_count), (1, 3));
    queue.delete(&third.receipt).await.expect("delete");
    clock.advance(VISIBILITY);
    assert!(
        receive(&queue, 10).await.is_empty(),
        "deleted by its newest receipt"
    );
}

pub async fn change_visibility_extends_and_zero_releases(queue: Inbox, clock: Arc<ManualClock>) {
    send(&queue, 1, None).await;
    let first = receive_one(&queue).await;
    clock.advance(Duration::from_secs(10));
    queue
        .change_visibility(&first.receipt, Duration::from_secs(120))
        .await
        .expect("extend");
    clock.advance(VISIBILITY);
    assert!(
        receive(&queue, 10).await.is_empty(),
        "past the first timeout, inside the extension"
    );
    clock.advance(Duration::from_secs(120) - VISIBILITY - SECOND);
    assert!(receive(&queue, 10).await.is_empty(), "one second early");
    clock.advance(SECOND);
    let second = receive_one(&queue).await;
    assert_eq!(second.receive_count, 2);
    queue
        .change_visibility(&second.receipt, Duration::ZERO)
        .await
        .expect("release");
    let third = receive_one(&queue).await;
    assert_eq!(
        third.receive_count, 3,
        "visible at once, without the clock moving"
    );
}

pub async fn oldest_available_first_and_max_respected(queue: Inbox, clock: Arc<ManualClock>) {
    // Step 0 is sent first but becomes available after 1..=3.
    send(&queue, 0, Some(Duration::from_secs(10))).await;
    for step in 1..=3 {
        send(&queue, step, None).await;
    }
    assert!(
        receive(&queue, 0).await.is_empty(),
        "max 0 receives nothing"
    );
    assert_eq!(steps(&receive(&queue, 2).await), vec![1, 2]);
    clock.advance(Duration::from_secs(20));
    send(&queue, 4, None).await;
    assert_eq!(steps(&receive(&queue, 2).await), vec![3, 0]);
    assert_eq!(steps(&receive(&queue, 2).await), vec![4]);
    assert!(receive(&queue, 2).await.is_empty());
}

pub async fn dead_lettered_after_max_receive_count_receives(queue: Inbox, clock: Arc<ManualClock>) {
    send(&queue, 1, None).await;
    send(&queue, 2, None).await;
    let mut last = Vec::new();
    for n in 1..=MAX_RECEIVE_COUNT {
        last = receive(&queue, 10).await;
        assert_eq!(steps(&last), vec![1, 2]);
        assert!(last.iter().all(|r| r.receive_count == n), "{last:?}");
        clock.advance(VISIBILITY);
    }
    assert!(
        receive(&queue, 10).await.is_empty(),
        "used up its receives: dead-lettered, not delivered"
    );
    clock.advance(VISIBILITY);
    assert!(receive(&queue, 10).await.is_empty(), "and never again");
    for r in &last {
        queue
            .delete(&r.receipt)
            .await
            .expect("a dead letter's receipt is stale");
    }
    let first = queue.take_dead_letters(1).await.expect("take");
    assert_eq!(first, vec![message(1)], "max respected, in send order");
    let rest = queue.take_dead_letters(10).await.expect("take");
    assert_eq!(rest, vec![message(2)], "the stale delete left it there");
    assert!(
        queue.take_dead_letters(10).await.expect("take").is_empty(),
        "each dead letter is returned once"
    );
    send(&queue, 3, None).await;
    let fresh = receive_one(&queue).await;
    assert_eq!((fresh.message.step, fresh.receive_count), (3, 1));
}

pub async fn equal_bodies_are_distinct_messages(queue: Inbox, clock: Arc<ManualClock>) {
    send(&queue, 7, None).await;
    send(&queue, 7, None).await;
    let got = receive(&queue, 10).await;
    assert_eq!(
        steps(&got),
        vec![7, 7],
        "a duplicate is a message of its own"
    );
    assert_ne!(got[0].receipt, got[1].receipt);
    queue.delete(&got[0].receipt).await.expect("delete one");
    clock.advance(VISIBILITY);
    let again = receive_one(&queue).await;
    assert_eq!((again.message.step, again.receive_count), (7, 2));
    queue
        .delete(&again.receipt)
        .await
        .expect("delete the other");
    clock.advance(VISIBILITY);
    assert!(receive(&queue, 10).await.is_empty());
}

pub async fn concurrent_consumers_never_share_a_message(queue: Inbox, _clock: Arc<ManualClock>) {
    const MESSAGES: u32 = 24;
    for step in 0..MESSAGES {
        send(&queue, step, None).await;
    }
    let consumers = (0..4).map(|_| {
        let queue = Arc::clone(&queue);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let got = receive(&queue, 3).await;
                if got.is_empty() {
                    return seen;
                }
                for r in got {
                    queue.delete(&r.receipt).await.expect("delete");
                    seen.push(r.message.step);
                }
            }
        })
    });
    let mut all = Vec::new();
    for consumer in consumers.collect::<Vec<_>>() {
        all.extend(consumer.await.expect("a consumer"));
    }
    all.sort_unstable();
    assert_eq!(all, (0..MESSAGES).collect::<Vec<_>>(), "each message once");
    let distinct: HashSet<u32> = all.into_iter().collect();
    assert_eq!(distinct.len(), MESSAGES as usize);
}

/// Expands to one `#[tokio::test]` per contract case. `$make` is an async function taking the
/// case's clock (as `Arc<dyn Clock>`) and [`MAX_RECEIVE_COUNT`], giving an [`Inbox`].
#[macro_export]
macro_rules! step_queue_contract {
    ($make:expr) => {
        $crate::step_queue_contract!(@cases $make;
            sent_received_and_deleted,
            a_delay_holds_a_message_back,
            an_undeleted_message_comes_back_after_its_visibility_timeout,
            a_stale_receipt_neither_deletes_nor_changes_visibility,
            change_visibility_extends_and_zero_releases,
            oldest_available_first_and_max_respected,
            dead_lettered_after_max_receive_count_receives,
            equal_bodies_are_distinct_messages,
            concurrent_consumers_never_share_a_message);
    };
    (@cases $make:expr; $($case:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let clock = $crate::harness::ManualClock::new();
            let queue = $make(
                clock.clone(),
                $crate::contract::step_queue::MAX_RECEIVE_COUNT,
            )
            .await;
            $crate::contract::step_queue::$case(queue, clock).await;
        }
    )+};
}
