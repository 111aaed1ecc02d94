//! DynamoDB state written by the previous version (commit fe831f8, before the one run driver)
//! still loads, and its run in flight is driven to its end by today's worker.
//!
//! The fixture, `tests/fixtures/dynamodb-fe831f8.json`, was captured by
//! `tests/fixtures/capture/capture-dynamodb.sh`: it runs `capture/dynamodb_fe831f8.rs` inside a
//! worktree of fe831f8, where that version's `TaskService`, `DynamoDbStore` and worker (on the
//! emulator and the two stack servers) create an incremental task `dyncompat`, drive its run of
//! 2026-12-01 to success (a watermark, progress), then leave its run of 2026-12-02 in flight:
//! Schema done, chunks 1 and 2 done, chunk 3 claimed by a worker that died (a lease, and the
//! worker slot item that version kept beside the run), chunks 4 to 6 and Finalize pending. It
//! holds every item of the table as `aws dynamodb scan` prints them, the step messages that were
//! still in the queue, and the highest id the destination held.
//!
//! The items go into a fresh table as they are; only the task's endpoints (ports, and the
//! Secrets Manager ARNs of its passwords) are pointed at this machine's stack.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use secrecy::SecretString;
use serde_json::Value;
use tidemark_aws::create_table;
use tidemark_core::ports::{EndpointRole, StepMessage};
use tidemark_core::state::{RunKey, RunStatus, StepKind, StepStatus};
use tidemark_tests::harness::aws::sdk_config;
use tidemark_tests::harness::stack::StackEnv;
use tidemark_tests::harness::{destination, source, unique_name};

use super::{Rig, delete, receive, rig_on, step_of};
use crate::policy_support::rows_hash;

const FIXTURE: &str = include_str!("../../../fixtures/dynamodb-fe831f8.json");
const DB: &str = "tm_dyncompat";
const DEST_DB: &str = "tm_dyncompat_dst";

/// An item of `aws dynamodb scan`'s JSON as the SDK's attribute value.
fn attribute(value: &Value) -> AttributeValue {
    let (kind, inner) = value
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("an attribute value");
    let text = || inner.as_str().expect("a string").to_owned();
    let texts = || {
        inner
            .as_array()
            .expect("a list")
            .iter()
            .map(|v| v.as_str().expect("a string").to_owned())
            .collect()
    };
    match kind.as_str() {
        "S" => AttributeValue::S(text()),
        "N" => AttributeValue::N(text()),
        "BOOL" => AttributeValue::Bool(inner.as_bool().expect("a bool")),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts()),
        "NS" => AttributeValue::Ns(texts()),
        "L" => AttributeValue::L(
            inner
                .as_array()
                .expect("a list")
                .iter()
                .map(attribute)
                .collect(),
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()
                .expect("a map")
                .iter()
                .map(|(k, v)| (k.clone(), attribute(v)))
                .collect(),
        ),
        other => panic!("an attribute type the fixture does not hold: {other}"),
    }
}

/// The task item's body with its endpoints on this machine's stack: ports and password ARNs.
fn repoint(body: &str, arns: &[(EndpointRole, String)]) -> String {
    let mut task: Value = serde_json::from_str(body).expect("the task's body");
    let env = StackEnv::get();
    let mut owned = Vec::new();
    for (role, arn) in arns {
        let (endpoint, port) = match role {
            EndpointRole::Source => ("source", env.port("TIDEMARK_SOURCE_PORT")),
            EndpointRole::Destination => ("destination", env.port("TIDEMARK_DEST_PORT")),
        };
        task["spec"][endpoint]["port"] = port.into();
        task["spec"][endpoint]["password_secret"] = arn.as_str().into();
        owned.push(Value::from(arn.as_str()));
    }
    task["owned_secrets"] = owned.into();
    task.to_string()
}

