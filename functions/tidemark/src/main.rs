//! `tidemark`: the local host and CLI. This file wires; each command lives in its own module.

mod plan;
mod precheck;
mod run;
mod schedule;
mod serve;
mod spec_file;
mod task_id;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Scheduled MySQL-to-MySQL data integration.
///
/// Every command takes the task spec (the same JSON as `POST /tasks`). Exit codes: 0 done,
/// 1 the work failed, 2 the spec or the command line is wrong.
#[derive(Debug, Parser)]
#[command(name = "tidemark", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the DDL a run would execute, in order, without changing anything.
    ///
    /// Connects to the source only, reads the selected objects and prints the schema migration
    /// as a script a `mariadb`/`mysql` client could run: a `-- phase:` header before the
    /// pre-data statements (databases, tables with their primary key) and the post-data ones
    /// (secondary indexes, foreign keys, routines, views, triggers). Warnings about objects left
    /// out or references that could not be rewritten go to stderr.
    ///
    /// Exit: 0 printed; 1 the source could not be read; 2 a bad spec (or a password that is not
    /// available locally).
    Plan {
        /// The task spec (JSON).
        #[arg(value_name = "TASK.json")]
        task: PathBuf,
        /// The cycle to show (replica names depend on it); default: the next scheduled one.
        #[arg(long, value_name = "RFC3339")]
        scheduled_time: Option<jiff::Timestamp>,
    },
    /// Print the next scheduled times of the task ("View Scheduled Time").
    ///
    /// One time a line, RFC 3339 with the task zone's offset, from now on, inside the schedule's
    /// window, with EventBridge Scheduler's behaviour at DST changes.
    ///
    /// Exit: 0 printed (nothing when the window has passed); 2 a bad spec.
    Schedule {
        /// The task spec (JSON).
        #[arg(value_name = "TASK.json")]
        task: PathBuf,
        /// How many times to print.
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
    /// Check everything that would make a cycle fail or lose data, before it runs.
    ///
    /// Connects to both endpoints (within each endpoint's connect timeout) and checks versions,
    /// privileges, the selected objects, keys, timestamp columns, name conflicts and mapping,
    /// engines, character sets, local_infile, max_allowed_packet, binary logging, foreign keys
    /// and triggers, lower_case_table_names and the schedule window. Each check is pass, warn or
    /// fail, names the objects concerned and, when not a pass, says what to do.
    ///
    /// Exit: 0 nothing failed (warnings allowed); 1 a check failed; 2 a bad spec.
    Precheck {
        /// The task spec (JSON).
        #[arg(value_name = "TASK.json")]
        task: PathBuf,
        /// Print the report as JSON: {checks: [{id, status, message, remedy, objects}], ...}.
        #[arg(long)]
        json: bool,
    },
    /// Run one cycle now: schema and data, as if scheduled at --scheduled-time.
    ///
    /// Creates the run in the local state (--data-dir), migrates the schema's pre-data phase,
    /// copies every selected table in chunks (`channel.workers` at once, each chunk verified
    /// unless `channel.verify` is false), then the post-data phase. Progress goes to stderr (a bar
    /// per table with rows, MB/s and ETA on a terminal), the summary to stdout. A second run for
    /// the same scheduled time does nothing.
    ///
    /// The task's state (runs, watermarks, an unfinished run) is kept under its id: the spec's
    /// `id` when it has one; otherwise an id made once from its name (`local-<name>`, or
    /// `local-<name>-2`, ... when another spec file holds that) and recorded for the spec file's
    /// path in DIR/task-ids.json. Renaming a task in its file keeps its state; so does giving it
    /// an `id` later (the first run of a new `id` takes over what its file had); another file with
    /// the same name is another task. A data directory of an earlier version, which kept state
    /// under `local-<name>`, is taken over as it is by the task's first run.
    ///
    /// Exit: 0 the run succeeded; 1 it failed; 2 a bad spec or command line.
    Run {
        /// The task spec (JSON).
        #[arg(value_name = "TASK.json")]
        task: PathBuf,
        /// The cycle's scheduled time (RFC 3339 with an offset, e.g. 2026-12-01T02:30:00+08:00);
        /// default: now, to the minute.
        #[arg(long, value_name = "RFC3339")]
        scheduled_time: Option<jiff::Timestamp>,
        /// Where the local state (runs, progress, watermarks, task ids) is kept.
        #[arg(long, value_name = "DIR", default_value = ".tidemark")]
        data_dir: PathBuf,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        /// A run of this task that an earlier `tidemark run` left unfinished (the process died)
        /// is resumed by default; with --abandon it is failed, what it left is cleaned up, and a
        /// new run starts.
        #[arg(long)]
        abandon: bool,
    },
    /// Serve the HTTP API, fire started tasks' cycles at their times, run them here.
    ///
    /// Every route of the API (infra/openapi.yaml) over the state in --data-dir: tasks,
    /// prechecks, runs and per-table progress in state.sqlite, started tasks' schedules in
    /// schedules.sqlite, inline passwords in secrets.json (mode 0600, never in the state). A cycle
    /// seen more than 5 minutes late (the server was down) is recorded as missed. Every run's
    /// steps go through a step queue kept in state.sqlite to one pool of --workers consumers
    /// (each run has at most its channel.workers chunks in flight); runs left unfinished by a
    /// stopped server are taken over at start. SIGTERM or Ctrl-C stops it gracefully (steps in
    /// hand get 30 s to finish, the rest resume at the next start).
    ///
    /// Logs go to stderr: text, or one JSON object a line with --log-format json; the level
    /// comes from TIDEMARK_LOG (default info).
    Serve {
        /// The address to listen on (port 0: any free port, printed on stderr).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the state, the schedules and the secrets file are kept.
        #[arg(long, value_name = "DIR", default_value = ".tidemark")]
        data_dir: PathBuf,
        /// Connect only to these endpoint hosts: IP addresses, CIDR networks, host names or
        /// domain suffixes (*.example.internal), comma-separated (e.g. 127.0.0.1/32,::1); `*`
        /// alone allows any. A name not listed is allowed when every address it resolves to is
        /// in a listed network (and the connection goes to that address). Any other host is
        /// refused with a 422.
        #[arg(long, value_name = "LIST")]
        allow_hosts: Option<String>,
        /// Steps this server works on at once, across every task's runs (chunk copies hold two
        /// sessions each: one on the source, one on the destination).
        #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        workers: u32,
        /// Log lines as text or as JSON objects.
        #[arg(long, value_enum, default_value = "text", env = "TIDEMARK_LOG_FORMAT")]
        log_format: LogFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(default_level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDEMARK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// See the workspace's Cargo.toml: bulk loads free row batches faster with mimalloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve { log_format, .. } => init_tracing("info", *log_format),
        _ => init_tracing("warn", LogFormat::Text),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Plan {
            task,
            scheduled_time,
        } => runtime.block_on(plan::run(&task, scheduled_time)),
        Command::Schedule { task, count } => schedule::run(&task, count, jiff::Timestamp::now()),
        Command::Precheck { task, json } => runtime.block_on(precheck::run(&task, json)),
        Command::Run {
            task,
            scheduled_time,
            data_dir,
            json,
            abandon,
        } => runtime.block_on(run::run(run::RunArgs {
            task,
            scheduled_time,
            data_dir,
            json,
            abandon,
        })),
        Command::Serve {
            listen,
            data_dir,
            allow_hosts,
            workers,
            log_format: _,
        } => runtime.block_on(serve::run(serve::ServeArgs {
            listen,
            data_dir,
            allow_hosts,
            workers,
        })),
    }
}
