//! The step queue in the state store's SQLite file, with SQS's semantics: a delay, a visibility
//! timeout, a new receipt per delivery and a dead-letter list after `max_receive_count` receives.
//!
//! One row per message in `step_queue`. A received message keeps its row until deleted; being
//! invisible is only a `visible_at` in the future, so a message whose consumer died (the whole
//! process, even) comes back once its timeout passes, also after the file is reopened. The table
//! shares the store's connection and mutex, so each receive is one transaction nobody interleaves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, TransactionBehavior, params};
use tidemark_core::ports::{Clock, QueueError, ReceivedStep, StepInbox, StepMessage, StepQueue};

use crate::sqlite::SqliteStore;

/// Run by [`SqliteStore`] on every open, so a data dir from before the queue gains it.
/// AUTOINCREMENT: ids are never reused, so a receipt (id and receive count) of a deleted message
/// can never name a later one. Times are microseconds since the epoch.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS step_queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    body          TEXT NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT,
    dead          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS step_queue_available ON step_queue (dead, visible_at, id);
CREATE UNIQUE INDEX IF NOT EXISTS step_queue_receipt ON step_queue (receipt)
    WHERE receipt IS NOT NULL;
";

/// The step queue in SQLite. Cheap to clone; clones (and the store) share the connection.
#[derive(Clone)]
pub struct SqliteQueue {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    max_receive_count: u32,
}

impl SqliteStore {
    /// The step queue in this store's database, timed by `clock`. A message received
    /// `max_receive_count` times without being deleted goes to the dead-letter list on its next
    /// receive; 0 is taken as 1 (SQS's minimum).
    pub fn step_queue(&self, clock: Arc<dyn Clock>, max_receive_count: u32) -> SqliteQueue {
        SqliteQueue {
            conn: Arc::clone(&self.conn),
            clock,
            max_receive_count: max_receive_count.max(1),
        }
    }
}

impl SqliteQueue {
    /// Runs `f` with the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, QueueError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| backend("the state store's lock was poisoned by a panic".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| backend(format!("step queue task failed: {e}")))?
    }
}

fn backend(detail: String) -> QueueError {
    QueueError::Backend {
        detail,
        retryable: false,
    }
}

fn sql(e: rusqlite::Error) -> QueueError {
    let retryable = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    QueueError::Backend {
        detail: format!("the step queue table: {e}"),
        retryable,
    }
}

/// `now + after` in microseconds since the epoch, saturating (a huge timeout means "never").
pub(crate) fn micros_after(now: Timestamp, after: Duration) -> i64 {
    let after = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
    now.as_microsecond().saturating_add(after)
}

/// The receipt of a message's `count`th delivery: unique as long as ids are never reused.
pub(crate) fn receipt(id: impl std::fmt::Display, count: u32) -> String {
    format!("{id}.{count}")
}

