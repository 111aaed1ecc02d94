//! How rows are written: batches of parameters for one prepared INSERT run with MariaDB's
//! `COM_STMT_BULK_EXECUTE`; the `LOAD DATA` statement and its byte stream; or, when the
//! destination refuses `LOCAL INFILE`, multi-row INSERTs. All three write every column from the
//! same values the source read (see `ColumnKind`), so all three arrive byte for byte.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use mysql_async::Value;

use super::shape::{ColumnKind, TableShape};
use super::sql::{SqlBuf, qualified, quote_ident};

/// The `LOAD DATA` statement for a table: binary character set (bytes stored as sent), explicit
/// field/line terminators and escape, every column by name (invisible ones too). No user
/// variables and no SET clause: every kind loads directly (see `ColumnKind::Bit`).
/// With `replace`, a row whose key exists replaces it (an incremental chunk's upsert; MariaDB
/// deletes and inserts, which is why destination triggers are set aside during such a load).
pub fn load_data_sql(shape: &TableShape, replace: bool) -> String {
    let targets: Vec<String> = shape
        .columns
        .iter()
        .map(|c| quote_ident(&c.dest_name))
        .collect();
    format!(
        "LOAD DATA LOCAL INFILE 'tidemark-chunk' {}INTO TABLE {} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        if replace { "REPLACE " } else { "" },
        qualified(&shape.spec.dest_db, &shape.spec.dest_table),
        targets.join(", ")
    )
}

/// What the chunk's reader feeds the rows it streams into: rows in, pieces for the writer out.
pub trait RowEncoder {
    /// What the writer takes: a buffer of LOAD DATA lines, a batch of parameter rows.
    type Out: Send + 'static;
    /// Takes one row; returns the bytes it adds.
    fn push(&mut self, values: Vec<Option<Value>>) -> usize;
    /// A full piece, if there is one (call until `None`).
    fn full(&mut self) -> Option<Self::Out>;
    /// Whatever is left.
    fn rest(&mut self) -> Option<Self::Out>;
}

/// The prepared statement a bulk load runs, one `?` per written column (`REPLACE` with
/// `replace`: an incremental chunk's upsert).
pub fn insert_params_sql(shape: &TableShape, replace: bool) -> String {
    let params = vec!["?"; shape.columns.len()].join(", ");
    format!("{}({params})", insert_head(shape, replace))
}

/// `INSERT INTO t (..) VALUES ` (or `REPLACE`), every written column by name.
fn insert_head(shape: &TableShape, replace: bool) -> String {
    let columns: Vec<String> = shape
        .columns
        .iter()
        .map(|c| quote_ident(&c.dest_name))
        .collect();
    format!(
        "{} INTO {} ({}) VALUES ",
        if replace { "REPLACE" } else { "INSERT" },
        qualified(&shape.spec.dest_db, &shape.spec.dest_table),
        columns.join(", ")
    )
}

/// Rows of parameters for one `COM_STMT_BULK_EXECUTE` each.
#[derive(Debug, Default)]
pub struct BulkBatch {
    pub rows: Vec<Vec<Value>>,
    /// Parameter bytes, as the packet carries them.
    pub bytes: usize,
}

/// Groups rows into [`BulkBatch`]es of about `max_bytes` of parameters: a batch closes once it
/// holds `max_bytes`, and a row of `max_bytes` or more is a batch of its own, so only a single
/// row ever makes a batch bigger than `2 * max_bytes` (the caller keeps that well below the
/// destination's `max_allowed_packet`: a bulk packet the driver had to split would report only
/// its last part's rows).
pub struct BulkEncoder {
    batch: BulkBatch,
    ready: VecDeque<BulkBatch>,
    max_bytes: usize,
}

impl BulkEncoder {
    pub fn new(max_bytes: usize) -> BulkEncoder {
        BulkEncoder {
            batch: BulkBatch::default(),
            ready: VecDeque::new(),
            max_bytes,
        }
    }

    fn close_batch(&mut self) {
        if !self.batch.rows.is_empty() {
            self.ready.push_back(std::mem::take(&mut self.batch));
        }
    }
}

impl RowEncoder for BulkEncoder {
    type Out = BulkBatch;

    fn push(&mut self, values: Vec<Option<Value>>) -> usize {
        let row: Vec<Value> = values
            .into_iter()
            .map(|v| v.unwrap_or(Value::NULL))
            .collect();
        // A NULL is its indicator byte; a value its indicator, length prefix and bytes.
        let bytes: usize = row.iter().map(|v| 1 + v.bin_len() as usize).sum();
        if bytes >= self.max_bytes {
            self.close_batch();
            self.ready.push_back(BulkBatch {
                rows: vec![row],
                bytes,
            });
        } else {
            self.batch.rows.push(row);
            self.batch.bytes += bytes;
            if self.batch.bytes >= self.max_bytes {
                self.close_batch();
            }
        }
        bytes
    }

    fn full(&mut self) -> Option<BulkBatch> {
        self.ready.pop_front()
    }

    fn rest(&mut self) -> Option<BulkBatch> {
        self.close_batch();
        self.ready.pop_front()
    }
}

