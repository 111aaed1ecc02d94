//! The incremental policy's SQL: the window, column drift, and destination triggers set aside
//! while a window is upserted.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};
use tidemark_core::policy::IncrementalWindow;

use super::PolicyError;
use crate::copy::RowWindow;
use crate::copy::sql::SqlBuf;
use crate::schema::TablePlan;
use crate::schema::plan::SessionVars;
use crate::schema::quote::{quote_ident, quote_qualified};

/// Reads one table's window, once, on a source session of its own (its time zone is changed).
///
/// `high = GREATEST(previous, LEAST(MAX(col), NOW(6) - lag))` and `low = previous - lookback`.
/// A TIMESTAMP column is read and compared in UTC (the copy sessions are UTC too); a DATETIME
/// column has no zone, so `NOW(6)` is taken in the source server's own time zone, the zone its
/// writers' `NOW()` used.
///
/// - `high` never falls below the previous watermark: a source whose newest row was deleted, or
///   a larger `lag_seconds`, does not move the watermark back (and the next window with it).
/// - The lookback part `[low, previous]` is read every cycle, also when nothing is newer than
///   the watermark: a row that became visible late, stamped before the watermark, is copied as
///   long as it is inside the lookback.
/// - `unchanged` only when no row at all lies in `[low, high]`, found by one read of the
///   timestamp column's index ([`window_probe`]): then nothing is copied and no mark moves.
pub async fn read_window(
    source: &mut Conn,
    database: &str,
    table: &str,
    column: &str,
    lag_seconds: u32,
    lookback_seconds: u32,
    previous: Option<&str>,
) -> Result<IncrementalWindow, PolicyError> {
    let object = quote_qualified(database, table);
    let data_type: Option<String> = source
        .exec_first(
            "SELECT LOWER(DATA_TYPE) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
            (database, table, column),
        )
        .await
        .map_err(PolicyError::sql(
            "reading the timestamp column's type",
            &object,
        ))?;
    let data_type = data_type.unwrap_or_else(|| "missing".into());
    let zone = match data_type.as_str() {
        "timestamp" => "'+00:00'",
        "datetime" => "@@global.time_zone",
        _ => {
            return Err(PolicyError::NotATimestamp {
                table: object,
                column: quote_ident(column),
                data_type,
            });
        }
    };
    source
        .query_drop(format!("SET SESSION time_zone = {zone}"))
        .await
        .map_err(PolicyError::sql("setting the session time zone", &object))?;
    // `p` is NULL on a first cycle, `h` on an empty table: GREATEST of either is the other.
    let sql = format!(
        "SELECT CAST(GREATEST(COALESCE(h, p), COALESCE(p, h)) AS CHAR), \
         CAST(p - INTERVAL ? SECOND AS CHAR) \
         FROM (SELECT LEAST(MAX({c}), NOW(6) - INTERVAL ? SECOND) AS h, \
         CAST(? AS DATETIME(6)) AS p FROM {object}) w",
        c = quote_ident(column)
    );
    let row: Option<(Option<String>, Option<String>)> = source
        .exec_first(sql, (lookback_seconds, lag_seconds, previous))
        .await
        .map_err(PolicyError::sql("reading the incremental window", &object))?;
    let (high, low) = row.unwrap_or((None, None));
    let unchanged = match (previous, &high) {
        // A first cycle copies the table, whatever it holds.
        (None, _) => false,
        (Some(_), None) => true,
        (Some(_), Some(high)) => {
            let probe = window_probe(database, table, column, low.as_deref(), high);
            let found: Option<u8> = source
                .query_first(probe)
                .await
                .map_err(PolicyError::sql("looking for rows in the window", &object))?;
            found.is_none()
        }
    };
    Ok(IncrementalWindow {
        table: format!("{database}.{table}"),
        column: column.to_owned(),
        low,
        high,
        previous: previous.map(str::to_owned),
        unchanged,
    })
}

/// `SELECT 1 FROM t WHERE low <= col <= high LIMIT 1`: whether a window holds any row, in one
/// range read of an index that starts with the column (the precheck warns where none does).
pub fn window_probe(
    database: &str,
    table: &str,
    column: &str,
    low: Option<&str>,
    high: &str,
) -> Vec<u8> {
    let window = RowWindow {
        column: column.to_owned(),
        low: low.map(str::to_owned),
        high: high.to_owned(),
    };
    let mut sql = SqlBuf::new();
    sql.push("SELECT 1 FROM ")
        .push(&quote_qualified(database, table));
    window.push_predicate(&mut sql, true, column);
    sql.push(" LIMIT 1");
    sql.into_bytes()
}

