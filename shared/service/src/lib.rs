//! # tidemark-service
//!
//! The use cases, written once over the ports and driven by the local host (`tidemark`) and, later,
//! the Lambda functions.
//!
//! ## Layout
//! - [`tasks`]: [`TaskService`] and the task use cases: create (inline passwords to the secret
//!   store), list, read, patch (invalidates the precheck), delete (with the task's secrets).
//! - [`lifecycle`]: test connection, precheck in the background, start (only after a passed,
//!   fresh precheck), stop, schedule preview.
//! - [`queued_precheck`]: prechecks through a queue where the answering process cannot run them
//!   (Lambda): enqueue, run a delivered one once, and the rule for "still running".
//! - [`runs`]: run now, run history, one run with per-table progress, cancel.
//! - [`local_schedule`]: the local scheduler's loop (due cycles fired, missed ones recorded),
//!   resuming unfinished runs, graceful shutdown.
//! - [`http`]: the one [`axum::Router`] of the API and the error-to-status mapping.
//! - [`allowlist`]: the endpoint hosts/CIDRs the service may connect to.
//! - [`secret_scope`]: the secrets a task may name (the deployment's ARNs and tag), checked
//!   before one is read.
//! - [`passwords`]: an endpoint's password from the spec or the environment (the command line).
//! - `endpoints`: how the service logs in to an endpoint: password and user (a secret's
//!   `username` wins), read when a connection is about to be made.
//! - [`driver`]: the one run driver: what follows each step, decided in one place for every host
//!   (Lambda's run-worker, `tidemark run`, `tidemark serve`), with the dispatch bounded by
//!   `channel.workers`, leases renewed while a step works, and the sweep.
//! - [`cycle`]: a cycle's input, events, report and run context (what every step needs).
//! - [`steps`]: the Schema, Chunk and Finalize steps' work, each idempotent on retry.
//! - [`precheck`]: a task's precheck: the engine's checks plus the schema plan's mapping
//!   warnings, in one report.
//! - [`error`]: [`ServiceError`]; messages name the object and the fix, never a secret.

pub mod allowlist;
mod bounded;
mod cancel;
mod checks;
mod consumers;
mod context;
pub mod cycle;
pub mod driver;
mod endpoints;
pub mod error;
pub mod http;
mod jobs;
pub mod lifecycle;
pub mod local_schedule;
pub mod passwords;
mod payload;
pub mod policies;
pub mod precheck;
mod precheck_queue;
pub mod queued_precheck;
pub mod runs;
pub mod secret_scope;
pub mod steps;
pub mod tasks;
pub mod worker;

pub use allowlist::Allowlist;
pub use cancel::Deleted;
pub use consumers::ConsumerConfig;
pub use cycle::{CycleEvent, CycleReport, StepRetry, TableOutcome, run_cycle, run_cycle_with};
pub use driver::{DriverConfig, StepOutcome};
pub use error::ServiceError;
pub use http::router;
pub use queued_precheck::QueuedPrecheck;
pub use secret_scope::SecretScope;
pub use tasks::{Host, Ports, TaskService};
pub use worker::{CycleStart, WorkerConfig};