/// Encodes rows as LOAD DATA lines into buffers of about `flush_at` bytes.
pub struct LoadEncoder {
    buf: BytesMut,
    flush_at: usize,
}

impl LoadEncoder {
    pub fn new(flush_at: usize) -> LoadEncoder {
        LoadEncoder {
            buf: BytesMut::with_capacity(flush_at + flush_at / 4),
            flush_at,
        }
    }

    /// Appends one row; returns the bytes it took.
    pub fn push_row(&mut self, values: &[Option<Value>]) -> usize {
        let before = self.buf.len();
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.buf.put_u8(b'\t');
            }
            match value {
                None | Some(Value::NULL) => self.buf.put_slice(b"\\N"),
                Some(Value::Bytes(bytes)) => escape_field(&mut self.buf, bytes),
                // The text protocol only sends bytes or NULL; anything else is rendered the way
                // the server would print it.
                Some(other) => escape_field(&mut self.buf, other.as_sql(true).as_bytes()),
            }
        }
        self.buf.put_u8(b'\n');
        self.buf.len() - before
    }

    /// A full buffer, if there is one.
    pub fn take_full(&mut self) -> Option<Bytes> {
        (self.buf.len() >= self.flush_at).then(|| self.buf.split().freeze())
    }

    /// Whatever is left.
    pub fn take_rest(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }
}

impl RowEncoder for LoadEncoder {
    type Out = Bytes;

    fn push(&mut self, values: Vec<Option<Value>>) -> usize {
        self.push_row(&values)
    }

    fn full(&mut self) -> Option<Bytes> {
        self.take_full()
    }

    fn rest(&mut self) -> Option<Bytes> {
        self.take_rest()
    }
}

/// LOAD DATA's escaping (ESCAPED BY '\\'): the escape, the terminators and NUL are escaped; a
/// field that is exactly `\N` is NULL, so a real backslash is always doubled and a value can never
/// be mistaken for NULL.
fn escape_field(out: &mut BytesMut, bytes: &[u8]) {
    // Most values hold nothing to escape. One pass without an early exit (which the compiler
    // vectorizes) over a superset of the bytes to escape (every byte up to '\r', and '\\')
    // finds out, and such a value is copied as it is.
    let maybe_escaped = bytes
        .iter()
        .fold(false, |found, &b| found | (b <= b'\r') | (b == b'\\'));
    if !maybe_escaped {
        out.put_slice(bytes);
        return;
    }
    out.reserve(bytes.len() + 8);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0 => b"\\0",
            _ => continue,
        };
        out.put_slice(&bytes[start..i]);
        out.put_slice(escaped);
        start = i + 1;
    }
    out.put_slice(&bytes[start..]);
}

/// Builds `INSERT INTO t (..) VALUES (..), (..)` statements of about `max_bytes`.
pub struct InsertEncoder<'a> {
    shape: &'a TableShape,
    head: String,
    sql: SqlBuf,
    rows: u64,
    max_bytes: usize,
}

