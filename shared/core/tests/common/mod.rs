//! Helpers shared by the integration tests: the DESIGN.md example as a mutable JSON value.
#![allow(dead_code)]

use serde_json::{Value, json};
use tidemark_core::{FieldError, SpecErrors, TaskSpec, parse_task_spec};

pub const DESIGN_EXAMPLE: &str = include_str!("../fixtures/design_example.json");

/// The DESIGN.md example, as JSON to mutate.
pub fn example() -> Value {
    serde_json::from_str(DESIGN_EXAMPLE).expect("fixture is JSON")
}

/// The example with a non-incremental policy and no timestamp columns.
pub fn example_with_policy(policy: Value) -> Value {
    let mut v = example();
    v["policy"] = policy;
    for db in v["objects"].as_array_mut().expect("objects") {
        if let Some(tables) = db["tables"].as_array_mut() {
            for t in tables {
                t.as_object_mut().expect("table").remove("timestamp_column");
            }
        }
    }
    v
}

pub fn resync() -> Value {
    example_with_policy(json!({"mode": "resync"}))
}

pub fn parse(v: &Value) -> Result<TaskSpec, SpecErrors> {
    parse_task_spec(&v.to_string())
}

pub fn parse_ok(v: &Value) -> TaskSpec {
    match parse(v) {
        Ok(spec) => spec,
        Err(e) => panic!("expected a valid spec, got: {e}"),
    }
}

/// Parses `v`, expects exactly one error, at `field`, whose message contains `needle`.
pub fn only_error(v: &Value, field: &str, needle: &str) -> FieldError {
    let errs = match parse(v) {
        Ok(_) => panic!("expected an error at {field}, but the spec is valid"),
        Err(e) => e,
    };
    assert_eq!(errs.0.len(), 1, "expected exactly one error, got: {errs}");
    let e = errs.0[0].clone();
    assert_eq!(e.field, field, "wrong field; error: {errs}");
    assert!(
        e.message.contains(needle),
        "message of {field} should contain {needle:?}; got {:?}",
        e.message
    );
    assert_eq!(errs.first_field(), field);
    e
}

/// The example, changed by `f`.
pub fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = example();
    f(&mut v);
    v
}

/// The resync variant of the example, changed by `f`.
pub fn resync_with(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = resync();
    f(&mut v);
    v
}

/// Removes `key` from the object at `v`.
pub fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().expect("an object").remove(key);
}
