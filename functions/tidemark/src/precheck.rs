//! `tidemark precheck TASK.json [--json]`: every check, with what to do about each failure.

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;
use tidemark_core::precheck::{CheckStatus, PrecheckReport};
use tidemark_engine::ConnectOptions;
use tidemark_service::precheck::precheck_task;

use crate::spec_file::{FAILED, read_spec_with_passwords};

pub async fn run(path: &Path, json: bool) -> ExitCode {
    let (spec, source, destination) = match read_spec_with_passwords(path) {
        Ok(read) => read,
        Err(code) => return code,
    };
    let source = ConnectOptions::from_endpoint(&spec.source, source);
    let destination = ConnectOptions::from_endpoint(&spec.destination, destination);
    let report = precheck_task(&spec, &source, &destination, Timestamp::now()).await;
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot encode the report: {e}");
                return ExitCode::from(FAILED);
            }
        }
    } else {
        print_report(&report);
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

fn print_report(report: &PrecheckReport) {
    for check in &report.checks {
        let status = match check.status {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "WARN",
            CheckStatus::Fail => "FAIL",
        };
        println!("{status:<5} {:<26} {}", check.id, check.message);
        if let Some(remedy) = &check.remedy
            && check.status != CheckStatus::Pass
        {
            println!("      {:<26} fix: {remedy}", "");
        }
    }
    let (failed, warned) = (report.failed_ids(), report.warned_ids());
    println!(
        "\n{}: {} checks, {} failed, {} warned",
        if failed.is_empty() {
            "passed"
        } else {
            "failed"
        },
        report.checks.len(),
        failed.len(),
        warned.len()
    );
}
