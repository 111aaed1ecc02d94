//! Run steps and prechecks as SQS messages: a [`StepMessage`] or a [`PrecheckMessage`] as JSON,
//! sent by one [`SqsSender`].

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use jiff::Timestamp;
use serde::Serialize;
use tidemark_core::ports::{PrecheckMessage, PrecheckQueue, QueueError, StepMessage, StepQueue};

use crate::error::failure;

/// SQS holds a message back at most 15 minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// Sends JSON messages to one SQS queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqsSender {
    client: Client,
    queue_url: String,
}

impl SqsSender {
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsSender {
        SqsSender {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends `message` as JSON, to be delivered after `delay` (at most [`MAX_DELAY`]).
    pub async fn send_json(
        &self,
        message: &impl Serialize,
        delay: Option<Duration>,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError::Encode {
            detail: e.to_string(),
        })?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_delay_seconds(delay.map(delay_seconds))
            .send()
            .await
            .map_err(|e| {
                let f = failure("SendMessage", &e);
                QueueError::Backend {
                    detail: f.detail,
                    retryable: f.retryable,
                }
            })?;
        Ok(())
    }
}

/// The step queue on SQS. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqsStepQueue {
    sender: SqsSender,
}

impl SqsStepQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsStepQueue {
        SqsStepQueue {
            sender: SqsSender::new(client, queue_url),
        }
    }
}

/// The precheck queue on SQS: the precheck function consumes it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqsPrecheckQueue {
    sender: SqsSender,
}

impl SqsPrecheckQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> SqsPrecheckQueue {
        SqsPrecheckQueue {
            sender: SqsSender::new(client, queue_url),
        }
    }
}

#[async_trait]
impl PrecheckQueue for SqsPrecheckQueue {
    #[tracing::instrument(skip_all, fields(task_id = %task_id, at = %at), err)]
    async fn send_precheck(&self, task_id: &str, at: Timestamp) -> Result<(), QueueError> {
        let message = PrecheckMessage {
            task_id: task_id.to_owned(),
            at,
        };
        self.sender.send_json(&message, None).await
    }
}

/// The `DelaySeconds` of a delay: whole seconds, rounded up (a postponed step must not come
/// back early), at most [`MAX_DELAY`].
pub fn delay_seconds(delay: Duration) -> i32 {
    let capped = delay.min(MAX_DELAY);
    let secs = capped.as_secs() + u64::from(capped.subsec_nanos() > 0);
    i32::try_from(secs.min(MAX_DELAY.as_secs())).unwrap_or(900)
}

#[async_trait]
impl StepQueue for SqsStepQueue {
    #[tracing::instrument(skip_all, fields(task_id = %message.run.task_id, run = %message.run.time_key(), step = message.step), err)]
    async fn send_step(
        &self,
        message: &StepMessage,
        delay: Option<Duration>,
    ) -> Result<(), QueueError> {
        self.sender.send_json(message, delay).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_whole_seconds_and_stop_at_fifteen_minutes() {
        assert_eq!(delay_seconds(Duration::ZERO), 0);
        assert_eq!(delay_seconds(Duration::from_millis(1)), 1);
        assert_eq!(delay_seconds(Duration::from_secs(30)), 30);
        assert_eq!(delay_seconds(Duration::from_millis(30_500)), 31);
        assert_eq!(delay_seconds(Duration::from_secs(900)), 900);
        assert_eq!(delay_seconds(Duration::from_secs(3600)), 900);
    }
}
