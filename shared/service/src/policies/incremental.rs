//! Timestamp-based incremental: a table's first cycle creates it and copies it in full; later
//! cycles copy one window per table, read once at the start of the run:
//! `low = watermark - lookback <= column <= high = GREATEST(watermark, LEAST(MAX(column),
//! NOW(6) - lag))`, each chunk upserting and never clearing its range. The watermark moves to
//! `high` only after every chunk of every table committed, and never backwards. Deletes on the
//! source are not carried.
//!
//! - A table whose destination copy is gone is treated as a first cycle again: dropping the
//!   destination table is how a user asks for a full reload (and the fix a column change names).
//! - A column added or dropped on the source since the destination table was made fails the run
//!   with the table, the column and that fix: the destination is never silently misaligned.
//! - Destination triggers of the loaded tables are set aside (recorded on the run, dropped) for
//!   the load and recreated after it, also after a failed load: a REPLACE deletes and inserts,
//!   and a trigger must not fire for copied rows.
//! - The lookback part of the window is read every cycle, also on a quiet table, so a row that
//!   became visible late with a timestamp inside the lookback is copied. Only when the window
//!   holds no row at all (one index read says so) is the table not copied this cycle.

use std::cmp::Ordering;
use std::collections::HashSet;

use tidemark_core::IncrementalPolicy;
use tidemark_core::policy::{IncrementalWindow, compare_watermarks};
use tidemark_core::state::Watermark;
use tidemark_engine::copy::RowWindow;
use tidemark_engine::policy::incremental::{
    SavedTrigger, check_columns, destination_columns, read_window, restore_triggers,
    set_aside_triggers,
};
use tidemark_engine::schema::{DdlStatement, ObjectKind, OnExisting, Phase, SchemaPlan, TablePlan};

use tidemark_engine::copy::CopyEndpoints;
use tidemark_engine::crash;

use crate::context::{CopyJob, Ctx, plan_copy};
use crate::error::ServiceError;
use crate::payload::{Finish, Prepared};

/// One table's part of a run.
struct TableRun<'p> {
    table: &'p TablePlan,
    window: IncrementalWindow,
    /// No destination copy yet (or it was dropped): schema + full copy.
    first: bool,
}

fn table_key(t: &TablePlan) -> String {
    format!("{}.{}", t.source_database, t.source_table)
}

/// The timestamp column the spec names for a source table.
fn timestamp_column(ctx: &Ctx<'_>, t: &TablePlan) -> Result<String, ServiceError> {
    ctx.spec()
        .objects
        .iter()
        .filter(|db| db.database == t.source_database)
        .flat_map(|db| db.tables.iter().flatten())
        .find(|s| s.name.eq_ignore_ascii_case(&t.source_table))
        .and_then(|s| s.timestamp_column.clone())
        .ok_or_else(|| ServiceError::Invalid {
            field: "objects".into(),
            message: format!(
                "table {} has no timestamp_column; an incremental task names one for every table",
                table_key(t)
            ),
        })
}

/// The Schema step: triggers an earlier attempt set aside restored, the windows read once, the
/// first-cycle tables created, the copied tables' triggers set aside (recorded on the run
/// first), the chunks planned. A failure restores the triggers.
pub(crate) async fn prepare(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
    policy: &IncrementalPolicy,
) -> Result<Prepared, ServiceError> {
    let mut dst = ctx.destination_conn().await?;
    // Triggers a crashed attempt of this step set aside: back first, so they are set aside (and
    // recorded) again below, never lost.
    let earlier: Vec<SavedTrigger> = ctx
        .record
        .get("triggers_set_aside")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default();
    if !earlier.is_empty() {
        restore_triggers(&mut dst, &earlier).await?;
        ctx.record.remove("triggers_set_aside");
        ctx.save_record().await?;
    }
    let objects = ctx.spec().objects.clone();
    let plan = ctx.read_plan(&objects).await?;
    let mut src = ctx.source_conn().await?;

    // The windows, read once, before anything is written.
    let mut runs = Vec::with_capacity(plan.tables.len());
    for table in &plan.tables {
        let column = timestamp_column(ctx, table)?;
        let existing =
            destination_columns(&mut dst, &table.target_database, &table.target_table).await?;
        let first = existing.is_empty();
        let previous = if first {
            None
        } else {
            check_columns(table, &existing)?;
            ctx.store
                .get_watermark(&ctx.key.task_id, &table_key(table))
                .await?
                .map(|m| m.value)
        };
        let window = read_window(
            &mut src,
            &table.source_database,
            &table.source_table,
            &column,
            policy.lag_seconds,
            policy.lookback_seconds,
            previous.as_deref(),
        )
        .await?;
        // A destination table without a watermark (a first cycle that failed after creating
        // it) is copied in full again.
        let first = first || previous.is_none();
        let window = if first {
            IncrementalWindow {
                low: None,
                unchanged: false,
                ..window
            }
        } else {
            window
        };
        runs.push(TableRun {
            table,
            window,
            first,
        });
    }
    let _ = src.disconnect().await;
    ctx.record.insert(
        "windows".into(),
        serde_json::json!(runs.iter().map(|r| &r.window).collect::<Vec<_>>()),
    );
    ctx.save_record().await?;

    let firsts: HashSet<(String, String)> = runs
        .iter()
        .filter(|r| r.first)
        .map(|r| {
            (
                r.table.target_database.clone(),
                r.table.target_table.clone(),
            )
        })
        .collect();
    let everything_first = firsts.len() == runs.len();
    if ctx.with_schema() && !firsts.is_empty() {
        let pre = first_cycle_ddl(&plan, Phase::PreData, &firsts, everything_first);
        super::apply_pre_data(
            ctx,
            &mut dst,
            &pre.iter().collect::<Vec<_>>(),
            OnExisting::Keep,
        )
        .await?;
    }
    // Test hook: the windows are recorded and first-cycle tables exist; nothing is set aside.
    crash::point("schema.pre_data");

    let jobs: Vec<CopyJob<'_>> = runs
        .iter()
        .filter(|r| !r.window.unchanged)
        .map(|r| CopyJob {
            table: r.table,
            window: if r.first {
                None
            } else {
                r.window.high.as_ref().map(|high| RowWindow {
                    column: r.window.column.clone(),
                    low: r.window.low.clone(),
                    high: high.clone(),
                })
            },
        })
        .collect();
    let mut triggers: Vec<SavedTrigger> = Vec::new();
    let planned = async {
        if ctx.with_data() {
            for job in &jobs {
                let mut set_aside = set_aside_triggers(
                    &mut dst,
                    &job.table.target_database,
                    &job.table.target_table,
                )
                .await?;
                triggers.append(&mut set_aside);
                ctx.record
                    .insert("triggers_set_aside".into(), serde_json::json!(triggers));
                ctx.save_record().await?;
            }
        }
        // Test hook: the destination's triggers are set aside (and recorded on the run).
        crash::point("incremental.triggers_set_aside");
        plan_copy(ctx, endpoints, &jobs).await
    }
    .await;
    let (plans, tables) = match planned {
        Ok(planned) => planned,
        Err(e) => {
            if let Err(restore) = restore_triggers(&mut dst, &triggers).await {
                ctx.warn(format!(
                    "the destination's triggers were not restored: {restore}"
                ));
            } else {
                ctx.record.remove("triggers_set_aside");
            }
            let _ = dst.disconnect().await;
            return Err(e);
        }
    };
    let _ = dst.disconnect().await;
    let marks = runs
        .iter()
        .filter(|r| !r.window.unchanged)
        .filter_map(|r| r.window.high.clone().map(|high| (table_key(r.table), high)))
        .collect();
    Ok(Prepared {
        plans,
        tables,
        finish: Finish::Incremental {
            firsts: firsts.into_iter().collect(),
            everything_first,
            triggers,
            marks,
        },
    })
}

