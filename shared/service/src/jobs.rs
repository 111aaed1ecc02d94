//! The background work of this process: step consumers and prechecks, so that shutdown takes no
//! new work and waits for what is in hand.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;

#[derive(Default)]
pub(crate) struct Jobs {
    prechecks: Mutex<HashSet<String>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    closed: std::sync::atomic::AtomicBool,
    closing: tokio::sync::Notify,
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

    /// Waits `at_most`, or until shutdown begins.
    pub(crate) async fn pause(&self, at_most: Duration) {
        let closing = self.closing.notified();
        tokio::pin!(closing);
        closing.as_mut().enable();
        if self.is_closed() {
            return;
        }
        let _ = tokio::time::timeout(at_most, closing).await;
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
    /// dropped step's message comes back, and its run is taken over at the next start.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.closing.notify_waiters();
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
