//! The handlers on events as Lambda delivers them (JSON fixtures copied from the shapes API
//! Gateway's HTTP API and SQS send), over the local adapters: no cloud, no database.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use lambda_http::request::LambdaRequest;
use lambda_http::{Context, LambdaEvent};
use serde_json::{Value, json};
use tidemark_core::ports::{PrecheckQueue, QueueError, SystemClock};
use tidemark_lambda::api;
use tidemark_lambda::precheck::{PrecheckAnswer, PrecheckEvent, PrecheckHandler};
use tidemark_local::{LocalScheduler, LocalSecretStore, MemoryQueue, SqliteStore};
use tidemark_service::{Allowlist, Host, Ports, TaskService, WorkerConfig};

const GET_TASKS_PROD: &str = include_str!("fixtures/apigw-v2-get-tasks-prod-stage.json");
const POST_PRECHECK_DEFAULT: &str =
    include_str!("fixtures/apigw-v2-post-precheck-default-stage.json");
const SQS_BATCH: &str = include_str!("fixtures/sqs-precheck-batch.json");

#[derive(Default)]
struct RecordingQueue {
    sent: Mutex<Vec<(String, Timestamp)>>,
}

#[async_trait]
impl PrecheckQueue for RecordingQueue {
    async fn send_precheck(&self, task_id: &str, at: Timestamp) -> Result<(), QueueError> {
        self.sent
            .lock()
            .expect("queue")
            .push((task_id.to_owned(), at));
        Ok(())
    }
}

struct Local {
    service: Arc<TaskService>,
    queue: Arc<RecordingQueue>,
    _dir: tempfile::TempDir,
}

fn local() -> Local {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Arc::new(SystemClock);
    let store = SqliteStore::open(&dir.path().join("state.sqlite")).expect("store");
    let scheduler =
        LocalScheduler::open(&dir.path().join("schedules.sqlite"), clock.clone()).expect("sched");
    let secrets = LocalSecretStore::new(&dir.path().join("secrets.json"));
    let queue = Arc::new(RecordingQueue::default());
    let service = TaskService::new(
        Ports {
            store: Arc::new(store),
            secrets: Arc::new(secrets),
            scheduler: Arc::new(scheduler),
            clock,
        },
        Allowlist::parse("127.0.0.1/32").expect("allowlist"),
        Host::new(WorkerConfig::new(
            Arc::new(MemoryQueue::new(Arc::new(SystemClock), 5)),
            "test",
        ))
        .with_precheck_queue(queue.clone(), tidemark_lambda::env::PRECHECK_WINDOW),
    );
    Local {
        service,
        queue,
        _dir: dir,
    }
}

/// A fixture with some fields changed (a JSON pointer and its new value each).
fn event(fixture: &str, changes: &[(&str, Value)]) -> Value {
    let mut value: Value = serde_json::from_str(fixture).expect("a JSON fixture");
    for (pointer, new) in changes {
        *value.pointer_mut(pointer).expect(pointer) = new.clone();
    }
    value
}

async fn answer(service: &Arc<TaskService>, event: Value) -> (u64, Value) {
    let request: LambdaRequest = serde_json::from_value(event).expect("an HTTP API request");
    let app = api::http_app(Arc::clone(service));
    let response = api::answer(&app, LambdaEvent::new(request, Context::default()))
        .await
        .expect("an answer");
    let status = response["statusCode"].as_u64().expect("statusCode");
    assert_eq!(response["isBase64Encoded"], false, "{response}");
    let body = response["body"].as_str().expect("a text body");
    (status, serde_json::from_str(body).expect("a JSON body"))
}

#[tokio::test]
async fn a_named_stage_is_taken_off_the_path_before_routing() {
    let local = local();
    let (status, body) = answer(&local.service, event(GET_TASKS_PROD, &[])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "items": [] }));

    // The $default stage has no prefix: the path is routed as it is.
    let default = event(
        GET_TASKS_PROD,
        &[
            ("/rawPath", json!("/tasks")),
            ("/requestContext/http/path", json!("/tasks")),
            ("/requestContext/stage", json!("$default")),
        ],
    );
    let (status, _) = answer(&local.service, default).await;
    assert_eq!(status, 200);

    // Only the stage is taken off: a stage-like path under $default stays unrouted, and the
    // stage alone is the root.
    let unrouted = event(
        GET_TASKS_PROD,
        &[("/requestContext/stage", json!("$default"))],
    );
    let (status, body) = answer(&local.service, unrouted).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("no_route")));
    let root = event(
        GET_TASKS_PROD,
        &[
            ("/rawPath", json!("/prod/health")),
            ("/rawQueryString", json!("")),
        ],
    );
    let (status, body) = answer(&local.service, root).await;
    assert_eq!((status, body), (200, json!({ "status": "ok" })));
}

#[tokio::test]
async fn the_query_string_survives_the_stage_removal() {
    let local = local();
    let bad_limit = event(
        GET_TASKS_PROD,
        &[
            ("/rawQueryString", json!("limit=500")),
            ("/queryStringParameters", json!({ "limit": "500" })),
        ],
    );
    let (status, body) = answer(&local.service, bad_limit).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "limit");
}

#[test]
fn the_precheck_function_tells_its_two_events_apart() {
    match serde_json::from_str::<PrecheckEvent>(POST_PRECHECK_DEFAULT) {
        Ok(PrecheckEvent::Http(_)) => {}
        other => panic!("an HTTP API request: {other:?}"),
    }
    match serde_json::from_str::<PrecheckEvent>(SQS_BATCH) {
        Ok(PrecheckEvent::Queue(batch)) => assert_eq!(batch.records.len(), 2),
        other => panic!("an SQS batch: {other:?}"),
    }
    let neither = serde_json::from_str::<PrecheckEvent>(r#"{"detail-type": "Scheduled Event"}"#)
        .expect_err("neither shape");
    assert!(neither.to_string().contains("neither"), "{neither}");
    let broken =
        serde_json::from_str::<PrecheckEvent>(r#"{"Records": "x"}"#).expect_err("bad batch");
    assert!(broken.to_string().contains("not an SQS batch"), "{broken}");
}

#[tokio::test]
async fn an_http_event_through_the_precheck_handler_answers_as_the_api_does() {
    let local = local();
    let handler = PrecheckHandler::new(Arc::clone(&local.service));
    let event: PrecheckEvent = serde_json::from_str(POST_PRECHECK_DEFAULT).expect("event");
    let answer = handler
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .expect("an answer");
    let PrecheckAnswer::Http(response) = answer else {
        panic!("an HTTP answer: {answer:?}");
    };
    assert_eq!(response["statusCode"], 404, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().expect("body")).expect("JSON");
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        local.queue.sent.lock().expect("queue").is_empty(),
        "nothing is queued for a task that does not exist"
    );
}

#[tokio::test]
async fn a_batch_reports_only_the_message_that_cannot_succeed() {
    let local = local();
    let handler = PrecheckHandler::new(Arc::clone(&local.service));
    let event: PrecheckEvent = serde_json::from_str(SQS_BATCH).expect("event");
    let answer = handler
        .handle(LambdaEvent::new(event, Context::default()))
        .await
        .expect("an answer");
    // The first message's task is gone (nothing to do, done with); the second is no precheck.
    assert_eq!(
        serde_json::to_value(&answer).expect("JSON"),
        json!({ "batchItemFailures": [ { "itemIdentifier": "9b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e" } ] })
    );
}