/// The Finalize step: the triggers set aside restored (every chunk committed), the first-cycle
/// tables' post-data DDL, then the watermarks moved. Each part may run again harmlessly.
pub(crate) async fn finalize(
    ctx: &mut Ctx<'_>,
    firsts: &[(String, String)],
    everything_first: bool,
    triggers: &[SavedTrigger],
    marks: &[(String, String)],
) -> Result<(), ServiceError> {
    let mut dst = ctx.destination_conn().await?;
    restore_triggers(&mut dst, triggers).await?;
    ctx.record.remove("triggers_set_aside");
    // Test hook: the triggers are back; post-data DDL and watermarks are to come.
    crash::point("incremental.triggers_restored");
    if ctx.with_schema() && !firsts.is_empty() {
        let objects = ctx.spec().objects.clone();
        let plan = ctx.read_plan(&objects).await?;
        let firsts: HashSet<(String, String)> = firsts.iter().cloned().collect();
        let post = first_cycle_ddl(&plan, Phase::PostData, &firsts, everything_first);
        let post: Vec<&DdlStatement> = post.iter().collect();
        super::apply_post_data(ctx, &mut dst, &post, OnExisting::Keep).await?;
    }
    let _ = dst.disconnect().await;
    // Test hook: every chunk committed, no watermark moved.
    crash::point("incremental.data_committed");
    // Every chunk committed: the watermarks move.
    for (table, high) in marks {
        advance_watermark(ctx, table, high).await?;
    }
    Ok(())
}

/// A failed run gives the destination its triggers back.
pub(crate) async fn abort(
    ctx: &mut Ctx<'_>,
    triggers: &[SavedTrigger],
) -> Result<(), ServiceError> {
    let mut dst = ctx.destination_conn().await?;
    restore_triggers(&mut dst, triggers).await?;
    ctx.record.remove("triggers_set_aside");
    let _ = dst.disconnect().await;
    Ok(())
}

/// The DDL of the tables on their first cycle (the whole plan on the task's first cycle).
fn first_cycle_ddl(
    plan: &SchemaPlan,
    phase: Phase,
    firsts: &HashSet<(String, String)>,
    everything: bool,
) -> Vec<DdlStatement> {
    plan.phase(phase)
        .filter(|s| {
            everything
                || s.object.kind == ObjectKind::Database
                || (!matches!(
                    s.object.kind,
                    ObjectKind::View
                        | ObjectKind::Trigger
                        | ObjectKind::Procedure
                        | ObjectKind::Function
                ) && firsts.contains(&(s.object.database.clone(), s.object.name.clone())))
        })
        .cloned()
        .collect()
}

/// Moves a table's watermark to `high`, never backwards: a stored watermark later than `high` (a
/// run that overlapped this one, say) stays.
async fn advance_watermark(ctx: &Ctx<'_>, table: &str, high: &str) -> Result<(), ServiceError> {
    loop {
        let current = ctx.store.get_watermark(&ctx.key.task_id, table).await?;
        if let Some(current) = &current
            && compare_watermarks(&current.value, high) != Ordering::Less
        {
            return Ok(());
        }
        let mark = Watermark {
            task_id: ctx.key.task_id.clone(),
            table: table.to_owned(),
            value: high.to_owned(),
            updated_at: ctx.clock.now(),
            version: current.as_ref().map_or(0, |m| m.version),
        };
        match ctx.store.put_watermark(&mark).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
