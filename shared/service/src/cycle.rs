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
use tidemark_core::{DatabaseSelection, MigrationType, Policy, TaskSpec};
use tidemark_engine::copy::{
    CopyEndpoints, CopyEvent, CopyOptions, RowWindow, TableCopySpec, chunk_bytes, copy_tables,
    plan_table, plan_table_in_window,
};
use tidemark_engine::schema::{SchemaPlan, TablePlan};
use tidemark_engine::{ConnectOptions, connect, plan_from_source};
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

    let mut ctx = Ctx {
        store,
        clock,
        key: &key,
        input: &input,
        source: ConnectOptions::from_endpoint(&input.spec.source, input.source_password.clone()),
        destination: ConnectOptions::from_endpoint(
            &input.spec.destination,
            input.destination_password.clone(),
        ),
        on_event: &on_event,
        warnings: Vec::new(),
        record: serde_json::Map::new(),
    };
    let outcome = execute(&mut ctx).await;
    let warnings = std::mem::take(&mut ctx.warnings);
    let mut record = std::mem::take(&mut ctx.record);
    record.insert("warnings".into(), serde_json::json!(warnings));
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
        run.plan = serde_json::Value::Object(record.clone());
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

/// What every step of a cycle needs: the run, the endpoints, the spec, the events, and the
/// plan the run records (replica names, windows, triggers set aside), written as it grows.
pub(crate) struct Ctx<'a> {
    pub store: &'a dyn StateStore,
    pub clock: &'a dyn Clock,
    pub key: &'a RunKey,
    pub input: &'a CycleInput<'a>,
    pub source: ConnectOptions,
    pub destination: ConnectOptions,
    pub on_event: &'a Events,
    pub warnings: Vec<String>,
    pub record: serde_json::Map<String, serde_json::Value>,
}

impl Ctx<'_> {
    pub fn spec(&self) -> &TaskSpec {
        self.input.spec
    }

    pub fn with_schema(&self) -> bool {
        self.spec().migration_types.contains(&MigrationType::Schema)
    }

    pub fn with_data(&self) -> bool {
        self.spec().migration_types.contains(&MigrationType::Data)
    }

    pub fn warn(&mut self, warning: String) {
        (self.on_event)(CycleEvent::Warning(warning.clone()));
        self.warnings.push(warning);
    }

    /// Moves the run to `phase` (and refreshes its heartbeat).
    pub async fn phase(&self, phase: RunPhase) -> Result<(), ServiceError> {
        let now = self.clock.now();
        update_run(self.store, self.key, |r| {
            r.phase = Some(phase);
            r.heartbeat = now;
        })
        .await?;
        (self.on_event)(CycleEvent::Phase(phase));
        Ok(())
    }

    /// Writes what the run has recorded so far onto it, so that a run that dies leaves it.
    pub async fn save_record(&self) -> Result<(), ServiceError> {
        let plan = serde_json::Value::Object(self.record.clone());
        let now = self.clock.now();
        update_run(self.store, self.key, |r| {
            r.plan = plan.clone();
            r.heartbeat = now;
        })
        .await?;
        Ok(())
    }

    pub async fn source_conn(&self) -> Result<mysql_async::Conn, ServiceError> {
        connect(&self.source)
            .await
            .map_err(|source| ServiceError::Connect {
                role: "source",
                source,
            })
    }

    pub async fn destination_conn(&self) -> Result<mysql_async::Conn, ServiceError> {
        connect(&self.destination)
            .await
            .map_err(|source| ServiceError::Connect {
                role: "destination",
                source,
            })
    }

    pub async fn read_plan(
        &mut self,
        objects: &[DatabaseSelection],
    ) -> Result<SchemaPlan, ServiceError> {
        let plan = read_plan(&self.source, objects).await?;
        for warning in &plan.warnings {
            self.warn(warning.to_string());
        }
        Ok(plan)
    }
}

async fn execute(ctx: &mut Ctx<'_>) -> Result<Vec<TableOutcome>, ServiceError> {
    match ctx.spec().policy.clone() {
        Policy::MultiReplica(policy) => crate::policies::replica::run(ctx, &policy).await,
        Policy::Resync(_) => crate::policies::resync::run(ctx).await,
        Policy::Incremental(policy) => crate::policies::incremental::run(ctx, &policy).await,
    }
}

/// One table to copy, and the window of an incremental run (`None`: the whole table).
pub(crate) struct CopyJob<'a> {
    pub table: &'a TablePlan,
    pub window: Option<RowWindow>,
}

async fn read_plan(
    source: &ConnectOptions,
    objects: &[DatabaseSelection],
) -> Result<SchemaPlan, ServiceError> {
    let mut src = connect(source).await.map_err(|e| ServiceError::Connect {
        role: "source",
        source: e,
    })?;
    let plan = plan_from_source(&mut src, objects).await;
    let _ = src.disconnect().await;
    Ok(plan?)
}

/// Copies the jobs' tables, `channel.workers` chunks at a time, counting each committed chunk
/// in the store and refreshing the run's heartbeat.
pub(crate) async fn copy(
    ctx: &mut Ctx<'_>,
    jobs: &[CopyJob<'_>],
) -> Result<Vec<TableOutcome>, ServiceError> {
    let (store, key, spec, on_event, clock) =
        (ctx.store, ctx.key, ctx.input.spec, ctx.on_event, ctx.clock);
    let (source, destination) = (&ctx.source, &ctx.destination);
    let mut warnings = Vec::new();
    let endpoints = Arc::new(CopyEndpoints::open(source, destination, spec.channel.workers).await?);
    let target = chunk_bytes(spec.channel.chunk_mb);
    let mut plans = Vec::with_capacity(jobs.len());
    // The copier names tables `` `db`.`table` ``; events and the store use `db.table`.
    let mut names: HashMap<String, String> = HashMap::new();
    for job in jobs {
        let table = job.table;
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
        let table_plan = match &job.window {
            Some(window) => plan_table_in_window(&endpoints, &copy_spec, target, window).await?,
            None => plan_table(&endpoints, &copy_spec, target).await?,
        };
        let name = format!("{}.{}", table.source_database, table.source_table);
        if let Some(warning) = &table_plan.shape.key_warning {
            warnings.push(warning.clone());
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
            let now = clock.now();
            update_run(store, key, |r| r.heartbeat = now)
                .await
                .map_err(|e| match e {
                    ServiceError::Store(e) => e,
                    other => StoreError::Backend {
                        detail: other.to_string(),
                        retryable: false,
                    },
                })?;
        }
        Ok::<(), StoreError>(())
    };
    let options = CopyOptions::from(&spec.channel);
    let (copied, recorded) = tokio::join!(
        copy_tables(endpoints, Arc::new(plans), options, callback),
        record
    );
    for warning in warnings {
        ctx.warn(warning);
    }
    recorded?;
    let mut tables = copied?;
    for (report, job) in tables.iter_mut().zip(jobs) {
        let table = job.table;
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
