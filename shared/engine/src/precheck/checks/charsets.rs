//! What the selected objects are made of and the destination must have: character sets,
//! collations and storage engines.

use std::collections::BTreeMap;

use tidemark_core::TaskSpec;
use tidemark_core::precheck::{CheckResult, ids};

use super::CheckInput;
use super::support::{listing, migrates_schema, object, selected_tables};
use crate::precheck::facts::ServerFacts;

/// One use of a collation: the object (`shop`, `shop.orders`, `shop.orders.note`), its character
/// set and collation.
struct Usage {
    object: String,
    charset: String,
    collation: String,
}

fn usages(spec: &TaskSpec, src: &ServerFacts) -> Vec<Usage> {
    let mut out = Vec::new();
    if migrates_schema(spec) {
        for db in &spec.objects {
            if let Some(schema) = src.schema(&db.database) {
                out.push(Usage {
                    object: schema.name.clone(),
                    charset: schema.charset.clone(),
                    collation: schema.collation.clone(),
                });
            }
        }
    }
    for t in selected_tables(spec, src) {
        if let Some(collation) = &t.facts.collation {
            out.push(Usage {
                object: t.name(),
                charset: charset_of(collation),
                collation: collation.clone(),
            });
        }
        for c in t.columns() {
            if let (Some(charset), Some(collation)) = (&c.charset, &c.collation) {
                out.push(Usage {
                    object: object(&t.name(), &c.name),
                    charset: charset.clone(),
                    collation: collation.clone(),
                });
            }
        }
    }
    out
}

/// `utf8mb4_general_ci` -> `utf8mb4`; `binary` -> `binary`.
fn charset_of(collation: &str) -> String {
    collation.split('_').next().unwrap_or(collation).to_owned()
}

/// Objects using a MySQL-8-only (`_0900_`) collation the destination lacks: `(object, collation)`.
pub fn mysql8_only_collations(
    spec: &TaskSpec,
    src: &ServerFacts,
    dst: &ServerFacts,
) -> Vec<(String, String)> {
    usages(spec, src)
        .into_iter()
        .filter(|u| u.collation.contains("_0900_") && !dst.collations.contains(&u.collation))
        .map(|u| (u.object, u.collation))
        .collect()
}

/// Collations the destination has that sort like `missing`, best first.
fn substitutes(missing: &str, dst: &ServerFacts) -> Vec<String> {
    let charset = charset_of(missing);
    let candidates: Vec<String> = if let Some(rest) = missing.split("_0900_").nth(1) {
        match rest {
            "ai_ci" => vec!["uca1400_ai_ci", "unicode_520_ci", "general_ci"],
            "as_ci" => vec!["uca1400_as_ci", "unicode_520_ci"],
            "as_cs" => vec!["uca1400_as_cs", "bin"],
            _ => vec!["bin"],
        }
        .into_iter()
        .map(|s| format!("{charset}_{s}"))
        .collect()
    } else if missing.contains("_uca1400_") {
        vec![
            format!("{charset}_0900_ai_ci"),
            format!("{charset}_unicode_520_ci"),
        ]
    } else {
        vec![
            format!("{charset}_general_ci"),
            "utf8mb4_general_ci".to_owned(),
        ]
    };
    candidates
        .into_iter()
        .filter(|c| dst.collations.contains(c))
        .collect()
}

