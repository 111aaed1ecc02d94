//! The pure parts of the three scheduling policies: the names they give to what they create, what
//! a run records about them, and which replicas a task drops. The SQL lives in the engine, the
//! orchestration in the service.
//!
//! - multi-replica: [`replica_database_name`] (`<db>_<yyyymmdd_HH_mm_ss>` in the task's zone),
//!   [`replicas_to_drop`] (only replicas this task recorded on its own runs);
//! - resync: [`shadow_table_name`] and [`retired_table_name`], deterministic per table and within
//!   64 characters, so a retry finds and drops what a failed run left;
//! - incremental: [`IncrementalWindow`], the bounds one run reads once and stores on its run.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::ident::MAX_IDENTIFIER_CHARS;
use crate::state::{RunRecord, RunStatus};

/// The name of the replica of `target_db` made by the cycle scheduled at `scheduled`, in the
/// task's time zone (DTS's format): `shop_20261201_02_30_00`.
pub fn replica_database_name(target_db: &str, scheduled: Timestamp, tz: &TimeZone) -> String {
    let local = scheduled.to_zoned_datetime(tz.clone());
    format!("{target_db}_{}", local.strftime("%Y%m%d_%H_%M_%S"))
}

/// What a multi-replica run records on `run.plan` under `"replicas"`: the databases it created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaPlan {
    /// Replica databases this run creates (one per selected database).
    pub replicas: Vec<String>,
    /// Older replicas this run dropped under `keep_replicas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

impl ReplicaPlan {
    /// The replica plan a run recorded, if it recorded one.
    pub fn of_run(run: &RunRecord) -> Option<ReplicaPlan> {
        let replicas = run.plan.get("replicas")?;
        serde_json::from_value(serde_json::json!({
            "replicas": replicas,
            "dropped": run.plan.get("dropped").cloned().unwrap_or_else(|| serde_json::json!([])),
        }))
        .ok()
    }
}

/// The replicas to drop after a successful run so that the newest `keep` remain, from the task's
/// own run records (newest first or in any order): only databases a succeeded run of this task
/// recorded and no later run already dropped. Databases of failed runs were dropped by the run
/// itself. Never names a database the task did not record.
pub fn replicas_to_drop(runs: &[RunRecord], keep: u32) -> Vec<String> {
    let mut made: Vec<(Timestamp, Vec<String>)> = Vec::new();
    let mut already_dropped: Vec<String> = Vec::new();
    for run in runs {
        let Some(plan) = ReplicaPlan::of_run(run) else {
            continue;
        };
        already_dropped.extend(plan.dropped.iter().cloned());
        if run.status == RunStatus::Succeeded {
            made.push((run.key.scheduled_time, plan.replicas));
        }
    }
    made.sort_by_key(|m| std::cmp::Reverse(m.0));
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    made.into_iter()
        .skip(keep)
        .flat_map(|(_, names)| names)
        .filter(|name| !already_dropped.contains(name))
        .collect()
}

/// The shadow a resync loads `table` (a destination table of `database`) into:
/// `_tm_s_<hash>_<table, truncated>`, at most 64 characters, the same on every run.
pub fn shadow_table_name(database: &str, table: &str) -> String {
    derived_table_name("_tm_s_", database, table)
}

/// The name a resync gives the previous copy of `table` during the swap, before dropping it.
pub fn retired_table_name(database: &str, table: &str) -> String {
    derived_table_name("_tm_o_", database, table)
}

/// Whether a table name is one of the policies' working names (shadow or retired copy).
pub fn is_working_table_name(name: &str) -> bool {
    name.starts_with("_tm_s_") || name.starts_with("_tm_o_")
}

fn derived_table_name(prefix: &str, database: &str, table: &str) -> String {
    let hash = fnv1a(&[database.as_bytes(), b"\0", table.as_bytes()]);
    let head = format!("{prefix}{:08x}_", hash & 0xffff_ffff);
    let room = MAX_IDENTIFIER_CHARS.saturating_sub(head.chars().count());
    let tail: String = table.chars().take(room).collect();
    format!("{head}{tail}")
}

/// FNV-1a, 64 bits: stable across builds and platforms (std's hasher is not).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// One table's window of an incremental run, read once at the start and stored on the run:
/// every chunk copies the rows with `low <= column <= high`. Values are the column's text in full
/// precision (UTC for TIMESTAMP, the writer's zone for DATETIME).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementalWindow {
    /// `db.table` in source names.
    pub table: String,
    pub column: String,
    /// `previous - lookback`; `None` on the table's first cycle: a full copy.
    pub low: Option<String>,
    /// The window's upper bound and the watermark once the run succeeds: the newest row up to
    /// the lag, never below `previous`. `None` when the table is empty on its first cycle.
    pub high: Option<String>,
    /// The watermark before this run (`None` on the first cycle).
    pub previous: Option<String>,
    /// No row lies in `[low, high]`: the run copies nothing for this table.
    pub unchanged: bool,
}

