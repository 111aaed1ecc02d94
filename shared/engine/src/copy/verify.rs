//! Per-chunk verification: the row count and a checksum of a key range.
//!
//! ## The row digest
//! A row is the CRC32 of one byte string built from the values the source reads (see
//! [`super::shape::Column::read_expr`]), split in two kinds of column:
//! - *number-like* columns (integers, DECIMAL, FLOAT read as `CAST(.. AS DOUBLE)` whose text is
//!   exact, DOUBLE, BIT as its number, dates and times): their text is never empty and never holds
//!   a `#`;
//! - *byte* columns (text in its own character set, binary, geometry, UUID/INET6 as bytes): any
//!   bytes at all.
//!
//! The string is `F#...#L#...#N#...#` followed by the byte columns' bytes, where the `F`s are
//! `ISNULL(c)` of the nullable number-like columns, the `L`s the byte columns' lengths (`-1` for
//! NULL, whose bytes are then empty), and the `N`s the number-like columns' texts (a NULL one is
//! left out). The string decodes back to the row — the flags say which numbers are there, the
//! lengths cut the bytes — so NULL, '' and 'NULL' differ, and no byte can move between columns.
//!
//! The chunk's checksum is the row count and the exact sum of its rows' CRCs: order-free, and a
//! removed, added or changed row moves it (a changed value goes unnoticed with odds of 2^-32).
//!
//! ## Both sides
//! The source side is computed by the client from the very bytes it streamed to the destination
//! ([`RowDigest`]), which it read inside the chunk's consistent snapshot: no second scan of the
//! source, and writes on the source during the copy never cause a false mismatch. The destination
//! side is one server-side query after the load ([`checksum_sql`]), built from the same read
//! expressions so that the server hashes the same byte string: on MariaDB 10.8+ as chained
//! `CRC32(crc, bytes)` calls over the raw column values (no concatenation of the long values, no
//! charset conversion), elsewhere as `CRC32(CONCAT(..))` over the same bytes. It runs in the
//! chunk's transaction before the commit, or — for a chunk copied with `defer_check`, into a
//! table nobody reads before the run ends — later, over the committed range
//! ([`check_committed`], which the service runs beside the index builds).
//! [`verify_chunk`] (a re-check of committed chunks) runs the query on both sides.

use std::borrow::Cow;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use serde::{Deserialize, Serialize};

use super::plan::Chunk;
use super::range::KeyRange;
use super::session::CopyEndpoints;
use super::shape::{Column, ColumnKind, TableShape};
use super::sql::{SqlBuf, qualified, quote_ident};
pub use super::types::DigestSql;
use crate::error::{CopyError, Side};

/// A chunk's row count and checksum on one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    pub rows: u64,
    /// The exact decimal sum of the rows' CRC32s.
    pub sum: String,
}

/// How a server adds up the rows' CRCs; exact either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SumSql {
    /// `SUM(crc)`: a DECIMAL, exact for any row count, but MariaDB adds DECIMALs row by row,
    /// which costs about as much as computing the CRCs.
    Decimal,
    /// `SUM(CAST(crc AS DOUBLE))`, printed as an integer: a native add, exact while the sum stays below 2^53, that is
    /// for fewer than 2^21 rows of at most 2^32 each (a chunk holds far fewer; a range holding
    /// more rows than that already differs by its row count).
    Double,
}

impl SumSql {
    /// The cheaper sum that is exact for a range expected to hold `rows` rows.
    pub fn for_rows(rows: u64) -> SumSql {
        if rows < 1 << 21 {
            SumSql::Double
        } else {
            SumSql::Decimal
        }
    }
}

/// Whether a column enters the digest as bytes (with its length) or as number-like text.
fn is_bytes(column: &Column) -> bool {
    matches!(
        column.kind,
        ColumnKind::Text { .. } | ColumnKind::Binary | ColumnKind::Geometry | ColumnKind::Other
    )
}

