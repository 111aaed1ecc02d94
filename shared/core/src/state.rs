//! The records Tidemark keeps: tasks, precheck reports, runs, steps, per-table progress and
//! incremental watermarks. Both state stores (SQLite locally, DynamoDB on AWS) hold exactly these.
//!
//! A run's records (the run, its steps, its per-table progress) and precheck reports carry one
//! expiry, set when they are made from the retention then configured: past it they read as gone
//! (DynamoDB's TTL deletes them lazily, later). Tasks and watermarks never expire.
//!
//! Every record that several workers may touch carries a `version`; a store writes it only when
//! the stored version is the one the writer read, so a lost race is an ordinary outcome
//! ([`crate::ports::StoreError::Conflict`]), never a silent overwrite.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::spec::TaskSpec;

/// A task's lifecycle status (DESIGN: task statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Created,
    Prechecking,
    Prechecked,
    PrecheckFailed,
    Scheduled,
    Running,
    Completed,
    Stopped,
    Failed,
    /// `DELETE` was asked while a run's clean-up was pending: the task, its secrets and its
    /// records stay until the clean-up is done (the sweep retries it), then go.
    Deleting,
}

/// A stored task. Its spec never holds an inline password: those are moved to the secret store
/// at creation and replaced by a reference (`password_secret`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub spec: TaskSpec,
    pub status: TaskStatus,
    /// Why the task is in its status, when that needs saying ("stopped: run 2026-12-01T02:30:00Z
    /// failed under the stop policy", "completed: the end date has passed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    pub version: u64,
    pub created_at: Timestamp,
    /// The last change of the spec; a precheck older than this no longer counts.
    pub changed_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precheck: Option<PrecheckSummary>,
    /// Secrets this task created (deleted with it); references only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owned_secrets: Vec<String>,
    /// The task's latest run that ended (succeeded, failed or cancelled): a `scheduled` task
    /// whose last run succeeded is DTS's "Completed, waiting for the next cycle".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
}

/// The latest ended run of a task, as the task shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// The run's id: its scheduled time ([`RunKey::time_key`]).
    pub id: String,
    pub scheduled_time: Timestamp,
    pub trigger: RunTrigger,
    pub status: RunStatus,
    pub finished_at: Timestamp,
}

/// The latest precheck's outcome, kept on the task so `start` can decide without a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecheckSummary {
    pub at: Timestamp,
    /// `running` while it runs, then `passed` or `failed`.
    pub state: PrecheckState,
    /// Ids of the failed checks.
    #[serde(default)]
    pub failed: Vec<String>,
    /// Ids of the checks that warned.
    #[serde(default)]
    pub warned: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrecheckState {
    Running,
    Passed,
    Failed,
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    Schedule,
    Manual,
}

/// A run's status (DESIGN: run statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Missed,
    Cancelled,
    /// Cancelled by the user (or its task deleted) with its clean-up still to run: steps in
    /// flight stop between batches and roll back; once no step holds a live lease the clean-up
    /// runs (retried by the sweep until done) and the run becomes `Cancelled`.
    Cancelling,
}

impl RunStatus {
    /// Whether the run can change no more.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            RunStatus::Pending | RunStatus::Running | RunStatus::Cancelling
        )
    }

    /// Whether the run's steps go on (pending or running): a cancelling run takes none.
    pub fn takes_steps(self) -> bool {
        matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

/// Where a running run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    Schema,
    Copying,
    Finalizing,
}

/// A run is keyed by its task and its scheduled time (one run per scheduled time, whatever
/// number of times the trigger is delivered).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunKey {
    pub task_id: String,
    pub scheduled_time: Timestamp,
}

impl RunKey {
    /// The scheduled time as a fixed-width UTC string (`2026-12-01T02:30:00Z`), which sorts in
    /// time order: the sort key of runs in both stores.
    pub fn time_key(&self) -> String {
        time_key(self.scheduled_time)
    }
}

/// A fixed-width, sortable UTC rendering of an instant, to the second.
pub fn time_key(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub key: RunKey,
    pub trigger: RunTrigger,
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RunPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// Refreshed by every step that makes progress; a run whose heartbeat is older than its
    /// lease is failed by the reaper.
    pub heartbeat: Timestamp,
    /// The chunk steps planned and the ones committed (the latter counted atomically, so the
    /// worker that commits the last chunk knows it is the last).
    pub chunks_total: u32,
    pub chunks_done: u32,
    /// Chunk steps sent, in number order: `chunks_dispatched - chunks_done` are in flight, which
    /// the dispatch keeps at most `channel.workers` (absent, 0, on records of earlier versions).
    #[serde(default)]
    pub chunks_dispatched: u32,
    /// The policy's plan for this run (replica names, the incremental window, ...), as the
    /// Schema step wrote it.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub plan: serde_json::Value,
    /// When the run and its steps and progress are gone ([`expired`]); none: kept for good
    /// (and on records of earlier versions). Epoch seconds, as DynamoDB's TTL reads it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "jiff::fmt::serde::timestamp::second::optional"
    )]
    pub expires_at: Option<Timestamp>,
    pub version: u64,
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Schema,
    Chunk,
    Finalize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Planned, no message sent for it yet (the dispatch sends at most `channel.workers`).
    Pending,
    /// Its message is on the queue (sent, or sent back after a failure or a postponement).
    Queued,
    /// Claimed: a worker holds its lease and works on it.
    Leased,
    Done,
    Failed,
}

/// One unit of work of a run, idempotent on retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub run: RunKey,
    pub n: u32,
    pub kind: StepKind,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<Timestamp>,
    pub attempts: u32,
    pub rows: u64,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The step's input (a chunk's table and key range), as the planner wrote it.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub payload: serde_json::Value,
    /// When the step's latest attempt claimed it, and when that attempt was settled: a table's
    /// copy time in the run's report spans its chunks' latest attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// When its latest message was sent: the sweep sends again a step queued long ago that no
    /// worker took (its message was lost). Absent on records of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<Timestamp>,
    /// Its run's expiry ([`RunRecord::expires_at`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "jiff::fmt::serde::timestamp::second::optional"
    )]
    pub expires_at: Option<Timestamp>,
    /// A step that copies several small tables: the parts committed so far (a retry copies only
    /// the others), then all of them. Empty for a one-chunk step, and on earlier versions' records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartDone>,
    pub version: u64,
}

/// One committed part of a step that copies several small tables (each part one table's one
/// chunk): its own rows, bytes and checksum, as a one-chunk step records them on itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartDone {
    /// Its position in the step's payload.
    pub index: u32,
    pub rows: u64,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// Per-table counters of a run, added to atomically by each chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    /// `db.table` in source names.
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
    pub chunks_done: u32,
    pub elapsed_ms: u64,
    /// Chunks whose verification passed, and failed.
    pub verified: u32,
    pub mismatched: u32,
}

/// An incremental task's watermark for one table: the highest timestamp-column value copied, in
/// the column's full precision, as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub task_id: String,
    /// `db.table` in source names.
    pub table: String,
    pub value: String,
    pub updated_at: Timestamp,
    pub version: u64,
}

/// Whether a record with this expiry reads as gone at `now`: at or past it. A record without one
/// never expires.
pub fn expired(expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// One page of a listing, and the cursor of the next, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}
