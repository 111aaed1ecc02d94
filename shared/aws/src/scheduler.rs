//! Task schedules in EventBridge Scheduler: one schedule per task, named by the task id, in
//! Tidemark's schedule group.
//!
//! [`schedule_request`] decides every parameter (a pure function, unit-tested); the adapter only
//! sends it. The window maps onto the schedule as EventBridge documents it: invocations happen
//! "on, or after, the StartDate" and "stop on, or before, the EndDate". So `StartDate` is the
//! window's first instant, and `EndDate` one second before the window's end: every cron
//! occurrence falls on a whole minute, so no occurrence lies between the two, and the cycle at
//! the very end of the window (00:00 the day after `end`) cannot fire whichever way EventBridge
//! treats an invocation exactly at `EndDate`.

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::primitives::DateTime;
use aws_sdk_scheduler::types::{
    DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState,
    Target,
};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use tidemark_core::ports::{InstalledSchedule, SchedulerError, TaskSchedule, TaskScheduler};

use crate::error::{Failure, failure};

/// EventBridge refuses a `StartDate` more than five minutes in the past; a window that began
/// longer ago than this is sent without one (the schedule then fires from now on).
const START_DATE_SLACK: SignedDuration = SignedDuration::from_secs(4 * 60);

/// The placeholder EventBridge replaces with the invocation's scheduled time (RFC 3339, UTC).
pub const SCHEDULED_TIME_PLACEHOLDER: &str = "<aws.scheduler.scheduled-time>";

/// Where schedules live and what they invoke (from the deployment's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// The schedule group (template.yaml's `ScheduleGroup`).
    pub group_name: String,
    /// The run-cycle function's ARN.
    pub target_arn: String,
    /// The role EventBridge Scheduler assumes to invoke the target.
    pub role_arn: String,
    /// The queue that receives invocations the scheduler gave up on.
    pub dead_letter_arn: String,
    /// Retries of a failed invocation (EventBridge allows 0-185).
    pub maximum_retry_attempts: i32,
    /// How long an invocation is retried before it goes to the dead-letter queue (60-86400 s).
    pub maximum_event_age_seconds: i32,
}

impl SchedulerConfig {
    /// A configuration with Tidemark's retry policy: up to 10 retries within one hour. A cycle
    /// that could not start within the hour goes to the dead-letter queue (and the alarm), rather
    /// than start so late that it runs into the next cycle.
    pub fn new(
        group_name: impl Into<String>,
        target_arn: impl Into<String>,
        role_arn: impl Into<String>,
        dead_letter_arn: impl Into<String>,
    ) -> SchedulerConfig {
        SchedulerConfig {
            group_name: group_name.into(),
            target_arn: target_arn.into(),
            role_arn: role_arn.into(),
            dead_letter_arn: dead_letter_arn.into(),
            maximum_retry_attempts: 10,
            maximum_event_age_seconds: 3600,
        }
    }
}

/// What run-cycle receives from EventBridge Scheduler: the task, and the scheduled time in
/// place of [`SCHEDULED_TIME_PLACEHOLDER`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerInput {
    pub task_id: String,
    pub scheduled_time: String,
}

/// Every parameter of a task's CreateSchedule/UpdateSchedule request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRequest {
    pub name: String,
    pub group_name: String,
    pub description: String,
    pub schedule_expression: String,
    pub schedule_expression_timezone: String,
    pub start_date: Option<Timestamp>,
    pub end_date: Timestamp,
    pub target_arn: String,
    pub role_arn: String,
    /// The target's input: a [`SchedulerInput`] as JSON, its time still the placeholder.
    pub input: String,
    pub dead_letter_arn: String,
    pub maximum_retry_attempts: i32,
    pub maximum_event_age_seconds: i32,
}

/// A schedule name: the task id, which must fit EventBridge's `[0-9a-zA-Z-_.]{1,64}`.
fn schedule_name(task_id: &str) -> Result<String, SchedulerError> {
    let fits = (1..=64).contains(&task_id.len())
        && task_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fits {
        Ok(task_id.to_owned())
    } else {
        Err(SchedulerError::InvalidTaskId {
            task_id: task_id.to_owned(),
        })
    }
}

