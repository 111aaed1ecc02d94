//! The key of a task's local state: the spec's `id`, or an id derived once and recorded for its
//! file. Renaming a task keeps its runs, watermarks and unfinished run; two files with the same
//! name keep apart; the data directory of an earlier version (keyed by name) is adopted.

use serde_json::{Value, json};
use tidemark_core::state::RunStatus;
use tidemark_tests::harness::{destination, source, unique_name};

use crate::support::{
    COMPAT, Workdir, assert_compat_copied, compat_servers, compat_task, compat_watermark,
    copy_compat_state, drop_compat_databases, rows_hash, spec, text,
};

/// `tidemark run --json` of `task` at `scheduled_time`: its summary and stderr, or a panic
/// unless it succeeded.
fn run_at(work: &Workdir, task: &Value, scheduled_time: &str) -> (Value, String) {
    let out = work.run(task, &["--json", "--scheduled-time", scheduled_time]);
    (succeeded(&out), text(&out.stderr))
}

/// A `--json` run's summary; panics with stderr unless the run exits 0.
fn succeeded(out: &std::process::Output) -> Value {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

fn rows_copied(summary: &Value) -> u64 {
    summary["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|t| t["rows"].as_u64())
        .sum()
}

fn incremental(db: &str, target: &str) -> Value {
    let mut task = spec(db, target, destination().endpoint_json());
    task["policy"] = json!({ "mode": "incremental", "lag_seconds": 0, "lookback_seconds": 0 });
    task["objects"] = json!([{ "database": db, "rename": target,
        "tables": [{ "name": "ev", "timestamp_column": "updated_at" }] }]);
    task
}

/// `n` rows from `first_id` on, a minute apart from `since`.
async fn add_rows(db: &str, first_id: u32, n: u32, since: &str) {
    source()
        .exec(&[&format!(
            "INSERT INTO `{db}`.ev SELECT {first_id} - 1 + seq, REPEAT('v', 80), \
             TIMESTAMP'{since}' + INTERVAL seq MINUTE FROM `{db}`.seq_1_to_{n}"
        )])
        .await;
}

#[tokio::test]
async fn renaming_a_task_or_giving_it_an_id_keeps_its_state() {
    let db = unique_name("run_rename");
    let target = format!("{db}_dw");
    source()
        .exec(&[
            &format!("CREATE DATABASE `{db}`"),
            &format!(
                "CREATE TABLE `{db}`.ev (id INT PRIMARY KEY, v VARCHAR(100) NOT NULL, \
                 updated_at DATETIME(6) NOT NULL)"
            ),
        ])
        .await;
    add_rows(&db, 1, 1000, "2026-11-01 00:00:00").await;
    let work = Workdir::new();
    let mut task = incremental(&db, &target);
    task["name"] = "rename me".into();

    // The first run dies with its rows committed and its watermark not yet moved.
    let first = "2026-12-01T02:30:00Z";
    let stderr = work.die_at(&task, first, "incremental.data_committed");
    assert!(stderr.contains("recorded for"), "the id is told: {stderr}");

    // Renamed in its file: the next run resumes the dead one, under the same id.
    task["name"] = "renamed".into();
    let out = work.run(&task, &["--json"]);
    let summary = succeeded(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "resuming the run of `renamed` scheduled at {first}"
        )),
        "{stderr}"
    );
    assert_eq!(summary["task_id"], "local-rename-me");
    assert!(!stderr.contains("recorded for"), "told once: {stderr}");

    // Renamed again: the watermark carries on, only the new rows are copied (and the one at the
    // watermark: a window's low end is inclusive).
    add_rows(&db, 1001, 300, "2026-11-20 00:00:00").await;
    task["name"] = "Renamed, twice".into();
    let (summary, _) = run_at(&work, &task, "2026-12-02T02:30:00Z");
    assert_eq!(summary["task_id"], "local-rename-me");
    assert_eq!(rows_copied(&summary), 301, "{summary}");

    // Given an `id`: the id takes over the file's state, and says so once.
    add_rows(&db, 1301, 200, "2026-11-25 00:00:00").await;
    task["id"] = "rename-nightly".into();
    let (summary, stderr) = run_at(&work, &task, "2026-12-03T02:30:00Z");
    assert_eq!(summary["task_id"], "local-rename-me");
    assert_eq!(rows_copied(&summary), 201, "{summary}");
    assert!(stderr.contains("`rename-nightly` is new here"), "{stderr}");

    // Died again, and renamed: --abandon finds the dead run under the id and fails it.
    work.die_at(&task, "2026-12-04T02:30:00Z", "incremental.data_committed");
    task["name"] = "renamed, thrice".into();
    let out = work.run(&task, &["--json", "--abandon"]);
    let summary = succeeded(&out);
    assert_eq!(summary["task_id"], "local-rename-me");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the run of `renamed, thrice` scheduled at 2026-12-04T02:30:00Z")
            && stderr.contains("failed and cleaned up"),
        "{stderr}"
    );

    let columns = "id, v, updated_at";
    let (src, dst) = (source(), destination());
    assert_eq!(
        rows_hash(&src, &db, "ev", columns).await,
        rows_hash(&dst, &target, "ev", columns).await
    );
    let runs = work.runs("local-rename-me").await;
    assert_eq!(runs.len(), 5, "{runs:?}");
    let abandoned: jiff::Timestamp = "2026-12-04T02:30:00Z".parse().expect("time");
    for run in &runs {
        let expected = if run.key.scheduled_time == abandoned {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        assert_eq!(run.status, expected, "{runs:?}");
    }
    for (server, name) in [(&src, &db), (&dst, &target)] {
        server.exec(&[&format!("DROP DATABASE `{name}`")]).await;
    }
}

