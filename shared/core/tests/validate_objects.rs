//! One test per policy and object-selection rule: the exact field path and the gist of the
//! message.

mod common;

use common::*;
use serde_json::{Value, json};

/// Sets one identifier of the example.
type Setter = fn(&mut Value, &str);

// ---- policy ----

#[test]
fn keep_replicas_at_least_one() {
    let v = example_with_policy(json!({"mode": "multi_replica", "keep_replicas": 0}));
    only_error(&v, "policy.keep_replicas", "at least 1");
}

#[test]
fn incremental_seconds_at_most_a_week() {
    only_error(
        &with(|v| v["policy"]["lag_seconds"] = json!(604_801)),
        "policy.lag_seconds",
        "at most 604800",
    );
    only_error(
        &with(|v| v["policy"]["lookback_seconds"] = json!(604_801)),
        "policy.lookback_seconds",
        "at most 604800",
    );
    parse_ok(&with(|v| v["policy"]["lookback_seconds"] = json!(604_800)));
}

#[test]
fn incremental_with_a_whole_database() {
    only_error(
        &with(|v| remove(&mut v["objects"][0], "tables")),
        "objects[0].tables",
        "incremental mode copies tables or columns, each with a timestamp_column; list the tables",
    );
}

#[test]
fn incremental_table_without_timestamp_column() {
    only_error(
        &with(|v| remove(&mut v["objects"][0]["tables"][1], "timestamp_column")),
        "objects[0].tables[1].timestamp_column",
        "needs a `timestamp_column`",
    );
}

#[test]
fn timestamp_column_must_be_selected() {
    let v = with(|v| {
        v["objects"][0]["tables"][0]["columns"] = json!([{"name": "id"}, {"name": "note"}])
    });
    only_error(
        &v,
        "objects[0].tables[0].timestamp_column",
        "not among the selected `columns`",
    );
    // Case-insensitive, like column names.
    parse_ok(&with(|v| {
        v["objects"][0]["tables"][0]["timestamp_column"] = json!("UPDATED_AT")
    }));
}

#[test]
fn timestamp_column_only_for_incremental() {
    let v = resync_with(|v| v["objects"][0]["tables"][1]["timestamp_column"] = json!("changed_at"));
    only_error(
        &v,
        "objects[0].tables[1].timestamp_column",
        "only used by the incremental policy",
    );
}

#[test]
fn whole_databases_are_fine_outside_incremental() {
    parse_ok(&resync_with(|v| remove(&mut v["objects"][0], "tables")));
}

// ---- objects ----

#[test]
fn empty_selections() {
    only_error(
        &with(|v| v["objects"] = json!([])),
        "objects",
        "at least one database",
    );
    only_error(
        &resync_with(|v| v["objects"][0]["tables"] = json!([])),
        "objects[0].tables",
        "omit `tables`",
    );
    only_error(
        &resync_with(|v| v["objects"][0]["tables"][0]["columns"] = json!([])),
        "objects[0].tables[0].columns",
        "omit `columns`",
    );
}

#[test]
fn identifier_of_64_chars_ok_and_65_rejected() {
    let ok = "名".repeat(64); // 64 characters, 192 bytes
    let long = "x".repeat(65);
    let cases: [(&str, Setter); 6] = [
        ("objects[0].database", |v, s| {
            v["objects"][0]["database"] = json!(s)
        }),
        ("objects[0].rename", |v, s| {
            v["objects"][0]["rename"] = json!(s)
        }),
        ("objects[0].tables[1].name", |v, s| {
            v["objects"][0]["tables"][1]["name"] = json!(s)
        }),
        ("objects[0].tables[0].rename", |v, s| {
            v["objects"][0]["tables"][0]["rename"] = json!(s)
        }),
        ("objects[0].tables[0].columns[0].name", |v, s| {
            v["objects"][0]["tables"][0]["columns"][0]["name"] = json!(s)
        }),
        ("objects[0].tables[0].columns[1].rename", |v, s| {
            v["objects"][0]["tables"][0]["columns"][1]["rename"] = json!(s)
        }),
    ];
    for (field, set) in cases {
        parse_ok(&with(|v| set(v, &ok)));
        only_error(&with(|v| set(v, &long)), field, "65 characters");
    }
    only_error(
        &with(|v| v["objects"][0]["tables"][1]["timestamp_column"] = json!(long)),
        "objects[0].tables[1].timestamp_column",
        "at most 64",
    );
}

#[test]
fn multi_replica_names_leave_room_for_the_suffix() {
    let mut v = example_with_policy(json!({"mode": "multi_replica"}));
    v["objects"][0]["rename"] = json!("d".repeat(47));
    only_error(&v, "objects[0].rename", "at most 46");
    v["objects"][0]["rename"] = json!("d".repeat(46));
    parse_ok(&v);
}

