//! Reading and writing items: conditional puts, replaces that tell a lost race from a missing
//! record, paged listings and batched reads. The port's methods in `mod.rs` are built on these.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::KeysAndAttributes;
use tidemark_core::ports::StoreError;
use tidemark_core::state::{RunRecord, TaskRecord};

use super::items::*;
use super::table::{Query, query};
use super::{DynamoDbStore, store_error};
use crate::error::failure;
use crate::retry::BeforeRetry;

/// BatchGetItem takes at most 100 keys.
const BATCH_GET_KEYS: usize = 100;

pub(super) fn built<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Backend {
        detail: format!("{what}: {e}"),
        retryable: false,
    })
}

/// What a conditional write requires of the stored item.
#[derive(Clone, Copy)]
pub(super) enum Expect {
    Absent,
    Version(u64),
}

impl DynamoDbStore {
    pub(super) async fn get_item(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(failure("GetItem", &e)))?;
        Ok(out.item)
    }

    /// Writes `item` if the stored one meets `expect`; `false` when it does not.
    pub(super) async fn put_if(&self, item: Item, expect: Expect) -> Result<bool, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expect {
            Expect::Absent => request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            Expect::Version(v) => request
                .condition_expression("#v = :expected")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":expected", n(v)),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let f = failure("PutItem", &e);
                if f.is("ConditionalCheckFailedException") {
                    Ok(false)
                } else {
                    Err(store_error(f))
                }
            }
        }
    }

    /// Replaces a record written at `expected`; `Conflict` when it moved on, `NotFound` when
    /// it is gone. Returns the new version.
    pub(super) async fn replace(
        &self,
        item: Item,
        expected: u64,
        what: String,
    ) -> Result<u64, StoreError> {
        let (pk, sk) = (
            string_attr(&item, PK)?.to_owned(),
            string_attr(&item, SK)?.to_owned(),
        );
        if self.put_if(item, Expect::Version(expected)).await? {
            return Ok(expected + 1);
        }
        match self.get_item(pk, sk).await? {
            Some(_) => Err(StoreError::Conflict { what }),
            None => Err(StoreError::NotFound { what }),
        }
    }

    pub(super) async fn get_record<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<T>, StoreError> {
        self.get_item(pk, sk)
            .await?
            .map(|i| decode_body(&i))
            .transpose()
    }

    pub(super) async fn query(&self, q: Query<'_>) -> Result<Vec<Item>, StoreError> {
        query(&self.client, &self.table, q).await
    }

    /// One page of a listing over `pk`/`prefix`: `limit` items, and a cursor when more follow.
    pub(super) async fn page(
        &self,
        pk: &str,
        prefix: &str,
        descending: bool,
        limit: u32,
        next: Option<&str>,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let start = next.map(|c| decode_cursor(c, pk, prefix)).transpose()?;
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let limit = limit as usize;
        // One item more than asked says whether another page exists, so the last page never
        // hands out a cursor to an empty one.
        let mut items = self
            .query(Query {
                pk,
                prefix: Some(prefix),
                descending,
                start,
                max_items: Some(limit + 1),
                keys_only: false,
            })
            .await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = match (more, items.last()) {
            (true, Some(last)) => Some(encode_cursor(last)?),
            _ => None,
        };
        Ok((items, next))
    }

    /// The stored tasks of these ids, in the given order (ids deleted meanwhile are skipped).
    pub(super) async fn batch_get_tasks(
        &self,
        ids: &[String],
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut found: HashMap<String, TaskRecord> = HashMap::new();
        for chunk in ids.chunks(BATCH_GET_KEYS) {
            let keys: Vec<Item> = chunk.iter().map(|id| key(task_pk(id), TASK_SK)).collect();
            let request = built(
                "BatchGetItem",
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build(),
            )?;
            // Unprocessed keys mean the partition is throttled: back off before asking again.
            let mut delays = self.retry.delays();
            let mut pending = Some(request);
            while let Some(request) = pending.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| store_error(failure("BatchGetItem", &e)))?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let task: TaskRecord = decode_body(&item)?;
                    found.insert(task.id.clone(), task);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
                if pending.is_some() {
                    delays
                        .before_retry(|tries| {
                            format!("BatchGetItem left keys unprocessed after {tries} attempts")
                        })
                        .await?;
                }
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// A run's record, with the counters DynamoDB keeps outside its body.
    pub(super) fn run_from(item: &Item) -> Result<RunRecord, StoreError> {
        let mut run: RunRecord = decode_body(item)?;
        run.chunks_done = number_attr(item, CHUNKS_DONE)?;
        run.version = number_attr(item, VERSION)?;
        Ok(run)
    }

    pub(super) fn keys_of(items: &[Item]) -> Result<Vec<Item>, StoreError> {
        items
            .iter()
            .map(|i| Ok(key(string_attr(i, PK)?, string_attr(i, SK)?)))
            .collect()
    }
}
