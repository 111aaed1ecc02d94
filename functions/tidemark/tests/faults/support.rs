//! The fault suite's scenarios: a sample database of several tables (some of several chunks, a
//! trigger, a view, a keyless table), and the checks every scenario ends with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Row, Value as SqlValue};
use serde_json::{Value, json};
use tidemark_core::ports::StateStore;
use tidemark_core::state::{RunKey, StepKind, StepRecord};
use tidemark_local::SqliteStore;
use tidemark_tests::harness::{Server, destination, source, unique_name};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Replica,
    Resync,
    Incremental,
}

impl Policy {
    pub fn all() -> [Policy; 3] {
        [Policy::Replica, Policy::Resync, Policy::Incremental]
    }

    pub fn json(self) -> Value {
        match self {
            Policy::Replica => json!({ "mode": "multi_replica", "keep_replicas": 2 }),
            Policy::Resync => json!({ "mode": "resync" }),
            Policy::Incremental => {
                json!({ "mode": "incremental", "lag_seconds": 0, "lookback_seconds": 0 })
            }
        }
    }

    /// The tables a scenario copies under this policy (a keyless table cannot be upserted).
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Policy::Incremental => &["orders", "customers", "events"],
            _ => &["orders", "customers", "events", "notes"],
        }
    }
}

/// The sample's tables, created the same way on both sides (`{db}` is replaced).
const TABLES: &[&str] = &[
    "CREATE TABLE `{db}`.orders (id BIGINT PRIMARY KEY, customer INT NOT NULL, \
     note VARCHAR(400) NULL, amount DECIMAL(12,2), updated_at DATETIME(6) NOT NULL, \
     KEY ix_customer (customer))",
    "CREATE TABLE `{db}`.customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, \
     email VARCHAR(80) NULL, visits INT NOT NULL DEFAULT 0, updated_at DATETIME(6) NOT NULL)",
    "CREATE TABLE `{db}`.events (id BIGINT PRIMARY KEY, kind VARCHAR(20) NULL, \
     payload VARCHAR(600) NOT NULL, updated_at DATETIME(6) NOT NULL)",
];

/// A trigger that, fired again for a copied row, would change it (visits + 1).
const TRIGGER: &str = "CREATE TRIGGER `{db}`.customers_visit BEFORE INSERT ON `{db}`.customers \
                       FOR EACH ROW SET NEW.visits = NEW.visits + 1";

/// One scenario: a source database, its destination server and name, a data directory.
pub struct Scenario {
    pub policy: Policy,
    /// The destination server: the stack's, or a test's own.
    pub dest: Server,
    pub db: String,
    pub target: String,
    pub dir: tempfile::TempDir,
}

impl Scenario {
    /// The source database: orders (~4 MB: several chunks of 1 MB), events (~3 MB), customers
    /// (one chunk, with a trigger), notes (keyless, duplicate rows) and a view. Under resync and
    /// incremental the destination already holds an older copy (stale rows, the trigger), so a
    /// swap retires tables and an incremental load sets triggers aside.
    pub async fn new(tag: &str, policy: Policy) -> Scenario {
        Scenario::on(destination(), tag, policy).await
    }

