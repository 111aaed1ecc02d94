//! A scheduled cycle through run-cycle and run-worker, as Lambda delivers their events: the
//! scheduler's payload (three times at once), then SQS batches from the step queue handed to
//! run-worker with short deadlines, some delivered twice — and the copy equal to the source.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_scheduler::error::ProvideErrorMetadata;
use lambda_http::{Context, LambdaEvent};
use secrecy::ExposeSecret;
use serde_json::json;
use tidemark_lambda::cycle::{CycleAnswer, CycleEvent, handle};
use tidemark_tests::harness::{destination, source, unique_name};

use tidemark_lambda::logs::LogBuffer;

use super::{Deployment, sqs_event};
use crate::policy_support::rows_hash;
use crate::precheck::{database, user};

/// A context whose deadline is `after` from now, as Lambda sets it (milliseconds since the
/// epoch).
fn context(after: Duration) -> Context {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis();
    let mut context = Context::default();
    context.deadline = u64::try_from(now + after.as_millis()).expect("fits");
    context
}

#[tokio::test]
async fn a_scheduled_cycle_runs_once_across_many_worker_invocations_and_copies_exactly() {
    let logs = LogBuffer::default();
    let _capture = logs.capture("debug");
    let deployment = Deployment::new().await;
    let grants = ["ALL PRIVILEGES ON *.*".to_owned()];
    let reader = user(&source(), "cyc_src", &grants).await;
    let writer = user(&destination(), "cyc_dst", &grants).await;
    let password = reader.password().expose_secret().to_owned();
    let db = database(
        &source(),
        "lambda_cycle",
        &[
            "CREATE TABLE big (id BIGINT PRIMARY KEY, body VARCHAR(120), f FLOAT NULL, KEY f (f))",
            "INSERT INTO big SELECT seq * 7, REPEAT(CHAR(97 + seq % 26), 100), \
             IF(seq % 5 = 0, NULL, seq / 3) FROM seq_1_to_200000",
            "CREATE TABLE small (id INT PRIMARY KEY, label VARCHAR(20))",
            "INSERT INTO small VALUES (1, 'one'), (2, NULL), (3, '')",
        ],
    )
    .await;
    let target = unique_name("lambda_cycle_dw");
    let body = json!({
        "name": "lambda-cycle",
        "source": reader.endpoint_json(),
        "destination": writer.endpoint_json(),
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2027-12-01", "end": "2028-06-30" },
        "objects": [ { "database": db, "rename": target } ],
        "channel": { "workers": 2, "chunk_mb": 3 }
    })
    .to_string();

    // Create, precheck (through the queue), start.
    let (status, created) = deployment.call("POST", "/tasks", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    let (status, _) = deployment
        .call("POST", &format!("/tasks/{id}/precheck"), None)
        .await;
    assert_eq!(status, 202);
    deployment.deliver_prechecks().await;
    let (status, started) = deployment
        .call("POST", &format!("/tasks/{id}/start"), None)
        .await;
    assert_eq!(status, 200, "{started}");

    // The scheduler's payload for one scheduled time, delivered three times at once: one run.
    let payload = json!({ "task_id": id, "scheduled_time": "2027-12-01T02:30:00Z" });
    let trigger = || {
        let event: CycleEvent = serde_json::from_value(payload.clone()).expect("a trigger");
        handle(&deployment.run_cycle, event)
    };
    let (a, b, c) = tokio::join!(trigger(), trigger(), trigger());
    let answers = [
        a.expect("run-cycle"),
        b.expect("run-cycle"),
        c.expect("run-cycle"),
    ];
    let started = answers
        .iter()
        .filter(|a| matches!(a, CycleAnswer::Started { .. }))
        .count();
    assert_eq!(started, 1, "{answers:?}");
    assert!(
        answers.iter().all(|a| matches!(
            a,
            CycleAnswer::Started { .. } | CycleAnswer::Duplicate { .. }
        )),
        "{answers:?}"
    );
    let (_, runs) = deployment
        .call("GET", &format!("/tasks/{id}/runs"), None)
        .await;
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(1), "{runs}");
    let run_path = format!("/tasks/{id}/runs/2027-12-01T02:30:00Z");

    // run-worker: one message per invocation (BatchSize 1, as template.yaml has it); every
    // fourth invocation's deadline is too close to start a step; every third message is
    // delivered again in the next invocation (SQS delivers at least once).
    let sqs = aws_sdk_sqs::Client::new(&deployment.sdk);
    let mut invocations = 0u32;
    let mut redelivered = 0u32;
    let mut again: Option<aws_sdk_sqs::types::Message> = None;
    let started_at = std::time::Instant::now();
    loop {
        let (_, run) = deployment.call("GET", &run_path, None).await;
        if run["status"] != "pending" && run["status"] != "running" {
            break;
        }
        assert!(
            started_at.elapsed() < Duration::from_secs(300),
            "the run did not end: {run}"
        );
        let message = match again.take() {
            Some(m) => {
                redelivered += 1;
                m
            }
            None => {
                let received = sqs
                    .receive_message()
                    .queue_url(&deployment.env.step_queue_url)
                    .max_number_of_messages(1)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .expect("receive");
                match received.messages.unwrap_or_default().pop() {
                    Some(m) => m,
                    None => continue,
                }
            }
        };
        invocations += 1;
        let deadline = if invocations.is_multiple_of(4) {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(60)
        };
        let event = sqs_event(&deployment.step_queue_arn, std::slice::from_ref(&message));
        let event = serde_json::from_value(event).expect("an SQS batch");
        let answer = deployment
            .run_worker
            .handle(LambdaEvent::new(event, context(deadline)))
            .await;
        assert!(
            answer.batch_item_failures.is_empty(),
            "a step failed its delivery"
        );
        if invocations.is_multiple_of(3) {
            again = Some(message.clone());
        }
        sqs.delete_message()
            .queue_url(&deployment.env.step_queue_url)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .send()
            .await
            .expect("delete");
    }
    let (_, run) = deployment.call("GET", &run_path, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(invocations >= 5, "{invocations} invocations");
    assert!(redelivered >= 1);
    assert!(
        run["chunks_total"].as_u64().unwrap_or(0) >= 5,
        "small chunks: {run}"
    );
    for (table, columns) in [("big", "id, body, HEX(f)"), ("small", "id, label")] {
        assert_eq!(
            rows_hash(&source(), &db, table, columns).await,
            rows_hash(&destination(), &target, table, columns).await,
            "{table}"
        );
    }
    let lines = logs.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("too close to the deadline")),
        "no step was postponed for its deadline"
    );

    // Stop (the schedule is gone), delete (the secrets are gone); the password nowhere.
    let (status, _) = deployment
        .call("POST", &format!("/tasks/{id}/stop"), None)
        .await;
    assert_eq!(status, 200);
    let gone = aws_sdk_scheduler::Client::new(&deployment.sdk)
        .get_schedule()
        .name(&id)
        .group_name(&deployment.env.schedule_group)
        .send()
        .await
        .expect_err("the schedule is gone");
    assert_eq!(gone.code(), Some("ResourceNotFoundException"));
    let table = deployment.table_text().await;
    assert!(table.contains("STEP#"), "the scan sees the run's steps");
    assert!(!table.contains(&password), "the password is in the table");
    let reference = created["spec"]["source"]["password_secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let (status, _) = deployment
        .call("DELETE", &format!("/tasks/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let secret = aws_sdk_secretsmanager::Client::new(&deployment.sdk)
        .get_secret_value()
        .secret_id(&reference)
        .send()
        .await;
    assert!(secret.is_err(), "the secret outlived its task");
    let leaks = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains(&password))
        .count();
    assert_eq!(leaks, 0, "the password is logged");
    crate::schema::drop_databases(&[&db, &target]).await;
}
