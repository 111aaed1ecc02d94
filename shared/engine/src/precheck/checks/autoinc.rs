//! `autoinc_lock_mode`: below 2, InnoDB makes parallel loads into one table with an
//! AUTO_INCREMENT column contend for the table's AUTO-INC lock, so a run copies such a table one
//! chunk at a time (`channel.table_workers`, README) while the other workers take other tables.
//! Mode 2 ("interleaved", MySQL 8's default) takes no such lock; it is unsafe only for a
//! statement-based binary log, so the check suggests it where the destination logs nothing or
//! logs rows (`ROW`, or `MIXED`, which logs unsafe statements as rows).

use tidemark_core::precheck::{CheckResult, ids};

use super::CheckInput;
use super::support::{listing, migrates_data, selected_tables};
use crate::precheck::facts::Hosting;

pub fn autoinc_lock_mode(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::AUTOINC_LOCK_MODE;
    let (src, dst) = input.both(id)?;
    if !migrates_data(input.spec) {
        return Ok(CheckResult::pass(id, "no data is copied"));
    }
    let tables: Vec<String> = selected_tables(input.spec, src)
        .iter()
        .filter(|t| !t.is_view() && t.facts.auto_increment)
        .map(|t| t.name())
        .collect();
    if tables.is_empty() {
        return Ok(CheckResult::pass(
            id,
            "no selected table has an AUTO_INCREMENT column",
        ));
    }
    let mode = dst.variables.innodb_autoinc_lock_mode;
    if mode >= 2 {
        return Ok(CheckResult::pass(
            id,
            format!(
                "innodb_autoinc_lock_mode is {mode} on the destination: parallel loads into one \
                 table take no AUTO-INC lock"
            ),
        ));
    }
    let capped = match input.spec.channel.table_workers {
        Some(n) => format!("at most {n} chunk(s) at a time, as channel.table_workers says"),
        None => "one chunk at a time (channel.table_workers is not set)".to_owned(),
    };
    let statement_log = dst.variables.log_bin
        && dst
            .variables
            .binlog_format
            .eq_ignore_ascii_case("STATEMENT");
    if statement_log {
        return Ok(CheckResult::pass(
            id,
            format!(
                "innodb_autoinc_lock_mode is {mode} on the destination, which its STATEMENT \
                 binary log needs; {} are loaded {capped}",
                listing(&tables)
            ),
        ));
    }
    Ok(CheckResult::warn(
        id,
        format!(
            "innodb_autoinc_lock_mode is {mode} on the destination: parallel loads into one table \
             with an AUTO_INCREMENT column contend for its AUTO-INC lock, so {} are loaded \
             {capped}; mode 2 lets them load in parallel (the destination's binary log {} \
             allows it)",
            listing(&tables),
            if dst.variables.log_bin {
                format!("format, {}, ", dst.variables.binlog_format)
            } else {
                "is off, which ".to_owned()
            }
        ),
        remedy(dst.variables.hosting),
    )
    .with_objects(tables))
}

/// `innodb_autoinc_lock_mode` is read-only at runtime: it takes a restart (a reboot).
fn remedy(hosting: Hosting) -> String {
    match hosting {
        Hosting::Plain => "set innodb_autoinc_lock_mode=2 in the destination's config file and \
                           restart it (the variable cannot be changed while it runs)"
            .to_owned(),
        Hosting::Rds => "on the destination (Amazon RDS): set innodb_autoinc_lock_mode to 2 in \
                         the DB instance's custom parameter group and reboot it (a static \
                         parameter)"
            .to_owned(),
        Hosting::Aurora => "on the destination (Aurora MySQL): set innodb_autoinc_lock_mode to 2 \
                            in the DB cluster parameter group and reboot the cluster (a static \
                            parameter)"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use tidemark_core::precheck::CheckStatus;

    use super::*;
    use crate::precheck::checks::fixtures::{self, assert_status, input, run};

    #[test]
    fn mode_2_is_suggested_for_auto_increment_tables_where_the_binary_log_allows_it() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        let mut dst = fixtures::mariadb();
        let check = |src: &_, dst: &_| run(autoinc_lock_mode, &input(&spec, src, dst));
        // No AUTO_INCREMENT column: nothing to say.
        assert_status(
            &check(&src, &dst),
            CheckStatus::Pass,
            &["no selected table"],
        );
        src.schemas[0].tables[0].auto_increment = true;
        assert_status(
            &check(&src, &dst),
            CheckStatus::Warn,
            &[
                "`shop.orders`",
                "one chunk at a time",
                "is off",
                "config file and restart",
            ],
        );
        dst.variables.log_bin = true;
        dst.variables.binlog_format = "ROW".into();
        assert_status(&check(&src, &dst), CheckStatus::Warn, &["format, ROW"]);
        dst.variables.hosting = Hosting::Rds;
        assert_status(
            &check(&src, &dst),
            CheckStatus::Warn,
            &["parameter group and reboot"],
        );
        // A statement-based log needs mode 1 or 0: said, not suggested.
        dst.variables.binlog_format = "STATEMENT".into();
        assert_status(
            &check(&src, &dst),
            CheckStatus::Pass,
            &["STATEMENT binary log"],
        );
        dst.variables.innodb_autoinc_lock_mode = 2;
        assert_status(
            &check(&src, &dst),
            CheckStatus::Pass,
            &["take no AUTO-INC lock"],
        );
    }
}
