//! What every scenario does: a stack of its own, users on both servers, a task through the API
//! (created, prechecked through the precheck queue, started), its schedule fired, its run
//! followed to the end, and at the end nothing unhealthy and the databases dropped.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tidemark_aws::DynamoDbStore;
use tidemark_core::ports::StateStore;
use tidemark_core::state::{RunKey, RunRecord, TaskStatus};
use tidemark_tests::harness::fixtures::{database, user};
use tidemark_tests::harness::{Server, destination, source, unique_name};
use tidemark_tests::lambda_host::{AwsStack, StackOptions};

/// How long a run may take before a scenario gives up on it.
pub const RUN_LIMIT: Duration = Duration::from_secs(200);

pub struct Scenario {
    pub stack: AwsStack,
    /// The source and the destination as the task's users (all privileges).
    pub reader: Server,
    pub writer: Server,
    databases: Mutex<Vec<String>>,
}

impl Scenario {
    pub async fn new() -> Scenario {
        Scenario::with(StackOptions::default()).await
    }

    pub async fn with(options: StackOptions) -> Scenario {
        let grants = ["ALL PRIVILEGES ON *.*".to_owned()];
        let (src, dst) = (source(), destination());
        let (stack, reader, writer) = tokio::join!(
            AwsStack::deploy(options),
            user(&src, "aws_src", &grants),
            user(&dst, "aws_dst", &grants),
        );
        Scenario {
            stack,
            reader,
            writer,
            databases: Mutex::new(Vec::new()),
        }
    }

    /// A database on the source made by `statements`; dropped by [`Scenario::finish`].
    pub async fn source_db(&self, tag: &str, statements: &[&str]) -> String {
        let db = database(&source(), tag, statements).await;
        self.forget_later(&db);
        db
    }

    /// A name for a destination database; dropped (with the replicas named after it) by
    /// [`Scenario::finish`].
    pub fn target(&self, tag: &str) -> String {
        let db = unique_name(tag);
        self.forget_later(&db);
        db
    }

    fn forget_later(&self, db: &str) {
        if let Ok(mut dbs) = self.databases.lock() {
            dbs.push(db.to_owned());
        }
    }

    /// A secret of the user's own, as RDS keeps a database's credentials
    /// (`{"username", "password"}`), made in the emulator: its ARN, for a `password_secret`.
    pub async fn user_secret(&self, server: &Server) -> String {
        let secret =
            json!({ "username": server.user, "password": server.password().expose_secret() });
        aws_sdk_secretsmanager::Client::new(&self.stack.sdk)
            .create_secret()
            .name(format!("rds!{}", unique_name("db")))
            .secret_string(secret.to_string())
            .send()
            .await
            .expect("CreateSecret")
            .arn
            .expect("its ARN")
    }

    /// A task over the scenario's users, daily at 02:30 UTC from 2027-12-01.
    pub fn task(&self, policy: Value, objects: Value) -> Value {
        json!({
            "name": unique_name("aws"),
            "source": self.reader.endpoint_json(),
            "destination": self.writer.endpoint_json(),
            "policy": policy,
            "schedule": { "cycle": "day", "at": "02:30", "time_zone": "UTC",
                          "start": "2027-12-01", "end": "2028-06-30" },
            "objects": objects,
            "channel": { "workers": 2, "chunk_mb": 1 }
        })
    }

    /// An incremental task copying `db`'s table `ev` by its `updated_at` to `target`, created:
    /// its id.
    pub async fn incremental_task(&self, db: &str, target: &str) -> String {
        self.create(&self.task(
            json!({ "mode": "incremental", "lag_seconds": 0, "lookback_seconds": 60 }),
            json!([{ "database": db, "rename": target,
                     "tables": [{ "name": "ev", "timestamp_column": "updated_at" }] }]),
        ))
        .await
    }

    /// `POST /tasks`: the new task's id.
    pub async fn create(&self, body: &Value) -> String {
        let (status, created) = self
            .stack
            .http("POST", "/tasks", Some(&body.to_string()))
            .await;
        assert_eq!(status, 201, "POST /tasks: {created}");
        created["id"].as_str().expect("an id").to_owned()
    }

