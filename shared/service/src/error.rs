//! The service's errors: each wraps the layer that failed and keeps its message, which names the
//! object and the fix.

use tidemark_core::ports::StoreError;
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
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The previous run of the task was still going when this cycle fired: recorded as skipped.
    #[error(
        "the run scheduled at {running} was still running, so the cycle scheduled at \
         {scheduled_time} was skipped; a cycle runs after the previous one has finished"
    )]
    Skipped {
        scheduled_time: String,
        running: String,
    },
    /// The run for this scheduled time already finished; nothing was done.
    #[error("the run scheduled at {scheduled_time} already {status}; nothing to do")]
    AlreadyRan {
        scheduled_time: String,
        status: String,
    },
}

impl ServiceError {
    /// Whether the caller's input is at fault (a bad spec, a missing environment variable).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, ServiceError::Invalid { .. })
    }
}
