//! What an operator relies on (issue 20): run-worker invocations bounded by the step queue's
//! `MaximumConcurrency` (`WorkerMaxConcurrency`); a run's records expiring `RecordRetentionDays`
//! after they are made, and shown no more once past it; every function logging to a log group
//! kept `LogRetentionDays`; and an errors alarm on each function, ringing when it fails.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use tidemark_tests::lambda_host::metrics::alarm_functions;
use tidemark_tests::lambda_host::{AwsStack, StackOptions};

use crate::chunks::big_table;
use crate::support::Scenario;

const AT: &str = "2027-12-01T02:30:00Z";
const NEXT: &str = "2027-12-02T02:30:00Z";

fn with_parameters(parameters: &[(&str, &str)]) -> StackOptions {
    StackOptions {
        parameters: parameters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..StackOptions::default()
    }
}

/// A 20-chunk run with `workers: 1` beside a run with `workers: 3`, on a stack whose step queue
/// starts at most 2 run-worker invocations at once: both succeed, and the host never saw more
/// run-worker invocations at once than the mapping's `MaximumConcurrency` in the rendered stack.
pub async fn twenty_chunks_stay_within_the_worker_bound() {
    let s = Scenario::with(with_parameters(&[("WorkerMaxConcurrency", "2")])).await;
    let mapping = s
        .stack
        .doc
        .sqs_mappings()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|m| m.logical_id == "RunWorkerFunctionSteps")
        .expect("the step queue's mapping");
    let bound = mapping.maximum_concurrency.expect("a MaximumConcurrency");
    assert_eq!(bound, 2, "the template's value, from the parameter");
    let (long, wide) = (big_table(21_000), big_table(8_000));
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
    let (long_db, wide_db) = tokio::join!(
        s.source_db("aws_bound", &long),
        s.source_db("aws_bound_wide", &wide)
    );
    let mut ids = Vec::new();
    for (db, workers) in [(&long_db, 1), (&wide_db, 3)] {
        let mut body = s.task(
            json!({ "mode": "resync" }),
            json!([{ "database": db, "rename": s.target("aws_bound_dw") }]),
        );
        body["channel"] = json!({ "workers": workers, "chunk_mb": 1 });
        let id = s.create(&body).await;
        s.start(&id).await;
        ids.push(id);
    }
    // Both tasks' schedules are due at AT: one firing starts both runs.
    let from: jiff::Timestamp = AT.parse().expect("a time");
    s.stack
        .fire_due(from, from + jiff::SignedDuration::from_secs(60))
        .await;
    let (long, wide) = tokio::join!(s.ended_run(&ids[0], AT), s.ended_run(&ids[1], AT));
    for run in [&long, &wide] {
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["chunks_done"], run["chunks_total"], "{run}");
    }
    let chunks = long["chunks_done"].as_u64().unwrap_or(0);
    assert!(chunks >= 20, "{chunks} chunks: {long}");
    let worker = s.stack.function("RunWorkerFunction");
    let peak = worker.stats.peak_in_flight.load(Ordering::SeqCst);
    println!("operations: run-worker at most {peak} at once, bound {bound}, {chunks} chunks");
    assert!(
        peak <= bound as u64,
        "{peak} run-worker invocations at once, over the mapping's {bound}"
    );
    // The 3-worker run alone asks for more than the bound: it was reached, so a host or a
    // template that let more through would have been seen.
    assert_eq!(peak, bound as u64, "the bound was never reached");
    s.finish().await;
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The stack's state table, every item, with the admin's key.
async fn table_items(s: &Scenario) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let client = aws_sdk_dynamodb::Client::new(&s.stack.sdk);
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(s.stack.physical_id("StateTable"))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Scan: {e:?}"));
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

fn text<'a>(item: &'a std::collections::HashMap<String, AttributeValue>, key: &str) -> &'a str {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

