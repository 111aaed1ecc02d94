//! # tidemark-engine
//!
//! Everything that touches the user's MySQL/MariaDB servers.
//!
//! ## Layout
//! - [`connect`]: endpoint options (TLS, timeouts, no unix-socket detour), a bounded-time connect
//!   that tells a closed port, a host that never answers, a silent listener and a wrong password
//!   apart, and the server's flavour and version.
//! - [`precheck`]: the precheck: each server's facts read once, then pure checks over them.
//! - [`error`]: the engine's errors; every message names the endpoint and the fix, never a secret.

pub mod connect;
pub mod error;
pub mod precheck;

pub use connect::{ConnectOptions, DEFAULT_CONNECT_TIMEOUT, Flavor, ServerInfo, connect, probe};
pub use error::{ConnectError, FactsError};
pub use precheck::run_precheck;
