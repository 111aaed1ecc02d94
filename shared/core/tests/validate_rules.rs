//! One test per validation rule (name, endpoints, migration types, schedule, channel): the exact
//! field path and the gist of the message. Object and policy rules are in `validate_objects.rs`.

mod common;

use common::*;
use serde_json::{Value, json};

// ---- name ----

#[test]
fn name_rules() {
    only_error(
        &with(|v| v["name"] = json!("")),
        "name",
        "must not be empty",
    );
    only_error(
        &with(|v| v["name"] = json!("   ")),
        "name",
        "must not be empty",
    );
    only_error(
        &with(|v| v["name"] = json!("x".repeat(129))),
        "name",
        "129 characters",
    );
    only_error(
        &with(|v| v["name"] = json!("a\nb")),
        "name",
        "control character",
    );
    parse_ok(&with(|v| v["name"] = json!("名".repeat(128))));
}

// ---- id ----

#[test]
fn id_rules() {
    for (bad, needle) in [
        ("", "must not be empty"),
        ("Shop", "lowercase letters"),
        ("shop nightly", "' '"),
        ("shop#1", "'#'"),
        ("-shop", "start with a letter or a digit"),
        ("_shop", "start with a letter or a digit"),
        ("tsk-0123456789abcdef", "the service"),
    ] {
        only_error(&with(|v| v["id"] = json!(bad)), "id", needle);
    }
    only_error(
        &with(|v| v["id"] = json!("x".repeat(129))),
        "id",
        "129 characters",
    );
    only_error(&with(|v| v["id"] = json!(7)), "id", "expected a string");
    for good in [
        "shop-nightly",
        "0_a-b",
        "local-shop-nightly",
        &"x".repeat(128),
    ] {
        let spec = parse_ok(&with(|v| v["id"] = json!(good)));
        assert_eq!(spec.id.as_deref(), Some(good));
    }
    assert_eq!(parse_ok(&example()).id, None, "`id` is optional");
}

// ---- endpoints ----

#[test]
fn host_must_be_a_host_name_or_ip() {
    for (bad, needle) in [
        ("", "must not be empty"),
        ("db host", "whitespace"),
        ("db.example.com:3306", "put the port in `port`"),
        ("[not-ipv6]", "IPv6"),
        ("mysql://db.example.com", "not a URL"),
        ("300.1.1.1", "not a valid one"),
        ("bad_label-.com", "not a valid host name"),
    ] {
        only_error(
            &with(|v| v["destination"]["host"] = json!(bad)),
            "destination.host",
            needle,
        );
    }
    for ok in [
        "::1",
        "[::1]",
        "2001:db8::5",
        "[2001:db8::5]",
        "db-1.internal",
        "localhost",
    ] {
        parse_ok(&with(|v| v["destination"]["host"] = json!(ok)));
    }
}

#[test]
fn bad_port() {
    only_error(
        &with(|v| v["source"]["port"] = json!(0)),
        "source.port",
        "between 1 and 65535",
    );
    parse_ok(&with(|v| v["source"]["port"] = json!(65535)));
}

#[test]
fn user_rules() {
    only_error(
        &with(|v| v["destination"]["user"] = json!("")),
        "destination.user",
        "must not be empty",
    );
    only_error(
        &with(|v| v["destination"]["user"] = json!("u".repeat(81))),
        "destination.user",
        "at most 80",
    );
    parse_ok(&with(|v| v["destination"]["user"] = json!("u".repeat(80))));
    // Without `user`: required with an inline or environment password, optional with a secret
    // (the example's destination: its `username` is used).
    only_error(
        &with(|v| {
            v["source"]
                .as_object_mut()
                .expect("an object")
                .remove("user");
        }),
        "source.user",
        "password_secret",
    );
    let spec = parse_ok(&with(|v| {
        v["destination"]
            .as_object_mut()
            .expect("an object")
            .remove("user");
    }));
    assert_eq!(spec.destination.user, None);
}

#[test]
fn no_password_source() {
    let v = with(|v| remove(&mut v["destination"], "password_secret"));
    let e = only_error(&v, "destination.password", "no password source");
    assert!(e.message.contains("`password_env`") && e.message.contains("`password_secret`"));
}

#[test]
fn multiple_password_sources() {
    let v = with(|v| v["source"]["password_env"] = json!("SRC_PW"));
    only_error(
        &v,
        "source.password",
        "several password sources are set (password, password_env)",
    );
    let v = with(|v| v["destination"]["password_env"] = json!("DST_PW"));
    only_error(&v, "destination.password", "keep exactly one");
}

