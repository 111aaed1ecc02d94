//! A table copied in many chunks by many run-worker invocations: with the step queue delivering
//! some batches twice at once (SQS's at-least-once delivery), and with a worker killed in the
//! middle of a chunk (its environment killed as a host failure would; its step's lease lapses,
//! and the step is sent again by run-cycle's sweep or comes back when the queue's visibility
//! timeout ends, whichever is first, and is done by another invocation).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tidemark_tests::harness::fixtures::rows_hash;
use tidemark_tests::harness::{destination, source};

use crate::support::Scenario;

const AT: &str = "2027-12-01T02:30:00Z";

/// `rows` rows of about 1 KB (wide rows: a chunk's bytes in fewer rows, less work for the debug
/// builds): about `rows / 1000` chunks of 1 MB.
pub fn big_table(rows: u32) -> Vec<String> {
    vec![
        "CREATE TABLE t (id BIGINT PRIMARY KEY, body VARCHAR(1000), n DOUBLE NULL)".to_owned(),
        format!(
            "INSERT INTO t SELECT seq * 3, REPEAT(CHAR(97 + seq % 26), 990), \
             IF(seq % 11 = 0, NULL, seq / 7) FROM seq_1_to_{rows}"
        ),
    ]
}

/// The rows of a run's tables, summed.
pub fn rows_of(run: &Value) -> u64 {
    run["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["rows"].as_u64())
        .sum()
}

pub async fn many_chunks_by_many_invocations_with_duplicate_deliveries() {
    let s = Scenario::new().await;
    let statements = big_table(6_000);
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    let db = s.source_db("aws_chunks", &refs).await;
    let target = s.target("aws_chunks_dw");
    let mut body = s.task(
        json!({ "mode": "resync" }),
        json!([{ "database": db, "rename": target }]),
    );
    body["channel"] = json!({ "workers": 3, "chunk_mb": 1 });
    let id = s.create(&body).await;
    s.start(&id).await;
    let steps = s.stack.source("RunWorkerFunctionSteps");
    steps.duplicate_every.store(2, Ordering::Relaxed);
    let run = s.cycle(&id, AT).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let chunks = run["chunks_total"].as_u64().unwrap_or(0);
    assert!(chunks >= 5, "{chunks} chunks: {run}");
    assert_eq!(run["chunks_done"].as_u64(), Some(chunks), "{run}");
    assert_eq!(rows_of(&run), 6_000, "each chunk counted once: {run}");
    assert_eq!(
        rows_hash(&source(), &db, "t", "id, body, HEX(n)").await,
        rows_hash(&destination(), &target, "t", "id, body, HEX(n)").await
    );
    let worker = s.stack.function("RunWorkerFunction");
    let invocations = worker.stats.invocations.load(Ordering::Relaxed);
    assert!(
        invocations > chunks + 2,
        "{invocations} invocations for {chunks} chunks"
    );
    assert!(
        worker.stats.cold_starts.load(Ordering::Relaxed) >= 2,
        "one environment did it all"
    );
    assert!(steps.stats.duplicated.load(Ordering::Relaxed) >= 2);
    s.finish().await;
}

pub async fn a_worker_killed_mid_chunk_is_resumed_from_its_step() {
    let s = Scenario::new().await;
    let statements = big_table(5_000);
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    let db = s.source_db("aws_killed", &refs).await;
    let target = s.target("aws_killed_dw");
    let mut body = s.task(
        json!({ "mode": "resync" }),
        json!([{ "database": db, "rename": target }]),
    );
    // One chunk at a time: the worker at work is the one loading a chunk.
    body["channel"] = json!({ "workers": 1, "chunk_mb": 1 });
    let id = s.create(&body).await;
    s.start(&id).await;
    s.fire(&id, AT).await;
    // The next chunk waits on the shadow table: the worker is killed while it loads, however
    // fast chunks go on this machine.
    let lock = s.hold_next_chunk(&id, AT, &target).await;
    let worker = s.stack.function("RunWorkerFunction");
    assert!(worker.kill_busy(), "no worker to kill");
    lock.release().await;
    let run = s.ended_run(&id, AT).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(worker.stats.crashes.load(Ordering::Relaxed), 1);
    // The crash is an error of AWS/Lambda's: run-worker's errors alarm rings.
    assert!(s.stack.alarm_rings("RunWorkerErrorsAlarm"));
    assert_eq!(run["chunks_done"], run["chunks_total"], "{run}");
    assert_eq!(rows_of(&run), 5_000, "each chunk counted once: {run}");
    assert_eq!(
        rows_hash(&source(), &db, "t", "id, body, HEX(n)").await,
        rows_hash(&destination(), &target, "t", "id, body, HEX(n)").await
    );
    s.finish().await;
}
