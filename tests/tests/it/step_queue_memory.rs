//! The in-memory step queue passes the step-queue contract.

use std::sync::Arc;

use tidemark_core::ports::Clock;
use tidemark_local::MemoryQueue;
use tidemark_tests::contract::step_queue::Inbox;

async fn queue(clock: Arc<dyn Clock>, max_receive_count: u32) -> Inbox {
    Arc::new(MemoryQueue::new(clock, max_receive_count))
}

tidemark_tests::step_queue_contract!(queue);
