//! The state store in one SQLite file.
//!
//! One table of items keyed like the DynamoDB table (DESIGN: State): `pk`, `sk`, a `version` and
//! the record as JSON. One connection behind a mutex serialises every call, which makes each
//! read-modify-write (conditional updates, counters) atomic, as DynamoDB's conditions and
//! ADD are. Calls run on tokio's blocking pool. The step queue ([`crate::queue`]) lives in the
//! same file, on the same connection.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidemark_core::ports::{ProgressDelta, StateStore, StoreError};
use tidemark_core::state::{
    Page, RunKey, RunRecord, StepRecord, TableProgress, TaskRecord, Watermark,
};

use crate::cursor::{TASKS, cursor, resume, runs_listing};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk      TEXT NOT NULL,
    sk      TEXT NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
";

/// The SQLite state store. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    // The step queue (`crate::queue`) shares it: one file, one writer, no lock waits.
    pub(crate) conn: Arc<Mutex<Connection>>,
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
        .and_then(|()| conn.execute_batch(crate::queue::SCHEMA))
        .map_err(|e| backend(e.to_string()))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
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

fn backend(detail: String) -> StoreError {
    StoreError::Backend {
        detail,
        retryable: false,
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    let retryable = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    StoreError::Backend {
        detail: e.to_string(),
        retryable,
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| backend(format!("encode a record: {e}")))
}

fn decode<T: DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| backend(format!("a stored record does not decode: {e}")))
}

fn task_pk(id: &str) -> String {
    format!("TASK#{id}")
}

fn run_pk(key: &RunKey) -> String {
    format!("RUN#{}#{}", key.task_id, key.time_key())
}

fn get(conn: &Connection, pk: &str, sk: &str) -> Result<Option<(u64, String)>, StoreError> {
    conn.query_row(
        "SELECT version, body FROM items WHERE pk = ?1 AND sk = ?2",
        params![pk, sk],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?)),
    )
    .optional()
    .map_err(sql)
}

/// Inserts an item unless it exists; `true` when inserted.
fn insert(
    conn: &Connection,
    pk: &str,
    sk: &str,
    version: u64,
    body: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "INSERT OR IGNORE INTO items (pk, sk, version, body) VALUES (?1, ?2, ?3, ?4)",
            params![pk, sk, version as i64, body],
        )
        .map_err(sql)?;
    Ok(n == 1)
}

/// Replaces an item whose stored version is `expected`, writing `expected + 1`.
fn replace(
    conn: &Connection,
    pk: &str,
    sk: &str,
    expected: u64,
    body: &str,
    what: impl Fn() -> String,
) -> Result<u64, StoreError> {
    let n = conn
        .execute(
            "UPDATE items SET version = ?3, body = ?4 WHERE pk = ?1 AND sk = ?2 AND version = ?5",
            params![pk, sk, (expected + 1) as i64, body, expected as i64],
        )
        .map_err(sql)?;
    if n == 1 {
        return Ok(expected + 1);
    }
    match get(conn, pk, sk)? {
        Some(_) => Err(StoreError::Conflict { what: what() }),
        None => Err(StoreError::NotFound { what: what() }),
    }
}

