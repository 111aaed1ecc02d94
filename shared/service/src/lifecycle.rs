//! Between creation and the cycles: test one endpoint's connectivity, precheck a task (in the
//! background), start it (only after a precheck that passed and is newer than its last change),
//! stop it, and preview its schedule.

use std::sync::Arc;
use std::time::Instant;

use jiff::{Timestamp, ZonedDateTime};
use serde::Serialize;
use tidemark_core::ports::{StoreError, TaskSchedule};
use tidemark_core::precheck::{CheckResult, PrecheckReport, ids};
use tidemark_core::schedule::Schedule;
use tidemark_core::state::{PrecheckState, PrecheckSummary, TaskRecord, TaskStatus};
use tidemark_core::{EndpointSpec, PasswordSource};
use tidemark_engine::{ConnectOptions, probe};

use crate::error::ServiceError;
use crate::precheck::precheck_task;
use crate::tasks::TaskService;

/// Most scheduled times a preview lists.
pub const MAX_PREVIEW: usize = 100;

/// What `POST /connections/test` found.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionTest {
    pub ok: bool,
    /// `host:port`.
    pub endpoint: String,
    /// On failure: a stable code (`refused`, `unreachable`, `no_greeting`, `access_denied`,
    /// `tls`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerFacts>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerFacts {
    pub flavor: String,
    pub version: String,
    pub version_string: String,
}

/// A task's precheck as `GET /tasks/{id}/precheck` shows it.
#[derive(Debug, Clone)]
pub enum PrecheckView {
    Running {
        at: Timestamp,
    },
    Done {
        summary: PrecheckSummary,
        /// Older than the task's last change: it no longer lets the task start.
        stale: bool,
        report: serde_json::Value,
    },
}

/// The next scheduled times of a task.
#[derive(Debug, Clone, Serialize)]
pub struct SchedulePreview {
    pub task_id: String,
    pub time_zone: String,
    pub cron_expression: String,
    /// RFC 3339 with the zone's offset at that time.
    pub times: Vec<String>,
}

impl TaskService {
    /// One endpoint's reachability, authentication, TLS and server version, within its
    /// connect timeout. A failure to connect is an answer (`ok: false`), not an error.
    pub async fn test_connection(&self, body: &str) -> Result<ConnectionTest, ServiceError> {
        let endpoint = parse_endpoint(body)?;
        let started = Instant::now();
        let checked = match endpoint.password_source() {
            Some(PasswordSource::Secret(reference)) => {
                self.check_given_secret(reference, "endpoint").await
            }
            _ => Ok(()),
        };
        let opts = match checked {
            Ok(()) => self.endpoint_options(&endpoint, "endpoint").await,
            Err(e) => Err(e),
        };
        let opts = match opts {
            Ok(opts) => opts,
            // A name that does not resolve is an answer too.
            Err(ServiceError::Connect { source, .. }) => {
                return Ok(ConnectionTest {
                    ok: false,
                    endpoint: ConnectOptions::from_endpoint(&endpoint, "".into()).endpoint(),
                    code: Some(source.code()),
                    message: source.to_string(),
                    server: None,
                    elapsed_ms: elapsed_ms(started),
                });
            }
            // The body is the endpoint: its fields are named without a prefix.
            Err(e) => return Err(e.without_field_prefix("endpoint.")),
        };
        let result = probe(&opts).await;
        let elapsed_ms = elapsed_ms(started);
        Ok(match result {
            Ok(info) => ConnectionTest {
                ok: true,
                endpoint: opts.endpoint(),
                code: None,
                message: format!("connected to {} {}", info.flavor, info.version),
                server: Some(ServerFacts {
                    flavor: info.flavor.to_string(),
                    version: info.version,
                    version_string: info.version_string,
                }),
                elapsed_ms,
            },
            Err(e) => ConnectionTest {
                ok: false,
                endpoint: opts.endpoint(),
                code: Some(e.code()),
                message: e.to_string(),
                server: None,
                elapsed_ms,
            },
        })
    }

