//! `tidemark schedule TASK.json [--count N]`: the next scheduled times, one a line.

use std::path::Path;
use std::process::ExitCode;

use jiff::Timestamp;
use tidemark_core::schedule::Schedule;

use crate::spec_file::{BAD_SPEC, read_spec};

pub fn run(path: &Path, count: usize, now: Timestamp) -> ExitCode {
    let spec = match read_spec(path) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(BAD_SPEC);
        }
    };
    let schedule = match Schedule::from_spec(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {}", e.field, e.message);
            return ExitCode::from(BAD_SPEC);
        }
    };
    for at in schedule.upcoming(now, count) {
        // RFC 3339 with the zone's offset (no bracketed zone name).
        println!("{}", at.strftime("%Y-%m-%dT%H:%M:%S%:z"));
    }
    ExitCode::SUCCESS
}
