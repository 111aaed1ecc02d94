//! The local scheduler: the schedules of started tasks, kept in a SQLite table so they outlive
//! the process. It implements [`TaskScheduler`] (what `start` and `stop` call) and remembers, per
//! task, up to which instant its cycles have been dealt with (`checked_until`), so the serve loop
//! knows after a restart which cycles passed while it was down.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};
use tidemark_core::ports::{Clock, InstalledSchedule, SchedulerError, TaskSchedule, TaskScheduler};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schedules (
    task_id         TEXT PRIMARY KEY,
    cron_expression TEXT NOT NULL,
    time_zone       TEXT NOT NULL,
    window_start    TEXT NOT NULL,
    window_end      TEXT NOT NULL,
    put_at          TEXT NOT NULL,
    checked_until   TEXT NOT NULL
) WITHOUT ROWID;
";

/// A schedule as the serve loop sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSchedule {
    pub task_id: String,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    /// Every cycle at or before this instant has fired, been skipped or been recorded as missed.
    pub checked_until: Timestamp,
}

/// The schedules, in SQLite. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct LocalScheduler {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
}

fn backend(detail: String) -> SchedulerError {
    SchedulerError::Backend {
        detail,
        retryable: false,
    }
}

fn sql(e: rusqlite::Error) -> SchedulerError {
    backend(format!("the local schedule table: {e}"))
}

fn parse_time(text: &str) -> Result<Timestamp, SchedulerError> {
    text.parse().map_err(|e| {
        backend(format!(
            "a stored schedule time {text:?} does not parse: {e}"
        ))
    })
}

impl LocalScheduler {
    /// Opens (creating if needed) the schedule table in the SQLite file at `path`.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<LocalScheduler, SchedulerError> {
        let conn =
            Connection::open(path).map_err(|e| backend(format!("open {}: {e}", path.display())))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")
            .and_then(|()| conn.execute_batch(SCHEMA))
            .map_err(sql)?;
        Ok(LocalScheduler {
            conn: Arc::new(Mutex::new(conn)),
            clock,
        })
    }

    async fn with<T, F>(&self, f: F) -> Result<T, SchedulerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, SchedulerError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| backend("the schedule table's lock was poisoned".into()))?;
            f(&guard)
        })
        .await
        .map_err(|e| backend(format!("schedule table task failed: {e}")))?
    }

    /// Every installed schedule, in task id order.
    pub async fn list(&self) -> Result<Vec<LocalSchedule>, SchedulerError> {
        self.with(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT task_id, window_start, window_end, checked_until FROM schedules \
                     ORDER BY task_id",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?;
            rows.into_iter()
                .map(|(task_id, start, end, checked)| {
                    Ok(LocalSchedule {
                        task_id,
                        window_start: parse_time(&start)?,
                        window_end: parse_time(&end)?,
                        checked_until: parse_time(&checked)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Records that the task's cycles up to `until` have been dealt with (never moves back).
    pub async fn set_checked_until(
        &self,
        task_id: &str,
        until: Timestamp,
    ) -> Result<(), SchedulerError> {
        let task_id = task_id.to_owned();
        self.with(move |c| {
            let current: Option<String> = c
                .query_row(
                    "SELECT checked_until FROM schedules WHERE task_id = ?1",
                    params![task_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            if let Some(current) = current
                && parse_time(&current)? < until
            {
                c.execute(
                    "UPDATE schedules SET checked_until = ?2 WHERE task_id = ?1",
                    params![task_id, until.to_string()],
                )
                .map_err(sql)?;
            }
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl TaskScheduler for LocalScheduler {
    /// Installs or replaces the schedule; cycles before now are not fired (as a new EventBridge
    /// schedule never fires a time already past).
    async fn put_schedule(&self, schedule: &TaskSchedule) -> Result<(), SchedulerError> {
        let now = self.clock.now().to_string();
        let s = schedule.clone();
        self.with(move |c| {
            c.execute(
                "INSERT INTO schedules (task_id, cron_expression, time_zone, window_start, \
                 window_end, put_at, checked_until) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
                 ON CONFLICT (task_id) DO UPDATE SET cron_expression = ?2, time_zone = ?3, \
                 window_start = ?4, window_end = ?5, put_at = ?6, checked_until = ?6",
                params![
                    s.task_id,
                    s.cron_expression,
                    s.time_zone,
                    s.window_start.to_string(),
                    s.window_end.to_string(),
                    now
                ],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn get_schedule(
        &self,
        task_id: &str,
    ) -> Result<Option<InstalledSchedule>, SchedulerError> {
        let task_id = task_id.to_owned();
        let row = self
            .with(move |c| {
                c.query_row(
                    "SELECT task_id, cron_expression, time_zone, window_start, window_end, put_at \
                     FROM schedules WHERE task_id = ?1",
                    params![task_id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                            r.get::<_, String>(4)?,
                            r.get::<_, String>(5)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql)
            })
            .await?;
        let Some((task_id, cron_expression, time_zone, start, end, put_at)) = row else {
            return Ok(None);
        };
        let (start, end, put_at) = (parse_time(&start)?, parse_time(&end)?, parse_time(&put_at)?);
        Ok(Some(InstalledSchedule {
            task_id,
            cron_expression,
            time_zone,
            not_before: (start > put_at).then_some(start),
            not_after: end.checked_sub(SignedDuration::from_secs(1)).ok(),
            enabled: true,
        }))
    }

    async fn remove_schedule(&self, task_id: &str) -> Result<(), SchedulerError> {
        let task_id = task_id.to_owned();
        self.with(move |c| {
            c.execute("DELETE FROM schedules WHERE task_id = ?1", params![task_id])
                .map_err(sql)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    struct FixedClock(StdMutex<Timestamp>);

    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            *self.0.lock().expect("clock")
        }
    }

    #[tokio::test]
    async fn keeps_schedules_and_their_progress_across_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("schedules.sqlite");
        let put_at: Timestamp = "2026-11-20T00:00:00Z".parse().expect("time");
        let clock = Arc::new(FixedClock(StdMutex::new(put_at)));
        let scheduler = LocalScheduler::open(&path, clock.clone()).expect("open");
        let schedule = TaskSchedule {
            task_id: "t1".into(),
            cron_expression: "cron(30 2 * * ? *)".into(),
            time_zone: "UTC".into(),
            window_start: "2026-12-01T00:00:00Z".parse().expect("time"),
            window_end: "2026-12-31T00:00:00Z".parse().expect("time"),
        };
        scheduler.put_schedule(&schedule).await.expect("put");
        let installed = scheduler
            .get_schedule("t1")
            .await
            .expect("get")
            .expect("some");
        assert_eq!(installed.not_before, Some(schedule.window_start));
        assert_eq!(
            installed.not_after,
            Some("2026-12-30T23:59:59Z".parse().expect("time"))
        );

        let later: Timestamp = "2026-12-02T00:00:00Z".parse().expect("time");
        scheduler.set_checked_until("t1", later).await.expect("set");
        scheduler
            .set_checked_until("t1", put_at)
            .await
            .expect("never back");
        drop(scheduler);

        let reopened = LocalScheduler::open(&path, clock).expect("reopen");
        let listed = reopened.list().await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].checked_until, later);
        reopened.remove_schedule("t1").await.expect("remove");
        reopened.remove_schedule("t1").await.expect("remove twice");
        assert!(reopened.get_schedule("t1").await.expect("get").is_none());
        assert!(reopened.list().await.expect("list").is_empty());
    }
}
