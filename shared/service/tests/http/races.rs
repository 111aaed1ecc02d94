//! Requests that race: start and stop of one task at the same time leave the task's status and
//! its schedule in agreement, whichever wins.

use hyper::StatusCode;
use serde_json::json;
use tidemark_core::ports::TaskScheduler;
use tidemark_tests::harness::unique_name;

use crate::helpers::{Api, drop_databases, sample, spec};

#[tokio::test]
async fn start_and_stop_at_the_same_time_leave_status_and_schedule_in_agreement() {
    let api = Api::start().await;
    let db = unique_name("race");
    sample(&db, 10).await;
    let target = format!("{db}_dw");
    let id = api.create(&spec(&db, &target)).await;
    let report = api.precheck(&id).await;
    assert_eq!(report["state"], "passed", "{report}");
    for round in 0..8 {
        let (start_path, stop_path, empty) = (
            format!("/tasks/{id}/start"),
            format!("/tasks/{id}/stop"),
            json!({}),
        );
        let ((start_status, started), (stop_status, stopped)) =
            tokio::join!(api.post(&start_path, &empty), api.post(&stop_path, &empty));
        // Each answers a success or a documented conflict, never a server error.
        for (status, body) in [(start_status, &started), (stop_status, &stopped)] {
            assert!(
                status == StatusCode::OK || status == StatusCode::CONFLICT,
                "round {round}: {status} {body}"
            );
        }
        let (_, task) = api.get(&format!("/tasks/{id}")).await;
        let installed = api
            .scheduler
            .get_schedule(&id)
            .await
            .expect("the scheduler answers")
            .is_some();
        let status = task["status"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            installed,
            status == "scheduled",
            "round {round}: the task is {status} but a schedule is installed: {installed}"
        );
    }
    drop_databases(&[&db, &target]).await;
}
