//! One Lambda function: its execution environments, at most its concurrency bound at once, warm
//! ones reused (frozen between invocations), a timed-out or crashed one discarded and the next
//! invocation cold-started.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::iam::Credentials;
use super::instance::{Ended, Instance, InstanceSpec, LogSink};
use super::runtime_api::{Invocation, Reply};

/// What the host needs to run a function, from the stack's document.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// The logical id in the template (`RunWorkerFunction`).
    pub logical_id: String,
    /// The physical name and ARN.
    pub name: String,
    pub arn: String,
    pub instance: InstanceSpec,
    /// The invocation timeout, already scaled ([`super::TimeScale`]).
    pub timeout: Duration,
    /// The template's `Timeout`, unscaled (Lambda's timeout message names it).
    pub template_timeout: Duration,
    /// Execution environments at once.
    pub concurrency: usize,
}

/// How an invocation ended, as Lambda reports it to the invoker.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The function's response (JSON; a body that is not JSON is kept as a string).
    Response(Value),
    /// The function reported an error (`Unhandled`): its type and body.
    Error { error_type: String, body: Value },
    /// The function ran past its timeout and was killed.
    TimedOut,
    /// The process died during the invocation (`Runtime.ExitError`).
    Exited(String),
    /// The environment could not start: the reason, with the process's output.
    InitFailed(String),
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Response(_))
    }

    /// The response, or a panic naming what happened instead.
    #[track_caller]
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(v) => v,
            other => panic!("the invocation failed: {other:?}"),
        }
    }

    /// What Lambda returns for a failed invocation (`errorType`, `errorMessage`), as in an
    /// on-failure destination's `responsePayload`; `None` for a success.
    pub fn error_payload(&self, request_id: &str, template_timeout: Duration) -> Option<Value> {
        match self {
            Outcome::Response(_) => None,
            Outcome::Error { body, .. } => Some(body.clone()),
            Outcome::TimedOut => Some(json!({
                "errorType": "Sandbox.Timedout",
                "errorMessage": format!(
                    "RequestId: {request_id} Error: Task timed out after {:.2} seconds",
                    template_timeout.as_secs_f64()
                ),
            })),
            Outcome::Exited(status) => Some(json!({
                "errorType": "Runtime.ExitError",
                "errorMessage": format!("RequestId: {request_id} Error: Runtime exited with error: {status}"),
            })),
            Outcome::InitFailed(_) => Some(json!({
                "errorType": "Runtime.ExitError",
                "errorMessage": format!("RequestId: {request_id} Error: Runtime exited during init"),
            })),
        }
    }
}

/// Counters a test can read.
#[derive(Debug, Default)]
pub struct FunctionStats {
    pub invocations: AtomicU64,
    pub cold_starts: AtomicU64,
    pub timeouts: AtomicU64,
    pub crashes: AtomicU64,
    /// Invocations that ended in a function error (AWS/Lambda's `Errors`): an error reply, a
    /// timeout, a crash, a failed init.
    pub errors: AtomicU64,
    /// Invocations at work now, and the most there ever were at once.
    pub in_flight: AtomicU64,
    pub peak_in_flight: AtomicU64,
}

/// One invocation counted in [`FunctionStats::in_flight`] while it lives.
struct InFlight<'a>(&'a FunctionStats);

