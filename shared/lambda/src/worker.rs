//! The run-worker function: the step queue's consumer, and the dead-letter queue's.
//!
//! Each message of a batch is one step ([`TaskService::run_step`]), run with the invocation's
//! deadline: a step too close to it is not started but sent back as a new message (not a failed
//! delivery). A step that errors (the state store unreachable) is reported in
//! `batchItemFailures`, so only it comes back. A message from the dead-letter queue
//! ([`crate::dead_letter`]) fails its run under the task's failure policy
//! ([`TaskService::dead_letter`]), or, when it is a cycle the scheduler gave up on, is recorded
//! as a `missed` run ([`TaskService::missed_delivery`]).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_http::lambda_runtime::{self, Context, LambdaEvent, service_fn};
use tidemark_core::ports::StepMessage;
use tidemark_service::TaskService;

use crate::dead_letter::{self, DeadLetter};

/// The run-worker function's handler.
#[derive(Clone)]
pub struct WorkerHandler {
    service: Arc<TaskService>,
    /// The dead-letter queue's ARN: its messages fail their runs.
    dead_letter_arn: Option<String>,
}

impl WorkerHandler {
    pub fn new(service: Arc<TaskService>, dead_letter_arn: Option<String>) -> WorkerHandler {
        WorkerHandler {
            service,
            dead_letter_arn,
        }
    }

    /// One invocation: the batch's messages in turn, within the invocation's deadline.
    pub async fn handle(&self, event: LambdaEvent<SqsEvent>) -> SqsBatchResponse {
        let deadline = deadline(&event.context);
        self.run_batch(event.payload, deadline).await
    }

    pub async fn run_batch(&self, batch: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for message in batch.records {
            if !self.run_message(&message, deadline).await {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message.message_id.clone().unwrap_or_default();
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Whether the message is done with.
    async fn run_message(&self, message: &SqsMessage, deadline: Instant) -> bool {
        let message_id = message.message_id.as_deref().unwrap_or("");
        let body = message.body.as_deref().unwrap_or("");
        let dead = self.dead_letter_arn.is_some()
            && message.event_source_arn.as_deref() == self.dead_letter_arn.as_deref();
        if dead {
            return self.run_dead_letter(message_id, body, message).await;
        }
        let step: StepMessage = match serde_json::from_str(body) {
            Ok(step) => step,
            Err(e) => {
                tracing::error!(message_id, error = %e, "not a step message; dropped");
                return true;
            }
        };
        let (task, run, n) = (step.run.task_id.clone(), step.run.time_key(), step.step);
        match self.service.run_step(&step, Some(deadline)).await {
            Ok(outcome) => {
                tracing::info!(message_id, task, run, step = n, outcome = ?outcome, "step");
                true
            }
            Err(e) => {
                tracing::error!(message_id, task, run, step = n, error = %e, "step errored; the message will be delivered again");
                false
            }
        }
    }

    /// A message of the dead-letter queue ([`dead_letter`]): a step fails its run, a cycle the
    /// scheduler gave up on is recorded as missed. Logged as [`dead_letter::LOG_MESSAGE`] for
    /// the dead-letter alarm; whether it is done with (a state store error brings it back).
    async fn run_dead_letter(&self, message_id: &str, body: &str, message: &SqsMessage) -> bool {
        let letter = match dead_letter::parse(body, &message.message_attributes) {
            Ok(letter) => letter,
            Err(what) => {
                tracing::error!(message_id, kind = "unknown", what, "dead letter");
                return true;
            }
        };
        let kind = letter.kind();
        let outcome = match &letter {
            DeadLetter::Step(step) => {
                let (task, run) = (step.run.task_id.as_str(), step.run.time_key());
                tracing::warn!(message_id, kind, task, run, step = step.step, "dead letter");
                self.service.dead_letter(step).await
            }
            DeadLetter::Cycle { input, why } => {
                let task = input.task_id.as_str();
                tracing::warn!(message_id, kind, task, run = %input.scheduled_time, why, "dead letter");
                match input.scheduled_time.parse::<jiff::Timestamp>() {
                    Ok(at) => self
                        .service
                        .missed_delivery(task, at, why)
                        .await
                        .map(|_| ()),
                    Err(e) => {
                        tracing::error!(message_id, task, time = %input.scheduled_time, error = %e, "the missed cycle's time is not RFC 3339; dropped");
                        Ok(())
                    }
                }
            }
            DeadLetter::Sweep { why } => {
                tracing::error!(message_id, kind, why, "dead letter");
                Ok(())
            }
        };
        match outcome {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(message_id, kind, error = %e, "the dead letter could not be recorded; it will be delivered again");
                false
            }
        }
    }
}

/// The invocation's deadline as an [`Instant`] (Lambda gives it in milliseconds since the epoch).
pub fn deadline(context: &Context) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    Instant::now() + Duration::from_millis(context.deadline.saturating_sub(now_ms))
}

/// Runs the run-worker function until Lambda stops it.
pub async fn serve(handler: WorkerHandler) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let handler = handler.clone();
        // Boxed: the run's futures nest deep enough to overflow the compiler's layout limit.
        async move { Ok::<_, lambda_runtime::Error>(Box::pin(handler.handle(event)).await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_lambdas_epoch_milliseconds_from_now() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis();
        let mut context = Context::default();
        context.deadline = u64::try_from(now + 30_000).expect("fits");
        let left = deadline(&context).saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(29) && left <= Duration::from_secs(30),
            "{left:?}"
        );
        // A deadline already past leaves no time, never a panic.
        context.deadline = 1;
        assert!(deadline(&context) <= Instant::now());
    }
}
