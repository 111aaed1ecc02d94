//! `tidemark serve` as a child process (the built binary, loopback only) and a small HTTP client
//! for its API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const CRASH_VAR: &str = "TIDEMARK_CRASH_AT";
/// The local driver's sweep interval and re-send delay, in seconds.
pub const SWEEP_VAR: &str = "TIDEMARK_SWEEP_SECONDS";
pub const RESEND_VAR: &str = "TIDEMARK_RESEND_AFTER_SECONDS";

/// One `tidemark serve` process over a data directory.
pub struct Serve {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Serve {
    /// Starts `tidemark serve` on 127.0.0.1 (a free port), allowing only 127.0.0.1 as an endpoint,
    /// with `TIDEMARK_CRASH_AT` set to `crash` (and unset otherwise).
    pub async fn start(data_dir: &Path, crash: Option<&str>) -> Serve {
        Serve::start_with(data_dir, crash, &[]).await
    }

    /// [`Serve::start`] with the driver's durations in `env` (`TIDEMARK_SWEEP_SECONDS`,
    /// `TIDEMARK_RESEND_AFTER_SECONDS`); those not given are unset, so the defaults apply.
    pub async fn start_with(data_dir: &Path, crash: Option<&str>, env: &[(&str, &str)]) -> Serve {
        std::fs::create_dir_all(data_dir).expect("the data directory");
        let n = std::fs::read_dir(data_dir)
            .map(|d| d.count())
            .unwrap_or_default();
        let log = data_dir.join(format!("serve-{n}.log"));
        let file = std::fs::File::create(&log).expect("a log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidemark"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--allow-hosts", "127.0.0.1"])
            .env_remove(CRASH_VAR)
            .env_remove(SWEEP_VAR)
            .env_remove(RESEND_VAR)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        if let Some(point) = crash {
            cmd.env(CRASH_VAR, point);
        }
        let mut child = cmd.spawn().expect("start tidemark serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(at) = text.find("listening on http://") {
                let rest = &text[at + "listening on ".len()..];
                let base = rest.lines().next().unwrap_or_default().trim().to_owned();
                return Serve { child, base, log };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("tidemark serve exited at start ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "tidemark serve did not listen in 20 s:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to end by itself; `None` if it still runs after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful), then waits for the exit.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if self.wait_exit(Duration::from_secs(40)).await.is_none() {
            self.kill9();
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        http(&self.base, method, path, body).await
    }

    /// Polls a run until it is final (at most `within`).
    pub async fn wait_run(&self, task: &str, run: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self
                .call("GET", &format!("/tasks/{task}/runs/{run}"), None)
                .await;
            assert_eq!(status, 200, "{body}");
            let s = body["status"].as_str().unwrap_or_default();
            if !matches!(s, "pending" | "running") {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "run {run} did not finish in {within:?}: {body}\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a run every 5 ms until `reached` holds for it (at most 60 s, else a panic naming
    /// `what`); the run as it was then.
    pub async fn wait_until(
        &self,
        task: &str,
        run: &str,
        what: &str,
        reached: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self
                .call("GET", &format!("/tasks/{task}/runs/{run}"), None)
                .await;
            if reached(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{what} in 60 s: {body}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Creates the task, prechecks it (no failed check) and returns its id.
    pub async fn create_prechecked(&self, spec: &Value) -> String {
        let (status, body) = self.call("POST", "/tasks", Some(spec)).await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().expect("an id").to_owned();
        let (status, body) = self
            .call("POST", &format!("/tasks/{id}/precheck"), Some(&json!({})))
            .await;
        assert_eq!(status, 202, "{body}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self
                .call("GET", &format!("/tasks/{id}/precheck"), None)
                .await;
            if status == 200 && body["state"] != "running" {
                assert_ne!(body["state"], "failed", "the precheck failed: {body}");
                return id;
            }
            assert!(Instant::now() < deadline, "no precheck report: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /tasks/{id}/runs`: the run's id.
    pub async fn run_now(&self, task: &str) -> String {
        let (status, body) = self
            .call("POST", &format!("/tasks/{task}/runs"), Some(&json!({})))
            .await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().expect("a run id").to_owned()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// One HTTP/1.1 request over loopback, `Connection: close`; the status and the JSON body.
pub async fn http(base: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send a request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read an answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let payload = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    let value = if payload.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&payload)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {payload}"))
    };
    (status, value)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
