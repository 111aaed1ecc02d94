//! `channel.table_workers` against real servers: its default follows the destination's
//! `innodb_autoinc_lock_mode` (the stack's MariaDB at 1, a private one started at 2), a capped
//! table never has more chunks in flight than its cap while other tables' go, and the precheck
//! suggests mode 2.

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::json;
use tidemark_core::ports::{StateStore, SystemClock};
use tidemark_core::precheck::{CheckStatus, ids};
use tidemark_core::state::{RunKey, StepKind, StepRecord};
use tidemark_local::SqliteStore;
use tidemark_service::cycle::CycleInput;
use tidemark_service::run_cycle;
use tidemark_tests::harness::{PrivateServer, Server, destination, source, unique_name};

use crate::policy_support::rows_hash;
use crate::precheck::{assert_check, precheck};

/// `ai` (an AUTO_INCREMENT key) and `plain`, about 3 MB each: several 1 MB chunks.
async fn source_db() -> String {
    let db = unique_name("tw_src");
    let mut sql = vec![format!("CREATE DATABASE `{db}`")];
    for (table, key) in [("ai", "BIGINT AUTO_INCREMENT"), ("plain", "BIGINT")] {
        sql.push(format!(
            "CREATE TABLE `{db}`.{table} (id {key} PRIMARY KEY, body VARCHAR(200) NOT NULL)"
        ));
        sql.push(format!(
            "INSERT INTO `{db}`.{table} SELECT seq, REPEAT(CHAR(65 + seq % 26), 190) \
             FROM `{db}`.seq_1_to_15000"
        ));
    }
    let refs: Vec<&str> = sql.iter().map(String::as_str).collect();
    source().exec(&refs).await;
    db
}

fn spec_json(db: &str, dst: &Server, table_workers: Option<u32>) -> serde_json::Value {
    let mut channel = json!({ "workers": 3, "chunk_mb": 1 });
    if let Some(n) = table_workers {
        channel["table_workers"] = json!(n);
    }
    json!({
        "name": "table-workers",
        "source": source().endpoint_json(),
        "destination": dst.endpoint_json(),
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-11-30" },
        "objects": [ { "database": db } ],
        "channel": channel
    })
}

/// One resync cycle to `dst`; the run's record plan and its chunk steps.
async fn cycle(spec: &serde_json::Value, dst: &Server) -> (serde_json::Value, Vec<StepRecord>) {
    let spec = tidemark_core::parse_task_spec(&spec.to_string()).expect("spec");
    let store = SqliteStore::in_memory().expect("store");
    let at: Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    run_cycle(
        &store,
        // The real clock: the steps' start and end times say which chunks overlapped.
        &SystemClock,
        CycleInput::with_passwords(
            "tw",
            &spec,
            at,
            tidemark_core::state::RunTrigger::Schedule,
            (source().password().clone(), dst.password().clone()),
        ),
        std::sync::Arc::new(|_| {}),
    )
    .await
    .expect("the cycle succeeds");
    let key = RunKey {
        task_id: "tw".into(),
        scheduled_time: at,
    };
    let run = store.get_run(&key).await.expect("read").expect("run");
    let steps = store.list_steps(&key).await.expect("steps");
    (
        run.plan,
        steps
            .into_iter()
            .filter(|s| s.kind == StepKind::Chunk)
            .collect(),
    )
}

/// The most chunks of `table` whose copies overlapped in time.
fn most_at_once(steps: &[StepRecord], table: &str) -> usize {
    let spans: Vec<(Timestamp, Timestamp)> = steps
        .iter()
        .filter(|s| s.payload["table"] == table)
        .filter_map(|s| Some((s.started_at?, s.finished_at?)))
        .collect();
    assert!(spans.len() >= 2, "{table} was not copied in several chunks");
    spans
        .iter()
        .map(|(start, _)| {
            spans
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn same_rows(db: &str, dst: &Server) {
    for table in ["ai", "plain"] {
        assert_eq!(
            rows_hash(dst, db, table, "id, body").await,
            rows_hash(&source(), db, table, "id, body").await,
            "{table}"
        );
    }
}

#[tokio::test]
async fn the_default_cap_follows_the_destinations_autoinc_lock_mode() {
    let db = source_db().await;
    let (ai, plain) = (format!("{db}.ai"), format!("{db}.plain"));

    // The stack's MariaDB: mode 1. The AUTO_INCREMENT table goes one chunk at a time.
    let (plan, steps) = cycle(&spec_json(&db, &destination(), None), &destination()).await;
    assert_eq!(plan["autoinc_lock_mode"], 1, "{plan}");
    assert_eq!(plan["table_workers"], json!({ ai.clone(): 1 }), "{plan}");
    assert_eq!(most_at_once(&steps, &ai), 1);
    same_rows(&db, &destination()).await;

    // A destination at mode 2: nothing is capped.
    let private = PrivateServer::start("tw_mode2", &["--innodb-autoinc-lock-mode=2"]);
    let (plan, _) = cycle(&spec_json(&db, &private.server, None), &private.server).await;
    assert_eq!(plan["autoinc_lock_mode"], 2, "{plan}");
    assert!(plan.get("table_workers").is_none(), "{plan}");
    same_rows(&db, &private.server).await;

    // Set in the spec, the cap holds for every table, whatever the mode.
    let (plan, steps) = cycle(&spec_json(&db, &private.server, Some(1)), &private.server).await;
    let caps: HashMap<String, u32> =
        serde_json::from_value(plan["table_workers"].clone()).expect("caps");
    assert_eq!(caps, HashMap::from([(ai.clone(), 1), (plain.clone(), 1)]));
    assert_eq!(most_at_once(&steps, &ai), 1);
    assert_eq!(most_at_once(&steps, &plain), 1);
    same_rows(&db, &private.server).await;

    // The precheck suggests mode 2 where the binary log allows it (here: none).
    let report = precheck(
        &tidemark_core::parse_task_spec(&spec_json(&db, &destination(), None).to_string())
            .expect("spec"),
    )
    .await;
    assert_check(
        &report,
        ids::AUTOINC_LOCK_MODE,
        CheckStatus::Warn,
        &[
            &format!("`{ai}`"),
            "one chunk at a time",
            "config file and restart",
        ],
    );
    destination()
        .exec(&[&format!("DROP DATABASE `{db}`")])
        .await;
    source().exec(&[&format!("DROP DATABASE `{db}`")]).await;
}
