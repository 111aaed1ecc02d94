//! A step inbox that wakes idle consumers when a message is sent, instead of letting them find
//! it at their next look: the in-process host's queue (`tidemark run` over memory, `tidemark
//! serve` over its SQLite table). Delivery semantics are the inner queue's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tidemark_core::ports::{QueueError, ReceivedStep, StepInbox, StepMessage, StepQueue};

pub struct Waking<Q> {
    queue: Q,
    sent: tokio::sync::Notify,
}

impl<Q: StepInbox> Waking<Q> {
    pub fn new(queue: Q) -> Waking<Q> {
        Waking {
            queue,
            sent: tokio::sync::Notify::new(),
        }
    }

    /// The consumers' work is over: every one of them stops now, not at its next look.
    pub fn stop(&self, done: &AtomicBool) {
        done.store(true, Ordering::Release);
        self.sent.notify_waiters();
    }

    /// Until a message is sent, or `at_most` (a delayed message becomes visible with no send).
    pub async fn wait(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.sent.notified()).await;
    }
}

#[async_trait]
impl<Q: StepInbox> StepQueue for Waking<Q> {
    async fn send_step(
        &self,
        message: &StepMessage,
        delay: Option<Duration>,
    ) -> Result<(), QueueError> {
        self.queue.send_step(message, delay).await?;
        self.sent.notify_waiters();
        Ok(())
    }
}

#[async_trait]
impl<Q: StepInbox> StepInbox for Waking<Q> {
    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<ReceivedStep>, QueueError> {
        self.queue.receive(max, visibility).await
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.queue.delete(receipt).await
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.queue.change_visibility(receipt, visibility).await
    }

    async fn take_dead_letters(&self, max: u32) -> Result<Vec<StepMessage>, QueueError> {
        self.queue.take_dead_letters(max).await
    }
}
