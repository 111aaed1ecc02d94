//! `tidemark run TASK.json`: one cycle now, as if scheduled at `--scheduled-time`; progress on
//! stderr (a bar per table on a terminal, plain lines otherwise), the summary on stdout.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::Timestamp;
use tidemark_core::ports::StateStore;
use tidemark_core::ports::SystemClock;
use tidemark_core::state::{RunPhase, RunTrigger, time_key};
use tidemark_local::SqliteStore;
use tidemark_service::cycle::{CycleInput, manual_scheduled_time};
use tidemark_service::driver::local::abandon_run;
use tidemark_service::{CycleEvent, CycleReport, ServiceError, StepRetry, run_cycle_with};

use crate::spec_file::{BAD_SPEC, FAILED, read_spec_with_passwords};
use crate::task_id;

/// A run by hand rides out a blip of its endpoints (1, 2 and 4 s) but does not keep a user
/// waiting a minute on a wrong port; `tidemark serve`'s runs wait about a minute
/// ([`StepRetry::default`]).
const CLI_RETRY: StepRetry = StepRetry {
    attempts: 3,
    first_backoff: std::time::Duration::from_secs(1),
    max_backoff: std::time::Duration::from_secs(4),
};

pub struct RunArgs {
    pub task: PathBuf,
    pub scheduled_time: Option<Timestamp>,
    pub data_dir: PathBuf,
    pub json: bool,
    /// Fail the run a dead `tidemark run` left unfinished instead of resuming it.
    pub abandon: bool,
}

pub async fn run(args: RunArgs) -> ExitCode {
    let (spec, source_password, destination_password) = match read_spec_with_passwords(&args.task) {
        Ok(read) => read,
        Err(code) => return code,
    };
    let store = match open_store(&args.data_dir) {
        Ok(store) => store,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(FAILED);
        }
    };
    // One `tidemark run` per data directory at a time: an unfinished run found below is then
    // certainly one whose process died.
    let _lock = match lock_data_dir(&args.data_dir) {
        Ok(lock) => lock,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(FAILED);
        }
    };
    let task_id = match task_id::resolve(&store, &args.data_dir, &args.task, &spec).await {
        Ok(identity) => {
            if let Some(note) = identity.note {
                eprintln!("{note}");
            }
            identity.id
        }
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(FAILED);
        }
    };
    let unfinished = match unfinished_run(&store, &task_id).await {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(FAILED);
        }
    };
    let mut scheduled_time = args
        .scheduled_time
        .unwrap_or_else(|| manual_scheduled_time(Timestamp::now()));
    if let Some(run) = unfinished {
        let at = time_key(run.key.scheduled_time);
        if args.abandon {
            let input = CycleInput::with_passwords(
                &task_id,
                &spec,
                run.key.scheduled_time,
                run.trigger,
                (source_password.clone(), destination_password.clone()),
            );
            if let Err(e) = abandon_run(&store, &SystemClock, input).await {
                eprintln!(
                    "error: the unfinished run scheduled at {at} could not be abandoned: {e}"
                );
                return ExitCode::from(FAILED);
            }
            eprintln!(
                "the run of `{}` scheduled at {at}, left unfinished by an earlier tidemark run, \
                 was failed and cleaned up (--abandon)",
                spec.name
            );
        } else if args
            .scheduled_time
            .is_some_and(|t| t != run.key.scheduled_time)
        {
            eprintln!(
                "error: the run of `{}` scheduled at {at} was left unfinished by an earlier \
                 tidemark run: resume it (run again without --scheduled-time) or fail it with \
                 --abandon",
                spec.name
            );
            return ExitCode::from(FAILED);
        } else {
            eprintln!(
                "resuming the run of `{}` scheduled at {at}, left unfinished by an earlier \
                 tidemark run (its committed chunks are not copied again; --abandon fails it \
                 instead)",
                spec.name
            );
            scheduled_time = run.key.scheduled_time;
        }
    }
    let progress = Progress::new();
    let input = CycleInput::with_passwords(
        &task_id,
        &spec,
        scheduled_time,
        RunTrigger::Manual,
        (source_password, destination_password),
    );
    let events = Arc::clone(&progress);
    let result = run_cycle_with(
        &store,
        &SystemClock,
        input,
        Arc::new(move |e| events.on_event(e)),
        CLI_RETRY,
    )
    .await;
    progress.finish();
    match result {
        Ok(report) => {
            print_report(&report, args.json);
            ExitCode::SUCCESS
        }
        Err(ServiceError::AlreadyRan {
            scheduled_time,
            status,
        }) => {
            eprintln!(
                "the run of `{}` scheduled at {scheduled_time} already {status}; nothing was done (pass another --scheduled-time to run again)",
                spec.name
            );
            if status == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(FAILED)
            }
        }
        Err(e) if e.is_invalid_input() => {
            eprintln!("error: {e}");
            ExitCode::from(BAD_SPEC)
        }
        Err(e) => {
            if args.json {
                let failed = serde_json::json!({
                    "task_id": task_id,
                    "scheduled_time": time_key(scheduled_time),
                    "status": "failed",
                    "error": e.to_string(),
                });
                println!("{failed}");
            }
            eprintln!("error: the run failed: {e}");
            ExitCode::from(FAILED)
        }
    }
}

