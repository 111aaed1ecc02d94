//! The secret, scheduler and step-queue adapters against the emulator: what they write is what
//! the service reads back, and what they delete is gone.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tidemark_aws::{EventBridgeScheduler, SchedulerConfig, SecretsManagerStore, SqsStepQueue};
use tidemark_core::ScheduleSpec;
use tidemark_core::ports::{
    EndpointRole, SecretError, SecretStore, StepMessage, StepQueue, TaskSchedule, TaskScheduler,
};
use tidemark_core::schedule::Schedule;
use tidemark_core::state::RunKey;
use tidemark_tests::harness::aws::sdk_config;
use tidemark_tests::harness::unique_name;

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("a timestamp")
}

fn task_schedule(task_id: &str, json: &str) -> TaskSchedule {
    let spec: ScheduleSpec = serde_json::from_str(json).expect("schedule json");
    TaskSchedule::new(task_id, &Schedule::from_spec(&spec).expect("valid"))
}

#[tokio::test]
async fn a_schedule_is_put_read_back_replaced_and_removed() {
    let client = aws_sdk_scheduler::Client::new(&sdk_config().await);
    let group = unique_name("group");
    client
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("create group");
    let config = SchedulerConfig::new(
        &group,
        "arn:aws:lambda:us-east-1:123456789012:function:run-cycle",
        "arn:aws:iam::123456789012:role/scheduler",
        "arn:aws:sqs:us-east-1:123456789012:cycle-dlq",
    );
    let scheduler = EventBridgeScheduler::new(client.clone(), config);
    let task_id = unique_name("task");
    // A window in the future (the emulator, like EventBridge, refuses an old StartDate).
    let weekly = task_schedule(
        &task_id,
        r#"{"cycle":"week","days":["mon","thu"],"at":"02:30","time_zone":"Asia/Shanghai","start":"2027-12-01","end":"2028-11-30"}"#,
    );
    assert_eq!(scheduler.get_schedule(&task_id).await.expect("get"), None);
    scheduler.put_schedule(&weekly).await.expect("put");

    let read = scheduler
        .get_schedule(&task_id)
        .await
        .expect("get")
        .expect("the schedule exists");
    assert_eq!(read.task_id, task_id);
    assert_eq!(read.cron_expression, "cron(30 2 ? * MON,THU *)");
    assert_eq!(read.time_zone, "Asia/Shanghai");
    assert_eq!(read.not_before, Some(ts("2027-11-30T16:00:00Z")));
    assert_eq!(read.not_after, Some(ts("2028-11-30T15:59:59Z")));
    assert!(read.enabled);

    // The target as EventBridge will invoke it: input, retries, dead letters, no flexible window.
    let raw = client
        .get_schedule()
        .name(&task_id)
        .group_name(&group)
        .send()
        .await
        .expect("raw get");
    let target = raw.target().expect("a target");
    let input: serde_json::Value =
        serde_json::from_str(target.input().expect("an input")).expect("JSON input");
    assert_eq!(
        input,
        serde_json::json!({"task_id": task_id, "scheduled_time": "<aws.scheduler.scheduled-time>"})
    );
    assert_eq!(
        target.dead_letter_config().and_then(|d| d.arn()),
        Some("arn:aws:sqs:us-east-1:123456789012:cycle-dlq")
    );
    let retry = target.retry_policy().expect("a retry policy");
    assert_eq!(
        (
            retry.maximum_retry_attempts(),
            retry.maximum_event_age_in_seconds()
        ),
        (Some(10), Some(3600))
    );
    assert_eq!(
        raw.flexible_time_window().map(|w| w.mode().as_str()),
        Some("OFF")
    );

    // Putting again replaces: a changed schedule, a retried start.
    let daily = task_schedule(
        &task_id,
        r#"{"cycle":"day","at":"07:15","time_zone":"Europe/Berlin","start":"2027-12-01","end":"2028-01-31"}"#,
    );
    scheduler.put_schedule(&daily).await.expect("replace");
    let read = scheduler
        .get_schedule(&task_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (read.cron_expression.as_str(), read.time_zone.as_str()),
        ("cron(15 7 * * ? *)", "Europe/Berlin")
    );
    assert_eq!(read.not_after, Some(ts("2028-01-31T22:59:59Z")));

    scheduler.remove_schedule(&task_id).await.expect("remove");
    assert_eq!(scheduler.get_schedule(&task_id).await.expect("get"), None);
    scheduler
        .remove_schedule(&task_id)
        .await
        .expect("removing twice is fine");
}

