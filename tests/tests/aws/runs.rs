//! Runs that do not end by succeeding: cancelled with chunks in flight, their task deleted while
//! they go on, and failed — under the `stop` failure policy (no later cycles: the schedule is
//! gone) and under `continue` (the next cycle runs).

use aws_sdk_scheduler::error::ProvideErrorMetadata;
use serde_json::{Value, json};
use tidemark_core::state::RunPhase;
use tidemark_tests::harness::{destination, source};

use crate::chunks::big_table;
use crate::support::Scenario;

const AT: &str = "2027-12-01T02:30:00Z";
const NEXT: &str = "2027-12-02T02:30:00Z";

/// A started task over a table of `rows` rows, with two chunks in flight at a time.
async fn busy_task(s: &Scenario, tag: &str, policy: Value, rows: u32) -> (String, String, String) {
    let statements = big_table(rows);
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    let db = s.source_db(tag, &refs).await;
    let target = s.target(&format!("{tag}_dw"));
    let body = s.task(policy, json!([{ "database": db, "rename": target }]));
    let id = s.create(&body).await;
    s.start(&id).await;
    (id, db, target)
}

/// The destination's tables in `db` whose names start with `prefix`.
async fn tables_like(db: &str, prefix: &str) -> String {
    destination()
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME LIKE '{prefix}%'"
        ))
        .await
        .unwrap_or_default()
}

/// The destination's databases whose names start with `prefix`.
async fn databases_like(prefix: &str) -> String {
    destination()
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{}%'",
            prefix.replace('_', "\\_")
        ))
        .await
        .unwrap_or_default()
}

/// Whether the task's schedule is in the stack's group.
async fn has_schedule(s: &Scenario, id: &str) -> bool {
    let got = aws_sdk_scheduler::Client::new(&s.stack.sdk)
        .get_schedule()
        .group_name(s.stack.physical_id("ScheduleGroup"))
        .name(id)
        .send()
        .await;
    match got {
        Ok(_) => true,
        Err(e) if e.code() == Some("ResourceNotFoundException") => false,
        Err(e) => panic!("GetSchedule: {e:?}"),
    }
}

pub async fn a_run_cancelled_with_chunks_in_flight_is_cleaned_up() {
    let s = Scenario::new().await;
    let (id, _, target) = busy_task(&s, "aws_cancel", json!({ "mode": "resync" }), 8_000).await;
    s.fire(&id, AT).await;
    // The next chunks wait on the shadow table while the cancel comes.
    let lock = s.hold_next_chunk(&id, AT, &target).await;
    let (status, body) = s
        .stack
        .http("POST", &format!("/tasks/{id}/runs/{AT}/cancel"), None)
        .await;
    lock.release().await;
    assert_eq!(status, 202, "steps were in flight: {body}");
    assert_eq!(body["status"], "cancelling", "{body}");
    let run = s.ended_run(&id, AT).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    let done = run["chunks_done"].as_u64().unwrap_or(0);
    assert!(done < run["chunks_total"].as_u64().unwrap_or(0), "{run}");
    assert_eq!(
        tables_like(&target, "_tm_").await,
        "0",
        "shadow tables left"
    );
    assert_eq!(
        tables_like(&target, "t").await,
        "0",
        "a half-copied table is live"
    );
    s.finish().await;
}

pub async fn a_task_deleted_mid_run_goes_with_its_replica_and_secrets() {
    let s = Scenario::new().await;
    let (id, _, target) =
        busy_task(&s, "aws_delete", json!({ "mode": "multi_replica" }), 8_000).await;
    let (_, task) = s.stack.http("GET", &format!("/tasks/{id}"), None).await;
    let secret = task["spec"]["source"]["password_secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    s.fire(&id, AT).await;
    s.run_when(&id, AT, |run| {
        run.phase == Some(RunPhase::Copying) && run.chunks_done >= 1
    })
    .await;
    // The next chunks wait on the replica's table while the delete comes.
    let lock = s
        .lock_table(&format!("{target}_20271201_02_30_00"), "t")
        .await;
    s.chunk_at_work().await;
    let (status, body) = s.stack.http("DELETE", &format!("/tasks/{id}"), None).await;
    lock.release().await;
    assert_eq!(status, 202, "a run was in flight: {body}");
    s.until(&format!("/tasks/{id}"), |status, _| status == 404)
        .await;
    assert_eq!(
        databases_like(&format!("{target}_")).await,
        "0",
        "the half-made replica stays"
    );
    assert!(!has_schedule(&s, &id).await, "the schedule stays");
    let gone = aws_sdk_secretsmanager::Client::new(&s.stack.sdk)
        .get_secret_value()
        .secret_id(&secret)
        .send()
        .await;
    assert!(gone.is_err(), "the secret outlived its task");
    s.finish().await;
}

pub async fn a_failed_run_stops_the_task_under_stop_and_not_under_continue() {
    let s = Scenario::new().await;
    let db = s
        .source_db(
            "aws_fail",
            &[
                "CREATE TABLE t (id INT PRIMARY KEY)",
                "INSERT INTO t VALUES (1)",
            ],
        )
        .await;
    let mut ids = Vec::new();
    for policy in ["stop", "continue"] {
        let target = s.target(&format!("aws_fail_{policy}"));
        let mut body = s.task(
            json!({ "mode": "resync" }),
            json!([{ "database": db, "rename": target }]),
        );
        body["failure_policy"] = json!(policy);
        let id = s.create(&body).await;
        s.start(&id).await;
        ids.push(id);
    }
    // The source's user is gone: connecting is refused, which no retry mends.
    source()
        .exec(&[&format!("DROP USER '{}'@'127.0.0.1'", s.reader.user)])
        .await;
    let (stop, keep_going) = (&ids[0], &ids[1]);
    for id in &ids {
        let run = s.cycle(id, AT).await;
        assert_eq!(run["status"], "failed", "{run}");
        assert!(
            run["error"].as_str().is_some_and(|e| e.contains("source")),
            "the error names the endpoint: {run}"
        );
    }
    // stop: no later cycles — the schedule is gone, so the scheduler invokes nothing.
    let task = s.settled_task(stop).await;
    assert!(
        !has_schedule(&s, stop).await,
        "the stopped task's schedule stays"
    );
    assert_eq!(task["status"], "failed", "{task}");
    assert_eq!(task["last_run"]["status"], "failed", "{task}");
    let task = s.settled_task(keep_going).await;
    assert_eq!(task["status"], "scheduled", "{task}");
    // continue: the next cycle is due and runs (and fails again, the user still gone).
    assert!(has_schedule(&s, keep_going).await);
    s.fire(keep_going, NEXT).await;
    let run = s.ended_run(keep_going, NEXT).await;
    assert_eq!(run["status"], "failed", "{run}");
    let report = s
        .stack
        .fire_due(
            NEXT.parse().expect("a time"),
            "2027-12-02T02:31:00Z".parse().expect("a time"),
        )
        .await;
    assert!(
        report
            .invocations
            .iter()
            .all(|i| i["schedule_name"] != *stop),
        "{report:?}"
    );
    // Each failed run rang the FailedRuns alarm, from the functions' own log lines.
    let namespace = format!("Tidemark/{}", s.stack.stage);
    assert!(s.stack.metric(&namespace, "FailedRuns") >= 3.0);
    assert!(s.stack.alarm_rings("FailedRunAlarm"));
    s.finish().await;
}
