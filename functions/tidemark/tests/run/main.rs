//! `tidemark run TASK.json`, run as a user runs it: one cycle copies schema and data exactly,
//! reports on stdout (text or --json), records the run in --data-dir, does nothing twice for one
//! scheduled time, and keeps the CLI contract's exit codes. The key of a task's state is in
//! `task_id`.

mod support;
mod task_id;

use secrecy::ExposeSecret;
use tidemark_core::ports::StateStore;
use tidemark_core::state::{RunKey, RunStatus};
use tidemark_local::SqliteStore;
use tidemark_tests::harness::{destination, source, unique_name};

use support::{
    Workdir, assert_compat_copied, compat_servers, compat_task, compat_watermark,
    copy_compat_state, drop_compat_databases, rows_hash, sample, spec, text,
};

#[tokio::test]
async fn one_cycle_copies_schema_and_data_exactly_and_reports_it() {
    let db = unique_name("run_cli");
    let target = format!("{db}_dw");
    sample(&db).await;
    let work = Workdir::new();
    let task = spec(&db, &target, destination().endpoint_json());
    let out = work.run(&task, &["--scheduled-time", "2026-12-01T02:30:00Z"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // The summary names each table with its rows and verification.
    assert!(stdout.contains("succeeded"), "{stdout}");
    let orders_line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{db}.orders")))
        .unwrap_or_else(|| panic!("no line for orders in:\n{stdout}"));
    assert!(
        orders_line.contains("20000") && orders_line.ends_with("yes"),
        "{orders_line}"
    );
    // Progress went to stderr, phase by phase; the keyless table was warned about.
    assert!(stderr.contains("copying:"), "{stderr}");
    assert!(stderr.contains("notes"), "{stderr}");
    let password = source().password().expose_secret().to_owned();
    assert!(
        !stdout.contains(&password) && !stderr.contains(&password),
        "the password leaked"
    );

    // The data, the secondary index and the view all arrived.
    let (src, dst) = (source(), destination());
    let columns = "id, customer, HEX(note), amount";
    assert_eq!(
        rows_hash(&src, &db, "orders", columns).await,
        rows_hash(&dst, &target, "orders", columns).await
    );
    assert_eq!(
        rows_hash(&src, &db, "notes", "HEX(body)").await,
        rows_hash(&dst, &target, "notes", "HEX(body)").await
    );
    assert_eq!(
        dst.query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{target}' AND INDEX_NAME = 'ix_customer'"
        ))
        .await
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        dst.query_one(&format!("SELECT COUNT(*) FROM `{target}`.big_orders"))
            .await,
        src.query_one(&format!("SELECT COUNT(*) FROM `{db}`.big_orders"))
            .await
    );

    // The run is recorded in the data dir, with per-table counters.
    let store = SqliteStore::open(&work.data_dir().join("state.sqlite")).expect("open state");
    let key = RunKey {
        task_id: "local-run-test".into(),
        scheduled_time: "2026-12-01T02:30:00Z".parse().expect("time"),
    };
    let run = store
        .get_run(&key)
        .await
        .expect("get")
        .expect("the run is recorded");
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(
        run.chunks_total >= 2 && run.chunks_done == run.chunks_total,
        "{run:?}"
    );
    let progress = store.list_progress(&key).await.expect("progress");
    let orders = progress
        .iter()
        .find(|p| p.table == format!("{db}.orders"))
        .expect("orders progress");
    assert_eq!(orders.rows, 20000);
    assert_eq!(orders.verified, orders.chunks_done);

    // The same scheduled time again: nothing is done.
    let again = work.run(&task, &["--scheduled-time", "2026-12-01T02:30:00Z"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        text(&again.stderr).contains("already succeeded"),
        "{}",
        text(&again.stderr)
    );

    for (server, name) in [(&src, &db), (&dst, &target)] {
        server.exec(&[&format!("DROP DATABASE `{name}`")]).await;
    }
}

/// A `tidemark run` that died mid-copy is resumed by the next `tidemark run` of the task, which
/// says so (its committed chunks are not copied again); with --abandon the unfinished run is
/// failed and cleaned up instead, and a new run starts.
#[tokio::test]
async fn a_crashed_run_is_resumed_by_the_next_run_or_abandoned() {
    let db = unique_name("run_crash");
    let target = format!("{db}_dw");
    sample(&db).await;
    let work = Workdir::new();
    let task = spec(&db, &target, destination().endpoint_json());
    let first = "2026-12-01T02:30:00Z";
    work.die_at(&task, first, "chunk.committed#2");

    // The next run, at another minute (no --scheduled-time: now), resumes the dead one.
    let resumed = work.run(&task, &[]);
    let stderr = text(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("resuming the run") && stderr.contains(first),
        "{stderr}"
    );
    let (src, dst) = (source(), destination());
    let columns = "id, customer, HEX(note), amount";
    assert_eq!(
        rows_hash(&src, &db, "orders", columns).await,
        rows_hash(&dst, &target, "orders", columns).await
    );
    let store = SqliteStore::open(&work.data_dir().join("state.sqlite")).expect("open state");
    let runs = store
        .list_runs("local-run-test", 10, None)
        .await
        .expect("runs")
        .items;
    assert_eq!(runs.len(), 1, "one run, resumed, none skipped: {runs:?}");
    assert_eq!(runs[0].status, RunStatus::Succeeded);
    let progress = store.list_progress(&runs[0].key).await.expect("progress");
    let orders = progress
        .iter()
        .find(|p| p.table == format!("{db}.orders"))
        .expect("orders progress");
    assert_eq!(orders.rows, 20000, "a committed chunk was counted twice");
    drop(store);

    // Died again, then abandoned: failed and cleaned up, and a new run copies.
    let second = "2026-12-02T02:30:00Z";
    work.die_at(&task, second, "chunk.committed#2");
    let elsewhere = work.run(&task, &["--scheduled-time", "2026-12-03T02:30:00Z"]);
    assert_eq!(
        elsewhere.status.code(),
        Some(1),
        "another time while one is unfinished"
    );
    assert!(
        text(&elsewhere.stderr).contains("--abandon"),
        "{}",
        text(&elsewhere.stderr)
    );
    let abandoned = work.run(&task, &["--abandon"]);
    let stderr = text(&abandoned.stderr);
    assert_eq!(abandoned.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("failed and cleaned up"), "{stderr}");
    let runs = work.runs("local-run-test").await;
    let status_at = |at: &str| {
        let at: jiff::Timestamp = at.parse().expect("time");
        runs.iter()
            .find(|r| r.key.scheduled_time == at)
            .map(|r| r.status)
    };
    assert_eq!(status_at(second), Some(RunStatus::Failed), "{runs:?}");
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(
        runs[0].status,
        RunStatus::Succeeded,
        "the new run: {runs:?}"
    );
    let leftovers = dst
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{target}' \
             AND TABLE_NAME LIKE '\\_tm\\_%'"
        ))
        .await;
    assert_eq!(leftovers.as_deref(), Some("0"), "shadow tables left");
    for (server, name) in [(&src, &db), (&dst, &target)] {
        server.exec(&[&format!("DROP DATABASE `{name}`")]).await;
    }
}