#[tokio::test]
async fn an_inline_password_becomes_an_rds_secret_and_is_deleted_with_its_task() {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let prefix = format!("{}/", unique_name("tidemark"));
    let store = SecretsManagerStore::new(client.clone(), &prefix);
    let task_id = unique_name("task");
    let password = SecretString::from(unique_name("pw-source"));

    let arn = store
        .create_secret(&task_id, EndpointRole::Source, "dts", &password)
        .await
        .expect("create");
    assert!(
        arn.contains(&format!(":secret:{prefix}{task_id}/source")),
        "{arn}"
    );
    // RDS's JSON format, readable by anything that reads RDS secrets.
    let raw = client
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("raw read");
    let json: serde_json::Value =
        serde_json::from_str(raw.secret_string().expect("a string")).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({"username": "dts", "password": password.expose_secret()})
    );
    let read = store.read_password(&arn).await.expect("read");
    assert_eq!(read.password.expose_secret(), password.expose_secret());

    // Storing again for the same endpoint (a retried creation) replaces the value in place.
    let changed = SecretString::from(unique_name("pw-changed"));
    let again = store
        .create_secret(&task_id, EndpointRole::Source, "dts", &changed)
        .await
        .expect("create again");
    assert_eq!(again, arn);
    assert_eq!(
        store
            .read_password(&arn)
            .await
            .expect("read")
            .password
            .expose_secret(),
        changed.expose_secret()
    );

    store.delete_secret(&arn).await.expect("delete");
    let gone = store.read_password(&arn).await;
    assert!(
        matches!(gone, Err(SecretError::NotFound { .. })),
        "{gone:?}"
    );
    store
        .delete_secret(&arn)
        .await
        .expect("deleting twice is fine");
}

#[tokio::test]
async fn an_existing_rds_secret_is_read_in_place_never_copied_nor_deleted() {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let prefix = format!("{}/", unique_name("tidemark"));
    let store = SecretsManagerStore::new(client.clone(), &prefix);
    let password = unique_name("pw-rds");
    // What RDS writes for a managed master password, extra keys included.
    let arn = client
        .create_secret()
        .name(unique_name("rds_db"))
        .secret_string(
            serde_json::json!({"engine": "mysql", "host": "db.internal", "username": "admin",
                               "password": password, "port": 3306})
            .to_string(),
        )
        .send()
        .await
        .expect("the user's secret")
        .arn
        .expect("an ARN");
    // The secrets under the store's prefix, where a copy would go (other tests make secrets
    // of their own on the same emulator meanwhile).
    let count = || async {
        client
            .list_secrets()
            .filters(
                aws_sdk_secretsmanager::types::Filter::builder()
                    .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                    .values(&prefix)
                    .build(),
            )
            .max_results(100)
            .send()
            .await
            .expect("list")
            .secret_list()
            .len()
    };
    let before = count().await;
    let read = store.read_password(&arn).await.expect("read");
    assert_eq!(read.password.expose_secret(), password);
    assert_eq!(read.username.as_deref(), Some("admin"), "RDS's username");
    assert_eq!(count().await, before, "reading made no copy");

    let refused = store.delete_secret(&arn).await;
    assert!(
        matches!(refused, Err(SecretError::NotOwned { .. })),
        "{refused:?}"
    );
    assert!(
        store.read_password(&arn).await.is_ok(),
        "the user's secret is still there"
    );
}

#[tokio::test]
async fn a_secret_without_a_username_has_none_and_the_spec_names_the_user() {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let store = SecretsManagerStore::new(client.clone(), "tidemark/");
    for value in [
        serde_json::json!({"password": "pw-only"}),
        serde_json::json!({"username": "", "password": "pw-only"}),
    ] {
        let arn = client
            .create_secret()
            .name(unique_name("no_user"))
            .secret_string(value.to_string())
            .send()
            .await
            .expect("create")
            .arn
            .expect("an ARN");
        let read = store.read_password(&arn).await.expect("read");
        assert_eq!(read.password.expose_secret(), "pw-only");
        assert_eq!(read.username, None, "{value}");
    }
}

#[tokio::test]
async fn a_secret_without_a_password_key_is_malformed_and_never_quoted() {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let store = SecretsManagerStore::new(client.clone(), "tidemark/");
    let content = unique_name("plain-text-content");
    for value in [
        content.clone(),
        serde_json::json!({"username": "x", "pass": content}).to_string(),
    ] {
        let arn = client
            .create_secret()
            .name(unique_name("bad"))
            .secret_string(&value)
            .send()
            .await
            .expect("create")
            .arn
            .expect("an ARN");
        let err = store.read_password(&arn).await.expect_err("malformed");
        assert!(matches!(err, SecretError::Malformed { .. }), "{err:?}");
        assert!(
            !err.to_string().contains(&content) && !format!("{err:?}").contains(&content),
            "the error quotes the secret: {err}"
        );
    }
}

#[tokio::test]
async fn step_messages_arrive_as_sent_and_a_delay_holds_them_back() {
    let client = aws_sdk_sqs::Client::new(&sdk_config().await);
    let url = client
        .create_queue()
        .queue_name(unique_name("steps"))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("a URL");
    let queue = SqsStepQueue::new(client.clone(), &url);
    let message = StepMessage {
        run: RunKey {
            task_id: unique_name("task"),
            scheduled_time: ts("2026-12-01T02:30:00Z"),
        },
        step: 7,
    };
    let receive = |wait: i32| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .receive_message()
                .queue_url(&url)
                .wait_time_seconds(wait)
                .send()
                .await
                .expect("receive")
                .messages
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.body)
                .map(|b| serde_json::from_str::<StepMessage>(&b).expect("a step message"))
                .collect::<Vec<_>>()
        }
    };

    queue.send_step(&message, None).await.expect("send");
    assert_eq!(receive(1).await, std::slice::from_ref(&message));

    let later = StepMessage { step: 8, ..message };
    queue
        .send_step(&later, Some(Duration::from_secs(3)))
        .await
        .expect("send delayed");
    assert!(receive(0).await.is_empty(), "a delayed step came at once");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receive(2).await, [later]);
}