    /// [`Scenario::new`] with `dest` as the destination server.
    pub async fn on(dest: Server, tag: &str, policy: Policy) -> Scenario {
        let db = unique_name(tag);
        let target = format!("{db}_dw");
        let mut statements = vec![format!("CREATE DATABASE `{db}`"), format!("USE `{db}`")];
        statements.extend(TABLES.iter().map(|t| t.replace("{db}", &db)));
        statements.extend([
            format!(
                "INSERT INTO `{db}`.orders SELECT seq, seq % 97, IF(seq % 7 = 0, NULL, \
                 REPEAT(CHAR(65 + seq % 26), 150 + seq % 200)), seq / 7, \
                 TIMESTAMP'2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_12000"
            ),
            format!(
                "INSERT INTO `{db}`.customers SELECT seq, CONCAT('c', seq), IF(seq % 3 = 0, NULL, \
                 CONCAT('c', seq, '@x.test')), seq % 10, \
                 TIMESTAMP'2026-01-01 00:00:00.5' + INTERVAL seq MINUTE FROM seq_1_to_3000"
            ),
            format!(
                "INSERT INTO `{db}`.events SELECT seq, ELT(1 + seq % 3, 'a', NULL, 'c'), \
                 REPEAT('e', 300 + seq % 200), \
                 TIMESTAMP'2026-01-02 00:00:00.25' + INTERVAL seq SECOND FROM seq_1_to_7000"
            ),
            TRIGGER.replace("{db}", &db),
        ]);
        if policy != Policy::Incremental {
            statements.extend([
                format!("CREATE TABLE `{db}`.notes (body VARCHAR(50) NULL)"),
                format!(
                    "INSERT INTO `{db}`.notes VALUES ('a'), ('a'), (NULL), (NULL), ('tab\\there')"
                ),
                format!(
                    "CREATE VIEW `{db}`.big_orders AS SELECT id, amount FROM `{db}`.orders \
                     WHERE amount > 1000"
                ),
            ]);
        }
        let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
        source().exec(&refs).await;

        if policy != Policy::Replica {
            // An older copy on the destination: stale rows, some beyond the source's keys.
            let mut old = vec![
                format!("CREATE DATABASE `{target}`"),
                format!("USE `{target}`"),
            ];
            old.extend(TABLES.iter().map(|t| t.replace("{db}", &target)));
            old.extend([
                format!(
                    "INSERT INTO `{target}`.orders SELECT seq, 1, 'stale', 0, \
                     TIMESTAMP'2020-01-01 00:00:00' FROM seq_1_to_50"
                ),
                format!(
                    "INSERT INTO `{target}`.orders SELECT seq, 1, 'stale', 0, \
                     TIMESTAMP'2020-01-01 00:00:00' FROM seq_20000_to_20050"
                ),
                format!(
                    "INSERT INTO `{target}`.customers VALUES (1, 'stale', NULL, 0, \
                     '2020-01-01 00:00:00')"
                ),
                TRIGGER.replace("{db}", &target),
            ]);
            if policy == Policy::Resync {
                old.push(format!(
                    "CREATE TABLE `{target}`.notes (body VARCHAR(50) NULL)"
                ));
                old.push(format!("INSERT INTO `{target}`.notes VALUES ('stale')"));
            }
            let refs: Vec<&str> = old.iter().map(String::as_str).collect();
            dest.exec(&refs).await;
        }
        Scenario {
            policy,
            dest,
            db,
            target,
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn spec(&self) -> Value {
        let objects = match self.policy {
            Policy::Incremental => json!([{
                "database": self.db, "rename": self.target,
                "tables": self.policy.tables().iter()
                    .map(|t| json!({ "name": t, "timestamp_column": "updated_at" }))
                    .collect::<Vec<_>>()
            }]),
            _ => json!([{ "database": self.db, "rename": self.target }]),
        };
        json!({
            "name": "fault-suite",
            "source": source().endpoint_json(),
            "destination": self.dest.endpoint_json(),
            "policy": self.policy.json(),
            "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                          "start": "2026-12-01", "end": "2027-11-30" },
            "failure_policy": "stop",
            "objects": objects,
            "channel": { "workers": 2, "chunk_mb": 1 }
        })
    }

    /// The destination database a run at `run` (its id, RFC 3339 in UTC) wrote to.
    pub fn dest_db(&self, run: &str) -> String {
        match self.policy {
            Policy::Replica => {
                let t: jiff::Timestamp = run.parse().expect("a run id");
                format!("{}_{}", self.target, t.strftime("%Y%m%d_%H_%M_%S"))
            }
            _ => self.target.clone(),
        }
    }

    /// Everything a finished run must leave, checked against the source.
    pub async fn verify(&self, task: &str, run: &Value) {
        let id = run["id"].as_str().expect("a run id");
        assert_eq!(run["status"], "succeeded", "the run: {run}");
        let dest_db = self.dest_db(id);
        for table in self.policy.tables() {
            assert_same_rows(&self.dest, &self.db, &dest_db, table).await;
        }
        assert_no_working_tables(&self.dest, &dest_db).await;
        assert_same_triggers(&self.dest, &self.db, &dest_db).await;
        if self.policy != Policy::Incremental {
            assert_same_views(&self.dest, &self.db, &dest_db).await;
        }
        if self.policy == Policy::Replica {
            // Exactly the replica this run made: no half-made one of an earlier attempt.
            let pattern = format!("{}\\_%", self.target);
            let made = names(
                &self.dest,
                &format!(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
                     WHERE SCHEMA_NAME LIKE '{pattern}' ORDER BY 1"
                ),
            )
            .await;
            assert_eq!(made, vec![dest_db.clone()], "replica databases");
        }
        // The run's counters: every chunk once, every row once.
        assert_eq!(run["chunks_done"], run["chunks_total"], "{run}");
        assert!(run["chunks_total"].as_u64().unwrap_or(0) >= 4, "{run}");
        for table in self.policy.tables() {
            let name = format!("{}.{table}", self.db);
            let progress = run["tables"]
                .as_array()
                .and_then(|t| t.iter().find(|p| p["table"] == name.as_str()))
                .unwrap_or_else(|| panic!("no counters for {name}: {run}"));
            let rows = count(
                &source(),
                &format!("SELECT COUNT(*) FROM `{}`.`{table}`", self.db),
            )
            .await;
            assert_eq!(
                progress["rows"].as_u64(),
                Some(rows),
                "{name}'s rows counter (a chunk counted twice, or not at all): {run}"
            );
        }
        if self.policy == Policy::Incremental {
            self.assert_watermarks_at_source_max(task).await;
        }
    }

    /// Every table's watermark is its source's MAX(updated_at), in full precision.
    pub async fn assert_watermarks_at_source_max(&self, task: &str) {
        let store = SqliteStore::open(&self.data_dir().join("state.sqlite")).expect("the state");
        for table in self.policy.tables() {
            let key = format!("{}.{table}", self.db);
            let mark = store
                .get_watermark(task, &key)
                .await
                .expect("the store")
                .unwrap_or_else(|| panic!("no watermark for {key}"));
            let max = source()
                .query_one(&format!(
                    "SELECT MAX(updated_at) FROM `{}`.`{table}`",
                    self.db
                ))
                .await
                .expect("a max");
            let same = source()
                .query_one(&format!(
                    "SELECT CAST('{}' AS DATETIME(6)) = MAX(updated_at) FROM `{}`.`{table}`",
                    mark.value, self.db
                ))
                .await;
            assert_eq!(
                same.as_deref(),
                Some("1"),
                "{key}: watermark {} is not the source's MAX {max}",
                mark.value
            );
        }
    }

    pub async fn cleanup(&self) {
        let mut names = vec![self.db.clone(), self.target.clone()];
        let pattern = format!("{}\\_%", self.target);
        names.extend(
            self::names(
                &self.dest,
                &format!(
                    "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
                     WHERE SCHEMA_NAME LIKE '{pattern}'"
                ),
            )
            .await,
        );
        for name in names {
            let sql = format!("DROP DATABASE IF EXISTS `{name}`");
            source().exec(&[&sql]).await;
            self.dest.exec(&[&sql]).await;
        }
    }
}

pub async fn count(server: &Server, sql: &str) -> u64 {
    server
        .query_one(sql)
        .await
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no count from `{sql}`"))
}

pub async fn names(server: &Server, sql: &str) -> Vec<String> {
    let mut conn = server.conn().await;
    let rows: Vec<Option<String>> = conn.query(sql).await.expect("a query");
    let _ = conn.disconnect().await;
    rows.into_iter().flatten().collect()
}

/// Every row of a table, ordered by all its columns, each value as the server sent it (NULL
/// kept apart from every string).
async fn ordered_rows(server: &Server, db: &str, table: &str) -> Vec<Vec<SqlValue>> {
    let mut conn = server.conn().await;
    let columns: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
             AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .expect("the columns");
    assert!(
        !columns.is_empty(),
        "{db}.{table} is missing on {}",
        server.role
    );
    let order: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
    let rows: Vec<Row> = conn
        .query(format!(
            "SELECT * FROM `{db}`.`{table}` ORDER BY {}",
            order.join(", ")
        ))
        .await
        .expect("the rows");
    let _ = conn.disconnect().await;
    rows.into_iter().map(Row::unwrap).collect()
}

/// The destination's table holds exactly the source's rows: same values (NULL-safe), same
/// order, and no row more often than on the source.
pub async fn assert_same_rows(dst: &Server, src_db: &str, dst_db: &str, table: &str) {
    let src = source();
    let (a, b) = tokio::join!(
        ordered_rows(&src, src_db, table),
        ordered_rows(dst, dst_db, table)
    );
    let duplicates = |rows: &[Vec<SqlValue>]| rows.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(
        duplicates(&b),
        duplicates(&a),
        "{dst_db}.{table}: duplicate rows on the destination"
    );
    assert_eq!(
        a.len(),
        b.len(),
        "{dst_db}.{table}: {} rows on the destination, {} on the source",
        b.len(),
        a.len()
    );
    if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
        panic!(
            "{dst_db}.{table}: row {i} differs: source {:?}, destination {:?}",
            a[i], b[i]
        );
    }
}

pub async fn assert_no_working_tables(dst: &Server, dst_db: &str) {
    let left = names(
        dst,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{dst_db}' \
             ORDER BY 1"
        ),
    )
    .await;
    let working: Vec<&String> = left
        .iter()
        .filter(|n| tidemark_core::policy::is_working_table_name(n))
        .collect();
    assert!(
        working.is_empty(),
        "shadow or retired tables left in {dst_db}: {working:?}"
    );
}

