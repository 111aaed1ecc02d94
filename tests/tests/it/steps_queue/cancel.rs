//! Cancel and delete on the SQS path: a run cancelled with chunks in flight, and a task deleted
//! while its run goes on, leave the previous copy, no shadow tables and no secrets.

use std::time::{Duration, Instant};

use tidemark_core::state::{RunKey, RunStatus, RunTrigger};
use tidemark_service::{Deleted, StepOutcome};
use tidemark_tests::harness::{destination, source};

use super::{
    create_task, drain, drain_one, handle, pump, receive, rig, source_db, step_of, task_json,
};
use crate::policy_support::{count, rows_hash};

#[tokio::test]
async fn a_cancelled_run_with_chunks_in_flight_leaves_the_previous_copy_and_no_shadows() {
    let (src, dst) = (source(), destination());
    let db = source_db(&src, 1, 60_000).await;
    let rig = rig(Duration::from_secs(1)).await;
    let id = create_task(
        &rig,
        &task_json(&src, &db, serde_json::json!({"mode": "resync"})),
    )
    .await;
    let first: jiff::Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    rig.service
        .begin_cycle(&id, first, RunTrigger::Schedule)
        .await
        .expect("trigger");
    let key = RunKey {
        task_id: id.clone(),
        scheduled_time: first,
    };
    let seen = pump(&rig, &key, Duration::from_secs(120)).await;
    let before = rows_hash(&dst, &db, "t0", "id, body, HEX(n)").await;
    assert_eq!(
        before,
        rows_hash(&src, &db, "t0", "id, body, HEX(n)").await,
        "{seen:?}"
    );

    // The source changes; the next cycle is cancelled once some of its chunks committed.
    src.exec(&[&format!(
        "UPDATE `{db}`.t0 SET body = 'changed' WHERE id % 2 = 0"
    )])
    .await;
    let second: jiff::Timestamp = "2026-12-02T02:30:00Z".parse().expect("time");
    rig.service
        .begin_cycle(&id, second, RunTrigger::Schedule)
        .await
        .expect("trigger");
    let key = RunKey {
        task_id: id.clone(),
        scheduled_time: second,
    };
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no chunk committed"
        );
        for message in receive(&rig, 1, 1).await {
            handle(&rig, &message).await;
        }
        let run = rig
            .service
            .ports()
            .store
            .get_run(&key)
            .await
            .expect("read")
            .expect("run");
        if run.chunks_done >= 1 {
            break;
        }
    }
    // Cancel while the next chunk is in flight.
    let next = receive(&rig, 1, 2).await;
    let in_flight = async {
        for message in &next {
            let _ = rig
                .service
                .run_step(
                    &step_of(message),
                    Some(Instant::now() + Duration::from_secs(60)),
                )
                .await;
        }
    };
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        rig.service
            .cancel_run(&id, &key.time_key())
            .await
            .expect("cancel")
    };
    let ((), detail) = tokio::join!(in_flight, cancel);
    // Settled at once, or by the step that held the run when it stopped (or ended).
    assert!(
        matches!(
            detail.run.status,
            RunStatus::Cancelling | RunStatus::Cancelled
        ),
        "{:?}",
        detail.run
    );
    // Whatever else is queued finds the run cancelled.
    let rest = drain(&rig).await;
    assert!(rest.deliveries >= 1, "nothing was left queued: {rest:?}");
    assert_eq!(rest.ran, 0, "{rest:?}");
    let run = rig.service.ports().store.get_run(&key).await.expect("read");
    assert_eq!(run.map(|r| r.status), Some(RunStatus::Cancelled));

    assert_eq!(rows_hash(&dst, &db, "t0", "id, body, HEX(n)").await, before);
    let leftovers = count(
        &dst,
        &format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_NAME <> 't0'"
        ),
    )
    .await;
    assert_eq!(leftovers, 0, "shadow or retired tables were left");
}

#[tokio::test]
async fn a_task_deleted_while_its_run_goes_on_ends_the_run_and_leaves_no_shadows_or_secrets() {
    let (src, dst) = (source(), destination());
    let db = source_db(&src, 1, 40_000).await;
    let rig = rig(Duration::from_secs(1)).await;
    let id = create_task(
        &rig,
        &task_json(&src, &db, serde_json::json!({"mode": "resync"})),
    )
    .await;
    let owned = rig.service.get(&id).await.expect("task").owned_secrets;
    assert_eq!(owned.len(), 2, "both inline passwords became secrets");
    let at: jiff::Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    rig.service
        .begin_cycle(&id, at, RunTrigger::Schedule)
        .await
        .expect("trigger");
    let key = RunKey {
        task_id: id.clone(),
        scheduled_time: at,
    };
    // The Schema step (shadow tables made), then the task is deleted.
    let first = drain_one(&rig).await;
    assert_eq!(first, Some(StepOutcome::Ran));
    let shadows = count(
        &dst,
        &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'"),
    )
    .await;
    assert!(shadows >= 1, "the Schema step made the shadow table");
    let deleted = rig.service.delete(&id, false).await.expect("delete");
    assert_eq!(
        deleted,
        Deleted::Gone,
        "no step held the run: cleaned up at once"
    );

    let rest = drain(&rig).await;
    assert!(rest.deliveries >= 1, "{rest:?}");
    assert_eq!(rest.ran, 0, "a step ran for a deleted task: {rest:?}");
    let run = rig.service.ports().store.get_run(&key).await.expect("read");
    assert!(
        run.is_none_or(|r| r.status == RunStatus::Cancelled),
        "the run goes with its task or ends cancelled"
    );
    let left = count(
        &dst,
        &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'"),
    )
    .await;
    assert_eq!(left, 0, "the deleted task's shadow tables were left");
    for reference in owned {
        assert!(
            rig.service
                .ports()
                .secrets
                .read_password(&reference)
                .await
                .is_err(),
            "{reference} outlived its task"
        );
    }
}
