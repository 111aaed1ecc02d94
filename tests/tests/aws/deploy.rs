//! The host itself, with the real binaries: a deployment missing a variable fails at start with
//! the variable's name; an environment is frozen between invocations, reused warm, and killed at
//! its timeout (the next invocation starts a new one); and only the template's routes reach a
//! function.

use std::time::Duration;

use serde_json::json;
use tidemark_tests::harness::net::SilentListener;
use tidemark_tests::lambda_host::{AwsStack, Outcome, StackOptions};

fn quiet() -> StackOptions {
    StackOptions {
        rate_schedules: false,
        ..StackOptions::default()
    }
}

pub async fn a_missing_variable_fails_the_start_with_its_name() {
    let change = |f: &str, var: &str, value: Option<&str>| {
        (f.to_owned(), var.to_owned(), value.map(str::to_owned))
    };
    let stack = AwsStack::deploy(StackOptions {
        env_changes: vec![
            change("ManageTaskFunction", "TIDEMARK_TABLE", None),
            // Misspelt: the right name is missing.
            change("CreateTaskFunction", "TIDEMARK_SCHEDULE_GROUP", None),
            change("CreateTaskFunction", "TIDEMARK_SCHEDULE_GRUOP", Some("g")),
        ],
        ..quiet()
    })
    .await;
    for (function, variable) in [
        ("ManageTaskFunction", "TIDEMARK_TABLE"),
        ("CreateTaskFunction", "TIDEMARK_SCHEDULE_GROUP"),
    ] {
        match stack.function(function).invoke(&json!({})).await {
            Outcome::InitFailed(reason) => assert!(
                reason.contains(&format!("{variable} is not set")),
                "{function}: {reason}"
            ),
            other => panic!("{function} started without {variable}: {other:?}"),
        }
    }
    assert_eq!(stack.problems().len(), 2, "{:#?}", stack.problems());
    // The template's own environment is complete: run-cycle starts and answers.
    let answer = stack
        .function("RunCycleFunction")
        .invoke(&json!({ "sweep": false }))
        .await
        .response();
    assert_eq!(answer["outcome"], "ignored", "{answer}");
    stack.stop();
}

/// Every thread of `pid` is stopped, and its CPU time does not move.
async fn assert_frozen(pid: i32) {
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the stat");
        let fields: Vec<String> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        // utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the state.
        (fields[0].clone(), fields[11].clone(), fields[12].clone())
    };
    let before = cpu();
    assert_eq!(before.0, "T", "the process is not stopped");
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let stat =
            std::fs::read_to_string(task.expect("a task").path().join("stat")).unwrap_or_default();
        let state = stat.rsplit_once(')').map(|(_, r)| r.trim().chars().next());
        assert_eq!(state, Some(Some('T')), "a thread runs: {stat}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cpu(), before, "a frozen process used CPU");
}

pub async fn a_function_is_frozen_between_invocations_and_killed_at_its_timeout() {
    let stack = AwsStack::deploy(quiet()).await;
    let manage = stack.function("ManageTaskFunction");
    let (status, body) = stack.http("GET", "/tasks", None).await;
    assert_eq!(status, 200, "{body}");
    let idle = manage.idle_pids();
    assert_eq!(idle.len(), 1, "{idle:?}");
    let (pid, frozen) = idle[0];
    assert!(frozen);
    assert_frozen(pid).await;
    // The next invocation thaws the same environment.
    let (status, _) = stack.http("GET", "/tasks", None).await;
    assert_eq!(status, 200);
    assert_eq!(manage.idle_pids(), vec![(pid, true)]);
    assert_eq!(
        manage
            .stats
            .cold_starts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // A connection test to a host that never answers outlasts the precheck function's
    // timeout: it is killed, API Gateway answers 500, and the next call starts a new one.
    let silent = SilentListener::start();
    let endpoint = json!({ "host": "127.0.0.1", "port": silent.addr.port(), "user": "u",
                           "password": "p", "connect_timeout_seconds": 60 });
    let precheck = stack.function("PrecheckFunction");
    let started = std::time::Instant::now();
    let (status, _) = stack
        .http("POST", "/connections/test", Some(&endpoint.to_string()))
        .await;
    assert_eq!(status, 500);
    let took = started.elapsed();
    assert!(
        took >= precheck.config.timeout && took < precheck.config.timeout * 3,
        "{took:?} for a {:?} timeout",
        precheck.config.timeout
    );
    assert_eq!(
        precheck
            .stats
            .timeouts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(precheck.idle_pids().is_empty(), "the timed-out one is gone");
    // The timeout is an error of AWS/Lambda's: precheck's errors alarm rings, manage-task's not.
    assert!(stack.alarm_rings("PrecheckErrorsAlarm"));
    assert!(!stack.alarm_rings("ManageTaskErrorsAlarm"));
    let closed = json!({ "host": "127.0.0.1", "port": 1, "user": "u", "password": "p",
                         "connect_timeout_seconds": 1 });
    let (status, body) = stack
        .http("POST", "/connections/test", Some(&closed.to_string()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        precheck
            .stats
            .cold_starts
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    let problems = stack.problems();
    assert_eq!(problems.len(), 1, "only the timeout: {problems:#?}");
    assert!(problems[0].contains("TimedOut"), "{problems:#?}");
    stack.stop();
}

pub async fn only_the_templates_routes_reach_a_function() {
    let stack = AwsStack::deploy(quiet()).await;
    let invocations = || {
        [
            "CreateTaskFunction",
            "PrecheckFunction",
            "ManageTaskFunction",
        ]
        .map(|f| {
            stack
                .function(f)
                .stats
                .invocations
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    };
    for (method, path) in [
        ("GET", "/nothing-here"),
        ("DELETE", "/tasks"),
        ("GET", "/tasks/"),
        ("GET", "/connections/test"),
    ] {
        let (status, body) = stack.http(method, path, None).await;
        assert_eq!(
            (status, body),
            (404, json!({ "message": "Not Found" })),
            "{method} {path}"
        );
    }
    assert_eq!(invocations(), [0, 0, 0]);
    let (status, _) = stack.http("GET", "/tasks", None).await;
    assert_eq!(status, 200);
    let (status, body) = stack.http("GET", "/health", None).await;
    assert_eq!(status, 200, "the template routes GET /health: {body}");
    let (status, body) = stack.http("POST", "/tasks/tsk-none/precheck", None).await;
    assert_eq!(status, 404, "the function's own 404: {body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    let (status, _) = stack.http("GET", "/tasks/tsk-none/precheck", None).await;
    assert_eq!(status, 404);
    assert_eq!(invocations(), [0, 1, 3]);
    assert!(stack.problems().is_empty(), "{:#?}", stack.problems());
    stack.stop();
}