#[test]
fn password_env_must_be_a_variable_name() {
    let v = with(|v| {
        remove(&mut v["source"], "password");
        v["source"]["password_env"] = json!("my pass!word");
    });
    let e = only_error(&v, "source.password_env", "NAME of an environment variable");
    assert!(!e.message.contains("my pass!word"), "{}", e.message);
    parse_ok(&with(|v| {
        remove(&mut v["source"], "password");
        v["source"]["password_env"] = json!("_SRC_PW2");
    }));
}

#[test]
fn password_secret_must_be_a_secrets_manager_arn() {
    for bad in ["db-creds", "arn:aws:s3:::bucket", "secretsmanager:x"] {
        let v = with(|v| v["destination"]["password_secret"] = json!(bad));
        let e = only_error(
            &v,
            "destination.password_secret",
            "Secrets Manager secret ARN",
        );
        assert!(!e.message.contains(bad), "{}", e.message);
    }
    parse_ok(&with(|v| {
        v["destination"]["password_secret"] =
            json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:tidemark/dst-AbCdEf")
    }));
}

#[test]
fn tls_rules() {
    only_error(
        &with(|v| v["source"]["tls"] = json!({"mode": "verify_ca"})),
        "source.tls.ca_pem",
        "\"verify_ca\" needs `ca_pem`",
    );
    only_error(
        &with(|v| v["source"]["tls"]["ca_pem"] = json!("-----BEGIN CERTIFICATE-----\nMII...")),
        "source.tls.ca_pem",
        "`tls.mode` is \"disabled\"",
    );
    only_error(
        &with(|v| v["destination"]["tls"]["ca_pem"] = json!("not a pem")),
        "destination.tls.ca_pem",
        "-----BEGIN CERTIFICATE-----",
    );
    parse_ok(&with(|v| v["source"]["tls"] = json!({"mode": "required"})));
    parse_ok(&with(|v| {
        v["destination"]["tls"] = json!({"mode": "verify_identity"})
    }));
}

#[test]
fn connect_timeout_range() {
    for bad in [0, 301] {
        only_error(
            &with(|v| v["source"]["connect_timeout_seconds"] = json!(bad)),
            "source.connect_timeout_seconds",
            "between 1 and 300",
        );
    }
    parse_ok(&with(|v| {
        v["source"]["connect_timeout_seconds"] = json!(300)
    }));
}

#[test]
fn same_server_needs_a_renamed_database() {
    let v = resync_with(|v| {
        v["destination"]["host"] = json!("127.0.0.1");
        remove(&mut v["objects"][0], "rename");
    });
    only_error(&v, "objects[0].rename", "same server");
    // Renamed, or a new replica every cycle: fine.
    parse_ok(&resync_with(|v| {
        v["destination"]["host"] = json!("127.0.0.1")
    }));
    let mut v = example_with_policy(json!({"mode": "multi_replica"}));
    v["destination"]["host"] = json!("127.0.0.1");
    remove(&mut v["objects"][0], "rename");
    parse_ok(&v);
}

// ---- migration types ----

#[test]
fn migration_types_rules() {
    only_error(
        &with(|v| v["migration_types"] = json!([])),
        "migration_types",
        "at least one",
    );
    only_error(
        &with(|v| v["migration_types"] = json!(["data", "data"])),
        "migration_types[1]",
        "\"data\" is listed twice",
    );
    parse_ok(&with(|v| v["migration_types"] = json!(["data"])));
}

// ---- schedule ----

#[test]
fn at_must_be_hh_mm() {
    for bad in [
        "2:30", "24:00", "02:60", "0230", "02:30:00", "2:30pm", "", " 02:30", "02.30",
    ] {
        let e = only_error(
            &with(|v| v["schedule"]["at"] = json!(bad)),
            "schedule.at",
            "HH:MM in 24-hour time",
        );
        assert!(e.message.contains(&format!("got {bad:?}")), "{}", e.message);
    }
    for ok in ["00:00", "23:59", "12:05"] {
        parse_ok(&with(|v| v["schedule"]["at"] = json!(ok)));
    }
}

