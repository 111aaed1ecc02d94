//! Helpers of the `tidemark run` suite: a spec over the stack's servers, a work directory with
//! the spec files and the data directory, the built binary run as a user runs it, a sample
//! database, and the data directory of an earlier version (`state-fe831f8.sqlite`) with the
//! servers as that version left them.

use std::path::PathBuf;
use std::process::{Command, Output};

use tidemark_core::ports::StateStore;
use tidemark_core::state::RunRecord;
use tidemark_local::SqliteStore;
use tidemark_tests::harness::{Server, destination, source, unique_name};

pub fn spec(db: &str, target: &str, dest: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "name": "run-test",
        "source": source().endpoint_json(),
        "destination": dest,
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-11-30" },
        "objects": [ { "database": db, "rename": target } ],
        "channel": { "workers": 3, "chunk_mb": 1 }
    })
}

pub struct Workdir(pub PathBuf);

impl Workdir {
    pub fn new() -> Workdir {
        let dir = std::env::temp_dir().join(unique_name("run_cli"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Workdir(dir)
    }

    /// `tidemark run` of `task`, written to `task.json`.
    pub fn run(&self, task: &serde_json::Value, extra: &[&str]) -> Output {
        self.run_file("task.json", task, extra, None)
    }

    /// `tidemark run` of `task` at `scheduled_time`, killed at the crash point `point`
    /// (`TIDEMARK_CRASH_AT`); its stderr.
    pub fn die_at(&self, task: &serde_json::Value, scheduled_time: &str, point: &str) -> String {
        let died = self.run_file(
            "task.json",
            task,
            &["--scheduled-time", scheduled_time],
            Some(point),
        );
        let stderr = text(&died.stderr);
        assert_ne!(died.status.code(), Some(0), "did not die: {stderr}");
        assert!(stderr.contains("crash point"), "{stderr}");
        stderr
    }

    /// `tidemark run` of `task`, written to `file` (a path under the work directory).
    pub fn run_file(
        &self,
        file: &str,
        task: &serde_json::Value,
        extra: &[&str],
        crash: Option<&str>,
    ) -> Output {
        let path = self.0.join(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the spec's directory");
        }
        std::fs::write(&path, task.to_string()).expect("write the spec");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        command
            .arg("run")
            .arg(&path)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(extra)
            .env_remove("TIDEMARK_CRASH_AT");
        if let Some(point) = crash {
            command.env("TIDEMARK_CRASH_AT", point);
        }
        command.output().expect("run tidemark")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.0.join("state")
    }

    pub fn state_file(&self) -> PathBuf {
        self.data_dir().join("state.sqlite")
    }

    /// The runs recorded under `task_id`, latest scheduled time first.
    pub async fn runs(&self, task_id: &str) -> Vec<RunRecord> {
        let store = SqliteStore::open(&self.state_file()).expect("open state");
        let page = store.list_runs(task_id, 20, None).await.expect("runs load");
        page.items
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An order-independent, NULL-safe hash of a table's rows, over every column's bytes.
pub async fn rows_hash(server: &Server, db: &str, table: &str, columns: &str) -> Option<String> {
    server
        .query_one(&format!(
            "SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('#', {columns}))), 0)) FROM `{db}`.`{table}`"
        ))
        .await
}

pub async fn sample(db: &str) {
    source()
        .exec(&[
            &format!("CREATE DATABASE `{db}`"),
            &format!("USE `{db}`"),
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer INT NOT NULL, note TEXT, \
             amount DECIMAL(12,2), KEY ix_customer (customer))",
            "INSERT INTO orders SELECT seq, seq % 97, IF(seq % 5 = 0, NULL, REPEAT('x', seq % 300)), \
             seq / 7 FROM seq_1_to_20000",
            "CREATE TABLE notes (body VARCHAR(50))",
            "INSERT INTO notes VALUES ('a'), ('a'), (NULL), ('tab\there')",
            "CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 1000",
        ])
        .await;
}

/// The tests of the earlier version's data directory share its databases (`tm_compat` on the
/// source, `tm_compat_dst` on the destination, named by the fixture's records): one at a time.
pub static COMPAT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The data directory written by the version before the one run driver (commit fe831f8): an
/// incremental task `compat` (`local-compat`) whose first run succeeded (3000 rows, a watermark)
/// and whose second run, scheduled at 2026-12-02T02:30:00Z, was killed
/// (`TIDEMARK_CRASH_AT=chunk.committed`) with its only chunk committed but its step still leased.
pub fn copy_compat_state(work: &Workdir) {
    std::fs::create_dir_all(work.data_dir()).expect("data dir");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/state-fe831f8.sqlite"
        ),
        work.state_file(),
    )
    .expect("copy the fixture");
}

/// The servers as that version left them: the source with the rows of both runs, the
/// destination with the first run's (the committed chunk of the second is upserted again).
pub async fn compat_servers() {
    let (src, dst) = (source(), destination());
    src.exec(&[
        "DROP DATABASE IF EXISTS tm_compat",
        "CREATE DATABASE tm_compat",
        "CREATE TABLE tm_compat.ev (id INT PRIMARY KEY, v VARCHAR(100) NOT NULL, \
         updated_at DATETIME(6) NOT NULL, KEY ix_updated (updated_at))",
        "INSERT INTO tm_compat.ev SELECT seq, REPEAT(CHAR(65 + seq % 26), 90), \
         TIMESTAMP'2026-11-01 00:00:00' + INTERVAL seq MINUTE FROM tm_compat.seq_1_to_3000",
        "INSERT INTO tm_compat.ev SELECT 3000 + seq, REPEAT('n', 90), \
         TIMESTAMP'2026-11-20 00:00:00' + INTERVAL seq MINUTE FROM tm_compat.seq_1_to_2000",
    ])
    .await;
    dst.exec(&[
        "DROP DATABASE IF EXISTS tm_compat_dst",
        "CREATE DATABASE tm_compat_dst",
        "CREATE TABLE tm_compat_dst.ev (id INT PRIMARY KEY, v VARCHAR(100) NOT NULL, \
         updated_at DATETIME(6) NOT NULL, KEY ix_updated (updated_at))",
    ])
    .await;
    let mut conn = src.conn().await;
    let rows: Vec<(i32, String, String)> = mysql_async::prelude::Queryable::query(
        &mut conn,
        "SELECT id, v, CAST(updated_at AS CHAR) FROM tm_compat.ev WHERE id <= 3000",
    )
    .await
    .expect("first run's rows");
    drop(conn);
    let mut conn = dst.conn().await;
    mysql_async::prelude::Queryable::exec_batch(
        &mut conn,
        "INSERT INTO tm_compat_dst.ev VALUES (?, ?, ?)",
        rows,
    )
    .await
    .expect("the first run's copy");
}

/// The task `compat` as that version ran it.
pub fn compat_task() -> serde_json::Value {
    let mut task = spec("tm_compat", "tm_compat_dst", destination().endpoint_json());
    task["name"] = "compat".into();
    task["policy"] =
        serde_json::json!({ "mode": "incremental", "lag_seconds": 0, "lookback_seconds": 0 });
    task["objects"] = serde_json::json!([{ "database": "tm_compat", "rename": "tm_compat_dst",
        "tables": [{ "name": "ev", "timestamp_column": "updated_at" }] }]);
    task
}

/// The destination's `ev` holds the source's rows, every one once.
pub async fn assert_compat_copied() {
    let columns = "id, v, updated_at";
    assert_eq!(
        rows_hash(&source(), "tm_compat", "ev", columns).await,
        rows_hash(&destination(), "tm_compat_dst", "ev", columns).await
    );
}

/// The watermark of `tm_compat.ev`, kept under the task's name by that version.
pub async fn compat_watermark(work: &Workdir) -> String {
    let store = SqliteStore::open(&work.state_file()).expect("open state");
    let mark = store
        .get_watermark("local-compat", "tm_compat.ev")
        .await
        .expect("read the watermark");
    mark.expect("a watermark").value
}

pub async fn drop_compat_databases() {
    source().exec(&["DROP DATABASE tm_compat"]).await;
    destination().exec(&["DROP DATABASE tm_compat_dst"]).await;
}
