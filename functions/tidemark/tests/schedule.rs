//! `tidemark schedule` (the CLI contract: next N times, RFC 3339 with offset, exit 0 / 2) and
//! consecutive `tidemark run`s of an incremental task carrying the watermark in --data-dir.

use std::path::PathBuf;
use std::process::{Command, Output};

use tidemark_tests::harness::{destination, source, unique_name};

struct Workdir(PathBuf);

impl Workdir {
    fn new() -> Workdir {
        let dir = std::env::temp_dir().join(unique_name("sched_cli"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Workdir(dir)
    }

    fn tidemark(&self, task: &serde_json::Value, args: &[&str]) -> Output {
        let path = self.0.join("task.json");
        std::fs::write(&path, task.to_string()).expect("write the spec");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        cmd.arg(args[0]).arg(&path).args(&args[1..]);
        cmd.output().expect("run tidemark")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec(
    policy: serde_json::Value,
    objects: serde_json::Value,
    start: &str,
    end: &str,
) -> serde_json::Value {
    serde_json::json!({
        "name": "sched-test",
        "source": source().endpoint_json(),
        "destination": destination().endpoint_json(),
        "policy": policy,
        "schedule": { "cycle": "week", "days": ["mon", "thu"], "at": "02:30",
                      "time_zone": "Asia/Shanghai", "start": start, "end": end },
        "objects": objects,
    })
}

#[test]
fn schedule_prints_the_next_times_with_their_offset() {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let end = today.checked_add(jiff::Span::new().days(60)).expect("date");
    let work = Workdir::new();
    let task = spec(
        serde_json::json!({"mode": "resync"}),
        serde_json::json!([{ "database": "x" }]),
        &today.to_string(),
        &end.to_string(),
    );
    let out = work.tidemark(&task, &["schedule", "--count", "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let mut previous: Option<jiff::Timestamp> = None;
    for line in &lines {
        assert!(
            line.ends_with("T02:30:00+08:00") || line.contains("T02:30:00+08:00"),
            "{line}"
        );
        let at: jiff::Timestamp = line.parse().expect("RFC 3339");
        let weekday = at
            .to_zoned_datetime(jiff::tz::TimeZone::get("Asia/Shanghai").expect("tz"))
            .weekday();
        assert!(
            matches!(
                weekday,
                jiff::civil::Weekday::Monday | jiff::civil::Weekday::Thursday
            ),
            "{line}"
        );
        assert!(at > jiff::Timestamp::now());
        assert!(previous.is_none_or(|p| p < at));
        previous = Some(at);
    }

    let mut bad = task.clone();
    bad["schedule"]["at"] = serde_json::json!("25:00");
    let out = work.tidemark(&bad, &["schedule"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schedule.at"));
}

#[tokio::test]
async fn consecutive_runs_carry_the_incremental_watermark_in_the_data_dir() {
    let db = unique_name("cli_inc");
    let target = unique_name("cli_inc_dst");
    let src = source();
    src.exec(&[
        &format!("CREATE DATABASE `{db}`"),
        &format!("CREATE TABLE `{db}`.ev (id INT PRIMARY KEY, updated_at DATETIME(6) NOT NULL, KEY (updated_at))"),
        &format!("INSERT INTO `{db}`.ev VALUES (1, NOW(6) - INTERVAL 60 SECOND), (2, NOW(6) - INTERVAL 60 SECOND)"),
    ])
    .await;
    let work = Workdir::new();
    let data_dir = work.0.join("state");
    let data_dir = data_dir.to_string_lossy().into_owned();
    let task = spec(
        serde_json::json!({"mode": "incremental", "lag_seconds": 1}),
        serde_json::json!([{ "database": db, "rename": target,
            "tables": [{ "name": "ev", "timestamp_column": "updated_at" }] }]),
        "2026-12-01",
        "2027-11-30",
    );
    let run = |at: &str| {
        work.tidemark(
            &task,
            &[
                "run",
                "--data-dir",
                &data_dir,
                "--scheduled-time",
                at,
                "--json",
            ],
        )
    };
    let out = run("2026-12-03T02:30:00+08:00");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    src.exec(&[&format!(
        "INSERT INTO `{db}`.ev VALUES (3, NOW(6) - INTERVAL 30 SECOND)"
    )])
    .await;
    let out = run("2026-12-07T02:30:00+08:00");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON summary");
    // The second run read a window from the first run's watermark: the two rows stamped with it
    // (the closed low bound) and the new one, not a full copy from scratch.
    let windows = &summary["plan"]["windows"];
    assert!(windows[0]["previous"].is_string(), "{summary}");
    assert_eq!(
        destination()
            .query_one(&format!("SELECT COUNT(*) FROM `{target}`.ev"))
            .await
            .as_deref(),
        Some("3")
    );
    destination()
        .exec(&[&format!("DROP DATABASE `{target}`")])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}