/// The digest's byte string in SQL, with the names of `side` (see the module's documentation).
fn row_digest_sql(shape: &TableShape, side: Side, form: DigestSql) -> String {
    let name = |c: &Column| match side {
        Side::Source => c.source_name.clone(),
        Side::Destination => c.dest_name.clone(),
    };
    let mut prefix: Vec<String> = Vec::new();
    for c in shape.columns.iter().filter(|c| !is_bytes(c) && c.nullable) {
        prefix.push(format!("ISNULL({})", quote_ident(&name(c))));
    }
    for c in shape.columns.iter().filter(|c| is_bytes(c)) {
        let length = format!("LENGTH({})", c.digest_expr(&name(c)));
        prefix.push(if c.nullable {
            format!("IFNULL({length}, -1)")
        } else {
            length
        });
    }
    for c in shape.columns.iter().filter(|c| !is_bytes(c)) {
        prefix.push(c.digest_expr(&name(c)));
    }
    // A trailing '' puts the last separator in: `a#b#`.
    prefix.push("''".to_owned());
    let prefix = format!("CONCAT_WS('#', {})", prefix.join(", "));
    let bytes: Vec<String> = shape
        .columns
        .iter()
        .filter(|c| is_bytes(c))
        .map(|c| {
            let value = c.digest_expr(&name(c));
            if c.nullable {
                format!("IFNULL({value}, '')")
            } else {
                value
            }
        })
        .collect();
    match form {
        DigestSql::Chained => bytes.iter().fold(format!("CRC32({prefix})"), |crc, b| {
            format!("CRC32({crc}, {b})")
        }),
        DigestSql::Concat if bytes.is_empty() => format!("CRC32({prefix})"),
        DigestSql::Concat => {
            // Text as binary, so that no value is converted between character sets on its way
            // in (the other byte kinds are binary already).
            let bytes: Vec<String> = shape
                .columns
                .iter()
                .filter(|c| is_bytes(c))
                .zip(bytes)
                .map(|(c, b)| match c.kind {
                    ColumnKind::Text { .. } => format!("CAST({b} AS BINARY)"),
                    _ => b,
                })
                .collect();
            format!("CRC32(CONCAT({prefix}, {}))", bytes.join(", "))
        }
    }
}

/// The checksum query of a key range, with the names of `side`.
pub fn checksum_sql(
    shape: &TableShape,
    range: &KeyRange,
    side: Side,
    form: DigestSql,
    sum: SumSql,
) -> Vec<u8> {
    let table = match side {
        Side::Source => qualified(&shape.spec.source_db, &shape.spec.source_table),
        Side::Destination => qualified(&shape.spec.dest_db, &shape.spec.dest_table),
    };
    let mut sql = SqlBuf::new();
    let crc = row_digest_sql(shape, side, form);
    // A DOUBLE prints with 15 significant digits: the exact integer sum is cast back before it
    // is printed.
    let total = match sum {
        SumSql::Decimal => format!("SUM({crc})"),
        SumSql::Double => format!("CAST(SUM(CAST({crc} AS DOUBLE)) AS UNSIGNED)"),
    };
    sql.push(&format!(
        "SELECT COUNT(*), COALESCE({total}, 0) FROM {table}"
    ));
    let key = shape.key_columns();
    let names: Vec<String> = key
        .iter()
        .map(|c| match side {
            Side::Source => c.source_name.clone(),
            Side::Destination => c.dest_name.clone(),
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    range.push_where(&mut sql, &key, &names);
    sql.into_bytes()
}

/// Computes the checksum of `chunk` on one side, in whatever transaction `conn` is in, with the
/// form every server understands.
pub async fn checksum(
    conn: &mut Conn,
    shape: &TableShape,
    chunk: &Chunk,
    side: Side,
) -> Result<Checksum, CopyError> {
    checksum_with(conn, shape, chunk, side, DigestSql::Concat, SumSql::Decimal).await
}

/// [`checksum`] with a chosen form (see [`DigestSql::probe`]) and sum (see [`SumSql::for_rows`]).
pub async fn checksum_with(
    conn: &mut Conn,
    shape: &TableShape,
    chunk: &Chunk,
    side: Side,
    form: DigestSql,
    sum: SumSql,
) -> Result<Checksum, CopyError> {
    let row: Option<(u64, String)> = conn
        .query_first(checksum_sql(shape, &chunk.range, side, form, sum))
        .await
        .map_err(|e| CopyError::sql(side, &chunk.display(), "computing the checksum", e))?;
    let (rows, text) = row.unwrap_or((0, "0".to_owned()));
    Ok(Checksum {
        rows,
        sum: canonical_sum(&text),
    })
}

/// A server's sum as a plain integer (a DECIMAL or an UNSIGNED prints as one); anything else is
/// kept as it came, and then cannot equal the client's integer.
fn canonical_sum(text: &str) -> String {
    match text.parse::<u128>() {
        Ok(n) => n.to_string(),
        Err(_) => text.to_owned(),
    }
}

/// A value as the digest sees it: its bytes, or `None` for NULL. The text protocol only sends
/// bytes or NULL; anything else is rendered as the server prints it (and would show up as a
/// mismatch if that differed).
fn raw(value: &Option<Value>) -> Option<Cow<'_, [u8]>> {
    match value {
        None | Some(Value::NULL) => None,
        Some(Value::Bytes(b)) => Some(Cow::Borrowed(b.as_slice())),
        Some(other) => Some(Cow::Owned(other.as_sql(true).into_bytes())),
    }
}

/// How the client digests one column of a row read with the read expressions.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// Number-like text as read; `nullable` columns also have a flag.
    Number { nullable: bool },
    /// BIT: read as big-endian bytes, digested as its number (`c + 0`).
    Bit { nullable: bool },
    /// Bytes, with their length.
    Bytes,
}

