//! Precheck cases that need a server-wide setting: each test starts a private MariaDB server with
//! that setting (`--local-infile=0`, `--max-allowed-packet=1M`, `--log-bin`,
//! `--lower-case-table-names=1`, the ARCHIVE engine loaded).

use mysql_async::prelude::Queryable;
use serde_json::json;
use tidemark_core::precheck::{CheckStatus, ids};
use tidemark_tests::harness::{PrivateServer, destination, source, unique_name};

use crate::precheck::{assert_check, database, precheck, task, user};

const TABLE: &[&str] = &["CREATE TABLE t (id INT PRIMARY KEY, body LONGBLOB)"];

#[tokio::test]
async fn local_infile_off_on_a_mariadb_destination_is_not_needed() {
    // MariaDB destinations are written with bulk executions of a prepared INSERT; only MySQL
    // needs LOAD DATA LOCAL (the warning on MySQL facts is unit-tested in checks/servers.rs).
    let private = PrivateServer::start("pc_infile", &["--local-infile=0"]);
    let db = database(&source(), "pc_infile", TABLE).await;
    let spec = task(
        &source(),
        &private.server,
        json!({"mode": "resync"}),
        json!([{"database": db}]),
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::DESTINATION_LOCAL_INFILE,
        CheckStatus::Pass,
        &["bulk executions", "local_infile is not needed"],
    );
    assert!(report.passed(), "{:?}", report.failed_ids());
}

#[tokio::test]
async fn a_row_larger_than_the_destination_packet_fails() {
    let private = PrivateServer::start("pc_packet", &["--max-allowed-packet=1M"]);
    let db = database(
        &source(),
        "pc_packet",
        &[
            TABLE[0],
            "INSERT INTO t VALUES (1, REPEAT('x', 2 * 1024 * 1024)), (2, 'small')",
        ],
    )
    .await;
    let spec = task(
        &source(),
        &private.server,
        json!({"mode": "resync"}),
        json!([{"database": db}]),
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::MAX_ALLOWED_PACKET,
        CheckStatus::Fail,
        &[
            "2097153 bytes",
            &format!("`{db}.t`"),
            "destination's max_allowed_packet is 1048576",
            "SET GLOBAL max_allowed_packet = 5242880 on the destination",
        ],
    );
    // Run anyway (a run does not need the precheck): the bulk INSERT cannot take the row (one
    // packet), so its chunk falls back to LOAD DATA LOCAL, which streams the row in packets under
    // the limit: it arrives whole and verified. The check stays a failure: without local_infile
    // the run would fail on that row.
    let store = tidemark_local::SqliteStore::open(
        &tempfile::tempdir()
            .expect("dir")
            .keep()
            .join("state.sqlite"),
    )
    .expect("store");
    let run = |when: &'static str| {
        tidemark_service::run_cycle(
            &store,
            &tidemark_core::ports::SystemClock,
            tidemark_service::cycle::CycleInput::with_passwords(
                "packet",
                &spec,
                when.parse().expect("time"),
                tidemark_core::state::RunTrigger::Manual,
                (
                    source().password().clone(),
                    private.server.password().clone(),
                ),
            ),
            std::sync::Arc::new(|_| {}),
        )
    };
    let report = run("2026-12-01T02:30:00Z").await.expect("the run");
    assert_eq!(report.tables[0].rows, 2);
    let digest = format!(
        "SELECT CONCAT(COUNT(*), ':', SUM(CRC32(body)), ':', SUM(LENGTH(body))) FROM `{db}`.t"
    );
    assert_eq!(
        private.server.query_one(&digest).await,
        source().query_one(&digest).await,
        "the 2 MB row arrived whole"
    );
    // Without local_infile the row has no way in: the run fails on it, saying what to change,
    // and the copy it would have replaced stays.
    private.server.exec(&["SET GLOBAL local_infile = 0"]).await;
    let failed = run("2026-12-02T02:30:00Z").await;
    let text = match &failed {
        Ok(report) => format!("{report:?}"),
        Err(e) => e.to_string(),
    };
    for want in [
        "a row of 2097",
        "does not fit in one packet",
        "max_allowed_packet (1048576 bytes)",
        "SET GLOBAL max_allowed_packet = 5242880",
        "turn local_infile on",
    ] {
        assert!(text.contains(want), "wanted {want:?} in: {text}");
    }
    assert_eq!(
        private.server.query_one(&digest).await,
        source().query_one(&digest).await,
        "the earlier copy is untouched"
    );

    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": unique_name("pc_packet_dst")}]),
    );
    assert_check(
        &precheck(&spec).await,
        ids::MAX_ALLOWED_PACKET,
        CheckStatus::Pass,
        &["2097153 bytes"],
    );
}