/// The servers as fe831f8 left them: the source with both runs' rows, the destination with
/// what run 1 and run 2's two committed chunks wrote (ids up to `through_id`).
async fn servers_as_left(through_id: u64) {
    let (src, dst) = (source(), destination());
    let table = "(id INT PRIMARY KEY, v VARCHAR(200) NOT NULL, updated_at DATETIME(6) NOT NULL, \
                 KEY ix_updated (updated_at))";
    src.exec(&[
        &format!("DROP DATABASE IF EXISTS {DB}"),
        &format!("CREATE DATABASE {DB}"),
        &format!("USE {DB}"),
        &format!("CREATE TABLE {DB}.ev {table}"),
        &format!(
            "INSERT INTO {DB}.ev SELECT seq, REPEAT(CHAR(65 + seq % 26), 90), \
             TIMESTAMP'2026-11-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_3000"
        ),
        &format!(
            "INSERT INTO {DB}.ev SELECT 3000 + seq, REPEAT(CHAR(65 + seq % 26), 180), \
             TIMESTAMP'2026-11-20 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_40000"
        ),
    ])
    .await;
    dst.exec(&[
        &format!("DROP DATABASE IF EXISTS {DEST_DB}"),
        &format!("CREATE DATABASE {DEST_DB}"),
        &format!("CREATE TABLE {DEST_DB}.ev {table}"),
    ])
    .await;
    let mut conn = src.conn().await;
    let rows: Vec<(i32, String, String)> = mysql_async::prelude::Queryable::query(
        &mut conn,
        format!("SELECT id, v, CAST(updated_at AS CHAR) FROM {DB}.ev WHERE id <= {through_id}"),
    )
    .await
    .expect("the copied rows");
    drop(conn);
    let mut conn = dst.conn().await;
    mysql_async::prelude::Queryable::exec_batch(
        &mut conn,
        format!("INSERT INTO {DEST_DB}.ev VALUES (?, ?, ?)"),
        rows,
    )
    .await
    .expect("the destination's rows");
    drop(conn);
}

/// Hands the queue's messages to `run_step` until the run is over; when the queue is empty,
/// the sweep (`reap_stalled`) sends again what needs sending.
async fn drive(rig: &Rig, key: &RunKey, limit: Duration) {
    let started = Instant::now();
    let store = &rig.service.ports().store;
    while started.elapsed() < limit {
        let run = store.get_run(key).await.expect("run").expect("the run");
        if run.status.is_final() {
            return;
        }
        let received = receive(rig, 10, 1).await;
        if received.is_empty() {
            rig.service.reap_stalled().await.expect("the sweep");
        }
        for message in received {
            rig.service
                .run_step(
                    &step_of(&message),
                    Some(Instant::now() + Duration::from_secs(60)),
                )
                .await
                .expect("a step of the old run never errors");
            delete(rig, message).await;
        }
    }
    panic!("the old run did not end within {limit:?}");
}

