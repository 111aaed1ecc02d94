//! Every scheduling policy end to end through the deployed functions: the task created,
//! prechecked and started through the API, two cycles (fired by the scheduler, or run now through
//! the API), each run driven by run-worker from the step queue, and the destination compared with
//! the source after each.

use serde_json::json;
use tidemark_tests::harness::fixtures::rows_hash;
use tidemark_tests::harness::{destination, source};

use crate::support::Scenario;

const FIRST: &str = "2027-12-01T02:30:00Z";
const SECOND: &str = "2027-12-02T02:30:00Z";

/// A scheduled cycle, then one run now.
pub async fn resync_reloads_each_cycle() {
    let s = Scenario::new().await;
    let db = s
        .source_db(
            "aws_resync",
            &[
                "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(100), f FLOAT NULL)",
                "INSERT INTO t SELECT seq, REPEAT(CHAR(97 + seq % 26), 80), \
                 IF(seq % 7 = 0, NULL, seq / 3) FROM seq_1_to_5000",
                "CREATE TABLE parent (id INT PRIMARY KEY)",
                "CREATE TABLE child (id INT PRIMARY KEY, p INT, \
                 FOREIGN KEY (p) REFERENCES parent (id))",
                "INSERT INTO parent VALUES (1), (2)",
                "INSERT INTO child VALUES (10, 1), (20, 2)",
            ],
        )
        .await;
    let target = s.target("aws_resync_dw");
    let id = s
        .create(&s.task(
            json!({ "mode": "resync" }),
            json!([{ "database": db, "rename": target }]),
        ))
        .await;
    s.start(&id).await;
    let same = async |table: &str, columns: &str| {
        assert_eq!(
            rows_hash(&source(), &db, table, columns).await,
            rows_hash(&destination(), &target, table, columns).await,
            "{table}"
        );
    };
    let run = s.cycle(&id, FIRST).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    same("t", "id, v, HEX(f)").await;
    same("child", "id, p").await;
    // The source changes; the next cycle's copy is the source again, deletes included.
    source()
        .exec(&[
            &format!("DELETE FROM `{db}`.t WHERE id % 3 = 0"),
            &format!("UPDATE `{db}`.t SET v = 'changed' WHERE id % 5 = 0"),
            &format!("DELETE FROM `{db}`.child WHERE id = 20"),
        ])
        .await;
    // The next cycle is run now, through the API: manage-task sends it to the step queue.
    let (at, run) = s.run_now(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "manual", "{run}");
    same("t", "id, v, HEX(f)").await;
    same("child", "id, p").await;
    let task = s.settled_task(&id).await;
    assert_eq!(task["status"], "scheduled", "{task}");
    assert_eq!(task["last_run"]["status"], "succeeded", "{task}");
    // What an operator reads: the task among the stage's tasks, its two runs, a run's tables.
    let (status, tasks) = s.stack.http("GET", "/tasks?limit=100", None).await;
    assert_eq!(status, 200, "{tasks}");
    let listed = tasks["items"].as_array().expect("a list of tasks");
    assert!(listed.iter().any(|t| t["id"] == id.as_str()), "{tasks}");
    let (status, runs) = s
        .stack
        .http("GET", &format!("/tasks/{id}/runs"), None)
        .await;
    assert_eq!(status, 200, "{runs}");
    assert_eq!(runs["items"].as_array().map(Vec::len), Some(2), "{runs}");
    let (status, one) = s
        .stack
        .http("GET", &format!("/tasks/{id}/runs/{at}"), None)
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["id"], at.as_str(), "{one}");
    s.finish().await;
}

