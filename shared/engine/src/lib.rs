//! # tidemark-engine
//!
//! Everything that touches the user's MySQL/MariaDB servers.
//!
//! ## Layout
//! - [`batch`]: read-only statements for many tables sent several to a round trip.
//! - [`connect`]: endpoint options (TLS, timeouts, no unix-socket detour), a bounded-time connect
//!   that tells a closed port, a host that never answers, a silent listener and a wrong password
//!   apart, and the server's flavour and version.
//! - [`schema`]: schema migration: read the selected objects from the source, plan the DDL in
//!   two phases (pre-data: databases and tables; post-data: indexes, foreign keys, routines,
//!   views, triggers) with column selection and renames, and apply a phase on the destination.
//! - [`copy`]: the data copy — table shapes, the chunk planner, the chunk copier (LOAD DATA LOCAL
//!   or INSERTs, idempotent, verified), and the parallel table copier with progress.
//! - [`precheck`]: the precheck: each server's facts read once, then pure checks over them.
//! - [`resolve`]: [`SystemResolver`], the system's resolver behind the `HostResolver` port.
//! - [`retry`]: [`RetryPolicy`], the jittered exponential backoff of a retried failure (a chunk's
//!   deadlock or lost connection), its delays and count configurable.
//! - [`crash`]: a test hook: `TIDEMARK_CRASH_AT=<point>` aborts the process at a named point.
//! - [`error`]: the engine's errors ([`ConnectError`], and [`CopyError`] which wraps it); every
//!   message names the endpoint or the table and the fix, never a secret.

pub mod batch;
pub mod connect;
pub mod copy;
pub mod crash;
pub mod error;
pub mod policy;
pub mod precheck;
pub mod resolve;
pub mod retry;
pub mod schema;

pub use connect::{ConnectOptions, DEFAULT_CONNECT_TIMEOUT, Flavor, ServerInfo, connect, probe};
pub use error::{ConnectError, CopyError, FactsError, Side};
pub use precheck::run_precheck;
pub use resolve::SystemResolver;
pub use retry::RetryPolicy;
pub use schema::{Phase, SchemaError, SchemaPlan, apply, plan_from_source, plan_schema};