    /// The precheck through the precheck queue, then `POST /tasks/{id}/start`.
    pub async fn start(&self, id: &str) {
        let (status, body) = self
            .stack
            .http("POST", &format!("/tasks/{id}/precheck"), None)
            .await;
        assert_eq!(status, 202, "POST precheck: {body}");
        let report = self
            .until(&format!("/tasks/{id}/precheck"), |s, _| s != 202)
            .await;
        assert_eq!(report["state"], "passed", "the precheck: {report}");
        let (status, body) = self
            .stack
            .http("POST", &format!("/tasks/{id}/start"), None)
            .await;
        assert_eq!(status, 200, "POST start: {body}");
    }

    /// Fires what the scheduler invokes in the minute from `at` (RFC 3339, UTC): the task's
    /// schedule, which must be due then.
    pub async fn fire(&self, id: &str, at: &str) {
        let from: jiff::Timestamp = at.parse().expect("an RFC 3339 time");
        let report = self
            .stack
            .fire_due(from, from + jiff::SignedDuration::from_secs(60))
            .await;
        let mine: Vec<&Value> = report
            .invocations
            .iter()
            .filter(|i| i["schedule_name"] == id)
            .collect();
        assert_eq!(mine.len(), 1, "{id} is not due once at {at}: {report:?}");
    }

    /// Runs the task's next cycle now, through the API (manage-task sends it to the step queue),
    /// and waits for its run to end: the run's id and the run.
    pub async fn run_now(&self, id: &str) -> (String, Value) {
        let (status, run) = self
            .stack
            .http("POST", &format!("/tasks/{id}/runs"), None)
            .await;
        assert_eq!(status, 202, "{run}");
        let at = run["id"].as_str().expect("the run's id").to_owned();
        let run = self.ended_run(id, &at).await;
        (at, run)
    }

