//! The driver's decisions over the in-memory store and queue (no database server): what is
//! dispatched and what the sweep repairs here; what each step's message does when it is a
//! duplicate, comes too close to the deadline or finds its run cancelled, in a file per step.

mod caps;
mod chunk;
mod finalize;
mod schema;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use jiff::Timestamp;
use secrecy::SecretString;
use tidemark_core::ports::{Clock, StateStore, StepInbox, StepMessage};
use tidemark_core::state::{RunKey, RunStatus, RunTrigger, StepKind, StepRecord, StepStatus};
use tidemark_engine::ConnectOptions;
use tidemark_local::{MemoryQueue, MemoryStore};

use super::{Driver, DriverConfig, EndpointPools, RunSubject, RunSubjects, StepOutcome};
use crate::context::Events;
use crate::context::new_run;
use crate::error::ServiceError;
use crate::steps;

/// A clock the test moves.
struct TestClock(Mutex<Timestamp>);

impl TestClock {
    fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.0.lock() {
            *now = now.saturating_add(by).unwrap_or(*now);
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        self.0.lock().map(|t| *t).unwrap_or_default()
    }
}

struct Spec(Arc<tidemark_core::TaskSpec>);

#[async_trait]
impl RunSubjects for Spec {
    async fn subject(&self, _: &str) -> Result<Option<RunSubject>, ServiceError> {
        Ok(Some(RunSubject {
            source: ConnectOptions::from_endpoint(&self.0.source, SecretString::from("unused")),
            destination: ConnectOptions::from_endpoint(
                &self.0.destination,
                SecretString::from("unused"),
            ),
            spec: Arc::clone(&self.0),
        }))
    }
}

pub(super) struct Rig {
    store: MemoryStore,
    queue: MemoryQueue,
    clock: Arc<TestClock>,
    config: DriverConfig,
    pools: EndpointPools,
    key: RunKey,
    subjects: Spec,
}

impl Rig {
    /// A running run whose Schema step is done, with `chunks` chunk steps and Finalize pending.
    async fn new(chunks: u32, workers: u32) -> Rig {
        let clock = Arc::new(TestClock(Mutex::new(
            "2026-12-01T02:30:00Z".parse().expect("time"),
        )));
        let store = MemoryStore::new();
        let key = RunKey {
            task_id: "task-1".into(),
            scheduled_time: clock.now(),
        };
        let mut run = new_run(
            &key,
            RunTrigger::Schedule,
            RunStatus::Running,
            clock.now(),
            None,
        );
        run.chunks_total = chunks;
        assert!(store.create_run(&run).await.expect("run"));
        let mut list = vec![crate::payload::step(
            &key,
            None,
            steps::SCHEMA_STEP,
            StepKind::Schema,
            serde_json::Value::Null,
        )];
        list[0].status = StepStatus::Done;
        for n in 1..=chunks {
            list.push(crate::payload::step(
                &key,
                None,
                n,
                StepKind::Chunk,
                serde_json::json!({}),
            ));
        }
        list.push(crate::payload::step(
            &key,
            None,
            chunks + 1,
            StepKind::Finalize,
            serde_json::json!({}),
        ));
        store.put_steps(&list).await.expect("steps");
        let spec = serde_json::json!({
            "name": "t",
            "source": { "host": "127.0.0.1", "port": 1, "user": "u", "password": "p" },
            "destination": { "host": "127.0.0.1", "port": 2, "user": "u", "password": "p" },
            "policy": { "mode": "resync" },
            "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                          "start": "2026-12-01", "end": "2027-11-30" },
            "objects": [ { "database": "shop" } ],
            "channel": { "workers": workers }
        });
        let spec = tidemark_core::parse_task_spec(&spec.to_string()).expect("spec");
        Rig {
            store,
            queue: MemoryQueue::new(clock.clone(), 5),
            clock,
            config: DriverConfig::new("test"),
            pools: EndpointPools::new(),
            key,
            subjects: Spec(Arc::new(spec)),
        }
    }

    fn driver(&self) -> Driver<'_> {
        Driver {
            store: &self.store,
            clock: self.clock.as_ref(),
            queue: &self.queue,
            config: &self.config,
            pools: &self.pools,
        }
    }

    /// The step numbers of the messages waiting, taken off the queue.
    async fn sent(&self) -> Vec<u32> {
        let mut sent = Vec::new();
        for m in self
            .queue
            .receive(100, Duration::from_secs(60))
            .await
            .expect("receive")
        {
            sent.push(m.message.step);
            self.queue.delete(&m.receipt).await.expect("delete");
        }
        sent.sort_unstable();
        sent
    }

    /// Handles step `n`'s message, whole.
    async fn handled(&self, n: u32, deadline: Option<Instant>) -> super::Handled {
        let events: Events = Arc::new(|_| {});
        let message = StepMessage {
            run: self.key.clone(),
            step: n,
        };
        self.driver()
            .handle(&message, &self.subjects, &events, deadline)
            .await
            .expect("handled")
    }

    async fn set_run(&self, status: RunStatus) {
        let mut run = self
            .store
            .get_run(&self.key)
            .await
            .expect("read")
            .expect("run");
        run.status = status;
        self.store.update_run(&run).await.expect("write the run");
    }

    async fn step(&self, n: u32) -> StepRecord {
        self.store
            .get_step(&self.key, n)
            .await
            .expect("read")
            .expect("step")
    }

    async fn set(&self, n: u32, change: impl Fn(&mut StepRecord)) {
        let mut step = self.step(n).await;
        change(&mut step);
        self.store.update_step(&step).await.expect("write");
    }

    async fn handle(&self, n: u32, deadline: Option<Instant>) -> StepOutcome {
        self.handled(n, deadline).await.outcome
    }
}

