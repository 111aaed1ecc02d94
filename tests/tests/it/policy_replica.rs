//! Multi-replica: each cycle makes `<db>_<yyyymmdd_HH_mm_ss>` (the scheduled time in the task's
//! zone) equal to the source at its time; `keep_replicas` drops only this task's oldest.

use tidemark_core::policy::ReplicaPlan;
use tidemark_core::ports::StateStore;
use tidemark_core::state::RunKey;
use tidemark_local::SqliteStore;
use tidemark_tests::harness::{destination, source, unique_name};

use crate::policy_support::{count, cycle, rows_hash, spec};

async fn db_exists(name: &str) -> bool {
    count(
        &destination(),
        &format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"),
    )
    .await
        == 1
}

#[tokio::test]
async fn three_cycles_make_three_named_replicas_and_keep_two_drops_only_the_oldest() {
    let db = unique_name("rep_src");
    let target = unique_name("rep");
    let src = source();
    src.exec(&[
        &format!("CREATE DATABASE `{db}`"),
        &format!("CREATE TABLE `{db}`.items (id INT PRIMARY KEY, v VARCHAR(20), KEY ix_v (v))"),
        &format!("INSERT INTO `{db}`.items VALUES (1, 'a'), (2, 'b')"),
        &format!("CREATE VIEW `{db}`.vv AS SELECT id FROM `{db}`.items"),
    ])
    .await;
    // Looks like a replica of this task, but the task never made it: it must survive.
    let decoy = format!("{target}_20261130_10_30_00");
    destination()
        .exec(&[&format!("CREATE DATABASE `{decoy}`")])
        .await;

    let spec = spec(
        &src,
        serde_json::json!({"mode": "multi_replica", "keep_replicas": 2}),
        serde_json::json!([{ "database": db, "rename": target }]),
        "Asia/Shanghai",
    );
    let store = SqliteStore::in_memory().expect("store");
    let times = [
        "2026-12-01T02:30:00Z",
        "2026-12-02T02:30:00Z",
        "2026-12-03T02:30:00Z",
    ];
    // 02:30 UTC is 10:30 in Shanghai.
    let names: Vec<String> = ["20261201", "20261202", "20261203"]
        .iter()
        .map(|d| format!("{target}_{d}_10_30_00"))
        .collect();
    let mut snapshots = Vec::new();
    for (i, at) in times.iter().enumerate() {
        if i > 0 {
            src.exec(&[&format!(
                "INSERT INTO `{db}`.items VALUES ({}, 'n{i}')",
                10 + i
            )])
            .await;
        }
        snapshots.push(rows_hash(&src, &db, "items", "id, v").await);
        let report = cycle(&store, "task-r", &spec, &src, at)
            .await
            .unwrap_or_else(|e| panic!("cycle {i} failed: {e}"));
        assert_eq!(
            ReplicaPlan::of_run(&report.run).map(|p| p.replicas),
            Some(vec![names[i].clone()])
        );
        assert!(db_exists(&names[i]).await, "{} missing", names[i]);
        assert_eq!(
            rows_hash(&destination(), &names[i], "items", "id, v").await,
            snapshots[i],
            "replica {} differs from the source at its time",
            names[i]
        );
        assert_eq!(
            count(
                &destination(),
                &format!("SELECT COUNT(*) FROM `{}`.vv", names[i])
            )
            .await,
            2 + i as u64
        );
    }
    assert!(!db_exists(&names[0]).await, "the oldest replica was kept");
    for (i, name) in names.iter().enumerate().skip(1) {
        assert_eq!(
            rows_hash(&destination(), name, "items", "id, v").await,
            snapshots[i]
        );
    }
    assert!(
        db_exists(&decoy).await,
        "a database the task did not make was dropped"
    );
    let last = store
        .get_run(&RunKey {
            task_id: "task-r".into(),
            scheduled_time: times[2].parse().expect("time"),
        })
        .await
        .expect("store")
        .expect("run");
    assert_eq!(
        ReplicaPlan::of_run(&last).map(|p| p.dropped),
        Some(vec![names[0].clone()])
    );

    let mut cleanup = vec![format!("DROP DATABASE `{decoy}`")];
    cleanup.extend(
        names
            .iter()
            .map(|n| format!("DROP DATABASE IF EXISTS `{n}`")),
    );
    let refs: Vec<&str> = cleanup.iter().map(String::as_str).collect();
    destination().exec(&refs).await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}

#[tokio::test]
async fn a_failed_run_drops_its_half_made_replica_and_an_unknown_namesake_is_refused() {
    let db = unique_name("repf_src");
    let target = unique_name("repf");
    let src = source();
    src.exec(&[
        &format!("CREATE DATABASE `{db}`"),
        &format!("CREATE TABLE `{db}`.items (id INT PRIMARY KEY)"),
        &format!("INSERT INTO `{db}`.items VALUES (1)"),
    ])
    .await;
    let spec = spec(
        &src,
        serde_json::json!({"mode": "multi_replica"}),
        serde_json::json!([{ "database": db, "rename": target }]),
        "UTC",
    );
    let store = SqliteStore::in_memory().expect("store");
    // Someone else's database with the replica's name: refused, and left alone.
    let taken = format!("{target}_20261201_02_30_00");
    destination()
        .exec(&[
            &format!("CREATE DATABASE `{taken}`"),
            &format!("CREATE TABLE `{taken}`.mine (x INT)"),
        ])
        .await;
    let err = cycle(&store, "task-f", &spec, &src, "2026-12-01T02:30:00Z")
        .await
        .expect_err("an existing namesake must fail the run");
    assert!(err.to_string().contains(&taken), "{err}");
    assert!(db_exists(&taken).await);
    assert_eq!(
        count(
            &destination(),
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{taken}'"
            )
        )
        .await,
        1
    );

    // A run that fails after creating its replica (a table the source loses mid-run makes
    // the copy fail) drops it.
    let src_for_hook = src.clone();
    let db_for_hook = db.clone();
    let hook = std::sync::Arc::new(move |event: tidemark_service::CycleEvent| {
        if event == tidemark_service::CycleEvent::Phase(tidemark_core::state::RunPhase::Copying) {
            let (s, d) = (src_for_hook.clone(), db_for_hook.clone());
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(s.exec(&[&format!("DROP TABLE `{d}`.items")]))
            })
            .join()
            .expect("drop thread");
        }
    });
    let err = crate::policy_support::cycle_with(
        &store,
        "task-f",
        &spec,
        &src,
        "2026-12-02T02:30:00Z",
        hook,
    )
    .await
    .expect_err("the copy must fail");
    assert!(err.to_string().contains("items"), "{err}");
    assert!(!db_exists(&format!("{target}_20261202_02_30_00")).await);
    destination()
        .exec(&[&format!("DROP DATABASE `{taken}`")])
        .await;
    src.exec(&[&format!("DROP DATABASE `{db}`")]).await;
}
