//! Name mapping (destination names valid and distinct, the dependent objects mapping cannot
//! rewrite) and the schedule's window.

use std::collections::BTreeMap;

use tidemark_core::Policy;
use tidemark_core::ident::{IdentKind, MAX_IDENTIFIER_CHARS, check_identifier};
use tidemark_core::precheck::{CheckResult, ids};
use tidemark_core::schedule::Schedule;

use super::CheckInput;
use super::privileges::replica_suffix;
use super::support::{listing, object, selected_tables};

pub fn name_mapping(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::NAME_MAPPING;
    let spec = input.spec;
    // Without the destination's facts, compare the stricter way (case-insensitively).
    let fold = input.destination.map(|d| d.folds_case()).unwrap_or(true);
    let key = |name: &str| {
        if fold {
            name.to_lowercase()
        } else {
            name.to_owned()
        }
    };
    let suffix = match spec.policy {
        Policy::MultiReplica(_) => replica_suffix(spec, input.now),
        _ => String::new(),
    };
    let mut problems = Vec::new();
    let mut objects = Vec::new();
    let mut databases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut tables: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for db in &spec.objects {
        let target = format!("{}{suffix}", db.target_name());
        if let Err(why) = check_identifier(IdentKind::Database, &target) {
            problems.push(format!("`{}` -> `{target}`: {why}", db.database));
            objects.push(db.database.clone());
        }
        databases
            .entry(key(db.target_name()))
            .or_default()
            .push(db.database.clone());
        for t in db.tables.iter().flatten() {
            let source = object(&db.database, &t.name);
            if let Err(why) = check_identifier(IdentKind::Table, t.target_name()) {
                problems.push(format!("`{source}` -> `{}`: {why}", t.target_name()));
                objects.push(source.clone());
            }
            for c in t.columns.iter().flatten() {
                if let Err(why) = check_identifier(IdentKind::Column, c.target_name()) {
                    problems.push(format!(
                        "`{}` -> `{}`: {why}",
                        object(&source, &c.name),
                        c.target_name()
                    ));
                    objects.push(object(&source, &c.name));
                }
            }
        }
    }
    if let Ok(src) = input.source {
        for t in selected_tables(spec, src) {
            tables
                .entry((key(t.database.target_name()), key(t.target_table())))
                .or_default()
                .push(t.name());
        }
    }
    for (target, sources) in &databases {
        if sources.len() > 1 {
            problems.push(format!(
                "{} all map to the database `{target}`",
                listing(sources)
            ));
            objects.extend(sources.iter().cloned());
        }
    }
    for ((db, table), sources) in &tables {
        if sources.len() > 1 {
            problems.push(format!(
                "{} all map to `{}`",
                listing(sources),
                object(db, table)
            ));
            objects.extend(sources.iter().cloned());
        }
    }
    if problems.is_empty() {
        return Ok(CheckResult::pass(
            id,
            format!(
                "every destination name is valid, at most {MAX_IDENTIFIER_CHARS} characters{}, and distinct",
                if suffix.is_empty() {
                    ""
                } else {
                    " with the replica suffix"
                }
            ),
        ));
    }
    Ok(CheckResult::fail(
        id,
        format!("name mapping: {}", problems.join("; ")),
        "give the objects a `rename` that is valid, short enough and distinct on the destination",
    )
    .with_objects(objects))
}

pub fn mapping_warnings(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::MAPPING_WARNINGS;
    let warnings = input.mapping_warnings;
    if warnings.is_empty() {
        return Ok(CheckResult::pass(
            id,
            "name mapping can rewrite every reference in views, triggers and routines",
        ));
    }
    let details: Vec<String> = warnings
        .iter()
        .map(|w| format!("`{}`: {}", w.object, w.message))
        .collect();
    Ok(CheckResult::warn(
        id,
        format!(
            "{} dependent object(s) keep references that name mapping cannot rewrite, and may \
             fail or read the wrong objects on the destination: {}",
            warnings.len(),
            details.join("; ")
        ),
        "check each object on the destination after the first cycle, or drop the `rename`s \
         they depend on",
    )
    .with_objects(warnings.iter().map(|w| w.object.clone())))
}