/// Orders two watermarks as the servers print them (`YYYY-MM-DD HH:MM:SS[.ffffff]`): the date and
/// time by their text, the fractions as digits, so `.5` and `.500000` are the same instant.
pub fn compare_watermarks(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |v: &str| -> (String, String) {
        let (whole, fraction) = v.trim().split_once('.').unwrap_or((v.trim(), ""));
        (whole.to_owned(), fraction.trim_end_matches('0').to_owned())
    };
    let ((a_whole, a_fraction), (b_whole, b_fraction)) = (split(a), split(b));
    a_whole
        .cmp(&b_whole)
        .then_with(|| a_fraction.cmp(&b_fraction))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn watermarks_compare_as_instants() {
        let cmp = compare_watermarks;
        assert_eq!(
            cmp("2026-12-01 10:00:00", "2026-12-01 09:59:59.999999"),
            Ordering::Greater
        );
        assert_eq!(
            cmp("2026-12-01 10:00:00.5", "2026-12-01 10:00:00.500000"),
            Ordering::Equal
        );
        assert_eq!(
            cmp("2026-12-01 10:00:00", "2026-12-01 10:00:00.000000"),
            Ordering::Equal
        );
        assert_eq!(
            cmp("2026-12-01 10:00:00.05", "2026-12-01 10:00:00.4"),
            Ordering::Less
        );
        assert_eq!(
            cmp("2025-12-31 23:59:59.9", "2026-01-01 00:00:00"),
            Ordering::Less
        );
    }
    use crate::state::{RunKey, RunTrigger};

    #[test]
    fn replica_names_use_the_tasks_zone() {
        let at: Timestamp = "2026-12-01T18:30:05Z".parse().unwrap();
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        assert_eq!(
            replica_database_name("shop", at, &tz),
            "shop_20261202_02_30_05"
        );
        assert_eq!(
            replica_database_name("shop", at, &TimeZone::UTC),
            "shop_20261201_18_30_05"
        );
    }

    #[test]
    fn working_names_fit_and_are_stable_and_distinct() {
        let long = "t".repeat(64);
        let s = shadow_table_name("db", &long);
        assert_eq!(s.chars().count(), 64);
        assert_eq!(s, shadow_table_name("db", &long));
        assert_ne!(s, shadow_table_name("db2", &long));
        assert_ne!(s, retired_table_name("db", &long));
        assert!(is_working_table_name(&s));
        assert!(shadow_table_name("db", "orders").ends_with("_orders"));
        // Two long names differing only past the cut still differ (by the hash).
        let a = shadow_table_name("db", &format!("{}a", "x".repeat(63)));
        let b = shadow_table_name("db", &format!("{}b", "x".repeat(63)));
        assert_ne!(a, b);
        // Multi-byte names are cut on characters.
        let u = shadow_table_name("db", &"é".repeat(64));
        assert_eq!(u.chars().count(), 64);
    }

    fn run(at: &str, status: RunStatus, plan: serde_json::Value) -> RunRecord {
        let t: Timestamp = at.parse().unwrap();
        RunRecord {
            key: RunKey {
                task_id: "t".into(),
                scheduled_time: t,
            },
            trigger: RunTrigger::Schedule,
            status,
            phase: None,
            error: None,
            created_at: t,
            finished_at: None,
            heartbeat: t,
            chunks_total: 0,
            chunks_done: 0,
            chunks_dispatched: 0,
            plan,
            expires_at: None,
            version: 1,
        }
    }

    #[test]
    fn keeps_the_newest_replicas_of_succeeded_runs_only() {
        let runs = vec![
            run(
                "2026-01-04T00:00:00Z",
                RunStatus::Succeeded,
                serde_json::json!({"replicas": ["a_4"]}),
            ),
            run(
                "2026-01-01T00:00:00Z",
                RunStatus::Succeeded,
                serde_json::json!({"replicas": ["a_1"]}),
            ),
            run(
                "2026-01-03T00:00:00Z",
                RunStatus::Failed,
                serde_json::json!({"replicas": ["a_3"]}),
            ),
            run(
                "2026-01-02T00:00:00Z",
                RunStatus::Succeeded,
                serde_json::json!({"replicas": ["a_2"]}),
            ),
            run(
                "2026-01-05T00:00:00Z",
                RunStatus::Succeeded,
                serde_json::Value::Null,
            ),
        ];
        assert_eq!(replicas_to_drop(&runs, 2), vec!["a_1".to_owned()]);
        assert_eq!(replicas_to_drop(&runs, 1), vec!["a_2", "a_1"]);
        assert!(replicas_to_drop(&runs, 3).is_empty());
        // Already dropped by a later run: not again.
        let mut with_drop = runs.clone();
        with_drop.push(run(
            "2026-01-06T00:00:00Z",
            RunStatus::Succeeded,
            serde_json::json!({"replicas": ["a_6"], "dropped": ["a_1"]}),
        ));
        assert_eq!(replicas_to_drop(&with_drop, 2), vec!["a_2".to_owned()]);
    }
}
