//! One cycle of a task, run to the end in this process: what `tidemark run` does, and what the
//! local scheduler will do for each scheduled time.
//!
//! ```text
//! run record (keyed by task + scheduled time: a second trigger for the same time finds it)
//!   -> schema: read and plan the source schema, apply the pre-data phase
//!   -> copying: plan each table's chunks, copy them `channel.workers` at a time, each chunk
//!      verified and committed on its own, per-table counters added in the state store
//!   -> finalizing: the post-data phase (indexes, foreign keys, routines, views, triggers)
//!   -> succeeded | failed (with the error, which names the object and the fix)
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use secrecy::SecretString;
use tidemark_core::ports::{Clock, ProgressDelta, StateStore, StoreError};
use tidemark_core::state::{RunKey, RunPhase, RunRecord, RunStatus, RunTrigger};
use tidemark_core::{MigrationType, TaskSpec};
use tidemark_engine::copy::{
    CopyEndpoints, CopyEvent, CopyOptions, TableCopySpec, chunk_bytes, copy_tables, plan_table,
};
use tidemark_engine::schema::{Phase, SchemaPlan};
use tidemark_engine::{ConnectOptions, apply, connect, plan_from_source};
use tokio::sync::mpsc;

use crate::error::ServiceError;

/// One table's outcome; `table` and `dest_table` are `db.table` (source and destination names).
pub use tidemark_engine::copy::TableReport as TableOutcome;

/// What a cycle reports while it runs (for progress bars and logs). `table` is the source
/// table as `db.table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleEvent {
    Phase(RunPhase),
    TablePlanned {
        table: String,
        dest_table: String,
        chunks: u32,
        estimated_rows: u64,
    },
    /// Rows and bytes sent since the last event of this table.
    Progress {
        table: String,
        rows: u64,
        bytes: u64,
    },
    ChunkDone {
        table: String,
    },
    Warning(String),
}

/// Everything one cycle needs.
pub struct CycleInput<'a> {
    pub task_id: &'a str,
    pub spec: &'a TaskSpec,
    pub scheduled_time: Timestamp,
    pub trigger: RunTrigger,
    pub source_password: SecretString,
    pub destination_password: SecretString,
}

/// A finished cycle.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub run: RunRecord,
    pub tables: Vec<TableOutcome>,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

type Events = Arc<dyn Fn(CycleEvent) + Send + Sync>;

/// Runs one cycle to its end and records it. `Ok` carries a run that succeeded; a failed run is
/// recorded as failed (with its error) and returned as `Err`.
pub async fn run_cycle(
    store: &dyn StateStore,
    clock: &dyn Clock,
    input: CycleInput<'_>,
    on_event: Events,
) -> Result<CycleReport, ServiceError> {
    let started = Instant::now();
    let key = RunKey {
        task_id: input.task_id.to_owned(),
        scheduled_time: input.scheduled_time,
    };
    start_run(store, clock, &key, input.trigger).await?;

    let mut warnings = Vec::new();
    let outcome = execute(store, &key, &input, &on_event, &mut warnings).await;
    let now = clock.now();
    let run = update_run(store, &key, |run| {
        run.phase = None;
        run.finished_at = Some(now);
        run.heartbeat = now;
        match &outcome {
            Ok(_) => run.status = RunStatus::Succeeded,
            Err(e) => {
                run.status = RunStatus::Failed;
                run.error = Some(e.to_string());
            }
        }
        run.plan = serde_json::json!({ "warnings": warnings });
    })
    .await?;
    let tables = outcome?;
    Ok(CycleReport {
        run,
        tables,
        warnings,
        elapsed: started.elapsed(),
    })
}

