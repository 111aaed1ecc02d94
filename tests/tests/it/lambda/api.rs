//! The task lifecycle through the three API functions, as a user drives it on AWS: create with an
//! inline password, read, precheck through the queue, start (the schedule in EventBridge
//! Scheduler), stop, delete (the secrets gone) — and the password nowhere in the state or the
//! logs.

use aws_sdk_scheduler::error::ProvideErrorMetadata;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tidemark_lambda::logs::LogBuffer;
use tidemark_tests::harness::{destination, source, unique_name};

use super::Deployment;
use crate::precheck::{database, user};

const SCHEDULE: &str = r#"{"cycle": "day", "at": "02:30", "time_zone": "Asia/Shanghai",
                           "start": "2027-12-01", "end": "2028-06-30"}"#;

fn spec(source_endpoint: Value, destination_endpoint: Value, db: &str, target: &str) -> String {
    let schedule: Value = serde_json::from_str(SCHEDULE).expect("schedule");
    json!({
        "name": "lambda-e2e",
        "source": source_endpoint,
        "destination": destination_endpoint,
        "policy": { "mode": "resync" },
        "schedule": schedule,
        "objects": [ { "database": db, "rename": target } ],
        "channel": { "workers": 2, "chunk_mb": 1 }
    })
    .to_string()
}

async fn secret_exists(deployment: &Deployment, reference: &str) -> Result<String, String> {
    aws_sdk_secretsmanager::Client::new(&deployment.sdk)
        .get_secret_value()
        .secret_id(reference)
        .send()
        .await
        .map(|out| out.secret_string().unwrap_or_default().to_owned())
        .map_err(|e| e.code().unwrap_or("no code").to_owned())
}

