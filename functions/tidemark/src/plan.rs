//! `tidemark plan TASK.json`: the schema DDL a run would execute, in order.

use std::path::Path;
use std::process::ExitCode;

use tidemark_core::MigrationType;
use tidemark_engine::{ConnectOptions, connect, plan_from_source};
use tidemark_service::passwords::local_password;

use crate::spec_file::{BAD_SPEC, FAILED, read_spec};

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
    let password = match local_password(&spec.source, "source") {
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
