//! The state store in one SQLite file.
//!
//! One table of items keyed like the DynamoDB table (DESIGN: State): `pk`, `sk`, a `version` and
//! the record as JSON. One connection behind a mutex serialises every call, which makes each
//! read-modify-write (conditional updates, counters) atomic, as DynamoDB's conditions and
//! ADD are. A run's items and precheck reports have an `expires_at` (epoch seconds, set when
//! they are inserted; NULL never expires): readers skip an item past it, as the DynamoDB store
//! does, and nothing deletes it. Calls run on tokio's blocking pool. The step queue
//! ([`crate::queue`]) lives in the same file, on the same connection.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, params};
use tidemark_core::ports::{Clock, ProgressDelta, StateStore, StoreError, SystemClock};
use tidemark_core::state::{
    Page, RunKey, RunRecord, StepRecord, TableProgress, TaskRecord, Watermark,
};

use crate::cursor::{TASKS, cursor, resume, runs_listing};

mod rows;

use rows::*;

/// The SQLite state store. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    // The step queue (`crate::queue`) shares it: one file, one writer, no lock waits.
    pub(crate) conn: Arc<Mutex<Connection>>,
    /// What "now" is when an item's expiry is checked.
    clock: Arc<dyn Clock>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn =
            Connection::open(path).map_err(|e| backend(format!("open {}: {e}", path.display())))?;
        Self::init(conn)
    }

    /// A store in memory, for tests.
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        Self::init(Connection::open_in_memory().map_err(|e| backend(e.to_string()))?)
    }

    fn init(conn: Connection) -> Result<SqliteStore, StoreError> {
        // WAL: readers never wait for the writer; synchronous=NORMAL is durable across a process
        // crash (the case that matters here), and only a power loss may drop the last commit.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
        )
        .and_then(|()| conn.execute_batch(SCHEMA))
        .and_then(|()| add_expiry_column(&conn))
        .and_then(|()| conn.execute_batch(crate::queue::SCHEMA))
        .map_err(|e| backend(e.to_string()))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            clock: Arc::new(SystemClock),
        })
    }

    /// This store, telling expired items by `clock` (the service's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SqliteStore {
        self.clock = clock;
        self
    }

    /// Now, in the epoch seconds of `expires_at`: what reads filter expired rows by.
    fn now(&self) -> Option<i64> {
        Some(self.clock.now().as_second())
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| backend("the state store's lock was poisoned by a panic".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| backend(format!("state store task failed: {e}")))?
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn create_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let (pk, body, version, id) = (
            task_pk(&task.id),
            encode(task)?,
            task.version,
            task.id.clone(),
        );
        self.with(move |c| {
            if insert(c, &pk, "TASK", version, &body, None)? {
                Ok(())
            } else {
                Err(StoreError::Conflict {
                    what: format!("task {id}"),
                })
            }
        })
        .await
    }

    async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let pk = task_pk(id);
        self.with(move |c| get(c, &pk, "TASK")?.map(|(_, b)| decode(&b)).transpose())
            .await
    }

    async fn list_tasks(
        &self,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<TaskRecord>, StoreError> {
        let after = resume(next, TASKS)?.map(|id| task_pk(&id));
        self.with(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT pk, body FROM items WHERE sk = 'TASK' AND substr(pk, 1, 5) = 'TASK#' \
                     AND (?1 IS NULL OR pk > ?1) ORDER BY pk LIMIT ?2",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![after, i64::from(limit) + 1], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            page(rows, limit, |pk| {
                cursor(TASKS, pk.trim_start_matches("TASK#"))
            })
        })
        .await
    }

    async fn update_task(&self, task: &TaskRecord) -> Result<u64, StoreError> {
        let expected = task.version;
        let record = with_version(task.clone(), expected + 1, |t, v| t.version = v);
        let (pk, body, id) = (task_pk(&task.id), encode(&record)?, task.id.clone());
        self.with(move |c| replace(c, &pk, "TASK", expected, &body, || format!("task {id}")))
            .await
    }

    async fn delete_task(&self, id: &str) -> Result<(), StoreError> {
        let (pk, runs) = (task_pk(id), format!("RUN#{id}#"));
        self.with(move |c| {
            let tx = c.transaction().map_err(sql)?;
            tx.execute("DELETE FROM items WHERE pk = ?1", params![pk])
                .map_err(sql)?;
            tx.execute(
                "DELETE FROM items WHERE substr(pk, 1, length(?1)) = ?1",
                params![runs],
            )
            .map_err(sql)?;
            tx.commit().map_err(sql)
        })
        .await
    }

    async fn put_precheck(
        &self,
        task_id: &str,
        at: Timestamp,
        expires_at: Option<Timestamp>,
        report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        // Microseconds in the key: two prechecks in one second must not overwrite each other.
        let (pk, sk, body, expires_at) = (
            task_pk(task_id),
            format!("PRECHECK#{}", at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")),
            encode(&(at, report))?,
            seconds(expires_at),
        );
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO items (pk, sk, version, body, expires_at) \
                 VALUES (?1, ?2, 1, ?3, ?4)",
                params![pk, sk, body, expires_at],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn latest_precheck(
        &self,
        task_id: &str,
    ) -> Result<Option<(Timestamp, serde_json::Value)>, StoreError> {
        let (pk, now) = (task_pk(task_id), self.now());
        // The newest report, unless it expired (an older one kept longer does not stand in).
        self.with(move |c| {
            let newest = query(c, (&pk, "PRECHECK#"), true, None, 1, None)?;
            let Some((sk, _)) = newest.into_iter().next() else {
                return Ok(None);
            };
            get_live(c, &pk, &sk, now)?
                .map(|(_, b)| decode(&b))
                .transpose()
        })
        .await
    }

    async fn create_run(&self, run: &RunRecord) -> Result<bool, StoreError> {
        let (pk, sk, body, version) = (
            task_pk(&run.key.task_id),
            format!("RUN#{}", run.key.time_key()),
            encode(run)?,
            run.version,
        );
        let expires_at = seconds(run.expires_at);
        self.with(move |c| insert(c, &pk, &sk, version, &body, expires_at))
            .await
    }

    async fn get_run(&self, key: &RunKey) -> Result<Option<RunRecord>, StoreError> {
        let (pk, sk) = (task_pk(&key.task_id), format!("RUN#{}", key.time_key()));
        let now = self.now();
        self.with(move |c| {
            get_live(c, &pk, &sk, now)?
                .map(|(_, b)| decode(&b))
                .transpose()
        })
        .await
    }

    async fn list_runs(
        &self,
        task_id: &str,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<RunRecord>, StoreError> {
        let pk = task_pk(task_id);
        let listing = runs_listing(task_id);
        let after = resume(next, &listing)?.map(|time| format!("RUN#{time}"));
        let now = self.now();
        self.with(move |c| {
            let rows = query(c, (&pk, "RUN#"), true, after.as_deref(), limit + 1, now)?;
            page(rows, limit, |sk| {
                cursor(&listing, sk.trim_start_matches("RUN#"))
            })
        })
        .await
    }

    async fn update_run(&self, run: &RunRecord) -> Result<u64, StoreError> {
        let expected = run.version;
        let record = with_version(run.clone(), expected + 1, |r, v| r.version = v);
        let (pk, sk, body) = (
            task_pk(&run.key.task_id),
            format!("RUN#{}", run.key.time_key()),
            encode(&record)?,
        );
        let what = format!("run {} of task {}", run.key.time_key(), run.key.task_id);
        self.with(move |c| replace(c, &pk, &sk, expected, &body, || what.clone()))
            .await
    }

    async fn increment_chunks_done(&self, key: &RunKey) -> Result<u32, StoreError> {
        let (pk, sk) = (task_pk(&key.task_id), format!("RUN#{}", key.time_key()));
        let what = format!("run {} of task {}", key.time_key(), key.task_id);
        self.with(move |c| {
            let (version, body) =
                get(c, &pk, &sk)?.ok_or(StoreError::NotFound { what: what.clone() })?;
            let mut run: RunRecord = decode(&body)?;
            run.chunks_done += 1;
            // The version moves too, so a writer holding the old record cannot overwrite the count.
            run.version = version + 1;
            replace(c, &pk, &sk, version, &encode(&run)?, || what.clone())?;
            Ok(run.chunks_done)
        })
        .await
    }

    async fn put_steps(&self, steps: &[StepRecord]) -> Result<(), StoreError> {
        let items = steps
            .iter()
            .map(|s| {
                Ok((
                    run_pk(&s.run),
                    format!("STEP#{:08}", s.n),
                    s.version,
                    encode(s)?,
                    seconds(s.expires_at),
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.with(move |c| {
            let tx = c.transaction().map_err(sql)?;
            for (pk, sk, version, body, expires_at) in &items {
                insert(&tx, pk, sk, *version, body, *expires_at)?;
            }
            tx.commit().map_err(sql)
        })
        .await
    }

    async fn get_step(&self, run: &RunKey, n: u32) -> Result<Option<StepRecord>, StoreError> {
        let (pk, sk, now) = (run_pk(run), format!("STEP#{n:08}"), self.now());
        self.with(move |c| {
            get_live(c, &pk, &sk, now)?
                .map(|(_, b)| decode(&b))
                .transpose()
        })
        .await
    }

    async fn list_steps(&self, run: &RunKey) -> Result<Vec<StepRecord>, StoreError> {
        let (pk, now) = (run_pk(run), self.now());
        self.with(move |c| {
            query(c, (&pk, "STEP#"), false, None, u32::MAX / 2, now)?
                .into_iter()
                .map(|(_, b)| decode(&b))
                .collect()
        })
        .await
    }

    async fn update_step(&self, step: &StepRecord) -> Result<u64, StoreError> {
        let expected = step.version;
        let record = with_version(step.clone(), expected + 1, |s, v| s.version = v);
        let (pk, sk, body) = (
            run_pk(&step.run),
            format!("STEP#{:08}", step.n),
            encode(&record)?,
        );
        let what = format!("step {} of run {}", step.n, step.run.time_key());
        self.with(move |c| replace(c, &pk, &sk, expected, &body, || what.clone()))
            .await
    }

    async fn add_progress(
        &self,
        run: &RunKey,
        table: &str,
        delta: &ProgressDelta,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let (pk, table, delta) = (run_pk(run), table.to_owned(), delta.clone());
        let expires_at = seconds(expires_at);
        self.with(move |c| add_one(c, &pk, &table, &delta, expires_at))
            .await
    }

    /// One transaction for all of them.
    async fn add_progress_many(
        &self,
        run: &RunKey,
        deltas: &[(String, ProgressDelta)],
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let (pk, deltas) = (run_pk(run), deltas.to_vec());
        let expires_at = seconds(expires_at);
        self.with(move |c| {
            let tx = c.transaction().map_err(sql)?;
            for (table, delta) in &deltas {
                add_one(&tx, &pk, table, delta, expires_at)?;
            }
            tx.commit().map_err(sql)
        })
        .await
    }

    async fn list_progress(&self, run: &RunKey) -> Result<Vec<TableProgress>, StoreError> {
        let (pk, now) = (run_pk(run), self.now());
        self.with(move |c| {
            query(c, (&pk, "TABLE#"), false, None, u32::MAX / 2, now)?
                .into_iter()
                .map(|(_, b)| decode(&b))
                .collect()
        })
        .await
    }

    async fn get_watermark(
        &self,
        task_id: &str,
        table: &str,
    ) -> Result<Option<Watermark>, StoreError> {
        let (pk, sk) = (task_pk(task_id), format!("MARK#{table}"));
        self.with(move |c| get(c, &pk, &sk)?.map(|(_, b)| decode(&b)).transpose())
            .await
    }

    async fn put_watermark(&self, mark: &Watermark) -> Result<u64, StoreError> {
        let expected = mark.version;
        let record = with_version(mark.clone(), expected + 1, |m, v| m.version = v);
        let (pk, sk, body) = (
            task_pk(&mark.task_id),
            format!("MARK#{}", mark.table),
            encode(&record)?,
        );
        let what = format!("the watermark of {}", mark.table);
        self.with(move |c| {
            if expected == 0 {
                if insert(c, &pk, &sk, 1, &body, None)? {
                    Ok(1)
                } else {
                    Err(StoreError::Conflict { what })
                }
            } else {
                replace(c, &pk, &sk, expected, &body, || what.clone())
            }
        })
        .await
    }
}

/// Adds `delta` to a table's counters (created at zero first).
fn add_one(
    c: &Connection,
    pk: &str,
    table: &str,
    delta: &ProgressDelta,
    expires_at: Option<i64>,
) -> Result<(), StoreError> {
    let sk = format!("TABLE#{table}");
    let (version, mut progress) = match get(c, pk, &sk)? {
        Some((v, b)) => (v, decode::<TableProgress>(&b)?),
        None => (
            0,
            TableProgress {
                table: table.to_owned(),
                ..TableProgress::default()
            },
        ),
    };
    progress.rows += delta.rows;
    progress.bytes += delta.bytes;
    progress.chunks_done += delta.chunks_done;
    progress.elapsed_ms += delta.elapsed_ms;
    progress.verified += delta.verified;
    progress.mismatched += delta.mismatched;
    let body = encode(&progress)?;
    if version == 0 {
        insert(c, pk, &sk, 1, &body, expires_at)?;
    } else {
        replace(c, pk, &sk, version, &body, || sk.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use tidemark_core::state::{RunStatus, RunTrigger};

    use super::*;

    fn run(at: &str, expires_at: Option<Timestamp>) -> RunRecord {
        let at: Timestamp = at.parse().expect("time");
        RunRecord {
            key: RunKey {
                task_id: "t1".into(),
                scheduled_time: at,
            },
            trigger: RunTrigger::Schedule,
            status: RunStatus::Succeeded,
            phase: None,
            error: None,
            created_at: at,
            finished_at: Some(at),
            heartbeat: at,
            chunks_total: 0,
            chunks_done: 0,
            chunks_dispatched: 0,
            plan: serde_json::Value::Null,
            expires_at,
            version: 1,
        }
    }

    #[tokio::test]
    async fn a_file_made_before_records_expired_gets_the_column_and_its_runs_load() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("state.sqlite");
        let kept = run("2026-11-01T02:30:00Z", None);
        {
            // The items table as it was before `expires_at`, holding a run of then.
            let old = Connection::open(&path).expect("create");
            old.execute_batch(
                "CREATE TABLE items (pk TEXT NOT NULL, sk TEXT NOT NULL, version INTEGER NOT NULL, \
                 body TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID;",
            )
            .expect("old schema");
            let body = encode(&kept).expect("encode");
            assert!(!body.contains("expires_at"), "{body}");
            old.execute(
                "INSERT INTO items VALUES ('TASK#t1', 'RUN#2026-11-01T02:30:00Z', 1, ?1)",
                params![body],
            )
            .expect("an old run");
        }
        let store = SqliteStore::open(&path).expect("open an old data dir");
        assert_eq!(
            store.get_run(&kept.key).await.expect("get"),
            Some(kept.clone())
        );
        let past = Timestamp::now() - SignedDuration::from_secs(1);
        let gone = run("2026-11-02T02:30:00Z", Some(past));
        assert!(store.create_run(&gone).await.expect("create"));
        assert_eq!(store.get_run(&gone.key).await.expect("get"), None);
        let listed = store.list_runs("t1", 10, None).await.expect("list");
        assert_eq!(listed.items, [kept]);
        // Opening it again finds the column there.
        drop(store);
        SqliteStore::open(&path).expect("open again");
    }
}
