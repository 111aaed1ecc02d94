//! # tidemark-tests
//!
//! The end-to-end tests (in `tests/it/`) and the harness that every crate's integration tests use.
//!
//! ## Layout
//! - [`harness::stack`]: the two shared servers (source, destination) and the AWS emulator started
//!   by `infra/local/stack.sh`, found through the environment it writes (`.stack/env`).
//! - [`harness::private`]: a MariaDB server of a test's own, for tests that change server-wide
//!   settings (`local_infile`, TLS, time zone); stopped when dropped, and by `stack.sh stop` at the
//!   end of the run whatever happened.
//! - [`harness::net`]: a closed port and a silent listener on loopback (a host that does not answer).
//! - [`harness::names`]: database and resource names unique to one test.
//! - [`harness::clock`]: [`harness::ManualClock`], a clock a test moves by hand (no sleeps).
//!
//! - [`contract`]: suites every adapter of a port must pass: the state store's, and the step
//!   queue's for the queues a host polls itself.
//!
//! - [`cloudwatch`]: CloudWatch Logs' JSON filter patterns evaluated over log lines, and
//!   template.yaml's resources read, so tests hold the alarms to what the functions log.
//!
//! - [`module_graph`]: the import graph between the modules of a source directory, and
//!   [`module_graph::check_acyclic`], which a crate's test runs over a directory whose modules
//!   must form a DAG.
//!
//! Nothing here connects anywhere but loopback.

pub mod cloudwatch;
pub mod contract;
pub mod harness;
pub mod module_graph;