/// Creates the run, or takes over one for the same scheduled time that a dead process left
/// unfinished. A finished one is not run again.
async fn start_run(
    store: &dyn StateStore,
    clock: &dyn Clock,
    key: &RunKey,
    trigger: RunTrigger,
) -> Result<(), ServiceError> {
    let now = clock.now();
    let run = RunRecord {
        key: key.clone(),
        trigger,
        status: RunStatus::Running,
        phase: Some(RunPhase::Schema),
        error: None,
        created_at: now,
        finished_at: None,
        heartbeat: now,
        chunks_total: 0,
        chunks_done: 0,
        plan: serde_json::Value::Null,
        version: 1,
    };
    if store.create_run(&run).await? {
        return Ok(());
    }
    let existing = store
        .get_run(key)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("run {}", key.time_key()),
        })?;
    if existing.status.is_final() {
        return Err(ServiceError::AlreadyRan {
            scheduled_time: key.time_key(),
            status: format!("{:?}", existing.status).to_lowercase(),
        });
    }
    update_run(store, key, |r| {
        r.status = RunStatus::Running;
        r.phase = Some(RunPhase::Schema);
        r.error = None;
        r.heartbeat = now;
        r.chunks_total = 0;
        r.chunks_done = 0;
    })
    .await?;
    Ok(())
}

