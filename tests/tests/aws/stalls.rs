//! Runs nobody drives: run-worker's step-queue mapping is disabled (as if the function were
//! throttled; the test takes a step by hand where it needs one), so only run-cycle's sweep looks
//! after them. It sends a Schema step nobody took again, fails a run without progress for the
//! run lease under the task's failure policy (`stop`: the schedule goes; its clean-up reads the
//! destination's password from the user's own secret), and finishes the delete of a task whose
//! worker was killed mid-chunk after the delete. A cancel or a delete with no step in flight is
//! cleaned up at once by manage-task (the passwords read: the task's own secret, or the user's).
//!
//! This stack's time factor is 120 rather than the suite's 30, so the hour-long run lease is 30 s
//! and the 15-minute sweep 7.5 s.

use std::sync::Arc;

use serde_json::{Value, json};
use tidemark_tests::harness::destination;
use tidemark_tests::lambda_host::{StackOptions, TimeScale};

use crate::chunks::big_table;
use crate::support::Scenario;

const STOP_AT: &str = "2027-12-01T02:30:00Z";
const CANCEL_AT: &str = "2027-12-01T03:30:00Z";
const KILL_AT: &str = "2027-12-01T04:30:00Z";
const DELETE_AT: &str = "2027-12-01T05:30:00Z";

/// A stack whose step queue nobody consumes, with a table of about 4 chunks on the source.
async fn stalled() -> (Scenario, String) {
    let s = Scenario::with(StackOptions {
        scale: Some(TimeScale::new(120.0)),
        disabled_mappings: vec!["RunWorkerFunctionSteps".into()],
        ..StackOptions::default()
    })
    .await;
    let statements = big_table(4_000);
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    let db = s.source_db("aws_stall", &refs).await;
    (s, db)
}

/// A started task at `at` o'clock; with `user_secret`, its destination's password is the user's
/// own (RDS) secret.
async fn task(
    s: &Scenario,
    db: &str,
    at: &str,
    policy: Value,
    user_secret: bool,
) -> (String, String) {
    let target = s.target("aws_stall_dw");
    let mut body = s.task(policy, json!([{ "database": db, "rename": target }]));
    body["schedule"]["at"] = json!(at);
    if user_secret {
        let rds = s.user_secret(&s.writer).await;
        body["destination"] = json!({ "host": s.writer.host, "port": s.writer.port,
                                      "user": s.writer.user, "password_secret": rds });
    }
    let id = s.create(&body).await;
    s.start(&id).await;
    (id, target)
}

/// Takes the Schema step of the run at `at` by hand (and whatever comes before it on the queue):
/// its tables (or replica) made, its chunks planned, none taken.
async fn take_schema(s: &Scenario, id: &str, at: &str) {
    let steps = s.stack.source("RunWorkerFunctionSteps");
    while s.run_when(id, at, |_| true).await["chunks_total"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        steps.poll_once().await;
    }
}

