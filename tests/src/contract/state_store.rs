//! The state-store contract. Every store (SQLite, DynamoDB) runs these through
//! [`crate::state_store_contract!`], each case as its own test.

use std::sync::Arc;

use jiff::Timestamp;
use tidemark_core::ports::{ProgressDelta, StateStore, StoreError};
use tidemark_core::state::{
    PrecheckState, PrecheckSummary, RunKey, RunRecord, RunStatus, RunTrigger, StepKind, StepRecord,
    StepStatus, TaskRecord, TaskStatus, Watermark,
};

use crate::harness::unique_name;

/// A store under test, shared by the concurrent callers of a case.
pub type Store = Arc<dyn StateStore>;

pub use super::cursors::a_cursor_not_handed_out_for_the_listing_is_refused;
pub use super::expiry::{
    an_expired_precheck_reads_as_gone_and_watermarks_never_expire,
    expired_run_records_read_as_gone_and_records_without_an_expiry_never,
};

const SPEC: &str = r#"{
  "name": "contract",
  "source": { "host": "127.0.0.1", "user": "u", "password_env": "PW" },
  "destination": { "host": "127.0.0.1", "port": 3307, "user": "u", "password_env": "PW" },
  "policy": { "mode": "resync" },
  "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC", "start": "2026-12-01", "end": "2027-06-30" },
  "objects": [ { "database": "shop" } ]
}"#;

fn at(s: &str) -> Timestamp {
    s.parse().expect("a timestamp")
}

pub fn task(id: &str) -> TaskRecord {
    TaskRecord {
        id: id.to_owned(),
        spec: tidemark_core::parse_task_spec(SPEC).expect("the contract spec is valid"),
        status: TaskStatus::Created,
        status_reason: None,
        version: 1,
        created_at: at("2026-11-23T10:00:00Z"),
        changed_at: at("2026-11-23T10:00:00Z"),
        precheck: None,
        owned_secrets: vec![],
        last_run: None,
    }
}

pub fn run(task_id: &str, scheduled: &str) -> RunRecord {
    RunRecord {
        key: RunKey {
            task_id: task_id.to_owned(),
            scheduled_time: at(scheduled),
        },
        trigger: RunTrigger::Schedule,
        status: RunStatus::Pending,
        phase: None,
        error: None,
        created_at: at(scheduled),
        finished_at: None,
        heartbeat: at(scheduled),
        chunks_total: 0,
        chunks_done: 0,
        chunks_dispatched: 0,
        plan: serde_json::Value::Null,
        expires_at: None,
        version: 1,
    }
}

pub fn step(run: &RunKey, n: u32) -> StepRecord {
    StepRecord {
        run: run.clone(),
        n,
        kind: StepKind::Chunk,
        status: StepStatus::Pending,
        lease_owner: None,
        lease_until: None,
        attempts: 0,
        rows: 0,
        bytes: 0,
        checksum: None,
        error: None,
        payload: serde_json::json!({ "table": "shop.orders", "chunk": n }),
        started_at: Some(jiff::Timestamp::from_second(1_790_000_000).expect("time")),
        finished_at: None,
        queued_at: Some(jiff::Timestamp::from_second(1_790_000_100).expect("time")),
        expires_at: None,
        parts: Vec::new(),
        version: 1,
    }
}

pub(super) fn id() -> String {
    unique_name("task")
}

pub async fn task_create_get_and_duplicate(store: Store) {
    let t = task(&id());
    store.create_task(&t).await.expect("create");
    assert_eq!(store.get_task(&t.id).await.expect("get"), Some(t.clone()));
    let again = store.create_task(&t).await;
    assert!(
        matches!(again, Err(StoreError::Conflict { .. })),
        "{again:?}"
    );
    assert_eq!(store.get_task("no-such-task").await.expect("get"), None);
}

