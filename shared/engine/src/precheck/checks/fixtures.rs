//! Recorded server facts for the checks' unit tests.
//!
//! The MariaDB 10.11 facts mirror what `read` returns from the local stack's servers
//! (`tests/tests/it/precheck_facts.rs` checks those facts on the real servers). The MySQL 8.0
//! facts are written by hand from MySQL 8.0's documented defaults (`SHOW COLLATION`, `SHOW
//! ENGINES`, `caching_sha2_password` as the default authentication plugin): MySQL 8 cannot be
//! installed here.

use jiff::Timestamp;
use tidemark_core::TaskSpec;
use tidemark_core::precheck::{CheckResult, CheckStatus};

use super::CheckInput;
use crate::connect::{Flavor, ServerInfo};
use crate::precheck::facts::{
    ColumnFacts, Hosting, KeyFacts, SchemaFacts, ServerFacts, ServerVariables, TableFacts,
    TableKind,
};
use crate::precheck::grants::Grants;

fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A MariaDB 10.11 server where the user has every privilege and nothing is selected yet.
pub fn mariadb() -> ServerFacts {
    ServerFacts {
        info: ServerInfo {
            flavor: Flavor::MariaDb,
            version: "10.11.19".into(),
            version_string: "10.11.19-MariaDB-0+deb12u1".into(),
            version_comment: "Debian 12".into(),
        },
        current_user: "tidemark@127.0.0.1".into(),
        auth_plugin: Some("mysql_native_password".into()),
        variables: ServerVariables {
            lower_case_table_names: 0,
            local_infile: true,
            max_allowed_packet: 64 << 20,
            log_bin: false,
            log_bin_trust_function_creators: false,
            sql_mode: "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION".into(),
            time_zone: "SYSTEM".into(),
            system_time_zone: "UTC".into(),
            innodb_autoinc_lock_mode: 1,
            binlog_format: "MIXED".into(),
            hosting: Hosting::Plain,
        },
        charsets: set(&["ascii", "binary", "latin1", "utf8mb3", "utf8mb4"]),
        collations: set(&[
            "ascii_general_ci",
            "binary",
            "latin1_swedish_ci",
            "utf8mb3_general_ci",
            "utf8mb4_bin",
            "utf8mb4_general_ci",
            "utf8mb4_unicode_520_ci",
            "utf8mb4_unicode_ci",
            "utf8mb4_uca1400_ai_ci",
        ]),
        engines: set(&[
            "ARIA",
            "CSV",
            "INNODB",
            "MEMORY",
            "MRG_MYISAM",
            "MYISAM",
            "PERFORMANCE_SCHEMA",
            "SEQUENCE",
        ]),
        grants: Grants::parse([
            "GRANT ALL PRIVILEGES ON *.* TO `tidemark`@`127.0.0.1` WITH GRANT OPTION",
        ]),
        databases: set(&["information_schema", "mysql", "performance_schema", "sys"]),
        schemas: Vec::new(),
    }
}

/// A MySQL 8.0 server (recorded by hand, see the module docs).
pub fn mysql8() -> ServerFacts {
    let mut f = mariadb();
    f.info = ServerInfo {
        flavor: Flavor::MySql,
        version: "8.0.36".into(),
        version_string: "8.0.36".into(),
        version_comment: "MySQL Community Server - GPL".into(),
    };
    f.current_user = "dts@%".into();
    f.auth_plugin = Some("caching_sha2_password".into());
    f.collations.extend(set(&[
        "utf8mb4_0900_ai_ci",
        "utf8mb4_0900_as_ci",
        "utf8mb4_0900_as_cs",
        "utf8mb4_0900_bin",
    ]));
    f.collations.remove("utf8mb4_uca1400_ai_ci");
    f.engines = set(&[
        "ARCHIVE",
        "BLACKHOLE",
        "CSV",
        "INNODB",
        "MEMORY",
        "MRG_MYISAM",
        "MYISAM",
        "PERFORMANCE_SCHEMA",
    ]);
    f.grants = Grants::parse(["GRANT ALL PRIVILEGES ON *.* TO `dts`@`%` WITH GRANT OPTION"]);
    f
}

