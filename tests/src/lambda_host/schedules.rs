//! EventBridge Scheduler's side: which invocations of the schedules the service wrote to the
//! emulator are due, and what the scheduler sends — `infra/local/aws/fire.py`, which follows
//! EventBridge Scheduler's documented rules independently of the product's schedule code. The
//! stack delivers each due invocation to its target as the scheduler does (an asynchronous
//! invocation with the schedule's input, its context attributes filled in).

use std::path::Path;

use jiff::Timestamp;
use serde_json::Value;

use super::iam::IamEmulator;
use crate::harness::stack::repo_dir;

/// What `fire.py due` says for a time range: the invocations due (each with `schedule_name`,
/// `scheduled_time`, `target_arn`, `role_arn`, `input`, `retry_policy`, `dead_letter_arn`, ...)
/// and the schedules that complete in it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueReport {
    pub invocations: Vec<Value>,
    pub completions: Vec<Value>,
}

fn iso(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn fire_py(python: &Path, iam: &IamEmulator, args: &[String]) -> Result<Value, String> {
    let output = std::process::Command::new(python)
        .arg(repo_dir().join("infra/local/aws/fire.py"))
        .args(args)
        .env("TIDEMARK_IAM_ACCESS_KEY_ID", &iam.admin.access_key_id)
        .env(
            "TIDEMARK_IAM_SECRET_ACCESS_KEY",
            &iam.admin.secret_access_key,
        )
        .env("AWS_REGION", super::REGION)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .map_err(|e| format!("cannot run fire.py: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "fire.py {} failed: {}",
            args.first().map_or("", String::as_str),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("fire.py's output: {e}"))
}

/// `fire.py due` for the schedules of `group` in [from, to); with `apply`, completed schedules
/// whose `ActionAfterCompletion` is `DELETE` are deleted.
pub fn due(
    python: &Path,
    iam: &IamEmulator,
    group: &str,
    from: Timestamp,
    to: Timestamp,
    apply: bool,
) -> Result<DueReport, String> {
    let mut args: Vec<String> = [
        "due",
        "--endpoint",
        &iam.endpoint,
        "--group",
        group,
        "--from",
        &iso(from),
        "--to",
        &iso(to),
    ]
    .map(str::to_owned)
    .to_vec();
    if apply {
        args.push("--apply".into());
    }
    let out = fire_py(python, iam, &args)?;
    let list = |k: &str| out[k].as_array().cloned().unwrap_or_default();
    Ok(DueReport {
        invocations: list("invocations"),
        completions: list("completions"),
    })
}

/// `fire.py dead-letter`: the message (`QueueArn`, `MessageBody`, `MessageAttributes`) the
/// scheduler sends to an invocation's dead-letter queue when it gives up on it.
pub fn dead_letter(
    python: &Path,
    iam: &IamEmulator,
    invocation: &Value,
    error_code: &str,
    error_message: &str,
    retry_attempts: u32,
) -> Result<Value, String> {
    let args = [
        "dead-letter".to_owned(),
        "--invocation".to_owned(),
        invocation.to_string(),
        "--error-code".to_owned(),
        error_code.to_owned(),
        "--error-message".to_owned(),
        error_message.to_owned(),
        "--retry-attempts".to_owned(),
        retry_attempts.to_string(),
    ];
    fire_py(python, iam, &args)
}
