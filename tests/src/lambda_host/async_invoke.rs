//! Asynchronous invocation (`InvocationType: Event`), as EventBridge Scheduler invokes run-cycle:
//! Lambda queues the event and answers at once; a failed attempt (an error, a timeout, a crash)
//! is retried up to the function's `MaximumRetryAttempts` (Lambda's waits: one minute before the
//! second attempt, two before the third — scaled), with the same request id; when none
//! succeeded, the on-failure destination receives Lambda's invocation record.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::TimeScale;
use super::function::{Function, Outcome, request_id};

/// One asynchronous invocation, once it ended.
#[derive(Debug, Clone)]
pub struct AsyncRecord {
    pub request_id: String,
    pub payload: Value,
    pub attempts: u32,
    pub outcome: Outcome,
    /// The record sent to the on-failure destination, if one was.
    pub sent_to_destination: Option<Value>,
}

/// Where destination records go: an SQS queue by ARN.
#[derive(Clone)]
pub struct Destinations {
    pub sqs: aws_sdk_sqs::Client,
    /// (ARN, URL) of every queue of the stack.
    pub queues: Vec<(String, String)>,
}

impl Destinations {
    async fn send(&self, arn: &str, record: &Value) -> Result<(), String> {
        let url = self
            .queues
            .iter()
            .find(|(a, _)| a == arn)
            .map(|(_, u)| u.clone())
            .ok_or_else(|| format!("the destination {arn} is not a queue of the stack"))?;
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(record.to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("SendMessage to {arn}: {e:?}"))
    }
}

/// A function's asynchronous invocations.
pub struct AsyncInvoker {
    pub function: Arc<Function>,
    pub maximum_retry_attempts: u32,
    pub on_failure: Option<String>,
    pub destinations: Destinations,
    pub scale: TimeScale,
    pending: Mutex<Vec<JoinHandle<()>>>,
    records: Arc<Mutex<Vec<AsyncRecord>>>,
}

impl AsyncInvoker {
    pub fn new(
        function: Arc<Function>,
        maximum_retry_attempts: u32,
        on_failure: Option<String>,
        destinations: Destinations,
        scale: TimeScale,
    ) -> AsyncInvoker {
        AsyncInvoker {
            function,
            maximum_retry_attempts,
            on_failure,
            destinations,
            scale,
            pending: Mutex::new(Vec::new()),
            records: Arc::default(),
        }
    }

    /// Queues one event (Lambda's 202): the request id.
    pub fn invoke_event(&self, payload: Value) -> String {
        let id = request_id();
        let function = Arc::clone(&self.function);
        let records = Arc::clone(&self.records);
        let retries = self.maximum_retry_attempts;
        let on_failure = self.on_failure.clone();
        let destinations = self.destinations.clone();
        let waits = [
            self.scale.scale(Duration::from_secs(60)),
            self.scale.scale(Duration::from_secs(120)),
        ];
        let request_id = id.clone();
        let task = tokio::spawn(async move {
            let mut attempts = 0;
            let outcome = loop {
                let outcome = function.invoke_with_id(&payload, &request_id).await;
                attempts += 1;
                if outcome.is_success() || attempts > retries {
                    break outcome;
                }
                let wait = waits[usize::try_from(attempts - 1).unwrap_or(1).min(1)];
                tokio::time::sleep(wait).await;
            };
            let mut sent = None;
            if !outcome.is_success()
                && let Some(arn) = &on_failure
            {
                let record = failure_record(&function, &request_id, &payload, attempts, &outcome);
                match destinations.send(arn, &record).await {
                    Ok(()) => sent = Some(record),
                    Err(e) => eprintln!("lambda host: the on-failure destination: {e}"),
                }
            }
            if let Ok(mut records) = records.lock() {
                records.push(AsyncRecord {
                    request_id,
                    payload,
                    attempts,
                    outcome,
                    sent_to_destination: sent,
                });
            }
        });
        if let Ok(mut pending) = self.pending.lock() {
            pending.retain(|t| !t.is_finished());
            pending.push(task);
        }
        id
    }

    /// Waits until every event queued so far has ended (retries and destination included).
    pub async fn settle(&self) {
        loop {
            let task = self.pending.lock().ok().and_then(|mut p| p.pop());
            match task {
                Some(task) => {
                    let _ = task.await;
                }
                None => return,
            }
        }
    }

    /// The invocations that ended so far.
    pub fn records(&self) -> Vec<AsyncRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Stops the events still retrying.
    pub fn abort(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            for task in pending.drain(..) {
                task.abort();
            }
        }
    }
}

/// The invocation record Lambda sends to an on-failure destination.
pub fn failure_record(
    function: &Function,
    request_id: &str,
    payload: &Value,
    attempts: u32,
    outcome: &Outcome,
) -> Value {
    json!({
        "version": "1.0",
        "timestamp": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "requestContext": {
            "requestId": request_id,
            "functionArn": format!("{}:$LATEST", function.config.arn),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts
        },
        "requestPayload": payload,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled"
        },
        "responsePayload": outcome
            .error_payload(request_id, function.config.template_timeout)
            .unwrap_or(Value::Null)
    })
}
