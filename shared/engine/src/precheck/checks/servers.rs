//! Server-wide settings on both sides: versions and flavours, `local_infile`,
//! `max_allowed_packet` against the largest row, `lower_case_table_names`.

use std::collections::BTreeMap;

use tidemark_core::TlsMode;
use tidemark_core::precheck::{CheckResult, ids};

use super::CheckInput;
use super::charsets::mysql8_only_collations;
use super::support::{
    listing, migrates_data, migrates_schema, object, selected_tables, whole_databases,
};
use crate::connect::Flavor;
use crate::precheck::facts::ServerFacts;

/// Oldest supported versions: MySQL 5.7 and MariaDB 10.3.
fn supported(facts: &ServerFacts) -> bool {
    let v = facts.major_minor();
    match facts.info.flavor {
        Flavor::MySql => v >= (5, 7),
        Flavor::MariaDb => v >= (10, 3),
    }
}

fn describe(facts: &ServerFacts) -> String {
    format!("{} {}", facts.info.flavor, facts.info.version)
}

pub fn server_versions(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::SERVER_VERSIONS;
    let (src, dst) = input.both(id)?;
    for (role, facts) in [("source", src), ("destination", dst)] {
        if !supported(facts) {
            return Ok(CheckResult::fail(
                id,
                format!(
                    "the {role} runs {}, older than Tidemark supports (MySQL 5.7, MariaDB 10.3)",
                    describe(facts)
                ),
                format!("upgrade the {role} server"),
            )
            .with_objects([role.to_owned()]));
        }
    }
    let pair = format!("{} to {}", describe(src), describe(dst));
    if src.info.flavor == Flavor::MySql && dst.is_mariadb() {
        let used = mysql8_only_collations(input.spec, src, dst);
        if !used.is_empty() {
            let objects: Vec<String> = used.iter().map(|(o, _)| o.clone()).collect();
            let collations: Vec<String> = used.iter().map(|(_, c)| c.clone()).collect();
            let mut unique = collations.clone();
            unique.sort();
            unique.dedup();
            return Ok(CheckResult::fail(
                id,
                format!(
                    "{pair}: {} use{} MySQL-8-only collation{} {} that MariaDB does not have",
                    listing(&objects),
                    if objects.len() == 1 { "s" } else { "" },
                    if unique.len() == 1 { "" } else { "s" },
                    listing(&unique)
                ),
                "convert them on the source to a collation both servers have, e.g. \
                 `ALTER TABLE ... CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci` \
                 (or utf8mb4_general_ci); see charsets_collations for each object's substitute",
            )
            .with_objects(objects));
        }
    }
    let mut warnings = Vec::new();
    let mut objects = Vec::new();
    if src.info.flavor != dst.info.flavor {
        warnings.push(format!(
            "{pair} crosses flavours: tables, views and routines are copied as the source \
             defines them, and syntax only the source has fails on the destination"
        ));
    } else if dst.major_minor() < src.major_minor() {
        warnings.push(format!(
            "{pair}: the destination is older than the source, so features newer than the \
             destination fail there"
        ));
    }
    for (role, facts, tls) in [
        ("source", src, input.spec.source.tls.mode),
        ("destination", dst, input.spec.destination.tls.mode),
    ] {
        if facts.auth_plugin.as_deref() == Some("caching_sha2_password") && tls == TlsMode::Disabled
        {
            objects.push(role.to_owned());
            warnings.push(format!(
                "the {role} account `{}` uses caching_sha2_password without TLS: its password \
                 is sent encrypted with a server key that is fetched unverified, which a \
                 man in the middle can replace",
                facts.current_user
            ));
        }
    }
    if warnings.is_empty() {
        return Ok(CheckResult::pass(id, format!("{pair}: supported")));
    }
    Ok(CheckResult::warn(
        id,
        warnings.join("; "),
        "run a test cycle first; set tls.mode to \"verify_ca\" or \"verify_identity\" for \
         accounts using caching_sha2_password",
    )
    .with_objects(objects))
}

