//! One integration-test binary (one link, one harness): every end-to-end test is a module here.

mod aws_emulator;
mod connect;
mod copy_exact;
mod copy_keys;
mod copy_support;
mod copy_verify;
mod docs;
mod stack;