#[tokio::test]
async fn two_files_with_one_name_keep_apart_by_id_or_by_file() {
    let db = unique_name("run_apart");
    source()
        .exec(&[
            &format!("CREATE DATABASE `{db}`"),
            &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT)"),
            &format!("INSERT INTO `{db}`.t SELECT seq, seq * 3 FROM `{db}`.seq_1_to_100"),
        ])
        .await;
    let work = Workdir::new();
    let at = ["--json", "--scheduled-time", "2026-12-01T02:30:00Z"];
    let mut targets = Vec::new();
    for (file, id, expected) in [
        ("a/task.json", Some("alpha"), "alpha"),
        ("b/task.json", Some("beta"), "beta"),
        ("c/task.json", None, "local-same"),
        ("d/task.json", None, "local-same-2"),
    ] {
        let target = format!("{db}_{expected}").replace('-', "_");
        let mut task = spec(&db, &target, destination().endpoint_json());
        task["name"] = "same".into();
        if let Some(id) = id {
            task["id"] = id.into();
        }
        let summary = succeeded(&work.run_file(file, &task, &at, None));
        assert_eq!(summary["task_id"], expected, "{file}");
        assert_eq!(rows_copied(&summary), 100, "{file} copied its own run");
        targets.push((file, task, target));
    }
    // Each file keeps its id: the same scheduled time again is the same run.
    for (file, task, _) in &targets {
        let out = work.run_file(file, task, &at, None);
        assert_eq!(out.status.code(), Some(0), "{file}");
        assert!(
            text(&out.stderr).contains("already succeeded"),
            "{file}: {}",
            text(&out.stderr)
        );
    }
    for id in ["alpha", "beta", "local-same", "local-same-2"] {
        let runs = work.runs(id).await;
        assert_eq!(runs.len(), 1, "{id}: {runs:?}");
    }
    source().exec(&[&format!("DROP DATABASE `{db}`")]).await;
    for (_, _, target) in &targets {
        destination()
            .exec(&[&format!("DROP DATABASE `{target}`")])
            .await;
    }
}

/// The earlier version's data directory ([`crate::support::copy_compat_state`]), run with an
/// `id` the task never had: the id adopts the state kept under the task's name, resumes its
/// unfinished run, and keeps its watermark through a rename.
#[tokio::test]
async fn an_earlier_data_dir_is_adopted_by_an_id_and_kept_through_a_rename() {
    let _compat = COMPAT.lock().await;
    let work = Workdir::new();
    copy_compat_state(&work);
    compat_servers().await;
    let mut task = compat_task();
    task["id"] = "compat-nightly".into();
    let out = work.run(&task, &["--json"]);
    let summary = succeeded(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("resuming the run of `compat` scheduled at 2026-12-02T02:30:00Z"),
        "{stderr}"
    );
    assert!(stderr.contains("under `local-compat`"), "{stderr}");
    assert_eq!(summary["task_id"], "local-compat");

    add_rows("tm_compat", 5001, 100, "2026-11-25 00:00:00").await;
    task["name"] = "compat, renamed".into();
    let (summary, _) = run_at(&work, &task, "2026-12-03T02:30:00Z");
    assert_eq!(
        rows_copied(&summary),
        101,
        "from the watermark on: {summary}"
    );
    assert_compat_copied().await;
    assert_eq!(compat_watermark(&work).await, "2026-11-25 01:40:00.000000");
    let runs = work.runs("local-compat").await;
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
    drop_compat_databases().await;
}
