//! A started task's cycles fire at their times under a controllable clock: the test moves the
//! clock and runs one pass of the scheduler loop; nothing waits for a wall-clock time.

use hyper::StatusCode;
use serde_json::{Value, json};
use tidemark_tests::harness::{destination, unique_name};

use crate::helpers::{Api, drop_databases, sample, spec};

fn statuses(history: &Value) -> Vec<(String, String)> {
    history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_started_task_fires_at_its_time_and_records_missed_cycles() {
    let api = Api::start().await;
    let db = unique_name("http_fire");
    let target = format!("{db}_dw");
    sample(&db, 40).await;
    let mut task = spec(&db, &target);
    // Later cycles run whatever the earlier ones did (their outcome is the policies' business).
    task["failure_policy"] = json!("continue");
    let id = api.create(&task).await;
    assert_eq!(api.precheck(&id).await["state"], "passed");
    let (status, body) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Before its time: nothing fires.
    api.clock.set("2026-12-01T02:29:59Z");
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert!(
        report.started.is_empty() && report.missed.is_empty(),
        "{report:?}"
    );

    // At its time: the cycle runs and copies the table.
    api.clock.set("2026-12-01T02:30:05Z");
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert_eq!(report.started.len(), 1, "{report:?}");
    let run = "2026-12-01T02:30:00Z";
    let done = api
        .wait_for(&format!("/tasks/{id}/runs/{run}"), |s, r| {
            s == StatusCode::OK && r["status"] != "pending" && r["status"] != "running"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["trigger"], "schedule");
    assert_eq!(
        destination()
            .query_one(&format!("SELECT COUNT(*) FROM `{target}`.items"))
            .await
            .as_deref(),
        Some("40")
    );
    // A second pass at the same time does nothing more.
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert!(report.started.is_empty(), "{report:?}");

    // Down for three days: the cycles in between are missed, the one just due runs.
    api.clock.set("2026-12-04T02:31:00Z");
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert_eq!(report.missed.len(), 2, "{report:?}");
    assert_eq!(report.started.len(), 1, "{report:?}");
    let fourth = api
        .wait_for(&format!("/tasks/{id}/runs/2026-12-04T02:30:00Z"), |_, r| {
            r["status"] == "succeeded" || r["status"] == "failed"
        })
        .await;
    let fourth = fourth["status"].as_str().expect("status").to_owned();

    // Seen more than the grace late: missed, not run.
    api.clock.set("2026-12-05T03:00:00Z");
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert_eq!(
        (report.started.len(), report.missed.len()),
        (0, 1),
        "{report:?}"
    );

    let (_, history) = api.get(&format!("/tasks/{id}/runs?limit=10")).await;
    assert_eq!(
        statuses(&history),
        vec![
            ("2026-12-05T02:30:00Z".into(), "missed".into()),
            ("2026-12-04T02:30:00Z".into(), fourth),
            ("2026-12-03T02:30:00Z".into(), "missed".into()),
            ("2026-12-02T02:30:00Z".into(), "missed".into()),
            ("2026-12-01T02:30:00Z".into(), "succeeded".into()),
        ]
    );
    // Paginated: one at a time, in the same order.
    let (_, first) = api.get(&format!("/tasks/{id}/runs?limit=1")).await;
    let next = first["next"].as_str().expect("a next cursor");
    let (_, second) = api
        .get(&format!("/tasks/{id}/runs?limit=1&next={next}"))
        .await;
    assert_eq!(second["items"][0]["id"], "2026-12-04T02:30:00Z", "{second}");

    drop_databases(&[&db, &target]).await;
}

#[tokio::test]
async fn a_failed_cycle_under_the_stop_policy_stops_the_task() {
    let api = Api::start().await;
    let db = unique_name("http_stop");
    sample(&db, 5).await;
    let id = api.create(&spec(&db, &format!("{db}_dw"))).await;
    assert_eq!(api.precheck(&id).await["state"], "passed");
    let (status, body) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The source database disappears after the precheck: the cycle fails.
    drop_databases(&[&db]).await;
    api.clock.set("2026-12-01T02:30:01Z");
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert_eq!(report.started.len(), 1, "{report:?}");
    let run = api
        .wait_for(&format!("/tasks/{id}/runs/2026-12-01T02:30:00Z"), |_, r| {
            r["status"] == "succeeded" || r["status"] == "failed"
        })
        .await;
    assert_eq!(run["status"], "failed", "{run}");
    let task = api
        .wait_for(&format!("/tasks/{id}"), |_, t| t["status"] != "running")
        .await;
    assert_eq!(task["status"], "failed", "{task}");
    assert!(
        task["status_reason"]
            .as_str()
            .expect("a reason")
            .contains("stop failure policy"),
        "{task}"
    );
    assert!(api.scheduler.list().await.expect("schedules").is_empty());
    api.clock.set("2026-12-02T02:30:01Z");
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert!(report.started.is_empty(), "no later cycle: {report:?}");
    drop_databases(&[&format!("{db}_dw")]).await;
}

#[tokio::test]
async fn the_schedule_ends_with_the_window() {
    let api = Api::start().await;
    let db = unique_name("http_end");
    sample(&db, 5).await;
    let mut task = spec(&db, &format!("{db}_dw"));
    task["schedule"]["start"] = json!("2026-11-30");
    task["schedule"]["end"] = json!("2026-11-30");
    task["schedule"]["at"] = json!("23:00");
    let id = api.create(&task).await;
    assert_eq!(api.precheck(&id).await["state"], "passed");
    let (status, body) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.clock.set("2026-12-01T00:00:00Z");
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert_eq!(report.missed.len(), 1, "seen an hour late: {report:?}");
    assert_eq!(report.completed, vec![id.clone()]);
    let (_, task) = api.get(&format!("/tasks/{id}")).await;
    assert_eq!(task["status"], "completed", "{task}");
    drop_databases(&[&db, &format!("{db}_dw")]).await;
}

#[tokio::test]
async fn a_run_left_unfinished_by_a_stopped_server_is_resumed_at_start() {
    use tidemark_core::state::{RunKey, RunPhase, RunRecord, RunStatus, RunTrigger};

    let api = Api::start().await;
    let db = unique_name("http_resume");
    let target = format!("{db}_dw");
    sample(&db, 30).await;
    let id = api.create(&spec(&db, &target)).await;
    // What a server killed in the middle of a scheduled run leaves behind.
    let at: jiff::Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    let left = RunRecord {
        key: RunKey {
            task_id: id.clone(),
            scheduled_time: at,
        },
        trigger: RunTrigger::Schedule,
        status: RunStatus::Running,
        phase: Some(RunPhase::Copying),
        error: None,
        created_at: at,
        finished_at: None,
        heartbeat: at,
        chunks_total: 1,
        chunks_done: 0,
        chunks_dispatched: 0,
        plan: serde_json::Value::Null,
        expires_at: None,
        version: 1,
    };
    assert!(
        api.service
            .ports()
            .store
            .create_run(&left)
            .await
            .expect("create run")
    );

    let resumed = api.service.resume_unfinished().await.expect("resume");
    assert_eq!(resumed, vec![left.key.clone()]);
    let done = api
        .wait_for(&format!("/tasks/{id}/runs/2026-12-01T02:30:00Z"), |_, r| {
            r["status"] != "running" && r["status"] != "pending"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        destination()
            .query_one(&format!("SELECT COUNT(*) FROM `{target}`.items"))
            .await
            .as_deref(),
        Some("30")
    );
    // Nothing is left to resume.
    assert!(
        api.service
            .resume_unfinished()
            .await
            .expect("resume")
            .is_empty()
    );
    drop_databases(&[&db, &target]).await;
}

#[tokio::test]
async fn a_run_without_progress_past_its_lease_is_failed_under_the_failure_policy() {
    use tidemark_core::ports::StateStore;
    use tidemark_core::state::{RunKey, RunPhase, RunRecord, RunStatus, RunTrigger};

    for (policy, task_after) in [("stop", "failed"), ("continue", "scheduled")] {
        let api = Api::start().await;
        let db = unique_name("http_stall");
        sample(&db, 5).await;
        let mut task = spec(&db, &format!("{db}_dw"));
        task["failure_policy"] = policy.into();
        let id = api.create(&task).await;
        assert_eq!(api.precheck(&id).await["state"], "passed");
        let (status, body) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // A run a process left running: its heartbeat stopped at 02:30:10.
        let store = tidemark_local::SqliteStore::open(&api.dir.path().join("state.sqlite"))
            .expect("the service's store");
        let at = |s: &str| s.parse::<jiff::Timestamp>().expect("a time");
        let key = RunKey {
            task_id: id.clone(),
            scheduled_time: at("2026-12-01T02:30:00Z"),
        };
        let stalled = RunRecord {
            key: key.clone(),
            trigger: RunTrigger::Schedule,
            status: RunStatus::Running,
            phase: Some(RunPhase::Copying),
            error: None,
            created_at: at("2026-12-01T02:30:00Z"),
            finished_at: None,
            heartbeat: at("2026-12-01T02:30:10Z"),
            chunks_total: 4,
            chunks_done: 1,
            chunks_dispatched: 0,
            plan: serde_json::Value::Null,
            expires_at: None,
            version: 1,
        };
        assert!(store.create_run(&stalled).await.expect("plant the run"));

        // Within the lease: left alone.
        api.clock.set("2026-12-01T02:40:00Z");
        let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
        assert!(report.stalled.is_empty(), "{report:?}");
        // Past it: failed, with the reason, and the failure policy applied.
        api.clock.set("2026-12-01T02:46:00Z");
        let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
        assert_eq!(report.stalled, vec![key.clone()], "{report:?}");
        let run = store.get_run(&key).await.expect("get").expect("the run");
        assert_eq!(run.status, RunStatus::Failed);
        assert!(
            run.error
                .as_deref()
                .unwrap_or_default()
                .contains("no progress for"),
            "{run:?}"
        );
        let (_, task) = api.get(&format!("/tasks/{id}")).await;
        assert_eq!(task["status"], task_after, "{policy}: {task}");
        let schedules = api.scheduler.list().await.expect("schedules");
        assert_eq!(schedules.is_empty(), policy == "stop", "{policy}");
        drop_databases(&[&db]).await;
    }
}

#[tokio::test]
async fn a_cycle_that_fires_while_the_previous_run_goes_on_is_recorded_as_skipped() {
    use mysql_async::prelude::Queryable;
    use tidemark_tests::harness::PrivateServer;

    let api = Api::start().await;
    let db = unique_name("http_skip");
    sample(&db, 5).await;
    // A destination of the test's own: a global read lock there holds the run up and touches no
    // other test.
    let private = PrivateServer::start("skip_dest", &[]);
    let mut task = spec(&db, &format!("{db}_dw"));
    task["destination"] = private.server.endpoint_json();
    let id = api.create(&task).await;
    assert_eq!(api.precheck(&id).await["state"], "passed");
    let (status, body) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut lock = private.server.conn().await;
    lock.query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .expect("lock the destination");
    api.clock.set("2026-12-01T02:30:01Z");
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert_eq!(report.started.len(), 1, "{report:?}");
    api.wait_for(&format!("/tasks/{id}/runs/2026-12-01T02:30:00Z"), |_, r| {
        r["status"] == "running"
    })
    .await;

    // The next day's cycle comes due while the first run still goes on. A long run that makes
    // progress moves its heartbeat with every chunk, and the holder of a step renews its lease;
    // do both for it here (the clock jumped a day), or the sweep would (rightly) fail it as
    // stalled or hand its step to another consumer.
    api.clock.set("2026-12-02T02:30:01Z");
    {
        use tidemark_core::ports::StateStore;
        let store = tidemark_local::SqliteStore::open(&api.dir.path().join("state.sqlite"))
            .expect("the service's store");
        let key = tidemark_core::state::RunKey {
            task_id: id.clone(),
            scheduled_time: "2026-12-01T02:30:00Z".parse().expect("a time"),
        };
        let mut run = store.get_run(&key).await.expect("get").expect("the run");
        run.heartbeat = "2026-12-02T02:29:00Z".parse().expect("a time");
        store.update_run(&run).await.expect("move the heartbeat");
        for mut step in store.list_steps(&key).await.expect("steps") {
            if step.lease_until.is_some() {
                step.lease_until = Some("2026-12-02T02:31:00Z".parse().expect("a time"));
                store.update_step(&step).await.expect("renew the lease");
            }
        }
    }
    let report = api.service.fire_due(&api.scheduler).await.expect("a pass");
    assert!(report.stalled.is_empty(), "{report:?}");
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    assert!(report.started.is_empty(), "{report:?}");
    let (_, skipped) = api
        .get(&format!("/tasks/{id}/runs/2026-12-02T02:30:00Z"))
        .await;
    assert_eq!(skipped["status"], "skipped", "{skipped}");

    // Released, the first run finishes.
    lock.query_drop("UNLOCK TABLES").await.expect("unlock");
    let first = api
        .wait_for(&format!("/tasks/{id}/runs/2026-12-01T02:30:00Z"), |_, r| {
            r["status"] != "running" && r["status"] != "pending"
        })
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    drop(lock);
    drop_databases(&[&db]).await;
}
