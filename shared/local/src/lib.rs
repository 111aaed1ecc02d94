//! # tidemark-local
//!
//! The adapters of the local host (`tidemark run` / `tidemark serve`): everything the ports need,
//! on one machine, without a cloud.
//!
//! ## Layout
//! - [`sqlite`]: [`SqliteStore`], the state store in one SQLite file, with the same item layout
//!   as the DynamoDB table (a partition key, a sort key, a version, a JSON body).
//! - [`queue`]: [`SqliteQueue`], the step queue with SQS's semantics (delay, visibility timeout,
//!   receipts, dead letters) in the same SQLite file, from [`SqliteStore::step_queue`]; messages
//!   outlive the process.
//! - [`memory_queue`]: [`MemoryQueue`], the same queue in memory, for fast tests of step logic.
//! - [`memory_store`]: [`MemoryStore`], the state store in memory with the SQLite store's
//!   semantics (records kept as the same JSON bodies), for fast tests of the use cases.
//! - [`secrets`]: [`LocalSecretStore`], inline passwords in a JSON file of mode 0600, never in
//!   the state.
//! - [`scheduler`]: [`LocalScheduler`], started tasks' schedules in a SQLite table, with how far
//!   each has been fired (the serve loop's memory across restarts).

mod cursor;
pub mod memory_queue;
pub mod memory_store;
pub mod queue;
pub mod scheduler;
pub mod secrets;
pub mod sqlite;

pub use memory_queue::MemoryQueue;
pub use memory_store::MemoryStore;
pub use queue::SqliteQueue;

pub use scheduler::{LocalSchedule, LocalScheduler};
pub use secrets::LocalSecretStore;
pub use sqlite::SqliteStore;
