//! The state store's page cursors: part of the state-store contract
//! ([`super::state_store`] runs this case with the others on every adapter).

use std::sync::Arc;

use tidemark_core::ports::StoreError;

use super::state_store::{Store, id, run, task};

/// A cursor the store did not hand out for this listing is refused as `BadCursor`, never taken
/// as a position: garbage, a bare key (what a cursor of the SQLite store once was), and a real
/// cursor of another listing.
pub async fn a_cursor_not_handed_out_for_the_listing_is_refused(store: Store) {
    let prefix = id();
    let ids: Vec<String> = (0..3).map(|i| format!("{prefix}_{i}")).collect();
    for i in &ids {
        store.create_task(&task(i)).await.expect("create");
        for time in ["2026-12-01T02:30:00Z", "2026-12-02T02:30:00Z"] {
            store.create_run(&run(i, time)).await.expect("run");
        }
    }
    let tasks_cursor = store
        .list_tasks(1, None)
        .await
        .expect("tasks")
        .next
        .expect("a next page of tasks");
    let runs_cursor = store
        .list_runs(&ids[0], 1, None)
        .await
        .expect("runs")
        .next
        .expect("a next page of runs");
    let bad = |r: Result<usize, StoreError>, what: &str| {
        assert!(matches!(r, Err(StoreError::BadCursor)), "{what}: {r:?}");
    };
    let tasks = |next: String| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_tasks(2, Some(&next))
                .await
                .map(|p| p.items.len())
        }
    };
    let runs = |task: String, next: String| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_runs(&task, 2, Some(&next))
                .await
                .map(|p| p.items.len())
        }
    };
    for garbage in ["not a cursor!", "", "e30", ids[0].as_str()] {
        bad(
            tasks(garbage.into()).await,
            &format!("tasks after {garbage:?}"),
        );
        bad(
            runs(ids[0].clone(), garbage.into()).await,
            &format!("runs after {garbage:?}"),
        );
    }
    bad(
        runs(ids[0].clone(), "2026-12-02T02:30:00Z".into()).await,
        "runs after a bare time key",
    );
    bad(
        runs(ids[1].clone(), runs_cursor.clone()).await,
        "runs of one task after another task's cursor",
    );
    bad(
        runs(ids[0].clone(), tasks_cursor.clone()).await,
        "runs after a tasks cursor",
    );
    bad(
        tasks(runs_cursor.clone()).await,
        "tasks after a runs cursor",
    );
    // The cursors handed out still work.
    assert!(tasks(tasks_cursor).await.expect("tasks page 2") >= 1);
    assert_eq!(
        runs(ids[0].clone(), runs_cursor)
            .await
            .expect("runs page 2"),
        1
    );
}
