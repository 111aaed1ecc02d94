//! One integration-test binary (one link, one harness): every end-to-end test is a module here.

mod aws_emulator;
mod connect;
mod docs;
mod precheck;
mod precheck_facts;
mod precheck_objects;
mod precheck_private;
mod schema_diff;
mod stack;
mod store_sqlite;
mod tls;