pub fn schedule_window(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::SCHEDULE_WINDOW;
    let spec = &input.spec.schedule;
    let schedule = match Schedule::from_spec(spec) {
        Ok(s) => s,
        Err(e) => {
            return Ok(CheckResult::fail(id, e.to_string(), "fix the schedule"));
        }
    };
    match schedule.next_after(input.now) {
        Some(next) => Ok(CheckResult::pass(
            id,
            format!(
                "the next cycle runs at {}",
                next.strftime("%Y-%m-%dT%H:%M:%S%:z [%Q]")
            ),
        )),
        None => Ok(CheckResult::fail(
            id,
            format!(
                "no cycle is left in the schedule's window ({} to {}, {}) after {}",
                spec.start, spec.end, spec.time_zone, input.now
            ),
            "move `schedule.end` later (at most 365 days after `start`), or set a new `start` \
             and `end`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use tidemark_core::TaskSpec;
    use tidemark_core::precheck::{CheckStatus, MappingWarningInput};

    use super::*;
    use crate::precheck::checks::fixtures::{self, assert_status, input, run};

    /// A spec that skipped validation, as one stored before a rule existed would.
    fn unvalidated(policy: serde_json::Value, objects: serde_json::Value) -> TaskSpec {
        let mut json = serde_json::to_value(fixtures::spec(
            policy,
            serde_json::json!([{"database": "x"}]),
        ))
        .unwrap();
        json["objects"] = objects;
        for side in ["source", "destination"] {
            json[side]["password_env"] = serde_json::json!("PW");
        }
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn valid_distinct_names_pass() {
        let spec = fixtures::resync_shop();
        let (src, dst) = (fixtures::source_with_shop(), fixtures::mariadb());
        assert_status(
            &run(name_mapping, &input(&spec, &src, &dst)),
            CheckStatus::Pass,
            &["distinct"],
        );
    }

    #[test]
    fn long_replica_names_and_collisions_fail() {
        let long = "d".repeat(50);
        let spec = unvalidated(
            serde_json::json!({"mode": "multi_replica"}),
            serde_json::json!([{"database": long}, {"database": "shop"}, {"database": "other", "rename": "shop"}]),
        );
        let (src, dst) = (fixtures::source_with_shop(), fixtures::mariadb());
        let r = run(name_mapping, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &[
                "_20260601_02_30_00`: the database name is 68 characters",
                "`shop`, `other` all map to the database `shop`",
            ],
        );
        let spec = unvalidated(
            serde_json::json!({"mode": "resync"}),
            serde_json::json!([{"database": "shop", "tables": [{"name": "orders", "rename": "t"}, {"name": "customers", "rename": "t"}]}]),
        );
        let r = run(name_mapping, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &["`shop.orders`, `shop.customers` all map to `shop.t`"],
        );
    }

    #[test]
    fn mapping_warnings_name_each_object() {
        let spec = fixtures::resync_shop();
        let (src, dst) = (fixtures::source_with_shop(), fixtures::mariadb());
        let mut i = input(&spec, &src, &dst);
        assert_status(&run(mapping_warnings, &i), CheckStatus::Pass, &[]);
        let warnings = [MappingWarningInput {
            object: "shop.v_orders".into(),
            message: "builds a table name with dynamic SQL".into(),
        }];
        i.mapping_warnings = &warnings;
        let r = run(mapping_warnings, &i);
        assert_status(
            &r,
            CheckStatus::Warn,
            &["`shop.v_orders`: builds a table name with dynamic SQL"],
        );
        assert_eq!(r.objects, ["shop.v_orders"]);
    }

    #[test]
    fn a_schedule_without_cycles_left_fails() {
        let spec = fixtures::resync_shop();
        let (src, dst) = (fixtures::source_with_shop(), fixtures::mariadb());
        let mut i = input(&spec, &src, &dst);
        assert_status(
            &run(schedule_window, &i),
            CheckStatus::Pass,
            &["2026-06-01T02:30:00+00:00"],
        );
        i.now = "2027-01-01T00:00:00Z".parse().unwrap();
        assert_status(
            &run(schedule_window, &i),
            CheckStatus::Fail,
            &["no cycle is left", "2026-12-31", "schedule.end"],
        );
    }
}
