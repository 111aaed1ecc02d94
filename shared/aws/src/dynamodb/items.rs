//! The table's items: keys (DESIGN: State), attributes, record encoding and page cursors.
//!
//! A record is JSON in one `body` attribute, beside the key, its `v`ersion and the counters
//! that are updated with `ADD` (a run's `chunks_done`, a table's progress):
//! those live in their own number attributes, and reads take them from there. A run's items
//! (the run, its steps and progress) and precheck reports carry their expiry in `expires_at`,
//! epoch seconds: the table's TTL attribute, which readers check too (TTL deletes lazily).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tidemark_core::ports::StoreError;
use tidemark_core::state::RunKey;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) const PK: &str = "pk";
pub(crate) const SK: &str = "sk";
pub(crate) const VERSION: &str = "v";
pub(crate) const BODY: &str = "body";
pub(crate) const CHUNKS_DONE: &str = "chunks_done";
/// When an item is gone, in epoch seconds: the table's TTL attribute (template.yaml).
pub(crate) const EXPIRES_AT: &str = "expires_at";
/// The table name of a progress item (`db.table`).
pub(crate) const TABLE: &str = "tbl";
/// Progress counters, added to with `ADD`.
pub(crate) const COUNTERS: [&str; 6] = [
    "rows",
    "bytes",
    "chunks_done",
    "elapsed_ms",
    "verified",
    "mismatched",
];

pub(crate) const TASK_SK: &str = "TASK";
/// The task directory: one key-only item per task (`TASKS` / `TASK#<id>`), so tasks list in id
/// order with a strongly consistent Query instead of a Scan of every item or a GSI.
pub(crate) const DIRECTORY_PK: &str = "TASKS";
pub(crate) const DIRECTORY_PREFIX: &str = "TASK#";

/// DynamoDB's item limit is 400 KB, attribute names and key included; keep a margin for them.
const MAX_BODY_BYTES: usize = 380 * 1024;

pub(crate) fn task_pk(id: &str) -> String {
    format!("TASK#{id}")
}

pub(crate) fn directory_sk(id: &str) -> String {
    format!("{DIRECTORY_PREFIX}{id}")
}

pub(crate) fn run_sk(key: &RunKey) -> String {
    format!("RUN#{}", key.time_key())
}

pub(crate) fn run_pk(key: &RunKey) -> String {
    format!("RUN#{}#{}", key.task_id, key.time_key())
}

/// The run partition of a `RUN#<time>` item in the partition of task `task_id`.
pub(crate) fn run_pk_of(task_id: &str, run_sk: &str) -> Option<String> {
    run_sk
        .strip_prefix("RUN#")
        .map(|time| format!("RUN#{task_id}#{time}"))
}

pub(crate) fn step_sk(n: u32) -> String {
    format!("STEP#{n:08}")
}

pub(crate) fn progress_sk(table: &str) -> String {
    format!("TABLE#{table}")
}

pub(crate) fn mark_sk(table: &str) -> String {
    format!("MARK#{table}")
}

/// Microseconds in the key: two prechecks in one second must not overwrite each other.
pub(crate) fn precheck_sk(at: Timestamp) -> String {
    format!("PRECHECK#{}", at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

fn backend(detail: String) -> StoreError {
    StoreError::Backend {
        detail,
        retryable: false,
    }
}

/// A record's item: key, version and JSON body; refuses a body DynamoDB would not store.
pub(crate) fn record_item<T: Serialize>(
    pk: String,
    sk: String,
    version: u64,
    record: &T,
) -> Result<Item, StoreError> {
    let body = serde_json::to_string(record)
        .map_err(|e| backend(format!("encode the record {pk}/{sk}: {e}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(backend(format!(
            "the record {pk}/{sk} is {} bytes, over DynamoDB's 400 KB item limit",
            body.len()
        )));
    }
    let mut item = key(pk, sk);
    item.insert(VERSION.to_owned(), n(version));
    item.insert(BODY.to_owned(), s(body));
    Ok(item)
}

/// `item` with its expiry, if it has one.
pub(crate) fn with_expiry(mut item: Item, expires_at: Option<Timestamp>) -> Item {
    if let Some(at) = expires_at {
        item.insert(EXPIRES_AT.to_owned(), n(at.as_second()));
    }
    item
}

/// Whether `item` reads as gone at `now` (past its expiry, not yet deleted by TTL). An item
/// without the attribute (tasks, watermarks, records of earlier versions) never expires.
pub(crate) fn expired(item: &Item, now: Timestamp) -> bool {
    let expires_at = item
        .get(EXPIRES_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|text| text.parse::<i64>().ok())
        .and_then(|seconds| Timestamp::from_second(seconds).ok());
    tidemark_core::state::expired(expires_at, now)
}

pub(crate) fn string_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| backend(format!("a stored item has no text attribute `{name}`")))
}

