//! The SQLite step queue passes the step-queue contract, on a real file, and keeps its messages
//! across a crash and restart.

use std::sync::Arc;
use std::time::Duration;

use tidemark_core::ports::{Clock, StepInbox, StepQueue};
use tidemark_local::SqliteStore;
use tidemark_tests::contract::step_queue::{Inbox, MAX_RECEIVE_COUNT, VISIBILITY, message};
use tidemark_tests::harness::ManualClock;

async fn queue(clock: Arc<dyn Clock>, max_receive_count: u32) -> Inbox {
    // A file (not :memory:) so WAL mode and the on-disk path are what is tested. The directory is
    // leaked on purpose: it must outlive the queue, and the OS temp dir is cleaned anyway.
    let dir = tempfile::tempdir().expect("a temp dir").keep();
    let store = SqliteStore::open(&dir.join("state.sqlite")).expect("open the store");
    Arc::new(store.step_queue(clock, max_receive_count))
}

tidemark_tests::step_queue_contract!(queue);

#[tokio::test]
async fn a_received_message_comes_back_after_a_crash_and_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("state.sqlite");
    let clock = ManualClock::new();
    let before = {
        let store = SqliteStore::open(&path).expect("open");
        let queue = store.step_queue(clock.clone(), MAX_RECEIVE_COUNT);
        queue.send_step(&message(1), None).await.expect("send");
        queue
            .send_step(&message(2), Some(Duration::from_secs(60)))
            .await
            .expect("send delayed");
        let mut got = queue.receive(10, VISIBILITY).await.expect("receive");
        assert_eq!(got.len(), 1, "{got:?}");
        // The consumer dies with the process: the message is never deleted.
        got.remove(0)
    };

    let store = SqliteStore::open(&path).expect("reopen");
    let queue = store.step_queue(clock.clone(), MAX_RECEIVE_COUNT);
    assert!(
        queue
            .receive(10, VISIBILITY)
            .await
            .expect("receive")
            .is_empty(),
        "still invisible after the restart"
    );
    clock.advance(VISIBILITY);
    let again = queue.receive(10, VISIBILITY).await.expect("receive");
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].message, before.message);
    assert_eq!(again[0].receive_count, 2, "the count outlives the process");
    assert_ne!(again[0].receipt, before.receipt);
    queue
        .delete(&before.receipt)
        .await
        .expect("the dead consumer's receipt is stale");
    queue.delete(&again[0].receipt).await.expect("delete");
    clock.advance(Duration::from_secs(30));
    let delayed = queue.receive(10, VISIBILITY).await.expect("receive");
    assert_eq!(delayed.len(), 1, "{delayed:?}");
    assert_eq!((delayed[0].message.step, delayed[0].receive_count), (2, 1));
}
