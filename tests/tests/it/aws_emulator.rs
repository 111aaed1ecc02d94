//! The AWS SDK reaches every service Tidemark uses on the emulator, through `AWS_ENDPOINT_URL`.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
use tidemark_tests::harness::aws::sdk_config;
use tidemark_tests::harness::unique_name;

#[tokio::test]
async fn dynamodb_round_trip() {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique_name("ddb");
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .expect("key"),
        )
        .send()
        .await
        .expect("create table");
    client
        .put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S("TASK#1".into()))
        .item("sk", AttributeValue::S("TASK".into()))
        .item("status", AttributeValue::S("created".into()))
        .send()
        .await
        .expect("put item");
    let got = client
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("TASK#1".into()))
        .key("sk", AttributeValue::S("TASK".into()))
        .send()
        .await
        .expect("get item");
    let status = got
        .item()
        .and_then(|i| i.get("status"))
        .and_then(|v| v.as_s().ok());
    assert_eq!(status.map(String::as_str), Some("created"));
    client
        .delete_table()
        .table_name(&table)
        .send()
        .await
        .expect("delete table");
}

#[tokio::test]
async fn secrets_manager_round_trip() {
    let client = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let name = unique_name("secret");
    let created = client
        .create_secret()
        .name(&name)
        .secret_string(r#"{"username":"dts","password":"not-a-real-one"}"#)
        .send()
        .await
        .expect("create secret");
    let arn = created.arn().expect("an ARN").to_owned();
    assert!(
        arn.starts_with("arn:aws:secretsmanager:us-east-1:"),
        "{arn}"
    );
    let value = client
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .expect("get secret");
    let json: serde_json::Value =
        serde_json::from_str(value.secret_string().expect("a string")).expect("JSON");
    assert_eq!(json["username"], "dts");
    client
        .delete_secret()
        .secret_id(&arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete secret");
    assert!(
        client
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .is_err(),
        "the secret is still readable after delete"
    );
}

#[tokio::test]
async fn eventbridge_scheduler_round_trip() {
    let client = aws_sdk_scheduler::Client::new(&sdk_config().await);
    let group = unique_name("group");
    let name = unique_name("schedule");
    client
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("create group");
    client
        .create_schedule()
        .name(&name)
        .group_name(&group)
        .schedule_expression("cron(30 2 ? * MON,THU *)")
        .schedule_expression_timezone("Asia/Shanghai")
        .flexible_time_window(
            FlexibleTimeWindow::builder()
                .mode(FlexibleTimeWindowMode::Off)
                .build()
                .expect("window"),
        )
        .target(
            Target::builder()
                .arn("arn:aws:lambda:us-east-1:123456789012:function:run-cycle")
                .role_arn("arn:aws:iam::123456789012:role/scheduler")
                .input(r#"{"scheduled_time":"<aws.scheduler.scheduled-time>"}"#)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("create schedule");
    let got = client
        .get_schedule()
        .name(&name)
        .group_name(&group)
        .send()
        .await
        .expect("get schedule");
    assert_eq!(got.schedule_expression(), Some("cron(30 2 ? * MON,THU *)"));
    assert_eq!(got.schedule_expression_timezone(), Some("Asia/Shanghai"));
    client
        .delete_schedule()
        .name(&name)
        .group_name(&group)
        .send()
        .await
        .expect("delete schedule");
    client
        .delete_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("delete group");
}

#[tokio::test]
async fn sqs_round_trip() {
    let client = aws_sdk_sqs::Client::new(&sdk_config().await);
    let queue = client
        .create_queue()
        .queue_name(unique_name("steps"))
        .send()
        .await
        .expect("create queue");
    let url = queue.queue_url().expect("a queue URL").to_owned();
    client
        .send_message()
        .queue_url(&url)
        .message_body(r#"{"step":"schema"}"#)
        .send()
        .await
        .expect("send");
    let received = client
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send()
        .await
        .expect("receive");
    let bodies: Vec<&str> = received
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    assert_eq!(bodies, [r#"{"step":"schema"}"#]);
    client
        .delete_queue()
        .queue_url(&url)
        .send()
        .await
        .expect("delete queue");
}
