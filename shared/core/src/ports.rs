//! The ports: what the use cases need from the outside world, as small traits. Adapters live in
//! `tidemark-local` (SQLite, files, in-process) and `tidemark-aws` (DynamoDB, Secrets Manager,
//! EventBridge Scheduler, SQS); the contract suites in `tidemark-tests` hold every state store,
//! and every step queue that can be polled, to the same behaviour.

use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;
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
///
/// A record past its expiry ([`crate::state::expired`]: a run, its steps and progress, a
/// precheck report) reads as absent, by `get_*` and in listings alike, whether or not the store
/// has deleted it yet; its expiry is set when it is created and never moved by an update.
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

    /// Stores a precheck report (any JSON) under the task, keyed by its time, gone after
    /// `expires_at` (none: kept).
    async fn put_precheck(
        &self,
        task_id: &str,
        at: Timestamp,
        expires_at: Option<Timestamp>,
        report: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// The newest precheck report of a task, unless it expired.
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

    /// Adds to a table's counters atomically (creating them at zero first, to expire at
    /// `expires_at`: the run's).
    async fn add_progress(
        &self,
        run: &RunKey,
        table: &str,
        delta: &ProgressDelta,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError>;
    /// Adds to several tables' counters (a step that copied several small tables), each as
    /// [`StateStore::add_progress`] does; a store may write them together.
    async fn add_progress_many(
        &self,
        run: &RunKey,
        deltas: &[(String, ProgressDelta)],
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        for (table, delta) in deltas {
            self.add_progress(run, table, delta, expires_at).await?;
        }
        Ok(())
    }
    /// A run's per-table counters, in table order.
    async fn list_progress(&self, run: &RunKey) -> Result<Vec<TableProgress>, StoreError>;

    async fn get_watermark(
        &self,
        task_id: &str,
        table: &str,
    ) -> Result<Option<Watermark>, StoreError>;
    /// Writes a watermark: a new one needs `version == 0`, an existing one the version read.
    async fn put_watermark(&self, mark: &Watermark) -> Result<u64, StoreError>;
}

/// Which endpoint of a task a secret belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointRole {
    Source,
    Destination,
}

impl EndpointRole {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointRole::Source => "source",
            EndpointRole::Destination => "destination",
        }
    }
}

/// Why a secret-store call failed. No variant ever carries a password or a secret's content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {reference} does not exist; give the ARN of an existing secret")]
    NotFound { reference: String },
    #[error(
        "secret {reference} does not hold RDS's JSON {{\"username\": ..., \"password\": ...}}; \
         store the password under the key \"password\""
    )]
    Malformed { reference: String },
    /// The secret store refused to read the secret (Secrets Manager's AccessDeniedException:
    /// IAM, or its KMS key, does not let Tidemark read it).
    #[error(
        "Tidemark may not read secret {reference}: allow it in the deployment's secret scope \
         (AllowedSecretArns or AllowedSecretTag) and, if a customer-managed KMS key encrypts it, \
         name the key in SecretKmsKeyArns"
    )]
    Denied { reference: String },
    /// A secret this store did not create: Tidemark never deletes a user's own secret.
    #[error("secret {reference} was not created by Tidemark, so Tidemark does not delete it")]
    NotOwned { reference: String },
    #[error("the secret store failed: {detail}")]
    Backend { detail: String, retryable: bool },
}

impl SecretError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SecretError::Backend {
                retryable: true,
                ..
            }
        )
    }
}

/// A password as the secret store holds it now, the account it belongs to when the secret names
/// one, and the version of the secret it was read from.
#[derive(Debug)]
pub struct StoredPassword {
    pub password: SecretString,
    /// The secret's `username` (RDS's format), when it has a non-empty one: it wins over the
    /// spec's `user`, so a rotation that alternates between two users keeps working.
    pub username: Option<String>,
    /// Changes whenever the secret's value is written again (a rotation, a task's password
    /// replaced) and never repeats for a secret; made without the password (Secrets Manager's
    /// `VersionId`, a stamp locally), so it can be logged.
    pub version: String,
}