#[test]
fn hostile_but_valid_identifiers_are_accepted() {
    let v = with(|v| {
        v["objects"][0]["database"] = json!("my`db");
        v["objects"][0]["rename"] = json!("it's \"quoted\"");
        v["objects"][0]["tables"][0]["name"] = json!("select");
        v["objects"][0]["tables"][0]["rename"] = json!("名前");
        v["objects"][0]["tables"][0]["timestamp_column"] = json!("updated at`");
        v["objects"][0]["tables"][0]["columns"] = json!([
            {"name": "id", "rename": "DROP TABLE x; --"},
            {"name": "a b", "rename": "名前"},
            {"name": "updated at`"},
            {"name": "\\N", "rename": "' OR 1=1"}
        ]);
        v["objects"][0]["tables"][1]["name"] = json!("a.b");
    });
    let spec = parse_ok(&v);
    let db = &spec.objects[0];
    assert_eq!(
        (db.database.as_str(), db.target_name()),
        ("my`db", "it's \"quoted\"")
    );
    let t = &db.tables.as_ref().expect("tables")[0];
    assert_eq!((t.name.as_str(), t.target_name()), ("select", "名前"));
    let cols = t.columns.as_ref().expect("columns");
    assert_eq!(cols[0].target_name(), "DROP TABLE x; --");
    assert_eq!(cols[1].name, "a b");
}

#[test]
fn identifiers_the_server_refuses() {
    only_error(
        &with(|v| v["objects"][0]["database"] = json!("shop.v2")),
        "objects[0].database",
        "must not contain",
    );
    only_error(
        &with(|v| v["objects"][0]["rename"] = json!("a/b")),
        "objects[0].rename",
        "must not contain",
    );
    only_error(
        &with(|v| v["objects"][0]["tables"][1]["name"] = json!("customers ")),
        "objects[0].tables[1].name",
        "ends with a space",
    );
    only_error(
        &with(|v| v["objects"][0]["tables"][0]["columns"][1]["name"] = json!("no\u{0}te")),
        "objects[0].tables[0].columns[1].name",
        "NUL",
    );
    only_error(
        &with(|v| v["objects"][0]["rename"] = json!("")),
        "objects[0].rename",
        "must not be empty",
    );
    only_error(
        &with(|v| v["objects"][0]["tables"][0]["columns"][1]["rename"] = json!("memo😀")),
        "objects[0].tables[0].columns[1].rename",
        "Basic Multilingual Plane",
    );
}

#[test]
fn duplicates_are_case_insensitive() {
    let v = resync_with(|v| v["objects"] = json!([{"database": "shop"}, {"database": "SHOP"}]));
    let e = only_error(&v, "objects[1].database", "selected twice");
    assert!(e.message.contains("objects[0]"), "{}", e.message);
    let v = resync_with(|v| v["objects"][0]["tables"][1]["name"] = json!("Orders"));
    only_error(
        &v,
        "objects[0].tables[1].name",
        "table \"Orders\" is selected twice in objects[0]",
    );
    let v = with(|v| v["objects"][0]["tables"][0]["columns"][2] = json!({"name": "ID"}));
    // (the timestamp column is now missing from columns too, but that is a different table field)
    let errs = parse(&v).expect_err("duplicate column");
    let e = errs
        .get("objects[0].tables[0].columns[2].name")
        .expect("duplicate reported");
    assert!(e.message.contains("selected twice"), "{}", e.message);
}

#[test]
fn database_collision_after_rename() {
    let v = resync_with(|v| {
        v["objects"] =
            json!([{"database": "shop", "rename": "dw"}, {"database": "crm", "rename": "DW"}]);
    });
    let e = only_error(&v, "objects[1].rename", "both map to the destination name");
    assert!(
        e.message.contains("objects[0]") && e.message.contains("objects[1]"),
        "{}",
        e.message
    );
    // A rename onto another selected database's (unrenamed) name.
    let v = resync_with(|v| {
        v["objects"] = json!([{"database": "a", "rename": "b"}, {"database": "b"}])
    });
    only_error(
        &v,
        "objects[1].database",
        "both map to the destination name \"b\"",
    );
}

#[test]
fn table_collision_after_rename() {
    let v = with(|v| v["objects"][0]["tables"][1]["rename"] = json!("ORDERS_V2"));
    let e = only_error(
        &v,
        "objects[0].tables[1].rename",
        "both map to the destination name",
    );
    assert!(e.message.contains("objects[0].tables[0]"), "{}", e.message);
}

#[test]
fn column_collision_after_rename() {
    let v = with(|v| v["objects"][0]["tables"][0]["columns"][1]["rename"] = json!("Id"));
    let e = only_error(
        &v,
        "objects[0].tables[0].columns[1].rename",
        "both map to the destination name",
    );
    assert!(
        e.message.contains("objects[0].tables[0].columns[0]"),
        "{}",
        e.message
    );
}

#[test]
fn renames_equal_to_the_name_and_swaps_are_fine() {
    parse_ok(&with(|v| {
        v["objects"][0]["tables"][1]["rename"] = json!("customers");
        v["objects"][0]["tables"][0]["columns"][0]["rename"] = json!("id");
    }));
    parse_ok(&resync_with(|v| {
        v["objects"] = json!([{"database": "a", "rename": "b"}, {"database": "b", "rename": "a"}]);
    }));
}