/// A replica per cycle, the destination's password in the user's own secret; then the task is
/// deleted.
pub async fn multi_replica_makes_a_replica_per_cycle() {
    let s = Scenario::new().await;
    let db = s
        .source_db(
            "aws_replica",
            &[
                "CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(40))",
                "INSERT INTO items SELECT seq, CONCAT('item ', seq) FROM seq_1_to_5000",
                "CREATE VIEW big_items AS SELECT id, v FROM items WHERE id > 4000",
            ],
        )
        .await;
    let target = s.target("aws_replica_dw");
    let mut body = s.task(
        json!({ "mode": "multi_replica", "keep_replicas": 1 }),
        json!([{ "database": db, "rename": target }]),
    );
    // The destination's password is the user's own secret (RDS's), read where it is needed.
    let rds = s.user_secret(&s.writer).await;
    body["destination"] = json!({ "host": s.writer.host, "port": s.writer.port,
                                  "user": s.writer.user, "password_secret": rds });
    let id = s.create(&body).await;
    s.start(&id).await;
    let first = format!("{target}_20271201_02_30_00");
    let second = format!("{target}_20271202_02_30_00");
    let run = s.cycle(&id, FIRST).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let before = rows_hash(&source(), &db, "items", "id, v").await;
    assert_eq!(
        rows_hash(&destination(), &first, "items", "id, v").await,
        before
    );
    source()
        .exec(&[&format!("INSERT INTO `{db}`.items VALUES (9001, 'new')")])
        .await;
    let run = s.cycle(&id, SECOND).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        rows_hash(&destination(), &second, "items", "id, v").await,
        rows_hash(&source(), &db, "items", "id, v").await
    );
    assert_eq!(
        rows_hash(&destination(), &second, "big_items", "id, v").await,
        rows_hash(&source(), &db, "big_items", "id, v").await
    );
    // keep_replicas: 1 — the first replica is gone.
    let left = destination()
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{first}'"
        ))
        .await;
    assert_eq!(left.as_deref(), Some("0"), "{first} was kept");
    // Deleted with nothing pending: the secret the task made goes, the user's stays.
    let (_, task) = s.stack.http("GET", &format!("/tasks/{id}"), None).await;
    let own = task["spec"]["source"]["password_secret"]
        .as_str()
        .expect("the source's secret")
        .to_owned();
    let (status, body) = s.stack.http("DELETE", &format!("/tasks/{id}"), None).await;
    assert_eq!(status, 204, "{body}");
    let secrets = aws_sdk_secretsmanager::Client::new(&s.stack.sdk);
    let read = async |arn: &str| {
        secrets
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .is_ok()
    };
    assert!(!read(&own).await, "the task's secret stays");
    assert!(read(&rds).await, "the user's secret was deleted");
    s.finish().await;
}

pub async fn incremental_carries_changes_over_two_cycles() {
    let s = Scenario::new().await;
    let db = s
        .source_db(
            "aws_incr",
            &[
                "CREATE TABLE ev (id BIGINT PRIMARY KEY, v VARCHAR(60), \
                 updated_at DATETIME(6) NOT NULL, KEY ix_updated (updated_at))",
                "INSERT INTO ev SELECT seq, CONCAT('v', seq), \
                 '2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_5000",
            ],
        )
        .await;
    let target = s.target("aws_incr_dw");
    let id = s.incremental_task(&db, &target).await;
    s.start(&id).await;
    let columns = "id, v, updated_at";
    let run = s.cycle(&id, FIRST).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        rows_hash(&destination(), &target, "ev", columns).await,
        rows_hash(&source(), &db, "ev", columns).await
    );
    source()
        .exec(&[
            &format!("USE `{db}`"),
            &format!(
                "UPDATE `{db}`.ev SET v = 'changed', updated_at = NOW(6) - INTERVAL 1 SECOND \
                 WHERE id % 100 = 0"
            ),
            &format!(
                "INSERT INTO `{db}`.ev SELECT 100000 + seq, 'new', NOW(6) - INTERVAL 1 SECOND \
                 FROM seq_1_to_500"
            ),
        ])
        .await;
    let run = s.cycle(&id, SECOND).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        rows_hash(&destination(), &target, "ev", columns).await,
        rows_hash(&source(), &db, "ev", columns).await
    );
    // Only the window was read the second time, not the whole table again.
    let rows: u64 = run["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["rows"].as_u64())
        .sum();
    assert!(rows < 5_000, "the second cycle copied {rows} rows: {run}");
    s.finish().await;
}
