//! `binlog_routines`: where the destination writes a binary log, creating functions and triggers
//! takes SUPER or `log_bin_trust_function_creators` (the server cannot know they are safe to
//! replicate).

use tidemark_core::precheck::{CheckResult, ids};

use super::CheckInput;
use super::support::{listing, migrates_schema, whole_databases};
use crate::precheck::facts::Hosting;

pub fn binlog_routines(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::BINLOG_ROUTINES;
    let (src, dst) = input.both(id)?;
    if !dst.variables.log_bin {
        return Ok(CheckResult::pass(
            id,
            "binary logging is off on the destination",
        ));
    }
    let mut code: Vec<String> = Vec::new();
    if migrates_schema(input.spec) {
        for schema in whole_databases(input.spec).filter_map(|d| src.schema(&d.database)) {
            code.extend(
                schema
                    .routines
                    .iter()
                    .map(|r| format!("{}.{}", schema.name, r.name)),
            );
            code.extend(
                schema
                    .triggers
                    .iter()
                    .map(|t| format!("{}.{}", schema.name, t.name)),
            );
        }
    }
    if code.is_empty() {
        return Ok(CheckResult::pass(
            id,
            "binary logging is on, and no routine or trigger is migrated",
        ));
    }
    if dst.variables.log_bin_trust_function_creators || dst.grants.global("SUPER") {
        return Ok(CheckResult::pass(
            id,
            "binary logging is on; log_bin_trust_function_creators or SUPER lets the user create \
             routines and triggers",
        ));
    }
    Ok(CheckResult::fail(
        id,
        format!(
            "binary logging is on on the destination, so `{}` may not create {} without SUPER \
             or log_bin_trust_function_creators",
            dst.current_user,
            listing(&code)
        ),
        match dst.variables.hosting {
            Hosting::Plain => format!(
                "{}, or GRANT SUPER ON *.* TO the task's user",
                Hosting::Plain.set_variable("destination", "log_bin_trust_function_creators", "1")
            ),
            // SUPER cannot be granted there.
            managed => managed.set_variable("destination", "log_bin_trust_function_creators", "1"),
        },
    )
    .with_objects(code))
}

#[cfg(test)]
mod tests {
    use tidemark_core::precheck::CheckStatus;

    use super::*;
    use crate::precheck::checks::fixtures::{self, assert_status, input, run};
    use crate::precheck::facts::{RoutineFacts, TriggerFacts};
    use crate::precheck::grants::Grants;

    #[test]
    fn binlog_with_routines_needs_trust_or_super() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        src.schemas[0].routines.push(RoutineFacts {
            name: "f".into(),
            kind: "FUNCTION".into(),
            definer: "root@localhost".into(),
            definition_readable: true,
        });
        src.schemas[0].triggers.push(TriggerFacts {
            name: "trg".into(),
            table: "orders".into(),
        });
        let mut dst = fixtures::mariadb();
        dst.variables.log_bin = true;
        let r = run(binlog_routines, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &["SUPER"]);
        dst.grants = Grants::parse(["GRANT ALL PRIVILEGES ON `shop`.* TO `u`@`%`"]);
        let r = run(binlog_routines, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &[
                "`shop.f`, `shop.trg`",
                "log_bin_trust_function_creators = 1",
            ],
        );
        assert_status(&r, CheckStatus::Fail, &["GRANT SUPER"]);
        // On RDS or Aurora SUPER cannot be granted: only the parameter group is named.
        dst.variables.hosting = Hosting::Aurora;
        let r = run(binlog_routines, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &["log_bin_trust_function_creators to 1 in the DB cluster parameter group"],
        );
        assert!(!format!("{r:?}").contains("SUPER ON"), "{r:?}");
        dst.variables.log_bin_trust_function_creators = true;
        assert_status(
            &run(binlog_routines, &input(&spec, &src, &dst)),
            CheckStatus::Pass,
            &[],
        );
    }
}
