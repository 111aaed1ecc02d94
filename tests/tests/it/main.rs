//! One integration-test binary (one link, one harness): every end-to-end test is a module here.

mod aws_emulator;
mod connect;
mod docs;
mod schema;
mod schema_diff;
mod schema_hostile;
mod schema_mapping;
mod stack;
mod store_sqlite;
mod tls;
