//! The selected objects on the source: they exist, their timestamp columns suit incremental
//! copying, and their rows can be told apart (a primary or unique key).

use tidemark_core::precheck::{CheckResult, ids};

use super::CheckInput;
use super::support::{SelectedTable, listing, object, selected_tables};
use crate::precheck::facts::ColumnFacts;
use crate::precheck::sql::{qualified, quote_ident};

pub fn objects_exist(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::OBJECTS_EXIST;
    let src = input.source(id)?;
    let mut missing: Vec<String> = Vec::new();
    let mut found = 0usize;
    for db in &input.spec.objects {
        let name = &db.database;
        if src.schema(name).is_none() {
            missing.push(name.clone());
            continue;
        }
        let Some(tables) = &db.tables else {
            found += 1;
            continue;
        };
        for t in tables {
            let Some(facts) = src.table(name, &t.name) else {
                missing.push(object(name, &t.name));
                continue;
            };
            found += 1;
            let table = object(name, &facts.name);
            let listed = t.columns.iter().flatten().map(|c| c.name.as_str());
            for column in listed.chain(t.timestamp_column.as_deref()) {
                if facts.column(column).is_none() {
                    missing.push(object(&table, column));
                }
            }
        }
    }
    missing.dedup();
    if missing.is_empty() {
        return Ok(CheckResult::pass(
            id,
            format!(
                "every selected database, table and column exists on the source ({found} selections)"
            ),
        ));
    }
    Ok(CheckResult::fail(
        id,
        format!("not found on the source: {}", listing(&missing)),
        "correct the names in `objects` (or create the objects on the source); an object the \
         task's user has no privilege on is not visible either",
    )
    .with_objects(missing))
}

/// The incremental tables with their timestamp column (when it exists).
fn timestamp_columns<'a>(
    tables: &'a [SelectedTable<'a>],
) -> impl Iterator<Item = (&'a SelectedTable<'a>, &'a ColumnFacts)> {
    tables
        .iter()
        .filter_map(|t| t.timestamp_column().map(|c| (t, c)))
}

const TEMPORAL: [&str; 3] = ["timestamp", "datetime", "date"];

pub fn timestamp_column_type(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::TIMESTAMP_COLUMN_TYPE;
    let src = input.source(id)?;
    if !input.spec.policy.is_incremental() {
        return Ok(CheckResult::pass(id, "not an incremental task"));
    }
    let tables = selected_tables(input.spec, src);
    let mut bad = Vec::new();
    let mut objects = Vec::new();
    let mut good = 0;
    for (t, c) in timestamp_columns(&tables) {
        if TEMPORAL.contains(&c.data_type.as_str()) {
            good += 1;
        } else {
            let name = object(&t.name(), &c.name);
            bad.push(format!("`{name}` is {}", c.data_type.to_uppercase()));
            objects.push(name);
        }
    }
    if bad.is_empty() {
        return Ok(CheckResult::pass(
            id,
            format!("{good} timestamp column(s), each TIMESTAMP, DATETIME or DATE"),
        ));
    }
    Ok(CheckResult::fail(
        id,
        format!(
            "timestamp columns must be TIMESTAMP, DATETIME or DATE: {}",
            bad.join(", ")
        ),
        "choose a TIMESTAMP or DATETIME column set on every insert and update (e.g. `updated_at \
         TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP`) as `timestamp_column`",
    )
    .with_objects(objects))
}

pub fn timestamp_column_indexed(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::TIMESTAMP_COLUMN_INDEXED;
    let src = input.source(id)?;
    if !input.spec.policy.is_incremental() {
        return Ok(CheckResult::pass(id, "not an incremental task"));
    }
    let tables = selected_tables(input.spec, src);
    let mut unindexed = Vec::new();
    let mut statements = Vec::new();
    for (t, c) in timestamp_columns(&tables) {
        let leads = t.facts.keys.iter().any(|k| {
            k.columns
                .first()
                .is_some_and(|first| first.eq_ignore_ascii_case(&c.name))
        });
        if !leads {
            unindexed.push(object(&t.name(), &c.name));
            statements.push(format!(
                "ALTER TABLE {} ADD INDEX ({})",
                qualified(&t.database.database, &t.facts.name),
                quote_ident(&c.name)
            ));
        }
    }
    if unindexed.is_empty() {
        return Ok(CheckResult::pass(
            id,
            "every timestamp column leads an index",
        ));
    }
    Ok(CheckResult::warn(
        id,
        format!(
            "no index starts with {}: every cycle scans the whole table to find changed rows",
            listing(&unindexed)
        ),
        format!("on the source: {}", statements.join("; ")),
    )
    .with_objects(unindexed))
}

pub fn timestamp_column_nulls(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::TIMESTAMP_COLUMN_NULLS;
    let src = input.source(id)?;
    if !input.spec.policy.is_incremental() {
        return Ok(CheckResult::pass(id, "not an incremental task"));
    }
    let tables = selected_tables(input.spec, src);
    let with_nulls: Vec<String> = timestamp_columns(&tables)
        .filter(|(_, c)| c.has_nulls == Some(true))
        .map(|(t, c)| object(&t.name(), &c.name))
        .collect();
    if with_nulls.is_empty() {
        return Ok(CheckResult::pass(id, "no timestamp column holds NULL"));
    }
    Ok(CheckResult::warn(
        id,
        format!(
            "{} hold NULL in some rows: the first cycle copies them, later cycles never do (a \
             NULL is never inside a cycle's window), so their changes are not carried",
            listing(&with_nulls)
        ),
        "fill the NULLs (UPDATE ... SET col = NOW() WHERE col IS NULL) and make the column NOT \
         NULL, or accept that those rows are copied only once",
    )
    .with_objects(with_nulls))
}

