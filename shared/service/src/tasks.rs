//! The task use cases over the ports: create, list, read, patch, delete, and what they share
//! (the service itself, passwords, conditional task updates).
//!
//! A stored task never holds a password: an inline one goes to the secret store at creation and
//! the spec keeps its reference (`password_secret`), deleted with the task.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tidemark_core::ports::{
    Clock, EndpointRole, PrecheckQueue, SecretError, SecretStore, StateStore, StoreError,
    TaskScheduler,
};
use tidemark_core::state::{Page, TaskRecord, TaskStatus};
use tidemark_core::{PasswordSource, TaskSpec, parse_task_spec};

use crate::allowlist::Allowlist;
use crate::driver::WorkerConfig;
use crate::error::ServiceError;
use crate::jobs::Jobs;
use crate::precheck_queue::QueuedPrechecks;
use crate::secret_scope::SecretScope;

/// The ports the use cases run over.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn StateStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub scheduler: Arc<dyn TaskScheduler>,
    pub clock: Arc<dyn Clock>,
}

/// The fields `PATCH /tasks/{id}` may change; the endpoints, the policy and the migration types
/// are fixed at creation, as in DTS.
pub const PATCHABLE_FIELDS: [&str; 5] =
    ["name", "objects", "schedule", "failure_policy", "channel"];

/// Why the API refuses a spec's `id`: a caller who chose one would look for the task under it.
const SPEC_ID_REFUSED: &str = "`id` is for `tidemark run` only: the service assigns a task's id \
     (the `id` of the created task); remove `id` from the body";

/// Most items a page may hold.
pub const MAX_PAGE: u32 = 100;
/// Items a page holds when the caller does not say.
pub const DEFAULT_PAGE: u32 = 20;

/// How a host does what outlives a request, fixed at construction: its runs go through a step
/// queue (SQS on AWS, a table of the state file in `tidemark serve`) to the one driver; its
/// prechecks run in this process, or go through a queue where the process cannot go on working
/// once it has answered (Lambda).
#[derive(Clone)]
pub struct Host {
    pub worker: WorkerConfig,
    prechecks: Option<(Arc<dyn PrecheckQueue>, Duration)>,
    secret_scope: SecretScope,
}

impl Host {
    /// Runs through `worker`'s queue; prechecks in this process; any secret may be named.
    pub fn new(worker: WorkerConfig) -> Host {
        Host {
            worker,
            prechecks: None,
            secret_scope: SecretScope::any(),
        }
    }

    /// Lets tasks name only the secrets in `scope` (besides the ones the service makes):
    /// the deployment's, on AWS the same scope its IAM policy grants.
    pub fn with_secret_scope(mut self, scope: SecretScope) -> Host {
        self.secret_scope = scope;
        self
    }

    /// Sends every precheck to `queue` instead of running it in this process; a queued precheck
    /// counts as running for `window` after it starts (see [`crate::queued_precheck`]).
    pub fn with_precheck_queue(mut self, queue: Arc<dyn PrecheckQueue>, window: Duration) -> Host {
        self.prechecks = Some((queue, window));
        self
    }
}

/// The task use cases, shared by every request and background job (hold it in an `Arc`).
pub struct TaskService {
    pub(crate) ports: Ports,
    pub(crate) allowlist: Allowlist,
    pub(crate) jobs: Jobs,
    pub(crate) worker: WorkerConfig,
    /// Set where prechecks go through a queue (Lambda); unset, they run in this process.
    pub(crate) precheck_queue: Option<QueuedPrechecks>,
    pub(crate) secret_scope: SecretScope,
}

