//! A task's life on AWS between and after its cycles, through the functions' handlers: run now
//! gated like start; `scheduled` with `next_run_at` between cycles; a failing run under the
//! `stop` policy makes the task `failed` with that run; the last cycle completes the task and
//! removes its schedule; a cycle the scheduler gave up on is a `missed` run — and the alarms of
//! template.yaml count what the functions log for these (CloudWatch's filter patterns evaluated
//! over the captured lines).

use aws_sdk_scheduler::error::ProvideErrorMetadata;
use jiff::{Timestamp, ToSpan};
use serde_json::{Value, json};
use tidemark_lambda::cycle::{CycleAnswer, CycleEvent, handle};
use tidemark_lambda::logs::LogBuffer;
use tidemark_tests::cloudwatch::{FilterPattern, template_resources};
use tidemark_tests::harness::{destination, source, unique_name};

use super::Deployment;
use crate::precheck::{database, user};

/// The next whole minute at least `ahead` from now, in UTC: a scheduled time the test can name
/// before it comes (the functions' clock is the real one).
fn cycle_time(ahead: jiff::Span) -> Timestamp {
    let at = Timestamp::now()
        .checked_add(ahead)
        .expect("in range")
        .to_zoned_datetime(jiff::tz::TimeZone::UTC);
    at.with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .expect("a minute")
        .timestamp()
}

/// A daily task at `at`'s time of day (UTC) whose window is `at`'s day alone: one cycle.
async fn one_cycle_task(
    deployment: &Deployment,
    tag: &str,
    policy: &str,
    at: Timestamp,
) -> (String, String) {
    let grants = ["ALL PRIVILEGES ON *.*".to_owned()];
    let reader = user(&source(), &format!("{tag}_src"), &grants).await;
    let writer = user(&destination(), &format!("{tag}_dst"), &grants).await;
    let db = database(
        &source(),
        tag,
        &[
            "CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(20))",
            "INSERT INTO items VALUES (1, 'one'), (2, NULL)",
        ],
    )
    .await;
    let day = at.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let body = json!({
        "name": tag,
        "source": reader.endpoint_json(),
        "destination": writer.endpoint_json(),
        "policy": { "mode": "resync" },
        "failure_policy": policy,
        "schedule": { "cycle": "day", "at": day.strftime("%H:%M").to_string(), "time_zone": "UTC",
                      "start": day.date().to_string(), "end": day.date().to_string() },
        "objects": [ { "database": db, "rename": unique_name(&format!("{tag}_dw")) } ]
    })
    .to_string();
    let (status, created) = deployment.call("POST", "/tasks", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    (created["id"].as_str().expect("an id").to_owned(), db)
}

async fn precheck_and_start(deployment: &Deployment, id: &str) -> Value {
    let (status, _) = deployment
        .call("POST", &format!("/tasks/{id}/precheck"), None)
        .await;
    assert_eq!(status, 202);
    deployment.deliver_prechecks().await;
    let (status, started) = deployment
        .call("POST", &format!("/tasks/{id}/start"), None)
        .await;
    assert_eq!(status, 200, "{started}");
    started
}

async fn trigger(deployment: &Deployment, id: &str, at: Timestamp) -> CycleAnswer {
    let event: CycleEvent =
        serde_json::from_value(json!({ "task_id": id, "scheduled_time": at.to_string() }))
            .expect("a trigger");
    handle(&deployment.run_cycle, event)
        .await
        .expect("run-cycle")
}

async fn schedule_exists(deployment: &Deployment, id: &str) -> bool {
    match aws_sdk_scheduler::Client::new(&deployment.sdk)
        .get_schedule()
        .name(id)
        .group_name(&deployment.env.schedule_group)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) if e.code() == Some("ResourceNotFoundException") => false,
        Err(e) => panic!("GetSchedule: {e:?}"),
    }
}

