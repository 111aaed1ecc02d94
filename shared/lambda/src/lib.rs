//! # tidemark-lambda
//!
//! Tidemark on AWS Lambda: what the functions in `functions/` share, so each `main.rs` is only
//! wiring (logs, environment, handler).
//!
//! ## Layout
//! - [`env`]: the function's configuration from its environment (template.yaml's `Globals`, and
//!   the run driver's optional durations and counts, [`env::DRIVER_VARIABLES`]), failing fast
//!   with the variable's name, and [`env::AwsWiring`]: the AWS adapters of the ports from one SDK
//!   configuration (the function's own, or the emulator's in tests), with the copy pools a warm
//!   container keeps.
//! - [`logs`]: JSON logs for CloudWatch; the crates that log request contents are capped at
//!   `info`, so no secret reaches a log line.
//! - [`api`]: the HTTP API — `tidemark serve`'s one router through `lambda_http`, with the API
//!   Gateway stage taken off the path (create-task, manage-task, and the precheck function's
//!   HTTP side).
//! - [`precheck`]: the precheck function's two event shapes (an API Gateway request, an SQS
//!   batch from the precheck queue) and its handler.
//! - [`cycle`]: run-cycle — the scheduler's trigger (one run per scheduled time) and the sweep
//!   of stalled runs.
//! - [`worker`]: run-worker — step messages within the invocation's deadline, and the
//!   dead-letter queue's messages failing their runs.
//! - [`dead_letter`]: the dead-letter queue's three kinds of message told apart (a step, a
//!   scheduler dead-letter event, run-cycle's on-failure destination record).

pub mod api;
pub mod cycle;
pub mod dead_letter;
pub mod env;
pub mod logs;
pub mod precheck;
pub mod worker;

use std::sync::Arc;

use tidemark_service::TaskService;

pub use env::{AwsWiring, EnvError, FunctionEnv};
pub use logs::init_logs;

/// The use cases wired to AWS from the function's environment: what each function's `main`
/// builds once per cold start. The error (logged, and returned to Lambda as the init error)
/// names the variable to fix.
pub async fn task_service_from_env() -> Result<Arc<TaskService>, EnvError> {
    match env::wiring_from_env().await {
        Ok(wiring) => Ok(wiring.task_service()),
        Err(e) => {
            tracing::error!(error = %e, "the function cannot start");
            Err(e)
        }
    }
}
