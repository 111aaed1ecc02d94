//! The precheck's report: one [`CheckResult`] per check, each naming the objects concerned and the
//! fix. The checks themselves live in the engine (`tidemark_engine::precheck`); this module holds the
//! types every layer shares (service, stores, CLI) and the stable check ids.
//!
//! A task may start only when its latest precheck [`passed`](PrecheckReport::passed): no check
//! failed. Warnings are shown, never blocking.
//!
//! # Check ids
//!
//! Stable: APIs, stored reports and scripts depend on them.
//!
//! | id | checks | worst status |
//! |---|---|---|
//! | `source_connectivity` | the source answers within the connect timeout, accepts the login and TLS | fail |
//! | `destination_connectivity` | the same for the destination | fail |
//! | `server_versions` | supported versions; flavour pair (MySQL 8 -> MariaDB); `caching_sha2_password` without TLS | fail |
//! | `source_privileges` | SELECT on every selected table; SHOW VIEW, TRIGGER and reading routine definitions where the schema of a whole database is migrated | fail |
//! | `destination_privileges` | what the policy and migration types need on the target databases (CREATE, DROP, ALTER, INDEX, INSERT, ...) | fail |
//! | `binlog_routines` | binary logging on the destination with routines or triggers to create needs `log_bin_trust_function_creators` or SUPER | fail |
//! | `objects_exist` | the selected databases, tables, columns and timestamp columns exist on the source | fail |
//! | `timestamp_column_type` | each timestamp column is TIMESTAMP, DATETIME or DATE | fail |
//! | `timestamp_column_indexed` | each timestamp column leads an index | warn |
//! | `timestamp_column_nulls` | no row has a NULL timestamp | warn |
//! | `primary_keys` | every table has a primary key or a NOT NULL unique key | warn |
//! | `destination_conflicts` | objects on the destination in the policy's way | fail |
//! | `name_mapping` | destination names fit in 64 characters (with the replica suffix) and do not collide | fail |
//! | `mapping_warnings` | dependent objects (views, triggers, routines) whose references name mapping cannot rewrite | warn |
//! | `storage_engines` | the destination has every storage engine the selected tables use | fail |
//! | `charsets_collations` | the destination has every character set and collation the selected objects use | fail |
//! | `destination_local_infile` | a MySQL destination has `local_infile` on (else the slower INSERT fallback; MariaDB loads with bulk executions) | warn |
//! | `max_allowed_packet` | both servers' `max_allowed_packet` hold the largest selected row | fail |
//! | `autoinc_lock_mode` | tables with an AUTO_INCREMENT column load one chunk at a time where the destination's `innodb_autoinc_lock_mode` is below 2; mode 2 is suggested where its binary log allows it | warn |
//! | `foreign_keys` | foreign keys among incremental tables: checks are off during loads | warn |
//! | `destination_triggers` | triggers on incremental target tables would fire again for copied rows | warn |
//! | `lower_case_table_names` | the setting on both sides, and names that would collide | fail |
//! | `schedule_window` | at least one cycle is left in the schedule's window | fail |
//!
//! When an endpoint is unreachable, the checks that need its facts are still listed, as `fail`
//! with a message that starts `skipped: the source (host:port) is unreachable`, so a report always
//! has the same ids and a reader never mistakes a missing check for a passed one.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The stable check ids (see the table in the module docs).
pub mod ids {
    pub const SOURCE_CONNECTIVITY: &str = "source_connectivity";
    pub const DESTINATION_CONNECTIVITY: &str = "destination_connectivity";
    pub const SERVER_VERSIONS: &str = "server_versions";
    pub const SOURCE_PRIVILEGES: &str = "source_privileges";
    pub const DESTINATION_PRIVILEGES: &str = "destination_privileges";
    pub const BINLOG_ROUTINES: &str = "binlog_routines";
    pub const OBJECTS_EXIST: &str = "objects_exist";
    pub const TIMESTAMP_COLUMN_TYPE: &str = "timestamp_column_type";
    pub const TIMESTAMP_COLUMN_INDEXED: &str = "timestamp_column_indexed";
    pub const TIMESTAMP_COLUMN_NULLS: &str = "timestamp_column_nulls";
    pub const PRIMARY_KEYS: &str = "primary_keys";
    pub const DESTINATION_CONFLICTS: &str = "destination_conflicts";
    pub const NAME_MAPPING: &str = "name_mapping";
    pub const MAPPING_WARNINGS: &str = "mapping_warnings";
    pub const STORAGE_ENGINES: &str = "storage_engines";
    pub const CHARSETS_COLLATIONS: &str = "charsets_collations";
    pub const DESTINATION_LOCAL_INFILE: &str = "destination_local_infile";
    pub const MAX_ALLOWED_PACKET: &str = "max_allowed_packet";
    pub const AUTOINC_LOCK_MODE: &str = "autoinc_lock_mode";
    pub const FOREIGN_KEYS: &str = "foreign_keys";
    pub const DESTINATION_TRIGGERS: &str = "destination_triggers";
    pub const LOWER_CASE_TABLE_NAMES: &str = "lower_case_table_names";
    pub const SCHEDULE_WINDOW: &str = "schedule_window";