/// The source side's checksum, computed by the client from the rows it streams (in the order of
/// `shape.columns`, read with their read expressions): the same value as [`checksum_sql`] gives
/// on a server holding the same rows.
pub struct RowDigest {
    parts: Vec<Part>,
    prefix: Vec<u8>,
    rows: u64,
    sum: u128,
}

impl RowDigest {
    pub fn new(shape: &TableShape) -> RowDigest {
        let parts = shape
            .columns
            .iter()
            .map(|c| {
                if is_bytes(c) {
                    Part::Bytes
                } else if c.kind == ColumnKind::Bit {
                    Part::Bit {
                        nullable: c.nullable,
                    }
                } else {
                    Part::Number {
                        nullable: c.nullable,
                    }
                }
            })
            .collect();
        RowDigest {
            parts,
            prefix: Vec::with_capacity(256),
            rows: 0,
            sum: 0,
        }
    }

    /// Adds one row (values in the order of the shape's columns).
    pub fn push_row(&mut self, values: &[Option<Value>]) {
        let prefix = &mut self.prefix;
        prefix.clear();
        // Flags of the nullable number-like columns.
        for (part, value) in self.parts.iter().zip(values) {
            if let Part::Number { nullable: true } | Part::Bit { nullable: true } = part {
                prefix.push(if raw(value).is_some() { b'0' } else { b'1' });
                prefix.push(b'#');
            }
        }
        // Lengths of the byte columns.
        let mut itoa = itoa::Buffer::new();
        for (part, value) in self.parts.iter().zip(values) {
            if let Part::Bytes = part {
                match raw(value) {
                    Some(b) => prefix.extend_from_slice(itoa.format(b.len()).as_bytes()),
                    None => prefix.extend_from_slice(b"-1"),
                }
                prefix.push(b'#');
            }
        }
        // The number-like values that are there.
        for (part, value) in self.parts.iter().zip(values) {
            match (part, raw(value)) {
                (Part::Number { .. }, Some(text)) => {
                    prefix.extend_from_slice(&text);
                    prefix.push(b'#');
                }
                (Part::Bit { .. }, Some(bits)) => {
                    let n = bits.iter().fold(0u128, |n, &b| (n << 8) | u128::from(b));
                    prefix.extend_from_slice(itoa.format(n).as_bytes());
                    prefix.push(b'#');
                }
                _ => {}
            }
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(prefix);
        for (part, value) in self.parts.iter().zip(values) {
            if let (Part::Bytes, Some(b)) = (part, raw(value)) {
                crc.update(&b);
            }
        }
        self.rows += 1;
        self.sum += u128::from(crc.finalize());
    }

    /// The row count and checksum of the rows pushed so far.
    pub fn checksum(&self) -> Checksum {
        Checksum {
            rows: self.rows,
            sum: self.sum.to_string(),
        }
    }
}

/// Compares the two sides' checksums; a difference is a [`CopyError::VerifyMismatch`] that names
/// the table and the range.
pub fn compare(chunk: &Chunk, source: &Checksum, dest: &Checksum) -> Result<(), CopyError> {
    if source.rows == dest.rows && canonical_sum(&source.sum) == canonical_sum(&dest.sum) {
        Ok(())
    } else {
        Err(CopyError::VerifyMismatch {
            chunk: chunk.display(),
            source_rows: source.rows,
            dest_rows: dest.rows,
            source_checksum: source.sum.clone(),
            dest_checksum: dest.sum.clone(),
        })
    }
}

/// Compares a committed chunk's destination side with the source's side its copy recorded
/// (a chunk copied with `defer_check`), on `conn` (a destination session) with the server's
/// digest `form`. A mismatch is [`CopyError::VerifyMismatch`].
pub async fn check_committed(
    conn: &mut Conn,
    shape: &TableShape,
    chunk: &Chunk,
    form: DigestSql,
    source: &Checksum,
) -> Result<(), CopyError> {
    let dest = checksum_with(
        conn,
        shape,
        chunk,
        Side::Destination,
        form,
        SumSql::for_rows(source.rows),
    )
    .await?;
    compare(chunk, source, &dest)
}

/// Verifies a chunk that was copied earlier: the source in a fresh consistent snapshot, the
/// destination as committed, each with the server-side query. Meant for a re-check (or a
/// verify-only run) while nothing writes to the source range; during a copy,
/// [`super::chunk::copy_chunk`] digests the rows it read inside its snapshot.
pub async fn verify_chunk(
    endpoints: &CopyEndpoints,
    shape: &TableShape,
    chunk: &Chunk,
) -> Result<Checksum, CopyError> {
    let mut src = endpoints.source_conn().await?;
    let mut dst = endpoints.destination_conn().await?;
    let what = chunk.display();
    src.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(|e| CopyError::source_sql(&what, "starting a snapshot", e))?;
    let (s, d) = tokio::join!(
        checksum_with(
            &mut src,
            shape,
            chunk,
            Side::Source,
            endpoints.source_digest,
            SumSql::Decimal
        ),
        checksum_with(
            &mut dst,
            shape,
            chunk,
            Side::Destination,
            endpoints.destination_digest,
            SumSql::Decimal
        )
    );
    let _ = src.query_drop("COMMIT").await;
    let (s, d) = (s?, d?);
    compare(chunk, &s, &d)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::shape::TableCopySpec;

    fn shape(columns: Vec<Column>) -> TableShape {
        TableShape {
            spec: TableCopySpec::same_names("d", "t"),
            columns,
            key: Some(vec![0]),
            key_warning: None,
            auto_increment: false,
        }
    }

    fn col(name: &str, kind: ColumnKind, nullable: bool) -> Column {
        Column {
            source_name: name.into(),
            dest_name: name.into(),
            data_type: "x".into(),
            kind,
            nullable,
        }
    }

    fn text() -> ColumnKind {
        ColumnKind::Text {
            charset: "utf8mb4".into(),
        }
    }

    #[test]
    fn the_query_puts_flags_lengths_numbers_then_bytes() {
        let s = shape(vec![
            col("id", ColumnKind::Integer, false),
            col("s", text(), true),
            col("f", ColumnKind::Float, true),
            col("b", ColumnKind::Bit, false),
            col("g", ColumnKind::Geometry, false),
        ]);
        assert_eq!(
            row_digest_sql(&s, Side::Destination, DigestSql::Chained),
            "CRC32(CRC32(CRC32(CONCAT_WS('#', ISNULL(`f`), IFNULL(LENGTH(`s`), -1), \
             LENGTH(CAST(`g` AS BINARY)), `id`, CAST(`f` AS DOUBLE), `b` + 0, '')), \
             IFNULL(`s`, '')), CAST(`g` AS BINARY))"
        );
        assert_eq!(
            row_digest_sql(&s, Side::Destination, DigestSql::Concat),
            "CRC32(CONCAT(CONCAT_WS('#', ISNULL(`f`), IFNULL(LENGTH(`s`), -1), \
             LENGTH(CAST(`g` AS BINARY)), `id`, CAST(`f` AS DOUBLE), `b` + 0, ''), \
             CAST(IFNULL(`s`, '') AS BINARY), CAST(`g` AS BINARY)))"
        );
    }

    fn digest(shape: &TableShape, rows: &[Vec<Option<&[u8]>>]) -> Checksum {
        let mut d = RowDigest::new(shape);
        for row in rows {
            let values: Vec<Option<Value>> = row
                .iter()
                .map(|v| v.map(|b| Value::Bytes(b.to_vec())))
                .collect();
            d.push_row(&values);
        }
        d.checksum()
    }

    #[test]
    fn the_client_hashes_the_string_the_query_builds() {
        let s = shape(vec![
            col("id", ColumnKind::Integer, false),
            col("s", text(), true),
            col("f", ColumnKind::Float, true),
            col("b", ColumnKind::Bit, false),
        ]);
        let one = digest(&s, &[vec![Some(b"7"), Some(b"a#b"), None, Some(&[1, 0])]]);
        // ISNULL(f) = 1, LENGTH(s) = 3, id, f left out, b + 0 = 256; then s's bytes.
        let expected = crc32fast::hash(b"1#3#7#256#a#b");
        assert_eq!(one.rows, 1);
        assert_eq!(one.sum, expected.to_string());
    }

    #[test]
    fn null_empty_and_the_string_null_differ_and_bytes_cannot_move() {
        let s = shape(vec![
            col("id", ColumnKind::Integer, false),
            col("a", text(), true),
            col("b", ColumnKind::Binary, true),
            col("n", ColumnKind::Decimal, true),
        ]);
        let rows: Vec<Vec<Option<&[u8]>>> = vec![
            vec![Some(b"1"), None, Some(b""), Some(b"1.5")],
            vec![Some(b"1"), Some(b""), Some(b""), Some(b"1.5")],
            vec![Some(b"1"), Some(b"NULL"), Some(b""), Some(b"1.5")],
            vec![Some(b"1"), Some(b"\\N"), Some(b""), Some(b"1.5")],
            vec![Some(b"1"), Some(b"ab"), Some(b"c"), Some(b"1.5")],
            vec![Some(b"1"), Some(b"a"), Some(b"bc"), Some(b"1.5")],
            vec![Some(b"1"), Some(b"a"), None, Some(b"1.5")],
            vec![Some(b"1"), None, Some(b"a"), Some(b"1.5")],
            vec![Some(b"1"), Some(b"a"), Some(b""), None],
        ];
        let sums: Vec<String> = rows
            .iter()
            .map(|r| digest(&s, std::slice::from_ref(r)).sum)
            .collect();
        for (i, a) in sums.iter().enumerate() {
            for (j, b) in sums.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "rows {i} and {j} digest alike");
            }
        }
    }

    #[test]
    fn sums_compare_as_numbers() {
        let chunk = Chunk {
            source_db: "d".into(),
            source_table: "t".into(),
            index: 0,
            range: KeyRange::default(),
            estimated_rows: 0,
            window: None,
        };
        let c = |rows, sum: &str| Checksum {
            rows,
            sum: sum.into(),
        };
        assert!(compare(&chunk, &c(0, "0"), &c(0, "0")).is_ok());
        assert!(compare(&chunk, &c(2, "12"), &c(2, "12")).is_ok());
        assert!(compare(&chunk, &c(2, "12"), &c(2, "13")).is_err());
        assert!(compare(&chunk, &c(2, "12"), &c(1, "12")).is_err());
        assert!(
            compare(
                &chunk,
                &c(2, "2147154457075119"),
                &c(2, "02147154457075119")
            )
            .is_ok()
        );
        // A rounded print never passes for the exact sum.
        assert!(
            compare(
                &chunk,
                &c(2, "2147154457075119"),
                &c(2, "2.14715445707512e15")
            )
            .is_err()
        );
    }
}