/// A number attribute; absent counts as zero (a counter never added to).
pub(crate) fn number_attr<T>(item: &Item, name: &str) -> Result<T, StoreError>
where
    T: std::str::FromStr + Default,
{
    match item.get(name) {
        None => Ok(T::default()),
        Some(value) => value
            .as_n()
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| backend(format!("the stored attribute `{name}` is not a count"))),
    }
}

pub(crate) fn decode_body<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(string_attr(item, BODY)?)
        .map_err(|e| backend(format!("a stored record does not decode: {e}")))
}

/// Where a listing continues: the key of the last item of the previous page, base64url JSON.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    pk: String,
    sk: String,
}

pub(crate) fn encode_cursor(item: &Item) -> Result<String, StoreError> {
    let cursor = Cursor {
        pk: string_attr(item, PK)?.to_owned(),
        sk: string_attr(item, SK)?.to_owned(),
    };
    let json = serde_json::to_vec(&cursor).map_err(|e| backend(format!("encode a cursor: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// The exclusive start key a cursor stands for, if it is one of this listing's: the same
/// partition and sort-key prefix (a cursor of another listing would page through other items).
pub(crate) fn decode_cursor(cursor: &str, pk: &str, sk_prefix: &str) -> Result<Item, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    if cursor.pk != pk || !cursor.sk.starts_with(sk_prefix) {
        return Err(StoreError::BadCursor);
    }
    Ok(key(cursor.pk, cursor.sk))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pk: &str, sk: &str) -> Item {
        key(pk, sk)
    }

    #[test]
    fn a_cursor_round_trips_within_its_listing() {
        let c = encode_cursor(&item("TASK#a", "RUN#2026-12-01T02:30:00Z")).expect("encode");
        let start = decode_cursor(&c, "TASK#a", "RUN#").expect("decode");
        assert_eq!(start, item("TASK#a", "RUN#2026-12-01T02:30:00Z"));
    }

    #[test]
    fn foreign_or_garbled_cursors_are_refused() {
        let c = encode_cursor(&item("TASK#a", "RUN#2026-12-01T02:30:00Z")).expect("encode");
        for (cursor, pk, prefix) in [
            (c.as_str(), "TASK#b", "RUN#"),
            (c.as_str(), "TASK#a", "STEP#"),
            ("not base64!", "TASK#a", "RUN#"),
            ("bm90IGpzb24", "TASK#a", "RUN#"),
        ] {
            assert!(
                matches!(
                    decode_cursor(cursor, pk, prefix),
                    Err(StoreError::BadCursor)
                ),
                "{cursor} accepted for {pk} {prefix}"
            );
        }
    }

    #[test]
    fn an_oversized_record_is_refused_before_dynamodb_sees_it() {
        let big = "x".repeat(MAX_BODY_BYTES + 1);
        let err = record_item("TASK#a".into(), "RUN#x".into(), 1, &big).expect_err("too big");
        assert!(err.to_string().contains("400 KB"), "{err}");
        record_item("TASK#a".into(), "RUN#x".into(), 1, &"x".repeat(1000)).expect("small is fine");
    }

    #[test]
    fn an_item_expires_at_its_expiry_and_one_without_never() {
        let at = Timestamp::from_second(1_800_000_000).expect("time");
        let item = with_expiry(key("RUN#t#x", "STEP#00000001"), Some(at));
        assert_eq!(item.get(EXPIRES_AT), Some(&n(1_800_000_000)));
        assert!(!expired(&item, at - jiff::SignedDuration::from_secs(1)));
        assert!(expired(&item, at));
        let kept = with_expiry(key("TASK#t", "TASK"), None);
        assert!(!kept.contains_key(EXPIRES_AT));
        assert!(!expired(&kept, Timestamp::MAX));
    }

    #[test]
    fn run_partitions_follow_from_run_items() {
        let key = RunKey {
            task_id: "t1".into(),
            scheduled_time: "2026-12-01T02:30:00Z".parse().expect("ts"),
        };
        assert_eq!(run_pk_of("t1", &run_sk(&key)), Some(run_pk(&key)));
        assert_eq!(run_pk_of("t1", "MARK#shop.orders"), None);
    }
}