pub fn primary_keys(input: &CheckInput<'_>) -> Result<CheckResult, CheckResult> {
    let id = ids::PRIMARY_KEYS;
    let src = input.source(id)?;
    let keyless: Vec<String> = selected_tables(input.spec, src)
        .iter()
        .filter(|t| !t.is_view() && t.facts.row_key().is_none())
        .map(SelectedTable::name)
        .collect();
    if keyless.is_empty() {
        return Ok(CheckResult::pass(
            id,
            "every selected table has a primary key or a NOT NULL unique key",
        ));
    }
    Ok(CheckResult::warn(
        id,
        format!(
            "{} ha{} no primary key and no unique key over NOT NULL columns: duplicate rows are \
             possible on the destination (a retried or incremental load cannot tell rows apart), \
             and each is copied as one stream instead of in parallel chunks",
            listing(&keyless),
            if keyless.len() == 1 { "s" } else { "ve" }
        ),
        "add a primary key on the source (ALTER TABLE ... ADD PRIMARY KEY (...)), or accept \
         possible duplicates",
    )
    .with_objects(keyless))
}

#[cfg(test)]
mod tests {
    use tidemark_core::precheck::CheckStatus;

    use super::*;
    use crate::precheck::checks::fixtures::{self, assert_status, column, input, run};

    #[test]
    fn selected_objects_exist_or_are_named() {
        let spec = fixtures::spec(
            serde_json::json!({"mode": "incremental"}),
            serde_json::json!([
                {"database": "shop", "tables": [
                    {"name": "orders", "timestamp_column": "updated_at",
                     "columns": [{"name": "id"}, {"name": "gone"}, {"name": "updated_at"}]},
                    {"name": "nope", "timestamp_column": "x"},
                    {"name": "customers", "timestamp_column": "missing_ts"}]},
                {"database": "absent", "tables": [{"name": "t", "timestamp_column": "x"}]}]),
        );
        let (src, dst) = (fixtures::source_with_shop(), fixtures::mariadb());
        let r = run(objects_exist, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Fail,
            &[
                "`shop.orders.gone`",
                "`shop.nope`",
                "`shop.customers.missing_ts`",
                "`absent`",
            ],
        );
        let spec = fixtures::incremental_shop();
        assert_status(
            &run(objects_exist, &input(&spec, &src, &dst)),
            CheckStatus::Pass,
            &[],
        );
    }

    #[test]
    fn timestamp_columns_must_be_temporal_indexed_and_without_nulls() {
        let spec = fixtures::incremental_shop();
        let mut src = fixtures::source_with_shop();
        let dst = fixtures::mariadb();
        for check in [
            timestamp_column_type,
            timestamp_column_indexed,
            timestamp_column_nulls,
        ] {
            assert_status(
                &run(check, &input(&spec, &src, &dst)),
                CheckStatus::Pass,
                &[],
            );
        }
        let orders = &mut src.schemas[0].tables[0];
        orders.columns[2] = column("updated_at", "varchar", true);
        orders.columns[2].has_nulls = Some(true);
        orders.keys.retain(|k| k.is_primary());
        let i = input(&spec, &src, &dst);
        assert_status(
            &run(timestamp_column_type, &i),
            CheckStatus::Fail,
            &["`shop.orders.updated_at` is VARCHAR"],
        );
        assert_status(
            &run(timestamp_column_indexed, &i),
            CheckStatus::Warn,
            &[
                "`shop.orders.updated_at`",
                "scans the whole table",
                "ALTER TABLE `shop`.`orders` ADD INDEX (`updated_at`)",
            ],
        );
        assert_status(
            &run(timestamp_column_nulls, &i),
            CheckStatus::Warn,
            &["`shop.orders.updated_at`", "never"],
        );
    }

    #[test]
    fn a_table_without_a_usable_key_warns() {
        let spec = fixtures::resync_shop();
        let mut src = fixtures::source_with_shop();
        let dst = fixtures::mariadb();
        assert_status(
            &run(primary_keys, &input(&spec, &src, &dst)),
            CheckStatus::Pass,
            &[],
        );
        // A unique key over a nullable column does not identify rows.
        src.schemas[0].tables[1].keys = vec![fixtures::key("uk_note", true, &["note"])];
        let r = run(primary_keys, &input(&spec, &src, &dst));
        assert_status(
            &r,
            CheckStatus::Warn,
            &[
                "`shop.customers` has no primary key",
                "duplicate rows are possible",
            ],
        );
        assert_eq!(r.objects, ["shop.customers"]);
        src.schemas[0].tables[1].keys = vec![fixtures::key("uk_id", true, &["id"])];
        assert_status(
            &run(primary_keys, &input(&spec, &src, &dst)),
            CheckStatus::Pass,
            &[],
        );
    }
}
