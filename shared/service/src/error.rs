//! The service's errors: each wraps the layer that failed and keeps its message, which names the
//! object and the fix.

use tidemark_core::SpecErrors;
use tidemark_core::ports::{QueueError, SchedulerError, SecretError, StoreError};
use tidemark_engine::policy::PolicyError;
use tidemark_engine::{ConnectError, CopyError, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The spec or the environment it needs is not usable (exit 2 / HTTP 400).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{role}: {source}")]
    Connect {
        role: &'static str,
        #[source]
        source: ConnectError,
    },
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The body is not a valid task spec (or patch): every problem, each naming its field.
    #[error(transparent)]
    Spec(#[from] SpecErrors),
    #[error("{what} does not exist")]
    NotFound { what: String },
    /// The request does not fit the task's state (`code` says which rule); `checks` lists the
    /// failing precheck ids when that is the reason.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        checks: Vec<String>,
    },
    /// An endpoint outside the allowlist: nothing was connected to.
    #[error(
        "{field}: host `{host}` is not in this server's allowed hosts (--allow-hosts locally, the AllowHosts parameter on AWS): {reason}; nothing was connected to"
    )]
    HostNotAllowed {
        field: String,
        host: String,
        reason: String,
    },
    /// A `password_secret` outside the deployment's secret scope, or one the secret store may
    /// not read: nothing was read.
    #[error("{field}: {message}")]
    SecretNotAllowed { field: String, message: String },
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The run for this scheduled time already finished; nothing was done.
    #[error("the run scheduled at {scheduled_time} already {status}; nothing to do")]
    AlreadyRan {
        scheduled_time: String,
        status: String,
    },
}

impl ServiceError {
    /// The same error, the field it names (if any) without `prefix`.
    pub fn without_field_prefix(self, prefix: &str) -> ServiceError {
        let strip = |field: String| match field.strip_prefix(prefix) {
            Some(rest) => rest.to_owned(),
            None => field,
        };
        match self {
            ServiceError::Invalid { field, message } => ServiceError::Invalid {
                field: strip(field),
                message,
            },
            ServiceError::HostNotAllowed {
                field,
                host,
                reason,
            } => ServiceError::HostNotAllowed {
                field: strip(field),
                host,
                reason,
            },
            ServiceError::SecretNotAllowed { field, message } => ServiceError::SecretNotAllowed {
                field: strip(field),
                message,
            },
            other => other,
        }
    }

    /// Whether the caller's input is at fault (a bad spec, a missing environment variable).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, ServiceError::Invalid { .. })
    }

    /// Whether the same step may succeed when tried again with nothing changed: an endpoint that
    /// did not answer or dropped the connection, a deadlock, a state store that was busy. A
    /// wrong spec, a missing privilege or a statement the server refuses is not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ServiceError::Connect { source, .. } => source.is_retryable(),
            ServiceError::Copy(e) => e.is_retryable(),
            ServiceError::Store(e) => e.is_retryable(),
            ServiceError::Schema(e) => e.is_retryable(),
            ServiceError::Policy(e) => e.is_retryable(),
            _ => false,
        }
    }
}
