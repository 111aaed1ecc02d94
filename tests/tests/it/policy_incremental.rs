//! Timestamp incremental: windows upserted, ties and late commits kept, nothing copied when
//! nothing changed, DATETIME in a non-UTC source zone, destination triggers not doubled.

use mysql_async::prelude::Queryable;
use tidemark_core::ports::StateStore;
use tidemark_engine::policy::incremental::window_probe;
use tidemark_local::SqliteStore;
use tidemark_tests::harness::{PrivateServer, Server, destination, source, unique_name};

use crate::policy_support::{count, cycle, rows_copied, rows_hash, spec};

fn objects(db: &str, target: &str) -> serde_json::Value {
    serde_json::json!([{ "database": db, "rename": target,
        "tables": [{ "name": "ev", "timestamp_column": "updated_at" }] }])
}

async fn make_source(server: &Server, db: &str, column_type: &str) {
    server
        .exec(&[
            &format!("CREATE DATABASE `{db}`"),
            &format!(
                "CREATE TABLE `{db}`.ev (id INT PRIMARY KEY, v INT NOT NULL, \
                 updated_at {column_type} NOT NULL, KEY ix_updated (updated_at))"
            ),
        ])
        .await;
}

#[tokio::test]
async fn changes_arrive_ties_are_neither_lost_nor_doubled_and_triggers_fire_once() {
    let db = unique_name("inc_src");
    let target = unique_name("inc");
    let src = source();
    make_source(&src, &db, "DATETIME(6)").await;
    // 100 rows all stamped with the same instant: the first watermark is that instant.
    src.exec(&[&format!(
        "INSERT INTO `{db}`.ev SELECT seq, 1, NOW(6) - INTERVAL 100 SECOND FROM `{db}`.seq_1_to_100"
    )])
    .await;
    let spec = spec(
        &src,
        serde_json::json!({"mode": "incremental", "lag_seconds": 2, "lookback_seconds": 0}),
        objects(&db, &target),
        "UTC",
    );
    let store = SqliteStore::in_memory().expect("store");
    let first = cycle(&store, "task-i", &spec, &src, "2026-12-01T02:30:00Z")
        .await
        .expect("first cycle");
    assert_eq!(rows_copied(&first), 100);
    let mark = store
        .get_watermark("task-i", &format!("{db}.ev"))
        .await
        .expect("store")
        .expect("a watermark after the first cycle");
    let tie = src
        .query_one(&format!(
            "SELECT CAST(MAX(updated_at) AS CHAR) FROM `{db}`.ev"
        ))
        .await
        .expect("max");
    assert_eq!(mark.value, tie, "the watermark keeps full precision");

    // A destination trigger counting inserts: copied rows must not fire it.
    destination()
        .exec(&[
            &format!("CREATE TABLE `{target}`.audit (n INT)"),
            &format!(
                "CREATE TRIGGER `{target}`.count_ins AFTER INSERT ON `{target}`.ev \
                 FOR EACH ROW INSERT INTO `{target}`.audit VALUES (NEW.id)"
            ),
        ])
        .await;

    // An insert tied with the watermark, an update, an insert.
    src.exec(&[
        &format!("INSERT INTO `{db}`.ev VALUES (101, 1, '{tie}')"),
        &format!(
            "UPDATE `{db}`.ev SET v = 999, updated_at = NOW(6) - INTERVAL 50 SECOND WHERE id = 5"
        ),
        &format!("INSERT INTO `{db}`.ev VALUES (102, 7, NOW(6) - INTERVAL 50 SECOND)"),
    ])
    .await;
    let second = cycle(&store, "task-i", &spec, &src, "2026-12-02T02:30:00Z")
        .await
        .expect("second cycle");
    assert_eq!(
        rows_hash(&destination(), &target, "ev", "id, v, updated_at").await,
        rows_hash(&src, &db, "ev", "id, v, updated_at").await
    );
    assert_eq!(
        count(
            &destination(),
            &format!("SELECT COUNT(*) FROM `{target}`.ev")
        )
        .await,
        102
    );
    // Window [tie, high]: the tied rows are read again (101 of them) plus ids 5 and 102.
    assert_eq!(rows_copied(&second), 101 + 1);
    assert_eq!(
        count(
            &destination(),
            &format!("SELECT COUNT(*) FROM `{target}`.audit")
        )
        .await,
        0,
        "the destination trigger fired for copied rows"
    );
    // The trigger is back and works.
    destination()
        .exec(&[&format!(
            "INSERT INTO `{target}`.ev VALUES (9999, 0, NOW())"
        )])
        .await;
    assert_eq!(
        count(
            &destination(),
            &format!("SELECT COUNT(*) FROM `{target}`.audit")
        )
        .await,
        1
    );
    destination()
        .exec(&[
            &format!("DELETE FROM `{target}`.ev WHERE id = 9999"),
            &format!("DELETE FROM `{target}`.audit"),
        ])
        .await;

    // Nothing changed: with no lookback only the rows tied with the watermark are read again,
    // and the watermark stays.
    let before = store
        .get_watermark("task-i", &format!("{db}.ev"))
        .await
        .expect("store")
        .expect("mark");
    let tied = count(
        &src,
        &format!(
            "SELECT COUNT(*) FROM `{db}`.ev WHERE updated_at = '{}'",
            before.value
        ),
    )
    .await;
    assert!(tied >= 1, "the watermark is the newest row's stamp");
    let third = cycle(&store, "task-i", &spec, &src, "2026-12-03T02:30:00Z")
        .await
        .expect("third cycle");
    assert_eq!(rows_copied(&third), tied);
    let after = store
        .get_watermark("task-i", &format!("{db}.ev"))
        .await
        .expect("store")
        .expect("mark");
    assert_eq!(before.value, after.value);

    // A transaction that commits late with a timestamp inside the lag window is not lost.
    let mut late = src.conn().await;
    late.query_drop("START TRANSACTION").await.expect("begin");
    late.query_drop(format!(
        "INSERT INTO `{db}`.ev VALUES (103, 3, NOW(6) - INTERVAL 1.5 SECOND)"
    ))
    .await
    .expect("late insert");
    src.exec(&[&format!(
        "INSERT INTO `{db}`.ev VALUES (104, 4, NOW(6) - INTERVAL 1 SECOND)"
    )])
    .await;
    cycle(&store, "task-i", &spec, &src, "2026-12-04T02:30:00Z")
        .await
        .expect("fourth cycle");
    late.query_drop("COMMIT").await.expect("commit");
    drop(late);
    // The database's own clock must pass the lag: a short real wait, not a scheduled time.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    cycle(&store, "task-i", &spec, &src, "2026-12-05T02:30:00Z")
        .await
        .expect("fifth cycle");
    assert_eq!(
        count(
            &destination(),
            &format!("SELECT COUNT(*) FROM `{target}`.ev WHERE id IN (103, 104)")
        )
        .await,
        2,
        "the late-committed row was lost"
    );
    // Deletes are not carried (documented).
    src.exec(&[&format!("DELETE FROM `{db}`.ev WHERE id = 1")])
        .await;

    destination()
        .exec(&[&format!("DROP DATABASE `{target}`")])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

#[tokio::test]
async fn a_column_added_on_the_source_fails_the_run_naming_it_and_the_fix() {
    let db = unique_name("incc_src");
    let target = unique_name("incc");
    let src = source();
    make_source(&src, &db, "TIMESTAMP(3)").await;
    src.exec(&[&format!(
        "INSERT INTO `{db}`.ev VALUES (1, 1, NOW(3) - INTERVAL 60 SECOND)"
    )])
    .await;
    let spec = spec(
        &src,
        serde_json::json!({"mode": "incremental", "lag_seconds": 1}),
        objects(&db, &target),
        "UTC",
    );
    let store = SqliteStore::in_memory().expect("store");
    cycle(&store, "task-c", &spec, &src, "2026-12-01T02:30:00Z")
        .await
        .expect("first cycle");
    src.exec(&[
        &format!("ALTER TABLE `{db}`.ev ADD COLUMN extra INT"),
        &format!("INSERT INTO `{db}`.ev VALUES (2, 2, NOW(3) - INTERVAL 30 SECOND, 5)"),
    ])
    .await;
    let err = cycle(&store, "task-c", &spec, &src, "2026-12-02T02:30:00Z")
        .await
        .expect_err("a new column must fail the run");
    let text = err.to_string();
    assert!(text.contains("`extra`") && text.contains("added"), "{text}");
    assert!(
        text.contains(&format!("Drop the destination table `{target}`.`ev`")),
        "{text}"
    );
    // The fix works: drop the destination table, the next cycle reloads it in full.
    destination()
        .exec(&[&format!("DROP TABLE `{target}`.ev")])
        .await;
    cycle(&store, "task-c", &spec, &src, "2026-12-03T02:30:00Z")
        .await
        .expect("reload");
    assert_eq!(
        rows_hash(&destination(), &target, "ev", "id, v, updated_at, extra").await,
        rows_hash(&src, &db, "ev", "id, v, updated_at, extra").await
    );
    destination()
        .exec(&[&format!("DROP DATABASE `{target}`")])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

/// The watermark of `task` for `db`.ev.
async fn watermark(store: &SqliteStore, task: &str, db: &str) -> String {
    store
        .get_watermark(task, &format!("{db}.ev"))
        .await
        .expect("store")
        .expect("a watermark")
        .value
}

/// A quiet table, then a row committed late, stamped ten minutes before the watermark: the next
/// cycle reads the lookback window although nothing is newer, and the row arrives. The rows are
/// stamped by the server's own `NOW()`, in the zone its writers use.
async fn late_row_arrives_on_a_quiet_table(src: &Server, column_type: &str, task: &str) {
    let db = unique_name("incl_src");
    let target = unique_name("incl");
    make_source(src, &db, column_type).await;
    src.exec(&[&format!(
        "INSERT INTO `{db}`.ev SELECT seq, 1, NOW() - INTERVAL seq SECOND \
         FROM `{db}`.seq_1_to_500"
    )])
    .await;
    let spec = spec(
        src,
        serde_json::json!({"mode": "incremental", "lag_seconds": 0, "lookback_seconds": 3600}),
        objects(&db, &target),
        "UTC",
    );
    let store = SqliteStore::in_memory().expect("store");
    let first = cycle(&store, task, &spec, src, "2026-12-01T02:30:00Z")
        .await
        .expect("first cycle");
    assert_eq!(rows_copied(&first), 500);
    let mark = watermark(&store, task, &db).await;
    // In UTC: a TIMESTAMP watermark is UTC text (a DATETIME is converted by no zone).
    src.exec(&[
        "SET time_zone = '+00:00'",
        &format!("INSERT INTO `{db}`.ev VALUES (501, 7, '{mark}' - INTERVAL 10 MINUTE)"),
    ])
    .await;
    let second = cycle(&store, task, &spec, src, "2026-12-02T02:30:00Z")
        .await
        .expect("second cycle");
    let dest_rows = count(
        &destination(),
        &format!("SELECT COUNT(*) FROM `{target}`.ev"),
    )
    .await;
    assert_eq!(dest_rows, 501, "the late row was lost ({column_type})");
    // The whole lookback window was upserted again: the 500 rows and the late one.
    assert_eq!(rows_copied(&second), 501);
    assert_eq!(
        rows_hash(&destination(), &target, "ev", "id, v, updated_at").await,
        rows_hash(src, &db, "ev", "id, v, updated_at").await
    );
    assert_eq!(watermark(&store, task, &db).await, mark);
    destination()
        .exec(&[&format!("DROP DATABASE `{target}`")])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

#[tokio::test]
async fn a_late_row_on_a_quiet_timestamp_table_arrives_within_the_lookback() {
    late_row_arrives_on_a_quiet_table(&source(), "TIMESTAMP(6)", "task-late-ts").await;
}

#[tokio::test]
async fn the_watermark_never_moves_back_and_an_empty_window_is_one_index_read() {
    let db = unique_name("incb_src");
    let target = unique_name("incb");
    let src = source();
    make_source(&src, &db, "DATETIME(6)").await;
    // Old rows, outside any lookback; then id 101 a minute ago and id 102 ten seconds ago.
    src.exec(&[
        &format!(
            "INSERT INTO `{db}`.ev SELECT seq, 1, NOW(6) - INTERVAL 2 HOUR \
             FROM `{db}`.seq_1_to_100"
        ),
        &format!("INSERT INTO `{db}`.ev VALUES (101, 1, NOW(6) - INTERVAL 60 SECOND)"),
        &format!("INSERT INTO `{db}`.ev VALUES (102, 1, NOW(6) - INTERVAL 10 SECOND)"),
    ])
    .await;
    let spec = spec(
        &src,
        serde_json::json!({"mode": "incremental", "lag_seconds": 0, "lookback_seconds": 600}),
        objects(&db, &target),
        "UTC",
    );
    let store = SqliteStore::in_memory().expect("store");
    cycle(&store, "task-b", &spec, &src, "2026-12-01T02:30:00Z")
        .await
        .expect("first cycle");
    let mark = watermark(&store, "task-b", &db).await;

    // The newest row is deleted: its successor (id 101) is in the lookback and read again, but
    // the watermark stays where it was.
    src.exec(&[&format!("DELETE FROM `{db}`.ev WHERE id = 102")])
        .await;
    let second = cycle(&store, "task-b", &spec, &src, "2026-12-02T02:30:00Z")
        .await
        .expect("second cycle");
    assert_eq!(rows_copied(&second), 1, "id 101, inside the lookback");
    assert_eq!(
        watermark(&store, "task-b", &db).await,
        mark,
        "the watermark moved back to the newest remaining row"
    );

    // Nothing at all in the window: the table is skipped after one range read of its index.
    src.exec(&[&format!("DELETE FROM `{db}`.ev WHERE id = 101")])
        .await;
    let third = cycle(&store, "task-b", &spec, &src, "2026-12-03T02:30:00Z")
        .await
        .expect("third cycle");
    assert_eq!(rows_copied(&third), 0);
    assert_eq!(watermark(&store, "task-b", &db).await, mark);
    let window = &third.run.plan["windows"][0];
    assert_eq!(window["unchanged"], true, "{window}");
    let (low, high) = (
        window["low"].as_str().expect("low"),
        window["high"].as_str().expect("high"),
    );
    assert_eq!(high, mark);
    let probe = window_probe(&db, "ev", "updated_at", Some(low), high);
    let mut conn = src.conn().await;
    let plan: Vec<mysql_async::Row> = conn
        .query(format!(
            "EXPLAIN {}",
            String::from_utf8(probe).expect("utf-8")
        ))
        .await
        .expect("explain");
    assert_eq!(plan.len(), 1, "one table read");
    let column = |name: &str| -> String {
        plan[0]
            .get_opt::<Option<String>, &str>(name)
            .and_then(Result::ok)
            .flatten()
            .unwrap_or_default()
    };
    assert_eq!(column("type"), "range", "a scan, not a range read");
    assert_eq!(column("key"), "ix_updated");
    drop(conn);
    destination()
        .exec(&[&format!("DROP DATABASE `{target}`")])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

#[tokio::test]
async fn datetime_windows_use_the_source_servers_zone() {
    let private = PrivateServer::start("inc_tz", &["--default-time-zone=Asia/Shanghai"]);
    let src = private.server.clone();
    let db = unique_name("inctz_src");
    let target = unique_name("inctz");
    make_source(&src, &db, "DATETIME").await;
    // Writers stamp rows with the server's NOW(): Shanghai time.
    src.exec(&[&format!(
        "INSERT INTO `{db}`.ev VALUES (1, 1, NOW() - INTERVAL 60 SECOND)"
    )])
    .await;
    let spec = spec(
        &src,
        serde_json::json!({"mode": "incremental", "lag_seconds": 5}),
        objects(&db, &target),
        "UTC",
    );
    let store = SqliteStore::in_memory().expect("store");
    cycle(&store, "task-z", &spec, &src, "2026-12-01T02:30:00Z")
        .await
        .expect("first cycle");
    src.exec(&[&format!(
        "INSERT INTO `{db}`.ev VALUES (2, 2, NOW() - INTERVAL 30 SECOND)"
    )])
    .await;
    let second = cycle(&store, "task-z", &spec, &src, "2026-12-02T02:30:00Z")
        .await
        .expect("second cycle");
    // Taken in UTC, NOW(6) - lag would be eight hours before every row: nothing would arrive.
    // Here: row 1 (tied with the watermark, read again) and row 2.
    assert_eq!(rows_copied(&second), 2);
    assert_eq!(
        rows_hash(&destination(), &target, "ev", "id, v, updated_at").await,
        rows_hash(&src, &db, "ev", "id, v, updated_at").await
    );
    destination()
        .exec(&[&format!("DROP DATABASE `{target}`")])
        .await;
    // A late row on a quiet DATETIME table, stamped in the server's zone.
    late_row_arrives_on_a_quiet_table(&src, "DATETIME(6)", "task-late-dt").await;
}
