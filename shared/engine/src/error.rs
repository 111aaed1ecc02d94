//! Engine errors. Messages name the endpoint (host:port) and what to do next; they never contain a
//! password: the only text taken from the server is its own error message, which MySQL and MariaDB
//! never fill with a password.

use std::time::Duration;

/// Why a connection to an endpoint could not be made. Each case is distinct so that a precheck or
/// `POST /connections/test` can tell the user which fix applies.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve host `{host}`: {detail}; check the host name")]
    Resolve { host: String, detail: String },

    #[error(
        "connection refused by {endpoint}: nothing listens on that port; check the host and port and that the server is running"
    )]
    Refused { endpoint: String },

    #[error(
        "no answer from {endpoint} within {} s: the host did not accept a TCP connection; check the host, the port and any firewall or security group between",
        .timeout.as_secs()
    )]
    Unreachable { endpoint: String, timeout: Duration },

    #[error(
        "{endpoint} accepted the TCP connection but sent no MySQL greeting within {} s: is this port a MySQL/MariaDB server? check the port, or a proxy in between",
        .timeout.as_secs()
    )]
    NoGreeting { endpoint: String, timeout: Duration },

    #[error(
        "access denied for user `{user}` at {endpoint}: check the user name and password (the password is not shown) and that the user may connect from this host"
    )]
    AccessDenied { endpoint: String, user: String },

    #[error("TLS with {endpoint} failed: {detail}")]
    Tls { endpoint: String, detail: String },

    #[error("{endpoint} refused the session: {detail}")]
    Server { endpoint: String, detail: String },

    #[error("connecting to {endpoint} failed: {detail}")]
    Other { endpoint: String, detail: String },
}

impl ConnectError {
    /// A short stable code for APIs and reports (`refused`, `no_greeting`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ConnectError::Resolve { .. } => "resolve",
            ConnectError::Refused { .. } => "refused",
            ConnectError::Unreachable { .. } => "unreachable",
            ConnectError::NoGreeting { .. } => "no_greeting",
            ConnectError::AccessDenied { .. } => "access_denied",
            ConnectError::Tls { .. } => "tls",
            ConnectError::Server { .. } => "server",
            ConnectError::Other { .. } => "other",
        }
    }

    /// Whether trying again later may succeed without the user changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectError::Refused { .. }
                | ConnectError::Unreachable { .. }
                | ConnectError::NoGreeting { .. }
                | ConnectError::Other { .. }
        )
    }
}

/// Which server a copy error happened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// Why copying a table or a chunk failed. Messages name the table and the key range, say what
/// was being done, and what to do about it. A chunk that failed left nothing on the destination
/// (its transaction was rolled back), so every case can be retried safely; [`is_retryable`] says
/// whether retrying *unchanged* can be expected to help.
///
/// [`is_retryable`]: CopyError::is_retryable
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Connect(#[from] ConnectError),

    #[error("on the {side} server, {doing} for {what} failed: {source}")]
    Sql {
        side: Side,
        /// The table, or the chunk with its key range.
        what: String,
        doing: String,
        #[source]
        source: mysql_async::Error,
    },

    #[error("table {table} does not exist on the source; check the task's object selection")]
    TableNotFound { table: String },

    #[error(
        "column `{column}` of table {table} does not exist on the source (or is a generated column, \
         which is computed and never copied); fix the task's column selection"
    )]
    ColumnNotFound { table: String, column: String },

    #[error(
        "{chunk}: {sent} rows were sent but the destination stored {stored}; rows were rejected \
         or merged (a duplicate key on the destination?); the chunk was rolled back"
    )]
    RowCountMismatch {
        chunk: String,
        sent: u64,
        stored: u64,
    },

    #[error(
        "{chunk}: the destination raised warnings while loading, so values would not arrive \
         exactly; the chunk was rolled back: {warnings}; make the destination table's definition \
         match the source's"
    )]
    Warnings { chunk: String, warnings: String },

    #[error(
        "{chunk}: verification failed: the source has {source_rows} rows (checksum \
         {source_checksum}) and the destination {dest_rows} (checksum {dest_checksum}); something \
         else writes to the destination table, or its definition differs from the source's"
    )]
    VerifyMismatch {
        chunk: String,
        source_rows: u64,
        dest_rows: u64,
        source_checksum: String,
        dest_checksum: String,
    },

    #[error(
        "{chunk}: a row of {bytes} bytes does not fit in one packet of the destination's \
         max_allowed_packet ({max_allowed_packet} bytes), as a prepared INSERT needs; the chunk \
         was rolled back; raise max_allowed_packet on the destination (SET GLOBAL \
         max_allowed_packet = {suggested}), or turn local_infile on there (LOAD DATA LOCAL \
         streams a row in pieces)"
    )]
    RowTooLarge {
        chunk: String,
        bytes: u64,
        max_allowed_packet: u64,
        /// Twice the row, in whole MiB.
        suggested: u64,
    },

    #[error("{chunk}: reading the rows on the source stopped: {detail}; the chunk was rolled back")]
    Stream { chunk: String, detail: String },

    #[error("internal error copying {table}: {detail}; please report it")]
    Invariant { table: String, detail: String },
}

