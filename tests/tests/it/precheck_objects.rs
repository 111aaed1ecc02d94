//! Precheck checks over the selected objects, on the shared servers: privileges (a user made for
//! the test, grants added), missing objects, timestamp columns, keys, destination conflicts per
//! policy, name mapping, foreign keys and destination triggers, the schedule window.

use jiff::Timestamp;
use serde_json::json;
use tidemark_core::TaskSpec;
use tidemark_core::precheck::{CheckStatus, MappingWarningInput, ids};
use tidemark_tests::harness::{destination, source, unique_name};

use crate::precheck::{
    SHOP, assert_check, check, database, endpoint, incremental_objects, now, precheck,
    precheck_with, task, task_json, user,
};

#[tokio::test]
async fn source_privileges_fail_until_granted() {
    let mut statements = SHOP.to_vec();
    statements.push("CREATE FUNCTION f_one() RETURNS INT DETERMINISTIC RETURN 1");
    let db = database(&source(), "pc_spriv", &statements).await;
    let reader = user(&source(), "pc_reader", &[format!("SELECT ON `{db}`.*")]).await;
    let objects = json!([{"database": db, "rename": unique_name("pc_spriv_dst")}]);
    let spec = task(
        &reader,
        &destination(),
        json!({"mode": "resync"}),
        objects.clone(),
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::SOURCE_PRIVILEGES,
        CheckStatus::Fail,
        &[
            &format!("TRIGGER on `{db}`.*"),
            "SELECT on `mysql`.`proc`",
            "hides the database's triggers",
        ],
    );
    source()
        .exec(&[
            &format!("GRANT TRIGGER ON `{db}`.* TO '{}'@'127.0.0.1'", reader.user),
            &format!(
                "GRANT SELECT ON mysql.proc TO '{}'@'127.0.0.1'",
                reader.user
            ),
        ])
        .await;
    let report = precheck(&spec).await;
    assert_check(&report, ids::SOURCE_PRIVILEGES, CheckStatus::Pass, &[]);

    // A listed table the user may not read.
    let narrow = user(
        &source(),
        "pc_narrow",
        &[format!("SELECT ON `{db}`.`orders`")],
    )
    .await;
    let spec = task(
        &narrow,
        &destination(),
        json!({"mode": "incremental"}),
        incremental_objects(&db, &unique_name("pc_n_dst")),
    );
    let report = precheck(&spec).await;
    let c = check(&report, ids::SOURCE_PRIVILEGES);
    assert_eq!(c.status, CheckStatus::Fail, "{c:#?}");
    assert_eq!(c.objects, [format!("{db}.customers")]);
    assert!(c.message.contains("cannot see it"), "{c:#?}");
    assert_check(
        &report,
        ids::OBJECTS_EXIST,
        CheckStatus::Fail,
        &["no privilege on is not visible"],
    );
}

#[tokio::test]
async fn destination_privileges_follow_the_policy() {
    let db = database(&source(), "pc_dpriv", SHOP).await;
    let target = unique_name("pc_dpriv_dst");
    let loader = user(
        &destination(),
        "pc_loader",
        &[format!(
            "SELECT, INSERT, DELETE, CREATE, ALTER, INDEX ON `{target}`.*"
        )],
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
        ids::DESTINATION_PRIVILEGES,
        CheckStatus::Fail,
        &[&format!("DROP on `{target}` (to swap"), "GRANT DROP"],
    );
    destination()
        .exec(&[&format!(
            "GRANT DROP ON `{target}`.* TO '{}'@'127.0.0.1'",
            loader.user
        )])
        .await;
    let report = precheck(&spec).await;
    assert_check(&report, ids::DESTINATION_PRIVILEGES, CheckStatus::Pass, &[]);
    // Incremental upserts (UPDATE) and handles destination triggers (TRIGGER).
    let spec = task(
        &source(),
        &loader,
        json!({"mode": "incremental"}),
        incremental_objects(&db, &target),
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::DESTINATION_PRIVILEGES,
        CheckStatus::Fail,
        &["UPDATE on", "TRIGGER on"],
    );
}

