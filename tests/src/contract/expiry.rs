//! The state-store contract on expiry: a run's records (the run, its steps and progress) and
//! precheck reports read as gone once past their `expires_at`, whether or not the store deleted
//! them; records without one (tasks, watermarks, records of earlier versions) never expire.
//! Run by [`crate::state_store_contract!`] with the other cases.

use jiff::{SignedDuration, Timestamp};
use tidemark_core::ports::ProgressDelta;
use tidemark_core::state::{RunKey, RunRecord, Watermark};

use super::state_store::{Store, id, run, step, task};

fn expiring(task_id: &str, scheduled: &str, expires_at: Option<Timestamp>) -> RunRecord {
    RunRecord {
        expires_at,
        ..run(task_id, scheduled)
    }
}

/// Writes a run with its expiry, a step and a table's progress under it.
async fn run_with_records(store: &Store, run: &RunRecord) {
    assert!(store.create_run(run).await.expect("create the run"));
    let mut first = step(&run.key, 0);
    first.expires_at = run.expires_at;
    store.put_steps(&[first]).await.expect("the step");
    let delta = ProgressDelta {
        rows: 3,
        chunks_done: 1,
        ..ProgressDelta::default()
    };
    store
        .add_progress(&run.key, "shop.orders", &delta, run.expires_at)
        .await
        .expect("the progress");
}

/// Every run of `task_id`, following the cursors (a page may come out short where expired runs
/// were, but the listing goes on to the end).
async fn all_runs(store: &Store, task_id: &str) -> Vec<RunKey> {
    let (mut keys, mut next) = (Vec::new(), None::<String>);
    for _ in 0..10 {
        let page = store
            .list_runs(task_id, 1, next.as_deref())
            .await
            .expect("a page");
        keys.extend(page.items.into_iter().map(|r| r.key));
        next = page.next;
        if next.is_none() {
            return keys;
        }
    }
    panic!("the listing did not end");
}

pub async fn expired_run_records_read_as_gone_and_records_without_an_expiry_never(store: Store) {
    let t = task(&id());
    store.create_task(&t).await.expect("the task");
    let now = Timestamp::now();
    let hour = SignedDuration::from_hours(1);
    let live = expiring(&t.id, "2026-12-03T02:30:00Z", Some(now + hour));
    let gone = expiring(&t.id, "2026-12-02T02:30:00Z", Some(now - hour));
    let old = expiring(&t.id, "2026-12-01T02:30:00Z", None);
    for r in [&live, &gone, &old] {
        run_with_records(&store, r).await;
    }

    assert_eq!(store.get_run(&gone.key).await.expect("get"), None);
    assert_eq!(store.get_step(&gone.key, 0).await.expect("get"), None);
    assert!(store.list_steps(&gone.key).await.expect("list").is_empty());
    assert!(
        store
            .list_progress(&gone.key)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        all_runs(&store, &t.id).await,
        [live.key.clone(), old.key.clone()],
        "the expired run is not listed"
    );

    for kept in [&live, &old] {
        let read = store.get_run(&kept.key).await.expect("get").expect("shown");
        // Epoch seconds: the expiry comes back to the second.
        let second = |at: Option<Timestamp>| at.map(Timestamp::as_second);
        assert_eq!(second(read.expires_at), second(kept.expires_at));
        let steps = store.list_steps(&kept.key).await.expect("steps");
        assert_eq!(steps.len(), 1);
        assert_eq!(second(steps[0].expires_at), second(kept.expires_at));
        assert_eq!(
            store.list_progress(&kept.key).await.expect("list")[0].rows,
            3
        );
    }
    // An update keeps the expiry set at creation.
    let mut read = store.get_run(&live.key).await.expect("get").expect("shown");
    read.chunks_total = 4;
    store.update_run(&read).await.expect("update");
    let again = store.get_run(&live.key).await.expect("get").expect("shown");
    assert_eq!(again.expires_at, read.expires_at);
    // The task, older than every run, never expires.
    assert!(store.get_task(&t.id).await.expect("get").is_some());
    // A delete removes expired records too.
    store.delete_task(&t.id).await.expect("delete");
    assert!(all_runs(&store, &t.id).await.is_empty());
}

pub async fn an_expired_precheck_reads_as_gone_and_watermarks_never_expire(store: Store) {
    let t = task(&id());
    store.create_task(&t).await.expect("the task");
    let now = Timestamp::now();
    let hour = SignedDuration::from_hours(1);
    let report = serde_json::json!({ "checks": [] });
    let (older, newer) = (now - hour * 2, now - hour);
    store
        .put_precheck(&t.id, older, Some(now + hour), &report)
        .await
        .expect("a precheck");
    let (at, _) = store
        .latest_precheck(&t.id)
        .await
        .expect("latest")
        .expect("shown");
    assert_eq!(at, older);
    // The newest report is past its expiry: there is no latest report, even though an older one
    // (kept longer, under a retention since shortened) has not expired.
    store
        .put_precheck(
            &t.id,
            newer,
            Some(now - SignedDuration::from_secs(1)),
            &report,
        )
        .await
        .expect("a precheck");
    assert_eq!(store.latest_precheck(&t.id).await.expect("latest"), None);

    let mark = Watermark {
        task_id: t.id.clone(),
        table: "shop.orders".into(),
        value: "2026-12-01 02:30:00.000001".into(),
        updated_at: Timestamp::UNIX_EPOCH,
        version: 0,
    };
    store.put_watermark(&mark).await.expect("a watermark");
    let read = store
        .get_watermark(&t.id, "shop.orders")
        .await
        .expect("get")
        .expect("a watermark never expires");
    assert_eq!(read.value, mark.value);
}
