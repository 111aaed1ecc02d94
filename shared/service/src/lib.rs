//! # tidemark-service
//!
//! The use cases, written once over the ports and driven by the local host (`tidemark`) and, later,
//! the Lambda functions.
//!
//! ## Layout
//! - [`passwords`]: an endpoint's password from the spec, the environment or the secret store.
//! - [`cycle`]: one cycle of a task: the run record, the schema's pre-data phase, the chunked copy
//!   `channel.workers` at a time, the post-data phase, per-table progress in the state store.
//! - [`precheck`]: a task's precheck: the engine's checks plus the schema plan's mapping
//!   warnings, in one report.
//! - [`error`]: [`ServiceError`]; messages name the object and the fix, never a secret.

pub mod cycle;
pub mod error;
pub mod passwords;
pub mod policies;
pub mod precheck;

pub use cycle::{CycleEvent, CycleReport, TableOutcome, run_cycle};
pub use error::ServiceError;