#[tokio::test]
async fn a_task_from_create_to_delete_through_the_api_functions() {
    let logs = LogBuffer::default();
    // Everything the functions log, at the most verbose level a deployment could ask for.
    let _capture = logs.capture("trace");
    let deployment = Deployment::new().await;

    // Users of their own on both servers: the password is this test's alone, so finding it
    // anywhere is a leak.
    let grants = ["ALL PRIVILEGES ON *.*".to_owned()];
    let reader = user(&source(), "lambda_src", &grants).await;
    let writer = user(&destination(), "lambda_dst", &grants).await;
    let password = reader.password().expose_secret().to_owned();
    let db = database(
        &source(),
        "lambda_e2e",
        &[
            "CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(20) NOT NULL)",
            "INSERT INTO items VALUES (1, 'one'), (2, 'two')",
        ],
    )
    .await;
    let target = unique_name("lambda_e2e_dw");
    let body = spec(reader.endpoint_json(), writer.endpoint_json(), &db, &target);
    assert!(body.contains(&password), "the request carries the password");

    // Create (create-task): 201, the task without its passwords.
    let (status, created) = deployment.call("POST", "/tasks", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "created");
    assert!(!created.to_string().contains(&password), "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    let reference = created["spec"]["source"]["password_secret"]
        .as_str()
        .expect("a secret in place of the password")
        .to_owned();
    assert!(
        reference.contains(&format!(
            ":secret:{}{id}/source",
            deployment.env.secret_prefix
        )),
        "{reference}"
    );
    let stored = secret_exists(&deployment, &reference)
        .await
        .expect("the secret");
    assert!(
        stored.contains(&password),
        "Secrets Manager holds the password"
    );
    let destination_reference = created["spec"]["destination"]["password_secret"]
        .as_str()
        .expect("the destination's secret")
        .to_owned();

    // Read (manage-task).
    let (status, read) = deployment.call("GET", &format!("/tasks/{id}"), None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["id"], id.as_str());
    assert_eq!(
        read["spec"]["source"]["password_secret"],
        reference.as_str()
    );
    let (status, listed) = deployment.call("GET", "/tasks?limit=10", None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["items"][0]["id"], id.as_str());

    // Precheck: the precheck function answers 202 and queues it; manage-task reports it running
    // until the precheck function takes the message from the queue.
    let (status, accepted) = deployment
        .call("POST", &format!("/tasks/{id}/precheck"), None)
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "prechecking");
    let (status, running) = deployment
        .call("GET", &format!("/tasks/{id}/precheck"), None)
        .await;
    assert_eq!(
        (status, &running["state"]),
        (202, &json!("running")),
        "{running}"
    );
    let (batch, answer) = deployment.deliver_prechecks().await;
    let records = batch["Records"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{batch}");
    let message: Value =
        serde_json::from_str(records[0]["body"].as_str().expect("a body")).expect("JSON");
    assert_eq!(message, json!({ "task_id": id, "at": accepted["at"] }));
    assert_eq!(answer, json!({ "batchItemFailures": [] }));
    let (status, report) = deployment
        .call("GET", &format!("/tasks/{id}/precheck"), None)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["state"], "passed", "{report}");
    assert_eq!(report["at"], accepted["at"]);
    assert!(
        report["report"]["checks"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["id"] == "objects_exist" && c["status"] == "pass")),
        "{report}"
    );
    // The message was consumed: a second delivery finds nothing to do.
    let (batch, _) = deployment.deliver_prechecks().await;
    assert_eq!(batch["Records"], json!([]));

    // Start: the schedule in EventBridge Scheduler, read back from the emulator.
    let (status, started) = deployment
        .call("POST", &format!("/tasks/{id}/start"), None)
        .await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["status"], "scheduled");
    let scheduler = aws_sdk_scheduler::Client::new(&deployment.sdk);
    let schedule = scheduler
        .get_schedule()
        .name(&id)
        .group_name(&deployment.env.schedule_group)
        .send()
        .await
        .expect("the task's schedule");
    assert_eq!(schedule.schedule_expression(), Some("cron(30 2 * * ? *)"));
    assert_eq!(
        schedule.schedule_expression_timezone(),
        Some("Asia/Shanghai")
    );
    let instant = |d: Option<&aws_sdk_scheduler::primitives::DateTime>| {
        d.map(|d| jiff::Timestamp::from_second(d.secs()).expect("an instant"))
    };
    // The window: 2027-12-01 00:00 and the last second of 2028-06-30, in Shanghai (UTC+8).
    assert_eq!(
        instant(schedule.start_date()),
        Some("2027-11-30T16:00:00Z".parse().expect("ts"))
    );
    assert_eq!(
        instant(schedule.end_date()),
        Some("2028-06-30T15:59:59Z".parse().expect("ts"))
    );
    let target_config = schedule.target().expect("a target");
    assert_eq!(target_config.arn(), deployment.env.run_cycle_arn);
    assert_eq!(target_config.role_arn(), deployment.env.scheduler_role_arn);
    let input: Value =
        serde_json::from_str(target_config.input().expect("an input")).expect("JSON input");
    assert_eq!(
        input,
        json!({ "task_id": id, "scheduled_time": "<aws.scheduler.scheduled-time>" })
    );
    let (status, preview) = deployment
        .call("GET", &format!("/tasks/{id}/schedule?count=2"), None)
        .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["times"][0], "2027-12-01T02:30:00+08:00");

    // Stop: the schedule is gone.
    let (status, stopped) = deployment
        .call("POST", &format!("/tasks/{id}/stop"), None)
        .await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    let gone = scheduler
        .get_schedule()
        .name(&id)
        .group_name(&deployment.env.schedule_group)
        .send()
        .await
        .expect_err("the schedule is gone");
    assert_eq!(gone.code(), Some("ResourceNotFoundException"));

    // The whole table, before the task goes: the task is there, its password is not.
    let table = deployment.table_text().await;
    assert!(table.contains(&id), "the scan sees the task");
    assert!(
        table.contains("PRECHECK#"),
        "the scan sees the precheck report"
    );
    assert!(!table.contains(&password), "the password is in the table");

    // Delete: the task and both of its secrets are gone.
    let (status, deleted) = deployment
        .call("DELETE", &format!("/tasks/{id}"), None)
        .await;
    assert_eq!(status, 204, "{deleted}");
    let (status, _) = deployment.call("GET", &format!("/tasks/{id}"), None).await;
    assert_eq!(status, 404);
    for r in [&reference, &destination_reference] {
        assert_eq!(
            secret_exists(&deployment, r).await,
            Err("ResourceNotFoundException".to_owned()),
            "{r}"
        );
    }
    assert!(!deployment.table_text().await.contains(&id));

    // Every line the functions logged: the work is there, the password is not.
    let lines = logs.lines();
    for needle in [
        "task created",
        "precheck queued",
        "precheck finished",
        "task deleted",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "no `{needle}` line among {} log lines",
            lines.len()
        );
    }
    let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(&password)).collect();
    assert!(leaks.is_empty(), "the password is logged: {leaks:#?}");
    crate::schema::drop_databases(&[&db, &target]).await;
}

#[tokio::test]
async fn a_bad_spec_through_create_task_answers_400_naming_the_field_and_stores_nothing() {
    let deployment = Deployment::new().await;
    let password = unique_name("pw_never_kept");
    let mut spec: Value = serde_json::from_str(&spec(
        json!({ "host": "127.0.0.1", "port": 3306, "user": "dts", "password": password }),
        json!({ "host": "127.0.0.1", "port": 3307, "user": "dts", "password": password }),
        "shop",
        "shop_dw",
    ))
    .expect("spec");
    spec["schedule"]["at"] = json!("25:00");
    let (status, body) = deployment
        .call("POST", "/tasks", Some(&spec.to_string()))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_spec");
    assert_eq!(body["error"]["field"], "schedule.at");
    assert!(!body.to_string().contains(&password), "{body}");
    assert_eq!(deployment.table_text().await, "", "nothing was stored");
    let secrets = aws_sdk_secretsmanager::Client::new(&deployment.sdk)
        .list_secrets()
        .filters(
            aws_sdk_secretsmanager::types::Filter::builder()
                .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                .values(&deployment.env.secret_prefix)
                .build(),
        )
        .send()
        .await
        .expect("list secrets");
    assert!(secrets.secret_list().is_empty(), "no secret was created");
}
