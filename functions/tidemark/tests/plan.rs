//! `tidemark plan TASK.json`, run as a user runs it: output order, warnings on stderr, exit codes.

use std::process::{Command, Output};

use tidemark_tests::harness::{source, unique_name};

fn spec(source_endpoint: serde_json::Value, objects: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "name": "plan-test",
        "source": source_endpoint,
        "destination": { "host": "127.0.0.1", "port": 1, "user": "u", "password": "p" },
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-11-30" },
        "objects": objects
    })
}

fn plan(task: &serde_json::Value) -> Output {
    plan_with(task, &[])
}

fn plan_with(task: &serde_json::Value, extra: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(unique_name("plan_cli"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("task.json");
    std::fs::write(&path, task.to_string()).expect("write the spec");
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("plan")
        .arg(&path)
        .args(extra)
        .env_remove("TIDEMARK_TEST_PASSWORD")
        .output()
        .expect("run tidemark");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn prints_the_ddl_in_run_order_with_warnings_on_stderr() {
    let db = unique_name("plan_cli");
    let server = source();
    server
        .exec(&[
            &format!("CREATE DATABASE `{db}`"),
            &format!(
                "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, a INT, b INT, KEY ix_a (a), KEY ix_b (b))"
            ),
            &format!("CREATE VIEW `{db}`.v AS SELECT id, a FROM `{db}`.t"),
        ])
        .await;
    let task = spec(
        server.endpoint_json(),
        serde_json::json!([{ "database": db, "rename": format!("{db}_dw"),
            "tables": [ { "name": "t", "columns": [ { "name": "id" }, { "name": "a" } ] },
                        { "name": "v" } ] }]),
    );
    let out = plan(&task);
    server.exec(&[&format!("DROP DATABASE `{db}`")]).await;
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let at = |needle: &str| {
        stdout
            .find(needle)
            .unwrap_or_else(|| panic!("`{needle}` is not in the plan:\n{stdout}"))
    };
    // Resync: the shadow is created and indexed, one RENAME swaps it in, the view is replaced.
    let shadow = tidemark_core::policy::shadow_table_name(&format!("{db}_dw"), "t");
    let retired = tidemark_core::policy::retired_table_name(&format!("{db}_dw"), "t");
    let order = [
        at("-- policy: resync"),
        at("-- phase: pre-data"),
        at(&format!("CREATE DATABASE IF NOT EXISTS `{db}_dw`")),
        at(&format!("CREATE TABLE `{db}_dw`.`{shadow}`")),
        at("-- phase: post-data"),
        at("ADD KEY `ix_a` (`a`)"),
        at(&format!(
            "RENAME TABLE `{db}_dw`.`t` TO `{db}_dw`.`{retired}`, `{db}_dw`.`{shadow}` TO `{db}_dw`.`t`"
        )),
        at(&format!("DROP TABLE IF EXISTS `{db}_dw`.`{retired}`")),
        at("CREATE OR REPLACE ALGORITHM"),
        at(&format!("SQL SECURITY INVOKER VIEW `{db}_dw`.`v`")),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{stdout}");
    assert!(
        !stdout.contains("ix_b"),
        "an index on an unselected column: {stdout}"
    );
    assert!(
        stderr.contains("warning: index `ix_b` of table") && stderr.contains("`b`"),
        "{stderr}"
    );
    assert!(
        !stdout.contains(&format!("`{db}`.")),
        "the old name leaked:\n{stdout}"
    );
    let password = task["source"]["password"].as_str().unwrap_or_default();
    assert!(!stdout.contains(password) && !stderr.contains(password));
}

#[test]
fn a_bad_spec_exits_2_with_the_field_on_stderr() {
    let mut task = spec(
        serde_json::json!({ "host": "127.0.0.1", "user": "u", "password": "p" }),
        serde_json::json!([{ "database": "shop" }]),
    );
    task["surprise"] = serde_json::json!(true);
    let out = plan(&task);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("surprise"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_missing_file_exits_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["plan", "/nonexistent/task.json"])
        .output()
        .expect("run tidemark");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read the task spec"));
}

#[test]
fn a_secrets_manager_password_is_not_available_locally_and_exits_2() {
    let task = spec(
        serde_json::json!({ "host": "127.0.0.1", "user": "u",
            "password_secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:x" }),
        serde_json::json!([{ "database": "shop" }]),
    );
    let out = plan(&task);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("password_secret"), "{stderr}");
    assert!(stderr.contains("password_env"), "{stderr}");
}

#[test]
fn an_unset_password_env_exits_2_naming_the_variable() {
    let task = spec(
        serde_json::json!({ "host": "127.0.0.1", "user": "u",
            "password_env": "TIDEMARK_TEST_PASSWORD" }),
        serde_json::json!([{ "database": "shop" }]),
    );
    let out = plan(&task);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("TIDEMARK_TEST_PASSWORD"));
}

#[test]
fn help_describes_plan() {
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["plan", "--help"])
        .output()
        .expect("run tidemark");
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("DDL a run would execute"), "{help}");
    assert!(help.contains("TASK.json"), "{help}");
}

#[tokio::test]
async fn a_multi_replica_plan_names_the_replica_of_the_scheduled_time() {
    let db = unique_name("plan_rep");
    let server = source();
    server
        .exec(&[
            &format!("CREATE DATABASE `{db}`"),
            &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"),
        ])
        .await;
    let mut task = spec(
        server.endpoint_json(),
        serde_json::json!([{ "database": db }]),
    );
    task["policy"] = serde_json::json!({ "mode": "multi_replica", "keep_replicas": 3 });
    task["schedule"]["time_zone"] = serde_json::json!("Asia/Shanghai");
    let out = plan_with(&task, &["--scheduled-time", "2026-12-01T02:30:00+08:00"]);
    server.exec(&[&format!("DROP DATABASE `{db}`")]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let replica = format!("{db}_20261201_02_30_00");
    assert!(stdout.contains(&format!("creates {replica}")), "{stdout}");
    assert!(stdout.contains("newest 3"), "{stdout}");
    assert!(
        stdout.contains(&format!("CREATE TABLE `{replica}`.`t`")),
        "{stdout}"
    );
}