/// Which version of which secret a password came from: tells the sessions logged in with a
/// rotated secret's password from the ones before, without the password.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretVersion {
    pub reference: String,
    pub version: String,
}

/// Where endpoint passwords live (Secrets Manager on AWS, a 0600 file locally). Only references
/// are stored with a task.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores an inline password given for a task's endpoint and returns the reference to keep
    /// in its place (and to delete with the task). Storing again for the same task and endpoint
    /// replaces the password and returns the same reference.
    async fn create_secret(
        &self,
        task_id: &str,
        role: EndpointRole,
        username: &str,
        password: &SecretString,
    ) -> Result<String, SecretError>;
    /// The password behind a reference (one this store created, or an existing secret holding
    /// RDS's `{"username","password"}` JSON), the secret's username if it has one, and the
    /// secret's current version.
    async fn read_password(&self, reference: &str) -> Result<StoredPassword, SecretError>;
    /// Deletes a secret this store created; deleting one that is gone is not an error.
    async fn delete_secret(&self, reference: &str) -> Result<(), SecretError>;
    /// Whether `reference` names a secret of the kind this store creates (under its prefix):
    /// the only ones it deletes, and ones a caller may not name for a task of their own.
    fn owns(&self, reference: &str) -> bool;
    /// The secret's tags as `(key, value)`, read without its value (Secrets Manager's
    /// DescribeSecret); `NotFound` or `Denied` when it cannot be described.
    async fn tags(&self, reference: &str) -> Result<Vec<(String, String)>, SecretError>;
}

/// Why a host name could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot resolve host `{host}`: {detail}")]
pub struct ResolveError {
    pub host: String,
    pub detail: String,
}

/// Host names to addresses (the system's resolver; a table in unit tests). The allowlist checks
/// the addresses of one answer and the connection goes to one of them, so a name is resolved
/// once per connection and never again by the driver: an answer that changes in between (DNS
/// rebinding) cannot send the connection elsewhere.
#[async_trait]
pub trait HostResolver: Send + Sync {
    /// Every address `host` resolves to now, in the resolver's order of preference; never
    /// empty.
    async fn resolve(&self, host: &str) -> Result<Vec<std::net::IpAddr>, ResolveError>;
}

/// The schedule of one task, as handed to a scheduler: fire `cron_expression` in `time_zone`,
/// never before `window_start`, never at or after `window_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSchedule {
    pub task_id: String,
    pub cron_expression: String,
    pub time_zone: String,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
}

impl TaskSchedule {
    pub fn new(task_id: &str, schedule: &Schedule) -> TaskSchedule {
        TaskSchedule {
            task_id: task_id.to_owned(),
            cron_expression: schedule.cron_expression(),
            time_zone: schedule.time_zone_name().to_owned(),
            window_start: schedule.window_start(),
            window_end: schedule.window_end(),
        }
    }
}

/// A task's schedule as the scheduler holds it (read back after `put_schedule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledSchedule {
    pub task_id: String,
    pub cron_expression: String,
    pub time_zone: String,
    /// No cycle fires before this instant; `None` when the window had already begun when the
    /// schedule was put (it fires from then on).
    pub not_before: Option<Timestamp>,
    /// No cycle fires after this instant (the last second of the window).
    pub not_after: Option<Timestamp>,
    pub enabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(
        "task id {task_id:?} cannot name a schedule: use 1-64 letters, digits, '-', '_' or '.'"
    )]
    InvalidTaskId { task_id: String },
    #[error("the scheduler failed: {detail}")]
    Backend { detail: String, retryable: bool },
}

impl SchedulerError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SchedulerError::Backend {
                retryable: true,
                ..
            }
        )
    }
}

