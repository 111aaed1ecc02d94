//! A run as steps, each recorded under the run and idempotent on retry, so that any process
//! (a Lambda invocation, `tidemark serve` after a restart) can pick a run up where it stopped:
//!
//! ```text
//! STEP#0        Schema    the policy's preparation (names, leftovers dropped, pre-data DDL,
//!                         windows, triggers set aside), then every table's chunks planned and
//!                         written as the steps below — the Finalize step last, so its presence
//!                         says the plan is complete
//! STEP#1..=N    Chunk     one key range of one table, copied and verified in one transaction
//!                         (a retry clears the range first; an incremental chunk only upserts);
//!                         or several small tables' one chunk each, one after the other
//! STEP#N+1      Finalize  the policy's ending (indexes, swap, foreign keys, views, routines,
//!                         triggers, watermarks, old replicas), then the run's report
//! ```
//!
//! A step is claimed by writing a lease on its record, conditional on the version read, so two
//! workers never run one step at once; a lost race is an ordinary outcome. A step whose lease
//! has expired was left by a worker that died and may be claimed again. What a failed run leaves
//! is cleaned up by [`abort`] from the Finalize step's payload (shadow tables, half-made
//! replicas, triggers set aside).

//!
//! ## Layout
//! - [`record`]: claims (short leases), settling, giving a step back.
//! - [`schema`], [`chunk`], [`finalize`]: one file per step's work; the driver decides what
//!   follows each ([`crate::driver`]).
//! - [`grouping`]: which chunks share a Chunk step (many small tables do).
//! - [`caps`]: `channel.table_workers`, each table's cap on chunks in flight.
//! - The payloads they carry are in [`crate::payload`].

mod caps;
mod chunk;
mod finalize;
mod grouping;
mod record;
mod schema;

pub(crate) use chunk::chunk;
pub(crate) use finalize::{abort, finalize, outcomes};
pub use record::owner_id;
pub(crate) use record::{claim, ensure_schema_step, release, settle};
pub(crate) use schema::schema;

pub(crate) use crate::payload::{Finish, finalize_of, finalize_payload};
pub use crate::payload::{SCHEMA_STEP, TableEntry};
