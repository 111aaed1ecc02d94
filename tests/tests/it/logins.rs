//! Logins per run: the copy pools are opened once per run and reused by every step, so a run's
//! logins do not grow with its chunks. Counted by the server (`USER_STATISTICS`, on a private
//! server started with `--userstat=1`) for a user of the test's own.

use std::sync::Arc;

use jiff::Timestamp;
use secrecy::SecretString;
use tidemark_core::state::RunTrigger;
use tidemark_local::SqliteStore;
use tidemark_service::cycle::CycleInput;
use tidemark_service::run_cycle;
use tidemark_tests::harness::{PrivateServer, Server};

use crate::policy_support::FixedClock;

async fn logins(admin: &Server, user: &str) -> u64 {
    admin
        .query_one(&format!(
            "SELECT TOTAL_CONNECTIONS FROM information_schema.USER_STATISTICS WHERE USER = '{user}'"
        ))
        .await
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One resync of `database` (one chunk a table) as `user`: the logins it took.
async fn run_logins(
    admin: &Server,
    counted: &Server,
    password: &str,
    database: &str,
) -> (u64, u32) {
    let spec = serde_json::json!({
        "name": "logins",
        "source": counted.endpoint_json(),
        "destination": counted.endpoint_json(),
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-11-30" },
        "objects": [ { "database": database, "rename": format!("{database}_copy") } ],
        "channel": { "workers": 2, "chunk_mb": 1 }
    });
    let spec = tidemark_core::parse_task_spec(&spec.to_string()).expect("spec");
    let before = logins(admin, &counted.user).await;
    let at: Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    let report = run_cycle(
        &SqliteStore::in_memory().expect("store"),
        &FixedClock(at),
        CycleInput::with_passwords(
            database,
            &spec,
            at,
            RunTrigger::Manual,
            (
                SecretString::from(password.to_owned()),
                SecretString::from(password.to_owned()),
            ),
        ),
        Arc::new(|_| {}),
    )
    .await
    .expect("the run");
    (
        logins(admin, &counted.user).await - before,
        report.run.chunks_done,
    )
}

#[tokio::test]
async fn a_runs_logins_do_not_grow_with_its_chunks() {
    let private = PrivateServer::start("logins", &["--userstat=1"]);
    let admin = private.server.clone();
    let (user, password) = ("counted", "counted-local-only");
    let mut setup = vec![
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"),
        format!("GRANT ALL ON *.* TO '{user}'@'%'"),
    ];
    for (database, tables) in [("few", 5), ("many", 30)] {
        setup.push(format!("CREATE DATABASE {database}"));
        for t in 0..tables {
            setup.push(format!(
                "CREATE TABLE {database}.t{t} (id INT PRIMARY KEY, v VARCHAR(40))"
            ));
            setup.push(format!(
                "INSERT INTO {database}.t{t} SELECT seq, MD5(seq) FROM {database}.seq_1_to_300"
            ));
        }
    }
    let refs: Vec<&str> = setup.iter().map(String::as_str).collect();
    admin.exec(&refs).await;
    let counted = Server::new("private", admin.port, user, SecretString::from(password));
    let (few, few_chunks) = run_logins(&admin, &counted, password, "few").await;
    let (many, many_chunks) = run_logins(&admin, &counted, password, "many").await;
    assert_eq!((few_chunks, many_chunks), (5, 30), "one chunk a table");
    eprintln!("logins: {few} for 5 chunks, {many} for 30 chunks");
    // The pools are opened once a run: 25 more chunks cost no more logins than the
    // schema's and Finalize's per-table sessions' noise (before the pools were kept, every
    // chunk opened about four).
    assert!(
        many <= few + 2,
        "{many} logins for 30 chunks against {few} for 5: logins grow with chunks"
    );
}
