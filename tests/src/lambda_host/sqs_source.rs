//! An SQS event source mapping as Lambda runs one: pollers long-poll the queue (20 s, as
//! Lambda's pollers do) for up to `BatchSize` messages, hand them to the function as one SQS
//! event, and delete what it handled.
//!
//! - With `ReportBatchItemFailures`, the messages the response lists in `batchItemFailures` stay
//!   on the queue (visible again after the queue's visibility timeout); a response naming a
//!   message that is not in the batch, or that is not a batch response, fails the whole batch.
//!   Without it, any success deletes the whole batch.
//! - A failed invocation (an error, a timeout, a crash) deletes nothing: the batch comes back
//!   after the visibility timeout. The emulator counts each receive and, past the queue's
//!   `maxReceiveCount`, moves a message to its dead-letter queue on the next receive, as SQS's
//!   redrive does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::function::{Function, Outcome};

/// An SQS batch as Lambda's event source mapping delivers it, from received messages.
pub fn sqs_event(queue_arn: &str, region: &str, messages: &[Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                .collect();
            let message_attributes: Map<String, Value> = m
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({
                            "stringValue": v.string_value(),
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": v.data_type(),
                        }),
                    )
                })
                .collect();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Counters a test can read.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub batches: AtomicU64,
    pub messages: AtomicU64,
    /// Messages a response listed as failed.
    pub item_failures: AtomicU64,
    /// Invocations that failed as a whole.
    pub failed_batches: AtomicU64,
    /// Batches delivered twice ([`SqsSource::duplicate_every`]).
    pub duplicated: AtomicU64,
}

/// One mapping: a queue, a function, its settings.
pub struct SqsSource {
    pub logical_id: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    pub batch_size: usize,
    pub report_batch_item_failures: bool,
    pub function: Arc<Function>,
    pub sqs: Client,
    pub stats: SourceStats,
    /// When not 0, every nth batch is delivered to two invocations at once, as SQS's
    /// at-least-once delivery sometimes does (a message received again by another poller).
    pub duplicate_every: AtomicU64,
}

impl SqsSource {
    /// Starts `pollers` pollers; they run until aborted.
    pub fn start(self: &Arc<Self>, pollers: usize) -> Vec<JoinHandle<()>> {
        (0..pollers.max(1))
            .map(|_| {
                let source = Arc::clone(self);
                tokio::spawn(async move {
                    loop {
                        if !source.poll_once().await {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                })
            })
            .collect()
    }

    /// One receive and, when it brought messages, one invocation. Whether it received any.
    pub async fn poll_once(&self) -> bool {
        let batch = i32::try_from(self.batch_size.clamp(1, 10)).unwrap_or(10);
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(batch)
            .wait_time_seconds(20)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        let messages = match received {
            Ok(r) => r.messages.unwrap_or_default(),
            Err(_) => return false,
        };
        if messages.is_empty() {
            return false;
        }
        let n = self.stats.batches.fetch_add(1, Ordering::Relaxed) + 1;
        self.stats
            .messages
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let event = sqs_event(&self.queue_arn, &self.region, &messages);
        let every = self.duplicate_every.load(Ordering::Relaxed);
        let outcomes = if every > 0 && n.is_multiple_of(every) {
            self.stats.duplicated.fetch_add(1, Ordering::Relaxed);
            let (a, b) = tokio::join!(self.function.invoke(&event), self.function.invoke(&event));
            vec![a, b]
        } else {
            vec![self.function.invoke(&event).await]
        };
        // Each delivery deletes what it handled, as each poller would.
        for outcome in &outcomes {
            match self.handled(outcome, &messages) {
                Some(done) => {
                    self.stats
                        .item_failures
                        .fetch_add((messages.len() - done.len()) as u64, Ordering::Relaxed);
                    self.delete(&done).await;
                }
                None => {
                    self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        true
    }

    /// The messages the invocation handled, or `None` when the whole batch failed.
    fn handled<'m>(&self, outcome: &Outcome, messages: &'m [Message]) -> Option<Vec<&'m Message>> {
        let Outcome::Response(response) = outcome else {
            return None;
        };
        if !self.report_batch_item_failures {
            return Some(messages.iter().collect());
        }
        let failures = match response {
            Value::Null => return Some(messages.iter().collect()),
            Value::Object(o) => match o.get("batchItemFailures") {
                None | Some(Value::Null) => return Some(messages.iter().collect()),
                Some(Value::Array(f)) => f,
                Some(_) => return None,
            },
            _ => return None,
        };
        let mut failed = Vec::new();
        for f in failures {
            let id = f["itemIdentifier"].as_str().filter(|id| !id.is_empty())?;
            if !messages.iter().any(|m| m.message_id() == Some(id)) {
                return None;
            }
            failed.push(id.to_owned());
        }
        Some(
            messages
                .iter()
                .filter(|m| !failed.iter().any(|id| m.message_id() == Some(id)))
                .collect(),
        )
    }

    async fn delete(&self, messages: &[&Message]) {
        if messages.is_empty() {
            return;
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        let _ = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await;
    }
}