    /// `GET path` until `done(status, body)`; the last body.
    pub async fn until(&self, path: &str, done: impl Fn(u16, &Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.stack.http("GET", path, None).await;
            if done(status, &body) {
                return body;
            }
            assert!(
                started.elapsed() < RUN_LIMIT,
                "GET {path} did not get there in {RUN_LIMIT:?}: {status} {body}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The run of the cycle at `at` (through the API), once it exists and has ended.
    pub async fn ended_run(&self, id: &str, at: &str) -> Value {
        self.run_when(id, at, |run| run.status.is_final()).await
    }

    /// The run of the cycle at `at` (through the API), once it exists and `done(run)`. The
    /// waiting reads the stack's table (one read, not a function's invocation, a poll): the
    /// scenarios' polls through the API were much of the emulator's load.
    pub async fn run_when(&self, id: &str, at: &str, done: impl Fn(&RunRecord) -> bool) -> Value {
        let key = RunKey {
            task_id: id.to_owned(),
            scheduled_time: at.parse().expect("an RFC 3339 time"),
        };
        let started = Instant::now();
        loop {
            if let Ok(Some(run)) = self.store().get_run(&key).await
                && done(&run)
            {
                let (status, run) = self
                    .stack
                    .http("GET", &format!("/tasks/{id}/runs/{at}"), None)
                    .await;
                assert_eq!(status, 200, "{run}");
                return run;
            }
            assert!(
                started.elapsed() < RUN_LIMIT,
                "the run {id} {at} did not get there in {RUN_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The stack's state table, read with the harness's key.
    fn store(&self) -> DynamoDbStore {
        DynamoDbStore::new(
            aws_sdk_dynamodb::Client::new(&self.stack.sdk),
            self.stack.physical_id("StateTable"),
        )
    }

    /// Waits until a run-worker environment is at work and the task's destination user has a
    /// statement running: a chunk is loading.
    pub async fn chunk_at_work(&self) {
        let worker = self.stack.function("RunWorkerFunction");
        let started = Instant::now();
        loop {
            if worker.busy_count() >= 1 && at_work(&destination(), &self.writer.user).await {
                return;
            }
            assert!(started.elapsed() < RUN_LIMIT, "no chunk was seen loading");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The task (through the API) once its last run's end is recorded on it (it says `running`
    /// until then).
    pub async fn settled_task(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            if let Ok(Some(task)) = self.store().get_task(id).await
                && task.status != TaskStatus::Running
            {
                return self
                    .stack
                    .http("GET", &format!("/tasks/{id}"), None)
                    .await
                    .1;
            }
            assert!(started.elapsed() < RUN_LIMIT, "the task {id} stays running");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Takes a write lock on a destination table, so the chunks loading it wait — each in flight,
    /// its lease renewed — until [`TableLock::release`]. Waits for the chunks already loading it.
    pub async fn lock_table(&self, db: &str, table: &str) -> TableLock {
        let mut conn = destination().conn().await;
        conn.query_drop(format!("LOCK TABLES `{db}`.`{table}` WRITE"))
            .await
            .unwrap_or_else(|e| panic!("LOCK TABLES {db}.{table}: {e}"));
        TableLock(conn)
    }

    /// Once the run at `at` copies and a chunk is done, holds the shadow table of `target` (a
    /// resync's) so the next chunk waits on it, and returns when that chunk is at work: a chunk
    /// is then in flight for as long as the lock is held, however fast chunks go.
    pub async fn hold_next_chunk(&self, id: &str, at: &str, target: &str) -> TableLock {
        self.run_when(id, at, |run| {
            run.phase == Some(tidemark_core::state::RunPhase::Copying) && run.chunks_done >= 1
        })
        .await;
        let shadow = destination()
            .query_one(&format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = '{target}' AND TABLE_NAME LIKE '\\_tm\\_s\\_%'"
            ))
            .await
            .expect("the shadow table");
        let lock = self.lock_table(target, &shadow).await;
        self.chunk_at_work().await;
        lock
    }

    /// Fires the cycle at `at` and waits for its run to end.
    pub async fn cycle(&self, id: &str, at: &str) -> Value {
        self.fire(id, at).await;
        self.ended_run(id, at).await
    }

    /// Checks the stack stayed healthy, then stops it and drops the scenario's databases.
    pub async fn finish(self) {
        let problems = self.stack.problems();
        self.stack.stop();
        let dbs = self.databases.lock().map(|d| d.clone()).unwrap_or_default();
        drop_databases(&dbs).await;
        assert!(
            problems.is_empty(),
            "the stack was not healthy: {problems:#?}"
        );
    }
}

/// A destination table held by [`Scenario::lock_table`].
pub struct TableLock(mysql_async::Conn);

impl TableLock {
    pub async fn release(self) {
        let mut conn = self.0;
        let _ = conn.query_drop("UNLOCK TABLES").await;
        let _ = conn.disconnect().await;
    }
}

/// Whether `user` has a statement at work on `server` (not sleeping).
async fn at_work(server: &Server, user: &str) -> bool {
    let busy = server
        .query_one(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE USER = '{user}' AND COMMAND <> 'Sleep'"
        ))
        .await;
    busy.is_some_and(|n| n != "0")
}

/// Drops `names` on both servers, and on the destination every database named after one of them
/// (multi-replica's `<db>_<time>` replicas).
async fn drop_databases(names: &[String]) {
    for server in [source(), destination()] {
        let mut all = Vec::new();
        for db in names {
            all.push(db.clone());
            let like = format!(
                "SELECT GROUP_CONCAT(SCHEMA_NAME SEPARATOR ',') FROM information_schema.SCHEMATA \
                 WHERE SCHEMA_NAME LIKE '{}\\_%'",
                db.replace('_', "\\_")
            );
            if let Some(more) = server.query_one(&like).await {
                all.extend(more.split(',').map(str::to_owned));
            }
        }
        let statements: Vec<String> = all
            .iter()
            .map(|db| format!("DROP DATABASE IF EXISTS `{db}`"))
            .collect();
        let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
        server.exec(&refs).await;
    }
}
