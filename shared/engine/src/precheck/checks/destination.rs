//! The destination's side of the policy: objects already in the way, and what foreign keys and
//! destination triggers mean for incremental loads.

use tidemark_core::Policy;
use tidemark_core::precheck::{CheckResult, ids};

use super::CheckInput;
use super::privileges::target_databases;
use super::support::{listing, object, selected_tables};

/// How Tidemark treats destination triggers during loads: said once, here, and reused by every
/// message (the copy engine implements it).
pub const DESTINATION_TRIGGER_HANDLING: &str = "Tidemark drops them for the duration of each \
     load and recreates them after, so they do not fire for copied rows (rows other writers \
     change during the load do not fire them either)";

pub fn destination_conflicts(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::DESTINATION_CONFLICTS;
    let (src, dst) = input.both(id)?;
    let spec = input.spec;
    if let Policy::MultiReplica(_) = spec.policy {
        let taken: Vec<String> = target_databases(input)
            .into_iter()
            .filter(|db| dst.has_database(db))
            .collect();
        if taken.is_empty() {
            return Ok(CheckResult::pass(
                id,
                "no database on the destination has the next cycle's replica name",
            ));
        }
        return Ok(CheckResult::fail(
            id,
            format!(
                "the next cycle's replica database{} {} already exist{} on the destination",
                if taken.len() == 1 { "" } else { "s" },
                listing(&taken),
                if taken.len() == 1 { "s" } else { "" }
            ),
            "drop or rename those databases on the destination, or give the source database \
             another `rename`",
        )
        .with_objects(taken));
    }
    let mut views = Vec::new();
    let mut existing = Vec::new();
    let mut non_empty = Vec::new();
    for t in selected_tables(spec, src) {
        let target_db = t.database.target_name();
        let Some(found) = dst.table(target_db, t.target_table()) else {
            continue;
        };
        let name = object(target_db, &found.name);
        if found.kind != t.facts.kind {
            views.push(name);
        } else if found.has_rows == Some(true) {
            non_empty.push(name.clone());
            existing.push(name);
        } else {
            existing.push(name);
        }
    }
    if !views.is_empty() {
        return Ok(CheckResult::fail(
            id,
            format!(
                "on the destination, {} exist{} as a different kind of object (a view where the \
                 source has a table, or the reverse)",
                listing(&views),
                if views.len() == 1 { "s" } else { "" }
            ),
            "drop or rename them on the destination, or `rename` the source objects",
        )
        .with_objects(views));
    }
    match spec.policy {
        Policy::Resync(_) if !existing.is_empty() => Ok(CheckResult::warn(
            id,
            format!(
                "{} already exist{} on the destination: every cycle replaces {} with the \
                 source's copy, and the current contents are lost",
                listing(&existing),
                if existing.len() == 1 { "s" } else { "" },
                if existing.len() == 1 { "it" } else { "them" }
            ),
            "if Tidemark did not make these tables, back them up or `rename` the targets; if \
             an earlier run of this task made them, nothing needs doing",
        )
        .with_objects(existing)),
        Policy::Incremental(_) if !non_empty.is_empty() => Ok(CheckResult::warn(
            id,
            format!(
                "{} already hold{} rows on the destination: the first cycle upserts the source's \
                 rows into {} (rows with the same key are overwritten, other rows stay)",
                listing(&non_empty),
                if non_empty.len() == 1 { "s" } else { "" },
                if non_empty.len() == 1 { "it" } else { "them" }
            ),
            "empty or drop those tables first if they are not an earlier copy of the same \
             source rows, or `rename` the targets",
        )
        .with_objects(non_empty)),
        _ => Ok(CheckResult::pass(
            id,
            "nothing on the destination is in the way of the first cycle",
        )),
    }
}

pub fn foreign_keys(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::FOREIGN_KEYS;
    let (src, dst) = input.both(id)?;
    if !input.spec.policy.is_incremental() {
        return Ok(CheckResult::pass(id, "not an incremental task"));
    }
    let mut with_fk = Vec::new();
    for t in selected_tables(input.spec, src) {
        let target_db = t.database.target_name();
        let on_dst = dst
            .table(target_db, t.target_table())
            .is_some_and(|d| !d.foreign_keys.is_empty());
        if !t.facts.foreign_keys.is_empty() || on_dst {
            with_fk.push(t.name());
        }
    }
    if with_fk.is_empty() {
        return Ok(CheckResult::pass(
            id,
            "no incremental table has a foreign key",
        ));
    }
    Ok(CheckResult::warn(
        id,
        format!(
            "{} ha{} foreign keys: checks are off while rows load, and incremental cycles do \
             not carry deletes, so the destination may hold child rows whose parent was deleted \
             on the source or is not selected",
            listing(&with_fk),
            if with_fk.len() == 1 { "s" } else { "ve" }
        ),
        "select the parent tables too, and do not rely on the destination's foreign keys for \
         integrity; a resync or multi-replica task copies every row each cycle",
    )
    .with_objects(with_fk))
}