#[tokio::test]
async fn the_schema_steps_end_sends_at_most_workers_chunks_and_each_chunks_end_the_next() {
    let rig = Rig::new(5, 2).await;
    rig.driver().dispatch(&rig.key, 2).await.expect("dispatch");
    assert_eq!(rig.sent().await, vec![1, 2]);
    assert_eq!(rig.step(1).await.status, StepStatus::Queued);
    assert!(rig.step(1).await.queued_at.is_some());
    // Nothing more while both are in flight.
    rig.driver().dispatch(&rig.key, 2).await.expect("dispatch");
    assert_eq!(rig.sent().await, Vec::<u32>::new());
    let run = rig
        .store
        .get_run(&rig.key)
        .await
        .expect("read")
        .expect("run");
    assert_eq!(run.chunks_dispatched, 2);
    // Chunk 1 ends: chunk 3 goes, only it, from the run's counts alone.
    rig.set(1, |s| s.status = StepStatus::Done).await;
    rig.store
        .increment_chunks_done(&rig.key)
        .await
        .expect("count");
    rig.driver().dispatch_next(&rig.key, 2).await.expect("next");
    assert_eq!(rig.sent().await, vec![3]);
    // While 2 and 3 are in flight, another call sends nothing.
    rig.driver().dispatch_next(&rig.key, 2).await.expect("next");
    assert_eq!(rig.sent().await, Vec::<u32>::new());
    // The rest end one by one: 4, 5, then Finalize once.
    let mut sent = Vec::new();
    for n in 2..=5 {
        rig.set(n, |s| s.status = StepStatus::Done).await;
        rig.store
            .increment_chunks_done(&rig.key)
            .await
            .expect("count");
        rig.driver().dispatch_next(&rig.key, 2).await.expect("next");
        sent.extend(rig.sent().await);
    }
    rig.driver()
        .dispatch_next(&rig.key, 2)
        .await
        .expect("again");
    sent.extend(rig.sent().await);
    assert_eq!(sent, vec![4, 5, 6]);
}

#[tokio::test]
async fn the_sweep_resends_a_lost_message_and_a_lapsed_lease_and_reports_a_stalled_run() {
    let rig = Rig::new(3, 2).await;
    rig.driver().dispatch(&rig.key, 2).await.expect("dispatch");
    assert_eq!(rig.sent().await, vec![1, 2], "both messages lost below");
    // Chunk 1 was claimed by a worker that died; chunk 2's message was never delivered.
    rig.set(1, |s| {
        s.status = StepStatus::Leased;
        s.lease_owner = Some("dead".into());
        s.lease_until = Some(rig.clock.now() + jiff::SignedDuration::from_secs(60));
    })
    .await;
    // Within the lease and the resend delay: nothing to repair.
    let swept = rig.driver().sweep(&rig.key, 2).await.expect("sweep");
    assert!(swept.resent.is_empty() && !swept.stalled, "{swept:?}");
    rig.clock
        .advance(rig.config.resend_after + Duration::from_secs(1));
    // Keep the run alive (progress), so only the steps are repaired.
    let mut run = rig
        .store
        .get_run(&rig.key)
        .await
        .expect("read")
        .expect("run");
    run.heartbeat = rig.clock.now();
    rig.store.update_run(&run).await.expect("heartbeat");
    let swept = rig.driver().sweep(&rig.key, 2).await.expect("sweep");
    assert_eq!(swept.resent, vec![1, 2]);
    assert_eq!(rig.sent().await, vec![1, 2]);
    assert_eq!(
        rig.step(1).await.lease_owner,
        None,
        "the dead holder's lease is gone"
    );
    // No progress for longer than the run lease: stalled.
    rig.clock
        .advance(rig.config.run_lease + Duration::from_secs(1));
    let swept = rig.driver().sweep(&rig.key, 2).await.expect("sweep");
    assert!(swept.stalled, "{swept:?}");
}

#[tokio::test]
async fn a_run_taken_over_sends_again_what_a_dead_process_held() {
    let rig = Rig::new(4, 2).await;
    rig.set(1, |s| s.status = StepStatus::Done).await;
    rig.set(2, |s| {
        s.status = StepStatus::Leased;
        s.lease_owner = Some("dead".into());
        s.lease_until = Some(Timestamp::MAX);
    })
    .await;
    rig.set(3, |s| s.status = StepStatus::Failed).await;
    let sent = rig
        .driver()
        .take_over(&rig.key, 2)
        .await
        .expect("take over");
    assert_eq!(sent, vec![2, 3]);
    // The two re-sent chunks fill the room: chunk 4 waits for one of them.
    assert_eq!(rig.sent().await, vec![2, 3]);
    assert_eq!(rig.step(4).await.status, StepStatus::Pending);
}
