//! The precheck end to end, on the shared servers: a clean task passes every check, and each
//! endpoint that cannot be reached fails its connectivity check distinctly, within the timeout.
//! The helpers here serve every precheck module: `precheck_objects` (checks over the selected
//! objects), `precheck_private` (server-wide settings, on private servers) and `precheck_facts`.

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tidemark_core::precheck::{CheckResult, CheckStatus, MappingWarningInput, PrecheckReport, ids};
use tidemark_core::{TaskSpec, parse_task_spec};
use tidemark_engine::{ConnectOptions, run_precheck};
use tidemark_tests::harness::net::{SilentListener, closed_port};
use tidemark_tests::harness::{Server, destination, source, unique_name};

/// The time every precheck here runs "at": inside the schedule window of [`task`].
pub(crate) fn now() -> Timestamp {
    match "2026-06-01T00:00:00Z".parse() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// The endpoint of a server, with a short connect timeout.
pub(crate) fn endpoint(server: &Server) -> Value {
    let mut e = server.endpoint_json();
    e["connect_timeout_seconds"] = json!(2);
    e
}

/// A task over the given endpoints: daily at 02:30 UTC through 2026 (the next cycle after
/// [`now`] is 2026-06-01 02:30 UTC).
pub(crate) fn task_json(source: Value, destination: Value, policy: Value, objects: Value) -> Value {
    json!({
        "name": "precheck-test",
        "source": source,
        "destination": destination,
        "policy": policy,
        "schedule": {"cycle": "day", "at": "02:30", "time_zone": "UTC",
                     "start": "2026-01-01", "end": "2026-12-31"},
        "objects": objects,
    })
}

pub(crate) fn task(src: &Server, dst: &Server, policy: Value, objects: Value) -> TaskSpec {
    let json = task_json(endpoint(src), endpoint(dst), policy, objects);
    match parse_task_spec(&json.to_string()) {
        Ok(spec) => spec,
        Err(e) => panic!("test spec: {e}"),
    }
}

fn options(endpoint: &tidemark_core::EndpointSpec) -> ConnectOptions {
    let password = endpoint
        .password
        .clone()
        .unwrap_or_else(|| SecretString::from(String::new()));
    ConnectOptions::from_endpoint(endpoint, password)
}

pub(crate) async fn precheck_with(
    spec: &TaskSpec,
    warnings: &[MappingWarningInput],
    at: Timestamp,
) -> PrecheckReport {
    run_precheck(
        spec,
        &options(&spec.source),
        &options(&spec.destination),
        warnings,
        at,
    )
    .await
}

pub(crate) async fn precheck(spec: &TaskSpec) -> PrecheckReport {
    precheck_with(spec, &[], now()).await
}

#[track_caller]
pub(crate) fn check<'a>(report: &'a PrecheckReport, id: &str) -> &'a CheckResult {
    match report.check(id) {
        Some(c) => c,
        None => panic!("no check {id} in {report:#?}"),
    }
}

/// Asserts a check's status and that its message or remedy says each of `needles`.
#[track_caller]
pub(crate) fn assert_check(
    report: &PrecheckReport,
    id: &str,
    status: CheckStatus,
    needles: &[&str],
) {
    let c = check(report, id);
    assert_eq!(c.status, status, "{id}: {c:#?}");
    let text = format!("{} {}", c.message, c.remedy.as_deref().unwrap_or(""));
    for needle in needles {
        assert!(text.contains(needle), "{id}: {needle:?} not in {c:#?}");
    }
}

pub(crate) use tidemark_tests::harness::fixtures::{database, user};

pub(crate) const SHOP: &[&str] = &[
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, note VARCHAR(100), \
     updated_at DATETIME(6) NOT NULL, KEY ix_updated (updated_at))",
    "CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, \
     changed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, KEY (changed_at))",
    "INSERT INTO orders VALUES (1, 'a', NOW(6)), (2, NULL, NOW(6))",
    "INSERT INTO customers (id, name) VALUES (1, 'x')",
];

pub(crate) fn incremental_objects(db: &str, target: &str) -> Value {
    json!([{"database": db, "rename": target, "tables": [
        {"name": "orders", "timestamp_column": "updated_at"},
        {"name": "customers", "timestamp_column": "changed_at"}]}])
}