impl<'a> InsertEncoder<'a> {
    /// With `replace`, `REPLACE INTO` (an incremental chunk's upsert) instead of `INSERT INTO`.
    pub fn new(shape: &'a TableShape, max_bytes: usize, replace: bool) -> InsertEncoder<'a> {
        InsertEncoder {
            shape,
            head: insert_head(shape, replace),
            sql: SqlBuf::new(),
            rows: 0,
            max_bytes,
        }
    }

    /// Appends one row; returns the bytes it took.
    pub fn push_row(&mut self, values: &[Option<Value>]) -> usize {
        let before = self.sql.len();
        if self.rows == 0 {
            self.sql.push(&self.head);
        } else {
            self.sql.push(", ");
        }
        self.sql.push("(");
        for (i, (value, column)) in values.iter().zip(&self.shape.columns).enumerate() {
            if i > 0 {
                self.sql.push(", ");
            }
            let bytes = match value {
                None | Some(Value::NULL) => {
                    self.sql.push("NULL");
                    continue;
                }
                Some(Value::Bytes(bytes)) => std::borrow::Cow::Borrowed(bytes.as_slice()),
                Some(other) => std::borrow::Cow::Owned(other.as_sql(true).into_bytes()),
            };
            // Every value goes through the one escaping function, in the column's own character
            // set (or binary), so no conversion happens on the way in.
            // Dates and times are text the server parses, in the connection's character set.
            let charset = match &column.kind {
                ColumnKind::Text { charset } => Some(charset.as_str()),
                ColumnKind::Temporal => None,
                _ => Some("binary"),
            };
            self.sql.literal(charset, &bytes);
        }
        self.sql.push(")");
        self.rows += 1;
        self.sql.len() - before
    }

    /// The statement and its row count, once it is big enough.
    pub fn take_full(&mut self) -> Option<(Vec<u8>, u64)> {
        (self.sql.len() >= self.max_bytes).then(|| self.take())
    }

    /// Whatever is left.
    pub fn take_rest(&mut self) -> Option<(Vec<u8>, u64)> {
        (self.rows > 0).then(|| self.take())
    }

    fn take(&mut self) -> (Vec<u8>, u64) {
        let rows = std::mem::take(&mut self.rows);
        (std::mem::take(&mut self.sql).into_bytes(), rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::shape::{Column, TableCopySpec};

    fn shape() -> TableShape {
        let col = |name: &str, kind| Column {
            source_name: name.into(),
            dest_name: format!("{name}_d"),
            data_type: "x".into(),
            kind,
            nullable: true,
        };
        TableShape {
            spec: TableCopySpec {
                source_db: "s".into(),
                source_table: "t".into(),
                dest_db: "d".into(),
                dest_table: "t`2".into(),
                columns: None,
            },
            columns: vec![
                col("a", ColumnKind::Integer),
                col("b", ColumnKind::Bit),
                col(
                    "c",
                    ColumnKind::Text {
                        charset: "utf8mb4".into(),
                    },
                ),
            ],
            key: None,
            key_warning: None,
            auto_increment: false,
        }
    }

    #[test]
    fn load_data_names_every_column_and_uses_no_set_clause() {
        assert_eq!(
            load_data_sql(&shape(), false),
            "LOAD DATA LOCAL INFILE 'tidemark-chunk' INTO TABLE `d`.`t``2` CHARACTER SET binary \
             FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
             (`a_d`, `b_d`, `c_d`)"
        );
    }

    #[test]
    fn load_fields_tell_null_from_every_lookalike() {
        let mut enc = LoadEncoder::new(1 << 20);
        let b = |s: &[u8]| Some(Value::Bytes(s.to_vec()));
        enc.push_row(&[None, b(b""), b(b"NULL")]);
        enc.push_row(&[b(b"\\N"), b(b"a\tb\nc\\d\0e\rf"), b(b"\xff")]);
        assert_eq!(
            enc.take_rest().unwrap().as_ref(),
            b"\\N\t\tNULL\n\\\\N\ta\\tb\\nc\\\\d\\0e\\rf\t\xff\n"
        );
        assert!(enc.take_rest().is_none());
    }

    #[test]
    fn the_fast_path_escapes_every_byte_as_the_byte_loop_does() {
        // The reference: every byte looked at on its own.
        fn reference(bytes: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            for &b in bytes {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    0 => out.extend_from_slice(b"\\0"),
                    _ => out.push(b),
                }
            }
            out
        }
        let mut values: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        values.extend(
            (0..=255u8).map(|b| [b"a plain value, ".as_slice(), &[b; 3], b" then more"].concat()),
        );
        values.push((0..=255u8).collect());
        values.push(Vec::new());
        for value in values {
            let mut out = BytesMut::new();
            escape_field(&mut out, &value);
            assert_eq!(out.as_ref(), reference(&value).as_slice(), "{value:?}");
        }
    }

    #[test]
    fn bulk_batches_close_at_their_size_and_a_big_row_goes_alone() {
        let mut enc = BulkEncoder::new(100);
        let row = |n: usize| vec![Some(Value::Bytes(vec![b'x'; n])), None];
        let sizes = |batch: &BulkBatch| batch.rows.iter().map(Vec::len).collect::<Vec<_>>();
        // 40 bytes and a length byte, an indicator each, and NULL's indicator: 43.
        assert_eq!(enc.push(row(40)), 43);
        assert!(enc.full().is_none());
        enc.push(row(40));
        assert!(enc.full().is_none(), "86 bytes: still open");
        enc.push(row(40));
        let first = enc.full().expect("129 bytes: closed");
        assert_eq!((first.rows.len(), first.bytes), (3, 129));
        assert_eq!(first.rows[1][1], Value::NULL);
        // A small row pending, then a big one: the small one's batch closes first.
        enc.push(row(10));
        enc.push(row(500));
        let small = enc.full().expect("the pending row");
        assert_eq!((small.rows.len(), small.bytes), (1, 13));
        let big = enc.full().expect("the big row");
        assert_eq!((sizes(&big), big.bytes), (vec![2], 505));
        assert!(enc.full().is_none());
        enc.push(row(1));
        assert_eq!(enc.rest().map(|b| b.rows.len()), Some(1));
        assert!(enc.rest().is_none());
    }

    #[test]
    fn inserts_escape_through_the_one_function_and_split_by_size() {
        let shape = shape();
        let mut enc = InsertEncoder::new(&shape, 10, false);
        let b = |s: &[u8]| Some(Value::Bytes(s.to_vec()));
        enc.push_row(&[b(b"1"), b(b"5"), b(b"it's")]);
        let (sql, rows) = enc.take_full().unwrap();
        assert_eq!(rows, 1);
        assert_eq!(
            String::from_utf8(sql).unwrap(),
            "INSERT INTO `d`.`t``2` (`a_d`, `b_d`, `c_d`) VALUES \
             (_binary'1', _binary'5', _utf8mb4'it\\'s')"
        );
        enc.push_row(&[None, None, None]);
        let (sql, rows) = enc.take_rest().unwrap();
        assert_eq!(rows, 1);
        assert!(sql.ends_with(b"VALUES (NULL, NULL, NULL)"));
    }
}