#[async_trait]
impl StepQueue for SqliteQueue {
    async fn send_step(
        &self,
        message: &StepMessage,
        delay: Option<Duration>,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError::Encode {
            detail: e.to_string(),
        })?;
        let visible_at = micros_after(self.clock.now(), delay.unwrap_or_default());
        self.with(move |c| {
            c.execute(
                "INSERT INTO step_queue (body, visible_at) VALUES (?1, ?2)",
                params![body, visible_at],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl StepInbox for SqliteQueue {
    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
    ) -> Result<Vec<ReceivedStep>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let (now_micros, until) = (now.as_microsecond(), micros_after(now, visibility));
        let max_receive_count = self.max_receive_count;
        self.with(move |c| {
            // IMMEDIATE: take the write lock up front, so another connection to the file cannot
            // make this transaction fail half-way when it upgrades from reading to writing.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            // Every available message that has used up its receives is dead-lettered now, not
            // only the first `max`: none of them could ever be delivered again anyway.
            tx.execute(
                "UPDATE step_queue SET dead = 1, receipt = NULL \
                 WHERE dead = 0 AND visible_at <= ?1 AND receive_count >= ?2",
                params![now_micros, max_receive_count],
            )
            .map_err(sql)?;
            let rows = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, body, receive_count FROM step_queue \
                         WHERE dead = 0 AND visible_at <= ?1 ORDER BY visible_at, id LIMIT ?2",
                    )
                    .map_err(sql)?;
                stmt.query_map(params![now_micros, max], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, u32>(2)?,
                    ))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?
            };
            let mut received = Vec::with_capacity(rows.len());
            for (id, body, count) in rows {
                let Ok(message) = serde_json::from_str::<StepMessage>(&body) else {
                    // Only a damaged file holds such a row. Left as it is, every receive would
                    // pick it again; dead-lettered, it is logged and dropped once.
                    tracing::warn!(
                        id,
                        body,
                        "a step queue message does not decode; dead-lettered"
                    );
                    tx.execute(
                        "UPDATE step_queue SET dead = 1, receipt = NULL WHERE id = ?1",
                        params![id],
                    )
                    .map_err(sql)?;
                    continue;
                };
                let count = count.saturating_add(1);
                let receipt = receipt(id, count);
                tx.execute(
                    "UPDATE step_queue SET visible_at = ?2, receive_count = ?3, receipt = ?4 \
                     WHERE id = ?1",
                    params![id, until, count, receipt],
                )
                .map_err(sql)?;
                received.push(ReceivedStep {
                    message,
                    receipt,
                    receive_count: count,
                });
            }
            tx.commit().map_err(sql)?;
            Ok(received)
        })
        .await
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let receipt = receipt.to_owned();
        self.with(move |c| {
            // No row matches a stale receipt: the no-op the contract asks for.
            c.execute(
                "DELETE FROM step_queue WHERE receipt = ?1 AND dead = 0",
                params![receipt],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        let (receipt, until) = (
            receipt.to_owned(),
            micros_after(self.clock.now(), visibility),
        );
        self.with(move |c| {
            c.execute(
                "UPDATE step_queue SET visible_at = ?2 WHERE receipt = ?1 AND dead = 0",
                params![receipt, until],
            )
            .map_err(sql)?;
            Ok(())
        })
        .await
    }

    async fn take_dead_letters(&self, max: u32) -> Result<Vec<StepMessage>, QueueError> {
        self.with(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql)?;
            let rows = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, body FROM step_queue WHERE dead = 1 ORDER BY id LIMIT ?1",
                    )
                    .map_err(sql)?;
                stmt.query_map(params![max], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(sql)?
            };
            let mut taken = Vec::with_capacity(rows.len());
            for (id, body) in rows {
                tx.execute("DELETE FROM step_queue WHERE id = ?1", params![id])
                    .map_err(sql)?;
                match serde_json::from_str::<StepMessage>(&body) {
                    Ok(message) => taken.push(message),
                    // Not a message anyone can act on: the log keeps its body, the table not.
                    Err(e) => {
                        tracing::warn!(id, body, error = %e, "dropped an undecodable dead letter")
                    }
                }
            }
            tx.commit().map_err(sql)?;
            Ok(taken)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_core::ports::SystemClock;
    use tidemark_core::state::RunKey;

    fn message(step: u32) -> StepMessage {
        StepMessage {
            run: RunKey {
                task_id: "t1".into(),
                scheduled_time: "2026-12-01T02:30:00Z".parse().expect("time"),
            },
            step,
        }
    }

    #[tokio::test]
    async fn a_data_dir_from_before_the_queue_gains_it_on_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.sqlite");
        {
            // The store's schema as it was before the queue: the items table only.
            let old = Connection::open(&path).expect("create");
            old.execute_batch(
                "CREATE TABLE items (pk TEXT NOT NULL, sk TEXT NOT NULL, version INTEGER NOT NULL, \
                 body TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID;",
            )
            .expect("old schema");
        }
        let store = SqliteStore::open(&path).expect("open an old data dir");
        let queue = store.step_queue(Arc::new(SystemClock), 5);
        queue.send_step(&message(1), None).await.expect("send");
        let got = queue
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message, message(1));
        assert_eq!(got[0].receive_count, 1);
    }

    #[tokio::test]
    async fn an_undecodable_row_is_dead_lettered_then_dropped_not_delivered() {
        let store = SqliteStore::in_memory().expect("store");
        let queue = store.step_queue(Arc::new(SystemClock), 5);
        queue
            .with(|c| {
                c.execute(
                    "INSERT INTO step_queue (body, visible_at) VALUES ('not json', 0)",
                    [],
                )
                .map_err(sql)?;
                Ok(())
            })
            .await
            .expect("insert a damaged row");
        queue.send_step(&message(2), None).await.expect("send");
        let got = queue
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(
            got.iter().map(|r| r.message.step).collect::<Vec<_>>(),
            vec![2]
        );
        assert!(queue.take_dead_letters(10).await.expect("take").is_empty());
        let left: i64 = queue
            .with(|c| {
                c.query_row("SELECT count(*) FROM step_queue", [], |r| r.get(0))
                    .map_err(sql)
            })
            .await
            .expect("count");
        assert_eq!(left, 1, "only the delivered message is left");
    }
}
