//! One integration-test binary (one link, one harness): every end-to-end test is a module here.

mod aws_adapters;
mod aws_emulator;
mod connect;
mod copy_exact;
mod copy_keys;
mod copy_support;
mod copy_verify;
mod docs;
mod lambda;
mod policy_incremental;
mod policy_replica;
mod policy_resync;
mod policy_support;
mod precheck;
mod precheck_facts;
mod precheck_objects;
mod precheck_private;
mod schema;
mod schema_diff;
mod schema_hostile;
mod schema_mapping;
mod stack;
mod steps_queue;
mod store_dynamodb;
mod store_sqlite;
mod tls;
