//! The DynamoDB state store passes the store contract on the emulator, a fresh table per test;
//! and a task's record keeps an inline password out of the table.

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use tidemark_aws::{DynamoDbStore, create_table};
use tidemark_core::ports::{StateStore, StoreError};
use tidemark_tests::contract::state_store::Store;
use tidemark_tests::harness::aws::sdk_config;
use tidemark_tests::harness::unique_name;

async fn fresh_store() -> (DynamoDbStore, aws_sdk_dynamodb::Client) {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique_name("state");
    create_table(&client, &table)
        .await
        .expect("create the table");
    (DynamoDbStore::new(client.clone(), table), client)
}

async fn store() -> Store {
    Arc::new(fresh_store().await.0)
}

tidemark_tests::state_store_contract!(store());

/// Every string anywhere in an attribute value, nested ones included.
fn strings(value: &AttributeValue, out: &mut Vec<String>) {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => out.push(s.clone()),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => out.extend(v.iter().cloned()),
        AttributeValue::L(v) => v.iter().for_each(|x| strings(x, out)),
        AttributeValue::M(m) => m.values().for_each(|x| strings(x, out)),
        AttributeValue::B(b) => out.push(String::from_utf8_lossy(b.as_ref()).into_owned()),
        _ => {}
    }
}

#[tokio::test]
async fn an_inline_password_never_reaches_the_table() {
    let (store, client) = fresh_store().await;
    let password = unique_name("Pw-never-stored");
    let spec = serde_json::json!({
        "name": "secret-check",
        "source": { "host": "127.0.0.1", "user": "dts", "password": password },
        "destination": { "host": "127.0.0.1", "port": 3307, "user": "dts", "password_env": "PW" },
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-06-30" },
        "objects": [ { "database": "shop" } ]
    });
    let mut task = tidemark_tests::contract::state_store::task(&unique_name("task"));
    task.spec = tidemark_core::parse_task_spec(&spec.to_string()).expect("a valid spec");
    assert!(
        task.spec.source.password.is_some(),
        "the spec under test holds the password inline"
    );
    store.create_task(&task).await.expect("create");
    task.status_reason = Some("updated once".into());
    store.update_task(&task).await.expect("update");

    let scan = client
        .scan()
        .table_name(store.table_name())
        .send()
        .await
        .expect("scan");
    let mut texts = Vec::new();
    for item in scan.items() {
        item.values().for_each(|v| strings(v, &mut texts));
    }
    assert!(
        texts.iter().any(|t| t.contains("secret-check")),
        "the scan sees the task (else it proves nothing): {texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains(&password)),
        "the password is stored in the table"
    );
}

#[tokio::test]
async fn a_foreign_cursor_is_refused() {
    let store = fresh_store().await.0;
    for bad in ["garbage!", "eyJwayI6IlRBU0sjeCIsInNrIjoiUlVOI3gifQ"] {
        let tasks = store.list_tasks(2, Some(bad)).await;
        assert!(matches!(tasks, Err(StoreError::BadCursor)), "{tasks:?}");
    }
    // A cursor of one task's runs does not page through another task's.
    let t = unique_name("task");
    for time in ["2026-12-01T02:30:00Z", "2026-12-02T02:30:00Z"] {
        store
            .create_run(&tidemark_tests::contract::state_store::run(&t, time))
            .await
            .expect("run");
    }
    let page = store.list_runs(&t, 1, None).await.expect("page");
    let cursor = page.next.expect("a second page");
    let other = store.list_runs("another-task", 1, Some(&cursor)).await;
    assert!(matches!(other, Err(StoreError::BadCursor)), "{other:?}");
}
