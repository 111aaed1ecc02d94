//! # tidemark-local
//!
//! The adapters of the local host (`tidemark run` / `tidemark serve`): everything the ports need,
//! on one machine, without a cloud.
//!
//! ## Layout
//! - [`sqlite`]: [`SqliteStore`], the state store in one SQLite file, with the same item layout
//!   as the DynamoDB table (a partition key, a sort key, a version, a JSON body).

pub mod sqlite;

pub use sqlite::SqliteStore;
