//! Multi-replica: every cycle writes new databases `<db>_<yyyymmdd_HH_mm_ss>` (the scheduled time
//! in the task's zone). The names are recorded on the run before anything is created, so that a
//! failed run drops its own half-made replica and `keep_replicas` drops only replicas this task
//! recorded, never another database.

use tidemark_core::MultiReplicaPolicy;
use tidemark_core::policy::{ReplicaPlan, replica_database_name, replicas_to_drop};
use tidemark_core::state::{RunRecord, RunStatus};
use tidemark_core::{DatabaseSelection, TaskSpec};
use tidemark_engine::policy::PolicyError;
use tidemark_engine::policy::objects::{database_exists, drop_database};
use tidemark_engine::{Phase, apply};

use super::invalid;
use crate::cycle::{CopyJob, Ctx, TableOutcome, copy};
use crate::error::ServiceError;
use tidemark_core::state::RunPhase;

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

pub(crate) async fn run(
    ctx: &mut Ctx<'_>,
    policy: &MultiReplicaPolicy,
) -> Result<Vec<TableOutcome>, ServiceError> {
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

    let outcome = load(ctx, &objects, &mut dst).await;
    let tables = match outcome {
        Ok(tables) => tables,
        Err(e) => {
            for name in &replicas {
                if let Err(drop_err) = drop_database(&mut dst, name).await {
                    ctx.warn(format!(
                        "the failed run's replica was not dropped: {drop_err}"
                    ));
                }
            }
            let _ = dst.disconnect().await;
            return Err(e);
        }
    };
    if let Some(keep) = policy.keep_replicas {
        let dropped = drop_old_replicas(ctx, &mut dst, keep).await?;
        ctx.record
            .insert("dropped".into(), serde_json::json!(dropped));
    }
    let _ = dst.disconnect().await;
    Ok(tables)
}

async fn load(
    ctx: &mut Ctx<'_>,
    objects: &[DatabaseSelection],
    dst: &mut mysql_async::Conn,
) -> Result<Vec<TableOutcome>, ServiceError> {
    let plan = ctx.read_plan(objects).await?;
    if ctx.with_schema() {
        apply(dst, &plan, Phase::PreData).await?;
    }
    let mut tables = Vec::new();
    if ctx.with_data() {
        ctx.phase(RunPhase::Copying).await?;
        let jobs: Vec<CopyJob<'_>> = plan
            .tables
            .iter()
            .map(|table| CopyJob {
                table,
                window: None,
            })
            .collect();
        tables = copy(ctx, &jobs).await?;
    }
    if ctx.with_schema() {
        ctx.phase(RunPhase::Finalizing).await?;
        apply(dst, &plan, Phase::PostData).await?;
    }
    Ok(tables)
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