pub fn charsets_collations(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::CHARSETS_COLLATIONS;
    let (src, dst) = input.both(id)?;
    let all = usages(input.spec, src);
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for u in &all {
        if !dst.collations.contains(&u.collation) || !dst.charsets.contains(&u.charset) {
            missing
                .entry(u.collation.clone())
                .or_default()
                .push(u.object.clone());
        }
    }
    if missing.is_empty() {
        let mut used: Vec<String> = all.into_iter().map(|u| u.collation).collect();
        used.sort();
        used.dedup();
        return Ok(CheckResult::pass(
            id,
            format!(
                "the destination has every collation used: {}",
                listing(&used)
            ),
        ));
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    let mut objects = Vec::new();
    for (collation, users) in &missing {
        problems.push(format!(
            "collation `{collation}` (used by {}) does not exist on the destination",
            listing(users)
        ));
        let subs = substitutes(collation, dst);
        fixes.push(match subs.as_slice() {
            [] => format!("convert `{collation}` to a collation the destination has"),
            subs => format!(
                "convert `{collation}` to {}",
                subs.iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        });
        objects.extend(users.iter().cloned());
    }
    Ok(CheckResult::fail(
        id,
        problems.join("; "),
        format!(
            "on the source, {} (ALTER TABLE ... CONVERT TO CHARACTER SET ... COLLATE ...; \
             ALTER DATABASE ... COLLATE ...), or copy to a server that has them",
            fixes.join("; ")
        ),
    )
    .with_objects(objects))
}

pub fn storage_engines(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::STORAGE_ENGINES;
    let (src, dst) = input.both(id)?;
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut used: Vec<String> = Vec::new();
    for t in selected_tables(input.spec, src) {
        let Some(engine) = &t.facts.engine else {
            continue;
        };
        used.push(engine.clone());
        if !dst.engines.contains(&engine.to_ascii_uppercase()) {
            missing.entry(engine.clone()).or_default().push(t.name());
        }
    }
    used.sort();
    used.dedup();
    if missing.is_empty() {
        return Ok(CheckResult::pass(
            id,
            format!(
                "the destination supports every engine used: {}",
                listing(&used)
            ),
        ));
    }
    let problems: Vec<String> = missing
        .iter()
        .map(|(engine, tables)| {
            format!(
                "engine {engine} (used by {}) is not available on the destination",
                listing(tables)
            )
        })
        .collect();
    let engines: Vec<String> = missing.keys().cloned().collect();
    Ok(CheckResult::fail(
        id,
        problems.join("; "),
        format!(
            "enable {} on the destination (e.g. INSTALL SONAME 'ha_archive' for ARCHIVE on \
             MariaDB), or convert the tables on the source: ALTER TABLE ... ENGINE=InnoDB",
            listing(&engines)
        ),
    )
    .with_objects(missing.into_values().flatten()))
}

#[cfg(test)]
mod tests {
    use tidemark_core::precheck::CheckStatus;

    use super::*;
    use crate::precheck::checks::fixtures::{self, assert_status, input, run};

    #[test]
    fn mariadb_collations_exist_on_mariadb() {
        let spec = fixtures::resync_shop();
        let (src, dst) = (fixtures::source_with_shop(), fixtures::mariadb());
        let r = run(charsets_collations, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &["utf8mb4_general_ci"]);
    }

    #[test]
    fn mysql8_0900_collation_on_mariadb_fails_with_substitutes() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::mysql8();
        let mut shop = fixtures::shop();
        shop.collation = "utf8mb4_0900_ai_ci".into();
        shop.tables[1].columns[1].collation = Some("utf8mb4_0900_as_cs".into());
        src.schemas.push(shop);
        let dst = fixtures::mariadb();
        let r = run(charsets_collations, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &[
                "`utf8mb4_0900_ai_ci` (used by `shop`)",
                "`utf8mb4_0900_as_cs` (used by `shop.customers.note`)",
                "convert `utf8mb4_0900_ai_ci` to `utf8mb4_uca1400_ai_ci` or `utf8mb4_unicode_520_ci` or `utf8mb4_general_ci`",
                "convert `utf8mb4_0900_as_cs` to `utf8mb4_bin`",
            ],
        );
        assert_eq!(r.objects, ["shop", "shop.customers.note"]);
    }

    #[test]
    fn mariadb_uca1400_to_mysql8_fails_too() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::mariadb();
        let mut shop = fixtures::shop();
        shop.tables[0].collation = Some("utf8mb4_uca1400_ai_ci".into());
        src.schemas.push(shop);
        let dst = fixtures::mysql8();
        let r = run(charsets_collations, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &["`shop.orders`", "`utf8mb4_0900_ai_ci`"],
        );
    }

    #[test]
    fn a_missing_engine_fails_naming_table_and_fix() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        let dst = fixtures::mariadb();
        let r = run(storage_engines, &input(&spec, &src, &dst));
        assert_status(&r, CheckStatus::Pass, &["INNODB"]);
        src.schemas[0].tables[0].engine = Some("ARCHIVE".into());
        let r = run(storage_engines, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &["engine ARCHIVE (used by `shop.orders`)", "ENGINE=InnoDB"],
        );
    }
}
