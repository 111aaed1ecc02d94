//! Parse failures name their path: unknown fields at every level, missing and mistyped fields,
//! bad JSON.

mod common;

use common::*;
use serde_json::{Value, json};
use tidemark_core::parse_task_spec;

fn unknown_at(field: &str, v: Value) {
    let e = only_error(&v, field, "unknown field `bogus`");
    assert!(e.message.contains("remove it"), "{}", e.message);
}

#[test]
fn unknown_field_top_level() {
    unknown_at("bogus", with(|v| v["bogus"] = json!(1)));
}

#[test]
fn unknown_field_in_source_and_destination() {
    let e = only_error(
        &with(|v| v["source"]["bogus"] = json!(1)),
        "source.bogus",
        "unknown field `bogus`",
    );
    assert!(
        e.message.contains("`password_env`"),
        "lists the known fields: {}",
        e.message
    );
    unknown_at(
        "destination.bogus",
        with(|v| v["destination"]["bogus"] = json!(1)),
    );
}

#[test]
fn misspelled_password_field_is_rejected() {
    let v = with(|v| {
        remove(&mut v["source"], "password");
        v["source"]["pasword"] = json!("Hunter2-Very-Secret");
    });
    let e = only_error(&v, "source.pasword", "unknown field `pasword`");
    assert!(!e.message.contains("Hunter2"), "{}", e.message);
}

#[test]
fn unknown_field_in_tls() {
    unknown_at(
        "source.tls.bogus",
        with(|v| v["source"]["tls"]["bogus"] = json!(1)),
    );
}

#[test]
fn unknown_field_in_each_policy_variant() {
    unknown_at("policy.bogus", with(|v| v["policy"]["bogus"] = json!(1)));
    let v = example_with_policy(json!({"mode": "resync", "bogus": 1}));
    unknown_at("policy.bogus", v);
    let v = example_with_policy(json!({"mode": "multi_replica", "keep_replicas": 2, "bogus": 1}));
    unknown_at("policy.bogus", v);
    // A field of another mode is unknown too.
    let v = example_with_policy(json!({"mode": "resync", "lag_seconds": 5}));
    only_error(&v, "policy.lag_seconds", "unknown field `lag_seconds`");
}

#[test]
fn unknown_field_in_schedule_objects_and_channel() {
    unknown_at(
        "schedule.bogus",
        with(|v| v["schedule"]["bogus"] = json!(1)),
    );
    unknown_at(
        "objects[0].bogus",
        with(|v| v["objects"][0]["bogus"] = json!(1)),
    );
    unknown_at("channel.bogus", with(|v| v["channel"]["bogus"] = json!(1)));
}

#[test]
fn unknown_field_in_a_table() {
    unknown_at(
        "objects[0].tables[1].bogus",
        with(|v| v["objects"][0]["tables"][1]["bogus"] = json!(1)),
    );
}

#[test]
fn unknown_field_in_a_column() {
    unknown_at(
        "objects[0].tables[0].columns[2].bogus",
        with(|v| v["objects"][0]["tables"][0]["columns"][2]["bogus"] = json!(1)),
    );
}

#[test]
fn missing_source() {
    let e = only_error(
        &with(|v| remove(v, "source")),
        "source",
        "`source` is required",
    );
    assert!(e.message.contains("add it"), "{}", e.message);
}

#[test]
fn missing_nested_fields_name_their_path() {
    only_error(
        &with(|v| remove(&mut v["schedule"], "at")),
        "schedule.at",
        "`at` is required",
    );
    only_error(
        &with(|v| remove(&mut v["policy"], "mode")),
        "policy.mode",
        "`mode` is required",
    );
    only_error(
        &with(|v| remove(&mut v["objects"][0]["tables"][1], "name")),
        "objects[0].tables[1].name",
        "`name` is required",
    );
}

#[test]
fn wrong_types_and_values_name_their_path() {
    only_error(
        &with(|v| v["source"]["tls"]["mode"] = json!("sometimes")),
        "source.tls.mode",
        "unknown variant `sometimes`",
    );
    only_error(
        &with(|v| v["objects"][0]["tables"][1]["columns"] = json!([{"name": "a", "rename": 5}])),
        "objects[0].tables[1].columns[0].rename",
        "invalid type: integer `5`, expected a string",
    );
    only_error(
        &with(|v| v["policy"]["mode"] = json!("cdc")),
        "policy.mode",
        "expected one of `multi_replica`, `resync`, `incremental`",
    );
    only_error(
        &with(|v| v["policy"]["lag_seconds"] = json!("5")),
        "policy.lag_seconds",
        "expected u32",
    );
    only_error(
        &with(|v| v["schedule"]["days"] = json!(["monday"])),
        "schedule.days[0]",
        "unknown variant `monday`",
    );
    only_error(
        &with(|v| v["failure_policy"] = json!("retry")),
        "failure_policy",
        "expected `stop` or `continue`",
    );
}

#[test]
fn port_out_of_range_is_a_parse_error() {
    only_error(
        &with(|v| v["source"]["port"] = json!(70000)),
        "source.port",
        "expected u16",
    );
}

#[test]
fn bad_dates_say_the_expected_format() {
    for bad in ["2026-13-01", "12/01/2026", "2026-12-1", "2026-02-30"] {
        let e = only_error(
            &with(|v| v["schedule"]["start"] = json!(bad)),
            "schedule.start",
            "a date as YYYY-MM-DD",
        );
        assert!(e.message.contains(bad), "{}", e.message);
    }
}

#[test]
fn json_syntax_errors_give_line_and_column() {
    let errs = parse_task_spec("{\n  \"name\": \"x\",\n  oops\n}").expect_err("bad JSON");
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.first_field(), "");
    let e = &errs.0[0];
    assert!(e.message.contains("not valid JSON"), "{}", e.message);
    assert!(e.message.contains("line 3 column 3"), "{}", e.message);

    let errs = parse_task_spec("").expect_err("empty body");
    assert_eq!(errs.first_field(), "");
    assert!(errs.0[0].message.contains("line 1 column 0"), "{errs}");

    let errs = parse_task_spec(&format!("{DESIGN_EXAMPLE} {{}}")).expect_err("trailing data");
    assert_eq!(errs.first_field(), "");
    assert!(errs.0[0].message.contains("trailing characters"), "{errs}");

    let errs = parse_task_spec("[]").expect_err("not an object");
    assert!(
        errs.0[0].message.contains("expected struct TaskSpec"),
        "{errs}"
    );
}

#[test]
fn display_prefixes_and_joins() {
    let errs = parse_task_spec(&with(|v| remove(v, "source")).to_string()).expect_err("no source");
    assert!(
        errs.to_string()
            .starts_with("invalid task spec: source: `source` is required"),
        "{errs}"
    );
}

#[test]
fn a_number_where_a_named_value_belongs_names_the_field_not_a_syntax_error() {
    // serde_json calls this a syntax error; the document is valid JSON, so the field is named.
    for (field, value) in [
        ("schedule.cycle", json!(0)),
        ("failure_policy", json!(true)),
        ("source.tls.mode", json!([])),
    ] {
        let mut v = example();
        let (parent, leaf) = field.rsplit_once('.').unwrap_or(("", field));
        let holder = if parent.is_empty() {
            &mut v
        } else {
            parent.split('.').fold(&mut v, |cur, k| &mut cur[k])
        };
        holder[leaf] = value;
        let e = only_error(&v, field, "wrong type");
        assert!(!e.message.contains("not valid JSON"), "{e:?}");
    }
}
