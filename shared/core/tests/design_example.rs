//! The DESIGN.md example parses, validates and means what it says; passwords never leak.

mod common;

use common::*;
use jiff::civil::date;
use secrecy::ExposeSecret;
use serde_json::json;
use tidemark_core::*;

#[test]
fn design_example_parses_with_expected_values() {
    let spec = parse_task_spec(DESIGN_EXAMPLE).expect("the DESIGN.md example is valid");
    assert_eq!(spec.name, "shop-nightly");

    assert_eq!(spec.source.host, "127.0.0.1");
    assert_eq!(spec.source.port, 3306);
    assert_eq!(spec.source.user.as_deref(), Some("dts"));
    assert!(matches!(
        spec.source.password_source(),
        Some(PasswordSource::Inline(p)) if p.expose_secret() == "..."
    ));
    assert_eq!(spec.source.tls.mode, TlsMode::Disabled);
    assert_eq!(spec.source.connect_timeout_seconds, 10);

    assert_eq!(spec.destination.host, "10.0.0.9");
    assert!(matches!(
        spec.destination.password_source(),
        Some(PasswordSource::Secret("arn:aws:secretsmanager:..."))
    ));
    assert_eq!(spec.destination.tls.mode, TlsMode::VerifyIdentity);
    assert_eq!(
        spec.destination.tls.ca_pem.as_deref(),
        Some("-----BEGIN CERTIFICATE-----...")
    );

    assert_eq!(
        spec.migration_types,
        vec![MigrationType::Schema, MigrationType::Data]
    );
    assert_eq!(
        spec.policy,
        Policy::Incremental(IncrementalPolicy {
            lag_seconds: 5,
            lookback_seconds: 60
        })
    );
    assert_eq!(spec.policy.mode(), "incremental");

    let s = &spec.schedule;
    assert_eq!(s.cycle, Cycle::Week);
    assert_eq!(s.days, vec![Weekday::Mon, Weekday::Thu]);
    assert_eq!(
        s.at_time().expect("valid at"),
        TimeOfDay {
            hour: 2,
            minute: 30
        }
    );
    assert_eq!(
        s.at_time().expect("valid at").to_civil(),
        jiff::civil::time(2, 30, 0, 0)
    );
    assert_eq!(
        s.tz().expect("valid zone").iana_name(),
        Some("Asia/Shanghai")
    );
    assert_eq!(s.start, date(2026, 12, 1));
    assert_eq!(s.end, date(2027, 11, 30));
    assert_eq!(spec.failure_policy, FailurePolicy::Stop);

    assert_eq!(spec.objects.len(), 1);
    let db = &spec.objects[0];
    assert_eq!(
        (db.database.as_str(), db.target_name()),
        ("shop", "shop_dw")
    );
    let tables = db.tables.as_ref().expect("tables listed");
    assert_eq!(tables.len(), 2);
    assert_eq!(tables[0].target_name(), "orders_v2");
    assert_eq!(tables[0].timestamp_column.as_deref(), Some("updated_at"));
    let cols: Vec<(&str, &str)> = tables[0]
        .columns
        .as_ref()
        .expect("columns listed")
        .iter()
        .map(|c| (c.name.as_str(), c.target_name()))
        .collect();
    assert_eq!(
        cols,
        vec![("id", "id"), ("note", "memo"), ("updated_at", "updated_at")]
    );
    assert_eq!(tables[1].target_name(), "customers");
    assert_eq!(tables[1].timestamp_column.as_deref(), Some("changed_at"));
    assert_eq!(tables[1].columns, None);

    assert_eq!(
        spec.channel,
        Channel {
            workers: 4,
            chunk_mb: 64,
            verify: true,
            table_workers: None,
        }
    );
}

