//! The ports: what the use cases need from the outside world, as small traits. Adapters live in
//! `tidemark-local` (SQLite, files, in-process) and `tidemark-aws` (DynamoDB, Secrets Manager,
//! EventBridge Scheduler, SQS); the store contract suite in `tidemark-tests` holds every
//! state store to the same behaviour.

use async_trait::async_trait;
use jiff::Timestamp;

use crate::state::{Page, RunKey, RunRecord, StepRecord, TableProgress, TaskRecord, Watermark};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record changed since it was read (or already exists on create): re-read and decide.
    #[error("{what} was changed by someone else; read it again and retry")]
    Conflict { what: String },
    #[error("{what} does not exist")]
    NotFound { what: String },
    /// A pagination cursor that this store did not hand out.
    #[error("the pagination cursor is not valid; start from the first page")]
    BadCursor,
    #[error("the state store failed: {detail}")]
    Backend { detail: String, retryable: bool },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                retryable: true,
                ..
            }
        )
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// Counters a chunk adds to its table's progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressDelta {
    pub rows: u64,
    pub bytes: u64,
    pub chunks_done: u32,
    pub elapsed_ms: u64,
    pub verified: u32,
    pub mismatched: u32,
}

/// The key-value state of every task (DESIGN: State). Writes of shared records are conditional
/// on `version`: the caller passes the record as it read it, the store writes it with
/// `version + 1` and returns the new version, or answers `Conflict`.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Creates a task; `Conflict` if the id exists.
    async fn create_task(&self, task: &TaskRecord) -> Result<(), StoreError>;
    async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError>;
    /// Tasks in id order, `limit` at a time.
    async fn list_tasks(
        &self,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<TaskRecord>, StoreError>;
    async fn update_task(&self, task: &TaskRecord) -> Result<u64, StoreError>;
    /// Deletes the task and everything stored under it: prechecks, runs, steps, progress,
    /// watermarks. Deleting a task that does not exist is not an error.
    async fn delete_task(&self, id: &str) -> Result<(), StoreError>;

    /// Stores a precheck report (any JSON) under the task, keyed by its time.
    async fn put_precheck(
        &self,
        task_id: &str,
        at: Timestamp,
        report: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// The newest precheck report of a task.
    async fn latest_precheck(
        &self,
        task_id: &str,
    ) -> Result<Option<(Timestamp, serde_json::Value)>, StoreError>;

    /// Creates a run; `Ok(false)` when a run with this key exists (a duplicate trigger).
    async fn create_run(&self, run: &RunRecord) -> Result<bool, StoreError>;
    async fn get_run(&self, key: &RunKey) -> Result<Option<RunRecord>, StoreError>;
    /// A task's runs, newest scheduled time first.
    async fn list_runs(
        &self,
        task_id: &str,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<RunRecord>, StoreError>;
    async fn update_run(&self, run: &RunRecord) -> Result<u64, StoreError>;
    /// Adds one to the run's committed chunks, atomically, and returns the new count.
    async fn increment_chunks_done(&self, key: &RunKey) -> Result<u32, StoreError>;

    /// Creates the steps that do not exist yet (creating twice is harmless).
    async fn put_steps(&self, steps: &[StepRecord]) -> Result<(), StoreError>;
    async fn get_step(&self, run: &RunKey, n: u32) -> Result<Option<StepRecord>, StoreError>;
    /// A run's steps in order.
    async fn list_steps(&self, run: &RunKey) -> Result<Vec<StepRecord>, StoreError>;
    async fn update_step(&self, step: &StepRecord) -> Result<u64, StoreError>;

    /// Adds to a table's counters atomically (creating them at zero first).
    async fn add_progress(
        &self,
        run: &RunKey,
        table: &str,
        delta: &ProgressDelta,
    ) -> Result<(), StoreError>;
    /// A run's per-table counters, in table order.
    async fn list_progress(&self, run: &RunKey) -> Result<Vec<TableProgress>, StoreError>;

    async fn get_watermark(
        &self,
        task_id: &str,
        table: &str,
    ) -> Result<Option<Watermark>, StoreError>;
    /// Writes a watermark: a new one needs `version == 0`, an existing one the version read.
    async fn put_watermark(&self, mark: &Watermark) -> Result<u64, StoreError>;

    /// Takes one of a run's `max` worker slots; `false` when all are taken.
    async fn acquire_slot(&self, run: &RunKey, max: u32) -> Result<bool, StoreError>;
    /// Gives a slot back (never below zero).
    async fn release_slot(&self, run: &RunKey) -> Result<(), StoreError>;
}

/// The time, injectable so tests never sleep until a wall-clock time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
