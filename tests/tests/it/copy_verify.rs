//! Verification catches what it claims to, and nothing else; a chunk killed mid-load and retried
//! leaves no duplicate and no hole.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::Value;
use mysql_async::prelude::Queryable;
use tidemark_engine::CopyError;
use tidemark_engine::copy::{
    ChunkOptions, CopyOptions, TableCopySpec, TablePlan, WriteMethod, copy_chunk, copy_tables,
    plan_table, verify_chunk,
};
use tidemark_tests::harness::{destination, source, unique_name};

use crate::copy_support::{assert_same, copy, create_both, endpoints, fill_source, options};

/// `t (id INT PRIMARY KEY, pad VARCHAR(250))` in a new database (named after `tag`) on both
/// sides, with rows 1..=`rows` on the source, `pad` = `pad_sql` (over `seq`); the database.
async fn table_t(tag: &str, pad_sql: &str, rows: u32) -> String {
    let db = unique_name(tag);
    create_both(
        &source(),
        &destination(),
        &db,
        &["CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(250))"],
    )
    .await;
    fill_source(
        &source(),
        &db,
        &[&format!(
            "INSERT INTO t SELECT seq, {pad_sql} FROM seq_1_to_{rows}"
        )],
    )
    .await;
    db
}

/// The plan's chunk that holds `id`.
fn chunk_of(plan: &TablePlan, id: i64) -> &tidemark_engine::copy::Chunk {
    plan.chunks
        .iter()
        .find(|c| {
            let above =
                c.range.lower.as_ref().is_none_or(|l| {
                    String::from_utf8_lossy(&l.0[0].0).parse::<i64>().unwrap() < id
                });
            let below =
                c.range.upper.as_ref().is_none_or(|u| {
                    String::from_utf8_lossy(&u.0[0].0).parse::<i64>().unwrap() >= id
                });
            above && below
        })
        .expect("a chunk holds the id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_catches_a_null_turned_empty_a_float_bit_and_a_missing_row() {
    let (source, dest) = (source(), destination());
    let db = unique_name("copy_verify");
    create_both(
        &source,
        &dest,
        &db,
        &["CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20), f FLOAT, d DOUBLE)"],
    )
    .await;
    fill_source(
        &source,
        &db,
        &[
            "INSERT INTO t SELECT seq, IF(seq % 3 = 0, NULL, CONCAT('s', seq)), seq / 7, seq / 13 \
           FROM seq_1_to_3000",
        ],
    )
    .await;
    let engine = endpoints(&source, &dest, 2).await;
    let plan = plan_table(&engine, &TableCopySpec::same_names(&db, "t"), 16 * 1024)
        .await
        .expect("plan");
    assert!(plan.chunks.len() > 3);
    copy(&engine, &db, &["t"], 16 * 1024, options(2, true)).await;
    for chunk in &plan.chunks {
        verify_chunk(&engine, &plan.shape, chunk)
            .await
            .expect("a faithful copy verifies");
    }

    let mut dst = dest.conn().await;
    let f_bits: Option<f32> = dst
        .exec_first(format!("SELECT f FROM `{db}`.t WHERE id = 1500"), ())
        .await
        .expect("read f");
    let next_float = f32::from_bits(f_bits.expect("f").to_bits() + 1);
    let injections: [(&str, i64, String, Vec<Value>); 3] = [
        (
            "a NULL turned into ''",
            300,
            format!("UPDATE `{db}`.t SET s = '' WHERE id = 300"),
            vec![],
        ),
        (
            "a FLOAT's last bit",
            1500,
            format!("UPDATE `{db}`.t SET f = ? WHERE id = 1500"),
            vec![Value::Float(next_float)],
        ),
        (
            "a removed row",
            2999,
            format!("DELETE FROM `{db}`.t WHERE id = 2999"),
            vec![],
        ),
    ];
    for (what, id, sql, params) in injections {
        let chunk = chunk_of(&plan, id);
        dst.exec_drop(sql, params).await.expect("inject");
        assert_eq!(
            dst.affected_rows(),
            1,
            "{what}: the injection changed nothing"
        );
        let err = verify_chunk(&engine, &plan.shape, chunk)
            .await
            .expect_err(&format!("{what} was not caught"));
        assert!(
            matches!(err, CopyError::VerifyMismatch { .. }),
            "{what}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("`{db}`.`t` chunk {}", chunk.index)),
            "{message}"
        );
        assert!(message.contains("key"), "{message}");
        // Copying the chunk again repairs it: it clears its range and reloads it.
        copy_chunk(
            &engine,
            &plan.shape,
            chunk,
            &ChunkOptions::default(),
            &|_| {},
        )
        .await
        .expect("recopy");
        verify_chunk(&engine, &plan.shape, chunk)
            .await
            .unwrap_or_else(|e| panic!("{what}: after the recopy: {e}"));
    }
    assert_same(&source, &dest, &db, "t", "id").await;
}

/// The copy's own check (the client's digest of the rows it streamed against the destination's
/// query after the load) fails a chunk whose stored rows differ from what was read: a trigger on
/// the destination alters one value as it is loaded. The chunk rolls back and leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_altered_during_the_load_fails_the_chunk_and_leaves_nothing() {
    let (source, dest) = (source(), destination());
    let db = unique_name("copy_alter");
    create_both(
        &source,
        &dest,
        &db,
        &["CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20), f FLOAT, b VARBINARY(8))"],
    )
    .await;
    fill_source(
        &source,
        &db,
        &[
            "INSERT INTO t SELECT seq, IF(seq % 3 = 0, NULL, CONCAT('s', seq)), seq / 7, \
           IF(seq % 5 = 0, NULL, UNHEX(HEX(seq))) FROM seq_1_to_3000",
        ],
    )
    .await;
    let engine = endpoints(&source, &dest, 2).await;
    let plan = plan_table(&engine, &TableCopySpec::same_names(&db, "t"), 16 * 1024)
        .await
        .expect("plan");
    let alterations = [
        ("a NULL turned into ''", 300, "SET NEW.s = ''"),
        ("a FLOAT's last bits", 1500, "SET NEW.f = NEW.f * 1.0000001"),
        (
            "one byte of a binary value",
            1501,
            "SET NEW.b = CONCAT(NEW.b, 'x')",
        ),
        ("a value turned NULL", 1502, "SET NEW.s = NULL"),
    ];
    for (what, id, set) in alterations {
        let chunk = chunk_of(&plan, id);
        dest.exec(&[&format!(
            "CREATE TRIGGER `{db}`.alter_one BEFORE INSERT ON `{db}`.t FOR EACH ROW \
             IF NEW.id = {id} THEN {set}; END IF"
        )])
        .await;
        let err = copy_chunk(
            &engine,
            &plan.shape,
            chunk,
            &ChunkOptions::default(),
            &|_| {},
        )
        .await
        .expect_err(&format!("{what} was not caught"));
        assert!(
            matches!(err, CopyError::VerifyMismatch { .. }),
            "{what}: {err}"
        );
        let left = dest
            .query_one(&format!("SELECT COUNT(*) FROM `{db}`.t"))
            .await;
        assert_eq!(
            left.as_deref(),
            Some("0"),
            "{what}: the chunk was not rolled back"
        );
        dest.exec(&[&format!("DROP TRIGGER `{db}`.alter_one")])
            .await;
    }
    copy(&engine, &db, &["t"], 16 * 1024, options(2, true)).await;
    assert_same(&source, &dest, &db, "t", "id").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_the_source_during_the_copy_cause_no_false_mismatch() {
    let (source, dest) = (source(), destination());
    let db = unique_name("copy_busy");
    create_both(
        &source,
        &dest,
        &db,
        &["CREATE TABLE t (id INT PRIMARY KEY, v INT, f FLOAT, s VARCHAR(100))"],
    )
    .await;
    fill_source(
        &source,
        &db,
        &["INSERT INTO t SELECT seq, seq, seq / 3, REPEAT('w', seq % 90) FROM seq_1_to_60000"],
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, writes, source, db) = (
            Arc::clone(&stop),
            Arc::clone(&writes),
            source.clone(),
            db.clone(),
        );
        tokio::spawn(async move {
            let mut conn = source.conn().await;
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = 1 + (n * 7919) % 60000;
                let sql = format!(
                    "UPDATE `{db}`.t SET v = v + 1, f = f * 1.5, s = NULL WHERE id = {id}; \
                     DELETE FROM `{db}`.t WHERE id = {}; \
                     INSERT INTO `{db}`.t VALUES ({}, 1, 0.1, 'new')",
                    id + 1,
                    100_000 + n
                );
                conn.query_drop(sql).await.expect("concurrent write");
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let engine = endpoints(&source, &dest, 2).await;
    let (reports, _) = copy(&engine, &db, &["t"], 64 * 1024, options(2, true)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    assert!(reports[0].chunks > 10, "{:?}", reports[0]);
    assert!(
        writes.load(Ordering::Relaxed) > 5,
        "the writer barely ran ({} writes): the test proves nothing",
        writes.load(Ordering::Relaxed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_killed_mid_load_then_retried_leaves_no_duplicate_and_no_hole() {
    // MariaDB's default writer (bulk executions), then LOAD DATA (MySQL's).
    killed_then_retried(None).await;
    killed_then_retried(Some(WriteMethod::LoadData)).await;
}

async fn killed_then_retried(method: Option<WriteMethod>) {
    let (source, dest) = (source(), destination());
    let db = table_t("copy_kill", "REPEAT(CHAR(65 + seq % 26), 200)", 300_000).await;
    // A stale row inside the range, as a crashed earlier attempt might have left.
    dest.exec(&[&format!("INSERT INTO `{db}`.t VALUES (5, 'stale')")])
        .await;
    let engine = endpoints(&source, &dest, 1).await;
    let plan = plan_table(&engine, &TableCopySpec::same_names(&db, "t"), 1 << 30)
        .await
        .expect("plan");
    assert_eq!(plan.chunks.len(), 1);
    let chunk = plan.chunks[0].clone();

    // Kill the destination session as soon as its load is running.
    let killer = kill_first_load(&dest, &db, Duration::from_millis(30));
    let options = ChunkOptions {
        method,
        ..ChunkOptions::default()
    };
    let first = copy_chunk(&engine, &plan.shape, &chunk, &options, &|_| {}).await;
    assert!(
        killer.await.expect("killer"),
        "the load ({method:?}) was never seen running"
    );
    let err = first.expect_err("a killed load succeeded");
    assert!(
        err.is_retryable(),
        "a killed session should be retryable: {err}"
    );
    // Nothing of the killed attempt is visible; the stale row is still there.
    let count = format!("SELECT COUNT(*) FROM `{db}`.t");
    assert_eq!(dest.query_one(&count).await.as_deref(), Some("1"));

    let report = copy_chunk(&engine, &plan.shape, &chunk, &options, &|_| {})
        .await
        .expect("the retry");
    assert_eq!(report.rows, 300_000);
    assert_eq!(report.method, method.unwrap_or(WriteMethod::Bulk));
    // And once more, as a duplicate delivery would.
    copy_chunk(&engine, &plan.shape, &chunk, &options, &|_| {})
        .await
        .expect("the duplicate");
    assert_eq!(dest.query_one(&count).await.as_deref(), Some("300000"));
    assert_same(&source, &dest, &db, "t", "id").await;
}

/// A chunk whose range is empty on the destination does not wait for another writer's
/// uncommitted row just past its end — as a parallel chunk's load leaves it. (A DELETE of the
/// range would: it locks the first row after the range, and waits until `innodb_lock_wait_timeout`
/// for the other transaction to end.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_does_not_wait_for_the_next_chunks_uncommitted_rows() {
    let (source, dest) = (source(), destination());
    let db = table_t("copy_nowait", "REPEAT('n', 200)", 4000).await;
    let engine = endpoints(&source, &dest, 2).await;
    let plan = plan_table(&engine, &TableCopySpec::same_names(&db, "t"), 256 * 1024)
        .await
        .expect("plan");
    assert!(plan.chunks.len() > 1, "{} chunks", plan.chunks.len());
    let first = plan.chunks[0].clone();
    let end: i64 = first
        .range
        .upper
        .as_ref()
        .map(|u| String::from_utf8_lossy(&u.0[0].0).parse().expect("an int"))
        .expect("an upper bound");
    // The next chunk's writer: its first row stored, not committed.
    let mut next = dest.conn().await;
    next.query_drop("BEGIN").await.expect("begin");
    next.query_drop(format!("INSERT INTO `{db}`.t VALUES ({}, 'next')", end + 1))
        .await
        .expect("the next chunk's row");
    let copied = tokio::time::timeout(
        Duration::from_secs(30),
        copy_chunk(
            &engine,
            &plan.shape,
            &first,
            &ChunkOptions::default(),
            &|_| {},
        ),
    )
    .await
    .expect("the chunk waited for the other transaction's row")
    .expect("the chunk");
    assert_eq!(copied.rows, u64::try_from(end).expect("rows"));
    next.query_drop("ROLLBACK").await.expect("rollback");
    let _ = next.disconnect().await;
    let count = format!("SELECT COUNT(*) FROM `{db}`.t");
    assert_eq!(dest.query_one(&count).await, Some(end.to_string()));
}

#[tokio::test]
async fn the_runner_retries_a_killed_chunk_to_an_exact_copy() {
    let (source, dest) = (source(), destination());
    let db = table_t("copy_retry", "REPEAT(CHAR(65 + seq % 26), 200)", 200_000).await;
    let engine = endpoints(&source, &dest, 2).await;
    // Small chunks, so several loads run and one of them is killed.
    let plan = plan_table(&engine, &TableCopySpec::same_names(&db, "t"), 4 << 20)
        .await
        .expect("plan");
    assert!(plan.chunks.len() >= 3, "{} chunks", plan.chunks.len());
    let killer = kill_first_load(&dest, &db, Duration::from_millis(20));
    let reports = copy_tables(
        Arc::clone(&engine),
        Arc::new(vec![plan]),
        CopyOptions {
            workers: 2,
            verify: true,
            method: None,
            retry: tidemark_engine::retry::CHUNK_RETRY,
        },
        Arc::new(|_| {}),
    )
    .await
    .expect("the runner retried the killed chunk");
    assert!(killer.await.expect("killer"), "no load was seen running");
    assert_eq!(reports[0].rows, 200_000);
    let count = format!("SELECT COUNT(*) FROM `{db}`.t");
    assert_eq!(dest.query_one(&count).await.as_deref(), Some("200000"));
    assert_same(&source, &dest, &db, "t", "id").await;
}

/// Watches the destination's process list and kills the first load (a LOAD DATA, or the bulk
/// INSERT) into `db`, `after` it was seen running; the task answers whether it found one (within
/// about 8 s).
fn kill_first_load(
    dest: &tidemark_tests::harness::Server,
    db: &str,
    after: Duration,
) -> tokio::task::JoinHandle<bool> {
    let (dest, db) = (dest.clone(), db.to_owned());
    tokio::spawn(async move {
        let mut admin = dest.conn().await;
        for _ in 0..4000 {
            // A LOAD DATA, or the bulk executions of the prepared INSERT.
            let id: Option<u64> = admin
                .exec_first(
                    "SELECT ID FROM information_schema.PROCESSLIST \
                     WHERE (INFO LIKE 'LOAD DATA%' OR INFO LIKE 'INSERT INTO%') \
                     AND INFO LIKE CONCAT('%', ?, '%')",
                    (db.as_str(),),
                )
                .await
                .expect("processlist");
            if let Some(id) = id {
                tokio::time::sleep(after).await;
                admin.query_drop(format!("KILL {id}")).await.expect("kill");
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    })
}
