//! What every step of a run works with: its input (the task's spec and logins), the events
//! it reports, and [`Ctx`], the run's record and endpoints as a step sees them. A leaf below the
//! steps, the policies and the driver.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use secrecy::SecretString;
use tidemark_core::ports::{Clock, StateStore, StoreError};
use tidemark_core::state::{RunKey, RunPhase, RunRecord, RunStatus, RunTrigger};
use tidemark_core::{DatabaseSelection, MigrationType, TaskSpec};
use tidemark_engine::copy::{
    CopyEndpoints, RowWindow, SourcePlan, TableCopySpec, TablePlan as EnginePlan, chunk_bytes,
    destinations_empty, plan_sources as plan_sources_at_once, plan_table_in_window,
};
use tidemark_engine::schema::{SchemaPlan, TablePlan};
use tidemark_engine::{ConnectOptions, connect, plan_from_source};

use crate::error::ServiceError;
use crate::payload::TableEntry;

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
    /// How to log in to the source: user and password read, with the secret's version when
    /// they came from the secret store.
    pub source: ConnectOptions,
    /// How to log in to the destination.
    pub destination: ConnectOptions,
}

impl<'a> CycleInput<'a> {
    /// The input of a stored task's run `key`, with both endpoints' logins read.
    pub fn of_task(
        task: &'a tidemark_core::state::TaskRecord,
        key: &RunKey,
        trigger: RunTrigger,
        (source, destination): (ConnectOptions, ConnectOptions),
    ) -> CycleInput<'a> {
        CycleInput {
            task_id: &task.id,
            spec: &task.spec,
            scheduled_time: key.scheduled_time,
            trigger,
            source,
            destination,
        }
    }

    /// The input of a spec's run with passwords the caller looked up (the command line's:
    /// inline or from the environment, the user from the spec).
    pub fn with_passwords(
        task_id: &'a str,
        spec: &'a TaskSpec,
        scheduled_time: Timestamp,
        trigger: RunTrigger,
        (source, destination): (SecretString, SecretString),
    ) -> CycleInput<'a> {
        CycleInput {
            task_id,
            spec,
            scheduled_time,
            trigger,
            source: ConnectOptions::from_endpoint(&spec.source, source),
            destination: ConnectOptions::from_endpoint(&spec.destination, destination),
        }
    }
}

pub type Events = Arc<dyn Fn(CycleEvent) + Send + Sync>;

/// Reads the run, changes it and writes it back, again on a lost race (a chunk's counter moved
/// its version): the change is applied to what is stored now, never to a stale copy.
pub(crate) async fn update_run(
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
    /// The run's expiry, which the steps and progress it writes carry too.
    pub expires_at: Option<Timestamp>,
}

