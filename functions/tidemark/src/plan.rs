//! `tidemark plan TASK.json`: the schema DDL a run would execute, in order.

use std::path::Path;
use std::process::ExitCode;

use secrecy::SecretString;
use tidemark_core::{EndpointSpec, MigrationType, PasswordSource, TaskSpec, parse_task_spec};
use tidemark_engine::{ConnectOptions, connect, plan_from_source};

/// Exit code for a bad spec or command line (the CLI contract).
const BAD_SPEC: u8 = 2;
/// Exit code for work that failed.
const FAILED: u8 = 1;

pub async fn run(path: &Path) -> ExitCode {
    let spec = match read_spec(path) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(BAD_SPEC);
        }
    };
    if !spec.migration_types.contains(&MigrationType::Schema) {
        println!("-- the task does not migrate the schema (migration_types has no \"schema\")");
        return ExitCode::SUCCESS;
    }
    let password = match password(&spec.source, "source") {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(BAD_SPEC);
        }
    };
    let opts = ConnectOptions::from_endpoint(&spec.source, password);
    let mut conn = match connect(&opts).await {
        Ok(conn) => conn,
        Err(e) => {
            eprintln!("error: source: {e}");
            return ExitCode::from(FAILED);
        }
    };
    let plan = plan_from_source(&mut conn, &spec.objects).await;
    // Nothing is left to do on the session; a failed goodbye changes nothing.
    let _ = conn.disconnect().await;
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(FAILED);
        }
    };
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", plan.to_script());
    ExitCode::SUCCESS
}

fn read_spec(path: &Path) -> Result<TaskSpec, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("error: cannot read the task spec {}: {e}", path.display()))?;
    parse_task_spec(&text)
        .map_err(|e| format!("error: the task spec {} is not valid:\n{e}", path.display()))
}

/// The endpoint's password, from the spec or the environment. Secrets Manager is the cloud's:
/// locally there is none to ask.
fn password(endpoint: &EndpointSpec, role: &str) -> Result<SecretString, String> {
    match endpoint.password_source() {
        Some(PasswordSource::Inline(p)) => Ok(p.clone()),
        Some(PasswordSource::Env(var)) => match std::env::var(var) {
            Ok(value) => Ok(SecretString::from(value)),
            Err(_) => Err(format!(
                "{role}.password_env names the environment variable `{var}`, which is not set (or not UTF-8); export it, or give {role}.password"
            )),
        },
        Some(PasswordSource::Secret(_)) => Err(format!(
            "{role}.password_secret (a Secrets Manager ARN) is not available to the local CLI; use {role}.password_env (an environment variable) or {role}.password instead"
        )),
        None => Err(format!(
            "{role} needs exactly one of password, password_env or password_secret"
        )),
    }
}
