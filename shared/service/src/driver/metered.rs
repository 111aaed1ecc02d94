//! What a run asks of its state store, counted: the benchmarks' breakdown reads it
//! (`infra/bench/breakdown.sh`). [`MeteredStore`] passes every call through to the store it
//! wraps and counts calls and records per method; `tidemark run` logs the totals at the run's
//! end (debug, target `tidemark::metering`), beside each step's time (`tidemark::steps`).

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use jiff::Timestamp;
use tidemark_core::ports::{ProgressDelta, StateStore, StoreError};
use tidemark_core::state::{
    Page, RunKey, RunRecord, StepRecord, TableProgress, TaskRecord, Watermark,
};

/// The store calls counted, by method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    GetRun,
    UpdateRun,
    IncrementChunks,
    PutSteps,
    GetStep,
    ListSteps,
    UpdateStep,
    AddProgress,
    ListProgress,
    Other,
}

const CALLS: [(Call, &str, bool); 10] = [
    (Call::GetRun, "get_run", false),
    (Call::UpdateRun, "update_run", true),
    (Call::IncrementChunks, "increment_chunks_done", true),
    (Call::PutSteps, "put_steps", true),
    (Call::GetStep, "get_step", false),
    (Call::ListSteps, "list_steps", false),
    (Call::UpdateStep, "update_step", true),
    (Call::AddProgress, "add_progress", true),
    (Call::ListProgress, "list_progress", false),
    (Call::Other, "other", true),
];

/// A state store that counts what passes through it.
pub struct MeteredStore<'a> {
    inner: &'a dyn StateStore,
    calls: [AtomicU64; CALLS.len()],
    /// Records written or read: `put_steps` writes as many as it is given, `list_steps` reads
    /// the run's steps.
    records: [AtomicU64; CALLS.len()],
}

/// The counts so far: `(method, calls, records, writes)`.
pub type Counts = Vec<(&'static str, u64, u64, bool)>;

impl<'a> MeteredStore<'a> {
    pub fn new(inner: &'a dyn StateStore) -> MeteredStore<'a> {
        MeteredStore {
            inner,
            calls: Default::default(),
            records: Default::default(),
        }
    }

    fn count(&self, call: Call, records: usize) {
        let i = CALLS.iter().position(|(c, _, _)| *c == call).unwrap_or(0);
        self.calls[i].fetch_add(1, Ordering::Relaxed);
        self.records[i].fetch_add(
            u64::try_from(records).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn counts(&self) -> Counts {
        CALLS
            .iter()
            .enumerate()
            .map(|(i, (_, name, write))| {
                (
                    *name,
                    self.calls[i].load(Ordering::Relaxed),
                    self.records[i].load(Ordering::Relaxed),
                    *write,
                )
            })
            .collect()
    }

    /// Logs the counts (debug, target `tidemark::metering`): one line per method called, and
    /// the totals of reads and writes.
    pub fn log(&self, key: &RunKey) {
        let counts = self.counts();
        let (mut reads, mut writes, mut records_written) = (0, 0, 0);
        for (method, calls, records, write) in &counts {
            if *calls == 0 {
                continue;
            }
            if *write {
                writes += calls;
                records_written += records;
            } else {
                reads += calls;
            }
            tracing::debug!(target: "tidemark::metering", run = %key.time_key(), method, calls, records, "state store");
        }
        tracing::debug!(target: "tidemark::metering", run = %key.time_key(), reads, writes, records_written, "state store totals");
    }
}

#[async_trait]
impl StateStore for MeteredStore<'_> {
    async fn create_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        self.count(Call::Other, 1);
        self.inner.create_task(task).await
    }
    async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.inner.get_task(id).await
    }
    async fn list_tasks(
        &self,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<TaskRecord>, StoreError> {
        self.inner.list_tasks(limit, next).await
    }
    async fn update_task(&self, task: &TaskRecord) -> Result<u64, StoreError> {
        self.count(Call::Other, 1);
        self.inner.update_task(task).await
    }
    async fn delete_task(&self, id: &str) -> Result<(), StoreError> {
        self.count(Call::Other, 1);
        self.inner.delete_task(id).await
    }
    async fn put_precheck(
        &self,
        task_id: &str,
        at: Timestamp,
        expires_at: Option<Timestamp>,
        report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.count(Call::Other, 1);
        self.inner
            .put_precheck(task_id, at, expires_at, report)
            .await
    }
    async fn latest_precheck(
        &self,
        task_id: &str,
    ) -> Result<Option<(Timestamp, serde_json::Value)>, StoreError> {
        self.inner.latest_precheck(task_id).await
    }
    async fn create_run(&self, run: &RunRecord) -> Result<bool, StoreError> {
        self.count(Call::Other, 1);
        self.inner.create_run(run).await
    }
    async fn get_run(&self, key: &RunKey) -> Result<Option<RunRecord>, StoreError> {
        self.count(Call::GetRun, 1);
        self.inner.get_run(key).await
    }
    async fn list_runs(
        &self,
        task_id: &str,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<RunRecord>, StoreError> {
        self.inner.list_runs(task_id, limit, next).await
    }
    async fn update_run(&self, run: &RunRecord) -> Result<u64, StoreError> {
        self.count(Call::UpdateRun, 1);
        self.inner.update_run(run).await
    }
    async fn increment_chunks_done(&self, key: &RunKey) -> Result<u32, StoreError> {
        self.count(Call::IncrementChunks, 1);
        self.inner.increment_chunks_done(key).await
    }
    async fn put_steps(&self, steps: &[StepRecord]) -> Result<(), StoreError> {
        self.count(Call::PutSteps, steps.len());
        self.inner.put_steps(steps).await
    }
    async fn get_step(&self, run: &RunKey, n: u32) -> Result<Option<StepRecord>, StoreError> {
        self.count(Call::GetStep, 1);
        self.inner.get_step(run, n).await
    }
    async fn list_steps(&self, run: &RunKey) -> Result<Vec<StepRecord>, StoreError> {
        let steps = self.inner.list_steps(run).await;
        self.count(Call::ListSteps, steps.as_ref().map_or(0, Vec::len));
        steps
    }
    async fn update_step(&self, step: &StepRecord) -> Result<u64, StoreError> {
        self.count(Call::UpdateStep, 1);
        self.inner.update_step(step).await
    }
    async fn add_progress(
        &self,
        run: &RunKey,
        table: &str,
        delta: &ProgressDelta,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.count(Call::AddProgress, 1);
        self.inner.add_progress(run, table, delta, expires_at).await
    }
    async fn add_progress_many(
        &self,
        run: &RunKey,
        deltas: &[(String, ProgressDelta)],
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        self.count(Call::AddProgress, deltas.len());
        self.inner.add_progress_many(run, deltas, expires_at).await
    }
    async fn list_progress(&self, run: &RunKey) -> Result<Vec<TableProgress>, StoreError> {
        let progress = self.inner.list_progress(run).await;
        self.count(Call::ListProgress, progress.as_ref().map_or(0, Vec::len));
        progress
    }
    async fn get_watermark(
        &self,
        task_id: &str,
        table: &str,
    ) -> Result<Option<Watermark>, StoreError> {
        self.inner.get_watermark(task_id, table).await
    }
    async fn put_watermark(&self, mark: &Watermark) -> Result<u64, StoreError> {
        self.count(Call::Other, 1);
        self.inner.put_watermark(mark).await
    }
}