/// Reads the run, changes it and writes it back, again on a lost race (a chunk's counter moved
/// its version): the change is applied to what is stored now, never to a stale copy.
async fn update_run(
    store: &dyn StateStore,
    key: &RunKey,
    change: impl Fn(&mut RunRecord),
) -> Result<RunRecord, ServiceError> {
    loop {
        let mut run = store
            .get_run(key)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("run {} of task {}", key.time_key(), key.task_id),
            })?;
        change(&mut run);
        match store.update_run(&run).await {
            Ok(version) => {
                run.version = version;
                return Ok(run);
            }
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

async fn execute(
    store: &dyn StateStore,
    key: &RunKey,
    input: &CycleInput<'_>,
    on_event: &Events,
    warnings: &mut Vec<String>,
) -> Result<Vec<TableOutcome>, ServiceError> {
    let spec = input.spec;
    let source = ConnectOptions::from_endpoint(&spec.source, input.source_password.clone());
    let destination =
        ConnectOptions::from_endpoint(&spec.destination, input.destination_password.clone());
    let with_schema = spec.migration_types.contains(&MigrationType::Schema);
    let with_data = spec.migration_types.contains(&MigrationType::Data);

    on_event(CycleEvent::Phase(RunPhase::Schema));
    let plan = read_plan(&source, spec).await?;
    for warning in &plan.warnings {
        warnings.push(warning.to_string());
        on_event(CycleEvent::Warning(warning.to_string()));
    }
    let mut dst = connect(&destination)
        .await
        .map_err(|source| ServiceError::Connect {
            role: "destination",
            source,
        })?;
    if with_schema {
        apply(&mut dst, &plan, Phase::PreData).await?;
    }

    let mut tables = Vec::new();
    if with_data {
        update_run(store, key, |r| r.phase = Some(RunPhase::Copying)).await?;
        on_event(CycleEvent::Phase(RunPhase::Copying));
        tables = copy(
            store,
            key,
            &source,
            &destination,
            spec,
            &plan,
            on_event,
            warnings,
        )
        .await?;
    }

    if with_schema {
        update_run(store, key, |r| r.phase = Some(RunPhase::Finalizing)).await?;
        on_event(CycleEvent::Phase(RunPhase::Finalizing));
        apply(&mut dst, &plan, Phase::PostData).await?;
    }
    let _ = dst.disconnect().await;
    Ok(tables)
}

async fn read_plan(source: &ConnectOptions, spec: &TaskSpec) -> Result<SchemaPlan, ServiceError> {
    let mut src = connect(source).await.map_err(|e| ServiceError::Connect {
        role: "source",
        source: e,
    })?;
    let plan = plan_from_source(&mut src, &spec.objects).await;
    let _ = src.disconnect().await;
    Ok(plan?)
}

#[allow(clippy::too_many_arguments)]
async fn copy(
    store: &dyn StateStore,
    key: &RunKey,
    source: &ConnectOptions,
    destination: &ConnectOptions,
    spec: &TaskSpec,
    plan: &SchemaPlan,
    on_event: &Events,
    warnings: &mut Vec<String>,
) -> Result<Vec<TableOutcome>, ServiceError> {
    let endpoints = Arc::new(CopyEndpoints::open(source, destination, spec.channel.workers).await?);
    let target = chunk_bytes(spec.channel.chunk_mb);
    let mut plans = Vec::with_capacity(plan.tables.len());
    // The copier names tables `` `db`.`table` ``; events and the store use `db.table`.
    let mut names: HashMap<String, String> = HashMap::new();
    for table in &plan.tables {
        let copy_spec = TableCopySpec {
            source_db: table.source_database.clone(),
            source_table: table.source_table.clone(),
            dest_db: table.target_database.clone(),
            dest_table: table.target_table.clone(),
            columns: Some(
                table
                    .columns
                    .iter()
                    .filter(|c| !c.generated)
                    .map(|c| (c.source.clone(), c.target.clone()))
                    .collect(),
            ),
        };
        let table_plan = plan_table(&endpoints, &copy_spec, target).await?;
        let name = format!("{}.{}", table.source_database, table.source_table);
        if let Some(warning) = &table_plan.shape.key_warning {
            warnings.push(warning.clone());
            on_event(CycleEvent::Warning(warning.clone()));
        }
        on_event(CycleEvent::TablePlanned {
            table: name.clone(),
            dest_table: format!("{}.{}", table.target_database, table.target_table),
            chunks: u32::try_from(table_plan.chunks.len()).unwrap_or(u32::MAX),
            estimated_rows: table_plan.chunks.iter().map(|c| c.estimated_rows).sum(),
        });
        names.insert(copy_spec.display(), name);
        plans.push(table_plan);
    }
    let chunks_total: usize = plans.iter().map(|p| p.chunks.len()).sum();
    update_run(store, key, |r| {
        r.chunks_total = u32::try_from(chunks_total).unwrap_or(u32::MAX);
    })
    .await?;

    // The copier's callback is synchronous; committed chunks go through a channel to be
    // counted in the store while the copy goes on.
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let forward = Arc::clone(on_event);
    let names = Arc::new(names);
    let callback_names = Arc::clone(&names);
    let callback: Arc<dyn Fn(CopyEvent) + Send + Sync> = Arc::new(move |event| {
        let plain = |t: &str| {
            callback_names
                .get(t)
                .cloned()
                .unwrap_or_else(|| t.to_owned())
        };
        match event {
            CopyEvent::Progress {
                table, rows, bytes, ..
            } => forward(CycleEvent::Progress {
                table: plain(&table),
                rows,
                bytes,
            }),
            CopyEvent::ChunkDone { table, report } => {
                let table = plain(&table);
                forward(CycleEvent::ChunkDone {
                    table: table.clone(),
                });
                let _ = done_tx.send((table, report));
            }
        }
    });
    let record = async {
        while let Some((table, report)) = done_rx.recv().await {
            let delta = ProgressDelta {
                rows: report.rows,
                bytes: report.bytes,
                chunks_done: 1,
                elapsed_ms: u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
                verified: u32::from(report.checksum.is_some()),
                mismatched: 0,
            };
            store.add_progress(key, &table, &delta).await?;
            store.increment_chunks_done(key).await?;
        }
        Ok::<(), StoreError>(())
    };
    let options = CopyOptions::from(&spec.channel);
    let (copied, recorded) = tokio::join!(
        copy_tables(endpoints, Arc::new(plans), options, callback),
        record
    );
    recorded?;
    let mut tables = copied?;
    for (report, table) in tables.iter_mut().zip(&plan.tables) {
        report.table = format!("{}.{}", table.source_database, table.source_table);
        report.dest_table = format!("{}.{}", table.target_database, table.target_table);
    }
    Ok(tables)
}

/// The scheduled time a manual run takes: now, to the minute (as EventBridge delivers it).
pub fn manual_scheduled_time(now: Timestamp) -> Timestamp {
    let seconds = now.as_second() - now.as_second().rem_euclid(60);
    Timestamp::from_second(seconds).unwrap_or(now)
}