pub fn destination_triggers(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::DESTINATION_TRIGGERS;
    let (src, dst) = input.both(id)?;
    if !input.spec.policy.is_incremental() {
        return Ok(CheckResult::pass(
            id,
            "not an incremental task: target tables are recreated with the source's triggers",
        ));
    }
    let mut triggers = Vec::new();
    for t in selected_tables(input.spec, src) {
        let target_db = t.database.target_name();
        let Some(schema) = dst.schema(target_db) else {
            continue;
        };
        let target = t.target_table();
        triggers.extend(
            schema
                .triggers
                .iter()
                .filter(|trg| {
                    trg.table == target
                        || (dst.folds_case() && trg.table.eq_ignore_ascii_case(target))
                })
                .map(|trg| object(target_db, &trg.name)),
        );
    }
    if triggers.is_empty() {
        return Ok(CheckResult::pass(
            id,
            "no trigger on the incremental target tables",
        ));
    }
    Ok(CheckResult::warn(
        id,
        format!(
            "destination triggers {} would fire again for every copied row; {}",
            listing(&triggers),
            DESTINATION_TRIGGER_HANDLING
        ),
        "if the triggers must see copied rows, run their logic after each cycle instead",
    )
    .with_objects(triggers))
}

#[cfg(test)]
mod tests {
    use tidemark_core::precheck::CheckStatus;

    use super::*;
    use crate::precheck::checks::fixtures::{self, assert_status, input, run};
    use crate::precheck::facts::{ForeignKeyFacts, TableKind, TriggerFacts};

    fn destination_with_shop(rows: bool) -> crate::precheck::facts::ServerFacts {
        let mut dst = fixtures::mariadb();
        let mut shop = fixtures::shop();
        for t in &mut shop.tables {
            t.has_rows = Some(rows);
        }
        dst.databases.insert("shop".into());
        dst.schemas.push(shop);
        dst
    }

    #[test]
    fn resync_warns_on_existing_target_tables() {
        let spec = fixtures::resync_shop();
        let src = fixtures::source_with_shop();
        let empty = fixtures::mariadb();
        assert_status(
            &run(destination_conflicts, &input(&spec, &src, &empty)),
            CheckStatus::Pass,
            &[],
        );
        let dst = destination_with_shop(false);
        let r = run(destination_conflicts, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Warn,
            &[
                "`shop.orders`, `shop.customers` already exist",
                "replaces them",
            ],
        );
    }

    #[test]
    fn a_view_in_the_way_fails() {
        let spec = fixtures::resync_shop();
        let src = fixtures::source_with_shop();
        let mut dst = destination_with_shop(false);
        dst.schemas[0].tables[0].kind = TableKind::View;
        let r = run(destination_conflicts, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Fail, &["`shop.orders`", "different kind"]);
    }

    #[test]
    fn incremental_warns_on_non_empty_targets_only() {
        let spec = fixtures::incremental_shop();
        let src = fixtures::source_with_shop();
        let dst = destination_with_shop(false);
        assert_status(
            &run(destination_conflicts, &input(&spec, &src, &dst)),
            CheckStatus::Pass,
            &[],
        );
        let dst = destination_with_shop(true);
        let r = run(destination_conflicts, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Warn, &["already hold rows", "upserts"]);
    }

    #[test]
    fn multi_replica_fails_when_the_next_replica_name_exists() {
        let spec = fixtures::spec(
            serde_json::json!({"mode": "multi_replica"}),
            serde_json::json!([{"database": "shop"}]),
        );
        let src = fixtures::source_with_shop();
        let mut dst = destination_with_shop(true);
        assert_status(
            &run(destination_conflicts, &input(&spec, &src, &dst)),
            CheckStatus::Pass,
            &[],
        );
        dst.databases.insert("shop_20260601_02_30_00".into());
        let r = run(destination_conflicts, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &["`shop_20260601_02_30_00` already exists"],
        );
    }

    #[test]
    fn incremental_foreign_keys_and_destination_triggers_warn() {
        let spec = fixtures::incremental_shop();
        let mut src = fixtures::source_with_shop();
        let mut dst = destination_with_shop(false);
        let i = input(&spec, &src, &dst);
        assert_status(&run(foreign_keys, &i), CheckStatus::Pass, &[]);
        assert_status(&run(destination_triggers, &i), CheckStatus::Pass, &[]);
        src.schemas[0].tables[0].foreign_keys.push(ForeignKeyFacts {
            name: "fk".into(),
            references: "shop.customers".into(),
        });
        dst.schemas[0].triggers.push(TriggerFacts {
            name: "audit".into(),
            table: "orders".into(),
        });
        let i = input(&spec, &src, &dst);
        assert_status(
            &run(foreign_keys, &i),
            CheckStatus::Warn,
            &["`shop.orders` has foreign keys", "checks are off"],
        );
        let r = run(destination_triggers, &i);
        assert_status(
            &r,
            CheckStatus::Warn,
            &["`shop.audit`", "fire again", DESTINATION_TRIGGER_HANDLING],
        );
        // Resync recreates the tables: no warning.
        let spec = fixtures::resync_shop();
        assert_status(
            &run(destination_triggers, &input(&spec, &src, &dst)),
            CheckStatus::Pass,
            &[],
        );
    }
}