/// Each metric filter of template.yaml that feeds `metric`, and whether one of them counts one
/// of `lines`.
fn counted(lines: &[String], metric: &str) -> bool {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("template.yaml");
    let filters: Vec<FilterPattern> = template_resources(&template)
        .into_iter()
        .filter(|r| r.kind == "AWS::Logs::MetricFilter" && r.get("MetricName") == Some(metric))
        .map(|r| FilterPattern::parse(r.get("FilterPattern").expect("a pattern")).expect("parsed"))
        .collect();
    assert!(!filters.is_empty(), "no metric filter writes {metric}");
    lines.iter().any(|l| filters.iter().any(|f| f.matches(l)))
}

#[tokio::test]
async fn run_now_waits_for_a_precheck_and_a_failed_run_under_stop_fails_the_task_and_rings() {
    let logs = LogBuffer::default();
    let _capture = logs.capture("info");
    let deployment = Deployment::new().await;
    let at = cycle_time(3.hours());
    let (id, db) = one_cycle_task(&deployment, "lc_fail", "stop", at).await;

    // Run now is gated as start is.
    let (status, body) = deployment
        .call("POST", &format!("/tasks/{id}/runs"), None)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "precheck_required", "{body}");

    let started = precheck_and_start(&deployment, &id).await;
    assert_eq!(started["status"], "scheduled", "{started}");
    assert_eq!(started["next_run_at"], json!(at.to_string()), "{started}");
    assert!(started.get("last_run").is_none(), "{started}");

    // The source database goes away: the cycle's run fails.
    source()
        .exec(&[format!("DROP DATABASE `{db}`").as_str()])
        .await;
    assert!(matches!(
        trigger(&deployment, &id, at).await,
        CycleAnswer::Started { .. }
    ));
    let run_path = format!("/tasks/{id}/runs/{at}");
    let run = deployment.drain_steps(&run_path).await;
    assert_eq!(run["status"], "failed", "{run}");

    let (_, task) = deployment.call("GET", &format!("/tasks/{id}"), None).await;
    assert_eq!(task["status"], "failed", "{task}");
    let reason = task["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&run["id"].as_str().unwrap_or("?").to_string()),
        "{task}"
    );
    assert_eq!(task["last_run"]["status"], "failed", "{task}");
    assert_eq!(task["last_run"]["id"], run["id"], "{task}");
    assert!(task.get("next_run_at").is_none(), "{task}");
    assert!(
        !schedule_exists(&deployment, &id).await,
        "the schedule outlived the stop"
    );

    // The failed-run alarm's metric counts what the run's end logged.
    assert!(
        counted(&logs.lines(), "FailedRuns"),
        "no line counts as a failed run"
    );
}

