//! The SQL of the scheduling policies, on the destination and (for the incremental window) the
//! source. The names come from `tidemark_core::policy`; the order of things from the service.
//!
//! ## Layout
//! - [`incremental`]: the window read once per table, column drift between source and
//!   destination, destination triggers set aside during an upsert load and restored after.
//! - [`objects`]: what exists on the destination, dropping databases and tables, the resync's one
//!   atomic `RENAME TABLE`.

pub mod incremental;
pub mod objects;

/// Why a policy step failed; every message names the object and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{doing} for {object} failed: {source}")]
    Sql {
        doing: &'static str,
        object: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error(
        "column {column} of table {table} was {change} on the source since the destination table \
         was made; an incremental cycle does not alter the destination. Drop the destination \
         table {dest_table}: the next cycle recreates it and copies it in full"
    )]
    ColumnDrift {
        table: String,
        dest_table: String,
        column: String,
        change: &'static str,
    },
    #[error(
        "column {column} of table {table} is {data_type}, not a TIMESTAMP or DATETIME; pick a \
         timestamp column that every insert and update sets"
    )]
    NotATimestamp {
        table: String,
        column: String,
        data_type: String,
    },
    #[error(
        "trigger {trigger} was set aside during the incremental load and could not be recreated: \
         {detail}; recreate it with this statement: {sql}"
    )]
    TriggerRestore {
        trigger: String,
        detail: String,
        sql: String,
    },
    #[error(
        "database {database} already exists on the destination and no run of this task recorded \
         it; Tidemark does not overwrite it: drop or rename it, or change the schedule"
    )]
    ReplicaExists { database: String },
}

impl PolicyError {
    /// Whether trying again when the servers answer may succeed (a lost connection, a deadlock).
    pub fn is_retryable(&self) -> bool {
        match self {
            PolicyError::Sql { source, .. } => crate::error::is_transient(source),
            PolicyError::TriggerRestore { .. }
            | PolicyError::ColumnDrift { .. }
            | PolicyError::NotATimestamp { .. }
            | PolicyError::ReplicaExists { .. } => false,
        }
    }

    pub(crate) fn sql(
        doing: &'static str,
        object: impl Into<String>,
    ) -> impl FnOnce(mysql_async::Error) -> PolicyError {
        let object = object.into();
        move |source| PolicyError::Sql {
            doing,
            object,
            source,
        }
    }
}
