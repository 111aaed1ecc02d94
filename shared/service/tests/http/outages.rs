//! Outages (issue #9): an endpoint stopped in the middle of a scheduled run, over a private
//! MariaDB server of the test's own (the shared stack is not disturbed).
//!
//! - Back within the retry window: the run goes on from its steps and completes, exactly.
//! - Gone for good: the run fails with an error naming that endpoint, and the `stop` failure
//!   policy stops the task.

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};
use tidemark_service::StepRetry;
use tidemark_tests::harness::{PrivateServer, Server, destination, source, unique_name};

use crate::helpers::Api;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Source,
    Destination,
}

/// A source database of about 7 MB: 7 chunks of 1 MB, copied one at a time.
async fn big_sample(server: &Server, db: &str) {
    server
        .exec(&[
            &format!("CREATE DATABASE `{db}`"),
            &format!("USE `{db}`"),
            "CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(1000) NOT NULL, n INT NULL)",
            "INSERT INTO big SELECT seq, REPEAT(CHAR(65 + seq % 26), 800 + seq % 100), \
             IF(seq % 5 = 0, NULL, seq) FROM seq_1_to_8000",
        ])
        .await;
}

async fn rows_hash(server: &Server, db: &str) -> Option<String> {
    server
        .query_one(&format!(
            "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(CONCAT_WS('#', id, pad, COALESCE(n, 'null'))))) \
             FROM `{db}`.big"
        ))
        .await
}

struct Outage {
    api: Api,
    private: PrivateServer,
    src: Server,
    dst: Server,
    db: String,
    target: String,
    id: String,
    run: String,
}

/// A started task whose `side` is a private server; its first scheduled cycle fired and copying
/// (a chunk done); then that server is stopped.
async fn outage(side: Side, retry: StepRetry) -> Outage {
    let private = PrivateServer::start("outage", &[]);
    let (src, dst) = match side {
        Side::Source => (private.server.clone(), destination()),
        Side::Destination => (source(), private.server.clone()),
    };
    let api = Api::start_with(|mut host| {
        host.worker.driver.retry_steps(retry);
        host
    })
    .await;
    let db = unique_name("outage");
    let target = format!("{db}_dw");
    big_sample(&src, &db).await;
    let task = json!({
        "name": "outage-test",
        "source": src.endpoint_json(),
        "destination": dst.endpoint_json(),
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-11-30" },
        "failure_policy": "stop",
        "objects": [ { "database": db, "rename": target } ],
        "channel": { "workers": 1, "chunk_mb": 1 }
    });
    let id = api.create(&task).await;
    assert_ne!(api.precheck(&id).await["state"], "failed");
    let (status, body) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.clock.set("2026-12-01T02:30:01Z");
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert_eq!(report.started.len(), 1, "{report:?}");
    let run = "2026-12-01T02:30:00Z".to_owned();
    let copying = api
        .wait_for(&format!("/tasks/{id}/runs/{run}"), |_, r| {
            r["chunks_done"].as_u64().unwrap_or(0) >= 1
                || !matches!(r["status"].as_str(), Some("pending" | "running"))
        })
        .await;
    assert_eq!(copying["status"], "running", "{copying}");
    private.stop();
    Outage {
        api,
        private,
        src,
        dst,
        db,
        target,
        id,
        run,
    }
}

async fn wait_final(api: &Api, id: &str, run: &str) -> Value {
    for _ in 0..1200 {
        let (_, body) = api.get(&format!("/tasks/{id}/runs/{run}")).await;
        if body["status"] != "running" && body["status"] != "pending" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run} did not end in 2 minutes");
}

/// Down for about 8 s (longer than a chunk's own retries), then back: the run completes.
async fn comes_back(side: Side) {
    let o = outage(side, StepRetry::default()).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, during) = o.api.get(&format!("/tasks/{}/runs/{}", o.id, o.run)).await;
    assert_eq!(
        during["status"], "running",
        "still going while down: {during}"
    );
    o.private.start_again();
    let done = wait_final(&o.api, &o.id, &o.run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["chunks_done"], done["chunks_total"], "{done}");
    // The outage was ridden out by the run, not by luck: a retry is on the record.
    let warnings = done["warnings"].to_string();
    assert!(warnings.contains("retry"), "{done}");
    assert_eq!(
        rows_hash(&o.dst, &o.target).await,
        rows_hash(&o.src, &o.db).await,
        "the copy after the outage"
    );
    let left = o
        .dst
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' \
             AND TABLE_NAME LIKE '\\_tm\\_%'",
            o.target
        ))
        .await;
    assert_eq!(left.as_deref(), Some("0"), "shadow or retired tables left");
    let (_, task) = o.api.get(&format!("/tasks/{}", o.id)).await;
    assert_eq!(task["status"], "scheduled", "{task}");
    cleanup(&o).await;
}

/// Gone for good: the run fails naming the endpoint, the task is stopped (failure policy stop).
async fn gone_for_good(side: Side, role: &str) {
    let quick = StepRetry {
        attempts: 2,
        first_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(400),
    };
    let o = outage(side, quick).await;
    let done = wait_final(&o.api, &o.id, &o.run).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().expect("an error");
    assert!(
        error.contains(role) && error.contains(&format!("127.0.0.1:{}", o.private.server.port)),
        "the error names the {role}: {error}"
    );
    let task = o
        .api
        .wait_for(&format!("/tasks/{}", o.id), |_, t| t["status"] != "running")
        .await;
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["status_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("stop failure policy"),
        "{task}"
    );
    assert!(o.api.scheduler.list().await.expect("schedules").is_empty());
    if side == Side::Source {
        // The destination answered: the failed run's shadows were dropped, the old copy kept.
        let left = o
            .dst
            .query_one(&format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' \
                 AND TABLE_NAME LIKE '\\_tm\\_%'",
                o.target
            ))
            .await;
        assert_eq!(left.as_deref(), Some("0"), "shadow tables left");
    }
    cleanup(&o).await;
}

async fn cleanup(o: &Outage) {
    for server in [&o.src, &o.dst] {
        if server.port != o.private.server.port {
            server
                .exec(&[
                    &format!("DROP DATABASE IF EXISTS `{}`", o.db),
                    &format!("DROP DATABASE IF EXISTS `{}`", o.target),
                ])
                .await;
        }
    }
}

#[tokio::test]
async fn the_destination_stopped_mid_run_and_back_within_the_window() {
    comes_back(Side::Destination).await;
}

#[tokio::test]
async fn the_source_stopped_mid_run_and_back_within_the_window() {
    comes_back(Side::Source).await;
}

#[tokio::test]
async fn the_destination_gone_for_good_fails_the_run_and_stops_the_task() {
    gone_for_good(Side::Destination, "destination").await;
}

#[tokio::test]
async fn the_source_gone_for_good_fails_the_run_and_stops_the_task() {
    gone_for_good(Side::Source, "source").await;
}