#[tokio::test]
async fn dynamodb_state_of_the_previous_version_loads_and_its_run_in_flight_finishes() {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("the fixture");
    let id = fixture["task_id"].as_str().expect("a task id").to_owned();
    let through_id = fixture["destination"]["rows_through_id"]
        .as_u64()
        .expect("an id");
    let config = sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = unique_name("compat");
    create_table(&dynamodb, &table)
        .await
        .expect("create the table");
    let rig = rig_on(&table, |worker| {
        worker.driver.step_budget = Duration::from_secs(1)
    })
    .await;

    // The passwords, where the task will look for them.
    let env = StackEnv::get();
    let (user, password) = (
        env.var("TIDEMARK_DB_USER"),
        SecretString::from(env.var("TIDEMARK_DB_PASSWORD").to_owned()),
    );
    let mut arns = Vec::new();
    for role in [EndpointRole::Source, EndpointRole::Destination] {
        let arn = rig
            .service
            .ports()
            .secrets
            .create_secret(&id, role, user, &password)
            .await
            .expect("a secret");
        arns.push((role, arn));
    }
    let items = fixture["items"].as_array().expect("items");
    for item in items {
        let mut item: HashMap<String, AttributeValue> = item
            .as_object()
            .expect("an item")
            .iter()
            .map(|(k, v)| (k.clone(), attribute(v)))
            .collect();
        if item.get("sk") == Some(&AttributeValue::S("TASK".into())) {
            let body = item["body"].as_s().expect("a body").clone();
            item.insert("body".into(), AttributeValue::S(repoint(&body, &arns)));
        }
        dynamodb
            .put_item()
            .table_name(&table)
            .set_item(Some(item))
            .send()
            .await
            .expect("put an item");
    }

    // Every record loads, through the store and through the service's reads.
    let store = &rig.service.ports().store;
    let task = rig.service.get(&id).await.expect("the task loads");
    assert_eq!(task.spec.name, "dyncompat");
    let listed = store.list_tasks(10, None).await.expect("tasks list");
    assert_eq!(listed.items.len(), 1);
    let runs = rig
        .service
        .list_runs(&id, Some(10), None)
        .await
        .expect("runs list")
        .items;
    let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [RunStatus::Running, RunStatus::Succeeded]);
    for run in &runs {
        let detail = rig
            .service
            .get_run(&id, &run.key.time_key())
            .await
            .expect("a run with its progress loads");
        assert_eq!(detail.tables.len(), 1, "{detail:?}");
        let steps = store.list_steps(&run.key).await.expect("steps load");
        assert_eq!(steps.first().map(|s| s.kind), Some(StepKind::Schema));
        assert_eq!(steps.last().map(|s| s.kind), Some(StepKind::Finalize));
    }
    let in_flight = runs[0].key.clone();
    let steps = store.list_steps(&in_flight).await.expect("steps");
    let statuses: Vec<StepStatus> = steps.iter().map(|s| s.status).collect();
    use StepStatus::{Done, Leased, Pending};
    assert_eq!(
        statuses,
        [Done, Done, Done, Leased, Pending, Pending, Pending, Pending]
    );
    let mark = store
        .get_watermark(&id, &format!("{DB}.ev"))
        .await
        .expect("the watermark loads")
        .expect("a watermark");
    assert_eq!(mark.value, "2026-11-03 02:00:00.000000");

    // The old run goes on: the messages that were in its queue, handled by today's worker.
    servers_as_left(through_id).await;
    for body in fixture["messages"].as_array().expect("messages") {
        let message: StepMessage =
            serde_json::from_str(body.as_str().expect("a body")).expect("an old step message");
        assert_eq!(message.run, in_flight);
        rig.sqs
            .send_message()
            .queue_url(&rig.queue_url)
            .message_body(body.as_str().expect("a body"))
            .send()
            .await
            .expect("send");
    }
    drive(&rig, &in_flight, Duration::from_secs(180)).await;
    let run = store.get_run(&in_flight).await.expect("run").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!((run.chunks_done, run.chunks_total), (6, 6));
    let columns = "id, v, updated_at";
    assert_eq!(
        rows_hash(&destination(), DEST_DB, "ev", columns).await,
        rows_hash(&source(), DB, "ev", columns).await,
        "the destination equals the source"
    );
    // Each of the window's rows counted once (the row at the old watermark is read again: the
    // low bound is closed), the two chunks fe831f8 committed included.
    let progress = store.list_progress(&in_flight).await.expect("progress");
    assert_eq!(progress.iter().map(|p| p.rows).sum::<u64>(), 40_001);
    let mark = store
        .get_watermark(&id, &format!("{DB}.ev"))
        .await
        .expect("read")
        .expect("mark");
    assert_eq!(
        mark.value, "2026-11-20 11:06:40.000000",
        "the watermark moved on"
    );

    // Deleting the task leaves nothing of it, the old version's worker-slot items included.
    store.delete_task(&id).await.expect("delete");
    let left = dynamodb
        .scan()
        .table_name(&table)
        .send()
        .await
        .expect("scan")
        .items
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    source().exec(&[&format!("DROP DATABASE {DB}")]).await;
    destination()
        .exec(&[&format!("DROP DATABASE {DEST_DB}")])
        .await;
}