impl TaskService {
    pub fn new(ports: Ports, allowlist: Allowlist, host: Host) -> Arc<TaskService> {
        let precheck_queue = host.prechecks.map(|(queue, window)| QueuedPrechecks {
            queue,
            window: jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX),
        });
        Arc::new(TaskService {
            ports,
            allowlist,
            jobs: Jobs::default(),
            worker: host.worker,
            precheck_queue,
            secret_scope: host.secret_scope,
        })
    }

    /// The service's clock's now.
    pub fn now(&self) -> jiff::Timestamp {
        self.ports.clock.now()
    }

    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Creates a task from a spec's JSON: parsed and validated, both hosts allowed, inline
    /// passwords moved to the secret store.
    pub async fn create(&self, body: &str) -> Result<TaskRecord, ServiceError> {
        let mut spec = parse_task_spec(body)?;
        if spec.id.is_some() {
            return Err(ServiceError::Invalid {
                field: "id".into(),
                message: SPEC_ID_REFUSED.into(),
            });
        }
        self.check_hosts(&spec).await?;
        self.check_given_secrets(&spec).await?;
        let id = new_task_id();
        let mut owned = Vec::new();
        let stored = self.store_passwords(&id, &mut spec, &mut owned).await;
        let now = self.ports.clock.now();
        let task = TaskRecord {
            id,
            spec,
            status: TaskStatus::Created,
            status_reason: None,
            version: 1,
            created_at: now,
            changed_at: now,
            precheck: None,
            owned_secrets: owned,
            last_run: None,
        };
        let created = match stored {
            Ok(()) => self
                .ports
                .store
                .create_task(&task)
                .await
                .map_err(Into::into),
            Err(e) => Err(e),
        };
        if let Err(e) = created {
            // Nothing may outlive a task that was not created.
            self.delete_secrets(&task.owned_secrets).await;
            return Err(e);
        }
        tracing::info!(task = %task.id, "task created");
        Ok(task)
    }

    async fn store_passwords(
        &self,
        id: &str,
        spec: &mut TaskSpec,
        owned: &mut Vec<String>,
    ) -> Result<(), ServiceError> {
        for role in [EndpointRole::Source, EndpointRole::Destination] {
            let endpoint = match role {
                EndpointRole::Source => &mut spec.source,
                EndpointRole::Destination => &mut spec.destination,
            };
            let at = role.as_str();
            match endpoint.password_source() {
                Some(PasswordSource::Inline(password)) => {
                    let password = password.clone();
                    // Validation requires `user` with an inline password.
                    let user = endpoint.user.clone().unwrap_or_default();
                    let reference = self
                        .ports
                        .secrets
                        .create_secret(id, role, &user, &password)
                        .await?;
                    owned.push(reference.clone());
                    endpoint.password = None;
                    endpoint.password_secret = Some(reference);
                }
                Some(PasswordSource::Secret(reference)) => {
                    self.check_secret_login(endpoint, reference, at).await?;
                }
                Some(PasswordSource::Env(_)) => {
                    // Through the API, a caller could otherwise send any of the server's
                    // environment variables to a host of their choosing.
                    return Err(ServiceError::Invalid {
                        field: format!("{at}.password_env"),
                        message: format!(
                            "password_env is for the command line only: through the API, give {at}.password (kept in the server's secrets file) or {at}.password_secret"
                        ),
                    });
                }
                None => {
                    return Err(ServiceError::Invalid {
                        field: format!("{at}.password"),
                        message: "give exactly one of password or password_secret".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// A page of tasks in id order.
    pub async fn list(
        &self,
        limit: Option<u32>,
        next: Option<&str>,
    ) -> Result<Page<TaskRecord>, ServiceError> {
        let limit = page_limit(limit)?;
        self.ports
            .store
            .list_tasks(limit, next)
            .await
            .map_err(bad_cursor)
    }

    pub async fn get(&self, id: &str) -> Result<TaskRecord, ServiceError> {
        self.ports
            .store
            .get_task(id)
            .await?
            .ok_or_else(|| task_not_found(id))
    }

    /// Changes the patchable fields; a real change sets `changed_at` (so the last precheck no
    /// longer counts) and puts the task back to `created`. A started task must be stopped first.
    pub async fn patch(&self, id: &str, body: &str) -> Result<TaskRecord, ServiceError> {
        let patch = parse_patch(body)?;
        loop {
            let mut task = self.get_live(id).await?;
            if matches!(
                task.status,
                TaskStatus::Scheduled | TaskStatus::Running | TaskStatus::Prechecking
            ) {
                return Err(ServiceError::Conflict {
                    code: "task_active",
                    message: format!(
                        "task {id} is {}: stop it (POST /tasks/{id}/stop) or wait for its precheck before changing it",
                        status_name(task.status)
                    ),
                    checks: Vec::new(),
                });
            }
            let mut value = serde_json::to_value(&task.spec).map_err(|e| {
                ServiceError::Store(StoreError::Backend {
                    detail: format!("task {id}'s spec does not encode: {e}"),
                    retryable: false,
                })
            })?;
            if let serde_json::Value::Object(fields) = &mut value {
                for (key, v) in &patch {
                    fields.insert(key.clone(), v.clone());
                }
            }
            let spec = parse_task_spec(&value.to_string())?;
            self.check_hosts(&spec).await?;
            if spec == task.spec {
                return Ok(task);
            }
            task.spec = spec;
            task.changed_at = self.ports.clock.now();
            task.status = TaskStatus::Created;
            task.status_reason = None;
            match self.ports.store.update_task(&task).await {
                Ok(version) => {
                    task.version = version;
                    return Ok(task);
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A task that is not being deleted: one that is answers 409 `task_deleting`.
    pub(crate) async fn get_live(&self, id: &str) -> Result<TaskRecord, ServiceError> {
        let task = self.get(id).await?;
        if task.status == TaskStatus::Deleting {
            return Err(ServiceError::Conflict {
                code: "task_deleting",
                message: format!(
                    "task {id} is being deleted (a run's clean-up is pending); it can change no \
                     more: wait for it to go, or DELETE /tasks/{id}?force=true to abandon the \
                     clean-up"
                ),
                checks: Vec::new(),
            });
        }
        Ok(task)
    }

    /// Deletes the secrets the task owns (a secret already gone is not an error).
    pub(crate) async fn delete_owned_secrets(&self, task: &TaskRecord) -> Result<(), ServiceError> {
        for reference in &task.owned_secrets {
            match self.ports.secrets.delete_secret(reference).await {
                Ok(()) | Err(SecretError::NotOwned { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Both endpoints' hosts against the allowlist (422 naming the first host refused). A
    /// connection checks its host again when it is made ([`crate::Allowlist::reach`]).
    pub async fn check_hosts(&self, spec: &TaskSpec) -> Result<(), ServiceError> {
        self.allowlist
            .check("source.host", &spec.source.host)
            .await?;
        self.allowlist
            .check("destination.host", &spec.destination.host)
            .await
    }

    async fn delete_secrets(&self, references: &[String]) {
        for reference in references {
            if let Err(e) = self.ports.secrets.delete_secret(reference).await {
                tracing::warn!(%reference, error = %e, "a secret could not be deleted");
            }
        }
    }

    /// Reads the task, changes it and writes it back, again on a lost race. `change` returns
    /// `false` to leave the task as it is.
    pub(crate) async fn modify_task(
        &self,
        id: &str,
        change: impl Fn(&mut TaskRecord) -> bool,
    ) -> Result<TaskRecord, ServiceError> {
        loop {
            let mut task = self.get(id).await?;
            if !change(&mut task) {
                return Ok(task);
            }
            match self.ports.store.update_task(&task).await {
                Ok(version) => {
                    task.version = version;
                    return Ok(task);
                }
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn parse_patch(body: &str) -> Result<serde_json::Map<String, serde_json::Value>, ServiceError> {
    let invalid = |field: &str, message: String| ServiceError::Invalid {
        field: field.to_owned(),
        message,
    };
    let patch: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(body).map_err(|e| {
            invalid(
                "",
                format!("the body must be a JSON object of the fields to change: {e}"),
            )
        })?;
    if patch.is_empty() {
        return Err(invalid(
            "",
            format!(
                "nothing to change: give one or more of {}",
                PATCHABLE_FIELDS.join(", ")
            ),
        ));
    }
    for key in patch.keys() {
        if !PATCHABLE_FIELDS.contains(&key.as_str()) {
            let message = match key.as_str() {
                "id" => SPEC_ID_REFUSED.into(),
                "source" | "destination" | "policy" | "migration_types" => format!(
                    "`{key}` is fixed at creation (as in DTS); create a new task to change it"
                ),
                _ => format!(
                    "unknown field `{key}`; a patch may change {}",
                    PATCHABLE_FIELDS.join(", ")
                ),
            };
            return Err(invalid(key, message));
        }
    }
    Ok(patch)
}

/// `limit` within 1..=100 (20 when absent).
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, ServiceError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ServiceError::Invalid {
            field: "limit".into(),
            message: format!("limit must be 1 to {MAX_PAGE}; got {n}"),
        }),
    }
}

/// A cursor the store did not hand out is the caller's mistake.
pub(crate) fn bad_cursor(e: StoreError) -> ServiceError {
    match e {
        StoreError::BadCursor => ServiceError::Invalid {
            field: "next".into(),
            message: e.to_string(),
        },
        other => other.into(),
    }
}

pub(crate) fn task_not_found(id: &str) -> ServiceError {
    ServiceError::NotFound {
        what: format!("task {id}"),
    }
}

pub(crate) fn status_name(status: TaskStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A new task id: `tsk-` and 16 hex digits, random (usable as a schedule name, a key, a path).
fn new_task_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_i128(jiff::Timestamp::now().as_nanosecond());
    format!("tsk-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_names_the_field_it_refuses() {
        for (body, field) in [
            (r#"{"policy": {"mode": "resync"}}"#, "policy"),
            (r#"{"source": {}}"#, "source"),
            (r#"{"colour": 1}"#, "colour"),
            (r#"{"id": "shop"}"#, "id"),
            ("[]", ""),
            ("{}", ""),
        ] {
            match parse_patch(body) {
                Err(ServiceError::Invalid { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(parse_patch(r#"{"name": "x", "channel": {"workers": 2}}"#).is_ok());
    }

    #[test]
    fn task_ids_are_distinct_and_schedule_safe() {
        let a = new_task_id();
        let b = new_task_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
