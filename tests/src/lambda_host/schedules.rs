//! EventBridge Scheduler's side: the invocations of the schedules the service wrote to the
//! emulator, delivered to their targets as the scheduler delivers them (an asynchronous
//! invocation with the schedule's input, its context attributes filled in).
//!
//! Which invocations are due is `infra/local/aws/fire.py`'s to say (EventBridge's rules,
//! independent of the product's schedule code); [`due_at`] is the stand-in until then: the
//! invocation of one schedule at a time the test names.

use aws_sdk_scheduler::Client;
use jiff::Timestamp;
use serde_json::Value;

/// One invocation the scheduler makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub schedule_arn: String,
    pub scheduled_time: Timestamp,
    pub target_arn: String,
    pub role_arn: String,
    /// The target's input with the context attributes substituted.
    pub input: Value,
    pub dead_letter_arn: Option<String>,
}

/// The schedule's context attributes in `input`, as EventBridge Scheduler fills them.
pub fn substitute(input: &str, schedule_arn: &str, at: Timestamp, attempt: u32) -> String {
    input
        .replace(
            "<aws.scheduler.scheduled-time>",
            &at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
        .replace("<aws.scheduler.schedule-arn>", schedule_arn)
        .replace(
            "<aws.scheduler.execution-id>",
            &super::function::request_id(),
        )
        .replace("<aws.scheduler.attempt-number>", &attempt.to_string())
}

/// The invocation of schedule `name` in `group` scheduled at `at`, from the schedule as the
/// emulator holds it.
pub async fn due_at(
    scheduler: &Client,
    group: &str,
    name: &str,
    at: Timestamp,
) -> Result<Due, String> {
    let schedule = scheduler
        .get_schedule()
        .group_name(group)
        .name(name)
        .send()
        .await
        .map_err(|e| format!("GetSchedule {group}/{name}: {e:?}"))?;
    let target = schedule
        .target()
        .ok_or_else(|| format!("schedule {name} has no target"))?;
    let arn = schedule.arn().unwrap_or_default().to_owned();
    let input = substitute(target.input().unwrap_or("{}"), &arn, at, 1);
    Ok(Due {
        schedule_arn: arn,
        scheduled_time: at,
        target_arn: target.arn().to_owned(),
        role_arn: target.role_arn().to_owned(),
        input: serde_json::from_str(&input).map_err(|e| format!("schedule {name}'s input: {e}"))?,
        dead_letter_arn: target
            .dead_letter_config()
            .and_then(|d| d.arn())
            .map(str::to_owned),
    })
}
