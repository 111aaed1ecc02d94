//! The scheduler's side of a task's life: a schedule reaching its end date (the task completed,
//! its schedule gone, nothing due after), a delivery the scheduler gave up on (its dead letter,
//! as `fire.py dead-letter` writes it, recorded as a missed run), and a cycle run-cycle failed on
//! every attempt (Lambda's on-failure record on the same queue, recorded as missed too) — each
//! ringing the dead-letter alarm from run-worker's own lines.

use serde_json::json;

use tidemark_tests::lambda_host::StackOptions;

use crate::support::Scenario;

const AT: &str = "2027-12-01T02:30:00Z";
const LAST: &str = "2027-12-02T02:30:00Z";

pub async fn a_schedule_reaching_its_end_date_completes_the_task() {
    let s = Scenario::new().await;
    let db = s
        .source_db(
            "aws_end",
            &[
                "CREATE TABLE t (id INT PRIMARY KEY)",
                "INSERT INTO t VALUES (1), (2)",
            ],
        )
        .await;
    let target = s.target("aws_end_dw");
    let mut body = s.task(
        json!({ "mode": "resync" }),
        json!([{ "database": db, "rename": target }]),
    );
    // Two cycles: 2027-12-01 and 2027-12-02 at 02:30 UTC.
    body["schedule"]["end"] = json!("2027-12-02");
    let id = s.create(&body).await;
    s.start(&id).await;
    let run = s.cycle(&id, AT).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let task = s.settled_task(&id).await;
    assert_eq!(task["status"], "scheduled", "{task}");
    let run = s.cycle(&id, LAST).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let task = s.settled_task(&id).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["last_run"]["status"], "succeeded", "{task}");
    // Nothing is due any more: the schedule is gone from the group.
    let report = s
        .stack
        .fire_due(
            "2027-12-02T02:31:00Z".parse().expect("a time"),
            "2028-01-01T00:00:00Z".parse().expect("a time"),
        )
        .await;
    assert!(report.invocations.is_empty(), "{report:?}");
    s.finish().await;
}

pub async fn cycles_the_scheduler_or_run_cycle_gave_up_on_are_recorded_missed() {
    // No sweeps: each dead letter counted here is one of the two cycles'.
    let s = Scenario::with(StackOptions {
        rate_schedules: false,
        ..StackOptions::default()
    })
    .await;
    let db = s
        .source_db("aws_missed", &["CREATE TABLE t (id INT PRIMARY KEY)"])
        .await;
    let target = s.target("aws_missed_dw");
    let body = s.task(
        json!({ "mode": "resync" }),
        json!([{ "database": db, "rename": target }]),
    );
    let id = s.create(&body).await;
    s.start(&id).await;

    // The scheduler could not invoke run-cycle (throttled past its retry policy): its dead
    // letter, sent with the schedule's role to the schedule's dead-letter queue.
    let from: jiff::Timestamp = AT.parse().expect("a time");
    let due = s
        .stack
        .due(from, from + jiff::SignedDuration::from_secs(60), false)
        .await;
    assert_eq!(due.invocations.len(), 1, "{due:?}");
    let letter = s
        .stack
        .dead_letter(
            &due.invocations[0],
            "Lambda.TooManyRequestsException",
            "Rate exceeded",
        )
        .await;
    assert_eq!(
        letter["QueueArn"],
        s.stack
            .doc
            .resource("StepDeadLetterQueue")
            .expect("the queue")
            .attributes["Arn"]
    );
    let run = s.ended_run(&id, AT).await;
    assert_eq!(run["status"], "missed", "{run}");
    assert!(
        run["error"]
            .as_str()
            .is_some_and(|e| e.contains("Rate exceeded")),
        "{run}"
    );

    // run-cycle fails every attempt at the next cycle — the state table refuses its role, as
    // when DynamoDB does not answer it — so after Lambda's two retries its on-failure record
    // lands on the same queue.
    s.stack
        .revoke("RunCycleFunctionRole", "RunCycleFunctionRolePolicy0")
        .await;
    s.fire(&id, LAST).await;
    let run_cycle = s.stack.invoker("RunCycleFunction");
    run_cycle.settle().await;
    let records = run_cycle.records();
    let record = records
        .iter()
        .find_map(|r| r.sent_to_destination.clone())
        .unwrap_or_else(|| panic!("no on-failure record: {records:?}"));
    assert_eq!(
        record["requestContext"]["condition"], "RetriesExhausted",
        "{record}"
    );
    assert_eq!(
        record["requestContext"]["approximateInvokeCount"], 3,
        "{record}"
    );
    assert_eq!(record["requestPayload"]["scheduled_time"], LAST, "{record}");
    let run = s.ended_run(&id, LAST).await;
    assert_eq!(run["status"], "missed", "{run}");
    let namespace = format!("Tidemark/{}", s.stack.stage);
    // At least once each: a slow batch delivered again is logged again.
    assert!(s.stack.metric(&namespace, "DeadLetters") >= 2.0);
    assert!(s.stack.alarm_rings("DeadLetterAlarm"));
    s.finish().await;
}
