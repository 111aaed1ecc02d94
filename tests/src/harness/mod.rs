//! The test harness. See the crate docs for the tour.

pub mod aws;
pub mod clock;
pub mod fixtures;
pub mod names;
pub mod net;
pub mod private;
pub mod schema_diff;
pub mod server;
pub mod stack;
pub mod tls;

pub use clock::ManualClock;
pub use names::unique_name;
pub use private::PrivateServer;
pub use server::Server;
pub use stack::{destination, source};
