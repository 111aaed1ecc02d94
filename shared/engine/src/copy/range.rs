//! Key values and key ranges: exact (the server's own bytes, never a float), serializable (they
//! travel in queue messages and state records), and turned into SQL predicates that use the
//! key's index on either side.

use serde::{Deserialize, Serialize};

use super::shape::{Column, ColumnKind};
use super::sql::SqlBuf;

/// One key column's value, as the server's text protocol sent it (with
/// `character_set_results = NULL`: the column's own bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "KeyValueRepr", into = "KeyValueRepr")]
pub struct KeyValue(pub Vec<u8>);

/// UTF-8 values serialize as a JSON string (readable in a queue message); anything else, e.g. a
/// latin1 or binary key, as `{"hex": "..."}`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum KeyValueRepr {
    Text(String),
    Hex { hex: String },
}

impl From<KeyValue> for KeyValueRepr {
    fn from(v: KeyValue) -> Self {
        match String::from_utf8(v.0) {
            Ok(s) => KeyValueRepr::Text(s),
            Err(e) => KeyValueRepr::Hex {
                hex: e.as_bytes().iter().map(|b| format!("{b:02x}")).collect(),
            },
        }
    }
}

impl From<KeyValueRepr> for KeyValue {
    fn from(r: KeyValueRepr) -> Self {
        match r {
            KeyValueRepr::Text(s) => KeyValue(s.into_bytes()),
            // A malformed hex digit pair decodes to nothing rather than panicking; the range it
            // produces then matches no stored key and verification reports the chunk.
            KeyValueRepr::Hex { hex } => KeyValue(
                hex.as_bytes()
                    .chunks(2)
                    .filter_map(|pair| {
                        std::str::from_utf8(pair)
                            .ok()
                            .and_then(|p| u8::from_str_radix(p, 16).ok())
                    })
                    .collect(),
            ),
        }
    }
}

/// A full key (one value per key column), in key order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyBound(pub Vec<KeyValue>);

impl KeyBound {
    /// For messages: values as text, long ones cut.
    pub fn display(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|v| {
                let text = String::from_utf8_lossy(&v.0);
                let mut short: String = text.chars().take(40).collect();
                if text.chars().count() > 40 {
                    short.push('…');
                }
                format!("{short:?}")
            })
            .collect();
        format!("({})", parts.join(", "))
    }
}

/// `(lower, upper]` over the key; an open end is `None`. Both `None`: the whole table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub lower: Option<KeyBound>,
    pub upper: Option<KeyBound>,
}

impl KeyRange {
    pub fn display(&self) -> String {
        let lower = self.lower.as_ref().map(KeyBound::display);
        let upper = self.upper.as_ref().map(KeyBound::display);
        match (lower, upper) {
            (None, None) => "the whole table".to_owned(),
            (Some(l), None) => format!("key > {l}"),
            (None, Some(u)) => format!("key <= {u}"),
            (Some(l), Some(u)) => format!("key in ({l}, {u}]"),
        }
    }

