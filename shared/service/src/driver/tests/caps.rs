//! `channel.table_workers` in the dispatch: a table at its cap waits while other tables' chunks
//! go, on the Schema step's end and on every chunk's.

use super::*;

#[tokio::test]
async fn a_capped_table_keeps_to_its_cap_while_other_tables_chunks_go() {
    let rig = Rig::new(6, 3).await;
    // Steps 1-4 copy `d.ai` (capped at one chunk in flight), 5-6 `d.plain`.
    for n in 1..=6 {
        let table = if n <= 4 { "d.ai" } else { "d.plain" };
        rig.set(n, move |s| {
            s.payload = serde_json::json!({ "table": table })
        })
        .await;
    }
    let mut run = rig
        .store
        .get_run(&rig.key)
        .await
        .expect("read")
        .expect("run");
    run.plan = serde_json::json!({ "table_workers": { "d.ai": 1 } });
    rig.store.update_run(&run).await.expect("write the run");

    rig.driver().dispatch(&rig.key, 3).await.expect("dispatch");
    assert_eq!(
        rig.sent().await,
        vec![1, 5, 6],
        "one chunk of d.ai, then d.plain's"
    );
    let rig = &rig;
    let end = |n: u32| async move {
        rig.set(n, |s| s.status = StepStatus::Done).await;
        rig.store
            .increment_chunks_done(&rig.key)
            .await
            .expect("count");
        rig.driver().dispatch_next(&rig.key, 3).await.expect("next");
        rig.sent().await
    };
    // A d.plain chunk ends: d.ai is at its cap and nothing else is left, so nothing goes.
    assert_eq!(end(5).await, Vec::<u32>::new());
    assert_eq!(end(6).await, Vec::<u32>::new());
    // Each d.ai chunk's end sends the next one, then Finalize once.
    assert_eq!(end(1).await, vec![2]);
    assert_eq!(end(2).await, vec![3]);
    assert_eq!(end(3).await, vec![4]);
    assert_eq!(end(4).await, vec![7]);
    rig.driver().dispatch(&rig.key, 3).await.expect("again");
    assert_eq!(rig.sent().await, Vec::<u32>::new());
}

#[tokio::test]
async fn two_workers_dispatching_at_once_never_pass_a_tables_cap() {
    let rig = Rig::new(4, 4).await;
    for n in 1..=4 {
        rig.set(n, |s| s.payload = serde_json::json!({ "table": "d.ai" }))
            .await;
    }
    let mut run = rig
        .store
        .get_run(&rig.key)
        .await
        .expect("read")
        .expect("run");
    run.plan = serde_json::json!({ "table_workers": { "d.ai": 1 } });
    rig.store.update_run(&run).await.expect("write the run");
    rig.driver().dispatch(&rig.key, 4).await.expect("dispatch");
    assert_eq!(rig.sent().await, vec![1]);
    rig.set(1, |s| s.status = StepStatus::Done).await;
    rig.store
        .increment_chunks_done(&rig.key)
        .await
        .expect("count");
    // Two workers read the run's steps at once (say a chunk's end and the sweep); one sends
    // chunk 2; the other, from the same view, loses that race and sends nothing more of the
    // table (not chunk 3: the table would have two chunks in flight).
    let run = rig
        .store
        .get_run(&rig.key)
        .await
        .expect("read")
        .expect("run");
    let view = rig.store.list_steps(&rig.key).await.expect("steps");
    let driver = rig.driver();
    driver
        .dispatch_from(&rig.key, 4, &run, &view)
        .await
        .expect("dispatch");
    driver
        .dispatch_from(&rig.key, 4, &run, &view)
        .await
        .expect("dispatch");
    assert_eq!(rig.sent().await, vec![2]);
}