/// The newest run of the task that did not end (a run left by a process that died).
async fn unfinished_run(
    store: &SqliteStore,
    task_id: &str,
) -> Result<Option<tidemark_core::state::RunRecord>, String> {
    let runs = store
        .list_runs(task_id, 20, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(runs.items.into_iter().find(|r| !r.status.is_final()))
}

/// Holds `DIR/run.lock` exclusively for the life of the process.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, String> {
    let path = data_dir.join("run.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another tidemark run is using {}: wait for it to end, or give another --data-dir",
            data_dir.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

fn open_store(data_dir: &Path) -> Result<SqliteStore, String> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            data_dir.display()
        )
    })?;
    SqliteStore::open(&data_dir.join("state.sqlite")).map_err(|e| e.to_string())
}

/// Progress on stderr: a bar per table (rows, MB/s, ETA) on a terminal, plain lines elsewhere.
struct Progress {
    bars: Option<MultiProgress>,
    tables: Mutex<HashMap<String, TableBar>>,
}

struct TableBar {
    bar: ProgressBar,
    bytes: u64,
    started: Instant,
}

impl Progress {
    fn new() -> Arc<Progress> {
        let bars = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Arc::new(Progress {
            bars,
            tables: Mutex::new(HashMap::new()),
        })
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn on_event(&self, event: CycleEvent) {
        match event {
            CycleEvent::Phase(phase) => self.line(match phase {
                RunPhase::Schema => "schema: reading the source and creating tables".into(),
                RunPhase::Copying => "copying: planning chunks and loading rows".into(),
                RunPhase::Finalizing => {
                    "finalizing: indexes, foreign keys, routines, views, triggers".into()
                }
            }),
            CycleEvent::Warning(w) => self.line(format!("warning: {w}")),
            CycleEvent::TablePlanned {
                table,
                dest_table,
                chunks,
                estimated_rows,
            } => {
                let bar = match &self.bars {
                    Some(bars) => {
                        let bar = bars.add(ProgressBar::new(estimated_rows.max(1)));
                        bar.set_style(bar_style());
                        bar.set_prefix(table.clone());
                        bar
                    }
                    None => {
                        eprintln!(
                            "{table} -> {dest_table}: {chunks} chunk(s), about {estimated_rows} rows"
                        );
                        ProgressBar::hidden()
                    }
                };
                if let Ok(mut tables) = self.tables.lock() {
                    tables.insert(
                        table,
                        TableBar {
                            bar,
                            bytes: 0,
                            started: Instant::now(),
                        },
                    );
                }
            }
            CycleEvent::Progress { table, rows, bytes } => {
                if let Ok(mut tables) = self.tables.lock()
                    && let Some(t) = tables.get_mut(&table)
                {
                    t.bytes += bytes;
                    t.bar.inc(rows);
                    if t.bar.position() > t.bar.length().unwrap_or(0) {
                        t.bar.set_length(t.bar.position());
                    }
                    let seconds = t.started.elapsed().as_secs_f64().max(0.001);
                    t.bar
                        .set_message(format!("{:.1} MB/s", t.bytes as f64 / 1e6 / seconds));
                }
            }
            CycleEvent::ChunkDone { .. } => {}
        }
    }

    fn finish(&self) {
        if let Ok(tables) = self.tables.lock() {
            for t in tables.values() {
                t.bar.finish();
            }
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:<28!} [{bar:28}] {pos:>10}/{len:<10} rows  {msg:>11}  ETA {eta:>4}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn print_report(report: &CycleReport, json: bool) {
    let run = &report.run;
    if json {
        let tables: Vec<serde_json::Value> = report
            .tables
            .iter()
            .map(|t| {
                serde_json::json!({
                    "table": t.table,
                    "dest_table": t.dest_table,
                    "rows": t.rows,
                    "bytes": t.bytes,
                    "chunks": t.chunks,
                    "seconds": t.elapsed.as_secs_f64(),
                    "verification": t.verification,
                    "warning": t.warning,
                })
            })
            .collect();
        let out = serde_json::json!({
            "task_id": run.key.task_id,
            "scheduled_time": time_key(run.key.scheduled_time),
            "status": "succeeded",
            "seconds": report.elapsed.as_secs_f64(),
            "tables": tables,
            "warnings": report.warnings,
            // What the policy recorded: replica names, shadow tables, incremental windows.
            "plan": run.plan,
        });
        println!("{out}");
        return;
    }
    println!(
        "run {} scheduled at {}: succeeded in {:.1} s",
        run.key.task_id,
        time_key(run.key.scheduled_time),
        report.elapsed.as_secs_f64()
    );
    println!(
        "{:<32} {:<32} {:>12} {:>10} {:>8} {:>8}  verified",
        "table", "destination", "rows", "MB", "seconds", "MB/s"
    );
    for t in &report.tables {
        let seconds = t.elapsed.as_secs_f64();
        let mb = t.bytes as f64 / 1e6;
        println!(
            "{:<32} {:<32} {:>12} {:>10.1} {:>8.1} {:>8.1}  {}",
            t.table,
            t.dest_table,
            t.rows,
            mb,
            seconds,
            mb / seconds.max(0.001),
            match t.verification {
                tidemark_engine::copy::Verification::Verified => "yes",
                tidemark_engine::copy::Verification::Off => "off",
                tidemark_engine::copy::Verification::Counted => "rows counted",
            }
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
}
