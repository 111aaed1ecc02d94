//! Resync: shadows and one atomic swap; readers never see the table missing or half loaded, and
//! a failed run leaves the previous copy and no shadow behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mysql_async::prelude::Queryable;
use tidemark_core::state::RunPhase;
use tidemark_local::SqliteStore;
use tidemark_service::CycleEvent;
use tidemark_tests::harness::{destination, source, unique_name};

use crate::policy_support::{count, cycle, cycle_with, rows_hash, spec};

async fn working_tables(db: &str) -> u64 {
    count(
        &destination(),
        &format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_NAME LIKE '\\_tm\\_%'"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_the_old_table_or_the_new_one_never_missing_or_half_loaded() {
    let db = unique_name("rs_src");
    let target = unique_name("rs");
    let src = source();
    src.exec(&[
        &format!("CREATE DATABASE `{db}`"),
        &format!(
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(200), KEY ix_v (v))"
        ),
        &format!(
            "INSERT INTO `{db}`.t SELECT seq, 1, REPEAT('p', 200) FROM `{db}`.seq_1_to_20000"
        ),
        &format!(
            "CREATE TRIGGER `{db}`.tr BEFORE INSERT ON `{db}`.t FOR EACH ROW SET NEW.v = NEW.v"
        ),
    ])
    .await;
    let spec = spec(
        &src,
        serde_json::json!({"mode": "resync"}),
        serde_json::json!([{ "database": db, "rename": target }]),
        "UTC",
    );
    let store = SqliteStore::in_memory().expect("store");
    cycle(&store, "task-s", &spec, &src, "2026-12-01T02:30:00Z")
        .await
        .expect("first cycle");
    assert_eq!(
        rows_hash(&destination(), &target, "t", "id, v").await,
        rows_hash(&src, &db, "t", "id, v").await
    );

    // The next state: more rows, every v = 2.
    src.exec(&[
        &format!("UPDATE `{db}`.t SET v = 2"),
        &format!(
            "INSERT INTO `{db}`.t SELECT seq, 2, REPEAT('q', 200) FROM `{db}`.seq_20001_to_30000"
        ),
    ])
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let reader_stop = Arc::clone(&stop);
    let reader_target = target.clone();
    let reader = tokio::spawn(async move {
        let mut conn = destination().conn().await;
        let mut seen: Vec<(u64, i64, i64)> = Vec::new();
        let sql = format!("SELECT COUNT(*), MIN(v), MAX(v) FROM `{reader_target}`.t");
        while !reader_stop.load(Ordering::SeqCst) {
            match conn.query_first::<(u64, i64, i64), _>(&sql).await {
                Ok(Some(row)) => {
                    if seen.last() != Some(&row) {
                        seen.push(row);
                    }
                }
                Ok(None) => return Err("no row".to_owned()),
                Err(e) => return Err(format!("the reader failed: {e}")),
            }
        }
        Ok(seen)
    });
    let report = cycle(&store, "task-s", &spec, &src, "2026-12-02T02:30:00Z").await;
    // A few more reads after the swap.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    report.expect("second cycle");
    let seen = reader.await.expect("reader task").expect("reader");
    assert!(
        seen.iter()
            .all(|s| *s == (20000, 1, 1) || *s == (30000, 2, 2)),
        "a reader saw a half-loaded table: {seen:?}"
    );
    assert_eq!(seen.first(), Some(&(20000, 1, 1)), "{seen:?}");
    assert_eq!(seen.last(), Some(&(30000, 2, 2)), "{seen:?}");
    assert_eq!(
        rows_hash(&destination(), &target, "t", "id, v, pad").await,
        rows_hash(&src, &db, "t", "id, v, pad").await
    );
    assert_eq!(working_tables(&target).await, 0);
    // The secondary index and the trigger are back on the live table.
    assert_eq!(
        count(&destination(), &format!("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{target}' AND TABLE_NAME = 't' AND INDEX_NAME = 'ix_v'")).await,
        1
    );
    assert_eq!(
        count(&destination(), &format!("SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{target}' AND EVENT_OBJECT_TABLE = 't'")).await,
        1
    );
    destination()
        .exec(&[&format!("DROP DATABASE `{target}`")])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_failed_mid_load_leaves_the_previous_copy_and_no_shadows() {
    let db = unique_name("rsf_src");
    let target = unique_name("rsf");
    let src = source();
    src.exec(&[
        &format!("CREATE DATABASE `{db}`"),
        &format!("CREATE TABLE `{db}`.a (id INT PRIMARY KEY, v INT)"),
        &format!("CREATE TABLE `{db}`.b (id INT PRIMARY KEY, a_id INT, FOREIGN KEY fk_a (a_id) REFERENCES `{db}`.a (id))"),
        &format!("INSERT INTO `{db}`.a SELECT seq, 1 FROM `{db}`.seq_1_to_500"),
        &format!("INSERT INTO `{db}`.b SELECT seq, seq FROM `{db}`.seq_1_to_500"),
    ])
    .await;
    let spec = spec(
        &src,
        serde_json::json!({"mode": "resync"}),
        serde_json::json!([{ "database": db, "rename": target }]),
        "UTC",
    );
    let store = SqliteStore::in_memory().expect("store");
    cycle(&store, "task-sf", &spec, &src, "2026-12-01T02:30:00Z")
        .await
        .expect("first cycle");
    let before_a = rows_hash(&destination(), &target, "a", "id, v").await;
    let before_b = rows_hash(&destination(), &target, "b", "id, a_id").await;
    assert_eq!(before_a, rows_hash(&src, &db, "a", "id, v").await);

    src.exec(&[&format!("UPDATE `{db}`.a SET v = 2")]).await;
    // Table b disappears from the source once the shadows exist and the copy begins.
    let (s, d) = (src.clone(), db.clone());
    let hook = Arc::new(move |event: CycleEvent| {
        if event == CycleEvent::Phase(RunPhase::Copying) {
            let (s, d) = (s.clone(), d.clone());
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(s.exec(&[
                        "SET SESSION foreign_key_checks = 0",
                        &format!("DROP TABLE `{d}`.b"),
                    ]))
            })
            .join()
            .expect("hook thread");
        }
    });
    let err = cycle_with(&store, "task-sf", &spec, &src, "2026-12-02T02:30:00Z", hook)
        .await
        .expect_err("the run must fail");
    assert!(err.to_string().contains('b'), "{err}");
    assert_eq!(
        rows_hash(&destination(), &target, "a", "id, v").await,
        before_a
    );
    assert_eq!(
        rows_hash(&destination(), &target, "b", "id, a_id").await,
        before_b
    );
    assert_eq!(working_tables(&target).await, 0, "shadow leftovers");
    destination()
        .exec(&[
            "SET SESSION foreign_key_checks = 0",
            &format!("DROP DATABASE `{target}`"),
        ])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