/// Items of one partition whose sort key starts with `prefix`, in sort-key order.
fn query(
    conn: &Connection,
    pk: &str,
    prefix: &str,
    descending: bool,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, String)>, StoreError> {
    let order = if descending { "DESC" } else { "ASC" };
    let cmp = if descending { "<" } else { ">" };
    let sql_text = format!(
        "SELECT sk, body FROM items WHERE pk = ?1 AND substr(sk, 1, length(?2)) = ?2 \
         AND (?3 IS NULL OR sk {cmp} ?3) ORDER BY sk {order} LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql_text).map_err(sql)?;
    let rows = stmt
        .query_map(params![pk, prefix, after, i64::from(limit)], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(sql)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql)
}

/// With a record's version set to what the store holds.
fn with_version<T>(mut record: T, version: u64, set: impl FnOnce(&mut T, u64)) -> T {
    set(&mut record, version);
    record
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
            if insert(c, &pk, "TASK", version, &body)? {
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
        report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        // Microseconds in the key: two prechecks in one second must not overwrite each other.
        let (pk, sk, body) = (
            task_pk(task_id),
            format!("PRECHECK#{}", at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")),
            encode(&(at, report))?,
        );
        self.with(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO items (pk, sk, version, body) VALUES (?1, ?2, 1, ?3)",
                params![pk, sk, body],
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
        let pk = task_pk(task_id);
        self.with(move |c| {
            query(c, &pk, "PRECHECK#", true, None, 1)?
                .into_iter()
                .next()
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
        self.with(move |c| insert(c, &pk, &sk, version, &body))
            .await
    }

    async fn get_run(&self, key: &RunKey) -> Result<Option<RunRecord>, StoreError> {
        let (pk, sk) = (task_pk(&key.task_id), format!("RUN#{}", key.time_key()));
        self.with(move |c| get(c, &pk, &sk)?.map(|(_, b)| decode(&b)).transpose())
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
        self.with(move |c| {
            let rows = query(c, &pk, "RUN#", true, after.as_deref(), limit + 1)?;
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
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.with(move |c| {
            let tx = c.transaction().map_err(sql)?;
            for (pk, sk, version, body) in &items {
                insert(&tx, pk, sk, *version, body)?;
            }
            tx.commit().map_err(sql)
        })
        .await
    }

    async fn get_step(&self, run: &RunKey, n: u32) -> Result<Option<StepRecord>, StoreError> {
        let (pk, sk) = (run_pk(run), format!("STEP#{n:08}"));
        self.with(move |c| get(c, &pk, &sk)?.map(|(_, b)| decode(&b)).transpose())
            .await
    }

    async fn list_steps(&self, run: &RunKey) -> Result<Vec<StepRecord>, StoreError> {
        let pk = run_pk(run);
        self.with(move |c| {
            query(c, &pk, "STEP#", false, None, u32::MAX / 2)?
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
    ) -> Result<(), StoreError> {
        let (pk, table, delta) = (run_pk(run), table.to_owned(), delta.clone());
        self.with(move |c| add_one(c, &pk, &table, &delta)).await
    }

    /// One transaction for all of them.
    async fn add_progress_many(
        &self,
        run: &RunKey,
        deltas: &[(String, ProgressDelta)],
    ) -> Result<(), StoreError> {
        let (pk, deltas) = (run_pk(run), deltas.to_vec());
        self.with(move |c| {
            let tx = c.transaction().map_err(sql)?;
            for (table, delta) in &deltas {
                add_one(&tx, &pk, table, delta)?;
            }
            tx.commit().map_err(sql)
        })
        .await
    }

    async fn list_progress(&self, run: &RunKey) -> Result<Vec<TableProgress>, StoreError> {
        let pk = run_pk(run);
        self.with(move |c| {
            query(c, &pk, "TABLE#", false, None, u32::MAX / 2)?
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
                if insert(c, &pk, &sk, 1, &body)? {
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

/// Turns `limit + 1` rows into a page: the extra row only says that there is a next page.
/// Adds `delta` to a table's counters (created at zero first).
fn add_one(c: &Connection, pk: &str, table: &str, delta: &ProgressDelta) -> Result<(), StoreError> {
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
        insert(c, pk, &sk, 1, &body)?;
    } else {
        replace(c, pk, &sk, version, &body, || sk.clone())?;
    }
    Ok(())
}

fn page<T: DeserializeOwned>(
    mut rows: Vec<(String, String)>,
    limit: u32,
    cursor_of: impl Fn(&str) -> String,
) -> Result<Page<T>, StoreError> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|(key, _)| cursor_of(key))
    } else {
        None
    };
    let items = rows
        .iter()
        .map(|(_, body)| decode(body))
        .collect::<Result<Vec<T>, _>>()?;
    Ok(Page { items, next })
}
