//! `tidemark precheck TASK.json`: the report on stdout and the CLI contract's exit codes.

use std::process::{Command, Output};

use secrecy::ExposeSecret;
use tidemark_tests::harness::net::closed_port;
use tidemark_tests::harness::{destination, source, unique_name};

fn precheck(task: &serde_json::Value, json: bool) -> Output {
    let dir = std::env::temp_dir().join(unique_name("precheck_cli"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("task.json");
    std::fs::write(&path, task.to_string()).expect("write the spec");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    cmd.arg("precheck").arg(&path);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run tidemark");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn spec(db: &str, dest: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "name": "precheck-cli",
        "source": source().endpoint_json(),
        "destination": dest,
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-01-01", "end": "2026-12-31" },
        "objects": [ { "database": db, "rename": format!("{db}_dw") } ]
    })
}

#[tokio::test]
async fn a_ready_task_passes_and_an_unreachable_destination_fails() {
    let db = unique_name("precheck_cli");
    source()
        .exec(&[
            &format!("CREATE DATABASE `{db}`"),
            &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(10))"),
        ])
        .await;
    let mut ready = spec(&db, destination().endpoint_json());
    // The schedule window must still hold a cycle: end it a year from now.
    let next_year = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 300))
        .expect("a date");
    ready["schedule"]["end"] = next_year.strftime("%Y-%m-%d").to_string().into();
    ready["schedule"]["start"] = jiff::Timestamp::now()
        .strftime("%Y-%m-%d")
        .to_string()
        .into();
    let out = precheck(&ready, true);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    let checks = report["checks"].as_array().expect("checks");
    assert!(checks.len() >= 20, "{} checks", checks.len());
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{stdout}");

    let mut dead = destination().endpoint_json();
    dead["port"] = closed_port().into();
    dead["connect_timeout_seconds"] = 2.into();
    let out = precheck(&spec(&db, dead), false);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("destination_connectivity"))
        .unwrap_or_else(|| panic!("no destination check in:\n{stdout}"));
    assert!(
        line.starts_with("FAIL") && line.contains("refused"),
        "{line}"
    );
    assert!(stdout.contains("fix:"), "{stdout}");
    let password = source().password().expose_secret().to_owned();
    assert!(!stdout.contains(&password), "the password leaked");
    source().exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

#[test]
fn a_bad_spec_exits_2() {
    let mut task = spec("shop", destination().endpoint_json());
    task["objects"] = serde_json::json!([]);
    let out = precheck(&task, false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("objects"));
}
