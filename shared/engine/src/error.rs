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
