//! The plain types that several copy modules share, kept apart from the behaviour so that no
//! two modules of `copy` import each other: this module imports no sibling (the module graph of
//! `copy/` is checked to be acyclic by `tests/module_dag.rs`). Each is re-exported where it was
//! defined before (`chunk`, `verify`) and from `copy`.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

/// How rows are written to the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMethod {
    /// MariaDB's `COM_STMT_BULK_EXECUTE` of one prepared INSERT.
    Bulk,
    LoadData,
    Insert,
}

/// Rows and bytes sent so far, reported while a chunk runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkProgress {
    pub rows: u64,
    pub bytes: u64,
}

/// How a server computes the row digest; both forms give the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestSql {
    /// `CRC32(CRC32(CRC32(prefix), bytes1), bytes2)`: MariaDB 10.8+ (CRC32 with a running value).
    Chained,
    /// `CRC32(CONCAT(prefix, CAST(bytes1 AS BINARY), ..))`: every MySQL and MariaDB.
    Concat,
}

impl DigestSql {
    /// Asks the server whether it has the two-argument CRC32 (and that it chains as zlib does).
    pub async fn probe(conn: &mut Conn) -> DigestSql {
        let chained: Result<Option<u8>, _> = conn
            .query_first("SELECT CRC32(CRC32('tide'), 'mark') = CRC32('tidemark')")
            .await;
        match chained {
            Ok(Some(1)) => DigestSql::Chained,
            _ => DigestSql::Concat,
        }
    }
}