    /// Starts a precheck in the background and answers at once with the task (`prechecking`).
    /// A precheck already running is not started twice. With a precheck queue
    /// ([`crate::Host::with_precheck_queue`]) the precheck is sent to it instead of run here.
    pub async fn start_precheck(self: &Arc<Self>, id: &str) -> Result<TaskRecord, ServiceError> {
        let task = self.get_live(id).await?;
        self.check_hosts(&task.spec).await?;
        self.check_secrets(&task.spec).await?;
        if let Some(queued) = self.precheck_queue.as_ref() {
            return self.enqueue_precheck(queued, task).await;
        }
        if !self.jobs.begin_precheck(id) {
            return Ok(task);
        }
        let at = self.ports.clock.now();
        let task = match self.mark_precheck_running(id, at).await {
            Ok(task) => task,
            Err(e) => {
                self.jobs.end_precheck(id);
                return Err(e);
            }
        };
        let this = Arc::clone(self);
        let spec_task = task.clone();
        let spawned = self.jobs.spawn(async move {
            match this.run_precheck(&spec_task, at).await {
                Ok(passed) => tracing::info!(task = %spec_task.id, passed, "precheck finished"),
                Err(e) => {
                    tracing::error!(task = %spec_task.id, error = %e, "precheck not recorded");
                }
            }
            this.jobs.end_precheck(&spec_task.id);
        });
        if !spawned {
            self.jobs.end_precheck(id);
            return Err(shutting_down());
        }
        Ok(task)
    }

    /// Records a precheck started at `at` as running: the task's summary, and its status unless
    /// it is scheduled or running.
    pub(crate) async fn mark_precheck_running(
        &self,
        id: &str,
        at: Timestamp,
    ) -> Result<TaskRecord, ServiceError> {
        self.modify_task(id, |t| {
            t.precheck = Some(PrecheckSummary {
                at,
                state: PrecheckState::Running,
                failed: Vec::new(),
                warned: Vec::new(),
            });
            if !matches!(t.status, TaskStatus::Scheduled | TaskStatus::Running) {
                t.status = TaskStatus::Prechecking;
                t.status_reason = None;
            }
            true
        })
        .await
    }

    /// Runs the precheck started at `at` and stores its report and summary; whether it passed.
    /// A newer precheck keeps the summary: this one's report is stored under its own time only.
    pub(crate) async fn run_precheck(
        &self,
        task: &TaskRecord,
        at: Timestamp,
    ) -> Result<bool, ServiceError> {
        let spec = &task.spec;
        let source = self.endpoint_options(&spec.source, "source").await;
        let destination = self
            .endpoint_options(&spec.destination, "destination")
            .await;
        let report = match (source, destination) {
            (Ok(s), Ok(d)) => precheck_task(spec, &s, &d, at).await,
            (s, d) => self.unavailable_logins(s.err(), d.err(), at),
        };
        let summary = PrecheckSummary {
            at,
            state: if report.passed() {
                PrecheckState::Passed
            } else {
                PrecheckState::Failed
            },
            failed: report.failed_ids(),
            warned: report.warned_ids(),
        };
        let value = serde_json::to_value(&report).map_err(|e| {
            ServiceError::Store(StoreError::Backend {
                detail: format!(
                    "the precheck report of task {} does not encode: {e}",
                    task.id
                ),
                retryable: false,
            })
        })?;
        let expires_at = self.worker.driver.expiry(at);
        self.ports
            .store
            .put_precheck(&task.id, at, expires_at, &value)
            .await?;
        let passed = summary.state == PrecheckState::Passed;
        self.modify_task(&task.id, |t| {
            // A newer precheck owns the summary now.
            if t.precheck.as_ref().is_none_or(|p| p.at != at) {
                return false;
            }
            t.precheck = Some(summary.clone());
            if t.status == TaskStatus::Prechecking {
                t.status = if passed {
                    TaskStatus::Prechecked
                } else {
                    TaskStatus::PrecheckFailed
                };
            }
            true
        })
        .await?;
        Ok(passed)
    }

    /// A report for a precheck that could not connect because an endpoint's login is not
    /// available (a password or secret unreadable, no account name).
    fn unavailable_logins(
        &self,
        source: Option<ServiceError>,
        destination: Option<ServiceError>,
        at: Timestamp,
    ) -> PrecheckReport {
        let remedy = "fix what the message names; endpoints cannot be patched: to give another \
                      password or user, create the task again";
        let check = |id: &str, e: Option<ServiceError>| match e {
            Some(e) => CheckResult::fail(id, format!("the login is not available: {e}"), remedy),
            None => CheckResult::pass(id, "the login is available"),
        };
        PrecheckReport {
            checks: vec![
                check(ids::SOURCE_CONNECTIVITY, source),
                check(ids::DESTINATION_CONNECTIVITY, destination),
            ],
            started_at: at,
            finished_at: self.ports.clock.now(),
        }
    }

