//! Runs driven one step per message, as the Lambda workers drive them, on the real adapters:
//! state in DynamoDB and steps in SQS (the emulator), passwords in Secrets Manager, the two real
//! servers. Duplicate deliveries, two workers racing for one step, a deadline too close to start
//! a step, triggers delivered three times at once, cancellation with chunks in flight, and a
//! message in the dead-letter queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client as SqsClient;
use aws_sdk_sqs::types::Message;
use tidemark_aws::{
    DynamoDbStore, EventBridgeScheduler, SchedulerConfig, SecretsManagerStore, SqsStepQueue,
    create_table,
};
use tidemark_core::ports::{StepMessage, SystemClock};
use tidemark_core::state::{RunKey, RunStatus, RunTrigger, StepKind, StepStatus};
use tidemark_service::{
    Allowlist, CycleStart, Host, Ports, StepOutcome, TaskService, WorkerConfig,
};
use tidemark_tests::harness::aws::sdk_config;
use tidemark_tests::harness::{Server, destination, source, unique_name};

use crate::policy_support::{count, rows_hash};

struct Rig {
    service: Arc<TaskService>,
    sqs: SqsClient,
    queue_url: String,
}

async fn rig(step_budget: Duration) -> Rig {
    rig_with(|worker| worker.driver.step_budget = step_budget).await
}

/// A rig over a new table, its worker set up by `configure`.
async fn rig_with(configure: impl FnOnce(&mut WorkerConfig)) -> Rig {
    let table = unique_name("state");
    create_table(&aws_sdk_dynamodb::Client::new(&sdk_config().await), &table)
        .await
        .expect("create the table");
    rig_on(&table, configure).await
}

/// A rig over an existing table.
async fn rig_on(table: &str, configure: impl FnOnce(&mut WorkerConfig)) -> Rig {
    let config = sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let sqs = SqsClient::new(&config);
    let queue_url = sqs
        .create_queue()
        .queue_name(unique_name("steps"))
        .send()
        .await
        .expect("create the queue")
        .queue_url
        .expect("a queue URL");
    let scheduler_client = aws_sdk_scheduler::Client::new(&config);
    let group = unique_name("group");
    scheduler_client
        .create_schedule_group()
        .name(&group)
        .send()
        .await
        .expect("create the schedule group");
    let scheduler = EventBridgeScheduler::new(
        scheduler_client,
        SchedulerConfig {
            group_name: group,
            target_arn: "arn:aws:lambda:us-east-1:123456789012:function:run-cycle".into(),
            role_arn: "arn:aws:iam::123456789012:role/scheduler".into(),
            dead_letter_arn: "arn:aws:sqs:us-east-1:123456789012:dead".into(),
            maximum_retry_attempts: 2,
            maximum_event_age_seconds: 3600,
        },
    );
    let mut worker = WorkerConfig::new(
        Arc::new(SqsStepQueue::new(sqs.clone(), &queue_url)),
        "test-worker",
    );
    configure(&mut worker);
    let service = TaskService::new(
        Ports {
            store: Arc::new(DynamoDbStore::new(dynamodb, table)),
            secrets: Arc::new(SecretsManagerStore::new(
                aws_sdk_secretsmanager::Client::new(&config),
                "tidemark/test/",
            )),
            scheduler: Arc::new(scheduler),
            clock: Arc::new(SystemClock),
        },
        Allowlist::parse("127.0.0.1/32,::1").expect("allowlist"),
        Host::new(worker),
    );
    Rig {
        service,
        sqs,
        queue_url,
    }
}

/// A database with `tables` tables of `rows` rows each (about 200 bytes a row).
async fn source_db(server: &Server, tables: usize, rows: u64) -> String {
    let db = unique_name("steps");
    let mut sql = vec![format!("CREATE DATABASE `{db}`"), format!("USE `{db}`")];
    for t in 0..tables {
        sql.push(format!(
            "CREATE TABLE `{db}`.t{t} (id BIGINT PRIMARY KEY, body VARCHAR(200), n DOUBLE NULL, \
             KEY n (n))"
        ));
        sql.push(format!(
            "INSERT INTO `{db}`.t{t} SELECT seq * 3, REPEAT(CHAR(65 + seq % 26), 180), \
             IF(seq % 7 = 0, NULL, seq / 7) FROM seq_1_to_{rows}"
        ));
    }
    let refs: Vec<&str> = sql.iter().map(String::as_str).collect();
    server.exec(&refs).await;
    db
}

fn task_json(source: &Server, db: &str, policy: serde_json::Value) -> String {
    serde_json::json!({
        "name": "queue-driven",
        "source": source.endpoint_json(),
        "destination": destination().endpoint_json(),
        "policy": policy,
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-11-30" },
        "objects": [ { "database": db } ],
        "channel": { "workers": 2, "chunk_mb": 1 }
    })
    .to_string()
}

