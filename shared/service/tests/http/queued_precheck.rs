//! Prechecks through a queue (as on Lambda): POST sends, a delivery runs it once, GET answers
//! 202 for the window, and an old or repeated delivery never touches a newer report.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hyper::StatusCode;
use jiff::Timestamp;
use serde_json::json;
use tidemark_core::ports::{PrecheckQueue, QueueError};
use tidemark_service::QueuedPrecheck;
use tidemark_tests::harness::unique_name;

use crate::helpers::{Api, drop_databases, sample, spec};

const WINDOW: Duration = Duration::from_secs(360);

/// A queue that keeps what it is sent, or refuses it.
#[derive(Default)]
struct FakeQueue {
    sent: Mutex<Vec<(String, Timestamp)>>,
    refuse: AtomicBool,
}

impl FakeQueue {
    fn sent(&self) -> Vec<(String, Timestamp)> {
        self.sent.lock().expect("queue").clone()
    }
}

#[async_trait]
impl PrecheckQueue for FakeQueue {
    async fn send_precheck(&self, task_id: &str, at: Timestamp) -> Result<(), QueueError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(QueueError::Backend {
                detail: "SendMessage: AWS.SimpleQueueService.NonExistentQueue: gone".into(),
                retryable: false,
            });
        }
        self.sent
            .lock()
            .expect("queue")
            .push((task_id.to_owned(), at));
        Ok(())
    }
}

async fn queued_api() -> (Api, Arc<FakeQueue>) {
    let queue = Arc::new(FakeQueue::default());
    let sender: Arc<dyn PrecheckQueue> = queue.clone();
    let api = Api::start_with(|host| host.with_precheck_queue(sender, WINDOW)).await;
    (api, queue)
}

async fn task(api: &Api, tag: &str) -> (String, String, String) {
    let db = unique_name(tag);
    let target = format!("{db}_dw");
    sample(&db, 20).await;
    let id = api.create(&spec(&db, &target)).await;
    (id, db, target)
}

async fn post_precheck(api: &Api, id: &str) -> (StatusCode, serde_json::Value) {
    api.post(&format!("/tasks/{id}/precheck"), &json!({})).await
}

/// What the queue's consumer does with a delivery of the precheck started at `at`.
async fn deliver(api: &Api, id: &str, at: Timestamp) -> QueuedPrecheck {
    api.service
        .run_queued_precheck(id, at)
        .await
        .expect("a delivery is handled")
}

#[tokio::test]
async fn a_queued_precheck_answers_202_until_its_delivery_runs_it_once() {
    let (api, queue) = queued_api().await;
    let (id, db, target) = task(&api, "queued_pc").await;

    let (status, body) = post_precheck(&api, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "prechecking");
    let sent = queue.sent();
    assert_eq!(sent.len(), 1);
    let (sent_id, at) = sent[0].clone();
    assert_eq!(sent_id, id);
    assert_eq!(body["at"], json!(at));

    // Nothing runs it here: GET says running, and a second POST sends nothing more.
    let (status, body) = api.get(&format!("/tasks/{id}/precheck")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "running");
    let (status, _) = post_precheck(&api, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        queue.sent().len(),
        1,
        "a running precheck is not sent twice"
    );

    // The delivery runs it; the report is what the in-process path stores.
    let outcome = deliver(&api, &id, at).await;
    assert_eq!(outcome, QueuedPrecheck::Ran { passed: true });
    let (status, report) = api.get(&format!("/tasks/{id}/precheck")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["state"], "passed");
    assert_eq!(report["at"], json!(at));
    assert!(
        report["report"]["checks"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["id"] == "objects_exist"))
    );

    // A duplicate delivery does nothing; the task starts on the report.
    let again = deliver(&api, &id, at).await;
    assert_eq!(again, QueuedPrecheck::AlreadyReported);
    let (status, task) = api.post(&format!("/tasks/{id}/start"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["status"], "scheduled");
    drop_databases(&[&db, &target]).await;
}

#[tokio::test]
async fn past_its_window_a_precheck_is_interrupted_and_its_late_delivery_dropped() {
    let (api, queue) = queued_api().await;
    let (id, db, target) = task(&api, "queued_late").await;
    let (status, _) = post_precheck(&api, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, first) = queue.sent()[0].clone();

    // Still running just inside the window; interrupted past it.
    api.clock.set("2026-11-30T00:05:50Z");
    let (status, _) = api.get(&format!("/tasks/{id}/precheck")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    api.clock.set("2026-11-30T00:06:10Z");
    let (status, body) = api.get(&format!("/tasks/{id}/precheck")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "precheck_interrupted");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("within 360 s") && message.contains("POST /tasks/"),
        "{message}"
    );
    let late = deliver(&api, &id, first).await;
    assert_eq!(late, QueuedPrecheck::Expired);

    // A new precheck; the old one's delivery, once more, finds it replaced.
    let (status, _) = post_precheck(&api, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let sent = queue.sent();
    assert_eq!(sent.len(), 2);
    let (_, second) = sent[1].clone();
    assert!(second > first);
    let old = deliver(&api, &id, first).await;
    assert_eq!(old, QueuedPrecheck::Superseded);
    let (status, _) = api.get(&format!("/tasks/{id}/precheck")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the new one is still running");

    let ran = deliver(&api, &id, second).await;
    assert_eq!(ran, QueuedPrecheck::Ran { passed: true });
    let old = deliver(&api, &id, first).await;
    assert_eq!(old, QueuedPrecheck::Superseded);
    let (status, report) = api.get(&format!("/tasks/{id}/precheck")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["at"], json!(second));
    assert_eq!(report["state"], "passed");

    // The task's deletion leaves nothing for a delivery to do.
    let (status, _) = api
        .call(hyper::Method::DELETE, &format!("/tasks/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = deliver(&api, &id, second).await;
    assert_eq!(gone, QueuedPrecheck::TaskGone);
    drop_databases(&[&db, &target]).await;
}

#[tokio::test]
async fn a_precheck_the_queue_refuses_leaves_the_task_as_it_was() {
    let (api, queue) = queued_api().await;
    let (id, db, target) = task(&api, "queued_refused").await;
    queue.refuse.store(true, Ordering::SeqCst);
    let (status, body) = post_precheck(&api, &id).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(body["error"]["code"], "internal");
    let (_, task) = api.get(&format!("/tasks/{id}")).await;
    assert_eq!(task["status"], "created", "{task}");
    assert!(task.get("precheck").is_none(), "{task}");
    let (status, _) = api.get(&format!("/tasks/{id}/precheck")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Once the queue takes it, the precheck goes ahead as usual.
    queue.refuse.store(false, Ordering::SeqCst);
    let (status, _) = post_precheck(&api, &id).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(queue.sent().len(), 1);
    drop_databases(&[&db, &target]).await;
}
