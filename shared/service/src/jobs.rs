//! The background work of this process: cycles and prechecks, so a run can be cancelled, a
//! cycle that fires while its task's previous run goes on is skipped, and shutdown waits for what
//! is in hand.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tidemark_core::state::RunKey;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running cycle's cancel line: the job answers on the inner sender once the run is recorded
/// as cancelled.
pub(crate) type CancelLine = oneshot::Sender<oneshot::Sender<()>>;

#[derive(Default)]
pub(crate) struct Jobs {
    runs: Mutex<HashMap<RunKey, CancelLine>>,
    prechecks: Mutex<HashSet<String>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Jobs {
    /// Runs `work` in the background, unless the process is shutting down (`false`).
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) -> bool {
        if self.is_closed() {
            return false;
        }
        let handle = tokio::spawn(work);
        if let Ok(mut handles) = self.handles.lock() {
            handles.retain(|h| !h.is_finished());
            handles.push(handle);
        }
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn add_run(&self, key: RunKey, line: CancelLine) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(key, line);
        }
    }

    pub(crate) fn remove_run(&self, key: &RunKey) -> Option<CancelLine> {
        self.runs.lock().ok().and_then(|mut runs| runs.remove(key))
    }

    /// Whether a run of this task is going on in this process.
    pub(crate) fn task_running(&self, task_id: &str) -> bool {
        self.runs
            .lock()
            .map(|runs| runs.keys().any(|k| k.task_id == task_id))
            .unwrap_or(false)
    }

    /// Whether any run is going on in this process.
    pub(crate) fn any_running(&self) -> bool {
        self.runs.lock().map(|r| !r.is_empty()).unwrap_or(false)
    }

    /// Cancels a run of this process and waits until it is recorded; `false` when it is not
    /// running here.
    pub(crate) async fn cancel(&self, key: &RunKey) -> bool {
        let Some(line) = self.remove_run(key) else {
            return false;
        };
        let (done_tx, done_rx) = oneshot::channel();
        if line.send(done_tx).is_ok() {
            // An error: the job ended on its own first; either way it is over.
            let _ = done_rx.await;
        }
        true
    }

    /// Cancels every run of a task in this process.
    pub(crate) async fn cancel_task(&self, task_id: &str) {
        let keys: Vec<RunKey> = self
            .runs
            .lock()
            .map(|runs| {
                runs.keys()
                    .filter(|k| k.task_id == task_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for key in keys {
            self.cancel(&key).await;
        }
    }

    /// Marks a task's precheck as running here; `false` if one already is.
    pub(crate) fn begin_precheck(&self, task_id: &str) -> bool {
        self.prechecks
            .lock()
            .map(|mut p| p.insert(task_id.to_owned()))
            .unwrap_or(false)
    }

    pub(crate) fn end_precheck(&self, task_id: &str) {
        if let Ok(mut p) = self.prechecks.lock() {
            p.remove(task_id);
        }
    }

    pub(crate) fn precheck_running(&self, task_id: &str) -> bool {
        self.prechecks
            .lock()
            .map(|p| p.contains(task_id))
            .unwrap_or(false)
    }

    /// Takes no new work, waits up to `grace` for the work in hand, then drops what is left: a
    /// dropped cycle stays `running` in the store and is resumed at the next start.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let handles: Vec<JoinHandle<()>> = self
            .handles
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + grace;
        for mut handle in handles {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                handle.abort();
            }
        }
    }
}