/// What the pump saw.
#[derive(Debug, Default)]
struct Pumped {
    deliveries: u32,
    ran: u32,
    postponed: u32,
    ignored: u32,
}

/// Up to `max` step messages from the queue, waiting up to `wait` seconds for the first.
async fn receive(rig: &Rig, max: i32, wait: i32) -> Vec<Message> {
    rig.sqs
        .receive_message()
        .queue_url(&rig.queue_url)
        .max_number_of_messages(max)
        .wait_time_seconds(wait)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default()
}

/// The step a message carries.
fn step_of(message: &Message) -> StepMessage {
    serde_json::from_str(message.body.as_deref().unwrap_or_default()).expect("a step message")
}

/// Deletes a handled message, as Lambda's event source mapping does.
async fn delete(rig: &Rig, message: Message) {
    rig.sqs
        .delete_message()
        .queue_url(&rig.queue_url)
        .receipt_handle(message.receipt_handle.unwrap_or_default())
        .send()
        .await
        .expect("delete");
}

/// Hands a message's step to `run_step` with a minute to go.
async fn handle(rig: &Rig, message: &Message) -> StepOutcome {
    rig.service
        .run_step(
            &step_of(message),
            Some(Instant::now() + Duration::from_secs(60)),
        )
        .await
        .expect("a step never errors on these servers")
}

impl Pumped {
    fn count(&mut self, outcome: StepOutcome) {
        self.deliveries += 1;
        match outcome {
            StepOutcome::Ran => self.ran += 1,
            StepOutcome::Postponed(_) => self.postponed += 1,
            StepOutcome::Ignored(_) => self.ignored += 1,
        }
    }
}

/// Takes step messages from the queue and hands them to `run_step` until the run ends: every
/// third message is delivered twice at once (two workers racing for it), every fifth with a
/// deadline too close to start a step.
async fn pump(rig: &Rig, key: &RunKey, limit: Duration) -> Pumped {
    let started = Instant::now();
    let mut seen = Pumped::default();
    let mut n = 0u32;
    while started.elapsed() < limit {
        let run = rig
            .service
            .ports()
            .store
            .get_run(key)
            .await
            .expect("read the run")
            .expect("the run exists");
        if run.status.is_final() {
            return seen;
        }
        for message in receive(rig, 10, 1).await {
            n += 1;
            let step = step_of(&message);
            let deadline = if n.is_multiple_of(5) {
                Instant::now() + Duration::from_millis(100)
            } else {
                Instant::now() + Duration::from_secs(60)
            };
            let outcomes = if n.is_multiple_of(3) {
                let (a, b) = tokio::join!(
                    rig.service.run_step(&step, Some(deadline)),
                    rig.service.run_step(&step, Some(deadline))
                );
                vec![a, b]
            } else {
                vec![rig.service.run_step(&step, Some(deadline)).await]
            };
            for outcome in outcomes {
                seen.count(outcome.expect("a step never errors on these servers"));
            }
            delete(rig, message).await;
        }
    }
    panic!("the run did not end within {limit:?}: {seen:?}");
}

/// Creates a task (the cycle trigger needs no precheck: `start` checks it, tested through the
/// API elsewhere).
async fn create_task(rig: &Rig, body: &str) -> String {
    rig.service.create(body).await.expect("create the task").id
}

/// Hands every message left in the queue to `run_step` until none comes for two seconds.
async fn drain(rig: &Rig) -> Pumped {
    let mut seen = Pumped::default();
    loop {
        let received = receive(rig, 10, 2).await;
        if received.is_empty() {
            return seen;
        }
        for message in received {
            seen.count(handle(rig, &message).await);
            delete(rig, message).await;
        }
    }
}

