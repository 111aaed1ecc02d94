//! The dispatch bound on the SQS path.

use std::time::{Duration, Instant};

use tidemark_core::state::{RunKey, RunStatus, RunTrigger, StepKind};
use tidemark_tests::harness::source;

use super::{create_task, delete, handle, receive, rig, source_db, step_of, task_json};

/// The dispatch model: with `channel.workers: 1` a 20-chunk run never has more than one chunk
/// message on the queue, each chunk's end sends the next, and no chunk is sent twice (no slot to
/// wait for, so no message comes back every few seconds).
#[tokio::test]
async fn one_worker_means_one_chunk_message_in_flight_and_each_chunk_sent_once() {
    let src = source();
    let db = source_db(&src, 20, 200).await;
    let rig = rig(Duration::from_secs(1)).await;
    let mut spec: serde_json::Value =
        serde_json::from_str(&task_json(&src, &db, serde_json::json!({"mode": "resync"})))
            .expect("json");
    spec["channel"]["workers"] = 1.into();
    let id = create_task(&rig, &spec.to_string()).await;
    let at: jiff::Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    rig.service
        .begin_cycle(&id, at, RunTrigger::Schedule)
        .await
        .expect("trigger");
    let key = RunKey {
        task_id: id.clone(),
        scheduled_time: at,
    };
    let started = Instant::now();
    let (mut chunk_messages, mut most_at_once) = (0usize, 0usize);
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run did not end"
        );
        let store = &rig.service.ports().store;
        let run = store.get_run(&key).await.expect("read").expect("run");
        if run.status.is_final() {
            assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
            break;
        }
        let received = receive(&rig, 10, 1).await;
        let steps = store.list_steps(&key).await.expect("steps");
        let in_batch = received
            .iter()
            .filter(|m| {
                let n = step_of(m).step;
                steps.iter().any(|s| s.n == n && s.kind == StepKind::Chunk)
            })
            .count();
        chunk_messages += in_batch;
        most_at_once = most_at_once.max(in_batch);
        for message in received {
            handle(&rig, &message).await;
            delete(&rig, message).await;
        }
    }
    let run = rig
        .service
        .ports()
        .store
        .get_run(&key)
        .await
        .expect("read")
        .expect("run");
    assert_eq!(run.chunks_total, 20, "one chunk a table");
    assert_eq!(most_at_once, 1, "more than one chunk message was in flight");
    assert!(
        (20..=22).contains(&chunk_messages),
        "{chunk_messages} chunk messages for 20 chunks"
    );
}
