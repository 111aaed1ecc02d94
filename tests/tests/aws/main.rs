//! The AWS suite: the five `functions/*` binaries as AWS Lambda runs them
//! ([`tidemark_tests::lambda_host`]), each scenario on a stack of its own (table, queues,
//! schedule group, function names, databases), against the emulator and the stack's MariaDB
//! servers.
//!
//! Scenarios mostly wait — on processes, queues and servers — so they all run at once in one
//! runtime: this target has its own runner (`harness = false`) rather than libtest's, whose
//! thread per test would run two at a time on a two-core machine. It takes libtest's filter
//! arguments (`cargo test --test aws <filter>`, `--exact`, `--skip`, `--list`) and prints its
//! report in libtest's shape.

mod chunks;
mod deploy;
mod iam;
mod operations;
mod policies;
mod runs;
mod schedules;
mod secrets;
mod stalls;
mod support;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

type Scenario = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;
type Check = fn() -> Result<(), String>;

/// Every scenario, by name.
const SCENARIOS: &[(&str, Scenario)] = &[
    (
        "deploy::a_missing_variable_fails_the_start_with_its_name",
        || Box::pin(deploy::a_missing_variable_fails_the_start_with_its_name()),
    ),
    (
        "deploy::a_function_is_frozen_between_invocations_and_killed_at_its_timeout",
        || Box::pin(deploy::a_function_is_frozen_between_invocations_and_killed_at_its_timeout()),
    ),
    ("deploy::only_the_templates_routes_reach_a_function", || {
        Box::pin(deploy::only_the_templates_routes_reach_a_function())
    }),
    ("policies::resync_reloads_each_cycle", || {
        Box::pin(policies::resync_reloads_each_cycle())
    }),
    ("policies::multi_replica_makes_a_replica_per_cycle", || {
        Box::pin(policies::multi_replica_makes_a_replica_per_cycle())
    }),
    (
        "policies::incremental_carries_changes_over_two_cycles",
        || Box::pin(policies::incremental_carries_changes_over_two_cycles()),
    ),
    (
        "chunks::many_chunks_by_many_invocations_with_duplicate_deliveries",
        || Box::pin(chunks::many_chunks_by_many_invocations_with_duplicate_deliveries()),
    ),
    (
        "chunks::a_worker_killed_mid_chunk_is_resumed_from_its_step",
        || Box::pin(chunks::a_worker_killed_mid_chunk_is_resumed_from_its_step()),
    ),
    (
        "runs::a_run_cancelled_with_chunks_in_flight_is_cleaned_up",
        || Box::pin(runs::a_run_cancelled_with_chunks_in_flight_is_cleaned_up()),
    ),
    (
        "runs::a_task_deleted_mid_run_goes_with_its_replica_and_secrets",
        || Box::pin(runs::a_task_deleted_mid_run_goes_with_its_replica_and_secrets()),
    ),
    (
        "runs::a_failed_run_stops_the_task_under_stop_and_not_under_continue",
        || Box::pin(runs::a_failed_run_stops_the_task_under_stop_and_not_under_continue()),
    ),
    (
        "schedules::a_schedule_reaching_its_end_date_completes_the_task",
        || Box::pin(schedules::a_schedule_reaching_its_end_date_completes_the_task()),
    ),
    (
        "schedules::cycles_the_scheduler_or_run_cycle_gave_up_on_are_recorded_missed",
        || Box::pin(schedules::cycles_the_scheduler_or_run_cycle_gave_up_on_are_recorded_missed()),
    ),
    (
        "stalls::stalled_runs_are_failed_settled_and_deleted_by_the_sweep",
        || Box::pin(stalls::stalled_runs_are_failed_settled_and_deleted_by_the_sweep()),
    ),
    (
        "stalls::cleanups_with_nothing_in_flight_are_done_at_once_by_manage_task",
        || Box::pin(stalls::cleanups_with_nothing_in_flight_are_done_at_once_by_manage_task()),
    ),
    (
        "operations::twenty_chunks_stay_within_the_worker_bound",
        || Box::pin(operations::twenty_chunks_stay_within_the_worker_bound()),
    ),
    (
        "operations::records_expire_and_expired_runs_are_not_shown",
        || Box::pin(operations::records_expire_and_expired_runs_are_not_shown()),
    ),
    (
        "operations::log_groups_keep_logs_and_each_function_has_an_errors_alarm",
        || Box::pin(operations::log_groups_keep_logs_and_each_function_has_an_errors_alarm()),
    ),
    (
        "secrets::a_secret_outside_the_scope_is_refused_before_any_read",
        || Box::pin(secrets::a_secret_outside_the_scope_is_refused_before_any_read()),
    ),
    (
        "secrets::a_secret_under_a_named_customer_key_is_read",
        || Box::pin(secrets::a_secret_under_a_named_customer_key_is_read()),
    ),
    (
        "secrets::a_secret_under_an_unnamed_customer_key_is_refused",
        || Box::pin(secrets::a_secret_under_an_unnamed_customer_key_is_refused()),
    ),
    (
        "secrets::a_rotation_to_the_other_user_keeps_the_runs_working",
        || Box::pin(secrets::a_rotation_to_the_other_user_keeps_the_runs_working()),
    ),
];

