//! Reading TASK.json, and the exit codes of the CLI contract.

use std::path::Path;

use std::process::ExitCode;

use secrecy::SecretString;
use tidemark_core::{TaskSpec, parse_task_spec};
use tidemark_service::passwords::local_password;

/// Exit code for a bad spec or command line.
pub const BAD_SPEC: u8 = 2;
/// Exit code for work that failed.
pub const FAILED: u8 = 1;

/// The task spec at `path`, parsed and validated; the error is ready to print.
pub fn read_spec(path: &Path) -> Result<TaskSpec, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("error: cannot read the task spec {}: {e}", path.display()))?;
    parse_task_spec(&text)
        .map_err(|e| format!("error: the task spec {} is not valid:\n{e}", path.display()))
}

/// A spec with both endpoints' passwords, as `run` and `precheck` need them; on a bad spec or a
/// password that is not available, the message is printed and the exit code (2) returned.
pub fn read_spec_with_passwords(
    path: &Path,
) -> Result<(TaskSpec, SecretString, SecretString), ExitCode> {
    let spec = read_spec(path).map_err(|message| {
        eprintln!("{message}");
        ExitCode::from(BAD_SPEC)
    })?;
    let source = local_password(&spec.source, "source");
    let destination = local_password(&spec.destination, "destination");
    match (source, destination) {
        (Ok(s), Ok(d)) => Ok((spec, s, d)),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(BAD_SPEC))
        }
    }
}
