//! The HTTP API: one [`axum::Router`] over [`TaskService`], served by `tidemark serve` (and, on
//! AWS, by each HTTP Lambda through `lambda_http`). JSON in and out; every error is
//! `{"error": {"code", "message", "field"}}`, mapped from [`ServiceError`] in one place
//! ([`ApiError`]). Passwords are never in a response: the spec serializes without them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde_json::{Value, json};
use tidemark_core::ports::{SchedulerError, SecretError, StoreError};
use tidemark_core::schedule::Schedule;
use tidemark_core::state::{Page, RunRecord, RunStatus, TaskRecord, TaskStatus, time_key};

use crate::cancel::Deleted;
use crate::error::ServiceError;
use crate::lifecycle::PrecheckView;
use crate::runs::RunDetail;
use crate::tasks::TaskService;

/// Every route of the API as `(method, path)`: what `infra/openapi.yaml` documents, checked
/// against the router by a test.
pub const ROUTES: [(&str, &str); 16] = [
    ("POST", "/tasks"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{id}"),
    ("PATCH", "/tasks/{id}"),
    ("DELETE", "/tasks/{id}"),
    ("POST", "/connections/test"),
    ("POST", "/tasks/{id}/precheck"),
    ("GET", "/tasks/{id}/precheck"),
    ("POST", "/tasks/{id}/start"),
    ("POST", "/tasks/{id}/stop"),
    ("GET", "/tasks/{id}/schedule"),
    ("POST", "/tasks/{id}/runs"),
    ("GET", "/tasks/{id}/runs"),
    ("GET", "/tasks/{id}/runs/{run}"),
    ("POST", "/tasks/{id}/runs/{run}/cancel"),
    ("GET", "/health"),
];

type Svc = State<Arc<TaskService>>;

/// The API over `service`.
pub fn router(service: Arc<TaskService>) -> Router {
    Router::new()
        .route("/tasks", post(create_task).get(list_tasks))
        .route(
            "/tasks/{id}",
            get(get_task).patch(patch_task).delete(delete_task),
        )
        .route("/connections/test", post(test_connection))
        .route(
            "/tasks/{id}/precheck",
            post(start_precheck).get(get_precheck),
        )
        .route("/tasks/{id}/start", post(start_task))
        .route("/tasks/{id}/stop", post(stop_task))
        .route("/tasks/{id}/schedule", get(preview_schedule))
        .route("/tasks/{id}/runs", post(run_now).get(list_runs))
        .route("/tasks/{id}/runs/{run}", get(get_run))
        .route("/tasks/{id}/runs/{run}/cancel", post(cancel_run))
        .route("/health", get(health))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .with_state(service)
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    // The route pattern, never the concrete path or the query: nothing the caller sent is logged.
    tracing::info!(
        %method,
        route,
        status = response.status().as_u16(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// A [`ServiceError`] as an HTTP answer: the one place errors become status codes.
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let message = e.to_string();
        let mut body = json!({ "code": "", "message": message });
        let (status, code) = match &e {
            ServiceError::Invalid { field, message } => {
                body["field"] = json!(field);
                body["message"] = json!(message);
                (StatusCode::BAD_REQUEST, "invalid")
            }
            ServiceError::Spec(errors) => {
                body["field"] = json!(errors.first_field());
                body["errors"] = json!(errors.errors());
                (StatusCode::BAD_REQUEST, "invalid_spec")
            }
            ServiceError::NotFound { .. } | ServiceError::Store(StoreError::NotFound { .. }) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ServiceError::Conflict { code, checks, .. } => {
                if !checks.is_empty() {
                    body["checks"] = json!(checks);
                }
                (StatusCode::CONFLICT, *code)
            }
            ServiceError::AlreadyRan { .. } => (StatusCode::CONFLICT, "run_finished"),
            // The destination's state stops the policy (a namesake database, a column added on
            // the source): the message names it and the fix.
            ServiceError::Policy(_) => (StatusCode::CONFLICT, "policy_conflict"),
            ServiceError::Store(StoreError::Conflict { .. }) => (StatusCode::CONFLICT, "conflict"),
            ServiceError::Store(StoreError::BadCursor) => {
                body["field"] = json!("next");
                (StatusCode::BAD_REQUEST, "invalid")
            }
            ServiceError::HostNotAllowed { field, host, .. } => {
                body["field"] = json!(field);
                body["host"] = json!(host);
                (StatusCode::UNPROCESSABLE_ENTITY, "host_not_allowed")
            }
            ServiceError::SecretNotAllowed { field, message } => {
                body["field"] = json!(field);
                body["message"] = json!(message);
                (StatusCode::UNPROCESSABLE_ENTITY, "secret_not_allowed")
            }
            ServiceError::Secret(SecretError::NotFound { .. } | SecretError::Malformed { .. }) => {
                (StatusCode::BAD_REQUEST, "invalid")
            }
            ServiceError::Scheduler(SchedulerError::InvalidTaskId { .. }) => {
                (StatusCode::BAD_REQUEST, "invalid")
            }
            ServiceError::Connect { .. } | ServiceError::Schema(_) | ServiceError::Copy(_) => {
                (StatusCode::BAD_GATEWAY, "endpoint_failed")
            }
            ServiceError::Store(StoreError::Backend { .. })
            | ServiceError::Secret(_)
            | ServiceError::Scheduler(_)
            | ServiceError::Queue(_) => {
                tracing::error!(error = %message, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        body["code"] = json!(code);
        (status, axum::Json(json!({ "error": body }))).into_response()
    }
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}

async fn no_route() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such route; see infra/openapi.yaml for the API".into(),
    )
}

async fn method_not_allowed(method: Method) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on this route; see infra/openapi.yaml"),
    )
}

fn ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

type Answer = Result<Response, ApiError>;

fn text(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| {
        ApiError(ServiceError::Invalid {
            field: String::new(),
            message: "the body is not UTF-8 JSON".into(),
        })
    })
}