#[tokio::test]
async fn a_clean_incremental_task_passes_every_check() {
    let db = database(&source(), "pc_clean", SHOP).await;
    let target = unique_name("pc_clean_dst");
    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "incremental"}),
        incremental_objects(&db, &target),
    );
    let report = precheck(&spec).await;
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ids::ALL.to_vec());
    for c in &report.checks {
        assert_eq!(c.status, CheckStatus::Pass, "{c:#?}");
    }
    assert!(report.passed());
    assert!(report.started_at <= report.finished_at);
    assert_check(
        &report,
        ids::SOURCE_CONNECTIVITY,
        CheckStatus::Pass,
        &["MariaDB 10.11"],
    );
    assert_check(
        &report,
        ids::SCHEDULE_WINDOW,
        CheckStatus::Pass,
        &["2026-06-01T02:30:00+00:00"],
    );
}

#[tokio::test]
async fn a_clean_resync_of_a_whole_database_with_views_triggers_and_routines_passes() {
    let mut statements = SHOP.to_vec();
    statements.extend([
        "CREATE VIEW v_orders AS SELECT id, note FROM orders",
        "CREATE TRIGGER trg_orders BEFORE INSERT ON orders FOR EACH ROW SET NEW.note = UPPER(NEW.note)",
        "CREATE FUNCTION f_one() RETURNS INT DETERMINISTIC RETURN 1",
        "CREATE PROCEDURE p_one() SELECT 1",
        // MariaDB 10.10+ names this collation two ways; the check must know both.
        "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(10)) COLLATE utf8mb4_uca1400_ai_ci",
    ]);
    let db = database(&source(), "pc_whole", &statements).await;
    let spec = task(
        &source(),
        &destination(),
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": unique_name("pc_whole_dst")}]),
    );
    let report = precheck(&spec).await;
    for c in &report.checks {
        assert_eq!(c.status, CheckStatus::Pass, "{c:#?}");
    }
}

#[tokio::test]
async fn a_closed_port_and_a_silent_listener_fail_distinctly_within_the_timeout() {
    let listener = SilentListener::start();
    let mut closed = endpoint(&source());
    closed["port"] = json!(closed_port());
    let mut silent = endpoint(&destination());
    silent["port"] = json!(listener.addr.port());
    let json = task_json(
        closed,
        silent,
        json!({"mode": "resync"}),
        json!([{"database": "shop"}]),
    );
    let spec = parse_task_spec(&json.to_string()).unwrap();
    let started = std::time::Instant::now();
    let report = precheck(&spec).await;
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_millis(2_500),
        "took {took:?}"
    );
    assert_check(
        &report,
        ids::SOURCE_CONNECTIVITY,
        CheckStatus::Fail,
        &["connection refused", "nothing listens", "start the server"],
    );
    assert_check(
        &report,
        ids::DESTINATION_CONNECTIVITY,
        CheckStatus::Fail,
        &["sent no MySQL greeting within 2 s", "MySQL/MariaDB port"],
    );
    // Checks that need a server's facts say why they did not run; the others still run.
    assert_check(
        &report,
        ids::OBJECTS_EXIST,
        CheckStatus::Fail,
        &["skipped: the source (127.0.0.1:"],
    );
    assert_check(
        &report,
        ids::DESTINATION_LOCAL_INFILE,
        CheckStatus::Fail,
        &["skipped: the destination"],
    );
    assert_check(&report, ids::SCHEDULE_WINDOW, CheckStatus::Pass, &[]);
    assert_check(&report, ids::MAPPING_WARNINGS, CheckStatus::Pass, &[]);
    assert_eq!(report.checks.len(), ids::ALL.len());
}

#[tokio::test]
async fn a_wrong_password_is_access_denied_and_never_shown() {
    let db = database(&source(), "pc_pw", SHOP).await;
    let wrong = format!(
        "{}-wrong-{}",
        source().password().expose_secret(),
        unique_name("pw")
    );
    let mut src = endpoint(&source());
    src["password"] = json!(wrong);
    let json = task_json(
        src,
        endpoint(&destination()),
        json!({"mode": "resync"}),
        json!([{"database": db, "rename": unique_name("pc_pw_dst")}]),
    );
    let spec = parse_task_spec(&json.to_string()).unwrap();
    let report = precheck(&spec).await;
    assert_check(
        &report,
        ids::SOURCE_CONNECTIVITY,
        CheckStatus::Fail,
        &[
            "access denied for user `tidemark`",
            "the password is not shown",
        ],
    );
    assert_check(
        &report,
        ids::DESTINATION_CONNECTIVITY,
        CheckStatus::Pass,
        &[],
    );
    let serialized = serde_json::to_string(&report).unwrap();
    assert!(
        !serialized.contains(&wrong),
        "the password leaked into the report"
    );
    assert!(
        !format!("{report:?}").contains(&wrong),
        "the password leaked into Debug"
    );
}