#[tokio::test]
async fn json_summary_and_a_failed_run_recorded_as_failed() {
    let db = unique_name("run_json");
    let target = format!("{db}_dw");
    sample(&db).await;
    let work = Workdir::new();
    let task = spec(&db, &target, destination().endpoint_json());
    let out = work.run(
        &task,
        &["--json", "--scheduled-time", "2026-12-02T02:30:00+08:00"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["scheduled_time"], "2026-12-01T18:30:00Z");
    let tables = summary["tables"].as_array().expect("tables");
    let rows: u64 = tables.iter().filter_map(|t| t["rows"].as_u64()).sum();
    assert_eq!(rows, 20004);
    // Each table's copy time spans its chunks: never zero for a table that had rows to copy.
    for t in tables.iter().filter(|t| t["rows"].as_u64() > Some(0)) {
        let seconds = t["seconds"].as_f64().expect("seconds");
        assert!(seconds > 0.0 && seconds < 600.0, "{t}");
    }

    // A destination that refuses connections: exit 1, a clear error, the run recorded failed.
    let closed = tidemark_tests::harness::net::closed_port();
    let mut dead = destination().endpoint_json();
    dead["port"] = closed.into();
    dead["connect_timeout_seconds"] = 2.into();
    let failing = spec(&db, &format!("{db}_never"), dead);
    let out = work.run(
        &failing,
        &["--json", "--scheduled-time", "2026-12-03T02:30:00Z"],
    );
    assert_eq!(out.status.code(), Some(1));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(summary["status"], "failed");
    let error = summary["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("destination") && error.contains("refused"),
        "{error}"
    );
    let store = SqliteStore::open(&work.data_dir().join("state.sqlite")).expect("open state");
    let key = RunKey {
        task_id: "local-run-test".into(),
        scheduled_time: "2026-12-03T02:30:00Z".parse().expect("time"),
    };
    let run = store.get_run(&key).await.expect("get").expect("recorded");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.as_deref().unwrap_or_default().contains("refused"));

    for (server, name) in [(source(), &db), (destination(), &target)] {
        server.exec(&[&format!("DROP DATABASE `{name}`")]).await;
    }
}

