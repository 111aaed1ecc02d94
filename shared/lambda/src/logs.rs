//! JSON logs for CloudWatch: one object a line, with `level`, `message`, `target`, the event's
//! fields and its spans' fields (`task`, `task_id`, ...), which Lambda's JSON log format and
//! CloudWatch Logs Insights read as they are.
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL` (the function's `LoggingConfig`), else
//! `RUST_LOG`, else `info`. Whatever is asked for, the crates that log a request's *content* at
//! debug or trace stay at `info` at most, so a secret never reaches a log line: the Lambda
//! runtime logs each raw event (a `POST /tasks` body holds the passwords), the SDK signs and logs
//! each request with its headers (a session token among them) and the HTTP stack its traffic.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// Target prefixes whose debug or trace lines can carry a request's content or credentials
/// (a directive's target matches every target that starts with it: `aws_` is every AWS SDK
/// crate, `lambda_` the runtime and lambda_http).
pub const CAPPED_TARGETS: [&str; 5] = ["aws_", "lambda_", "hyper", "h2", "rustls"];

/// The filter for a level spec (`info`, `DEBUG`, `tidemark_service=debug,warn`): unparseable
/// parts are ignored, and the capped targets never go below `info`.
pub fn filter(spec: &str) -> EnvFilter {
    // Lambda's levels are upper case, and it knows FATAL, which tracing calls error.
    let spec = spec.trim().to_ascii_lowercase().replace("fatal", "error");
    // A directive naming a capped crate (`lambda_runtime=trace`) would be more specific than
    // the cap: it is dropped.
    let spec: Vec<&str> = spec
        .split(',')
        .filter(|directive| {
            let target = directive.split(['=', '[']).next().unwrap_or("").trim();
            !CAPPED_TARGETS.iter().any(|c| target.starts_with(c))
        })
        .collect();
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(spec.join(","));
    let cap = filter
        .max_level_hint()
        .unwrap_or(LevelFilter::INFO)
        .min(LevelFilter::INFO);
    for target in CAPPED_TARGETS {
        if let Ok(directive) = format!("{target}={cap}").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// The JSON subscriber at `level`, writing to `writer` (stdout on Lambda; a buffer in tests).
pub fn json_subscriber<W>(level: &str, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .with_ansi(false)
        .with_target(true)
        .with_env_filter(filter(level))
        .with_writer(writer)
        .finish()
}

/// The level the function's environment asks for.
pub fn level_from_env() -> String {
    std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
}

/// Sends this process's logs to stdout as JSON. Call once, first thing in `main`; a second call
/// changes nothing.
pub fn init_logs() {
    let _ = json_subscriber(&level_from_env(), std::io::stdout).try_init();
}

/// Log lines kept in memory: what tests read to see exactly what a function would have logged.
/// Cheap to clone; clones share the lines.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Captures this thread's log lines at `level`, through the functions' own subscriber,
    /// until the guard is dropped.
    pub fn capture(&self, level: &str) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(json_subscriber(level, self.clone()))
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.0.lock() {
            lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'w self) -> LogBuffer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(level: &str, emit: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = LogBuffer::default();
        {
            let _guard = buffer.capture(level);
            emit();
        }
        buffer
            .lines()
            .iter()
            .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
            .collect()
    }

    #[test]
    fn lines_are_json_with_level_message_and_span_fields() {
        let lines = capture("INFO", || {
            let span = tracing::info_span!("precheck", task_id = "tsk-1");
            let _entered = span.enter();
            tracing::info!(passed = true, "precheck finished");
            tracing::debug!("not at info");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "precheck finished");
        assert_eq!(line["passed"], true);
        assert_eq!(line["spans"][0]["task_id"], "tsk-1");
        assert!(line["timestamp"].is_string(), "{line}");
    }

    #[test]
    fn the_runtime_and_the_sdk_never_log_below_info_whatever_is_asked() {
        for level in [
            "trace",
            "TRACE",
            "lambda_runtime=trace,trace",
            "lambda_runtime,aws_sigv4[span]=trace,debug",
            "debug",
        ] {
            let lines = capture(level, || {
                tracing::trace!(target: "lambda_runtime::layers::api_response", body = "{\"password\":\"x\"}", "raw JSON event received from Lambda");
                tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "request body");
                tracing::trace!(target: "aws_sigv4::http_request::sign", "signing request");
                tracing::debug!(target: "aws_sdk_secretsmanager::operation", "CreateSecret");
                tracing::info!(target: "lambda_runtime", "an info line passes");
                tracing::debug!(target: "tidemark_service::tasks", "ours follow the level");
            });
            let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
            assert_eq!(
                messages,
                ["an info line passes", "ours follow the level"],
                "{level}"
            );
        }
    }

    #[test]
    fn a_quieter_level_is_not_raised_by_the_cap() {
        let lines = capture("WARN", || {
            tracing::info!(target: "aws_smithy_runtime", "an SDK info line");
            tracing::info!("our info line");
            tracing::warn!("a warning");
        });
        let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
        assert_eq!(messages, ["a warning"]);
    }
}