/// Server error codes that say "try again": lock wait timeout, deadlock, the connection was
/// killed or the query interrupted, the server is shutting down or went away.
const RETRYABLE_SERVER_CODES: &[u16] = &[
    1205, 1213, 1053, 1317, 1927, 2006, 2013, 1040, 1158, 1159, 1160, 1161,
];

/// Whether a statement's error says "the connection or the server failed, try again" (a lost
/// connection, a server shutting down, a deadlock) rather than "this statement is wrong".
pub fn is_transient(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => true,
        mysql_async::Error::Server(e) => RETRYABLE_SERVER_CODES.contains(&e.code),
        _ => false,
    }
}

impl CopyError {
    pub(crate) fn sql(side: Side, what: &str, doing: &str, source: mysql_async::Error) -> Self {
        CopyError::Sql {
            side,
            what: what.to_owned(),
            doing: doing.to_owned(),
            source,
        }
    }

    pub(crate) fn source_sql(what: &str, doing: &str, source: mysql_async::Error) -> Self {
        CopyError::sql(Side::Source, what, doing, source)
    }

    pub(crate) fn dest_sql(what: &str, doing: &str, source: mysql_async::Error) -> Self {
        CopyError::sql(Side::Destination, what, doing, source)
    }

    /// A short stable code for reports and state records.
    pub fn code(&self) -> &'static str {
        match self {
            CopyError::Connect(e) => e.code(),
            CopyError::Sql { .. } => "sql",
            CopyError::TableNotFound { .. } => "table_not_found",
            CopyError::ColumnNotFound { .. } => "column_not_found",
            CopyError::RowCountMismatch { .. } => "row_count_mismatch",
            CopyError::Warnings { .. } => "warnings",
            CopyError::VerifyMismatch { .. } => "verify_mismatch",
            CopyError::RowTooLarge { .. } => "row_too_large",
            CopyError::Stream { .. } => "stream",
            CopyError::Invariant { .. } => "internal",
        }
    }

    /// Whether running the same chunk again, unchanged, may succeed: lost connections, lock
    /// timeouts, deadlocks, killed queries. Data problems (warnings, mismatches) are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            CopyError::Connect(e) => e.is_retryable(),
            CopyError::Sql { source, .. } => is_transient(source),
            CopyError::Stream { .. } => true,
            _ => false,
        }
    }
}

/// Why the precheck has no facts about an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error(transparent)]
    Connect(#[from] ConnectError),

    #[error(
        "connected to {endpoint}, but reading {what} failed: {detail}; check that the user may read information_schema and run SHOW GRANTS"
    )]
    Query {
        endpoint: String,
        what: &'static str,
        detail: String,
    },
}

impl FactsError {
    /// A short stable code: the connect error's, or `query`.
    pub fn code(&self) -> &'static str {
        match self {
            FactsError::Connect(e) => e.code(),
            FactsError::Query { .. } => "query",
        }
    }
}
