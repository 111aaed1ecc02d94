//! Privileges: reading every selected object on the source, creating and loading everything the
//! policy needs on the destination.
//!
//! Privileges are read from `SHOW GRANTS` ([`crate::precheck::grants`]). On both servers, triggers
//! are invisible to a user without TRIGGER, and routines to a user who may not read their
//! definitions: when a whole database's schema is migrated, the privileges are required even if
//! no trigger or routine is visible, because one the user cannot see would silently not be copied.

use tidemark_core::precheck::{CheckResult, ids};
use tidemark_core::schedule::Schedule;
use tidemark_core::{Policy, TaskSpec};

use super::CheckInput;
use super::support::{
    listing, migrates_data, migrates_schema, object, selected_tables, whole_databases,
};
use crate::precheck::facts::ServerFacts;

/// Whether the user can read routine definitions in `db` without being their definer.
fn reads_routines(src: &ServerFacts, db: &str) -> bool {
    let g = &src.grants;
    let fold = src.folds_case();
    g.global("SELECT")
        || g.global("SHOW CREATE ROUTINE")
        || g.on_database("SHOW CREATE ROUTINE", db, fold)
        || if src.is_mariadb() {
            g.on_table("SELECT", "mysql", "proc", false)
        } else {
            g.global("SHOW_ROUTINE")
                || ["CREATE ROUTINE", "ALTER ROUTINE", "EXECUTE"]
                    .iter()
                    .any(|p| g.on_database(p, db, fold))
        }
}

pub fn source_privileges(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::SOURCE_PRIVILEGES;
    let src = input.source(id)?;
    let spec = input.spec;
    let fold = src.folds_case();
    let user = &src.current_user;
    let mut missing: Vec<String> = Vec::new();
    let mut objects: Vec<String> = Vec::new();
    for t in selected_tables(spec, src) {
        let db = &t.database.database;
        let columns: Vec<&str> = t.columns().iter().map(|c| c.name.as_str()).collect();
        if !src
            .grants
            .on_columns("SELECT", db, &t.facts.name, &columns, fold)
        {
            missing.push(format!("SELECT on `{}`", t.name()));
            objects.push(t.name());
        }
        if t.is_view()
            && migrates_schema(spec)
            && !src.grants.on_table("SHOW VIEW", db, &t.facts.name, fold)
        {
            missing.push(format!(
                "SHOW VIEW on `{}` (to read the view's definition)",
                t.name()
            ));
            objects.push(t.name());
        }
    }
    // Objects the user cannot see look absent: name the privilege, not only the absence.
    for db in &spec.objects {
        let name = &db.database;
        match &db.tables {
            None if src.schema(name).is_none() && !src.grants.on_database("SELECT", name, fold) => {
                missing.push(format!(
                    "SELECT on `{name}`.* (the user cannot see the database)"
                ));
                objects.push(name.clone());
            }
            Some(tables) => {
                for t in tables {
                    if src.table(name, &t.name).is_none()
                        && !src.grants.on_table("SELECT", name, &t.name, fold)
                    {
                        let table = object(name, &t.name);
                        missing.push(format!("SELECT on `{table}` (the user cannot see it)"));
                        objects.push(table);
                    }
                }
            }
            None => {}
        }
    }
    if migrates_schema(spec) {
        for db in whole_databases(spec) {
            let name = &db.database;
            if src.schema(name).is_none() {
                continue;
            }
            if !src.grants.on_database("TRIGGER", name, fold) {
                missing.push(format!(
                    "TRIGGER on `{name}`.* (without it the source hides the database's triggers, \
                     which would silently not be copied)"
                ));
                objects.push(name.clone());
            }
            let unreadable: Vec<String> = src
                .schema(name)
                .map(|s| {
                    s.routines
                        .iter()
                        .filter(|r| !r.definition_readable)
                        .map(|r| format!("{name}.{}", r.name))
                        .collect()
                })
                .unwrap_or_default();
            if !reads_routines(src, name) || !unreadable.is_empty() {
                let how = if src.is_mariadb() {
                    "SELECT on `mysql`.`proc`"
                } else {
                    "SHOW_ROUTINE"
                };
                let which = if unreadable.is_empty() {
                    String::new()
                } else {
                    format!(": {} cannot be read", listing(&unreadable))
                };
                missing.push(format!(
                    "{how} (to read the definitions of `{name}`'s procedures and functions, which \
                     are otherwise invisible or empty{which})"
                ));
                objects.push(name.clone());
                objects.extend(unreadable);
            }
        }
    }
    if missing.is_empty() {
        return Ok(CheckResult::pass(
            id,
            format!("`{user}` may read every selected object on the source"),
        ));
    }
    let grants: Vec<String> = missing
        .iter()
        .map(|m| m.split(" (").next().unwrap_or(m).to_owned())
        .collect();
    objects.dedup();
    Ok(CheckResult::fail(
        id,
        format!("`{user}` on the source lacks {}", missing.join("; ")),
        format!(
            "on the source: GRANT {} TO the task's user",
            grants.join(", GRANT ")
        ),
    )
    .with_objects(objects))
}