/// Fires a task's cycles (EventBridge Scheduler on AWS, in-process locally). One schedule per
/// task.
#[async_trait]
pub trait TaskScheduler: Send + Sync {
    /// Creates the task's schedule, or replaces it.
    async fn put_schedule(&self, schedule: &TaskSchedule) -> Result<(), SchedulerError>;
    async fn get_schedule(
        &self,
        task_id: &str,
    ) -> Result<Option<InstalledSchedule>, SchedulerError>;
    /// Removes the task's schedule; removing one that is gone is not an error.
    async fn remove_schedule(&self, task_id: &str) -> Result<(), SchedulerError>;
}

/// "Execute step `step` of run `run`": the body of a step-queue message. The step record holds
/// the rest, so a message delivered twice does the work once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepMessage {
    pub run: RunKey,
    pub step: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue message does not encode: {detail}")]
    Encode { detail: String },
    #[error("the message queue failed: {detail}")]
    Backend { detail: String, retryable: bool },
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            QueueError::Backend {
                retryable: true,
                ..
            }
        )
    }
}

/// Carries run steps to the workers (SQS on AWS, in-process locally).
#[async_trait]
pub trait StepQueue: Send + Sync {
    /// Sends a step, to be delivered after `delay` (queues cap the delay: SQS at 15 minutes).
    async fn send_step(
        &self,
        message: &StepMessage,
        delay: Option<Duration>,
    ) -> Result<(), QueueError>;
}

/// One delivery of a step-queue message, as [`StepInbox::receive`] hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedStep {
    pub message: StepMessage,
    /// Names this delivery, not the message: each receive of a message hands out a new one, and
    /// only the newest acts on it (as SQS's receipt handles).
    pub receipt: String,
    /// How many times the message has been received, this delivery included (1 the first time).
    pub receive_count: u32,
}

/// The consumer side of the step queue, for hosts that poll a queue themselves (the local host;
/// on AWS, Lambda's event source consumes SQS instead). It keeps SQS's semantics, so one step
/// driver behaves the same everywhere: delivery is at least once, a received message is only
/// hidden until its visibility timeout passes, and a message received too often without being
/// deleted goes to a dead-letter list. Time comes from the adapter's [`Clock`].
#[async_trait]
pub trait StepInbox: StepQueue {
    /// Receives up to `max` messages whose delay has passed and that are not invisible, oldest
    /// available first (the one visible longest). Each becomes invisible for `visibility`, gets
    /// a new receipt, and its receive count grows by one. A message whose receive count already
    /// reached the queue's `max_receive_count` is moved to the dead-letter list instead of being
    /// delivered (SQS's redrive). An empty answer means nothing is available now.
    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<ReceivedStep>, QueueError>;

    /// Acknowledges a delivery: the message is gone for good. The newest receipt works even after
    /// the visibility timeout has passed, as long as no one received the message again. A stale
    /// receipt (the message was received again since, or is already gone or dead-lettered) is a
    /// no-op, not an error: delivery is at least once, so another consumer now owns the message.
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;

    /// Sets the invisibility of the message held with `receipt` to `visibility` from now:
    /// extends it (a long step's heartbeat) or shortens it, `Duration::ZERO` making the message
    /// visible at once. A stale receipt is a no-op and answers `Ok`, as for [`Self::delete`].
    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError>;

    /// Returns and removes up to `max` dead-lettered messages, in the order they were sent; each
    /// is returned once.
    async fn take_dead_letters(&self, max: u32) -> Result<Vec<StepMessage>, QueueError>;
}

/// "Run the precheck of task `task_id` started at `at`": the body of a precheck-queue message.
/// `at` names the precheck, so a late or duplicate delivery of an older one can tell that a newer
/// precheck owns the task's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrecheckMessage {
    pub task_id: String,
    pub at: Timestamp,
}

/// Carries prechecks to the function that runs them, where the process that answers
/// `POST /tasks/{id}/precheck` cannot run them itself (on Lambda it freezes once it answers).
#[async_trait]
pub trait PrecheckQueue: Send + Sync {
    async fn send_precheck(&self, task_id: &str, at: Timestamp) -> Result<(), QueueError>;
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
