//! The precheck function: one binary, two event sources.
//!
//! - API Gateway (HTTP API, payload 2.0): `POST /connections/test` and `POST /tasks/{id}/precheck`,
//!   through the same app as every HTTP function ([`crate::api`]). The POST records the precheck
//!   as running, sends it to the precheck queue and answers 202.
//! - SQS (the precheck queue): each message runs one precheck with
//!   [`TaskService::run_queued_precheck`], which stores the report as `tidemark serve` does. A
//!   message that fails is reported in `batchItemFailures` (the template turns on
//!   `ReportBatchItemFailures`), so only it comes back.
//!
//! The two are told apart by shape: an SQS batch is an object with `Records`; anything else must
//! be an API Gateway request ([`PrecheckEvent`]).

use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_http::request::LambdaRequest;
use lambda_http::{LambdaEvent, service_fn};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use tidemark_core::ports::PrecheckMessage;
use tidemark_service::{QueuedPrecheck, TaskService};

use crate::api::{self, HttpApp};

/// What the precheck function is invoked with.
#[derive(Debug)]
pub enum PrecheckEvent {
    /// A batch from the precheck queue.
    Queue(SqsEvent),
    /// A request from API Gateway.
    Http(Box<LambdaRequest>),
}

impl<'de> Deserialize<'de> for PrecheckEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        #[derive(Deserialize)]
        struct Shape {
            #[serde(rename = "Records")]
            records: Option<serde::de::IgnoredAny>,
        }
        let shape: Shape = serde_json::from_str(raw.get()).map_err(|e| {
            D::Error::custom(format!("the precheck function takes a JSON object: {e}"))
        })?;
        if shape.records.is_some() {
            return serde_json::from_str(raw.get())
                .map(PrecheckEvent::Queue)
                .map_err(|e| {
                    D::Error::custom(format!("an event with Records is not an SQS batch: {e}"))
                });
        }
        serde_json::from_str(raw.get())
            .map(|r| PrecheckEvent::Http(Box::new(r)))
            .map_err(|_| {
                D::Error::custom(
                    "the precheck function takes an API Gateway HTTP API request (payload 2.0) or an SQS batch from the precheck queue; this event is neither",
                )
            })
    }
}

/// What the precheck function answers: API Gateway's response, or the batch's failed messages.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PrecheckAnswer {
    Http(serde_json::Value),
    Queue(SqsBatchResponse),
}

/// The precheck function's handler.
#[derive(Clone)]
pub struct PrecheckHandler {
    service: Arc<TaskService>,
    app: HttpApp,
}

impl PrecheckHandler {
    pub fn new(service: Arc<TaskService>) -> PrecheckHandler {
        PrecheckHandler {
            app: api::http_app(Arc::clone(&service)),
            service,
        }
    }

    /// One invocation.
    pub async fn handle(
        &self,
        event: LambdaEvent<PrecheckEvent>,
    ) -> Result<PrecheckAnswer, lambda_http::Error> {
        let LambdaEvent { payload, context } = event;
        match payload {
            PrecheckEvent::Http(request) => {
                let answer = api::answer(&self.app, LambdaEvent::new(*request, context)).await?;
                Ok(PrecheckAnswer::Http(answer))
            }
            PrecheckEvent::Queue(batch) => Ok(PrecheckAnswer::Queue(self.run_batch(batch).await)),
        }
    }

    /// Runs each message's precheck in turn; the ids of those that failed, to be delivered
    /// again.
    pub async fn run_batch(&self, batch: SqsEvent) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in batch.records {
            if !self.run_message(&message).await {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Whether the message is done with (ran, or nothing to do).
    async fn run_message(&self, message: &SqsMessage) -> bool {
        let message_id = message.message_id.as_deref().unwrap_or("");
        let body = message.body.as_deref().unwrap_or("");
        let precheck: PrecheckMessage = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => {
                // It can never succeed: failing it sends it to the dead-letter queue (and the
                // alarm) after its retries, where someone can look at it.
                tracing::error!(message_id, error = %e, "not a precheck message");
                return false;
            }
        };
        let task = precheck.task_id.as_str();
        match self.service.run_queued_precheck(task, precheck.at).await {
            Ok(QueuedPrecheck::Ran { .. }) => true,
            Ok(skipped) => {
                tracing::info!(message_id, task, at = %precheck.at, outcome = ?skipped, "precheck delivery skipped");
                true
            }
            Err(e) => {
                tracing::error!(message_id, task, error = %e, "precheck failed; the message will be delivered again");
                false
            }
        }
    }
}

/// Runs the precheck function until Lambda stops it.
pub async fn serve(service: Arc<TaskService>) -> Result<(), lambda_http::Error> {
    let handler = PrecheckHandler::new(service);
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<PrecheckEvent>| {
        let handler = handler.clone();
        async move { handler.handle(event).await }
    }))
    .await
}
