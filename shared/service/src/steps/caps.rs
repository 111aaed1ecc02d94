//! `channel.table_workers`: how many chunks of one table may be in flight, settled by the Schema
//! step for the tables of more than one chunk and recorded on the run, where the dispatch reads
//! it (the driver's dispatch).
//!
//! Left out of the spec, the destination decides: where its `innodb_autoinc_lock_mode` is below 2
//! (MariaDB's default, and MySQL 5.7's), a table with an AUTO_INCREMENT column is loaded one
//! chunk at a time — parallel loads into it contend for the table's AUTO-INC lock, and one is
//! faster than four (BENCHMARKS.md) — while the other workers take other tables' chunks. At 2
//! (MySQL 8's default, "interleaved") nothing is capped.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use tidemark_engine::copy::{CopyEndpoints, TablePlan};

use crate::context::Ctx;
use crate::error::ServiceError;
use crate::payload::{TABLE_CAPS, TableEntry};

/// Records on the run (not saved yet: the Schema step saves its record before any dispatch) the
/// cap of each table of several chunks whose cap is below `channel.workers`, and the
/// destination's lock mode when it was read.
pub(crate) async fn settle_caps(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
    plans: &[TablePlan],
    tables: &[TableEntry],
) -> Result<(), ServiceError> {
    let channel = &ctx.spec().channel;
    let (workers, explicit) = (channel.workers.max(1), channel.table_workers);
    let several: Vec<(&TablePlan, &TableEntry)> = plans
        .iter()
        .zip(tables)
        .filter(|(p, _)| p.chunks.len() > 1)
        .collect();
    let mode = if explicit.is_none() && several.iter().any(|(p, _)| p.shape.auto_increment) {
        autoinc_lock_mode(endpoints).await
    } else {
        None
    };
    if let Some(mode) = mode {
        ctx.record
            .insert("autoinc_lock_mode".into(), serde_json::json!(mode));
    }
    let caps: BTreeMap<&str, u32> = several
        .iter()
        .filter_map(|(plan, entry)| {
            let cap = cap_of(explicit, mode, plan.shape.auto_increment)?;
            (cap < workers).then_some((entry.table.as_str(), cap))
        })
        .collect();
    if caps.is_empty() {
        ctx.record.remove(TABLE_CAPS);
    } else {
        tracing::info!(task = %ctx.key.task_id, run = %ctx.key.time_key(), ?caps, "tables with a cap on their chunks in flight");
        ctx.record
            .insert(TABLE_CAPS.into(), serde_json::json!(caps));
    }
    Ok(())
}

/// A table's cap: the spec's, else one chunk at a time for an AUTO_INCREMENT table where the
/// destination's lock mode (when known) is below 2, else none.
pub(crate) fn cap_of(
    explicit: Option<u32>,
    lock_mode: Option<u64>,
    auto_increment: bool,
) -> Option<u32> {
    match (explicit, lock_mode) {
        (Some(n), _) => Some(n),
        (None, Some(mode)) if auto_increment && mode < 2 => Some(1),
        _ => None,
    }
}

/// The destination's `innodb_autoinc_lock_mode`; `None` when it cannot be read (no cap then:
/// the run goes on as it would without one).
async fn autoinc_lock_mode(endpoints: &CopyEndpoints) -> Option<u64> {
    let mut conn = endpoints.destination_conn().await.ok()?;
    match conn
        .query_first::<u64, _>("SELECT @@GLOBAL.innodb_autoinc_lock_mode")
        .await
    {
        Ok(mode) => mode,
        Err(e) => {
            tracing::warn!(error = %e, "the destination's innodb_autoinc_lock_mode could not be read; no table's chunks are capped");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cap_of;

    #[test]
    fn the_spec_caps_every_table_else_the_lock_mode_caps_auto_increment_tables() {
        assert_eq!(cap_of(Some(2), Some(2), false), Some(2));
        assert_eq!(cap_of(Some(3), None, true), Some(3));
        for mode in [0, 1] {
            assert_eq!(cap_of(None, Some(mode), true), Some(1));
            assert_eq!(cap_of(None, Some(mode), false), None);
        }
        assert_eq!(cap_of(None, Some(2), true), None);
        assert_eq!(cap_of(None, None, true), None);
    }
}