#[test]
fn unknown_time_zone() {
    let e = only_error(
        &with(|v| v["schedule"]["time_zone"] = json!("Mars/Olympus")),
        "schedule.time_zone",
        "\"Mars/Olympus\" is not one",
    );
    assert!(e.message.contains("\"Asia/Shanghai\"") && e.message.contains("\"UTC\""));
    only_error(
        &with(|v| v["schedule"]["time_zone"] = json!("asia/shanghai")),
        "schedule.time_zone",
        "use \"Asia/Shanghai\"",
    );
    only_error(
        &with(|v| v["schedule"]["time_zone"] = json!("+08:00")),
        "schedule.time_zone",
        "IANA time zone",
    );
    for ok in ["UTC", "America/New_York", "Europe/Berlin"] {
        parse_ok(&with(|v| v["schedule"]["time_zone"] = json!(ok)));
    }
}

fn window(start: &str, end: &str) -> Value {
    with(|v| {
        v["schedule"]["start"] = json!(start);
        v["schedule"]["end"] = json!(end);
    })
}

#[test]
fn window_over_365_days() {
    let e = only_error(
        &window("2026-12-01", "2027-12-02"),
        "schedule.end",
        "366 days",
    );
    assert!(e.message.contains("at most 365 days"), "{}", e.message);
    assert!(
        e.message.contains("2027-12-01"),
        "names the latest end: {}",
        e.message
    );
    // Across a leap day: 2027-12-01..2028-11-30 is 365 days, one more is too many.
    only_error(
        &window("2027-12-01", "2028-12-01"),
        "schedule.end",
        "366 days",
    );
}

#[test]
fn window_of_exactly_365_days_is_ok() {
    parse_ok(&window("2026-12-01", "2027-12-01"));
    parse_ok(&window("2027-12-01", "2028-11-30"));
    parse_ok(&window("2026-12-01", "2026-12-01"));
}

#[test]
fn end_before_start() {
    only_error(
        &window("2026-12-01", "2026-11-30"),
        "schedule.end",
        "before `start`",
    );
}

#[test]
fn cycle_and_days() {
    only_error(
        &with(|v| remove(&mut v["schedule"], "days")),
        "schedule.days",
        "needs `days`",
    );
    only_error(
        &with(|v| v["schedule"]["days"] = json!([])),
        "schedule.days",
        "needs `days`",
    );
    only_error(
        &with(|v| v["schedule"]["days"] = json!(["mon", "thu", "mon"])),
        "schedule.days[2]",
        "\"mon\" is listed twice",
    );
    only_error(
        &with(|v| v["schedule"]["cycle"] = json!("day")),
        "schedule.days",
        "remove `days`",
    );
    parse_ok(&with(|v| {
        v["schedule"]["cycle"] = json!("day");
        remove(&mut v["schedule"], "days");
    }));
}

// ---- channel ----

#[test]
fn channel_ranges() {
    for bad in [0, 65] {
        only_error(
            &with(|v| v["channel"]["workers"] = json!(bad)),
            "channel.workers",
            "between 1 and 64",
        );
    }
    for bad in [0, 1025] {
        only_error(
            &with(|v| v["channel"]["chunk_mb"] = json!(bad)),
            "channel.chunk_mb",
            "between 1 and 1024",
        );
    }
    for bad in [0, 65] {
        only_error(
            &with(|v| v["channel"]["table_workers"] = json!(bad)),
            "channel.table_workers",
            "between 1 and 64",
        );
    }
    parse_ok(&with(|v| {
        v["channel"] = json!({"workers": 64, "chunk_mb": 1024, "verify": false})
    }));
    parse_ok(&with(|v| {
        v["channel"] = json!({"workers": 4, "table_workers": 1})
    }));
    parse_ok(&with(|v| v["channel"]["table_workers"] = json!(64)));
}

// ---- all problems at once ----

#[test]
fn every_problem_is_reported() {
    let v = with(|v| {
        v["name"] = json!("");
        v["source"]["port"] = json!(0);
        v["schedule"]["at"] = json!("25:00");
        remove(&mut v["objects"][0]["tables"][1], "timestamp_column");
        v["channel"]["workers"] = json!(0);
    });
    let errs = parse(&v).expect_err("five problems");
    let fields: Vec<&str> = errs.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "name",
            "source.port",
            "schedule.at",
            "objects[0].tables[1].timestamp_column",
            "channel.workers"
        ]
    );
    let text = errs.to_string();
    assert!(text.starts_with("invalid task spec: name: "), "{text}");
    assert!(
        text.contains("; source.port: `port` must be between 1 and 65535"),
        "{text}"
    );
}
