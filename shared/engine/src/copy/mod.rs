//! The data copy: chunked, streaming, exact, idempotent, verified.
//!
//! ## Layout
//! - [`shape`]: a table as the copier sees it — written columns (no generated ones, invisible
//!   ones included), how each is read and written exactly, and the key ([`TableCopySpec`] in,
//!   [`TableShape`] out).
//! - [`range`]: exact, serializable key values and `(lower, upper]` key ranges as SQL.
//! - [`plan`]: the chunk planner, walking the key on the source ([`Chunk`]).
//! - [`plan_many`]: the same questions asked of many tables at once, a few round trips in all.
//! - [`session`]: both sides' pools and session settings ([`CopyEndpoints`]).
//! - `pooled`: a pool's [`Session`], timed while idle so one idle too long is pinged first.
//! - [`encode`]: the rows as bulk parameter batches, as LOAD DATA's byte stream, or as INSERTs.
//! - [`chunk`]: copying one chunk: snapshot read, clear the range, load, check, verify, commit.
//! - `write`: the three writers (bulk, LOAD DATA, INSERT), each fed while the rows stream in.
//! - [`verify`]: the NULL-safe, float-exact row count and checksum of a range.
//! - [`runner`]: planning tables and copying their chunks `workers` at a time, with progress.
//! - [`sql`]: the one identifier quoting and the one value escaping function.
//! - `types`: the plain types several of these share ([`WriteMethod`], [`ChunkProgress`],
//!   [`DigestSql`]), so that the modules import each other without a cycle.
//!
//! The run orchestrator: `CopyEndpoints::open` once, `plan_table` per table after the schema's
//! pre-data phase, then `copy_tables` (locally) or `copy_chunk` per queued chunk (on Lambda),
//! then the schema's post-data phase.

pub mod chunk;
pub mod encode;
pub mod plan;
pub mod plan_many;
mod pooled;
pub mod range;
pub mod runner;
pub mod session;
pub mod shape;
pub mod sql;
mod types;
pub mod verify;
mod write;

pub use chunk::{
    ChunkOptions, ChunkProgress, ChunkReport, SessionHold, WriteMethod, copy_chunk, copy_chunk_held,
};
pub use plan::{
    Chunk, RowWindow, by_size, chunk_bytes, plan_chunks, plan_chunks_split, plan_window_chunks,
};
pub use plan_many::{SourcePlan, destinations_empty, plan_sources};
pub use pooled::Session;
pub use range::{KeyBound, KeyRange, KeyValue};
pub use runner::{
    CopyEvent, CopyOptions, TablePlan, TableReport, Verification, copy_chunk_retrying,
    copy_chunk_with_retry, copy_tables, plan_table, plan_table_in_window,
};
pub use session::{CopyEndpoints, DEFAULT_IDLE_PING};
pub use shape::{Column, ColumnKind, TableCopySpec, TableShape, read_shape};
pub use verify::{Checksum, DigestSql, check_committed, verify_chunk};
