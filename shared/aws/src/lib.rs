//! Tidemark's AWS adapters: the ports of `tidemark-core` on DynamoDB, Secrets Manager,
//! EventBridge Scheduler and SQS.
//!
//! # Layout
//!
//! - [`dynamodb`]: [`DynamoDbStore`], the [`StateStore`](tidemark_core::ports::StateStore) on one
//!   table (`dynamodb/items.rs`: keys, record encoding, page cursors; `dynamodb/access.rs`:
//!   conditional writes, pages, batched reads; `dynamodb/table.rs`: the table, paged Queries,
//!   batched deletes), and [`create_table`] for tests and local tooling.
//! - [`retry`]: [`RetryPolicy`], the jittered exponential backoff of a batch's unprocessed items
//!   (and the wait for a new table), its delays and count configurable
//!   ([`DynamoDbStore::with_retry`], [`create_table_waiting`]).
//! - [`secrets`]: [`SecretsManagerStore`], inline passwords as secrets in RDS's JSON format.
//! - [`scheduler`]: [`EventBridgeScheduler`], one schedule per task; [`schedule_request`] builds
//!   every parameter as a pure function, so the cron, zone, window and input are unit-tested.
//! - [`queue`]: [`SqsStepQueue`] and [`SqsPrecheckQueue`], run steps and prechecks as SQS
//!   messages, both sent by one [`SqsSender`].
//! - `error.rs`: SDK errors reduced to a detail and whether retrying can help.
//!
//! Every adapter takes an SDK client built by the caller: credentials, region and endpoint are
//! decided once, at start-up (tests point them at the emulator on loopback).

mod error;

pub mod dynamodb;
pub mod queue;
pub mod retry;
pub mod scheduler;
pub mod secrets;

pub use dynamodb::{DynamoDbStore, create_table, create_table_waiting};
pub use queue::{SqsPrecheckQueue, SqsSender, SqsStepQueue};
pub use retry::RetryPolicy;
pub use scheduler::{
    EventBridgeScheduler, ScheduleRequest, SchedulerConfig, SchedulerInput, schedule_request,
};
pub use secrets::SecretsManagerStore;