async fn triggers(server: &Server, db: &str) -> Vec<String> {
    names(
        server,
        &format!(
            "SELECT CONCAT_WS('|', TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, \
             ACTION_TIMING, ACTION_STATEMENT) FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = '{db}' ORDER BY TRIGGER_NAME"
        ),
    )
    .await
}

pub async fn assert_same_triggers(dst: &Server, src_db: &str, dst_db: &str) {
    let (a, b) = (
        triggers(&source(), src_db).await,
        triggers(dst, dst_db).await,
    );
    assert!(!a.is_empty(), "the sample has a trigger");
    assert_eq!(b, a, "the triggers of {dst_db}");
}

pub async fn assert_same_views(dst: &Server, src_db: &str, dst_db: &str) {
    let sql = |db: &str| {
        format!(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{db}' ORDER BY 1"
        )
    };
    let (a, b) = (
        names(&source(), &sql(src_db)).await,
        names(dst, &sql(dst_db)).await,
    );
    assert_eq!(b, a, "the views of {dst_db}");
}

/// The chunk steps of a run, read from the data directory's state.
pub async fn chunk_steps(data_dir: &Path, task: &str, run: &str) -> Vec<StepRecord> {
    let store = SqliteStore::open(&data_dir.join("state.sqlite")).expect("the state");
    let key = RunKey {
        task_id: task.to_owned(),
        scheduled_time: run.parse().expect("a run id"),
    };
    store
        .list_steps(&key)
        .await
        .expect("the steps")
        .into_iter()
        .filter(|s| s.kind == StepKind::Chunk)
        .collect()
}

/// Sleeps until the next minute has begun (manual runs are keyed by the minute).
pub async fn next_minute() {
    let now = jiff::Timestamp::now();
    let into = now.as_millisecond().rem_euclid(60_000);
    tokio::time::sleep(Duration::from_millis((60_000 - into + 200) as u64)).await;
}
