//! The run context's warnings and plan record.

use tidemark_core::ports::SystemClock;
use tidemark_local::MemoryStore;

use super::*;

#[tokio::test]
async fn a_run_keeps_its_first_warnings_and_counts_the_rest_under_the_item_limit() {
    let spec = serde_json::json!({
        "name": "t",
        "source": { "host": "127.0.0.1", "port": 1, "user": "u", "password": "p" },
        "destination": { "host": "127.0.0.1", "port": 2, "user": "u", "password": "p" },
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-11-30" },
        "objects": [ { "database": "shop" } ]
    });
    let spec = tidemark_core::parse_task_spec(&spec.to_string()).expect("spec");
    let (store, clock) = (MemoryStore::new(), SystemClock);
    let key = RunKey {
        task_id: "t".into(),
        scheduled_time: clock.now(),
    };
    let run = new_run(
        &key,
        RunTrigger::Manual,
        RunStatus::Running,
        clock.now(),
        None,
    );
    assert!(store.create_run(&run).await.expect("run"));
    let input = CycleInput::with_passwords(
        "t",
        &spec,
        key.scheduled_time,
        RunTrigger::Manual,
        (SecretString::from("p"), SecretString::from("p")),
    );
    let logged = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&logged);
    let events: Events = Arc::new(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let mut ctx = Ctx::new(&store, &clock, &key, &input, &events)
        .await
        .expect("ctx");
    // A thousand tables without a usable key, each with its warning (~250 bytes).
    for i in 0..1000 {
        ctx.warn(format!(
            "table `{}`.`{}` has no usable primary or unique NOT NULL key: it is copied as \
             one stream, which must finish in one go; add a primary key to split it",
            "d".repeat(64),
            format!("t{i}_").repeat(12)
        ));
    }
    ctx.save_record().await.expect("saved");
    let stored = store.get_run(&key).await.expect("read").expect("run");
    assert!(serde_json::to_string(&stored).expect("json").len() < 64 * 1024);
    let warnings = stored.plan["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), MAX_RECORDED_WARNINGS + 1);
    let last = warnings.last().and_then(|w| w.as_str()).unwrap_or_default();
    assert!(last.starts_with("900 more warnings"), "{last}");
    assert_eq!(logged.load(std::sync::atomic::Ordering::Relaxed), 1000);
    // The next step reads them back as they were, and keeps counting.
    let mut next = Ctx::new(&store, &clock, &key, &input, &events)
        .await
        .expect("ctx");
    assert_eq!(next.warnings.len(), MAX_RECORDED_WARNINGS);
    next.warn("one more".into());
    next.save_record().await.expect("saved");
    let stored = store.get_run(&key).await.expect("read").expect("run");
    let warnings = stored.plan["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .last()
            .and_then(|w| w.as_str())
            .unwrap_or_default()
            .starts_with("901 more"),
        "{warnings:?}"
    );
}