/// The destination databases a cycle writes: the targets, or for multi-replica the replica
/// names of the next cycle (`<db>_yyyymmdd_HH_mm_ss`).
pub fn target_databases(input: &CheckInput<'_>) -> Vec<String> {
    let spec = input.spec;
    match &spec.policy {
        Policy::MultiReplica(_) => {
            let suffix = replica_suffix(spec, input.now);
            spec.objects
                .iter()
                .map(|d| format!("{}{suffix}", d.target_name()))
                .collect()
        }
        _ => spec
            .objects
            .iter()
            .map(|d| d.target_name().to_owned())
            .collect(),
    }
}

/// `_yyyymmdd_HH_mm_ss` of the next cycle in the task's zone (of the window's start when no
/// cycle is left).
pub fn replica_suffix(spec: &TaskSpec, now: jiff::Timestamp) -> String {
    let Ok(schedule) = Schedule::from_spec(&spec.schedule) else {
        return "_00000000_00_00_00".to_owned();
    };
    let at = schedule.next_after(now).unwrap_or_else(|| {
        schedule
            .window_start()
            .to_zoned_datetime(schedule.time_zone().clone())
    });
    at.strftime("_%Y%m%d_%H_%M_%S").to_string()
}

/// `(privilege, why)` the destination needs on each target database.
fn needed(input: &CheckInput<'_>, src: Option<&ServerFacts>) -> Vec<(&'static str, &'static str)> {
    let spec = input.spec;
    let mut out = Vec::new();
    let schema = migrates_schema(spec);
    if schema {
        out.push(("CREATE", "create the databases and tables"));
        out.push(("ALTER", "add the secondary indexes after the load"));
        out.push(("INDEX", "add the secondary indexes after the load"));
    }
    match &spec.policy {
        Policy::Resync(_) => {
            out.push(("DROP", "swap the reloaded tables in and drop the old copy"))
        }
        Policy::MultiReplica(p) if p.keep_replicas.is_some() => {
            out.push(("DROP", "drop the oldest replicas (keep_replicas)"));
        }
        Policy::MultiReplica(_) => {
            if !schema {
                out.push(("CREATE", "create each cycle's replica database"));
            }
        }
        Policy::Incremental(_) => {
            out.push((
                "UPDATE",
                "upsert changed rows (INSERT ... ON DUPLICATE KEY UPDATE)",
            ));
            out.push((
                "TRIGGER",
                "drop destination triggers during the load and recreate them",
            ));
        }
    }
    if migrates_data(spec) {
        out.push(("INSERT", "load the rows"));
        out.push(("DELETE", "clear a chunk's key range when it is retried"));
        out.push(("SELECT", "verify every chunk (row count and checksum)"));
    }
    if schema && let Some(src) = src {
        let whole: Vec<_> = whole_databases(spec)
            .filter_map(|d| src.schema(&d.database))
            .collect();
        if whole.iter().any(|s| {
            s.tables
                .iter()
                .any(|t| t.kind == crate::precheck::facts::TableKind::View)
        }) {
            out.push(("CREATE VIEW", "create the views"));
        }
        if whole.iter().any(|s| !s.routines.is_empty()) {
            out.push(("CREATE ROUTINE", "create the procedures and functions"));
            out.push((
                "ALTER ROUTINE",
                "replace the procedures and functions on later cycles",
            ));
        }
        if whole.iter().any(|s| !s.triggers.is_empty()) && !out.iter().any(|(p, _)| *p == "TRIGGER")
        {
            out.push(("TRIGGER", "create the triggers"));
        }
    }
    out
}

pub fn destination_privileges(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::DESTINATION_PRIVILEGES;
    let dst = input.destination(id)?;
    let src = input.source.ok();
    let fold = dst.folds_case();
    let user = &dst.current_user;
    let targets = target_databases(input);
    let mut missing: Vec<String> = Vec::new();
    let mut privileges: Vec<&str> = Vec::new();
    let mut objects: Vec<String> = Vec::new();
    for (privilege, why) in needed(input, src) {
        let lacking: Vec<String> = targets
            .iter()
            .filter(|db| !dst.grants.on_database(privilege, db, fold))
            .cloned()
            .collect();
        if !lacking.is_empty() {
            missing.push(format!("{privilege} on {} (to {why})", listing(&lacking)));
            privileges.push(privilege);
            objects.extend(lacking);
        }
    }
    objects.sort();
    objects.dedup();
    if missing.is_empty() {
        return Ok(CheckResult::pass(
            id,
            format!(
                "`{user}` has every privilege the {} policy needs on {}",
                input.spec.policy.mode(),
                listing(&targets)
            ),
        ));
    }
    let on = if matches!(input.spec.policy, Policy::MultiReplica(_)) {
        "on the replica databases (a new one every cycle: grant on a pattern such as `shop\\_%`.* or on *.*)"
    } else {
        "on the target databases"
    };
    Ok(CheckResult::fail(
        id,
        format!("`{user}` on the destination lacks {}", missing.join("; ")),
        format!(
            "on the destination: GRANT {} {on} TO the task's user",
            privileges.join(", ")
        ),
    )
    .with_objects(objects))
}

