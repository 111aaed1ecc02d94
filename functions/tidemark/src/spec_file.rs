//! Reading TASK.json, and the exit codes of the CLI contract.

use std::path::Path;

use tidemark_core::{TaskSpec, parse_task_spec};

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