pub async fn task_update_is_conditional_on_version(store: Store) {
    let mut t = task(&id());
    store.create_task(&t).await.expect("create");
    t.status = TaskStatus::Prechecking;
    t.precheck = Some(PrecheckSummary {
        at: at("2026-11-23T10:05:00Z"),
        state: PrecheckState::Running,
        failed: vec![],
        warned: vec![],
    });
    let v2 = store.update_task(&t).await.expect("update at version 1");
    assert_eq!(v2, 2);
    // A writer still holding version 1 loses.
    let stale = store.update_task(&t).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    let read = store.get_task(&t.id).await.expect("get").expect("exists");
    assert_eq!(read.version, 2);
    assert_eq!(read.status, TaskStatus::Prechecking);
    let missing = store.update_task(&task("never-created")).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
}

pub async fn tasks_list_in_pages(store: Store) {
    let prefix = id();
    let ids: Vec<String> = (0..5).map(|i| format!("{prefix}_{i}")).collect();
    for i in &ids {
        store.create_task(&task(i)).await.expect("create");
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = store.list_tasks(2, next.as_deref()).await.expect("list");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|t| t.id));
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    let mine: Vec<String> = seen
        .into_iter()
        .filter(|i| i.starts_with(&prefix))
        .collect();
    assert_eq!(mine, ids, "every task once, in id order");
}

pub async fn delete_task_removes_everything_under_it(store: Store) {
    let (doomed, kept) = (task(&id()), task(&id()));
    for t in [&doomed, &kept] {
        store.create_task(t).await.expect("create");
        let r = run(&t.id, "2026-12-01T02:30:00Z");
        store.create_run(&r).await.expect("run");
        store.put_steps(&[step(&r.key, 0)]).await.expect("steps");
        store
            .add_progress(
                &r.key,
                "shop.orders",
                &ProgressDelta {
                    rows: 5,
                    ..Default::default()
                },
                None,
            )
            .await
            .expect("progress");
        store
            .put_precheck(
                &t.id,
                at("2026-11-30T00:00:00Z"),
                None,
                &serde_json::json!({"ok": true}),
            )
            .await
            .expect("precheck");
        store
            .put_watermark(&mark(&t.id, "shop.orders", "x", 0))
            .await
            .expect("mark");
    }
    store.delete_task(&doomed.id).await.expect("delete");
    store
        .delete_task(&doomed.id)
        .await
        .expect("deleting twice is fine");
    let key = run(&doomed.id, "2026-12-01T02:30:00Z").key;
    assert_eq!(store.get_task(&doomed.id).await.expect("get"), None);
    assert_eq!(store.get_run(&key).await.expect("run"), None);
    assert!(store.list_steps(&key).await.expect("steps").is_empty());
    assert!(
        store
            .list_progress(&key)
            .await
            .expect("progress")
            .is_empty()
    );
    assert_eq!(
        store.latest_precheck(&doomed.id).await.expect("precheck"),
        None
    );
    assert_eq!(
        store
            .get_watermark(&doomed.id, "shop.orders")
            .await
            .expect("mark"),
        None
    );
    // The other task is untouched.
    let other = run(&kept.id, "2026-12-01T02:30:00Z").key;
    assert!(store.get_task(&kept.id).await.expect("get").is_some());
    assert_eq!(store.list_steps(&other).await.expect("steps").len(), 1);
    assert!(
        store
            .get_watermark(&kept.id, "shop.orders")
            .await
            .expect("mark")
            .is_some()
    );
}

pub async fn latest_precheck_is_the_newest(store: Store) {
    let t = task(&id());
    store.create_task(&t).await.expect("create");
    for (time, n) in [
        ("2026-11-30T00:00:00.000001Z", 2),
        ("2026-11-30T00:00:00Z", 1),
        ("2026-11-29T23:59:59Z", 0),
    ] {
        store
            .put_precheck(&t.id, at(time), None, &serde_json::json!({ "n": n }))
            .await
            .expect("put");
    }
    let (when, report) = store
        .latest_precheck(&t.id)
        .await
        .expect("latest")
        .expect("some");
    assert_eq!(when, at("2026-11-30T00:00:00.000001Z"));
    assert_eq!(report["n"], 2);
}