#[cfg(test)]
mod tests {
    use tidemark_core::precheck::CheckStatus;

    use super::*;
    use crate::precheck::checks::fixtures::{self, assert_status, input, run};
    use crate::precheck::facts::RoutineFacts;
    use crate::precheck::grants::Grants;

    #[test]
    fn all_privileges_pass_on_both_sides() {
        for spec in [fixtures::resync_shop(), fixtures::incremental_shop()] {
            let (src, dst) = (fixtures::source_with_shop(), fixtures::mariadb());
            let i = input(&spec, &src, &dst);
            assert_status(
                &run(source_privileges, &i),
                CheckStatus::Pass,
                &["may read"],
            );
            assert_status(
                &run(destination_privileges, &i),
                CheckStatus::Pass,
                &["every privilege"],
            );
        }
    }

    #[test]
    fn a_source_user_with_select_only_fails_for_triggers_and_routines() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        src.grants = Grants::parse(["GRANT SELECT ON `shop`.* TO `u`@`%`"]);
        let dst = fixtures::mariadb();
        let r = run(source_privileges, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &[
                "TRIGGER on `shop`.*",
                "SELECT on `mysql`.`proc`",
                "GRANT TRIGGER on `shop`.*",
            ],
        );
        // Listed tables need SELECT only.
        let spec = fixtures::incremental_shop();
        let r = run(source_privileges, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &[]);
    }

    #[test]
    fn mysql8_reads_routines_with_show_routine() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::mysql8();
        src.schemas.push(fixtures::shop());
        src.grants = Grants::parse(["GRANT SELECT, TRIGGER ON `shop`.* TO `dts`@`%`"]);
        let dst = fixtures::mariadb();
        let r = run(source_privileges, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Fail, &["SHOW_ROUTINE"]);
        src.grants = Grants::parse([
            "GRANT SELECT, TRIGGER ON `shop`.* TO `dts`@`%`",
            "GRANT SHOW_ROUTINE ON *.* TO `dts`@`%`",
        ]);
        let r = run(source_privileges, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &[]);
    }

    #[test]
    fn a_table_without_select_fails() {
        let spec = fixtures::incremental_shop();
        let mut src = fixtures::source_with_shop();
        src.grants = Grants::parse(["GRANT SELECT ON `shop`.`orders` TO `u`@`%`"]);
        let dst = fixtures::mariadb();
        let r = run(source_privileges, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Fail, &["SELECT on `shop.customers`"]);
        assert_eq!(r.objects, ["shop.customers"]);
    }

    #[test]
    fn resync_needs_drop_and_multi_replica_needs_create_on_the_replica_names() {
        let spec = fixtures::resync_shop();
        let src = fixtures::source_with_shop();
        let mut dst = fixtures::mariadb();
        dst.grants = Grants::parse([
            "GRANT SELECT, INSERT, DELETE, CREATE, ALTER, INDEX ON `shop`.* TO `u`@`%`",
        ]);
        let r = run(destination_privileges, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &["DROP on `shop` (to swap", "GRANT DROP on the target"],
        );
        let spec = fixtures::spec(
            serde_json::json!({"mode": "multi_replica"}),
            serde_json::json!([{"database": "shop"}]),
        );
        let r = run(destination_privileges, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &["CREATE on `shop_20260601_02_30_00`", "`shop\\_%`.*"],
        );
        dst.grants = Grants::parse(["GRANT ALL PRIVILEGES ON `shop\\_%`.* TO `u`@`%`"]);
        let r = run(destination_privileges, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &["shop_20260601_02_30_00"]);
    }

    #[test]
    fn views_and_routines_need_show_view_here_and_create_view_and_routine_there() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        src.schemas[0].tables[1].kind = crate::precheck::facts::TableKind::View;
        src.schemas[0].routines.push(RoutineFacts {
            name: "p".into(),
            kind: "PROCEDURE".into(),
            definer: "root@localhost".into(),
            definition_readable: true,
        });
        src.grants = Grants::parse([
            "GRANT SELECT, TRIGGER ON `shop`.* TO `u`@`%`",
            "GRANT SELECT ON `mysql`.`proc` TO `u`@`%`",
        ]);
        let mut dst = fixtures::mariadb();
        dst.grants = Grants::parse([
            "GRANT SELECT, INSERT, DELETE, CREATE, DROP, ALTER, INDEX ON `shop`.* TO `u`@`%`",
        ]);
        let i = input(&spec, &src, &dst);
        assert_status(
            &run(source_privileges, &i),
            CheckStatus::Fail,
            &["SHOW VIEW on `shop.customers`"],
        );
        assert_status(
            &run(destination_privileges, &i),
            CheckStatus::Fail,
            &[
                "CREATE VIEW on `shop`",
                "CREATE ROUTINE on `shop`",
                "ALTER ROUTINE on `shop`",
            ],
        );
    }
}
