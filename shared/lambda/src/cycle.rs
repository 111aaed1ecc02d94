//! The run-cycle function: EventBridge Scheduler's target, and a sweep of stalled runs.
//!
//! - A trigger: the schedule's input, `{"task_id": "...", "scheduled_time": "<aws.scheduler.scheduled-time>"}`
//!   with the placeholder filled in by the scheduler. The run is created with a conditional
//!   write keyed by task and scheduled time (a trigger delivered twice, or three times at once,
//!   makes one run) and its Schema step is sent to the step queue
//!   ([`TaskService::begin_cycle`]). An error is returned to Lambda, whose asynchronous retries
//!   and on-failure destination (the dead-letter queue) take over.
//! - `{"sweep": true}` (a rate schedule in template.yaml): runs whose heartbeat stopped are
//!   failed under their task's failure policy ([`TaskService::reap_stalled`]).

use std::sync::Arc;

use jiff::Timestamp;
use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use tidemark_aws::SchedulerInput;
use tidemark_core::state::RunTrigger;
use tidemark_service::{CycleStart, TaskService};

/// What run-cycle is invoked with.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CycleEvent {
    Trigger(SchedulerInput),
    Sweep { sweep: bool },
}

/// What run-cycle answers (visible in the invocation's result and logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CycleAnswer {
    Started {
        task_id: String,
        scheduled_time: String,
    },
    Duplicate {
        task_id: String,
        scheduled_time: String,
    },
    Skipped {
        task_id: String,
        scheduled_time: String,
    },
    Ignored {
        reason: String,
    },
    Swept {
        failed_runs: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CycleError {
    #[error(
        "scheduled_time `{value}` is not an RFC 3339 time: the schedule's input must carry <aws.scheduler.scheduled-time>"
    )]
    BadTime { value: String },
    #[error(transparent)]
    Service(#[from] tidemark_service::ServiceError),
}

/// One invocation.
pub async fn handle(
    service: &Arc<TaskService>,
    event: CycleEvent,
) -> Result<CycleAnswer, CycleError> {
    match event {
        CycleEvent::Sweep { sweep: true } => {
            let reaped = service.reap_stalled().await?;
            Ok(CycleAnswer::Swept {
                failed_runs: reaped.len(),
            })
        }
        CycleEvent::Sweep { sweep: false } => Ok(CycleAnswer::Ignored {
            reason: "sweep is false".into(),
        }),
        CycleEvent::Trigger(input) => {
            let at: Timestamp = input
                .scheduled_time
                .parse()
                .map_err(|_| CycleError::BadTime {
                    value: input.scheduled_time.clone(),
                })?;
            let started = service
                .begin_cycle(&input.task_id, at, RunTrigger::Schedule)
                .await?;
            let answer = match started {
                CycleStart::Started(key) => CycleAnswer::Started {
                    task_id: key.task_id.clone(),
                    scheduled_time: key.time_key(),
                },
                CycleStart::Duplicate(key) => CycleAnswer::Duplicate {
                    task_id: key.task_id.clone(),
                    scheduled_time: key.time_key(),
                },
                CycleStart::Skipped(key) => CycleAnswer::Skipped {
                    task_id: key.task_id.clone(),
                    scheduled_time: key.time_key(),
                },
                CycleStart::Ignored(reason) => CycleAnswer::Ignored { reason },
            };
            tracing::info!(answer = ?answer, "cycle trigger");
            Ok(answer)
        }
    }
}

/// Runs the run-cycle function until Lambda stops it.
pub async fn serve(service: Arc<TaskService>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<CycleEvent>| {
        let service = Arc::clone(&service);
        async move {
            // Boxed: the run's futures nest deep enough to overflow the compiler's layout limit.
            Box::pin(handle(&service, event.payload)).await.map_err(|e| {
                tracing::error!(error = %e, "cycle trigger failed; Lambda retries it, then sends it to the dead-letter queue");
                lambda_runtime::Error::from(e.to_string())
            })
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_payload_and_the_sweep_are_told_apart() {
        let trigger: CycleEvent = serde_json::from_str(
            r#"{"task_id": "tsk-1", "scheduled_time": "2027-12-01T02:30:00Z"}"#,
        )
        .expect("a trigger");
        assert!(
            matches!(&trigger, CycleEvent::Trigger(i) if i.task_id == "tsk-1"),
            "{trigger:?}"
        );
        let sweep: CycleEvent = serde_json::from_str(r#"{"sweep": true}"#).expect("a sweep");
        assert!(
            matches!(sweep, CycleEvent::Sweep { sweep: true }),
            "{sweep:?}"
        );
        assert!(serde_json::from_str::<CycleEvent>(r#"{"task": "x"}"#).is_err());
    }
}