    /// The latest precheck: running, or its report.
    pub async fn precheck_report(&self, id: &str) -> Result<PrecheckView, ServiceError> {
        let task = self.get(id).await?;
        let Some(summary) = task.precheck.clone() else {
            return Err(ServiceError::NotFound {
                what: format!("a precheck of task {id} (start one with POST /tasks/{id}/precheck)"),
            });
        };
        if summary.state == PrecheckState::Running {
            if self.jobs.precheck_running(id) || self.queued_precheck_running(&summary) {
                return Ok(PrecheckView::Running { at: summary.at });
            }
            let why = match self.precheck_queue.as_ref() {
                Some(queued) => format!(
                    "did not report within {} of its start",
                    queued.describe_window()
                ),
                None => "was interrupted (the server stopped)".to_owned(),
            };
            return Err(ServiceError::Conflict {
                code: "precheck_interrupted",
                message: format!(
                    "the precheck of task {id} {why}: start it again with POST /tasks/{id}/precheck"
                ),
                checks: Vec::new(),
            });
        }
        let report = match self.ports.store.latest_precheck(id).await? {
            Some((at, report)) if at == summary.at => report,
            _ => {
                return Err(ServiceError::NotFound {
                    what: format!("the precheck report of task {id} at {}", summary.at),
                });
            }
        };
        Ok(PrecheckView::Done {
            stale: summary.at <= task.changed_at,
            summary,
            report,
        })
    }

    /// Schedules the task: 409 unless its latest precheck passed after its last change.
    pub async fn start(&self, id: &str) -> Result<TaskRecord, ServiceError> {
        let task = self.get_live(id).await?;
        if task.status == TaskStatus::Scheduled {
            return Ok(task);
        }
        precheck_gate(&task, "start")?;
        let schedule =
            Schedule::from_spec(&task.spec.schedule).map_err(|e| ServiceError::Invalid {
                field: e.field,
                message: e.message,
            })?;
        let now = self.ports.clock.now();
        if schedule.next_after(now).is_none() {
            return Err(ServiceError::Conflict {
                code: "schedule_over",
                message: format!(
                    "task {id}'s schedule has no cycle after now (its window ends {}): PATCH the schedule's end date",
                    task.spec.schedule.end
                ),
                checks: Vec::new(),
            });
        }
        self.ports
            .scheduler
            .put_schedule(&TaskSchedule::new(id, &schedule))
            .await?;
        let task = self
            .modify_task(id, |t| {
                if t.status != TaskStatus::Running {
                    t.status = TaskStatus::Scheduled;
                }
                t.status_reason = None;
                true
            })
            .await?;
        let task = self.sync_schedule(task).await?;
        tracing::info!(task = %id, "task started");
        Ok(task)
    }

    /// Makes the scheduler agree with the task's status as stored, again whenever the status
    /// moved meanwhile (a stop racing a start): whichever request writes last, the status and
    /// the installed schedule end up in agreement.
    async fn sync_schedule(&self, mut task: TaskRecord) -> Result<TaskRecord, ServiceError> {
        loop {
            match task.status {
                TaskStatus::Scheduled => {
                    if let Ok(schedule) = Schedule::from_spec(&task.spec.schedule) {
                        self.ports
                            .scheduler
                            .put_schedule(&TaskSchedule::new(&task.id, &schedule))
                            .await?;
                    }
                }
                // A run decides at its end (after_run), from the schedule as it is then.
                TaskStatus::Running => {}
                _ => self.ports.scheduler.remove_schedule(&task.id).await?,
            }
            let now = self.get(&task.id).await?;
            if now.version == task.version {
                return Ok(now);
            }
            task = now;
        }
    }

    /// Removes the schedule; a run going on goes on (cancel it on its own).
    pub async fn stop(&self, id: &str) -> Result<TaskRecord, ServiceError> {
        self.get(id).await?;
        self.ports.scheduler.remove_schedule(id).await?;
        let task = self
            .modify_task(id, |t| {
                if !matches!(t.status, TaskStatus::Scheduled | TaskStatus::Running) {
                    return false;
                }
                t.status = TaskStatus::Stopped;
                t.status_reason = Some("stopped by the user".into());
                true
            })
            .await?;
        let task = self.sync_schedule(task).await?;
        tracing::info!(task = %id, "task stopped");
        Ok(task)
    }

