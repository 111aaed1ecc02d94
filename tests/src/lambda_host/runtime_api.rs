//! The Lambda Runtime API of one execution environment, served on loopback: what a `bootstrap`
//! (here `lambda_runtime` inside each function's binary) polls for its invocations.
//!
//! - `GET /2018-06-01/runtime/invocation/next` waits for the next invocation and answers its
//!   payload with the headers Lambda sends (`Lambda-Runtime-Aws-Request-Id`,
//!   `Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Invoked-Function-Arn`,
//!   `Lambda-Runtime-Trace-Id`).
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `.../{id}/error` end the
//!   invocation. Before it is acknowledged the process is frozen (SIGSTOP, every thread seen
//!   stopped), as Lambda freezes an environment once its invocation is done: work the function
//!   spawned after its response does not run until the next invocation thaws it (SIGCONT).
//! - `POST /2018-06-01/runtime/init/error` reports a failed start.
//!
//! What happens is reported to the instance ([`super::instance`]) as [`ApiEvent`]s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

/// One invocation as the Runtime API hands it to the function.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// The event, as JSON text.
    pub payload: String,
    /// Milliseconds since the epoch.
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
}

/// What the function posted back.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `.../response`: the body as posted.
    Response(String),
    /// `.../error`: `Lambda-Runtime-Function-Error-Type` and the body.
    Error { error_type: String, body: String },
}

/// What the Runtime API saw.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiEvent {
    /// The function asked for its next invocation (the first time: its init is done).
    Polling,
    /// The function ended an invocation; the process is frozen by now.
    Reply { request_id: String, reply: Reply },
    /// The function reported that it cannot start.
    InitError { error_type: String, body: String },
}

/// The process behind the API, frozen and thawed by signals.
#[derive(Debug, Default)]
pub struct Freezer {
    /// 0 until the process is spawned.
    pid: AtomicI32,
    frozen: AtomicBool,
}

impl Freezer {
    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::SeqCst);
    }

    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// Stops every thread of the process and waits (at most a second) until each is seen
    /// stopped, so nothing it spawned runs past this point.
    pub async fn freeze(&self) {
        let pid = self.pid();
        if pid <= 0 {
            return;
        }
        // SAFETY: kill(2) with a pid this host spawned and a valid signal has no memory effects.
        if unsafe { libc::kill(pid, libc::SIGSTOP) } != 0 {
            return;
        }
        self.frozen.store(true, Ordering::SeqCst);
        for _ in 0..200 {
            if all_threads_stopped(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Lets a frozen process run again.
    pub fn thaw(&self) {
        let pid = self.pid();
        if pid > 0 && self.frozen.swap(false, Ordering::SeqCst) {
            // SAFETY: as in `freeze`.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }
}

/// Whether every thread of `pid` is stopped (`T`) or gone; reads `/proc/<pid>/task/*/stat`.
fn all_threads_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return true;
        };
        // `pid (comm) S ...`: the state follows the last `)` (comm may hold spaces or parens).
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim().chars().next());
        matches!(state, Some('T' | 't' | 'X' | 'Z') | None)
    })
}

struct ApiState {
    invocations: Mutex<mpsc::UnboundedReceiver<Invocation>>,
    events: mpsc::UnboundedSender<ApiEvent>,
    freezer: Arc<Freezer>,
}

/// A running Runtime API: its address, where invocations go in, and the server task (aborted
/// when dropped).
pub struct RuntimeApi {
    pub addr: SocketAddr,
    pub invocations: mpsc::UnboundedSender<Invocation>,
    pub events: mpsc::UnboundedReceiver<ApiEvent>,
    pub freezer: Arc<Freezer>,
    server: JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    /// Serves a Runtime API on a free loopback port.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let (invocations, invocations_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let freezer = Arc::new(Freezer::default());
        let state = Arc::new(ApiState {
            invocations: Mutex::new(invocations_rx),
            events: events_tx,
            freezer: Arc::clone(&freezer),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            addr,
            invocations,
            events,
            freezer,
            server,
        })
    }
}

async fn next(State(state): State<Arc<ApiState>>) -> Response {
    let _ = state.events.send(ApiEvent::Polling);
    let invocation = state.invocations.lock().await.recv().await;
    let Some(inv) = invocation else {
        // The host is shutting this environment down.
        return StatusCode::GONE.into_response();
    };
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("lambda-runtime-aws-request-id", &inv.request_id);
    set("lambda-runtime-deadline-ms", &inv.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &inv.function_arn);
    set("lambda-runtime-trace-id", &inv.trace_id);
    set("content-type", "application/json");
    (StatusCode::OK, headers, inv.payload).into_response()
}

async fn response(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&state, id, Reply::Response(text(&body))).await
}

async fn error(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let reply = Reply::Error {
        error_type: error_type(&headers),
        body: text(&body),
    };
    finish(&state, id, reply).await
}

/// Freezes the process, then reports the reply; the acknowledgement reaches the function only
/// when it is thawed.
async fn finish(state: &ApiState, request_id: String, reply: Reply) -> StatusCode {
    state.freezer.freeze().await;
    let _ = state.events.send(ApiEvent::Reply { request_id, reply });
    StatusCode::ACCEPTED
}

async fn init_error(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let _ = state.events.send(ApiEvent::InitError {
        error_type: error_type(&headers),
        body: text(&body),
    });
    StatusCode::ACCEPTED
}

fn error_type(headers: &HeaderMap) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
        .to_owned()
}

fn text(body: &Bytes) -> String {
    String::from_utf8_lossy(body).into_owned()
}