/// The query string's parameters; a parameter given twice keeps the last.
fn query(raw: Option<String>) -> HashMap<String, String> {
    raw.as_deref()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Percent-decoding of a query component (`+` is a space); a malformed escape stays as it is.
fn decode(s: &str) -> String {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn number<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(raw) => raw.parse().map(Some).map_err(|_| {
            ApiError(ServiceError::Invalid {
                field: name.into(),
                message: format!("{name} must be a positive whole number; got {raw:?}"),
            })
        }),
    }
}

fn page_params(raw: Option<String>) -> Result<(Option<u32>, Option<String>), ApiError> {
    let params = query(raw);
    let limit = number::<u32>(&params, "limit")?;
    let next = params.get("next").filter(|n| !n.is_empty()).cloned();
    Ok((limit, next))
}

/// A task as the API shows it at `now`: no password (the spec never serializes one), no secret
/// references beyond the spec's own `password_secret`; its last ended run, and the time of its
/// next cycle while it is `scheduled` or `running`.
pub fn task_json(task: &TaskRecord, now: Timestamp) -> Value {
    let precheck = task.precheck.as_ref().map(|p| {
        json!({
            "at": p.at,
            "state": p.state,
            "failed": p.failed,
            "warned": p.warned,
            "stale": p.at <= task.changed_at,
        })
    });
    let mut body = json!({
        "id": task.id,
        "name": task.spec.name,
        "status": task.status,
        "version": task.version,
        "created_at": task.created_at,
        "changed_at": task.changed_at,
        "spec": task.spec,
    });
    if let Some(reason) = &task.status_reason {
        body["status_reason"] = json!(reason);
    }
    if let Some(p) = precheck {
        body["precheck"] = p;
    }
    if let Some(last) = &task.last_run {
        body["last_run"] = json!(last);
    }
    if matches!(task.status, TaskStatus::Scheduled | TaskStatus::Running)
        && let Ok(schedule) = Schedule::from_spec(&task.spec.schedule)
        && let Some(next) = schedule.next_after(now)
    {
        body["next_run_at"] = json!(next.timestamp());
    }
    body
}

pub fn run_json(run: &RunRecord) -> Value {
    let mut body = json!({
        "id": run.key.time_key(),
        "task_id": run.key.task_id,
        "scheduled_time": time_key(run.key.scheduled_time),
        "trigger": run.trigger,
        "status": run.status,
        "created_at": run.created_at,
        "heartbeat": run.heartbeat,
        "chunks_total": run.chunks_total,
        "chunks_done": run.chunks_done,
    });
    if let Some(phase) = run.phase {
        body["phase"] = json!(phase);
    }
    if let Some(error) = &run.error {
        body["error"] = json!(error);
    }
    if let Some(at) = run.finished_at {
        body["finished_at"] = json!(at);
    }
    if let Some(warnings) = run.plan.get("warnings") {
        body["warnings"] = warnings.clone();
    }
    if let Some(at) = run.expires_at {
        body["expires_at"] = json!(at);
    }
    body
}

fn page_json<T>(page: &Page<T>, item: impl Fn(&T) -> Value) -> Value {
    let mut body = json!({ "items": page.items.iter().map(item).collect::<Vec<_>>() });
    if let Some(next) = &page.next {
        body["next"] = json!(next);
    }
    body
}

async fn create_task(State(svc): Svc, body: Bytes) -> Answer {
    let task = svc.create(text(&body)?).await?;
    Ok(ok(StatusCode::CREATED, task_json(&task, svc.now())))
}

async fn list_tasks(State(svc): Svc, RawQuery(raw): RawQuery) -> Answer {
    let (limit, next) = page_params(raw)?;
    let page = svc.list(limit, next.as_deref()).await?;
    Ok(ok(
        StatusCode::OK,
        page_json(&page, |t| task_json(t, svc.now())),
    ))
}

