//! The step queue in memory, with the same semantics as [`crate::SqliteQueue`] (both pass the
//! step-queue contract suite): for fast tests of step logic, where nothing needs to outlive the
//! process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tidemark_core::ports::{Clock, QueueError, ReceivedStep, StepInbox, StepMessage, StepQueue};

use crate::queue::{micros_after, receipt};

/// One message, as a row of `step_queue` holds it.
struct Entry {
    message: StepMessage,
    /// Microseconds since the epoch.
    visible_at: i64,
    receive_count: u32,
    receipt: Option<String>,
    dead: bool,
}

#[derive(Default)]
struct State {
    /// Never reused, so a receipt of a deleted message can never name a later one.
    next_id: u64,
    /// By id, which is send order.
    messages: BTreeMap<u64, Entry>,
}

/// The step queue in memory. Cheap to clone; clones share the messages.
#[derive(Clone)]
pub struct MemoryQueue {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    max_receive_count: u32,
}

impl MemoryQueue {
    /// An empty queue timed by `clock`. A message received `max_receive_count` times without
    /// being deleted goes to the dead-letter list on its next receive; 0 is taken as 1.
    pub fn new(clock: Arc<dyn Clock>, max_receive_count: u32) -> MemoryQueue {
        MemoryQueue {
            state: Arc::new(Mutex::new(State::default())),
            clock,
            max_receive_count: max_receive_count.max(1),
        }
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, QueueError> {
        self.state.lock().map_err(|_| QueueError::Backend {
            detail: "the memory queue's lock was poisoned by a panic".into(),
            retryable: false,
        })
    }

    /// The live (not dead-lettered) message that `receipt` was handed out for last.
    fn held<'a>(state: &'a mut State, receipt: &str) -> Option<(u64, &'a mut Entry)> {
        state
            .messages
            .iter_mut()
            .find(|(_, e)| !e.dead && e.receipt.as_deref() == Some(receipt))
            .map(|(id, e)| (*id, e))
    }
}

#[async_trait]
impl StepQueue for MemoryQueue {
    async fn send_step(
        &self,
        message: &StepMessage,
        delay: Option<Duration>,
    ) -> Result<(), QueueError> {
        let visible_at = micros_after(self.clock.now(), delay.unwrap_or_default());
        let mut state = self.state()?;
        state.next_id += 1;
        let id = state.next_id;
        state.messages.insert(
            id,
            Entry {
                message: message.clone(),
                visible_at,
                receive_count: 0,
                receipt: None,
                dead: false,
            },
        );
        Ok(())
    }
}

#[async_trait]
impl StepInbox for MemoryQueue {
    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<ReceivedStep>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let (now_micros, until) = (now.as_microsecond(), micros_after(now, visibility));
        let mut state = self.state()?;
        // As the SQLite queue: every available message that used up its receives is dead now.
        let mut available = Vec::new();
        for (id, e) in state.messages.iter_mut() {
            if e.dead || e.visible_at > now_micros {
                continue;
            }
            if e.receive_count >= self.max_receive_count {
                e.dead = true;
                e.receipt = None;
            } else {
                available.push((e.visible_at, *id));
            }
        }
        available.sort_unstable();
        available.truncate(usize::try_from(max).unwrap_or(usize::MAX));
        let mut received = Vec::with_capacity(available.len());
        for (_, id) in available {
            if let Some(e) = state.messages.get_mut(&id) {
                e.receive_count = e.receive_count.saturating_add(1);
                e.visible_at = until;
                let handed = receipt(id, e.receive_count);
                e.receipt = Some(handed.clone());
                received.push(ReceivedStep {
                    message: e.message.clone(),
                    receipt: handed,
                    receive_count: e.receive_count,
                });
            }
        }
        Ok(received)
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let mut state = self.state()?;
        if let Some((id, _)) = Self::held(&mut state, receipt) {
            state.messages.remove(&id);
        }
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        let until = micros_after(self.clock.now(), visibility);
        let mut state = self.state()?;
        if let Some((_, e)) = Self::held(&mut state, receipt) {
            e.visible_at = until;
        }
        Ok(())
    }

    async fn take_dead_letters(&self, max: u32) -> Result<Vec<StepMessage>, QueueError> {
        let mut state = self.state()?;
        let ids: Vec<u64> = state
            .messages
            .iter()
            .filter(|(_, e)| e.dead)
            .map(|(id, _)| *id)
            .take(usize::try_from(max).unwrap_or(usize::MAX))
            .collect();
        Ok(ids
            .iter()
            .filter_map(|id| state.messages.remove(id))
            .map(|e| e.message)
            .collect())
    }
}
