//! Tidemark's domain, with no I/O: the task spec, its parsing and validation.
//!
//! # Layout
//!
//! - [`spec`]: the task spec types ([`TaskSpec`] and its parts) and [`parse_task_spec`];
//!   `spec/parse.rs` reads JSON with error paths, `spec/validate.rs` checks endpoints, policy,
//!   schedule and channel, `spec/objects.rs` checks the object selection and name mapping.
//! - [`schedule`]: when cycles fire (Day/Week at HH:MM in a zone, inside the effective window,
//!   DST as EventBridge Scheduler does it) and the EventBridge cron expression.
//! - [`policy`]: the pure parts of the scheduling policies: replica names, shadow names, the
//!   incremental window, which replicas `keep_replicas` drops.
//! - [`state`]: the records kept per task (task, precheck, run, step, progress, watermark).
//! - [`ports`]: the traits the use cases need ([`ports::StateStore`], [`ports::SecretStore`],
//!   [`ports::TaskScheduler`], [`ports::StepQueue`] and its consumer side [`ports::StepInbox`],
//!   [`ports::Clock`]).
//! - [`precheck`]: the precheck report ([`precheck::CheckResult`], [`precheck::PrecheckReport`])
//!   and the stable check ids.
//! - [`ident`]: MySQL identifier rules (length, forbidden characters, case-insensitive names).
//! - [`error`]: [`FieldError`] (a path and a message that says how to fix it) and
//!   [`SpecErrors`] (all of them).
//!
//! ```
//! let json = include_str!("../tests/fixtures/design_example.json");
//! let spec = tidemark_core::parse_task_spec(json)?;
//! assert_eq!(spec.name, "shop-nightly");
//! # Ok::<(), tidemark_core::SpecErrors>(())
//! ```

pub mod error;
pub mod ident;
pub mod policy;
pub mod ports;
pub mod precheck;
pub mod retry;
pub mod schedule;
pub mod spec;
pub mod state;

pub use error::{FieldError, SpecErrors};
pub use spec::{
    Channel, ColumnSelection, Cycle, DatabaseSelection, EndpointSpec, FailurePolicy,
    IncrementalPolicy, MigrationType, MultiReplicaPolicy, PasswordSource, Policy, ResyncPolicy,
    ScheduleSpec, TableSelection, TaskSpec, TimeOfDay, TlsMode, TlsSpec, Weekday, parse_task_spec,
};
