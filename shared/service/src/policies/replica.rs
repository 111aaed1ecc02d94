//! Multi-replica: every cycle writes new databases `<db>_<yyyymmdd_HH_mm_ss>` (the scheduled time
//! in the task's zone). The names are recorded on the run before anything is created, so that a
//! failed run drops its own half-made replica and `keep_replicas` drops only replicas this task
//! recorded, never another database.

use std::collections::HashSet;

use tidemark_core::MultiReplicaPolicy;
use tidemark_core::policy::{ReplicaPlan, replica_database_name, replicas_to_drop};
use tidemark_core::state::{RunRecord, RunStatus};
use tidemark_core::{DatabaseSelection, TaskSpec};
use tidemark_engine::Phase;
use tidemark_engine::copy::{CopyEndpoints, TablePlan as EnginePlan};
use tidemark_engine::crash;
use tidemark_engine::policy::PolicyError;
use tidemark_engine::policy::objects::{database_exists, drop_database};
use tidemark_engine::schema::{DdlStatement, OnExisting};

use super::invalid;
use crate::context::{CopyJob, Ctx, finish_plans, one_chunk_tables, plan_sources, source_name};
use crate::error::ServiceError;
use crate::payload::{Finish, Prepared, TableEntry};

/// The selection with every database renamed to its replica of the cycle at `scheduled`.
pub fn replica_objects(
    spec: &TaskSpec,
    scheduled: jiff::Timestamp,
) -> Result<Vec<DatabaseSelection>, ServiceError> {
    let tz = spec.schedule.tz().map_err(invalid)?;
    Ok(spec
        .objects
        .iter()
        .map(|db| DatabaseSelection {
            rename: Some(replica_database_name(db.target_name(), scheduled, &tz)),
            ..db.clone()
        })
        .collect())
}

/// The Schema step: the replica names recorded, leftovers of this run's own earlier attempt
/// dropped (another database of that name is an error, never dropped), the pre-data DDL, the
/// chunks planned. A failure drops what it made.
pub(crate) async fn prepare(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
) -> Result<Prepared, ServiceError> {
    let objects = replica_objects(ctx.spec(), ctx.key.scheduled_time)?;
    let replicas: Vec<String> = objects.iter().filter_map(|db| db.rename.clone()).collect();
    // A run taken over after a crash recorded these names itself: they are its own to redo.
    let ours = ctx
        .store
        .get_run(ctx.key)
        .await?
        .and_then(|run| ReplicaPlan::of_run(&run))
        .map(|p| p.replicas)
        .unwrap_or_default();
    let mut dst = ctx.destination_conn().await?;
    for name in &replicas {
        if database_exists(&mut dst, name).await? {
            if !ours.contains(name) {
                return Err(PolicyError::ReplicaExists {
                    database: name.clone(),
                }
                .into());
            }
            drop_database(&mut dst, name).await?;
        }
    }
    ctx.record
        .insert("replicas".into(), serde_json::json!(replicas));
    ctx.save_record().await?;

    let outcome = load(ctx, endpoints, &objects, &mut dst).await;
    let _ = dst.disconnect().await;
    match outcome {
        Ok((plans, tables)) => Ok(Prepared {
            plans,
            tables,
            finish: Finish::Replica { replicas },
        }),
        Err(e) => {
            abort(ctx, &replicas).await.ok();
            Err(e)
        }
    }
}

async fn load(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
    objects: &[DatabaseSelection],
    dst: &mut mysql_async::Conn,
) -> Result<(Vec<EnginePlan>, Vec<TableEntry>), ServiceError> {
    let mut plan = ctx.read_plan(objects).await?;
    // The chunks are planned first, on the source alone: a table of one chunk is created with
    // its secondary indexes, the others get them after their load.
    let tables = plan.tables.clone();
    let jobs: Vec<CopyJob<'_>> = tables
        .iter()
        .map(|table| CopyJob {
            table,
            window: None,
        })
        .collect();
    let planned = plan_sources(ctx, endpoints, &jobs).await?;
    let inline = if ctx.with_schema() {
        one_chunk_tables(&jobs, &planned)
    } else {
        HashSet::new()
    };
    if ctx.with_schema() {
        plan.inline_indexes(|t| inline.contains(&source_name(t)));
        let pre: Vec<&DdlStatement> = plan.phase(Phase::PreData).collect();
        super::apply_pre_data(ctx, dst, &pre, OnExisting::Fail).await?;
    }
    // Test hook: the replicas' tables exist, no chunk is planned.
    crash::point("schema.pre_data");
    finish_plans(ctx, endpoints, &jobs, planned, &inline).await
}

/// The Finalize step: the post-data DDL (objects an earlier attempt of this step made are kept),
/// then the replicas beyond `keep_replicas` dropped.
pub(crate) async fn finalize(
    ctx: &mut Ctx<'_>,
    policy: &MultiReplicaPolicy,
    replicas: &[String],
    retry: bool,
    tables: &[TableEntry],
) -> Result<(), ServiceError> {
    let objects = replica_objects(ctx.spec(), ctx.key.scheduled_time)?;
    let mut dst = ctx.destination_conn().await?;
    if ctx.with_schema() {
        let mut plan = ctx.read_plan(&objects).await?;
        // The tables the Schema step created with their secondary indexes get none now.
        let inline: HashSet<&str> = tables
            .iter()
            .filter(|t| t.indexes_inline)
            .map(|t| t.table.as_str())
            .collect();
        plan.inline_indexes(|t| inline.contains(source_name(t).as_str()));
        let post: Vec<&DdlStatement> = plan.phase(Phase::PostData).collect();
        let on_existing = if retry {
            OnExisting::Keep
        } else {
            OnExisting::Fail
        };
        super::apply_post_data(ctx, &mut dst, &post, on_existing).await?;
    } else {
        crate::checks::check_deferred(ctx, std::future::ready(())).await?;
    }
    // Test hook: the replica is complete, older replicas are not dropped yet.
    crash::point("replica.post_data");
    ctx.record
        .insert("replicas".into(), serde_json::json!(replicas));
    if let Some(keep) = policy.keep_replicas {
        let dropped = drop_old_replicas(ctx, &mut dst, keep).await?;
        ctx.record
            .insert("dropped".into(), serde_json::json!(dropped));
    }
    let _ = dst.disconnect().await;
    Ok(())
}

/// A failed run drops its own replicas.
pub(crate) async fn abort(ctx: &mut Ctx<'_>, replicas: &[String]) -> Result<(), ServiceError> {
    let mut dst = ctx.destination_conn().await?;
    for name in replicas {
        drop_database(&mut dst, name).await?;
    }
    let _ = dst.disconnect().await;
    Ok(())
}

/// Drops the replicas beyond the newest `keep`, from this task's own run records (this run
/// counted as succeeded). Returns what it dropped.
async fn drop_old_replicas(
    ctx: &mut Ctx<'_>,
    dst: &mut mysql_async::Conn,
    keep: u32,
) -> Result<Vec<String>, ServiceError> {
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = ctx
            .store
            .list_runs(&ctx.key.task_id, 100, next.as_deref())
            .await?;
        runs.extend(page.items);
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    for run in runs.iter_mut() {
        if &run.key == ctx.key {
            run.status = RunStatus::Succeeded;
            run.plan = serde_json::Value::Object(ctx.record.clone());
        }
    }
    let doomed = replicas_to_drop(&runs, keep);
    for name in &doomed {
        drop_database(dst, name).await?;
    }
    Ok(doomed)
}
