//! `tidemark serve`: the HTTP API, the local scheduler and the cycles on one machine, with the
//! state in `--data-dir` (`state.sqlite`, `schedules.sqlite`, `secrets.json` of mode 0600).
//!
//! Runs go through the one driver as on AWS: their steps travel on a step queue kept as a table
//! of `state.sqlite` (SQS's semantics: visibility timeout, receive count, dead letters), taken
//! by one pool of `--workers` consumers for every task. On start it takes over the runs a
//! previous process left unfinished; on SIGTERM or Ctrl-C it stops accepting requests, lets the
//! requests in hand finish, waits up to [`SHUTDOWN_GRACE`] for the steps in hand and leaves the
//! rest to be resumed at the next start (their messages come back).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tidemark_core::ports::{Clock, SystemClock};
use tidemark_local::{LocalScheduler, LocalSecretStore, SqliteStore};
use tidemark_service::driver::waking::Waking;
use tidemark_service::local_schedule::RUN_LEASE;
use tidemark_service::{Allowlist, ConsumerConfig, Host, Ports, TaskService, WorkerConfig, router};
use tokio::sync::watch;

use crate::spec_file::{BAD_SPEC, FAILED};

/// How long shutdown waits for the runs in hand.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often the scheduler looks for due cycles.
const SCHEDULER_TICK: Duration = Duration::from_secs(1);
/// Deliveries of a step message before it is dead-lettered (its run then fails): a message is
/// only put back when the state store failed under a step.
const MAX_RECEIVES: u32 = 10;

pub struct ServeArgs {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub allow_hosts: Option<String>,
    pub workers: u32,
}

pub async fn run(args: ServeArgs) -> ExitCode {
    let allowlist = match args.allow_hosts.as_deref().map(Allowlist::parse) {
        None => Allowlist::allow_all(),
        Some(Ok(list)) => list,
        Some(Err(e)) => {
            eprintln!("error: --allow-hosts: {e}");
            return ExitCode::from(BAD_SPEC);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.data_dir) {
        eprintln!(
            "error: cannot create the data directory {}: {e}",
            args.data_dir.display()
        );
        return ExitCode::from(FAILED);
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = match SqliteStore::open(&args.data_dir.join("state.sqlite")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(FAILED);
        }
    };
    let scheduler =
        match LocalScheduler::open(&args.data_dir.join("schedules.sqlite"), Arc::clone(&clock)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(FAILED);
            }
        };
    let secrets = LocalSecretStore::new(&args.data_dir.join("secrets.json"));
    let queue = Arc::new(Waking::new(
        store.step_queue(Arc::clone(&clock), MAX_RECEIVES),
    ));
    let mut worker = WorkerConfig::new(queue.clone(), "serve");
    worker.driver.run_lease = RUN_LEASE.unsigned_abs();
    // The sweep's durations may be shortened through the environment (the fault suite does).
    worker.driver = match worker
        .driver
        .clone()
        .with_variables(&|name| std::env::var(name).ok())
    {
        Ok(driver) => driver,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(BAD_SPEC);
        }
    };
    let service = TaskService::new(
        Ports {
            store: Arc::new(store),
            secrets: Arc::new(secrets),
            scheduler: Arc::new(scheduler.clone()),
            clock,
        },
        allowlist,
        Host::new(worker),
    );
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(FAILED);
        }
    };
    let address = listener.local_addr().unwrap_or(args.listen);
    match service.resume_unfinished().await {
        Ok(resumed) if !resumed.is_empty() => {
            tracing::info!(runs = resumed.len(), "resumed unfinished runs");
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "unfinished runs could not be listed"),
    }
    let consumers = ConsumerConfig {
        workers: args.workers,
        ..ConsumerConfig::default()
    };
    service.start_consumers(queue, consumers);
    let (stop_tx, stop_rx) = watch::channel(false);
    let loop_stop = stopped(stop_rx.clone());
    let scheduler_loop =
        tokio::spawn(Arc::clone(&service).run_scheduler(scheduler, SCHEDULER_TICK, loop_stop));
    // Scripts and tests read the address (the port, when 0 was asked for) from this line.
    eprintln!("tidemark serve: listening on http://{address}");
    tracing::info!(%address, "listening");
    let served = axum::serve(listener, router(Arc::clone(&service)))
        .with_graceful_shutdown(signal())
        .await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = scheduler_loop.await;
    service.shutdown(SHUTDOWN_GRACE).await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: the server failed: {e}");
            ExitCode::from(FAILED)
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// SIGTERM or Ctrl-C.
async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