/// The request that installs `schedule` at `now`.
pub fn schedule_request(
    config: &SchedulerConfig,
    schedule: &TaskSchedule,
    now: Timestamp,
) -> Result<ScheduleRequest, SchedulerError> {
    let name = schedule_name(&schedule.task_id)?;
    let input = SchedulerInput {
        task_id: schedule.task_id.clone(),
        scheduled_time: SCHEDULED_TIME_PLACEHOLDER.to_owned(),
    };
    let input = serde_json::to_string(&input).map_err(|e| SchedulerError::Backend {
        detail: format!("encode the schedule input: {e}"),
        retryable: false,
    })?;
    let start_date =
        (schedule.window_start > now - START_DATE_SLACK).then_some(schedule.window_start);
    Ok(ScheduleRequest {
        description: format!("Tidemark task {}", schedule.task_id),
        name,
        group_name: config.group_name.clone(),
        schedule_expression: schedule.cron_expression.clone(),
        schedule_expression_timezone: schedule.time_zone.clone(),
        start_date,
        end_date: schedule.window_end - SignedDuration::from_secs(1),
        target_arn: config.target_arn.clone(),
        role_arn: config.role_arn.clone(),
        input,
        dead_letter_arn: config.dead_letter_arn.clone(),
        maximum_retry_attempts: config.maximum_retry_attempts,
        maximum_event_age_seconds: config.maximum_event_age_seconds,
    })
}

fn backend(f: Failure) -> SchedulerError {
    SchedulerError::Backend {
        detail: f.detail,
        retryable: f.retryable,
    }
}

fn invalid(what: &str, e: impl std::fmt::Display) -> SchedulerError {
    SchedulerError::Backend {
        detail: format!("{what}: {e}"),
        retryable: false,
    }
}

fn to_datetime(at: Timestamp) -> DateTime {
    DateTime::from_secs_and_nanos(at.as_second(), at.subsec_nanosecond().unsigned_abs())
}

fn to_timestamp(at: &DateTime) -> Option<Timestamp> {
    Timestamp::new(at.secs(), i32::try_from(at.subsec_nanos()).ok()?).ok()
}

/// The parts of a request that CreateSchedule and UpdateSchedule share.
struct Parts {
    window: FlexibleTimeWindow,
    target: Target,
}

fn parts(r: &ScheduleRequest) -> Result<Parts, SchedulerError> {
    let window = FlexibleTimeWindow::builder()
        .mode(FlexibleTimeWindowMode::Off)
        .build()
        .map_err(|e| invalid("FlexibleTimeWindow", e))?;
    let target = Target::builder()
        .arn(&r.target_arn)
        .role_arn(&r.role_arn)
        .input(&r.input)
        .retry_policy(
            RetryPolicy::builder()
                .maximum_retry_attempts(r.maximum_retry_attempts)
                .maximum_event_age_in_seconds(r.maximum_event_age_seconds)
                .build(),
        )
        .dead_letter_config(DeadLetterConfig::builder().arn(&r.dead_letter_arn).build())
        .build()
        .map_err(|e| invalid("Target", e))?;
    Ok(Parts { window, target })
}

/// EventBridge Scheduler as the task scheduler.
#[derive(Clone, Debug)]
pub struct EventBridgeScheduler {
    client: Client,
    config: SchedulerConfig,
}

impl EventBridgeScheduler {
    pub fn new(client: Client, config: SchedulerConfig) -> EventBridgeScheduler {
        EventBridgeScheduler { client, config }
    }

    async fn create(&self, r: &ScheduleRequest) -> Result<(), Failure> {
        let Parts { window, target } = parts(r).map_err(|e| Failure {
            code: None,
            detail: e.to_string(),
            retryable: false,
        })?;
        self.client
            .create_schedule()
            .name(&r.name)
            .group_name(&r.group_name)
            .description(&r.description)
            .schedule_expression(&r.schedule_expression)
            .schedule_expression_timezone(&r.schedule_expression_timezone)
            .set_start_date(r.start_date.map(to_datetime))
            .end_date(to_datetime(r.end_date))
            .state(ScheduleState::Enabled)
            .flexible_time_window(window)
            .target(target)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failure("CreateSchedule", &e))
    }

    async fn update(&self, r: &ScheduleRequest) -> Result<(), SchedulerError> {
        let Parts { window, target } = parts(r)?;
        self.client
            .update_schedule()
            .name(&r.name)
            .group_name(&r.group_name)
            .description(&r.description)
            .schedule_expression(&r.schedule_expression)
            .schedule_expression_timezone(&r.schedule_expression_timezone)
            .set_start_date(r.start_date.map(to_datetime))
            .end_date(to_datetime(r.end_date))
            .state(ScheduleState::Enabled)
            .flexible_time_window(window)
            .target(target)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(failure("UpdateSchedule", &e)))
    }
}