    /// The next `count` scheduled times after now ("View Scheduled Time").
    pub async fn schedule_preview(
        &self,
        id: &str,
        count: Option<usize>,
    ) -> Result<SchedulePreview, ServiceError> {
        let count = match count {
            None => 10,
            Some(n) if (1..=MAX_PREVIEW).contains(&n) => n,
            Some(n) => {
                return Err(ServiceError::Invalid {
                    field: "count".into(),
                    message: format!("count must be 1 to {MAX_PREVIEW}; got {n}"),
                });
            }
        };
        let task = self.get(id).await?;
        let schedule =
            Schedule::from_spec(&task.spec.schedule).map_err(|e| ServiceError::Invalid {
                field: e.field,
                message: e.message,
            })?;
        let times = schedule
            .upcoming(self.ports.clock.now(), count)
            .iter()
            .map(rfc3339)
            .collect();
        Ok(SchedulePreview {
            task_id: task.id,
            time_zone: schedule.time_zone_name().to_owned(),
            cron_expression: schedule.cron_expression(),
            times,
        })
    }
}

/// A task may start, or run now, only when its latest precheck passed and is newer than its
/// last change (`action` names what was asked: "start" or "run").
pub(crate) fn precheck_gate(task: &TaskRecord, action: &str) -> Result<(), ServiceError> {
    let id = &task.id;
    let conflict = |code, message: String, checks| ServiceError::Conflict {
        code,
        message,
        checks,
    };
    match &task.precheck {
        None => Err(conflict(
            "precheck_required",
            format!(
                "task {id} has not been prechecked: POST /tasks/{id}/precheck, and {action} it once the precheck passes"
            ),
            Vec::new(),
        )),
        Some(p) if p.state == PrecheckState::Running => Err(conflict(
            "precheck_running",
            format!(
                "task {id}'s precheck is still running: poll GET /tasks/{id}/precheck, then {action} it"
            ),
            Vec::new(),
        )),
        Some(p) if p.at <= task.changed_at => Err(conflict(
            "precheck_stale",
            format!(
                "task {id} changed at {} after its last precheck at {}: precheck it again, then {action} it",
                task.changed_at, p.at
            ),
            p.failed.clone(),
        )),
        Some(p) if p.state == PrecheckState::Failed => Err(conflict(
            "precheck_failed",
            format!(
                "task {id}'s latest precheck failed ({}): fix what each check's remedy says, precheck again, then {action} it",
                p.failed.join(", ")
            ),
            p.failed.clone(),
        )),
        Some(_) => Ok(()),
    }
}

/// An instant as RFC 3339 with its zone's offset (`2026-12-01T02:30:00+08:00`).
pub fn rfc3339(at: &ZonedDateTime) -> String {
    at.timestamp().display_with_offset(at.offset()).to_string()
}

fn parse_endpoint(body: &str) -> Result<EndpointSpec, ServiceError> {
    let mut de = serde_json::Deserializer::from_str(body);
    let endpoint: EndpointSpec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // A type error may quote the value, and the value may be a password.
        let message = if field.starts_with("password") {
            "must be a string; the value is not shown because it may be a secret".to_owned()
        } else {
            format!("the body must be one endpoint as a task spec writes it: {inner}")
        };
        ServiceError::Invalid {
            field: if field == "." { String::new() } else { field },
            message,
        }
    })?;
    if endpoint.host.trim().is_empty() {
        return Err(ServiceError::Invalid {
            field: "host".into(),
            message: "host must not be empty".into(),
        });
    }
    if endpoint.password_env.is_some() {
        return Err(ServiceError::Invalid {
            field: "password_env".into(),
            message: "password_env is for the command line only: give password or password_secret"
                .into(),
        });
    }
    if endpoint.password_source().is_none() {
        return Err(ServiceError::Invalid {
            field: "password".into(),
            message: "give exactly one of password or password_secret".into(),
        });
    }
    Ok(endpoint)
}

fn shutting_down() -> ServiceError {
    ServiceError::Conflict {
        code: "shutting_down",
        message: "the server is shutting down: try again once it is back".into(),
        checks: Vec::new(),
    }
}

pub(crate) fn conflict_shutting_down() -> ServiceError {
    shutting_down()
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
