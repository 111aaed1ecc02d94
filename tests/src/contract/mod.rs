//! Contract suites: behaviour every adapter of a port must show, run against each adapter.

pub mod cursors;
pub mod expiry;
pub mod secret_store;
pub mod state_store;
pub mod step_queue;