async fn get_task(State(svc): Svc, Path(id): Path<String>) -> Answer {
    Ok(ok(
        StatusCode::OK,
        task_json(&svc.get(&id).await?, svc.now()),
    ))
}

async fn patch_task(State(svc): Svc, Path(id): Path<String>, body: Bytes) -> Answer {
    let task = svc.patch(&id, text(&body)?).await?;
    Ok(ok(StatusCode::OK, task_json(&task, svc.now())))
}

/// 204 when the task is gone; 202 with the task (`deleting`) while a run's clean-up is
/// pending; `?force=true` abandons pending clean-ups and answers 200 with what they left.
async fn delete_task(State(svc): Svc, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Answer {
    let force = match query(raw).get("force").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError(ServiceError::Invalid {
                field: "force".into(),
                message: format!("force must be true or false; got {other:?}"),
            }));
        }
    };
    Ok(match svc.delete(&id, force).await? {
        Deleted::Gone => StatusCode::NO_CONTENT.into_response(),
        Deleted::Pending(task) => ok(StatusCode::ACCEPTED, task_json(&task, svc.now())),
        Deleted::Forced { left_behind } => ok(
            StatusCode::OK,
            json!({ "task_id": id, "deleted": true, "left_behind": left_behind }),
        ),
    })
}

async fn test_connection(State(svc): Svc, body: Bytes) -> Answer {
    let result = svc.test_connection(text(&body)?).await?;
    Ok(ok(StatusCode::OK, json!(result)))
}

async fn start_precheck(State(svc): Svc, Path(id): Path<String>) -> Answer {
    let task = svc.start_precheck(&id).await?;
    let at = task.precheck.as_ref().map(|p| p.at);
    Ok(ok(
        StatusCode::ACCEPTED,
        json!({ "task_id": task.id, "status": task.status, "state": "running", "at": at }),
    ))
}

async fn get_precheck(State(svc): Svc, Path(id): Path<String>) -> Answer {
    Ok(match svc.precheck_report(&id).await? {
        PrecheckView::Running { at } => ok(
            StatusCode::ACCEPTED,
            json!({ "task_id": id, "state": "running", "at": at }),
        ),
        PrecheckView::Done {
            summary,
            stale,
            report,
        } => ok(
            StatusCode::OK,
            json!({
                "task_id": id,
                "state": summary.state,
                "at": summary.at,
                "stale": stale,
                "failed": summary.failed,
                "warned": summary.warned,
                "report": report,
            }),
        ),
    })
}

async fn start_task(State(svc): Svc, Path(id): Path<String>) -> Answer {
    Ok(ok(
        StatusCode::OK,
        task_json(&svc.start(&id).await?, svc.now()),
    ))
}

async fn stop_task(State(svc): Svc, Path(id): Path<String>) -> Answer {
    Ok(ok(
        StatusCode::OK,
        task_json(&svc.stop(&id).await?, svc.now()),
    ))
}

async fn preview_schedule(
    State(svc): Svc,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Answer {
    let count = number::<usize>(&query(raw), "count")?;
    let preview = svc.schedule_preview(&id, count).await?;
    Ok(ok(StatusCode::OK, json!(preview)))
}

async fn run_now(State(svc): Svc, Path(id): Path<String>) -> Answer {
    let run = svc.run_now(&id).await?;
    Ok(ok(StatusCode::ACCEPTED, run_json(&run)))
}

async fn list_runs(State(svc): Svc, Path(id): Path<String>, RawQuery(raw): RawQuery) -> Answer {
    let (limit, next) = page_params(raw)?;
    let page = svc.list_runs(&id, limit, next.as_deref()).await?;
    Ok(ok(StatusCode::OK, page_json(&page, run_json)))
}

fn detail_json(detail: &RunDetail) -> Value {
    let mut body = run_json(&detail.run);
    body["tables"] = json!(detail.tables);
    body
}

async fn get_run(State(svc): Svc, Path((id, run)): Path<(String, String)>) -> Answer {
    Ok(ok(
        StatusCode::OK,
        detail_json(&svc.get_run(&id, &run).await?),
    ))
}

/// 200 when the run is cancelled and cleaned up; 202 while it is `cancelling` (a step stops
/// between batches, then the clean-up runs).
async fn cancel_run(State(svc): Svc, Path((id, run)): Path<(String, String)>) -> Answer {
    let detail = svc.cancel_run(&id, &run).await?;
    let status = if detail.run.status == RunStatus::Cancelling {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(ok(status, detail_json(&detail)))
}

async fn health() -> Response {
    ok(StatusCode::OK, json!({ "status": "ok" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_components() {
        let q = query(Some("limit=5&next=tsk%2Dab+c&x=%zz&y=%4".into()));
        assert_eq!(q["limit"], "5");
        assert_eq!(q["next"], "tsk-ab c");
        assert_eq!(q["x"], "%zz");
        assert_eq!(q["y"], "%4");
    }
}