#[tokio::test]
async fn binary_logging_needs_trust_or_super_for_routines_and_the_check_matches_the_server() {
    let private = PrivateServer::start("pc_binlog", &["--log-bin=binlog", "--server-id=7"]);
    let db = database(
        &source(),
        "pc_binlog",
        &[
            TABLE[0],
            "CREATE FUNCTION f_one() RETURNS INT DETERMINISTIC RETURN 1",
        ],
    )
    .await;
    let target = unique_name("pc_binlog_dst");
    let loader = user(
        &private.server,
        "pc_binlog_u",
        &[format!("ALL PRIVILEGES ON `{target}`.*")],
    )
    .await;
    let spec = task(
        &source(),
        &loader,
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": target}]),
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::BINLOG_ROUTINES,
        CheckStatus::Fail,
        &[
            &format!("`{db}.f_one`"),
            "log_bin_trust_function_creators = 1",
        ],
    );
    assert_check(&report, ids::DESTINATION_PRIVILEGES, CheckStatus::Pass, &[]);

    // The server agrees: that user cannot create the function.
    private
        .server
        .exec(&[&format!("CREATE DATABASE `{target}`")])
        .await;
    let create = format!("CREATE FUNCTION `{target}`.f_one() RETURNS INT DETERMINISTIC RETURN 1");
    let mut conn = loader.conn().await;
    let refused = conn.query_drop(&create).await;
    assert!(
        refused.is_err(),
        "the server let a user without SUPER create a function with the binlog on"
    );

    private
        .server
        .exec(&["SET GLOBAL log_bin_trust_function_creators = 1"])
        .await;
    let report = precheck(&spec).await;
    assert_check(&report, ids::BINLOG_ROUTINES, CheckStatus::Pass, &[]);
    let mut conn = loader.conn().await;
    conn.query_drop(&create)
        .await
        .expect("with the variable set, the function is created");
}

#[tokio::test]
async fn lower_case_table_names_on_the_destination_fails_on_colliding_names() {
    let private = PrivateServer::start("pc_lctn", &["--lower-case-table-names=1"]);
    let db = database(
        &source(),
        "pc_lctn",
        &[
            "CREATE TABLE orders (id INT PRIMARY KEY)",
            "CREATE TABLE Orders (id INT PRIMARY KEY)",
        ],
    )
    .await;
    let spec = task(
        &source(),
        &private.server,
        json!({"mode": "resync"}),
        json!([{"database": db}]),
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::LOWER_CASE_TABLE_NAMES,
        CheckStatus::Fail,
        &[
            "is 0 on the source and 1 on the destination",
            &format!("`{db}.Orders`, `{db}.orders` -> `{db}.orders`"),
        ],
    );
    // Without the colliding pair, the different settings are compatible.
    source().exec(&[&format!("DROP TABLE `{db}`.Orders")]).await;
    assert_check(
        &precheck(&spec).await,
        ids::LOWER_CASE_TABLE_NAMES,
        CheckStatus::Pass,
        &["no selected names collide"],
    );
}

#[tokio::test]
async fn an_engine_the_destination_lacks_fails() {
    let private = PrivateServer::start("pc_engine", &["--plugin-load-add=ha_archive.so"]);
    let db = database(
        &private.server,
        "pc_engine",
        &[
            "CREATE TABLE log (id INT, msg VARCHAR(20)) ENGINE=ARCHIVE",
            "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB",
        ],
    )
    .await;
    let spec = task(
        &private.server,
        &destination(),
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": unique_name("pc_engine_dst")}]),
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::STORAGE_ENGINES,
        CheckStatus::Fail,
        &[
            &format!("engine ARCHIVE (used by `{db}.log`)"),
            "ENGINE=InnoDB",
        ],
    );
    let only_innodb = task(
        &private.server,
        &destination(),
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": unique_name("pc_engine_dst"), "tables": [{"name": "t"}]}]),
    );
    assert_check(
        &precheck(&only_innodb).await,
        ids::STORAGE_ENGINES,
        CheckStatus::Pass,
        &["INNODB"],
    );
}
