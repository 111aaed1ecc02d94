//! One API per test: the router served on 127.0.0.1:0 over a fresh data directory, a controllable
//! clock, and a small HTTP client.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jiff::Timestamp;
use serde_json::{Value, json};
use tidemark_core::ports::{Clock, SystemClock};
use tidemark_local::{LocalScheduler, LocalSecretStore, SqliteStore};
use tidemark_service::driver::waking::Waking;
use tidemark_service::local_schedule::RUN_LEASE;
use tidemark_service::{Allowlist, ConsumerConfig, Host, Ports, TaskService, WorkerConfig, router};
use tidemark_tests::harness::{destination, source};

/// A clock the test sets; every reading also moves it on by a millisecond, so two events are
/// never at the same instant (as with a real clock).
pub struct TestClock {
    micros: AtomicI64,
}

impl TestClock {
    pub fn at(start: &str) -> Arc<TestClock> {
        let start: Timestamp = start.parse().expect("a clock start");
        Arc::new(TestClock {
            micros: AtomicI64::new(start.as_microsecond()),
        })
    }

    pub fn set(&self, at: &str) {
        let at: Timestamp = at.parse().expect("a time");
        self.micros.store(at.as_microsecond(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let micros = self.micros.fetch_add(1_000, Ordering::SeqCst);
        Timestamp::from_microsecond(micros).expect("a valid instant")
    }
}

pub struct Api {
    pub base: String,
    pub service: Arc<TaskService>,
    pub scheduler: LocalScheduler,
    pub clock: Arc<TestClock>,
    pub dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    /// The API with only loopback allowed, its clock a day before the fixtures' schedule starts.
    pub async fn start() -> Api {
        Api::start_with(|service| service).await
    }

    /// [`Api::start`] with the host changed by `configure` before the service is built.
    pub async fn start_with(configure: impl FnOnce(Host) -> Host) -> Api {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = TestClock::at("2026-11-30T00:00:00Z");
        let store = SqliteStore::open(&dir.path().join("state.sqlite")).expect("store");
        // As `tidemark serve`: the step queue in the state file; its messages wait on this
        // process's clock (the test's clock stands still).
        let queue = Arc::new(Waking::new(store.step_queue(Arc::new(SystemClock), 10)));
        let mut worker = WorkerConfig::new(queue.clone(), "test");
        worker.driver.run_lease = RUN_LEASE.unsigned_abs();
        // The sweep is left to the tests that call it (`fire_due`, `reap_stalled`).
        worker.driver.sweep_every = Duration::from_secs(3600);
        let scheduler = LocalScheduler::open(&dir.path().join("schedules.sqlite"), clock.clone())
            .expect("scheduler");
        let secrets = LocalSecretStore::new(&dir.path().join("secrets.json"));
        let service = TaskService::new(
            Ports {
                store: Arc::new(store),
                secrets: Arc::new(secrets),
                scheduler: Arc::new(scheduler.clone()),
                clock: clock.clone(),
            },
            Allowlist::parse("127.0.0.1/32,::1").expect("allowlist"),
            configure(Host::new(worker)),
        );
        service.start_consumers(
            queue,
            ConsumerConfig {
                workers: 4,
                poll: Duration::from_millis(50),
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let app = router(Arc::clone(&service));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Api {
            base,
            service,
            scheduler,
            clock,
            dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn secrets_file(&self) -> PathBuf {
        self.dir.path().join("secrets.json")
    }

    /// Every byte of the state store's files, as text (for "no password here" checks).
    pub fn state_bytes(&self) -> String {
        let mut all = String::new();
        for name in [
            "state.sqlite",
            "state.sqlite-wal",
            "schedules.sqlite",
            "schedules.sqlite-wal",
        ] {
            if let Ok(bytes) = std::fs::read(self.dir.path().join(name)) {
                all.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        all
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .expect("a request");
        let response = self.client.request(request).await.expect("an answer");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{path}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(&body.to_string())).await
    }

    /// Creates a task (201 expected) and returns its id.
    pub async fn create(&self, spec: &Value) -> String {
        let (status, body) = self.post("/tasks", spec).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("an id").to_owned()
    }

    /// Polls `path` until `done` holds, for at most a minute.
    pub async fn wait_for(&self, path: &str, done: impl Fn(StatusCode, &Value) -> bool) -> Value {
        for _ in 0..600 {
            let (status, body) = self.get(path).await;
            if done(status, &body) {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} did not reach the expected state in a minute");
    }

    /// Prechecks a task (which must pass) and runs it now, as `POST .../runs` requires; the
    /// answer's status and body.
    pub async fn run_now(&self, id: &str) -> (StatusCode, Value) {
        assert_eq!(self.precheck(id).await["state"], "passed");
        self.post(&format!("/tasks/{id}/runs"), &json!({})).await
    }

    /// Prechecks a task and waits for the report.
    pub async fn precheck(&self, id: &str) -> Value {
        let (status, body) = self
            .post(&format!("/tasks/{id}/precheck"), &json!({}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "prechecking", "{body}");
        self.wait_for(&format!("/tasks/{id}/precheck"), |s, _| s == StatusCode::OK)
            .await
    }
}

/// A task over the stack's two servers copying `db` (on the source) to `target`.
pub fn spec(db: &str, target: &str) -> Value {
    json!({
        "name": "http-test",
        "source": source().endpoint_json(),
        "destination": destination().endpoint_json(),
        "policy": { "mode": "resync" },
        "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                      "start": "2026-12-01", "end": "2027-11-30" },
        "objects": [ { "database": db, "rename": target } ],
        "channel": { "workers": 2, "chunk_mb": 1 }
    })
}

/// A source database with one small table of `rows` rows.
pub async fn sample(db: &str, rows: u32) {
    source()
        .exec(&[
            &format!("CREATE DATABASE `{db}`"),
            &format!("USE `{db}`"),
            &format!("CREATE TABLE `{db}`.items (id INT PRIMARY KEY, label VARCHAR(20) NOT NULL)"),
            &format!(
                "INSERT INTO `{db}`.items SELECT seq, CONCAT('item-', seq) FROM seq_1_to_{rows}"
            ),
        ])
        .await;
}

pub async fn drop_databases(names: &[&str]) {
    for name in names {
        let sql = format!("DROP DATABASE IF EXISTS `{name}`");
        source().exec(&[&sql]).await;
        destination().exec(&[&sql]).await;
    }
}