pub fn column(name: &str, data_type: &str, nullable: bool) -> ColumnFacts {
    let text = matches!(data_type, "varchar" | "char" | "text" | "longtext");
    ColumnFacts {
        name: name.into(),
        data_type: data_type.into(),
        nullable,
        charset: text.then(|| "utf8mb4".into()),
        collation: text.then(|| "utf8mb4_general_ci".into()),
        has_nulls: nullable.then_some(false),
    }
}

pub fn key(name: &str, unique: bool, columns: &[&str]) -> KeyFacts {
    KeyFacts {
        name: name.into(),
        unique,
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
    }
}

/// `shop.orders` (key `id`, indexed `updated_at`) and `shop.customers` (key `id`, `changed_at`
/// indexed), InnoDB, utf8mb4_general_ci.
pub fn shop() -> SchemaFacts {
    let table = |name: &str, ts: &str| TableFacts {
        name: name.into(),
        kind: TableKind::Table,
        engine: Some("INNODB".into()),
        collation: Some("utf8mb4_general_ci".into()),
        rows_estimate: 1000,
        columns: vec![
            column("id", "bigint", false),
            column("note", "varchar", true),
            column(ts, "datetime", false),
        ],
        keys: vec![
            key("PRIMARY", true, &["id"]),
            key(&format!("ix_{ts}"), false, &[ts]),
        ],
        foreign_keys: Vec::new(),
        largest_row_bytes: Some(65_535),
        has_rows: None,
        auto_increment: false,
    };
    SchemaFacts {
        name: "shop".into(),
        charset: "utf8mb4".into(),
        collation: "utf8mb4_general_ci".into(),
        tables: vec![
            table("orders", "updated_at"),
            table("customers", "changed_at"),
        ],
        triggers: Vec::new(),
        routines: Vec::new(),
    }
}

/// A source holding `shop`.
pub fn source_with_shop() -> ServerFacts {
    let mut f = mariadb();
    f.databases.insert("shop".into());
    f.schemas.push(shop());
    f
}

/// A task spec with the given policy and objects, a daily 02:30 UTC schedule over 2026.
pub fn spec(policy: serde_json::Value, objects: serde_json::Value) -> TaskSpec {
    let json = serde_json::json!({
        "name": "t",
        "source": {"host": "127.0.0.1", "port": 3306, "user": "tidemark", "password": "pw"},
        "destination": {"host": "127.0.0.1", "port": 3307, "user": "tidemark", "password": "pw"},
        "policy": policy,
        "schedule": {"cycle": "day", "at": "02:30", "time_zone": "UTC",
                     "start": "2026-01-01", "end": "2026-12-31"},
        "objects": objects,
    });
    match tidemark_core::parse_task_spec(&json.to_string()) {
        Ok(spec) => spec,
        Err(e) => panic!("fixture spec: {e}"),
    }
}

/// The incremental spec over `shop.orders` and `shop.customers`.
pub fn incremental_shop() -> TaskSpec {
    spec(
        serde_json::json!({"mode": "incremental"}),
        serde_json::json!([{"database": "shop", "tables": [
            {"name": "orders", "timestamp_column": "updated_at"},
            {"name": "customers", "timestamp_column": "changed_at"}]}]),
    )
}

/// The resync spec over the whole `shop` database.
pub fn resync_shop() -> TaskSpec {
    spec(
        serde_json::json!({"mode": "resync"}),
        serde_json::json!([{"database": "shop"}]),
    )
}

/// 2026-06-01T00:00:00Z, inside the fixtures' schedule window.
pub fn now() -> Timestamp {
    Timestamp::from_second(1_780_272_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn input<'a>(
    spec: &'a TaskSpec,
    source: &'a ServerFacts,
    destination: &'a ServerFacts,
) -> CheckInput<'a> {
    CheckInput {
        spec,
        source: Ok(source),
        destination: Ok(destination),
        mapping_warnings: &[],
        now: now(),
    }
}

/// Runs one check and returns its result (skips are results too).
pub fn run(check: super::Check, input: &CheckInput<'_>) -> CheckResult {
    check(input).unwrap_or_else(|r| r)
}

#[track_caller]
pub fn assert_status(result: &CheckResult, status: CheckStatus, needles: &[&str]) {
    assert_eq!(result.status, status, "{result:#?}");
    let text = format!(
        "{} {}",
        result.message,
        result.remedy.as_deref().unwrap_or("")
    );
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in {result:#?}");
    }
}
