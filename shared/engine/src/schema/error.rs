//! Schema migration errors. Each message names the object (as `kind `db`.`name``) and what to do.

use super::plan::ObjectRef;

/// Why the schema of a task could not be read, planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "database `{database}` does not exist on the source (or the source user cannot see it): check `objects[].database` (names are case-sensitive on most servers) and the user's privileges"
    )]
    DatabaseNotFound { database: String },

    #[error(
        "table `{database}`.`{table}` does not exist on the source: check the name in `objects[].tables` (names are case-sensitive on most servers)"
    )]
    TableNotFound { database: String, table: String },

    #[error(
        "column `{column}` of table `{database}`.`{table}` does not exist on the source: fix or remove it in the table's `columns`"
    )]
    ColumnNotFound {
        database: String,
        table: String,
        column: String,
    },

    #[error(
        "cannot read {object} on the source: {detail}; the source user needs SELECT, SHOW VIEW and TRIGGER on the database, and SELECT on mysql.proc to read routines"
    )]
    Read { object: String, detail: String },

    #[error(
        "cannot understand the definition of {object} read from the source ({detail}); this is a bug in Tidemark: please report it with the output of SHOW CREATE for that object"
    )]
    Parse { object: String, detail: String },

    #[error(
        "{object} already exists on the destination: drop it there, or map the database to another name with `rename`"
    )]
    AlreadyExists { object: Box<ObjectRef> },

    #[error("creating {object} on the destination failed: {detail}; the statement was:\n{sql}")]
    Apply {
        object: Box<ObjectRef>,
        detail: String,
        sql: String,
    },

    #[error("the destination session failed while preparing to create the schema: {detail}")]
    Session { detail: String },

    /// The connection (or the server) failed under a statement that was not at fault: trying
    /// again when the server answers may succeed.
    #[error("the connection to the {side} failed while {doing}: {detail}")]
    Connection {
        side: &'static str,
        doing: String,
        detail: String,
    },
}

impl SchemaError {
    /// Whether trying again later may succeed without the user changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SchemaError::Session { .. } | SchemaError::Connection { .. }
        )
    }
}