pub fn destination_local_infile(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::DESTINATION_LOCAL_INFILE;
    let dst = input.destination(id)?;
    if !migrates_data(input.spec) {
        return Ok(CheckResult::pass(id, "no data is copied"));
    }
    if dst.info.runs_bulk_executions() {
        return Ok(CheckResult::pass(
            id,
            "MariaDB: rows load with bulk executions of a prepared INSERT (local_infile is not \
             needed)",
        ));
    }
    if dst.variables.local_infile {
        return Ok(CheckResult::pass(
            id,
            "local_infile is ON: rows load with LOAD DATA LOCAL",
        ));
    }
    Ok(CheckResult::warn(
        id,
        "local_infile is OFF on the destination: rows are loaded with multi-row INSERTs, \
         several times slower than LOAD DATA LOCAL INFILE",
        dst.variables
            .hosting
            .set_variable("destination", "local_infile", "ON"),
    )
    .with_objects(["destination".to_owned()]))
}

/// Room for the statement or packet around one row.
const PACKET_OVERHEAD: u64 = 1024;
/// The largest `max_allowed_packet` a server accepts.
const MAX_PACKET: u64 = 1 << 30;

pub fn max_allowed_packet(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::MAX_ALLOWED_PACKET;
    let (src, dst) = input.both(id)?;
    if !migrates_data(input.spec) {
        return Ok(CheckResult::pass(id, "no data is copied"));
    }
    let largest = selected_tables(input.spec, src)
        .into_iter()
        .filter_map(|t| t.facts.largest_row_bytes.map(|b| (b, t.name())))
        .max();
    let Some((bytes, table)) = largest else {
        return Ok(CheckResult::pass(id, "no rows to measure"));
    };
    let needed = bytes + PACKET_OVERHEAD;
    let short: Vec<(&str, u64)> = [("source", src), ("destination", dst)]
        .into_iter()
        .map(|(role, f)| (role, f.variables.max_allowed_packet))
        .filter(|(_, packet)| *packet < needed)
        .collect();
    if short.is_empty() {
        return Ok(CheckResult::pass(
            id,
            format!(
                "the largest row ({bytes} bytes, in `{table}`) fits max_allowed_packet on both \
                 servers ({} and {} bytes)",
                src.variables.max_allowed_packet, dst.variables.max_allowed_packet
            ),
        ));
    }
    let sides: Vec<String> = short
        .iter()
        .map(|(role, packet)| format!("the {role}'s max_allowed_packet is {packet} bytes"))
        .collect();
    // Twice the row, in whole MiB: the INSERT fallback escapes binary values.
    let mib = (2 * needed).div_ceil(1 << 20);
    let setting = (mib << 20).min(MAX_PACKET);
    let remedy = if needed > MAX_PACKET {
        "the row exceeds the 1 GB maximum of max_allowed_packet and cannot be copied; shrink it \
         or leave the table out"
            .to_owned()
    } else {
        short
            .iter()
            .map(|(role, _)| {
                let hosting = if *role == "source" { src } else { dst }.variables.hosting;
                hosting.set_variable(role, "max_allowed_packet", &setting.to_string())
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut objects = vec![table.clone()];
    objects.extend(short.iter().map(|(r, _)| (*r).to_owned()));
    Ok(CheckResult::fail(
        id,
        format!(
            "the largest row ({bytes} bytes, in `{table}`) does not fit: {}",
            sides.join(", ")
        ),
        remedy,
    )
    .with_objects(objects))
}

pub fn lower_case_table_names(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::LOWER_CASE_TABLE_NAMES;
    let (src, dst) = input.both(id)?;
    let (s, d) = (
        src.variables.lower_case_table_names,
        dst.variables.lower_case_table_names,
    );
    let settings =
        format!("lower_case_table_names is {s} on the source and {d} on the destination");
    if dst.folds_case() {
        // Names that differ only in case on the source meet on the destination.
        let mut by_folded: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for t in selected_tables(input.spec, src) {
            let key = (
                t.database.target_name().to_lowercase(),
                t.target_table().to_lowercase(),
            );
            by_folded.entry(key).or_default().push(t.name());
        }
        // The server lists tables in no set order; the report must not depend on it.
        by_folded.values_mut().for_each(|names| names.sort());
        let mut clashes = Vec::new();
        for ((db, table), sources) in &by_folded {
            if sources.len() > 1 {
                clashes.push(format!("{} -> `{}`", listing(sources), object(db, table)));
            }
        }
        if !clashes.is_empty() {
            let objects: Vec<String> = by_folded
                .values()
                .filter(|v| v.len() > 1)
                .flatten()
                .cloned()
                .collect();
            return Ok(CheckResult::fail(
                id,
                format!(
                    "{settings}: tables whose names differ only in letter case would become one \
                     table on the destination: {}",
                    clashes.join("; ")
                ),
                "give all but one of them a `rename` (list the tables in the spec), or use a \
                 destination with lower_case_table_names=0",
            )
            .with_objects(objects));
        }
    }
    if s == d {
        return Ok(CheckResult::pass(id, settings));
    }
    if !dst.folds_case() {
        // The source folds case, the destination does not: a view or routine that spells a
        // table `Orders` while it is stored as `orders` breaks on the destination.
        let with_code: Vec<String> = whole_databases(input.spec)
            .filter(|_| migrates_schema(input.spec))
            .filter_map(|db| src.schema(&db.database))
            .filter(|schema| {
                !schema.routines.is_empty()
                    || !schema.triggers.is_empty()
                    || schema
                        .tables
                        .iter()
                        .any(|t| t.kind == crate::precheck::facts::TableKind::View)
            })
            .map(|schema| schema.name.clone())
            .collect();
        if !with_code.is_empty() {
            return Ok(CheckResult::warn(
                id,
                format!(
                    "{settings}: views, triggers and routines in {} may spell table names in a \
                     case the destination does not find",
                    listing(&with_code)
                ),
                "use the same lower_case_table_names on both servers, or check that the \
                 definitions spell table names in lower case",
            )
            .with_objects(with_code));
        }
    }
    Ok(CheckResult::pass(
        id,
        format!("{settings}: no selected names collide"),
    ))
}

#[cfg(test)]
mod tests {
    use tidemark_core::precheck::CheckStatus;

    use super::*;
    use crate::precheck::checks::fixtures::{self, assert_status, input, run};

    #[test]
    fn mariadb_to_mariadb_passes() {
        let spec = fixtures::resync_shop();
        let (src, dst) = (fixtures::source_with_shop(), fixtures::mariadb());
        let r = run(server_versions, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Pass,
            &["MariaDB 10.11.19 to MariaDB 10.11.19"],
        );
    }

    #[test]
    fn a_mysql8_collation_going_to_mariadb_fails_with_the_fix() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::mysql8();
        let mut shop = fixtures::shop();
        shop.tables[0].collation = Some("utf8mb4_0900_ai_ci".into());
        shop.tables[0].columns[1].collation = Some("utf8mb4_0900_ai_ci".into());
        src.schemas.push(shop);
        let dst = fixtures::mariadb();
        let r = run(server_versions, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &[
                "MySQL 8.0.36 to MariaDB",
                "`shop.orders`",
                "utf8mb4_0900_ai_ci",
                "utf8mb4_unicode_520_ci",
                "utf8mb4_general_ci",
            ],
        );
        assert!(r.objects.contains(&"shop.orders.note".to_owned()), "{r:?}");
    }

    #[test]
    fn mysql8_without_its_collations_warns_about_the_flavour_and_caching_sha2() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::mysql8();
        src.schemas.push(fixtures::shop());
        let dst = fixtures::mariadb();
        let r = run(server_versions, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Warn,
            &[
                "crosses flavours",
                "caching_sha2_password without TLS",
                "verify_ca",
            ],
        );
        assert_eq!(r.objects, ["source"]);
    }

    #[test]
    fn old_servers_fail() {
        let spec = fixtures::resync_shop();
        let src = fixtures::source_with_shop();
        let mut dst = fixtures::mysql8();
        dst.info.version = "5.6.51".into();
        let r = run(server_versions, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &["MySQL 5.6.51", "upgrade the destination"],
        );
    }

    #[test]
    fn local_infile_off_warns_on_mysql_only() {
        let spec = fixtures::resync_shop();
        let src = fixtures::source_with_shop();
        let mut dst = fixtures::mysql8();
        let r = run(destination_local_infile, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &["ON"]);
        dst.variables.local_infile = false;
        let r = run(destination_local_infile, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Warn,
            &["INSERT", "SET GLOBAL local_infile = ON on the destination"],
        );
        // MariaDB does without: its bulk executions are faster than LOAD DATA.
        let mut dst = fixtures::mariadb();
        dst.variables.local_infile = false;
        let r = run(destination_local_infile, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &["bulk", "not needed"]);
    }

    #[test]
    fn a_row_larger_than_the_packet_fails_naming_table_and_setting() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        src.schemas[0].tables[1].largest_row_bytes = Some(2 << 20);
        let mut dst = fixtures::mariadb();
        let r = run(max_allowed_packet, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &["2097152 bytes", "shop.customers"]);
        dst.variables.max_allowed_packet = 1 << 20;
        let r = run(max_allowed_packet, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &[
                "`shop.customers`",
                "destination's max_allowed_packet is 1048576",
                "SET GLOBAL max_allowed_packet = 5242880 on the destination",
            ],
        );
    }

    #[test]
    fn case_folding_destination_fails_on_colliding_names() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        let mut upper = src.schemas[0].tables[0].clone();
        upper.name = "Orders".into();
        src.schemas[0].tables.push(upper);
        let mut dst = fixtures::mariadb();
        let r = run(lower_case_table_names, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &["is 0 on the source and 0"]);
        dst.variables.lower_case_table_names = 1;
        let r = run(lower_case_table_names, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &["`shop.Orders`, `shop.orders` -> `shop.orders`", "rename"],
        );
    }

    #[test]
    fn case_folding_source_with_views_warns() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        src.variables.lower_case_table_names = 1;
        let dst = fixtures::mariadb();
        let r = run(lower_case_table_names, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &["no selected names collide"]);
        src.schemas[0]
            .triggers
            .push(crate::precheck::facts::TriggerFacts {
                name: "trg".into(),
                table: "orders".into(),
            });
        let r = run(lower_case_table_names, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Warn, &["`shop`", "lower case"]);
    }

    /// Recorded facts of RDS for MySQL 8 and Aurora MySQL 3 (as `read_facts` sees them): their
    /// remedies name the parameter group, never SET GLOBAL.
    #[test]
    fn managed_servers_are_told_of_their_parameter_group() {
        use crate::precheck::facts::Hosting;
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        src.schemas[0].tables[1].largest_row_bytes = Some(2 << 20);
        for (hosting, group) in [
            (Hosting::Rds, "DB instance's custom parameter group"),
            (Hosting::Aurora, "DB cluster parameter group"),
        ] {
            let mut dst = fixtures::mysql8();
            dst.variables.hosting = hosting;
            dst.variables.local_infile = false;
            dst.variables.max_allowed_packet = 1 << 20;
            let r = run(destination_local_infile, &input(&spec, &src, &dst));
            assert_status(
                &r,
                CheckStatus::Warn,
                &["local_infile to ON", group, "without a reboot"],
            );
            assert!(
                !format!("{r:?}").contains("SET GLOBAL local_infile"),
                "{r:?}"
            );
            let r = run(max_allowed_packet, &input(&spec, &src, &dst));
            assert_status(
                &r,
                CheckStatus::Fail,
                &["set max_allowed_packet to 5242880", group],
            );
        }
    }
}