    /// Appends ` WHERE ...` for this range (nothing for the whole table). `names` are the key
    /// columns' names on the side the statement runs on; `key` are their shapes.
    pub fn push_where(&self, sql: &mut SqlBuf, key: &[&Column], names: &[&str]) {
        let mut first = true;
        for (bound, op) in [(&self.lower, Bound::Above), (&self.upper, Bound::AtMost)] {
            if let Some(bound) = bound {
                sql.push(if first { " WHERE " } else { " AND " });
                first = false;
                push_bound(sql, key, names, bound, op);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Bound {
    /// key > bound
    Above,
    /// key <= bound
    AtMost,
}

/// Keyset comparison written out as `k1 > v1 OR (k1 = v1 AND k2 > v2) ...`: MariaDB's range
/// optimizer uses the index for this form, not always for a row constructor `(k1, k2) > (..)`.
fn push_bound(sql: &mut SqlBuf, key: &[&Column], names: &[&str], bound: &KeyBound, op: Bound) {
    let n = key.len().min(names.len()).min(bound.0.len());
    sql.push("(");
    for i in 0..n {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(");
        for j in 0..i {
            sql.ident(names[j]).push(" = ");
            push_key_literal(sql, key[j], &bound.0[j]);
            sql.push(" AND ");
        }
        let last = i + 1 == n;
        let cmp = match (op, last) {
            (Bound::Above, _) => " > ",
            (Bound::AtMost, false) => " < ",
            (Bound::AtMost, true) => " <= ",
        };
        sql.ident(names[i]).push(cmp);
        push_key_literal(sql, key[i], &bound.0[i]);
        sql.push(")");
    }
    sql.push(")");
}

/// A key value as a literal that compares the way the column orders: numbers bare (a quoted
/// BIGINT would be compared as a double), strings in the column's own character set (so its
/// collation applies), bytes as `_binary`.
pub fn push_key_literal(sql: &mut SqlBuf, column: &Column, value: &KeyValue) {
    let numeric = matches!(
        column.kind,
        ColumnKind::Integer | ColumnKind::Decimal | ColumnKind::Double
    );
    let plain_number = !value.0.is_empty()
        && value
            .0
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if numeric && plain_number {
        sql.0.extend_from_slice(&value.0);
        return;
    }
    let charset = match &column.kind {
        ColumnKind::Text { charset } => Some(charset.as_str()),
        ColumnKind::Temporal => None,
        _ => Some("binary"),
    };
    sql.literal(charset, &value.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: ColumnKind) -> Column {
        Column {
            source_name: name.into(),
            dest_name: name.into(),
            data_type: "x".into(),
            kind,
            nullable: false,
        }
    }

    fn kb(values: &[&[u8]]) -> KeyBound {
        KeyBound(values.iter().map(|v| KeyValue(v.to_vec())).collect())
    }

    #[test]
    fn composite_ranges_are_keyset_predicates() {
        let a = col("a", ColumnKind::Integer);
        let b = col(
            "b`x",
            ColumnKind::Text {
                charset: "latin1".into(),
            },
        );
        let range = KeyRange {
            lower: Some(kb(&[b"1", b"x'y"])),
            upper: Some(kb(&[b"9", b"\xe9"])),
        };
        let mut sql = SqlBuf::new();
        range.push_where(&mut sql, &[&a, &b], &["a", "b`x"]);
        let mut want = b" WHERE ((`a` > 1) OR (`a` = 1 AND `b``x` > _latin1'x\\'y')) AND ((`a` < 9) OR (`a` = 9 AND `b``x` <= _latin1'".to_vec();
        want.extend_from_slice(b"\xe9'))");
        assert_eq!(
            String::from_utf8_lossy(&sql.0),
            String::from_utf8_lossy(&want)
        );
        assert_eq!(sql.into_bytes(), want);
    }

    #[test]
    fn a_non_numeric_value_in_a_numeric_column_is_still_escaped() {
        let a = col("a", ColumnKind::Integer);
        let mut sql = SqlBuf::new();
        push_key_literal(&mut sql, &a, &KeyValue(b"1 OR 1=1".to_vec()));
        assert_eq!(sql.into_bytes(), b"_binary'1 OR 1=1'".to_vec());
    }

    #[test]
    fn key_values_round_trip_through_json_exactly() {
        let bound = kb(&[b"42", b"caf\xc3\xa9", b"\xe9\x00\xff"]);
        let json = serde_json::to_string(&bound).unwrap();
        assert_eq!(json, r#"["42","café",{"hex":"e900ff"}]"#);
        let back: KeyBound = serde_json::from_str(&json).unwrap();
        assert_eq!(back, bound);
        assert_eq!(
            KeyRange {
                lower: None,
                upper: None
            }
            .display(),
            "the whole table"
        );
    }
}