#[tokio::test]
async fn missing_objects_fail_by_name() {
    let db = database(&source(), "pc_missing", SHOP).await;
    let objects = json!([{"database": db, "tables": [
        {"name": "orders", "timestamp_column": "updated_at", "columns": [{"name": "id"}, {"name": "gone"}, {"name": "updated_at"}]},
        {"name": "nope", "timestamp_column": "x"}]},
        {"database": unique_name("pc_absent"), "tables": [{"name": "t", "timestamp_column": "x"}]}]);
    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "incremental"}),
        objects,
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::OBJECTS_EXIST,
        CheckStatus::Fail,
        &[
            &format!("`{db}.orders.gone`"),
            &format!("`{db}.nope`"),
            "t_pc_absent",
        ],
    );
}

#[tokio::test]
async fn timestamp_columns_that_are_not_temporal_not_indexed_or_null_are_reported() {
    let db = database(
        &source(),
        "pc_ts",
        &[
            "CREATE TABLE orders (id INT PRIMARY KEY, updated_at VARCHAR(30))",
            "CREATE TABLE customers (id INT PRIMARY KEY, changed_at DATETIME NULL)",
            "INSERT INTO customers VALUES (1, NULL), (2, NOW())",
        ],
    )
    .await;
    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "incremental"}),
        incremental_objects(&db, &unique_name("pc_ts_dst")),
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::TIMESTAMP_COLUMN_TYPE,
        CheckStatus::Fail,
        &[&format!("`{db}.orders.updated_at` is VARCHAR")],
    );
    assert_check(
        &report,
        ids::TIMESTAMP_COLUMN_INDEXED,
        CheckStatus::Warn,
        &[
            &format!("`{db}.customers.changed_at`"),
            "scans the whole table",
        ],
    );
    assert_check(
        &report,
        ids::TIMESTAMP_COLUMN_NULLS,
        CheckStatus::Warn,
        &[&format!("`{db}.customers.changed_at`")],
    );
    source()
        .exec(&[
            &format!("UPDATE `{db}`.customers SET changed_at = NOW() WHERE changed_at IS NULL"),
            &format!("ALTER TABLE `{db}`.customers ADD INDEX (changed_at)"),
        ])
        .await;
    let report = precheck(&spec).await;
    assert_check(&report, ids::TIMESTAMP_COLUMN_NULLS, CheckStatus::Pass, &[]);
    assert_check(
        &report,
        ids::TIMESTAMP_COLUMN_INDEXED,
        CheckStatus::Warn,
        &[&format!("`{db}.orders.updated_at`")],
    );
}

#[tokio::test]
async fn a_table_whose_key_is_dropped_warns() {
    let db = database(&source(), "pc_key", SHOP).await;
    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": unique_name("pc_key_dst")}]),
    );
    assert_check(
        &precheck(&spec).await,
        ids::PRIMARY_KEYS,
        CheckStatus::Pass,
        &[],
    );
    source()
        .exec(&[&format!("ALTER TABLE `{db}`.customers DROP PRIMARY KEY")])
        .await;
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::PRIMARY_KEYS,
        CheckStatus::Warn,
        &[
            &format!("`{db}.customers` has no primary key"),
            "duplicate rows are possible",
        ],
    );
    assert!(report.passed(), "a warning does not block");
}

#[tokio::test]
async fn conflicting_destination_objects_are_reported_per_policy() {
    let db = database(&source(), "pc_conf", SHOP).await;
    let target = database(
        &destination(),
        "pc_conf_dst",
        &["CREATE TABLE orders (id BIGINT PRIMARY KEY)"],
    )
    .await;
    let resync = task(
        &source(),
        &destination(),
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": target}]),
    );
    assert_check(
        &precheck(&resync).await,
        ids::DESTINATION_CONFLICTS,
        CheckStatus::Warn,
        &[&format!("`{target}.orders` already exists"), "replaces it"],
    );
    let incremental = task(
        &source(),
        &destination(),
        json!({"mode": "incremental"}),
        incremental_objects(&db, &target),
    );
    assert_check(
        &precheck(&incremental).await,
        ids::DESTINATION_CONFLICTS,
        CheckStatus::Pass,
        &[],
    );
    destination()
        .exec(&[&format!("INSERT INTO `{target}`.orders VALUES (7)")])
        .await;
    assert_check(
        &precheck(&incremental).await,
        ids::DESTINATION_CONFLICTS,
        CheckStatus::Warn,
        &["already holds rows"],
    );
    // Multi-replica: the next cycle's replica database exists already.
    let replica_of = unique_name("pc_rep");
    let multi = task(
        &source(),
        &destination(),
        json!({"mode": "multi_replica"}),
        json!([{"database": db, "rename": replica_of}]),
    );
    assert_check(
        &precheck(&multi).await,
        ids::DESTINATION_CONFLICTS,
        CheckStatus::Pass,
        &[],
    );
    let replica = format!("{replica_of}_20260601_02_30_00");
    destination()
        .exec(&[&format!("CREATE DATABASE `{replica}`")])
        .await;
    assert_check(
        &precheck(&multi).await,
        ids::DESTINATION_CONFLICTS,
        CheckStatus::Fail,
        &[&format!("`{replica}` already exists")],
    );
}