/// What kind of record an item is, by its sort key.
fn kind(sk: &str) -> &'static str {
    match sk.split('#').next().unwrap_or_default() {
        "TASK" => "task",
        "RUN" => "run",
        "STEP" => "step",
        "TABLE" => "progress",
        "PRECHECK" => "precheck",
        "MARK" => "watermark",
        _ => "other",
    }
}

/// Two incremental cycles on a stack that keeps records 3 days: the run, step, progress and
/// precheck items expire 3 days after they were made, the task and watermark items never; a
/// run whose expiry has passed (TTL not yet at it) is listed and read no more.
pub async fn records_expire_and_expired_runs_are_not_shown() {
    let days = 3;
    let s = Scenario::with(with_parameters(&[(
        "RecordRetentionDays",
        &days.to_string(),
    )]))
    .await;
    let db = s
        .source_db(
            "aws_expiry",
            &[
                "CREATE TABLE ev (id BIGINT PRIMARY KEY, updated_at DATETIME(6) NOT NULL)",
                "INSERT INTO ev SELECT seq, '2026-01-01' + INTERVAL seq SECOND FROM seq_1_to_50",
            ],
        )
        .await;
    let target = s.target("aws_expiry_dw");
    let before = now_seconds();
    let id = s.incremental_task(&db, &target).await;
    s.start(&id).await;
    for at in [AT, NEXT] {
        let run = s.cycle(&id, at).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    let after = now_seconds();
    let retention = days * 86_400;
    let mut seen = BTreeSet::new();
    for item in table_items(&s).await {
        let (pk, sk) = (text(&item, "pk"), text(&item, "sk"));
        let kind = if pk == "TASKS" { "directory" } else { kind(sk) };
        let expires_at = item
            .get("expires_at")
            .map(|v| v.as_n().ok().and_then(|n| n.parse::<i64>().ok()));
        match kind {
            "run" | "step" | "progress" | "precheck" => {
                let at = expires_at
                    .flatten()
                    .unwrap_or_else(|| panic!("{pk}/{sk} has no expiry: {item:?}"));
                // A run's record says when it was made: its expiry is that, plus the days.
                let body: Value = serde_json::from_str(text(&item, "body")).unwrap_or_default();
                if let Some(created) = body["created_at"].as_str() {
                    let created: jiff::Timestamp = created.parse().expect("a time");
                    let off = at - created.as_second() - retention;
                    assert!(
                        off.abs() <= 1,
                        "{pk}/{sk} expires at {at}, made at {created}"
                    );
                }
                assert!(
                    (before + retention - 5..=after + retention + 5).contains(&at),
                    "{pk}/{sk} expires at {at}, not {days} days after it was made \
                     (between {before} and {after})"
                );
            }
            "task" | "watermark" | "directory" => {
                assert!(expires_at.is_none(), "{pk}/{sk} expires: {item:?}");
            }
            _ => {}
        }
        seen.insert(kind);
    }
    for kind in ["run", "step", "progress", "precheck", "task", "watermark"] {
        assert!(seen.contains(kind), "no {kind} item: {seen:?}");
    }

    // The first run's expiry passes; TTL has not deleted it yet.
    let runs_path = format!("/tasks/{id}/runs");
    let listed = |runs: &Value| -> Vec<String> {
        runs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect()
    };
    let (status, runs) = s.stack.http("GET", &runs_path, None).await;
    assert_eq!(status, 200, "{runs}");
    let mut both = listed(&runs);
    both.sort();
    assert_eq!(both, vec![AT, NEXT], "{runs}");
    let client = aws_sdk_dynamodb::Client::new(&s.stack.sdk);
    // The task's run items sort by their time: the first is AT's.
    let run_item = table_items(&s)
        .await
        .iter()
        .filter(|i| text(i, "pk") == format!("TASK#{id}") && kind(text(i, "sk")) == "run")
        .map(|i| text(i, "sk").to_owned())
        .min()
        .expect("the first run's item");
    client
        .update_item()
        .table_name(s.stack.physical_id("StateTable"))
        .key("pk", AttributeValue::S(format!("TASK#{id}")))
        .key("sk", AttributeValue::S(run_item.clone()))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N((now_seconds() - 60).to_string()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("UpdateItem: {e:?}"));
    let (status, runs) = s.stack.http("GET", &runs_path, None).await;
    assert_eq!(status, 200, "{runs}");
    let (status, one) = s
        .stack
        .http("GET", &format!("{runs_path}/{AT}"), None)
        .await;
    println!(
        "operations: expired {run_item}: listed {:?}, GET {status}",
        listed(&runs)
    );
    assert_eq!(listed(&runs), vec![NEXT], "{runs}");
    assert_eq!(status, 404, "{one}");
    s.finish().await;
}

/// On a stack keeping logs 7 days: every log group keeps them 7 days (the parameter's value),
/// every function logs to one of them, every metric filter reads one a function logs to; every
/// function has one errors alarm whose AWS/Lambda metrics name it, and none rings on a stack
/// that did nothing.
pub async fn log_groups_keep_logs_and_each_function_has_an_errors_alarm() {
    let stack = AwsStack::deploy(StackOptions {
        rate_schedules: false,
        ..with_parameters(&[("LogRetentionDays", "7")])
    })
    .await;
    let doc = &stack.doc;
    assert_eq!(doc.parameter("LogRetentionDays"), Some("7"));
    let groups: BTreeSet<String> = doc
        .of_kind("AWS::Logs::LogGroup")
        .map(|(id, g)| {
            let days = g.prop("RetentionInDays");
            let days = days.as_u64().or_else(|| days.as_str()?.parse().ok());
            assert_eq!(days, Some(7), "{id} keeps its logs {days:?} days");
            assert_eq!(g.prop("LogGroupName"), g.physical_id.as_str(), "{id}");
            g.physical_id.clone()
        })
        .collect();
    let mut logged_to = BTreeSet::new();
    let functions = doc.functions().unwrap_or_else(|e| panic!("{e}"));
    for (id, f) in doc.of_kind("AWS::Lambda::Function") {
        let group = f.prop("LoggingConfig")["LogGroup"]
            .as_str()
            .unwrap_or_default();
        assert!(
            groups.contains(group),
            "{id} logs to {group:?}, not to a log group of the stack ({groups:?})"
        );
        logged_to.insert(group.to_owned());
    }
    assert_eq!(logged_to, groups, "a log group no function logs to");
    for (id, filter) in doc.of_kind("AWS::Logs::MetricFilter") {
        let group = filter.prop("LogGroupName").as_str().unwrap_or_default();
        assert!(logged_to.contains(group), "{id} reads {group:?}");
    }

    let mut alarmed = Vec::new();
    for (id, alarm) in doc.of_kind("AWS::CloudWatch::Alarm") {
        let named = alarm_functions(doc, id).unwrap_or_else(|e| panic!("{e}"));
        if !id.ends_with("ErrorsAlarm") {
            continue;
        }
        let metrics: BTreeSet<&str> = alarm
            .prop("Metrics")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["MetricStat"]["Metric"]["MetricName"].as_str())
            .collect();
        assert_eq!(metrics, BTreeSet::from(["Errors", "Throttles"]), "{id}");
        let one: BTreeSet<&String> = named.iter().collect();
        assert_eq!(one.len(), 1, "{id} names {named:?}");
        alarmed.extend(one.into_iter().cloned());
        assert!(
            !stack.alarm_rings(id),
            "{id} rings on a stack that did nothing"
        );
    }
    alarmed.sort();
    let mut all: Vec<String> = functions.iter().map(|f| f.logical_id.clone()).collect();
    all.sort();
    assert_eq!(alarmed, all, "one errors alarm per function");
    let problems = stack.problems();
    stack.stop();
    assert!(problems.is_empty(), "{problems:#?}");
}