/// The destination table's column names, in order; empty when the table does not exist.
pub async fn destination_columns(
    dst: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Vec<String>, PolicyError> {
    dst.exec(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    .await
    .map_err(PolicyError::sql(
        "reading the destination's columns",
        quote_qualified(database, table),
    ))
}

/// Checks that the destination table still has exactly the columns the source's plan maps to:
/// a column added or dropped on the source since the destination table was made is an error
/// naming the column and the fix, never a silently misaligned copy.
pub fn check_columns(plan: &TablePlan, destination: &[String]) -> Result<(), PolicyError> {
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let drift = |column: &str, change| PolicyError::ColumnDrift {
        table: quote_qualified(&plan.source_database, &plan.source_table),
        dest_table: quote_qualified(&plan.target_database, &plan.target_table),
        column: quote_ident(column),
        change,
    };
    for column in &plan.columns {
        if !destination.iter().any(|d| same(d, &column.target)) {
            return Err(drift(&column.source, "added"));
        }
    }
    for column in destination {
        if !plan.columns.iter().any(|c| same(&c.target, column)) {
            return Err(drift(column, "dropped"));
        }
    }
    Ok(())
}

/// A destination trigger set aside for an incremental load, with what recreates it as it was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedTrigger {
    pub database: String,
    pub name: String,
    /// `SHOW CREATE TRIGGER`'s original statement (its name is not qualified: it runs in
    /// `database`).
    pub sql: String,
    pub sql_mode: String,
    pub character_set_client: String,
    pub collation_connection: String,
}

/// Reads and drops the triggers of a destination table, in their action order, so that the
/// upsert (a REPLACE: a delete and an insert per existing row) does not fire them for copied
/// rows. The caller records them and restores them with [`restore_triggers`] whatever happens.
pub async fn set_aside_triggers(
    dst: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Vec<SavedTrigger>, PolicyError> {
    let object = quote_qualified(database, table);
    let names: Vec<String> = dst
        .exec(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
             WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? \
             ORDER BY EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER",
            (database, table),
        )
        .await
        .map_err(PolicyError::sql(
            "listing the destination's triggers",
            &object,
        ))?;
    let mut saved = Vec::with_capacity(names.len());
    for name in names {
        let trigger = quote_qualified(database, &name);
        let row: Option<Row> = dst
            .query_first(format!("SHOW CREATE TRIGGER {trigger}"))
            .await
            .map_err(PolicyError::sql("reading the trigger", &trigger))?;
        let text = |row: &Row, i: usize| -> String {
            row.get_opt::<String, usize>(i)
                .and_then(Result::ok)
                .unwrap_or_default()
        };
        let Some(row) = row else { continue };
        saved.push(SavedTrigger {
            database: database.to_owned(),
            name: name.clone(),
            sql_mode: text(&row, 1),
            sql: text(&row, 2),
            character_set_client: text(&row, 3),
            collation_connection: text(&row, 4),
        });
    }
    for trigger in &saved {
        let name = quote_qualified(&trigger.database, &trigger.name);
        dst.query_drop(format!("DROP TRIGGER IF EXISTS {name}"))
            .await
            .map_err(PolicyError::sql("setting the trigger aside", &name))?;
    }
    Ok(saved)
}

/// MariaDB's "Trigger already exists".
const ER_TRG_ALREADY_EXISTS: u16 = 1359;

/// Recreates set-aside triggers, each under its stored session settings, in the order they were
/// read; one that exists already (a restore run again) is left as it is. The session's default
/// database and settings are changed: use a session of its own.
pub async fn restore_triggers(dst: &mut Conn, saved: &[SavedTrigger]) -> Result<(), PolicyError> {
    for trigger in saved {
        let name = quote_qualified(&trigger.database, &trigger.name);
        let fail = |e: mysql_async::Error| PolicyError::TriggerRestore {
            trigger: name.clone(),
            detail: e.to_string(),
            sql: trigger.sql.clone(),
        };
        dst.query_drop(format!("USE {}", quote_ident(&trigger.database)))
            .await
            .map_err(fail)?;
        let session = SessionVars {
            sql_mode: trigger.sql_mode.clone(),
            character_set_client: trigger.character_set_client.clone(),
            collation_connection: trigger.collation_connection.clone(),
        };
        dst.query_drop(session.set_statement())
            .await
            .map_err(fail)?;
        match dst.query_drop(trigger.sql.as_str()).await {
            // Recreated by an earlier attempt of the same restore (a step run again).
            Err(mysql_async::Error::Server(e)) if e.code == ER_TRG_ALREADY_EXISTS => {}
            // The connection failed, not the statement: the restore is tried again later.
            Err(e) if crate::error::is_transient(&e) => {
                return Err(PolicyError::Sql {
                    doing: "recreating a trigger set aside",
                    object: name.clone(),
                    source: e,
                });
            }
            other => other.map_err(fail)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnPlan;

    fn plan() -> TablePlan {
        let col = |s: &str, t: &str| ColumnPlan {
            source: s.into(),
            target: t.into(),
            generated: false,
            invisible: false,
        };
        TablePlan {
            source_database: "shop".into(),
            source_table: "orders".into(),
            target_database: "dw".into(),
            target_table: "orders_v2".into(),
            columns: vec![col("id", "id"), col("note", "memo")],
            key_columns: vec!["id".into()],
        }
    }

    #[test]
    fn column_drift_names_the_column_the_table_and_the_fix() {
        let p = plan();
        assert!(check_columns(&p, &["ID".into(), "memo".into()]).is_ok());
        let added = check_columns(&p, &["id".into()]).unwrap_err().to_string();
        assert!(
            added.contains("`note`") && added.contains("added"),
            "{added}"
        );
        assert!(
            added.contains("`shop`.`orders`")
                && added.contains("Drop the destination table `dw`.`orders_v2`"),
            "{added}"
        );
        let dropped = check_columns(&p, &["id".into(), "memo".into(), "x".into()])
            .unwrap_err()
            .to_string();
        assert!(
            dropped.contains("`x`") && dropped.contains("dropped"),
            "{dropped}"
        );
    }
}
