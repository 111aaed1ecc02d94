//! The task lifecycle through HTTP, as a user drives it.

use hyper::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::json;
use tidemark_tests::harness::{destination, source, unique_name};

use crate::helpers::{Api, drop_databases, sample, spec};

#[tokio::test]
async fn create_precheck_start_run_stop_and_delete() {
    let api = Api::start().await;
    let db = unique_name("http_flow");
    let target = format!("{db}_dw");
    sample(&db, 500).await;
    let password = source().password().expose_secret().to_owned();

    // Create: 201, the task without its password; the password in the secrets file only.
    let (status, created) = api.post("/tasks", &spec(&db, &target)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["status"], "created");
    assert!(!created.to_string().contains(&password), "{created}");
    assert!(created["spec"]["source"].get("password").is_none());
    let reference = created["spec"]["source"]["password_secret"]
        .as_str()
        .expect("a reference in place of the password")
        .to_owned();
    let secrets = std::fs::read_to_string(api.secrets_file()).expect("secrets file");
    assert!(secrets.contains(&password) && secrets.contains(&reference));
    assert!(
        !api.state_bytes().contains(&password),
        "the password is in the state"
    );

    let (status, listed) = api.get("/tasks?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["items"][0]["id"], id.as_str());

    // Start before any precheck: 409.
    let (status, refused) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "precheck_required");

    // Precheck: 202, then the report, stored with the task.
    let report = api.precheck(&id).await;
    assert_eq!(report["state"], "passed", "{report}");
    assert_eq!(report["stale"], false);
    let checks = report["report"]["checks"].as_array().expect("checks");
    assert!(
        checks
            .iter()
            .any(|c| c["id"] == "objects_exist" && c["status"] == "pass")
    );
    let (_, task) = api.get(&format!("/tasks/{id}")).await;
    assert_eq!(task["status"], "prechecked");
    assert_eq!(task["precheck"]["state"], "passed");

    // Start: scheduled, and the schedule is installed.
    let (status, started) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(started["status"], "scheduled");
    assert!(
        api.scheduler
            .list()
            .await
            .expect("schedules")
            .iter()
            .any(|s| s.task_id == id)
    );

    // Schedule preview: the next cycles after the clock's now.
    let (status, preview) = api.get(&format!("/tasks/{id}/schedule?count=3")).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview["times"],
        json!([
            "2026-12-01T02:30:00+00:00",
            "2026-12-02T02:30:00+00:00",
            "2026-12-03T02:30:00+00:00"
        ])
    );

    // Run now: 202 with the run; it copies the table; the history shows it with its table.
    let (status, run) = api.post(&format!("/tasks/{id}/runs"), &json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    assert_eq!(run["trigger"], "manual");
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let done = api
        .wait_for(&format!("/tasks/{id}/runs/{run_id}"), |_, r| {
            r["status"] != "pending" && r["status"] != "running"
        })
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let tables = done["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), 1, "{done}");
    assert_eq!(tables[0]["table"], format!("{db}.items"));
    assert_eq!(tables[0]["rows"], 500);
    let copied = destination()
        .query_one(&format!("SELECT COUNT(*) FROM `{target}`.items"))
        .await;
    assert_eq!(copied.as_deref(), Some("500"));
    let (_, history) = api.get(&format!("/tasks/{id}/runs")).await;
    assert_eq!(history["items"][0]["id"], run_id.as_str(), "{history}");
    // The task's status follows its run's end (applied right after the run is recorded).
    let task = api
        .wait_for(&format!("/tasks/{id}"), |_, t| t["status"] != "running")
        .await;
    assert_eq!(task["status"], "scheduled", "after a manual run");

    // A finished run cannot be cancelled.
    let (status, body) = api
        .post(&format!("/tasks/{id}/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Stop: unscheduled.
    let (status, stopped) = api.post(&format!("/tasks/{id}/stop"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["status"], "stopped");
    assert!(api.scheduler.list().await.expect("schedules").is_empty());

    // A change invalidates the precheck: start is refused again.
    let (status, patched) = api
        .call(
            Method::PATCH,
            &format!("/tasks/{id}"),
            Some(r#"{"channel": {"workers": 1}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["status"], "created");
    assert_eq!(patched["precheck"]["stale"], true);
    assert_eq!(patched["spec"]["channel"]["workers"], 1);
    let (status, refused) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "precheck_stale");

    // Delete: gone, with its secrets.
    let (status, _) = api
        .call(Method::DELETE, &format!("/tasks/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&format!("/tasks/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let secrets = std::fs::read_to_string(api.secrets_file()).expect("secrets file");
    assert!(
        !secrets.contains(&id) && !secrets.contains(&password),
        "{secrets}"
    );

    drop_databases(&[&db, &target]).await;
}