/// Which functions logged `message` for task `id`, once one did (a line reaches the host a
/// little after what it reports is in the table).
async fn logged_by(s: &Scenario, message: &str, id: &str) -> Vec<String> {
    let started = std::time::Instant::now();
    loop {
        let mut functions: Vec<String> = s
            .stack
            .logs
            .lines()
            .into_iter()
            .filter(|l| {
                l.json()
                    .is_some_and(|j| j["message"] == message && j["task"] == id)
            })
            .map(|l| l.function)
            .collect();
        functions.sort();
        functions.dedup();
        if !functions.is_empty() || started.elapsed() > std::time::Duration::from_secs(10) {
            return functions;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// How many lines the stack's functions logged with `message` for task `id`.
fn times_logged(s: &Scenario, message: &str, id: &str) -> usize {
    s.stack
        .logs
        .lines()
        .into_iter()
        .filter(|l| {
            l.json()
                .is_some_and(|j| j["message"] == message && j["task"] == id)
        })
        .count()
}

pub async fn stalled_runs_are_failed_settled_and_deleted_by_the_sweep() {
    let (s, db) = stalled().await;
    let (stop, _) = task(&s, &db, "02:30", json!({ "mode": "resync" }), true).await;
    let (killed, target) = task(&s, &db, "04:30", json!({ "mode": "multi_replica" }), false).await;

    // The Schema step and a chunk of one run taken by hand; the task is deleted while the chunk
    // loads, and the worker is killed: only the sweep can settle the cancel and end the delete.
    s.fire(&killed, KILL_AT).await;
    take_schema(&s, &killed, KILL_AT).await;
    let steps = Arc::clone(s.stack.source("RunWorkerFunctionSteps"));
    // The chunk waits on the replica's table until its worker is killed.
    let lock = s
        .lock_table(&format!("{target}_20271201_04_30_00"), "t")
        .await;
    let chunk = tokio::spawn(async move { steps.poll_once().await });
    s.chunk_at_work().await;
    let (status, body) = s
        .stack
        .http("DELETE", &format!("/tasks/{killed}"), None)
        .await;
    assert_eq!(status, 202, "a chunk was in flight: {body}");
    assert!(s.stack.function("RunWorkerFunction").kill_busy());
    let _ = chunk.await;
    lock.release().await;
    s.until(&format!("/tasks/{killed}"), |status, _| status == 404)
        .await;
    assert_eq!(
        logged_by(&s, "task deleted", &killed).await,
        ["RunCycleFunction"],
        "the sweep ends the delete"
    );

    // A Schema step nobody takes is sent again by the sweep; taken by hand at last, its chunks
    // are not: the run, without progress for the run lease, is failed by the sweep under `stop`.
    s.fire(&stop, STOP_AT).await;
    s.until(&format!("/tasks/{stop}/runs/{STOP_AT}"), |_, _| {
        s.stack.logs.lines().iter().any(|l| {
            l.json().is_some_and(|j| {
                j["message"] == "steps whose message was lost were sent again" && j["task"] == *stop
            })
        })
    })
    .await;
    take_schema(&s, &stop, STOP_AT).await;
    let run = s.ended_run(&stop, STOP_AT).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        logged_by(&s, "run failed", &stop).await,
        ["RunCycleFunction"],
        "the sweep fails it"
    );
    let task = s.settled_task(&stop).await;
    assert_eq!(task["status"], "failed", "{task}");
    assert!(s.stack.alarm_rings("FailedRunAlarm"));
    s.finish().await;
}

pub async fn cleanups_with_nothing_in_flight_are_done_at_once_by_manage_task() {
    let (s, db) = stalled().await;
    // Planned, none of its chunks taken: the cancel drops the shadow tables at once (the
    // destination's password read from the user's secret).
    let (cancelled, target) = task(&s, &db, "03:30", json!({ "mode": "resync" }), true).await;
    s.fire(&cancelled, CANCEL_AT).await;
    take_schema(&s, &cancelled, CANCEL_AT).await;
    let (status, body) = s
        .stack
        .http(
            "POST",
            &format!("/tasks/{cancelled}/runs/{CANCEL_AT}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 200, "nothing was in flight: {body}");
    assert_eq!(body["status"], "cancelled", "{body}");
    let shadows = destination()
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{target}'"
        ))
        .await;
    assert_eq!(shadows.as_deref(), Some("0"), "the shadow tables stay");
    assert_eq!(
        logged_by(&s, "run cancelled, cleaned up", &cancelled).await,
        ["ManageTaskFunction"]
    );
    // Planned, then deleted: the half-made replica goes at once (the task's own secret read).
    let (deleted, target) = task(&s, &db, "05:30", json!({ "mode": "multi_replica" }), false).await;
    s.fire(&deleted, DELETE_AT).await;
    take_schema(&s, &deleted, DELETE_AT).await;
    let (status, body) = s
        .stack
        .http("DELETE", &format!("/tasks/{deleted}"), None)
        .await;
    assert_eq!(status, 204, "nothing was in flight: {body}");
    // Done once: the cancel settled in the delete finished it, and the delete did not again.
    assert_eq!(
        logged_by(&s, "task deleted", &deleted).await,
        ["ManageTaskFunction"]
    );
    assert_eq!(times_logged(&s, "task deleted", &deleted), 1);
    let replicas = destination()
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{}\\_%'",
            target.replace('_', "\\_")
        ))
        .await;
    assert_eq!(
        replicas.as_deref(),
        Some("0"),
        "the half-made replica stays"
    );
    s.finish().await;
}
