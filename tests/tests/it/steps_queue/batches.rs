//! Several small tables per Chunk step, on the SQS path: each table keeps its own counters,
//! checksum and errors, and a retry of the step copies only the table that failed.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use tidemark_core::policy::shadow_table_name;
use tidemark_core::state::{RunKey, RunStatus, RunTrigger, StepKind, StepStatus};
use tidemark_tests::harness::PrivateServer;
use tidemark_tests::harness::source;

use super::{create_task, delete, handle, pump, receive, rig, source_db, step_of};
use crate::policy_support::rows_hash;

/// 48 tables of 5 rows and one worker: 3 tables a step. One of the first step's tables is
/// locked on the destination (a private server whose lock waits end after 1 s), so its part
/// fails with a lock-wait timeout after its own retries while the other two commit: the step goes
/// back to the queue with those two recorded, its error naming the locked table. A row changed
/// on the source in a table that committed is not copied again by the retry (only the failed
/// table is); every table is counted and verified once.
#[tokio::test]
async fn a_step_of_several_tables_retries_only_the_table_that_failed_and_names_it() {
    let src = source();
    let private = PrivateServer::start("batch-dst", &["--innodb-lock-wait-timeout=1"]);
    let dst = &private.server;
    let db = source_db(&src, 48, 5).await;
    let rig = rig(Duration::from_secs(1)).await;
    let spec = serde_json::json!({
        "name": "batched",
        "source": src.endpoint_json(),
        "destination": dst.endpoint_json(),
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-11-30" },
        "objects": [ { "database": db } ],
        "channel": { "workers": 1, "chunk_mb": 1 }
    });
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
    let store = &rig.service.ports().store;

    // The Schema step: 48 tables, 16 steps of 3.
    let schema = receive(&rig, 1, 5)
        .await
        .pop()
        .expect("the Schema step's message");
    assert_eq!(step_of(&schema).step, 0);
    handle(&rig, &schema).await;
    delete(&rig, schema).await;
    let steps = store.list_steps(&key).await.expect("steps");
    let chunk_steps: Vec<_> = steps.iter().filter(|s| s.kind == StepKind::Chunk).collect();
    assert_eq!(chunk_steps.len(), 16, "{} chunk steps", chunk_steps.len());
    let first = chunk_steps[0];
    let tables: Vec<String> = first.payload["batch"]
        .as_array()
        .expect("a step of several tables")
        .iter()
        .map(|p| p["table"].as_str().expect("table").to_owned())
        .collect();
    assert_eq!(tables.len(), 3, "{tables:?}");
    let table_of = |t: &str| t.rsplit('.').next().expect("db.table").to_owned();
    let (done_a, locked, done_c) = (
        table_of(&tables[0]),
        table_of(&tables[1]),
        table_of(&tables[2]),
    );

    // Hold a row of the middle table's shadow, uncommitted: its load waits and times out.
    let mut holder = dst.conn().await;
    holder.query_drop("BEGIN").await.expect("begin");
    holder
        .query_drop(format!(
            "INSERT INTO `{db}`.`{}` (id, body) VALUES (3, 'held')",
            shadow_table_name(&db, &locked)
        ))
        .await
        .expect("hold a row");
    let message = receive(&rig, 1, 5)
        .await
        .pop()
        .expect("the first chunk step's message");
    assert_eq!(step_of(&message).step, first.n);
    let outcome = handle(&rig, &message).await;
    delete(&rig, message).await;
    assert!(
        matches!(outcome, tidemark_service::StepOutcome::Postponed(_)),
        "{outcome:?}"
    );
    let after = store
        .get_step(&key, first.n)
        .await
        .expect("read")
        .expect("step");
    assert_eq!(after.status, StepStatus::Queued);
    let parts: Vec<u32> = after.parts.iter().map(|p| p.index).collect();
    assert_eq!(
        parts,
        [0, 2],
        "the two other tables committed and are recorded"
    );
    let error = after.error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!("`{locked}`")),
        "the error names the table: {error}"
    );

    // A row changed on the source in a table that committed: the retry must not copy it again.
    src.exec(&[&format!(
        "UPDATE `{db}`.`{done_a}` SET body = 'changed' WHERE id = 3"
    )])
    .await;
    holder.query_drop("ROLLBACK").await.expect("rollback");
    drop(holder);
    pump(&rig, &key, Duration::from_secs(180)).await;
    let run = store.get_run(&key).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        dst.query_one(&format!("SELECT body FROM `{db}`.`{done_a}` WHERE id = 3"))
            .await
            .as_deref()
            .map(|b| b.len()),
        Some(180),
        "the committed table was copied again"
    );
    for table in [&locked, &done_c] {
        assert_eq!(
            rows_hash(dst, &db, table, "id, body, n").await,
            rows_hash(&src, &db, table, "id, body, n").await,
            "{table}"
        );
    }
    // Each table counted and verified once.
    let progress = store.list_progress(&key).await.expect("progress");
    assert_eq!(progress.len(), 48);
    assert!(
        progress
            .iter()
            .all(|p| p.rows == 5 && p.chunks_done == 1 && p.verified == 1 && p.mismatched == 0),
        "{progress:?}"
    );
    assert_eq!((run.chunks_done, run.chunks_total), (16, 16));
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}