#[test]
fn defaults_fill_omitted_fields() {
    let v = json!({
        "name": "minimal",
        "source": {"host": "db1", "user": "u", "password_env": "SRC_PW"},
        "destination": {"host": "db2", "user": "u", "password_env": "DST_PW"},
        "policy": {"mode": "multi_replica"},
        "schedule": {"cycle": "day", "at": "00:00", "time_zone": "UTC",
                     "start": "2026-01-01", "end": "2026-01-01"},
        "objects": [{"database": "shop"}]
    });
    let spec = parse_ok(&v);
    assert_eq!(spec.source.port, 3306);
    assert_eq!(spec.source.connect_timeout_seconds, 10);
    assert_eq!(spec.source.tls, TlsSpec::default());
    assert_eq!(spec.source.tls.mode, TlsMode::Disabled);
    assert!(matches!(
        spec.source.password_source(),
        Some(PasswordSource::Env("SRC_PW"))
    ));
    assert_eq!(
        spec.migration_types,
        vec![MigrationType::Schema, MigrationType::Data]
    );
    assert_eq!(
        spec.policy,
        Policy::MultiReplica(MultiReplicaPolicy {
            keep_replicas: None
        })
    );
    assert_eq!(spec.failure_policy, FailurePolicy::Stop);
    assert_eq!(spec.channel, Channel::default());
    assert_eq!(
        (
            spec.channel.workers,
            spec.channel.chunk_mb,
            spec.channel.verify
        ),
        (4, 64, true)
    );
    assert!(spec.schedule.days.is_empty());
    assert_eq!(spec.objects[0].target_name(), "shop");
    assert_eq!(spec.objects[0].tables, None);
}

#[test]
fn incremental_defaults_and_other_policies_parse() {
    let mut v = example();
    v["policy"] = json!({"mode": "incremental"});
    assert_eq!(
        parse_ok(&v).policy,
        Policy::Incremental(IncrementalPolicy::default())
    );
    let spec = parse_ok(&resync());
    assert_eq!(spec.policy, Policy::Resync(ResyncPolicy {}));
    let spec = parse_ok(&example_with_policy(
        json!({"mode": "multi_replica", "keep_replicas": 3}),
    ));
    assert_eq!(
        spec.policy,
        Policy::MultiReplica(MultiReplicaPolicy {
            keep_replicas: Some(3)
        })
    );
}

#[test]
fn serialized_spec_never_contains_the_inline_password() {
    let mut v = example();
    v["source"]["password"] = json!("Hunter2-Very-Secret");
    let spec = parse_ok(&v);
    let out = serde_json::to_string(&spec).expect("serializes");
    assert!(!out.contains("Hunter2-Very-Secret"), "{out}");
    assert!(!out.contains("\"password\""), "{out}");
    let debug = format!("{spec:?}");
    assert!(!debug.contains("Hunter2-Very-Secret"), "{debug}");
    // The other references are kept.
    assert!(out.contains("arn:aws:secretsmanager:..."), "{out}");
}

#[test]
fn password_never_appears_in_errors() {
    let mut v = example();
    v["source"]["password"] = json!("Hunter2-Very-Secret");
    v["source"]["password_env"] = json!("Hunter2-Very-Secret");
    v["source"]["password_secret"] = json!("Hunter2-Very-Secret");
    let errs = parse(&v).expect_err("three password sources");
    let text = errs.to_string();
    assert!(!text.contains("Hunter2"), "{text}");
    assert_eq!(errs.first_field(), "source.password");
    assert!(errs.get("source.password_env").is_some(), "{text}");
    assert!(errs.get("source.password_secret").is_some(), "{text}");

    // A wrongly typed password is not quoted either.
    let mut v = example();
    v["source"]["password"] = json!(987_654_321);
    let e = only_error(&v, "source.password", "must be a string");
    assert!(!e.message.contains("987654321"), "{}", e.message);
}

#[test]
fn serialization_round_trips_without_inline_passwords() {
    let mut v = example();
    remove(&mut v["source"], "password");
    v["source"]["password_env"] = json!("SRC_PW");
    let spec = parse_ok(&v);
    let out = serde_json::to_string(&spec).expect("serializes");
    let again = parse_task_spec(&out).expect("serialized spec parses");
    assert_eq!(again, spec);
    // Dates keep their YYYY-MM-DD form.
    assert!(out.contains("\"start\":\"2026-12-01\""), "{out}");
    assert!(out.contains("\"mode\":\"incremental\""), "{out}");
}

#[test]
fn password_source_is_none_unless_exactly_one() {
    let mut v = example();
    v["source"]["password_env"] = json!("X");
    let spec: TaskSpec = serde_json::from_value(v).expect("deserializes without validation");
    assert!(spec.source.password_source().is_none());
    let mut v = example();
    remove(&mut v["source"], "password");
    let spec: TaskSpec = serde_json::from_value(v).expect("deserializes without validation");
    assert!(spec.source.password_source().is_none());
}