#[tokio::test]
async fn a_run_driven_by_queue_messages_copies_exactly_through_duplicates_and_deadlines() {
    let (src, dst) = (source(), destination());
    let db = source_db(&src, 2, 100_000).await;
    let rig = rig(Duration::from_secs(1)).await;
    let id = create_task(
        &rig,
        &task_json(&src, &db, serde_json::json!({"mode": "resync"})),
    )
    .await;

    // The same scheduled time, three times at once: one run.
    let at: jiff::Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    let (a, b, c) = tokio::join!(
        rig.service.begin_cycle(&id, at, RunTrigger::Schedule),
        rig.service.begin_cycle(&id, at, RunTrigger::Schedule),
        rig.service.begin_cycle(&id, at, RunTrigger::Schedule)
    );
    let starts = [
        a.expect("trigger"),
        b.expect("trigger"),
        c.expect("trigger"),
    ];
    let started = starts
        .iter()
        .filter(|s| matches!(s, CycleStart::Started(_)))
        .count();
    assert_eq!(started, 1, "{starts:?}");
    assert!(
        starts
            .iter()
            .all(|s| matches!(s, CycleStart::Started(_) | CycleStart::Duplicate(_))),
        "{starts:?}"
    );
    let key = RunKey {
        task_id: id.clone(),
        scheduled_time: at,
    };
    let runs = rig
        .service
        .list_runs(&id, Some(10), None)
        .await
        .expect("runs");
    assert_eq!(runs.items.len(), 1);

    let seen = pump(&rig, &key, Duration::from_secs(240)).await;
    let run = rig
        .service
        .ports()
        .store
        .get_run(&key)
        .await
        .expect("read")
        .expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?} {seen:?}", run.error);
    assert!(run.chunks_total >= 5, "{} chunks", run.chunks_total);
    assert_eq!(run.chunks_done, run.chunks_total);
    assert!(seen.ran >= 5, "{seen:?}");
    assert!(seen.postponed >= 1, "no step was postponed: {seen:?}");
    assert!(seen.ignored >= 1, "no duplicate was ignored: {seen:?}");

    // Every chunk step done exactly once in effect: the rows add up.
    let steps = rig
        .service
        .ports()
        .store
        .list_steps(&key)
        .await
        .expect("steps");
    let chunk_rows: u64 = steps
        .iter()
        .filter(|s| s.kind == StepKind::Chunk)
        .inspect(|s| assert_eq!(s.status, StepStatus::Done, "step {}", s.n))
        .map(|s| s.rows)
        .sum();
    assert_eq!(chunk_rows, 200_000);
    // The steps run in number order, largest estimate first: the walks' short last chunks (one
    // per part: each table's key is walked in two) come at the end, estimated by the server
    // (EXPLAIN's index dives: about twice the rows here, never a full chunk).
    let estimates: Vec<u64> = steps
        .iter()
        .filter(|s| s.kind == StepKind::Chunk)
        .map(|s| {
            s.payload["chunk"]["estimated_rows"]
                .as_u64()
                .expect("estimate")
        })
        .collect();
    assert!(
        estimates.windows(2).all(|w| w[0] >= w[1]),
        "not largest first: {estimates:?}"
    );
    let full = estimates[0];
    let short = estimates.iter().filter(|&&e| e < full).count();
    assert!((1..=4).contains(&short), "{estimates:?}");
    for t in ["t0", "t1"] {
        assert_eq!(
            rows_hash(&src, &db, t, "id, body, HEX(n)").await,
            rows_hash(&dst, &db, t, "id, body, HEX(n)").await,
            "{t}"
        );
    }
    // The swap left no shadow or retired table behind.
    let leftovers = count(
        &dst,
        &format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}' \
             AND TABLE_NAME NOT IN ('t0', 't1')"
        ),
    )
    .await;
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn a_step_in_the_dead_letter_queue_fails_its_run_and_stops_the_task_under_stop() {
    let src = source();
    let db = source_db(&src, 1, 1_000).await;
    let rig = rig(Duration::from_secs(1)).await;
    let mut spec: serde_json::Value = serde_json::from_str(&task_json(
        &src,
        &db,
        serde_json::json!({"mode": "multi_replica"}),
    ))
    .expect("json");
    spec["failure_policy"] = "stop".into();
    let id = create_task(&rig, &spec.to_string()).await;
    let at: jiff::Timestamp = "2026-12-01T02:30:00Z".parse().expect("time");
    rig.service
        .begin_cycle(&id, at, RunTrigger::Schedule)
        .await
        .expect("trigger");
    let key = RunKey {
        task_id: id.clone(),
        scheduled_time: at,
    };
    rig.service
        .dead_letter(&StepMessage {
            run: key.clone(),
            step: 0,
        })
        .await
        .expect("dead letter");
    let run = rig
        .service
        .ports()
        .store
        .get_run(&key)
        .await
        .expect("read")
        .expect("run");
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(error.contains("dead-letter queue"), "{error}");
    let task = rig.service.get(&id).await.expect("task");
    assert_eq!(
        serde_json::to_value(task.status).expect("status"),
        "failed",
        "{:?}",
        task.status_reason
    );
    // The run's own message, delivered late, does nothing.
    let late = drain(&rig).await;
    assert_eq!(late.deliveries, 1, "{late:?}");
    assert_eq!(late.ran, 0, "{late:?}");
}

/// Hands one message from the queue to `run_step`; `None` when none came.
async fn drain_one(rig: &Rig) -> Option<StepOutcome> {
    let message = receive(rig, 1, 2).await.into_iter().next()?;
    let outcome = handle(rig, &message).await;
    delete(rig, message).await;
    Some(outcome)
}

mod batches;
mod cancel;
mod compat;
mod dispatch;
mod pools;