impl<'a> Ctx<'a> {
    /// A run's context, with what the run recorded so far (a run taken over keeps its record).
    pub async fn new(
        store: &'a dyn StateStore,
        clock: &'a dyn Clock,
        key: &'a RunKey,
        input: &'a CycleInput<'a>,
        on_event: &'a Events,
    ) -> Result<Ctx<'a>, ServiceError> {
        let run = store.get_run(key).await?;
        Ok(Ctx::of_run(
            store,
            clock,
            key,
            input,
            on_event,
            run.as_ref(),
        ))
    }

    /// A run's context from its record as the caller just read it.
    pub fn of_run(
        store: &'a dyn StateStore,
        clock: &'a dyn Clock,
        key: &'a RunKey,
        input: &'a CycleInput<'a>,
        on_event: &'a Events,
        run: Option<&RunRecord>,
    ) -> Ctx<'a> {
        let expires_at = run.and_then(|r| r.expires_at);
        let record = match run.map(|r| &r.plan) {
            Some(serde_json::Value::Object(map)) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let mut warnings: Vec<String> = record
            .get("warnings")
            .and_then(|w| serde_json::from_value(w.clone()).ok())
            .unwrap_or_default();
        if omitted_warnings(&record) > 0 {
            // The line that counts them (see `Ctx::recorded_warnings`).
            warnings.pop();
        }
        Ctx {
            store,
            clock,
            key,
            input,
            source: input.source.clone(),
            destination: input.destination.clone(),
            on_event,
            warnings,
            record,
            expires_at,
        }
    }

    /// Records the run's end: succeeded, or failed with the error (unless it already ended —
    /// cancelled, or failed by the reaper — which stays as it is).
    pub async fn finish_run<T, E: std::fmt::Display>(
        &mut self,
        outcome: &Result<T, E>,
    ) -> Result<RunRecord, ServiceError> {
        self.record
            .insert("warnings".into(), self.recorded_warnings());
        let record = serde_json::Value::Object(self.record.clone());
        let now = self.clock.now();
        update_run(self.store, self.key, |run| {
            if run.status.is_final() {
                return;
            }
            run.phase = None;
            run.finished_at = Some(now);
            run.heartbeat = now;
            match outcome {
                Ok(_) => {
                    // A cancel that came once Finalize was at work came too late.
                    run.status = RunStatus::Succeeded;
                    run.error = None;
                }
                Err(e) => {
                    run.status = RunStatus::Failed;
                    run.error = Some(e.to_string());
                }
            }
            run.plan = record.clone();
        })
        .await
    }

    pub fn spec(&self) -> &TaskSpec {
        self.input.spec
    }

    pub fn with_schema(&self) -> bool {
        self.spec().migration_types.contains(&MigrationType::Schema)
    }

    pub fn with_data(&self) -> bool {
        self.spec().migration_types.contains(&MigrationType::Data)
    }

    /// A warning for the run's report (and its log). The run keeps the first
    /// [`MAX_RECORDED_WARNINGS`] and counts the others: a thousand tables without a key must not
    /// grow the run's record past DynamoDB's 400 KB item limit. Every one is logged.
    pub fn warn(&mut self, warning: String) {
        if self.warnings.contains(&warning) {
            return;
        }
        (self.on_event)(CycleEvent::Warning(warning.clone()));
        if self.warnings.len() >= MAX_RECORDED_WARNINGS {
            let omitted = omitted_warnings(&self.record) + 1;
            self.record
                .insert("warnings_omitted".into(), serde_json::json!(omitted));
            return;
        }
        self.warnings.push(warning);
    }

    /// The warnings as the run's record keeps them: the first ones, and a line counting the
    /// rest.
    fn recorded_warnings(&self) -> serde_json::Value {
        let omitted = omitted_warnings(&self.record);
        let mut list = self.warnings.clone();
        if omitted > 0 {
            list.push(format!(
                "{omitted} more warnings are not kept with the run; its log has every one"
            ));
        }
        serde_json::json!(list)
    }

    /// Moves the run to `phase` unless it is there already (several chunk steps start at once):
    /// the event is told once, by the step whose write moved it.
    pub async fn enter_phase(&self, phase: RunPhase) -> Result<(), ServiceError> {
        let now = self.clock.now();
        let moved = std::sync::atomic::AtomicBool::new(false);
        update_run(self.store, self.key, |r| {
            let differs = r.phase != Some(phase);
            moved.store(differs, std::sync::atomic::Ordering::Relaxed);
            r.phase = Some(phase);
            r.heartbeat = now;
        })
        .await?;
        if moved.load(std::sync::atomic::Ordering::Relaxed) {
            (self.on_event)(CycleEvent::Phase(phase));
        }
        Ok(())
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

    /// Writes what the run has recorded so far (its warnings too) onto it, so that a run that
    /// dies leaves it and the next step, in whatever process, starts from it.
    pub async fn save_record(&mut self) -> Result<(), ServiceError> {
        self.record
            .insert("warnings".into(), self.recorded_warnings());
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

/// The most warnings a run's record keeps (see [`Ctx::warn`]).
pub(crate) const MAX_RECORDED_WARNINGS: usize = 100;

fn omitted_warnings(record: &serde_json::Map<String, serde_json::Value>) -> u64 {
    record
        .get("warnings_omitted")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
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

/// Plans the jobs' chunks (the tables exist on the destination, with their primary keys) and
/// describes each table for the run's report.
pub(crate) async fn plan_copy(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
    jobs: &[CopyJob<'_>],
) -> Result<(Vec<EnginePlan>, Vec<TableEntry>), ServiceError> {
    let planned = plan_sources(ctx, endpoints, jobs).await?;
    finish_plans(ctx, endpoints, jobs, planned, &HashSet::new()).await
}

/// `db.table` of a table on the source.
pub(crate) fn source_name(table: &TablePlan) -> String {
    format!("{}.{}", table.source_database, table.source_table)
}

fn copy_spec(table: &TablePlan) -> TableCopySpec {
    TableCopySpec {
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
    }
}

/// The source side of the jobs' plans, in order: shapes and chunks, read for every full-copy
/// table at once (a few round trips for a database of a thousand tables); nothing on the
/// destination is read, so it can run before the tables are created.
pub(crate) async fn plan_sources(
    ctx: &Ctx<'_>,
    endpoints: &CopyEndpoints,
    jobs: &[CopyJob<'_>],
) -> Result<Vec<SourcePlan>, ServiceError> {
    if !ctx.with_data() {
        return Ok(Vec::new());
    }
    let target = chunk_bytes(ctx.spec().channel.chunk_mb);
    let full: Vec<TableCopySpec> = jobs
        .iter()
        .filter(|j| j.window.is_none())
        .map(|j| copy_spec(j.table))
        .collect();
    let mut full = plan_sources_at_once(endpoints, &full, target)
        .await?
        .into_iter();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        match &job.window {
            None => out.extend(full.next()),
            Some(window) => {
                let plan =
                    plan_table_in_window(endpoints, &copy_spec(job.table), target, window).await?;
                out.push(SourcePlan {
                    shape: plan.shape,
                    chunks: plan.chunks,
                    estimated_bytes: 0,
                });
            }
        }
    }
    Ok(out)
}

/// The full-copy jobs planned as one chunk (`db.table` on the source): their secondary indexes
/// are best created with the table (see `SchemaPlan::inline_indexes`).
pub(crate) fn one_chunk_tables(jobs: &[CopyJob<'_>], planned: &[SourcePlan]) -> HashSet<String> {
    jobs.iter()
        .zip(planned)
        .filter(|(job, plan)| job.window.is_none() && plan.chunks.len() == 1)
        .map(|(job, _)| source_name(job.table))
        .collect()
}

/// The jobs' plans completed once their destination tables exist: whether each is empty (one
/// batch of reads), and each table's entry in the run's report; `inline` names the tables
/// created with their secondary indexes.
pub(crate) async fn finish_plans(
    ctx: &mut Ctx<'_>,
    endpoints: &CopyEndpoints,
    jobs: &[CopyJob<'_>],
    planned: Vec<SourcePlan>,
    inline: &HashSet<String>,
) -> Result<(Vec<EnginePlan>, Vec<TableEntry>), ServiceError> {
    if !ctx.with_data() {
        return Ok((Vec::new(), Vec::new()));
    }
    let full: Vec<(String, String)> = jobs
        .iter()
        .filter(|j| j.window.is_none())
        .map(|j| {
            (
                j.table.target_database.clone(),
                j.table.target_table.clone(),
            )
        })
        .collect();
    let mut empty = destinations_empty(endpoints, &full).await?.into_iter();
    let mut plans = Vec::with_capacity(jobs.len());
    let mut entries = Vec::with_capacity(jobs.len());
    for (job, planned) in jobs.iter().zip(planned) {
        let table = job.table;
        let table_plan = EnginePlan {
            shape: planned.shape,
            chunks: planned.chunks,
            dest_was_empty: job.window.is_none() && empty.next().unwrap_or(false),
            estimated_bytes: planned.estimated_bytes,
        };
        if let Some(warning) = &table_plan.shape.key_warning {
            ctx.warn(warning.clone());
        }
        let name = source_name(table);
        entries.push(TableEntry {
            dest_table: format!("{}.{}", table.target_database, table.target_table),
            chunks: u32::try_from(table_plan.chunks.len()).unwrap_or(u32::MAX),
            estimated_rows: table_plan.chunks.iter().map(|c| c.estimated_rows).sum(),
            upsert: job.window.is_some(),
            warning: table_plan.shape.key_warning.clone(),
            indexes_inline: inline.contains(&name),
            table: name,
        });
        plans.push(table_plan);
    }
    Ok((plans, entries))
}

/// A run record as a cycle of this process starts it, expiring at `expires_at` (the driver's
/// [`crate::DriverConfig::expiry`] of `now`).
pub(crate) fn new_run(
    key: &RunKey,
    trigger: RunTrigger,
    status: RunStatus,
    now: Timestamp,
    expires_at: Option<Timestamp>,
) -> RunRecord {
    RunRecord {
        key: key.clone(),
        trigger,
        status,
        phase: None,
        error: None,
        created_at: now,
        finished_at: None,
        heartbeat: now,
        chunks_total: 0,
        chunks_done: 0,
        chunks_dispatched: 0,
        plan: serde_json::Value::Null,
        expires_at,
        version: 1,
    }
}

#[cfg(test)]
mod tests;