#[tokio::test]
async fn name_mapping_collisions_fail_and_mapping_warnings_warn() {
    let db = database(&source(), "pc_map", SHOP).await;
    // A stored spec that predates a validation rule: two tables mapped to one name.
    let mut json = task_json(
        endpoint(&source()),
        endpoint(&destination()),
        json!({"mode": "resync"}),
        json!([{"database": db, "tables": [{"name": "orders", "rename": "t"}, {"name": "customers", "rename": "t"}]}]),
    );
    json["objects"][0]["rename"] = json!(unique_name("pc_map_dst"));
    let spec: TaskSpec = serde_json::from_value(json).unwrap();
    let warnings = [MappingWarningInput {
        object: format!("{db}.v_report"),
        message: "names `orders` in a prepared statement".into(),
    }];
    let report = precheck_with(&spec, &warnings, now()).await;
    assert_check(
        &report,
        ids::NAME_MAPPING,
        CheckStatus::Fail,
        &[&format!("`{db}.orders`, `{db}.customers` all map to")],
    );
    assert_check(
        &report,
        ids::MAPPING_WARNINGS,
        CheckStatus::Warn,
        &[&format!(
            "`{db}.v_report`: names `orders` in a prepared statement"
        )],
    );
}

#[tokio::test]
async fn incremental_foreign_keys_and_destination_triggers_warn() {
    let db = database(&source(), "pc_fk", &[
        "CREATE TABLE customers (id INT PRIMARY KEY, changed_at DATETIME NOT NULL, KEY (changed_at))",
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, updated_at DATETIME NOT NULL, KEY (updated_at), \
         FOREIGN KEY (customer_id) REFERENCES customers (id))",
    ]).await;
    let target = database(&destination(), "pc_fk_dst", &[
        "CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, updated_at DATETIME NOT NULL)",
        "CREATE TABLE audit (n INT)",
        "CREATE TRIGGER trg_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit VALUES (NEW.id)",
    ]).await;
    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "incremental"}),
        incremental_objects(&db, &target),
    );
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::FOREIGN_KEYS,
        CheckStatus::Warn,
        &[&format!("`{db}.orders` has foreign keys"), "checks are off"],
    );
    assert_check(
        &report,
        ids::DESTINATION_TRIGGERS,
        CheckStatus::Warn,
        &[
            &format!("`{target}.trg_audit`"),
            "fire again",
            "drops them for the duration of each load",
        ],
    );
    let resync = task(
        &source(),
        &destination(),
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": target}]),
    );
    let report = precheck(&resync).await;
    assert_check(&report, ids::FOREIGN_KEYS, CheckStatus::Pass, &[]);
    assert_check(&report, ids::DESTINATION_TRIGGERS, CheckStatus::Pass, &[]);
}

#[tokio::test]
async fn a_schedule_with_no_cycle_left_fails() {
    let db = database(&source(), "pc_sched", SHOP).await;
    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": unique_name("pc_sched_dst")}]),
    );
    let after_end: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
    let report = precheck_with(&spec, &[], after_end).await;
    assert_check(
        &report,
        ids::SCHEDULE_WINDOW,
        CheckStatus::Fail,
        &["no cycle is left", "schedule.end"],
    );
    assert!(!report.passed());
    assert_eq!(report.failed_ids(), [ids::SCHEDULE_WINDOW]);
}