    /// Every id, in report order.
    pub const ALL: [&str; 23] = [
        SOURCE_CONNECTIVITY,
        DESTINATION_CONNECTIVITY,
        SERVER_VERSIONS,
        SOURCE_PRIVILEGES,
        DESTINATION_PRIVILEGES,
        BINLOG_ROUTINES,
        OBJECTS_EXIST,
        TIMESTAMP_COLUMN_TYPE,
        TIMESTAMP_COLUMN_INDEXED,
        TIMESTAMP_COLUMN_NULLS,
        PRIMARY_KEYS,
        DESTINATION_CONFLICTS,
        NAME_MAPPING,
        MAPPING_WARNINGS,
        STORAGE_ENGINES,
        CHARSETS_COLLATIONS,
        DESTINATION_LOCAL_INFILE,
        MAX_ALLOWED_PACKET,
        AUTOINC_LOCK_MODE,
        FOREIGN_KEYS,
        DESTINATION_TRIGGERS,
        LOWER_CASE_TABLE_NAMES,
        SCHEDULE_WINDOW,
    ];
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Nothing to do.
    Pass,
    /// The task can run, with the consequence the message states.
    Warn,
    /// A cycle would fail or lose data; the task cannot start.
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// A stable id from [`ids`].
    pub id: String,
    pub status: CheckStatus,
    /// What was found, naming the objects. Never contains a password.
    pub message: String,
    /// What to do about it (absent on a pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    /// The objects concerned: `shop`, `shop.orders`, `shop.orders.updated_at`, `source`,
    /// `destination`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
}

impl CheckResult {
    /// A passed check.
    pub fn pass(id: &str, message: impl Into<String>) -> CheckResult {
        CheckResult {
            id: id.to_owned(),
            status: CheckStatus::Pass,
            message: message.into(),
            remedy: None,
            objects: Vec::new(),
        }
    }

    /// A warning, with its remedy.
    pub fn warn(id: &str, message: impl Into<String>, remedy: impl Into<String>) -> CheckResult {
        CheckResult {
            status: CheckStatus::Warn,
            remedy: Some(remedy.into()),
            ..CheckResult::pass(id, message)
        }
    }

    /// A failure, with its remedy.
    pub fn fail(id: &str, message: impl Into<String>, remedy: impl Into<String>) -> CheckResult {
        CheckResult {
            status: CheckStatus::Fail,
            remedy: Some(remedy.into()),
            ..CheckResult::pass(id, message)
        }
    }

    /// The same result, naming these objects.
    pub fn with_objects(mut self, objects: impl IntoIterator<Item = String>) -> CheckResult {
        self.objects.extend(objects);
        self
    }
}

/// A dependent object whose references name mapping cannot rewrite safely (produced by schema
/// migration's planning; the precheck reports each as a warning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingWarningInput {
    /// The dependent object, e.g. `shop.v_orders` or `shop.trg_orders_bi`.
    pub object: String,
    /// Why its references cannot be rewritten.
    pub message: String,
}

/// A whole precheck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecheckReport {
    pub checks: Vec<CheckResult>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

impl PrecheckReport {
    /// No check failed: the task may start.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != CheckStatus::Fail)
    }

    /// Ids of the failed checks, in report order.
    pub fn failed_ids(&self) -> Vec<String> {
        self.ids_with(CheckStatus::Fail)
    }

    /// Ids of the checks that warned, in report order.
    pub fn warned_ids(&self) -> Vec<String> {
        self.ids_with(CheckStatus::Warn)
    }

    /// The result of one check, if it ran.
    pub fn check(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    fn ids_with(&self, status: CheckStatus) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(statuses: &[(&str, CheckStatus)]) -> PrecheckReport {
        PrecheckReport {
            checks: statuses
                .iter()
                .map(|(id, s)| CheckResult {
                    status: *s,
                    ..CheckResult::pass(id, "m")
                })
                .collect(),
            started_at: Timestamp::UNIX_EPOCH,
            finished_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_report_passes_unless_a_check_failed() {
        let warned = report(&[("a", CheckStatus::Pass), ("b", CheckStatus::Warn)]);
        assert!(warned.passed());
        assert_eq!(warned.warned_ids(), ["b"]);
        assert!(warned.failed_ids().is_empty());
        let failed = report(&[("a", CheckStatus::Fail), ("b", CheckStatus::Warn)]);
        assert!(!failed.passed());
        assert_eq!(failed.failed_ids(), ["a"]);
    }

    #[test]
    fn statuses_and_results_serialize_as_the_api_shows_them() {
        let r = CheckResult::fail("primary_keys", "no key", "add one")
            .with_objects(["shop.orders".to_owned()]);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": "primary_keys", "status": "fail", "message": "no key",
                               "remedy": "add one", "objects": ["shop.orders"]})
        );
        let pass = serde_json::to_value(CheckResult::pass("x", "ok")).unwrap();
        assert_eq!(
            pass,
            serde_json::json!({"id": "x", "status": "pass", "message": "ok"})
        );
    }

    #[test]
    fn ids_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for id in ids::ALL {
            assert!(seen.insert(id), "{id} twice");
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{id}"
            );
        }
    }
}