pub async fn a_run_is_created_once_even_under_concurrent_triggers(store: Store) {
    let t = task(&id());
    store.create_task(&t).await.expect("create");
    let r = run(&t.id, "2026-12-01T02:30:00Z");
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (store, r) = (Arc::clone(&store), r.clone());
        handles.push(tokio::spawn(async move { store.create_run(&r).await }));
    }
    let mut created = 0;
    for h in handles {
        if h.await.expect("join").expect("create_run") {
            created += 1;
        }
    }
    assert_eq!(
        created, 1,
        "one trigger creates the run, the others find it"
    );
    assert_eq!(store.get_run(&r.key).await.expect("get"), Some(r));
}

pub async fn runs_list_newest_first_in_pages(store: Store) {
    let t = task(&id());
    store.create_task(&t).await.expect("create");
    let times = [
        "2026-12-01T02:30:00Z",
        "2026-12-03T02:30:00Z",
        "2026-12-02T02:30:00Z",
    ];
    for time in times {
        store.create_run(&run(&t.id, time)).await.expect("run");
    }
    let first = store.list_runs(&t.id, 2, None).await.expect("page 1");
    let second = store
        .list_runs(&t.id, 2, first.next.as_deref())
        .await
        .expect("page 2");
    let order: Vec<Timestamp> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|r| r.key.scheduled_time)
        .collect();
    assert_eq!(
        order,
        [
            at("2026-12-03T02:30:00Z"),
            at("2026-12-02T02:30:00Z"),
            at("2026-12-01T02:30:00Z")
        ]
    );
    assert!(first.next.is_some());
    assert_eq!(second.next, None);
}

pub async fn run_updates_are_conditional_and_chunk_counts_atomic(store: Store) {
    let t = task(&id());
    store.create_task(&t).await.expect("create");
    let mut r = run(&t.id, "2026-12-01T02:30:00Z");
    r.chunks_total = 20;
    store.create_run(&r).await.expect("run");
    let mut handles = Vec::new();
    for _ in 0..20 {
        let (store, key) = (Arc::clone(&store), r.key.clone());
        handles.push(tokio::spawn(async move {
            store.increment_chunks_done(&key).await
        }));
    }
    let mut counts = Vec::new();
    for h in handles {
        counts.push(h.await.expect("join").expect("increment"));
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=20).collect::<Vec<u32>>(),
        "each increment saw its own count"
    );
    // A writer holding the record from before the increments cannot erase them.
    r.status = RunStatus::Running;
    let stale = store.update_run(&r).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    let mut fresh = store.get_run(&r.key).await.expect("get").expect("exists");
    assert_eq!(fresh.chunks_done, 20);
    fresh.status = RunStatus::Succeeded;
    store
        .update_run(&fresh)
        .await
        .expect("update at the current version");
    let done = store.get_run(&r.key).await.expect("get").expect("exists");
    assert_eq!((done.status, done.chunks_done), (RunStatus::Succeeded, 20));
}

pub async fn steps_are_created_once_listed_in_order_and_claimed_by_one(store: Store) {
    let t = task(&id());
    let r = run(&t.id, "2026-12-01T02:30:00Z");
    store
        .put_steps(&[step(&r.key, 10), step(&r.key, 2), step(&r.key, 1)])
        .await
        .expect("put");
    let listed: Vec<u32> = store
        .list_steps(&r.key)
        .await
        .expect("list")
        .iter()
        .map(|s| s.n)
        .collect();
    assert_eq!(listed, [1, 2, 10]);

    // Two workers claim step 2 from the same read: one wins.
    let read = store
        .get_step(&r.key, 2)
        .await
        .expect("get")
        .expect("exists");
    // Every field comes back as written (the attempt's start time included).
    assert_eq!(read, step(&r.key, 2));
    let mut claims = Vec::new();
    for worker in ["a", "b"] {
        let (store, mut s) = (Arc::clone(&store), read.clone());
        claims.push(tokio::spawn(async move {
            s.status = StepStatus::Leased;
            s.lease_owner = Some(worker.to_owned());
            s.attempts += 1;
            store.update_step(&s).await
        }));
    }
    let mut won = 0;
    for c in claims {
        match c.await.expect("join") {
            Ok(_) => won += 1,
            Err(e) => assert!(e.is_conflict(), "{e:?}"),
        }
    }
    assert_eq!(won, 1);
    // Creating the steps again (a retried plan) does not reset the claimed one.
    store
        .put_steps(&[step(&r.key, 2)])
        .await
        .expect("put again");
    let after = store
        .get_step(&r.key, 2)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((after.status, after.attempts), (StepStatus::Leased, 1));
}

