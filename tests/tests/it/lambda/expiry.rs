//! Records kept for a bounded time, through the functions' handlers on the emulator: with
//! `TIDEMARK_RECORD_RETENTION_DAYS` set (template.yaml sets it from `RecordRetentionDays`), a run,
//! its steps and its progress carry one expiry, and the precheck report its own, each made when
//! the record was, in the table's TTL attribute (`expires_at`, epoch seconds). Past it the API
//! shows them no more although the items are still in the table (TTL deletes lazily); the task
//! stays.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;
use serde_json::json;
use tidemark_lambda::env::RECORD_RETENTION_DAYS;
use tidemark_tests::harness::{destination, source, unique_name};

use super::Deployment;
use crate::precheck::{database, user};

/// Every item of the deployment's table: sort key (with its partition) to `expires_at`.
async fn expiries(deployment: &Deployment) -> BTreeMap<String, Option<i64>> {
    let client = aws_sdk_dynamodb::Client::new(&deployment.sdk);
    let mut found = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(&deployment.env.table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        for item in page.items() {
            let text = |name: &str| match item.get(name) {
                Some(AttributeValue::S(s)) => s.clone(),
                _ => String::new(),
            };
            let expires_at = match item.get("expires_at") {
                Some(AttributeValue::N(n)) => Some(n.parse().expect("epoch seconds")),
                _ => None,
            };
            found.insert(format!("{} {}", text("pk"), text("sk")), expires_at);
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return found;
        }
    }
}

#[tokio::test]
async fn a_runs_records_carry_one_expiry_and_are_not_shown_past_it() {
    // Long enough for a two-row run, short enough to wait out.
    let retention = Duration::from_secs(20);
    let days = (retention.as_secs_f64() / 86_400.0).to_string();
    let deployment = Deployment::with(&[(RECORD_RETENTION_DAYS, &days)]).await;
    let grants = ["ALL PRIVILEGES ON *.*".to_owned()];
    let reader = user(&source(), "exp_src", &grants).await;
    let writer = user(&destination(), "exp_dst", &grants).await;
    let db = database(
        &source(),
        "lambda_expiry",
        &[
            "CREATE TABLE items (id INT PRIMARY KEY, label VARCHAR(20))",
            "INSERT INTO items VALUES (1, 'one'), (2, NULL)",
        ],
    )
    .await;
    let target = unique_name("lambda_expiry_dw");
    let body = json!({
        "name": "lambda-expiry",
        "source": reader.endpoint_json(),
        "destination": writer.endpoint_json(),
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2027-12-01", "end": "2028-06-30" },
        "objects": [ { "database": db, "rename": target } ]
    })
    .to_string();
    let (status, created) = deployment.call("POST", "/tasks", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    let (status, _) = deployment
        .call("POST", &format!("/tasks/{id}/precheck"), None)
        .await;
    assert_eq!(status, 202);
    deployment.deliver_prechecks().await;
    let (status, run) = deployment
        .call("POST", &format!("/tasks/{id}/runs"), None)
        .await;
    assert_eq!(status, 202, "{run}");
    let run_path = format!("/tasks/{id}/runs/{}", run["id"].as_str().expect("an id"));
    let run = deployment.drain_steps(&run_path).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // The run shows its expiry: its creation plus the retention.
    let at = |v: &serde_json::Value| -> Timestamp {
        v.as_str().expect("a time").parse().expect("RFC 3339")
    };
    let expires = at(&run["expires_at"]);
    let kept = expires.duration_since(at(&run["created_at"])).as_secs();
    let seconds = i64::try_from(retention.as_secs()).expect("a short retention");
    assert!(
        (seconds - 1..=seconds).contains(&kept),
        "kept {kept} s: {run}"
    );
    // In the table: the run, every step and the progress with the run's one expiry; the
    // precheck report with its own; the task and its directory entry with none.
    let items = expiries(&deployment).await;
    let of = |prefix: &str| -> Vec<(&String, &Option<i64>)> {
        items.iter().filter(|(k, _)| k.contains(prefix)).collect()
    };
    let run_items: Vec<_> = items
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("RUN#{id}#")) || k.contains(" RUN#"))
        .collect();
    assert!(of(" STEP#").len() >= 3, "{items:?}");
    assert!(!of(" TABLE#").is_empty(), "{items:?}");
    for (key, expiry) in &run_items {
        assert_eq!(**expiry, Some(expires.as_second()), "{key}");
    }
    let prechecks = of(" PRECHECK#");
    assert_eq!(prechecks.len(), 1, "{items:?}");
    assert!(prechecks[0].1.is_some_and(|e| e <= expires.as_second()));
    assert_eq!(
        items[&format!("TASK#{id} TASK")],
        None,
        "a task never expires"
    );

    // Past the expiry: the run, its list entry and the precheck report are gone from the API;
    // the task is there, and the items still in the table.
    let wait = expires
        .duration_since(Timestamp::now())
        .as_secs_f64()
        .max(0.0)
        + 1.5;
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    let (status, body) = deployment.call("GET", &run_path, None).await;
    assert_eq!(status, 404, "{body}");
    let (_, runs) = deployment
        .call("GET", &format!("/tasks/{id}/runs"), None)
        .await;
    assert_eq!(runs["items"], json!([]), "{runs}");
    let (status, body) = deployment
        .call("GET", &format!("/tasks/{id}/precheck"), None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, task) = deployment.call("GET", &format!("/tasks/{id}"), None).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(
        expiries(&deployment).await.len(),
        items.len(),
        "TTL deletes later"
    );
    crate::schema::drop_databases(&[&db, &target]).await;
}