#[test]
fn a_bad_spec_exits_2_naming_the_field() {
    let work = Workdir::new();
    let mut task = spec("shop", "shop_dw", destination().endpoint_json());
    task["schedule"]["at"] = "25:00".into();
    let out = work.run(&task, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("schedule.at"),
        "{}",
        text(&out.stderr)
    );
    // An unset password variable is the spec's fault too.
    let mut task = spec("shop", "shop_dw", destination().endpoint_json());
    task["source"] = serde_json::json!({ "host": "127.0.0.1", "user": "u",
        "password_env": "TIDEMARK_TEST_SURELY_UNSET" });
    let out = work.run(&task, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("source.password_env"),
        "{}",
        text(&out.stderr)
    );
    // A rejected spec writes nothing: not even the data directory.
    assert!(!work.data_dir().exists(), "a bad spec created the state");
}

/// The data directory of the version before the one run driver ([`support::copy_compat_state`]):
/// every record loads, and the next `tidemark run` resumes the unfinished run to a verified
/// finish.
#[tokio::test]
async fn a_data_dir_of_the_previous_version_loads_and_its_unfinished_run_is_resumed() {
    let _compat = support::COMPAT.lock().await;
    let work = Workdir::new();
    copy_compat_state(&work);
    let store = SqliteStore::open(&work.state_file()).expect("open state");
    let runs = store
        .list_runs("local-compat", 10, None)
        .await
        .expect("runs load")
        .items;
    let statuses: Vec<RunStatus> = runs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![RunStatus::Running, RunStatus::Succeeded]);
    for run in &runs {
        let steps = store.list_steps(&run.key).await.expect("steps load");
        assert_eq!(steps.len(), 3, "{steps:?}");
    }
    drop(store);
    assert_eq!(compat_watermark(&work).await, "2026-11-03 02:00:00.000000");
    compat_servers().await;

    let out = work.run(&compat_task(), &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("resuming the run of `compat` scheduled at 2026-12-02T02:30:00Z"),
        "{stderr}"
    );
    assert_compat_copied().await;
    assert_eq!(
        compat_watermark(&work).await,
        "2026-11-21 09:20:00.000000",
        "the watermark moved on"
    );
    let runs = work.runs("local-compat").await;
    assert_eq!(runs.len(), 2, "resumed, not a new run beside it: {runs:?}");
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Succeeded),
        "{runs:?}"
    );
    drop_compat_databases().await;
}
