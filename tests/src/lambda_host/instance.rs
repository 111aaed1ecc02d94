//! One execution environment: a function's real binary started as Lambda starts a `bootstrap`,
//! with its own Runtime API ([`super::runtime_api`]), its stdout and stderr captured line by line
//! ([`LogSink`]), frozen between invocations and killed at its timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::runtime_api::{ApiEvent, Invocation, Reply, RuntimeApi};

/// One line a function wrote.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// The function's logical id in the template.
    pub function: String,
    /// Which of its execution environments (1, 2, ... in start order).
    pub instance: u32,
    pub stderr: bool,
    pub text: String,
}

impl LogLine {
    /// The line as JSON, when it is one object (the functions' JSON logs are).
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str::<serde_json::Value>(&self.text)
            .ok()
            .filter(serde_json::Value::is_object)
    }
}

/// Every line of every function of a stack, in the order they arrived; also appended to a file
/// (`functions.log` in the stack's directory) for a reader after a failure. Cheap to clone.
#[derive(Clone, Default)]
pub struct LogSink {
    lines: Arc<Mutex<Vec<LogLine>>>,
    file: Option<Arc<Mutex<std::fs::File>>>,
}

impl LogSink {
    pub fn to_file(path: &std::path::Path) -> std::io::Result<LogSink> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogSink {
            lines: Arc::default(),
            file: Some(Arc::new(Mutex::new(file))),
        })
    }

    pub fn push(&self, line: LogLine) {
        if let Some(file) = &self.file
            && let Ok(mut file) = file.lock()
        {
            use std::io::Write;
            let stream = if line.stderr { "err" } else { "out" };
            let _ = writeln!(
                file,
                "{}#{} {stream} {}",
                line.function, line.instance, line.text
            );
        }
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The lines of one function (its logical id).
    pub fn of(&self, function: &str) -> Vec<LogLine> {
        self.lines()
            .into_iter()
            .filter(|l| l.function == function)
            .collect()
    }

    /// One environment's output, as text (for an init failure's message).
    fn output_of(&self, function: &str, instance: u32) -> String {
        self.lines()
            .into_iter()
            .filter(|l| l.function == function && l.instance == instance)
            .map(|l| l.text)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// How to start one execution environment of a function.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// The function's logical id (for logs).
    pub function: String,
    pub binary: PathBuf,
    /// The whole environment of the process, but `AWS_LAMBDA_RUNTIME_API` (each environment's
    /// own).
    pub env: BTreeMap<String, String>,
    /// Lambda's limit on a function's init phase.
    pub init_timeout: Duration,
}

/// How an invocation on a started environment ended.
#[derive(Debug)]
pub enum Ended {
    /// The function posted a response or an error; the process is frozen.
    Reply(Reply),
    /// The deadline passed: the process was killed.
    TimedOut,
    /// The process exited (crashed, or was killed) before it replied.
    Exited(String),
}

/// A started execution environment.
pub struct Instance {
    pub id: u32,
    api: RuntimeApi,
    child: Child,
    readers: Vec<JoinHandle<()>>,
}

impl Instance {
    /// Starts the binary and waits for its first poll of the next invocation (the end of its
    /// init). A failed start is the reason, with what the process wrote.
    pub async fn start(spec: &InstanceSpec, id: u32, logs: &LogSink) -> Result<Instance, String> {
        let api = RuntimeApi::start()
            .await
            .map_err(|e| format!("cannot serve a Runtime API on loopback: {e}"))?;
        let mut command = Command::new(&spec.binary);
        command
            .env_clear()
            .envs(&spec.env)
            .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = spec.binary.parent() {
            command.current_dir(dir);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.binary.display()))?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        api.freezer.set_pid(pid);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(read_lines(out, spec.function.clone(), id, false, logs));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(read_lines(err, spec.function.clone(), id, true, logs));
        }
        let mut instance = Instance {
            id,
            api,
            child,
            readers,
        };
        let started = Instant::now();
        let failure = loop {
            tokio::select! {
                event = instance.api.events.recv() => match event {
                    Some(ApiEvent::Polling) => return Ok(instance),
                    Some(ApiEvent::InitError { error_type, body }) => {
                        let _ = instance.child.start_kill();
                        break format!("init error {error_type}: {body}");
                    }
                    Some(ApiEvent::Reply { .. }) => continue,
                    None => break "the Runtime API stopped".to_owned(),
                },
                status = instance.child.wait() => {
                    break format!("Runtime.ExitError: the process exited during init ({})", describe(status));
                }
                () = tokio::time::sleep(spec.init_timeout.saturating_sub(started.elapsed())) => {
                    let _ = instance.child.start_kill();
                    break format!("Sandbox.Timedout: init did not finish within {:?}", spec.init_timeout);
                }
            }
        };
        let _ = instance.child.wait().await;
        instance.drain().await;
        let output = logs.output_of(&spec.function, id);
        Err(format!(
            "{} (environment {id}) could not start: {failure}\n--- its output ---\n{output}",
            spec.function
        ))
    }

    pub fn pid(&self) -> i32 {
        self.api.freezer.pid()
    }

    /// Hands `invocation` to the function (thawing it) and waits for its reply, its exit, or
    /// its deadline (then the process is killed).
    pub async fn invoke(&mut self, invocation: Invocation, timeout: Duration) -> Ended {
        let request_id = invocation.request_id.clone();
        self.api.freezer.thaw();
        if self.api.invocations.send(invocation).is_err() {
            return Ended::Exited("the Runtime API stopped".into());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                event = self.api.events.recv() => match event {
                    Some(ApiEvent::Reply { request_id: id, reply }) if id == request_id => {
                        return Ended::Reply(reply);
                    }
                    Some(_) => continue,
                    None => return Ended::Exited("the Runtime API stopped".into()),
                },
                status = self.child.wait() => {
                    self.drain().await;
                    return Ended::Exited(describe(status));
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.api.freezer.thaw();
                    let _ = self.child.start_kill();
                    let _ = self.child.wait().await;
                    self.drain().await;
                    return Ended::TimedOut;
                }
            }
        }
    }

    /// Waits (briefly) for the output readers to reach the end of a dead process's pipes.
    async fn drain(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
    }

    /// Whether the process is frozen.
    pub fn is_frozen(&self) -> bool {
        self.api.freezer.is_frozen()
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("signal: {signal}"),
            _ => s.to_string(),
        },
        Err(e) => format!("cannot wait for it: {e}"),
    }
}

fn read_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    function: String,
    instance: u32,
    stderr: bool,
    logs: &LogSink,
) -> JoinHandle<()> {
    let logs = logs.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(text)) = lines.next_line().await {
            logs.push(LogLine {
                function: function.clone(),
                instance,
                stderr,
                text,
            });
        }
    })
}
