//! What the step dead-letter queue holds, told apart. Three senders write to it:
//! - the step queue's redrive: a step message received `maxReceiveCount` times ([`StepMessage`]);
//! - EventBridge Scheduler, when it gave up invoking run-cycle for a scheduled time: the body is
//!   the target's input (`{"task_id", "scheduled_time"}` with the time filled in), the reason in
//!   the message attributes `ERROR_CODE` and `ERROR_MESSAGE`;
//! - Lambda's on-failure destination of run-cycle, when its asynchronous retries ran out: a
//!   destination record (`requestContext.condition`, `requestPayload` = the scheduler's input or
//!   the sweep's, `responsePayload.errorMessage`).
//!
//! Every dead letter is logged with the message `dead letter` (and its `kind`), which the
//! dead-letter alarm's metric filter counts (template.yaml).

use std::collections::HashMap;

use aws_lambda_events::sqs::SqsMessageAttribute;
use serde::Deserialize;
use serde_json::Value;
use tidemark_aws::SchedulerInput;
use tidemark_core::ports::StepMessage;

/// The message every dead letter is logged with: template.yaml's dead-letter metric filter
/// matches it.
pub const LOG_MESSAGE: &str = "dead letter";

/// One dead letter, told apart.
#[derive(Debug, Clone, PartialEq)]
pub enum DeadLetter {
    /// A step the step queue gave up on: its run fails under the task's failure policy.
    Step(StepMessage),
    /// A scheduled cycle that was never started: recorded as `missed`.
    Cycle { input: SchedulerInput, why: String },
    /// run-cycle's sweep that failed every attempt (the next sweep does its work).
    Sweep { why: String },
}

impl DeadLetter {
    /// The `kind` its log line carries.
    pub fn kind(&self) -> &'static str {
        match self {
            DeadLetter::Step(_) => "step",
            DeadLetter::Cycle { .. } => "cycle",
            DeadLetter::Sweep { .. } => "sweep",
        }
    }
}

/// Lambda's destination record for a failed asynchronous invocation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DestinationRecord {
    request_context: RequestContext,
    request_payload: Value,
    #[serde(default)]
    response_payload: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    condition: String,
    #[serde(default)]
    approximate_invoke_count: Option<u64>,
}

/// Tells `body` (with the message's attributes) apart; an error says what it is not.
pub fn parse(
    body: &str,
    attributes: &HashMap<String, SqsMessageAttribute>,
) -> Result<DeadLetter, String> {
    if let Ok(step) = serde_json::from_str::<StepMessage>(body) {
        return Ok(DeadLetter::Step(step));
    }
    if let Ok(input) = serde_json::from_str::<SchedulerInput>(body) {
        let attribute = |name: &str| {
            attributes
                .get(name)
                .and_then(|a| a.string_value.clone())
                .filter(|v| !v.is_empty())
        };
        let why = match (attribute("ERROR_CODE"), attribute("ERROR_MESSAGE")) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => "EventBridge Scheduler gave up invoking run-cycle".into(),
        };
        return Ok(DeadLetter::Cycle { input, why });
    }
    if let Ok(record) = serde_json::from_str::<DestinationRecord>(body) {
        let error = record
            .response_payload
            .as_ref()
            .and_then(|p| p.get("errorMessage"))
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        let attempts = record
            .request_context
            .approximate_invoke_count
            .map_or_else(String::new, |n| format!(" after {n} attempts"));
        let why = format!(
            "run-cycle failed ({}{attempts}): {error}",
            record.request_context.condition
        );
        if let Ok(input) = serde_json::from_value::<SchedulerInput>(record.request_payload.clone())
        {
            return Ok(DeadLetter::Cycle { input, why });
        }
        if record.request_payload.get("sweep").is_some() {
            return Ok(DeadLetter::Sweep { why });
        }
        return Err(format!(
            "a destination record of an invocation that is neither a cycle nor the sweep ({why})"
        ));
    }
    Err(
        "neither a step message, a scheduler dead-letter event nor a Lambda destination record"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(value: &str) -> SqsMessageAttribute {
        serde_json::from_value(serde_json::json!({"stringValue": value, "dataType": "String"}))
            .expect("an attribute")
    }

    #[test]
    fn a_scheduler_dead_letter_event_is_a_cycle_with_its_error() {
        let attributes = HashMap::from([
            (
                "ERROR_CODE".to_owned(),
                attribute("AWS.Scheduler.ResourceNotFound"),
            ),
            (
                "ERROR_MESSAGE".to_owned(),
                attribute("Function not found: arn:aws:lambda:us-east-1:123456789012:function:x"),
            ),
            ("RETRY_ATTEMPTS".to_owned(), attribute("10")),
        ]);
        let letter = parse(
            r#"{"task_id":"tsk-1","scheduled_time":"2026-12-03T02:30:00Z"}"#,
            &attributes,
        )
        .expect("told apart");
        let DeadLetter::Cycle { input, why } = letter else {
            panic!("{letter:?}");
        };
        assert_eq!(input.task_id, "tsk-1");
        assert_eq!(input.scheduled_time, "2026-12-03T02:30:00Z");
        assert!(
            why.starts_with("AWS.Scheduler.ResourceNotFound: Function not found"),
            "{why}"
        );
    }

    #[test]
    fn a_lambda_destination_record_of_a_trigger_is_a_cycle_and_of_the_sweep_a_sweep() {
        let record = |payload: Value| {
            serde_json::json!({
                "version": "1.0",
                "timestamp": "2026-12-03T02:31:05.568Z",
                "requestContext": {
                    "requestId": "e4b46cbf-b738-xmpl-8880-a18cdf61200e",
                    "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:tm-run-cycle:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": 3
                },
                "requestPayload": payload,
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "responsePayload": {"errorMessage": "the state store did not answer", "errorType": "&alloc::string::String"}
            })
            .to_string()
        };
        let none = HashMap::new();
        let cycle = parse(
            &record(
                serde_json::json!({"task_id": "tsk-2", "scheduled_time": "2026-12-03T02:30:00Z"}),
            ),
            &none,
        )
        .expect("a cycle");
        let DeadLetter::Cycle { input, why } = cycle else {
            panic!("{cycle:?}");
        };
        assert_eq!(input.task_id, "tsk-2");
        assert_eq!(
            why,
            "run-cycle failed (RetriesExhausted after 3 attempts): the state store did not answer"
        );
        let sweep = parse(&record(serde_json::json!({"sweep": true})), &none).expect("a sweep");
        assert_eq!(sweep.kind(), "sweep");
        assert!(parse(&record(serde_json::json!({"other": 1})), &none).is_err());
    }

    #[test]
    fn anything_else_is_an_error_that_says_what_it_is_not() {
        let e = parse("not json", &HashMap::new()).expect_err("not a dead letter");
        assert!(e.contains("neither a step message"), "{e}");
    }
}