pub async fn progress_adds_up_under_concurrency(store: Store) {
    let r = run(&id(), "2026-12-01T02:30:00Z");
    let mut handles = Vec::new();
    for i in 0..10u64 {
        let (store, key) = (Arc::clone(&store), r.key.clone());
        handles.push(tokio::spawn(async move {
            let table = if i % 2 == 0 {
                "shop.orders"
            } else {
                "shop.customers"
            };
            let delta = ProgressDelta {
                rows: 100,
                bytes: 1000 + i,
                chunks_done: 1,
                elapsed_ms: 5,
                verified: 1,
                mismatched: 0,
            };
            store.add_progress(&key, table, &delta, None).await
        }));
    }
    for h in handles {
        h.await.expect("join").expect("add");
    }
    let progress = store.list_progress(&r.key).await.expect("list");
    let summary: Vec<(String, u64, u64, u32)> = progress
        .iter()
        .map(|p| (p.table.clone(), p.rows, p.bytes, p.chunks_done))
        .collect();
    assert_eq!(
        summary,
        [
            ("shop.customers".to_owned(), 500, 5025, 5),
            ("shop.orders".to_owned(), 500, 5020, 5)
        ]
    );
}

fn mark(task_id: &str, table: &str, value: &str, version: u64) -> Watermark {
    Watermark {
        task_id: task_id.to_owned(),
        table: table.to_owned(),
        value: value.to_owned(),
        updated_at: at("2026-12-01T02:40:00Z"),
        version,
    }
}

pub async fn watermarks_keep_full_precision_and_are_conditional(store: Store) {
    let t = id();
    assert_eq!(
        store.get_watermark(&t, "shop.orders").await.expect("get"),
        None
    );
    let value = "2026-12-01 02:29:55.123456";
    assert_eq!(
        store
            .put_watermark(&mark(&t, "shop.orders", value, 0))
            .await
            .expect("new"),
        1
    );
    let dup = store
        .put_watermark(&mark(&t, "shop.orders", "2027-01-01 00:00:00", 0))
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict { .. })), "{dup:?}");
    let read = store
        .get_watermark(&t, "shop.orders")
        .await
        .expect("get")
        .expect("some");
    assert_eq!((read.value.as_str(), read.version), (value, 1));
    let next = "2026-12-02 02:29:55.000001";
    assert_eq!(
        store
            .put_watermark(&mark(&t, "shop.orders", next, 1))
            .await
            .expect("advance"),
        2
    );
    let stale = store
        .put_watermark(&mark(&t, "shop.orders", value, 1))
        .await;
    assert!(
        matches!(stale, Err(StoreError::Conflict { .. })),
        "{stale:?}"
    );
    let read = store
        .get_watermark(&t, "shop.orders")
        .await
        .expect("get")
        .expect("some");
    assert_eq!(read.value, next);
}

/// Expands to one `#[tokio::test]` per contract case, each with a store from `$make` (an async
/// expression giving an `Arc<dyn StateStore>`).
#[macro_export]
macro_rules! state_store_contract {
    ($make:expr) => {
        $crate::state_store_contract!(@cases $make;
            task_create_get_and_duplicate,
            task_update_is_conditional_on_version,
            tasks_list_in_pages,
            delete_task_removes_everything_under_it,
            latest_precheck_is_the_newest,
            a_run_is_created_once_even_under_concurrent_triggers,
            runs_list_newest_first_in_pages,
            a_cursor_not_handed_out_for_the_listing_is_refused,
            run_updates_are_conditional_and_chunk_counts_atomic,
            steps_are_created_once_listed_in_order_and_claimed_by_one,
            progress_adds_up_under_concurrency,
            watermarks_keep_full_precision_and_are_conditional,
            expired_run_records_read_as_gone_and_records_without_an_expiry_never,
            an_expired_precheck_reads_as_gone_and_watermarks_never_expire);
    };
    (@cases $make:expr; $($case:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let store = $make.await;
            $crate::contract::state_store::$case(store).await;
        }
    )+};
}
