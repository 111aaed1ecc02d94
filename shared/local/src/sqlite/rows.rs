//! The rows under the store: the `items` table (and its `expires_at` column, added to files
//! made before records expired), and the reads and writes every method is built of. Reads
//! given a `now` skip rows that expired by it.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidemark_core::ports::StoreError;
use tidemark_core::state::{Page, RunKey};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk      TEXT NOT NULL,
    sk      TEXT NOT NULL,
    version INTEGER NOT NULL,
    body    TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
";

/// A file made before records expired has no `expires_at` column: it gets one (NULL, kept).
pub(super) fn add_expiry_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('items') WHERE name = 'expires_at'",
        [],
        |row| row.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE items ADD COLUMN expires_at INTEGER")?;
    }
    Ok(())
}

pub(super) fn backend(detail: String) -> StoreError {
    StoreError::Backend {
        detail,
        retryable: false,
    }
}

pub(super) fn sql(e: rusqlite::Error) -> StoreError {
    let retryable = matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    StoreError::Backend {
        detail: e.to_string(),
        retryable,
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| backend(format!("encode a record: {e}")))
}

pub(super) fn decode<T: DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| backend(format!("a stored record does not decode: {e}")))
}

pub(super) fn task_pk(id: &str) -> String {
    format!("TASK#{id}")
}

pub(super) fn run_pk(key: &RunKey) -> String {
    format!("RUN#{}#{}", key.task_id, key.time_key())
}

/// An item, expired or not (what a write needs to know).
pub(super) fn get(
    conn: &Connection,
    pk: &str,
    sk: &str,
) -> Result<Option<(u64, String)>, StoreError> {
    get_live(conn, pk, sk, None)
}

/// An item, unless it expired by `now` (when given).
pub(super) fn get_live(
    conn: &Connection,
    pk: &str,
    sk: &str,
    now: Option<i64>,
) -> Result<Option<(u64, String)>, StoreError> {
    conn.query_row(
        "SELECT version, body FROM items WHERE pk = ?1 AND sk = ?2 \
         AND (?3 IS NULL OR expires_at IS NULL OR expires_at > ?3)",
        params![pk, sk, now],
        |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?)),
    )
    .optional()
    .map_err(sql)
}

/// Seconds since the epoch of an expiry.
pub(super) fn seconds(at: Option<Timestamp>) -> Option<i64> {
    at.map(Timestamp::as_second)
}

/// Inserts an item unless it exists; `true` when inserted.
pub(super) fn insert(
    conn: &Connection,
    pk: &str,
    sk: &str,
    version: u64,
    body: &str,
    expires_at: Option<i64>,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "INSERT OR IGNORE INTO items (pk, sk, version, body, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![pk, sk, version as i64, body, expires_at],
        )
        .map_err(sql)?;
    Ok(n == 1)
}

/// Replaces an item whose stored version is `expected`, writing `expected + 1`.
pub(super) fn replace(
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

/// Items of one partition whose sort key starts with `prefix`, in sort-key order, but those
/// expired by `now` (when given).
pub(super) fn query(
    conn: &Connection,
    (pk, prefix): (&str, &str),
    descending: bool,
    after: Option<&str>,
    limit: u32,
    now: Option<i64>,
) -> Result<Vec<(String, String)>, StoreError> {
    let order = if descending { "DESC" } else { "ASC" };
    let cmp = if descending { "<" } else { ">" };
    let sql_text = format!(
        "SELECT sk, body FROM items WHERE pk = ?1 AND substr(sk, 1, length(?2)) = ?2 \
         AND (?3 IS NULL OR sk {cmp} ?3) AND (?5 IS NULL OR expires_at IS NULL OR expires_at > ?5) \
         ORDER BY sk {order} LIMIT ?4"
    );
    let mut stmt = conn.prepare_cached(&sql_text).map_err(sql)?;
    let rows = stmt
        .query_map(params![pk, prefix, after, i64::from(limit), now], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(sql)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql)
}

/// With a record's version set to what the store holds.
pub(super) fn with_version<T>(mut record: T, version: u64, set: impl FnOnce(&mut T, u64)) -> T {
    set(&mut record, version);
    record
}

/// Turns `limit + 1` rows into a page: the extra row only says that there is a next page.
pub(super) fn page<T: DeserializeOwned>(
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