impl<'a> InFlight<'a> {
    fn new(stats: &'a FunctionStats) -> InFlight<'a> {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A function under the host.
pub struct Function {
    pub config: FunctionConfig,
    pub stats: FunctionStats,
    permits: Semaphore,
    idle: Mutex<Vec<Instance>>,
    /// Environments at work: id → pid.
    busy: Mutex<HashMap<u32, i32>>,
    next_id: AtomicU32,
    init_errors: Mutex<Vec<String>>,
    logs: LogSink,
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A request id in Lambda's shape (a UUID), unique in this process.
pub fn request_id() -> String {
    let n = REQUESTS.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let pid = std::process::id();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (nanos >> 32) as u32,
        (nanos >> 16) as u16,
        pid & 0xfff,
        n & 0xfff,
        (u64::from(pid) << 24) ^ n ^ ((nanos as u64) & 0xff_ffff)
    )
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Function {
    pub fn new(config: FunctionConfig, logs: LogSink) -> Function {
        Function {
            permits: Semaphore::new(config.concurrency.max(1)),
            config,
            stats: FunctionStats::default(),
            idle: Mutex::new(Vec::new()),
            busy: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            init_errors: Mutex::new(Vec::new()),
            logs,
        }
    }

    /// One synchronous invocation (`RequestResponse`) with a fresh request id.
    pub async fn invoke(&self, payload: &Value) -> Outcome {
        self.invoke_with_id(payload, &request_id()).await
    }

    /// One invocation: a warm environment if one is idle, else a cold start (waiting for a free
    /// slot under the concurrency bound).
    pub async fn invoke_with_id(&self, payload: &Value, request_id: &str) -> Outcome {
        let Ok(_permit) = self.permits.acquire().await else {
            return Outcome::Exited("the function is shut down".into());
        };
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight::new(&self.stats);
        let warm = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut instance = match warm {
            Some(instance) => instance,
            None => {
                self.stats.cold_starts.fetch_add(1, Ordering::Relaxed);
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                match Instance::start(&self.config.instance, id, &self.logs).await {
                    Ok(instance) => instance,
                    Err(reason) => {
                        if let Ok(mut errors) = self.init_errors.lock() {
                            errors.push(reason.clone());
                        }
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        return Outcome::InitFailed(reason);
                    }
                }
            }
        };
        let invocation = Invocation {
            request_id: request_id.to_owned(),
            payload: payload.to_string(),
            deadline_ms: epoch_ms(SystemTime::now() + self.config.timeout),
            function_arn: self.config.arn.clone(),
            trace_id: trace_id(request_id),
        };
        if let Ok(mut busy) = self.busy.lock() {
            busy.insert(instance.id, instance.pid());
        }
        let ended = instance.invoke(invocation, self.config.timeout).await;
        if let Ok(mut busy) = self.busy.lock() {
            busy.remove(&instance.id);
        }
        match ended {
            Ended::Reply(reply) => {
                if let Ok(mut idle) = self.idle.lock() {
                    idle.push(instance);
                }
                match reply {
                    Reply::Response(body) => Outcome::Response(json_or_text(&body)),
                    Reply::Error { error_type, body } => {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        Outcome::Error {
                            error_type,
                            body: json_or_text(&body),
                        }
                    }
                }
            }
            Ended::TimedOut => {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.platform_line(instance.id, request_id, "timeout");
                Outcome::TimedOut
            }
            Ended::Exited(status) => {
                self.stats.crashes.fetch_add(1, Ordering::Relaxed);
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                self.platform_line(instance.id, request_id, &format!("failure ({status})"));
                Outcome::Exited(status)
            }
        }
    }

    /// The platform's line for an invocation that did not end with a reply, as Lambda writes it
    /// to the function's log in the JSON format.
    fn platform_line(&self, instance: u32, request_id: &str, status: &str) {
        let record = json!({
            "time": jiff::Timestamp::now().to_string(),
            "type": "platform.runtimeDone",
            "record": { "requestId": request_id, "status": status },
        });
        self.logs.push(super::instance::LogLine {
            function: self.config.logical_id.clone(),
            instance,
            stderr: false,
            text: record.to_string(),
        });
    }

    /// Kills (SIGKILL) one environment at work, as a host failure would; its invocation ends
    /// `Exited`. Whether one was at work.
    pub fn kill_busy(&self) -> bool {
        let pid = self
            .busy
            .lock()
            .ok()
            .and_then(|busy| busy.values().next().copied());
        match pid {
            // SAFETY: kill(2) on a child this host spawned.
            Some(pid) if pid > 0 => unsafe { libc::kill(pid, libc::SIGKILL) == 0 },
            _ => false,
        }
    }

    /// Environments at work now.
    pub fn busy_count(&self) -> usize {
        self.busy.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// The pids of the idle (warm) environments, each with whether it is frozen.
    pub fn idle_pids(&self) -> Vec<(i32, bool)> {
        self.idle
            .lock()
            .map(|idle| idle.iter().map(|i| (i.pid(), i.is_frozen())).collect())
            .unwrap_or_default()
    }

    /// The init failures so far (each with the process's output).
    pub fn init_errors(&self) -> Vec<String> {
        self.init_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Stops taking invocations and kills the idle environments.
    pub fn shut_down(&self) {
        self.permits.close();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

fn json_or_text(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
}

/// An X-Ray trace header in Lambda's shape, derived from the request id.
fn trace_id(request_id: &str) -> String {
    let hex: String = request_id.chars().filter(char::is_ascii_hexdigit).collect();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0;Lineage=1:{}:0",
        &hex[..24.min(hex.len())],
        &hex[hex.len().saturating_sub(16)..],
        &hex[..8.min(hex.len())]
    )
}

/// The environment Lambda gives a function's process (its documented reserved variables), the
/// function's own `Environment` over it, and what the harness adds to keep it on this machine.
pub struct LambdaEnv<'a> {
    pub function_name: &'a str,
    pub memory_mb: u32,
    pub region: &'a str,
    pub log_format: &'a str,
    pub log_level: Option<&'a str>,
    pub credentials: &'a Credentials,
    /// The emulator: every AWS call of the function goes there.
    pub endpoint_url: &'a str,
    /// An empty file: no AWS config or credentials file of this machine is read.
    pub no_config_file: &'a str,
    pub task_root: &'a str,
    pub variables: &'a BTreeMap<String, String>,
}

impl LambdaEnv<'_> {
    pub fn build(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            env.insert(k.to_owned(), v.to_owned());
        };
        let today = jiff::Timestamp::now().strftime("%Y/%m/%d").to_string();
        set("_HANDLER", "bootstrap");
        set("AWS_LAMBDA_FUNCTION_NAME", self.function_name);
        set(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            &self.memory_mb.to_string(),
        );
        set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
        set("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand");
        set(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            &format!("/aws/lambda/{}", self.function_name),
        );
        set(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            &format!("{today}/[$LATEST]{}", request_id().replace('-', "")),
        );
        set("AWS_LAMBDA_LOG_FORMAT", self.log_format);
        if let Some(level) = self.log_level {
            set("AWS_LAMBDA_LOG_LEVEL", level);
        }
        set("AWS_REGION", self.region);
        set("AWS_DEFAULT_REGION", self.region);
        set("AWS_ACCESS_KEY_ID", &self.credentials.access_key_id);
        set("AWS_SECRET_ACCESS_KEY", &self.credentials.secret_access_key);
        if let Some(token) = &self.credentials.session_token {
            set("AWS_SESSION_TOKEN", token);
        }
        set("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR");
        set("LAMBDA_TASK_ROOT", self.task_root);
        set("LAMBDA_RUNTIME_DIR", self.task_root);
        set("LANG", "en_US.UTF-8");
        set("TZ", ":UTC");
        set("PATH", "/usr/local/bin:/usr/bin:/bin");
        // The harness's: AWS is the emulator, and nothing of this machine's AWS setup is read.
        set("AWS_ENDPOINT_URL", self.endpoint_url);
        set("AWS_EC2_METADATA_DISABLED", "true");
        set("AWS_CONFIG_FILE", self.no_config_file);
        set("AWS_SHARED_CREDENTIALS_FILE", self.no_config_file);
        for (k, v) in self.variables {
            env.insert(k.clone(), v.clone());
        }
        env
    }
}