#[tokio::test]
async fn the_last_cycle_completes_the_task_and_a_cycle_the_scheduler_gave_up_on_is_missed() {
    let logs = LogBuffer::default();
    let _capture = logs.capture("info");
    let deployment = Deployment::new().await;

    // One task whose only cycle runs: completed at its end, the schedule gone.
    let at = cycle_time(2.hours());
    let (id, _) = one_cycle_task(&deployment, "lc_done", "continue", at).await;
    precheck_and_start(&deployment, &id).await;
    assert!(schedule_exists(&deployment, &id).await);
    assert!(matches!(
        trigger(&deployment, &id, at).await,
        CycleAnswer::Started { .. }
    ));
    let run = deployment
        .drain_steps(&format!("/tasks/{id}/runs/{at}"))
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (_, task) = deployment.call("GET", &format!("/tasks/{id}"), None).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["last_run"]["status"], "succeeded", "{task}");
    assert!(task["last_run"]["finished_at"].is_string(), "{task}");
    assert!(task.get("next_run_at").is_none(), "{task}");
    assert!(
        !schedule_exists(&deployment, &id).await,
        "the schedule outlived the window"
    );

    // Another whose only cycle the scheduler gave up on: EventBridge Scheduler's dead-letter
    // event (the target's input, the error in message attributes) makes a missed run, and the
    // task is completed, its window being over.
    let at = cycle_time(4.hours());
    let (id, _) = one_cycle_task(&deployment, "lc_miss", "continue", at).await;
    precheck_and_start(&deployment, &id).await;
    let input = json!({ "task_id": id, "scheduled_time": at.to_string() }).to_string();
    let answer = deployment
        .deliver_dead_letter(
            &input,
            &[
                ("ERROR_CODE", "AWS.Scheduler.ThrottlingException"),
                ("ERROR_MESSAGE", "Rate exceeded"),
                ("RETRY_ATTEMPTS", "10"),
            ],
        )
        .await;
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let (_, run) = deployment
        .call("GET", &format!("/tasks/{id}/runs/{at}"), None)
        .await;
    assert_eq!(run["status"], "missed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("AWS.Scheduler.ThrottlingException: Rate exceeded"),
        "{run}"
    );
    let (_, task) = deployment.call("GET", &format!("/tasks/{id}"), None).await;
    assert_eq!(task["status"], "completed", "{task}");
    assert!(!schedule_exists(&deployment, &id).await);

    // run-cycle's on-failure destination record for a later time of the same task is missed
    // too; the same message again records nothing twice.
    let later = at.checked_add(24.hours()).expect("in range");
    let record = json!({
        "version": "1.0",
        "timestamp": "2026-12-03T02:31:05.568Z",
        "requestContext": { "requestId": unique_name("req"), "condition": "RetriesExhausted",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:tm-run-cycle:$LATEST",
            "approximateInvokeCount": 3 },
        "requestPayload": { "task_id": id, "scheduled_time": later.to_string() },
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "responsePayload": { "errorMessage": "the state store did not answer" }
    })
    .to_string();
    for _ in 0..2 {
        let answer = deployment.deliver_dead_letter(&record, &[]).await;
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    }
    let (_, runs) = deployment
        .call("GET", &format!("/tasks/{id}/runs"), None)
        .await;
    let statuses: Vec<&Value> = runs["items"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert_eq!(statuses, [&json!("missed"), &json!("missed")], "{runs}");

    // The dead-letter alarm's metric counts each of these.
    assert!(
        counted(&logs.lines(), "DeadLetters"),
        "no line counts as a dead letter"
    );
}

#[test]
fn every_alarm_on_a_tidemark_metric_is_fed_by_a_metric_filter_and_its_topic_takes_cloudwatch() {
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
            .expect("template.yaml");
    let resources = template_resources(&template);
    let filters: Vec<_> = resources
        .iter()
        .filter(|r| r.kind == "AWS::Logs::MetricFilter")
        .collect();
    let alarms: Vec<_> = resources
        .iter()
        .filter(|r| r.kind == "AWS::CloudWatch::Alarm")
        .collect();
    assert!(alarms.len() >= 3, "{alarms:?}");
    for alarm in &alarms {
        let namespace = alarm.get("Namespace").expect("a namespace");
        if namespace.starts_with("AWS/") {
            continue;
        }
        let metric = alarm.get("MetricName").expect("a metric");
        assert!(
            filters.iter().any(|f| f.get("MetricName") == Some(metric)
                && f.get("MetricNamespace") == Some(namespace)),
            "alarm {} watches {namespace} {metric}, which no metric filter writes",
            alarm.id
        );
    }
    // An alarm publishes only to a topic whose key lets CloudWatch use it.
    let topic = resources
        .iter()
        .find(|r| r.id == "AlarmTopic")
        .expect("AlarmTopic");
    let key = topic.get("KmsMasterKeyId").expect("an encrypted topic");
    assert_ne!(
        key, "alias/aws/sns",
        "CloudWatch cannot publish under the AWS-managed SNS key"
    );
    let key_id = key.strip_prefix("!Ref ").expect("a key of the stack");
    let key_text: String = template
        .lines()
        .skip_while(|l| *l != format!("  {key_id}:"))
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("   "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        key_text.contains("Service: cloudwatch.amazonaws.com"),
        "{key_text}"
    );
    assert!(key_text.contains("kms:GenerateDataKey*") && key_text.contains("kms:Decrypt"));
}