#[async_trait]
impl TaskScheduler for EventBridgeScheduler {
    #[tracing::instrument(skip_all, fields(task_id = %schedule.task_id), err)]
    async fn put_schedule(&self, schedule: &TaskSchedule) -> Result<(), SchedulerError> {
        let request = schedule_request(&self.config, schedule, Timestamp::now())?;
        match self.create(&request).await {
            Ok(()) => Ok(()),
            // The task already has a schedule (a changed one, or a retried start): replace it.
            Err(f) if f.is("ConflictException") => self.update(&request).await,
            Err(f) => Err(backend(f)),
        }
    }

    async fn get_schedule(
        &self,
        task_id: &str,
    ) -> Result<Option<InstalledSchedule>, SchedulerError> {
        let name = schedule_name(task_id)?;
        let out = match self
            .client
            .get_schedule()
            .name(&name)
            .group_name(&self.config.group_name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let f = failure("GetSchedule", &e);
                return if f.is("ResourceNotFoundException") {
                    Ok(None)
                } else {
                    Err(backend(f))
                };
            }
        };
        Ok(Some(InstalledSchedule {
            task_id: task_id.to_owned(),
            cron_expression: out.schedule_expression().unwrap_or_default().to_owned(),
            time_zone: out
                .schedule_expression_timezone()
                .unwrap_or("UTC")
                .to_owned(),
            not_before: out.start_date().and_then(to_timestamp),
            not_after: out.end_date().and_then(to_timestamp),
            enabled: out.state() == Some(&ScheduleState::Enabled),
        }))
    }

    #[tracing::instrument(skip_all, fields(task_id = %task_id), err)]
    async fn remove_schedule(&self, task_id: &str) -> Result<(), SchedulerError> {
        let name = schedule_name(task_id)?;
        match self
            .client
            .delete_schedule()
            .name(&name)
            .group_name(&self.config.group_name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = failure("DeleteSchedule", &e);
                if f.is("ResourceNotFoundException") {
                    Ok(())
                } else {
                    Err(backend(f))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tidemark_core::ScheduleSpec;
    use tidemark_core::schedule::Schedule;

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a timestamp")
    }

    fn config() -> SchedulerConfig {
        SchedulerConfig::new(
            "tidemark-prod",
            "arn:aws:lambda:eu-west-1:123456789012:function:tidemark-run-cycle",
            "arn:aws:iam::123456789012:role/tidemark-scheduler",
            "arn:aws:sqs:eu-west-1:123456789012:tidemark-cycle-dlq",
        )
    }

    fn task_schedule(task_id: &str, json: &str) -> TaskSchedule {
        let spec: ScheduleSpec = serde_json::from_str(json).expect("schedule json");
        TaskSchedule::new(
            task_id,
            &Schedule::from_spec(&spec).expect("valid schedule"),
        )
    }

    #[test]
    fn a_day_cycle_fires_every_day_at_its_local_time_inside_the_window() {
        let s = task_schedule(
            "task-1",
            r#"{"cycle":"day","at":"02:30","time_zone":"Asia/Shanghai","start":"2026-12-01","end":"2027-06-30"}"#,
        );
        let r = schedule_request(&config(), &s, ts("2026-11-20T00:00:00Z")).expect("request");
        assert_eq!(r.name, "task-1");
        assert_eq!(r.group_name, "tidemark-prod");
        assert_eq!(r.schedule_expression, "cron(30 2 * * ? *)");
        assert_eq!(r.schedule_expression_timezone, "Asia/Shanghai");
        // 2026-12-01 00:00 in Shanghai (UTC+8), and the last second of 2027-06-30 there.
        assert_eq!(r.start_date, Some(ts("2026-11-30T16:00:00Z")));
        assert_eq!(r.end_date, ts("2027-06-30T15:59:59Z"));
        assert_eq!(r.target_arn, config().target_arn);
        assert_eq!(r.role_arn, config().role_arn);
        assert_eq!(r.dead_letter_arn, config().dead_letter_arn);
        assert_eq!(
            (r.maximum_retry_attempts, r.maximum_event_age_seconds),
            (10, 3600)
        );
        let input: serde_json::Value = serde_json::from_str(&r.input).expect("JSON input");
        assert_eq!(
            input,
            serde_json::json!({"task_id": "task-1", "scheduled_time": "<aws.scheduler.scheduled-time>"})
        );
    }

    #[test]
    fn a_week_cycle_names_its_days_and_keeps_its_zone_across_dst() {
        let s = task_schedule(
            "task-2",
            r#"{"cycle":"week","days":["thu","mon","thu"],"at":"23:05","time_zone":"America/New_York","start":"2026-03-01","end":"2026-12-31"}"#,
        );
        let r = schedule_request(&config(), &s, ts("2026-02-01T00:00:00Z")).expect("request");
        assert_eq!(r.schedule_expression, "cron(5 23 ? * MON,THU *)");
        assert_eq!(r.schedule_expression_timezone, "America/New_York");
        // The window opens on EST (UTC-5) and closes on EST again, with EDT between: the zone,
        // not a fixed offset, carries the local time through both changes.
        assert_eq!(r.start_date, Some(ts("2026-03-01T05:00:00Z")));
        assert_eq!(r.end_date, ts("2027-01-01T04:59:59Z"));
        let input: SchedulerInput = serde_json::from_str(&r.input).expect("input");
        assert_eq!(input.task_id, "task-2");
        assert_eq!(input.scheduled_time, SCHEDULED_TIME_PLACEHOLDER);
    }

    #[test]
    fn a_window_that_already_began_is_sent_without_a_start_date() {
        let s = task_schedule(
            "task-3",
            r#"{"cycle":"day","at":"00:00","time_zone":"UTC","start":"2026-12-01","end":"2026-12-31"}"#,
        );
        let at = |now| {
            schedule_request(&config(), &s, ts(now))
                .expect("request")
                .start_date
        };
        assert_eq!(at("2026-12-01T00:03:00Z"), Some(ts("2026-12-01T00:00:00Z")));
        assert_eq!(at("2026-12-01T00:04:00Z"), None);
        assert_eq!(at("2026-12-15T00:00:00Z"), None);
    }

    #[test]
    fn the_window_holds_exactly_its_cycles_however_its_edges_are_read() {
        // A cycle at 00:00 sits on both edges: the first day's is in, the day after `end`'s out.
        let spec: ScheduleSpec = serde_json::from_str(
            r#"{"cycle":"day","at":"00:00","time_zone":"Europe/Berlin","start":"2026-12-01","end":"2026-12-03"}"#,
        )
        .expect("spec");
        let schedule = Schedule::from_spec(&spec).expect("schedule");
        let r = schedule_request(
            &config(),
            &TaskSchedule::new("t", &schedule),
            ts("2026-11-01T00:00:00Z"),
        )
        .expect("request");
        let start = r.start_date.expect("a future window has a start date");
        let fired: Vec<Timestamp> = schedule
            .between(start - SignedDuration::from_secs(1), r.end_date)
            .iter()
            .map(|z| z.timestamp())
            .collect();
        assert_eq!(
            fired,
            [
                ts("2026-11-30T23:00:00Z"),
                ts("2026-12-01T23:00:00Z"),
                ts("2026-12-02T23:00:00Z")
            ]
        );
        assert_eq!(
            fired[0], start,
            "the first cycle is at StartDate, which is inclusive"
        );
        assert!(r.end_date < schedule.window_end());
    }

    #[test]
    fn task_ids_that_cannot_name_a_schedule_are_refused() {
        let mut s = task_schedule(
            "ok",
            r#"{"cycle":"day","at":"02:30","time_zone":"UTC","start":"2026-12-01","end":"2026-12-31"}"#,
        );
        for bad in ["", "has space", "slash/y", &"x".repeat(65)] {
            s.task_id = bad.to_owned();
            let r = schedule_request(&config(), &s, ts("2026-11-01T00:00:00Z"));
            assert!(
                matches!(r, Err(SchedulerError::InvalidTaskId { .. })),
                "{bad:?}: {r:?}"
            );
        }
        s.task_id = "tsk_01HX-9.a".into();
        assert!(schedule_request(&config(), &s, ts("2026-11-01T00:00:00Z")).is_ok());
    }
}
