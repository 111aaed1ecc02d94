//! Timestamp incremental: windows upserted, ties and late commits kept, nothing copied when
//! nothing changed, DATETIME in a non-UTC source zone, destination triggers not doubled.

use mysql_async::prelude::Queryable;
use tidemark_core::ports::StateStore;
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

    // Nothing changed: nothing copied, the watermark stays.
    let before = store
        .get_watermark("task-i", &format!("{db}.ev"))
        .await
        .expect("store")
        .expect("mark");
    let third = cycle(&store, "task-i", &spec, &src, "2026-12-03T02:30:00Z")
        .await
        .expect("third cycle");
    assert_eq!(rows_copied(&third), 0);
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
}