/// What runs after the scenarios, over the stacks they deployed: the calls' verdicts, and —
/// only when every scenario ran — whether each statement was needed.
const AFTER: &[(&str, Check, bool)] = &[
    (
        "iam::every_recorded_call_is_allowed_by_the_unmodified_policies",
        iam::every_recorded_call_is_allowed_by_the_unmodified_policies,
        false,
    ),
    (
        "iam::every_statement_is_needed_by_a_recorded_call",
        iam::every_statement_is_needed_by_a_recorded_call,
        true,
    ),
];

/// A scenario that has not ended by then fails: a guard against a hang, well above a scenario's
/// time on a quiet machine (about a minute and a half for the longest).
const SCENARIO_LIMIT: Duration = Duration::from_secs(300);

struct Args {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
}

fn args() -> Args {
    let mut out = Args {
        filters: Vec::new(),
        skip: Vec::new(),
        exact: false,
        list: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--exact" => out.exact = true,
            "--list" => out.list = true,
            "--skip" => out.skip.extend(args.next()),
            // libtest's options that take a value: ignored with their value.
            "--test-threads" | "--color" | "--format" | "--logfile" | "-Z" | "--shuffle-seed"
            | "--report-time" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => out.filters.push(a.to_owned()),
        }
    }
    out
}

fn selected(args: &Args, name: &str) -> bool {
    let hit = |f: &String| {
        if args.exact {
            name == f
        } else {
            name.contains(f.as_str())
        }
    };
    (args.filters.is_empty() || args.filters.iter().any(hit)) && !args.skip.iter().any(hit)
}

fn main() -> ExitCode {
    let args = args();
    let chosen: Vec<(&'static str, Scenario)> = SCENARIOS
        .iter()
        .filter(|(name, _)| selected(&args, name))
        .copied()
        .collect();
    let whole = args.filters.is_empty() && args.skip.is_empty();
    let after: Vec<_> = AFTER
        .iter()
        .filter(|(_, _, needs_all)| !chosen.is_empty() && (whole || !needs_all))
        .collect();
    if args.list {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        for (name, _, _) in &after {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("\nrunning {} tests", chosen.len());
    let started = Instant::now();
    let failures = runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (name, scenario) in chosen {
            set.spawn(async move {
                let at = Instant::now();
                let run = tokio::spawn(tokio::time::timeout(SCENARIO_LIMIT, scenario()));
                let result = match run.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(format!("did not end within {SCENARIO_LIMIT:?}")),
                    Err(e) => Err(panic_message(e)),
                };
                (name, result, at.elapsed())
            });
        }
        let mut failures = Vec::new();
        while let Some(joined) = set.join_next().await {
            let Ok((name, result, took)) = joined else {
                continue;
            };
            match result {
                Ok(()) => println!("test {name} ... ok ({:.1}s)", took.as_secs_f64()),
                Err(message) => {
                    println!("test {name} ... FAILED ({:.1}s)", took.as_secs_f64());
                    failures.push((name, message));
                }
            }
        }
        failures
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    let mut failures = failures;
    for (name, check, _) in &after {
        let at = Instant::now();
        match check() {
            Ok(()) => println!("test {name} ... ok ({:.1}s)", at.elapsed().as_secs_f64()),
            Err(message) => {
                println!(
                    "test {name} ... FAILED ({:.1}s)",
                    at.elapsed().as_secs_f64()
                );
                failures.push((name, message));
            }
        }
    }
    if !failures.is_empty() {
        println!("\nfailures:");
        for (name, message) in &failures {
            println!("\n---- {name} ----\n{message}");
        }
    }
    let total = SCENARIOS.iter().filter(|(n, _)| selected(&args, n)).count() + after.len();
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.2}s\n",
        if failures.is_empty() { "ok" } else { "FAILED" },
        total - failures.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".into()),
        Err(e) => e.to_string(),
    }
}
