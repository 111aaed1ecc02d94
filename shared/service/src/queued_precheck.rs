//! Prechecks through a queue, for hosts whose process cannot go on working once it has answered
//! (Lambda freezes a function when it returns). `POST /tasks/{id}/precheck` records the precheck
//! as running, as in-process, and sends `{task_id, at}` to the queue; the queue's consumer calls
//! [`TaskService::run_queued_precheck`], which stores the report exactly as the in-process path
//! does.
//!
//! ## When a queued precheck counts as running
//! Nothing in the answering process watches a queued precheck, so "running" is a rule on the
//! record: the task's precheck summary says `running` and it started less than the *window* ago.
//! The window is the consumer's timeout plus the time a message may wait in the queue. Within it,
//! `GET /tasks/{id}/precheck` answers 202 and a second POST sends nothing; past it, GET answers
//! 409 `precheck_interrupted` and POST starts a new precheck. A delivery of a precheck that
//! arrives after its window is dropped, so an answer once given does not change, and a delivery
//! of a precheck that a newer one replaced never touches the newer one's report.

use jiff::Timestamp;
use tidemark_core::state::{PrecheckState, PrecheckSummary, TaskRecord};

use crate::error::ServiceError;
pub(crate) use crate::precheck_queue::QueuedPrechecks;
use crate::tasks::TaskService;

/// What became of a delivered precheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuedPrecheck {
    /// It ran; its report and the task's summary are stored.
    Ran { passed: bool },
    /// It already reported (a duplicate delivery): nothing was done.
    AlreadyReported,
    /// A newer precheck replaced it: nothing was done.
    Superseded,
    /// Its window passed (the caller was told it was interrupted): nothing was done.
    Expired,
    /// The task was deleted: nothing was done.
    TaskGone,
}

impl TaskService {
    /// Whether `summary` is a queued precheck that still counts as running.
    pub(crate) fn queued_precheck_running(&self, summary: &PrecheckSummary) -> bool {
        summary.state == PrecheckState::Running
            && self
                .precheck_queue
                .as_ref()
                .is_some_and(|q| q.within(summary, self.ports.clock.now()))
    }

    /// Records the precheck as running and sends it to the queue; a precheck that still counts
    /// as running is not sent twice. When the queue refuses it, the task is put back as it was.
    pub(crate) async fn enqueue_precheck(
        &self,
        queued: &QueuedPrechecks,
        task: TaskRecord,
    ) -> Result<TaskRecord, ServiceError> {
        if task
            .precheck
            .as_ref()
            .is_some_and(|p| self.queued_precheck_running(p))
        {
            return Ok(task);
        }
        let id = task.id.clone();
        let at = self.ports.clock.now();
        let marked = self.mark_precheck_running(&id, at).await?;
        if let Err(e) = queued.queue.send_precheck(&id, at).await {
            // Nothing will run it: the task must not show a precheck that never started.
            let restored = self
                .modify_task(&id, |t| {
                    if t.precheck.as_ref().is_none_or(|p| p.at != at) {
                        return false;
                    }
                    t.precheck = task.precheck.clone();
                    t.status = task.status;
                    t.status_reason = task.status_reason.clone();
                    true
                })
                .await;
            if let Err(undo) = restored {
                tracing::warn!(task = %id, error = %undo, "a precheck that was not queued still shows as running");
            }
            return Err(e.into());
        }
        tracing::info!(task = %id, %at, "precheck queued");
        Ok(marked)
    }

    /// Runs a precheck delivered by the queue: the one started at `at`, once. A delivery of an
    /// older precheck, of one that already reported, of one past its window, or of a deleted
    /// task's does nothing. An error leaves the precheck running, so a redelivery within the
    /// window may finish it.
    pub async fn run_queued_precheck(
        &self,
        task_id: &str,
        at: Timestamp,
    ) -> Result<QueuedPrecheck, ServiceError> {
        let Some(task) = self.ports.store.get_task(task_id).await? else {
            return Ok(QueuedPrecheck::TaskGone);
        };
        let Some(summary) = task.precheck.clone().filter(|p| p.at == at) else {
            return Ok(QueuedPrecheck::Superseded);
        };
        if summary.state != PrecheckState::Running {
            return Ok(QueuedPrecheck::AlreadyReported);
        }
        if let Some(queued) = self.precheck_queue.as_ref()
            && !queued.within(&summary, self.ports.clock.now())
        {
            return Ok(QueuedPrecheck::Expired);
        }
        self.check_hosts(&task.spec).await?;
        let passed = self.run_precheck(&task, at).await?;
        tracing::info!(task = %task_id, passed, "precheck finished");
        Ok(QueuedPrecheck::Ran { passed })
    }
}