/// Every index of a schema as one string (table, index, position, column, uniqueness, type).
async fn index_list(server: &tidemark_tests::harness::Server, db: &str) -> String {
    server
        .query_one(&format!(
            "SELECT GROUP_CONCAT(CONCAT_WS(':', TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, \
             NON_UNIQUE, INDEX_TYPE) ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX SEPARATOR ' ') \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{db}'"
        ))
        .await
        .unwrap_or_default()
}

#[tokio::test]
async fn many_tables_have_their_indexes_built_side_by_side_exactly_as_the_source_has_them() {
    let db = unique_name("rs_idx_src");
    let target = unique_name("rs_idx");
    let src = source();
    let mut setup = vec![format!("CREATE DATABASE `{db}`")];
    for t in 0..6 {
        setup.push(format!(
            "CREATE TABLE `{db}`.t{t} (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(40), \
             body TEXT, KEY ix_a (a), UNIQUE KEY ux_b (b), KEY ix_ab (a, b(10)), \
             FULLTEXT KEY ft_body (body), FULLTEXT KEY ft_b_body (b, body))"
        ));
        setup.push(format!(
            "INSERT INTO `{db}`.t{t} SELECT seq, seq % 13, CONCAT('b', seq), \
             CONCAT('word', seq % 50, ' other', seq) FROM `{db}`.seq_1_to_3000"
        ));
    }
    // A foreign key needs the referenced table's index: foreign keys come after every build.
    setup.push(format!(
        "CREATE TABLE `{db}`.child (id INT PRIMARY KEY, t0_b VARCHAR(40), KEY ix_t0_b (t0_b), \
         FOREIGN KEY fk_t0 (t0_b) REFERENCES `{db}`.t0 (b))"
    ));
    setup.push(format!(
        "INSERT INTO `{db}`.child SELECT seq, CONCAT('b', seq) FROM `{db}`.seq_1_to_100"
    ));
    let refs: Vec<&str> = setup.iter().map(String::as_str).collect();
    src.exec(&refs).await;
    // Three workers: three tables' indexes are built at once.
    let spec_of = |policy: serde_json::Value, rename: &str| {
        let mut spec = spec(
            &src,
            policy,
            serde_json::json!([{ "database": db, "rename": rename }]),
            "UTC",
        );
        spec.channel.workers = 3;
        spec
    };
    let resync_spec = spec_of(serde_json::json!({"mode": "resync"}), &target);
    let store = SqliteStore::in_memory().expect("store");
    let expected = index_list(&src, &db).await;
    assert!(expected.contains("t5:ft_b_body:2:body"), "{expected}");
    for (i, at) in ["2026-12-01T02:30:00Z", "2026-12-02T02:30:00Z"]
        .iter()
        .enumerate()
    {
        cycle(&store, "task-idx", &resync_spec, &src, at)
            .await
            .unwrap_or_else(|e| panic!("cycle {i} failed: {e}"));
        assert_eq!(
            index_list(&destination(), &target).await,
            expected,
            "cycle {i}"
        );
        for t in 0..6 {
            let table = format!("t{t}");
            assert_eq!(
                rows_hash(&destination(), &target, &table, "id, a, b, body").await,
                rows_hash(&src, &db, &table, "id, a, b, body").await
            );
        }
        assert_eq!(
            count(
                &destination(),
                &format!(
                    "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS \
                     WHERE CONSTRAINT_SCHEMA = '{target}' AND REFERENCED_TABLE_NAME = 't0'"
                )
            )
            .await,
            1
        );
        assert_eq!(working_tables(&target).await, 0);
    }
    // The multi-replica policy builds its post-data the same way.
    let replicas = unique_name("rp_idx");
    let replica_spec = spec_of(serde_json::json!({"mode": "multi_replica"}), &replicas);
    cycle(
        &store,
        "task-idx-r",
        &replica_spec,
        &src,
        "2026-12-03T02:30:00Z",
    )
    .await
    .unwrap_or_else(|e| panic!("replica cycle failed: {e}"));
    let replica = format!("{replicas}_20261203_02_30_00");
    assert_eq!(index_list(&destination(), &replica).await, expected);
    destination()
        .exec(&[
            &format!("DROP DATABASE `{target}`"),
            &format!("DROP DATABASE `{replica}`"),
        ])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

/// A table copied as one chunk is created with its secondary indexes (Finalize builds none for
/// it); a table of several chunks gets them after its load, as before. Both end up with exactly
/// the source's indexes and rows, on the first cycle and on a repeated one.
#[tokio::test]
async fn a_one_chunk_table_is_created_with_its_indexes_and_a_bigger_one_gets_them_after_its_load() {
    use tidemark_core::ports::StateStore;
    use tidemark_core::state::{RunKey, StepKind};

    let db = unique_name("rs_inl_src");
    let target = unique_name("rs_inl");
    let src = source();
    let mut setup = vec![format!("CREATE DATABASE `{db}`")];
    for (table, rows) in [("small", 300), ("big", 20_000)] {
        setup.push(format!(
            "CREATE TABLE `{db}`.{table} (id INT PRIMARY KEY, a INT NOT NULL, b VARCHAR(40), \
             body VARCHAR(200), KEY ix_a (a), UNIQUE KEY ux_b (b), FULLTEXT KEY ft (body))"
        ));
        setup.push(format!(
            "INSERT INTO `{db}`.{table} SELECT seq, seq % 13, CONCAT('b', seq), \
             REPEAT(CONCAT('w', seq % 50, ' '), 30) FROM `{db}`.seq_1_to_{rows}"
        ));
    }
    let refs: Vec<&str> = setup.iter().map(String::as_str).collect();
    src.exec(&refs).await;
    // 1 MB chunks: the big table (about 4 MB) is several.
    let spec = spec(
        &src,
        serde_json::json!({"mode": "resync"}),
        serde_json::json!([{ "database": db, "rename": target }]),
        "UTC",
    );
    let store = SqliteStore::in_memory().expect("store");
    let expected = index_list(&src, &db).await;
    for at in ["2026-12-01T02:30:00Z", "2026-12-02T02:30:00Z"] {
        cycle(&store, "task-inline", &spec, &src, at)
            .await
            .unwrap_or_else(|e| panic!("cycle at {at} failed: {e}"));
        assert_eq!(index_list(&destination(), &target).await, expected, "{at}");
        for table in ["small", "big"] {
            assert_eq!(
                rows_hash(&destination(), &target, table, "id, a, b, body").await,
                rows_hash(&src, &db, table, "id, a, b, body").await,
                "{table} at {at}"
            );
        }
        let key = RunKey {
            task_id: "task-inline".into(),
            scheduled_time: at.parse().expect("time"),
        };
        let steps = store.list_steps(&key).await.expect("steps");
        let finalize = steps
            .iter()
            .find(|s| s.kind == StepKind::Finalize)
            .expect("the Finalize step");
        let inline = |table: &str| {
            finalize.payload["tables"]
                .as_array()
                .expect("tables")
                .iter()
                .find(|t| t["table"] == format!("{db}.{table}"))
                .map(|t| t["indexes_inline"] == true)
        };
        assert_eq!(inline("small"), Some(true), "{}", finalize.payload);
        assert_eq!(inline("big"), Some(false), "{}", finalize.payload);
        assert_eq!(working_tables(&target).await, 0);
    }
    destination()
        .exec(&[&format!("DROP DATABASE `{target}`")])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}
