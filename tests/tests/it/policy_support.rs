//! Helpers of the policy tests: a task spec over the stack's servers, one cycle at a fixed time
//! on an in-memory store, and row hashes to compare tables.

use std::sync::Arc;

use jiff::Timestamp;
use tidemark_core::TaskSpec;
use tidemark_core::ports::Clock;
use tidemark_core::state::RunTrigger;
use tidemark_local::SqliteStore;
use tidemark_service::cycle::{CycleEvent, CycleInput, CycleReport};
use tidemark_service::{ServiceError, run_cycle};
use tidemark_tests::harness::{Server, destination};

/// A clock that says what the test tells it.
pub struct FixedClock(pub Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

pub fn spec(
    source: &Server,
    policy: serde_json::Value,
    objects: serde_json::Value,
    time_zone: &str,
) -> TaskSpec {
    let json = serde_json::json!({
        "name": "policy-test",
        "source": source.endpoint_json(),
        "destination": destination().endpoint_json(),
        "policy": policy,
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": time_zone,
                      "start": "2026-12-01", "end": "2027-11-30" },
        "objects": objects,
        "channel": { "workers": 2, "chunk_mb": 1 }
    });
    match tidemark_core::parse_task_spec(&json.to_string()) {
        Ok(spec) => spec,
        Err(e) => panic!("the test's spec does not parse: {e}"),
    }
}

/// Runs one cycle of `spec` scheduled at `at` (RFC 3339), with `on_event` seeing its events.
pub async fn cycle_with(
    store: &SqliteStore,
    task_id: &str,
    spec: &TaskSpec,
    source: &Server,
    at: &str,
    on_event: Arc<dyn Fn(CycleEvent) + Send + Sync>,
) -> Result<CycleReport, ServiceError> {
    let scheduled: Timestamp = at.parse().expect("an RFC 3339 time");
    let clock = FixedClock(scheduled);
    run_cycle(
        store,
        &clock,
        CycleInput::with_passwords(
            task_id,
            spec,
            scheduled,
            RunTrigger::Schedule,
            (source.password().clone(), destination().password().clone()),
        ),
        on_event,
    )
    .await
}

pub async fn cycle(
    store: &SqliteStore,
    task_id: &str,
    spec: &TaskSpec,
    source: &Server,
    at: &str,
) -> Result<CycleReport, ServiceError> {
    cycle_with(store, task_id, spec, source, at, Arc::new(|_| {})).await
}

pub use tidemark_tests::harness::fixtures::rows_hash;

pub async fn count(server: &Server, sql: &str) -> u64 {
    server
        .query_one(sql)
        .await
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn rows_copied(report: &CycleReport) -> u64 {
    report.tables.iter().map(|t| t.rows).sum()
}
