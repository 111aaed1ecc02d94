//! The three scheduling policies as cycle flows over [`crate::cycle::Ctx`]: what is planned,
//! created, copied, swapped and dropped, in which order, and what each leaves after a failure.
//!
//! - [`replica`]: multi-replica — new databases named after the scheduled time; `keep_replicas`.
//! - [`resync`]: shadow tables, one atomic swap, dependent objects recreated.
//! - [`incremental`]: first cycle full, then one window per table per run, upserted.

pub mod incremental;
pub mod replica;
pub mod resync;

use tidemark_core::FieldError;

use crate::error::ServiceError;

pub(crate) fn invalid(e: FieldError) -> ServiceError {
    ServiceError::Invalid {
        field: e.field,
        message: e.message,
    }
}
