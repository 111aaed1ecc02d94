//! Reads for many tables at once: read-only statements sent several to a round trip, as one
//! multi-statement query (mysql_async asks for `CLIENT_MULTI_STATEMENTS`), each statement's rows
//! kept apart.
//!
//! A database of a thousand tables asks each of them the same small questions (its `SHOW CREATE
//! TABLE`, its columns and keys, a sample of its rows); one at a time that is thousands of round
//! trips, each waiting on the last. Batched, a hundred go in one. Where a batch fails, its
//! statements run again one at a time, so the error is the failing statement's own and names
//! its object: they only read, so running them again changes nothing.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

/// At most this many statements share a round trip.
pub const BATCH_STATEMENTS: usize = 100;
/// And at most this many bytes of SQL (well under any `max_allowed_packet`).
const BATCH_BYTES: usize = 256 * 1024;

/// A statement of a batch that failed: its position in the list, and the server's error.
#[derive(Debug)]
pub struct BatchError {
    pub index: usize,
    pub error: mysql_async::Error,
}

/// Runs `statements` (each one read-only statement, no `;`) and returns each one's rows, in
/// order. Several share a round trip; see the module's notes for errors.
pub async fn read_all(
    conn: &mut Conn,
    statements: &[Vec<u8>],
) -> Result<Vec<Vec<Row>>, BatchError> {
    let mut out = Vec::with_capacity(statements.len());
    let mut start = 0;
    while start < statements.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < statements.len()
            && end - start < BATCH_STATEMENTS
            && (end == start || bytes + statements[end].len() < BATCH_BYTES)
        {
            bytes += statements[end].len() + 1;
            end += 1;
        }
        let group = &statements[start..end];
        match run_group(conn, group).await {
            Ok(rows) => out.extend(rows),
            Err(_) => {
                // Again one by one: the error is then the failing statement's.
                for (i, sql) in group.iter().enumerate() {
                    let rows: Vec<Row> =
                        conn.query(sql.as_slice())
                            .await
                            .map_err(|error| BatchError {
                                index: start + i,
                                error,
                            })?;
                    out.push(rows);
                }
            }
        }
        start = end;
    }
    Ok(out)
}

async fn run_group(
    conn: &mut Conn,
    group: &[Vec<u8>],
) -> Result<Vec<Vec<Row>>, mysql_async::Error> {
    if let [one] = group {
        return Ok(vec![conn.query(one.as_slice()).await?]);
    }
    let mut sql = Vec::with_capacity(group.iter().map(|s| s.len() + 1).sum());
    for (i, statement) in group.iter().enumerate() {
        if i > 0 {
            sql.push(b';');
        }
        sql.extend_from_slice(statement);
    }
    let mut result = conn.query_iter(sql).await?;
    let mut sets = Vec::with_capacity(group.len());
    while sets.len() < group.len() {
        let rows: Vec<Row> = result.collect().await?;
        sets.push(rows);
        if result.is_empty() {
            break;
        }
    }
    // Whatever is left unread (nothing, for read-only statements) is dropped with the result.
    result.drop_result().await?;
    if sets.len() != group.len() {
        return Err(mysql_async::Error::Other(
            format!(
                "{} statements sent, {} result sets came back",
                group.len(),
                sets.len()
            )
            .into(),
        ));
    }
    Ok(sets)
}
