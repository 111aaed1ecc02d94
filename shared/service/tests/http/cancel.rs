//! Cancelling runs and deleting tasks with steps in flight: a cancel marks the run
//! `cancelling`, the step holding it stops between batches and rolls back, and the clean-up
//! runs once no step holds a lease; a task deleted meanwhile keeps its secrets until then.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use tidemark_tests::harness::net::SilentListener;
use tidemark_tests::harness::{PrivateServer, Server, destination, source, unique_name};

use crate::helpers::{Api, drop_databases, sample, spec};

#[tokio::test]
async fn a_run_in_progress_is_cancelled() {
    let api = Api::start().await;
    // A source that accepts the connection and never answers: the run waits in its connect.
    // It stops answering after its precheck passed (the stored spec is pointed at a silent
    // listener without a change the precheck would have to see again).
    let silent = SilentListener::start();
    let db = unique_name("http_silent");
    sample(&db, 1).await;
    let mut task = spec(&db, "nowhere_dw");
    task["source"]["connect_timeout_seconds"] = json!(60);
    let id = api.create(&task).await;
    assert_eq!(api.precheck(&id).await["state"], "passed");
    let store = &api.service.ports().store;
    let mut record = store.get_task(&id).await.expect("read").expect("the task");
    record.spec.source.port = silent.addr.port();
    store.update_task(&record).await.expect("the source moved");

    let (status, run) = api.post(&format!("/tasks/{id}/runs"), &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let run_id = run["id"].as_str().expect("run id").to_owned();
    for _ in 0..100 {
        if silent.accepted() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(silent.accepted() > 0, "the run never connected");
    let (status, _) = api.post(&format!("/tasks/{id}/runs"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "one run per minute");

    // The Schema step holds the run (in its connect): the cancel is accepted, the step stops
    // at its next look, gives up its lease, and the run ends cancelled.
    let cancelled = cancel_while_held(&api, &id, &run_id).await;
    assert!(cancelled["finished_at"].is_string());
    let (status, again) = api
        .post(&format!("/tasks/{id}/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["error"]["code"], "run_finished");
    let (_, task) = api.get(&format!("/tasks/{id}")).await;
    assert_eq!(task["status"], "prechecked", "{task}");
    assert_eq!(task["last_run"]["status"], "cancelled", "{task}");
    drop_databases(&[&db]).await;
}

/// A multi-replica run cancelled while its Schema step creates the replica's tables leaves no
/// replica behind: the replica's name is on the run before the database is made, and the
/// clean-up drops it although no Finalize plan was written yet.
#[tokio::test]
async fn a_run_cancelled_in_its_schema_step_leaves_no_replica() {
    let api = Api::start().await;
    let db = many_tables("cxl_src", 80).await;
    let (id, run_id) = run_until_replica(&api, &db, &destination()).await;
    cancel_while_held(&api, &id, &run_id).await;
    assert_eq!(
        replicas_on(&destination(), &db).await,
        "0",
        "the cancelled run's replica is left"
    );
    drop_databases(&[&db]).await;
}

/// Cancels a run a step holds: 202 `cancelling`, then (the step stops at its next look and
/// gives up its lease) `cancelled`. Returns the cancelled run.
async fn cancel_while_held(api: &Api, id: &str, run_id: &str) -> Value {
    let path = format!("/tasks/{id}/runs/{run_id}");
    let (status, cancelling) = api.post(&format!("{path}/cancel"), &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelling}");
    assert_eq!(cancelling["status"], "cancelling");
    let cancelled = api
        .wait_for(&path, |_, r| r["status"] != "cancelling")
        .await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    cancelled
}

/// A source database of `tables` small tables, each with a secondary index: a multi-replica
/// Schema step takes a while to make them.
async fn many_tables(tag: &str, tables: usize) -> String {
    let db = unique_name(tag);
    let mut sql = vec![format!("CREATE DATABASE `{db}`")];
    for t in 0..tables {
        sql.push(format!(
            "CREATE TABLE `{db}`.t{t} (id INT PRIMARY KEY, a INT, b VARCHAR(20), KEY ix_a (a))"
        ));
    }
    let refs: Vec<&str> = sql.iter().map(String::as_str).collect();
    source().exec(&refs).await;
    db
}

/// Replica databases of `db` on `server` (named `{db}_...`).
async fn replicas_on(server: &Server, db: &str) -> String {
    let pattern = format!("{}\\_%", db.replace('_', "\\_"));
    server
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '{pattern}'"
        ))
        .await
        .unwrap_or_default()
}

/// Runs a multi-replica task over `db` into `dest` now and returns when its replica exists
/// (the Schema step is making its tables).
async fn run_until_replica(api: &Api, db: &str, dest: &Server) -> (String, String) {
    let mut task = spec(db, "unused");
    task["destination"] = dest.endpoint_json();
    task["policy"] = json!({ "mode": "multi_replica" });
    task["objects"] = json!([{ "database": db }]);
    let id = api.create(&task).await;
    let (status, run) = api.run_now(&id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let run_id = run["id"].as_str().expect("run id").to_owned();
    for _ in 0..400 {
        if replicas_on(dest, db).await != "0" {
            return (id, run_id);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the replica was never made");
}

async fn delete(api: &Api, path: &str) -> (StatusCode, Value) {
    api.call(Method::DELETE, path, None).await
}

/// DELETE while a step holds the run: 202, the task reads `deleting` and its secret stays
/// until the clean-up (which needs the destination's password) has dropped the replica; then
/// the task and its secret are gone.
#[tokio::test]
async fn a_task_deleted_during_its_run_keeps_its_secrets_until_its_clean_up_is_done() {
    let api = Api::start().await;
    let db = many_tables("del_src", 80).await;
    let (id, _) = run_until_replica(&api, &db, &destination()).await;
    let (_, task) = api.get(&format!("/tasks/{id}")).await;
    let reference = task["spec"]["destination"]["password_secret"]
        .as_str()
        .expect("the destination's secret")
        .to_owned();

    let (status, deleting) = delete(&api, &format!("/tasks/{id}")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deleting}");
    assert_eq!(deleting["status"], "deleting", "{deleting}");
    let secrets = std::fs::read_to_string(api.secrets_file()).expect("secrets file");
    assert!(
        secrets.contains(&reference),
        "the secret went before the clean-up"
    );
    let (status, _) = api.post(&format!("/tasks/{id}/runs"), &json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a task being deleted runs no more"
    );

    api.wait_for(&format!("/tasks/{id}"), |s, _| s == StatusCode::NOT_FOUND)
        .await;
    assert_eq!(
        replicas_on(&destination(), &db).await,
        "0",
        "the replica is left"
    );
    let secrets = std::fs::read_to_string(api.secrets_file()).expect("secrets file");
    assert!(
        !secrets.contains(&reference),
        "the secret outlived its task"
    );
    drop_databases(&[&db]).await;
}

/// A clean-up that cannot run (the destination is down) keeps the task `deleting`; `DELETE
/// ?force=true` abandons it and answers with what it left, which is indeed there.
#[tokio::test]
async fn a_forced_delete_abandons_a_clean_up_that_cannot_run_and_says_what_it_left() {
    let api = Api::start().await;
    let db = many_tables("force_src", 80).await;
    let private = PrivateServer::start("force_dest", &[]);
    let (id, run_id) = run_until_replica(&api, &db, &private.server).await;
    private.stop();

    let (status, deleting) = delete(&api, &format!("/tasks/{id}")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deleting}");
    // The step stops, the clean-up cannot reach the destination: the run stays cancelling.
    let run = api
        .wait_for(&format!("/tasks/{id}/runs/{run_id}"), |_, r| {
            r["warnings"].to_string().contains("not fully cleaned up")
        })
        .await;
    assert_eq!(run["status"], "cancelling", "{run}");
    let (_, task) = api.get(&format!("/tasks/{id}")).await;
    assert_eq!(task["status"], "deleting", "{task}");

    let (status, forced) = delete(&api, &format!("/tasks/{id}?force=true")).await;
    assert_eq!(status, StatusCode::OK, "{forced}");
    let left: Vec<String> = serde_json::from_value(forced["left_behind"].clone()).expect("a list");
    assert_eq!(left.len(), 1, "{forced}");
    assert!(left[0].contains(&format!("`{db}_")), "{forced}");
    let (status, _) = api.get(&format!("/tasks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // What it said it left is there.
    private.start_again();
    assert_eq!(replicas_on(&private.server, &db).await, "1");
    drop_databases(&[&db]).await;
}
