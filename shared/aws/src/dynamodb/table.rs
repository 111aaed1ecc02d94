//! Table-wide operations: creating the table (tests and local tooling; SAM creates it on AWS),
//! paged Queries and batched deletes.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, WriteRequest,
};
use tidemark_core::ports::StoreError;

use super::items::{EXPIRES_AT, Item, PK, SK, s};
use super::store_error;
use crate::retry::{BeforeRetry, RetryPolicy};

/// Creates the state table (`pk`/`sk` strings, on demand, TTL on `expires_at`), as
/// template.yaml does, and waits until it is active (about a minute at most, [`crate::retry::TABLE_ACTIVE`]). An existing table
/// of that name is left as it is.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    create_table_waiting(client, name, &crate::retry::TABLE_ACTIVE).await
}

/// [`create_table`], checking whether the table is active once and again after each of `wait`'s
/// delays.
pub async fn create_table_waiting(
    client: &Client,
    name: &str,
    wait: &RetryPolicy,
) -> Result<(), StoreError> {
    let attribute = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    let built = (|| {
        Ok::<_, aws_sdk_dynamodb::error::BuildError>(
            client
                .create_table()
                .table_name(name)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attribute(PK)?)
                .attribute_definitions(attribute(SK)?)
                .key_schema(key(PK, KeyType::Hash)?)
                .key_schema(key(SK, KeyType::Range)?),
        )
    })()
    .map_err(|e| StoreError::Backend {
        detail: format!("CreateTable {name}: {e}"),
        retryable: false,
    })?;
    if let Err(e) = built.send().await {
        let f = crate::error::failure("CreateTable", &e);
        if !f.is("ResourceInUseException") {
            return Err(store_error(f));
        }
    }
    let mut delays = wait.delays();
    loop {
        let described = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| store_error(crate::error::failure("DescribeTable", &e)))?;
        if described.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return enable_ttl(client, name).await;
        }
        delays
            .before_retry(|checks| format!("table {name} was not active after {checks} checks"))
            .await?;
    }
}

/// Turns TTL on for `expires_at` (again on an existing table: DynamoDB refuses a second enable,
/// which is then what it already is).
async fn enable_ttl(client: &Client, name: &str) -> Result<(), StoreError> {
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(EXPIRES_AT)
        .enabled(true)
        .build()
        .map_err(|e| StoreError::Backend {
            detail: format!("UpdateTimeToLive {name}: {e}"),
            retryable: false,
        })?;
    match client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(spec)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let f = crate::error::failure("UpdateTimeToLive", &e);
            if f.is("ValidationException") && f.detail.contains("already enabled") {
                Ok(())
            } else {
                Err(store_error(f))
            }
        }
    }
}

/// One Query over a partition, optionally limited to a sort-key prefix.
pub(crate) struct Query<'a> {
    pub pk: &'a str,
    pub prefix: Option<&'a str>,
    pub descending: bool,
    pub start: Option<Item>,
    /// Stop after this many items (`None`: the whole partition range).
    pub max_items: Option<usize>,
    pub keys_only: bool,
}

/// Runs a Query to its end or to `max_items`, following DynamoDB's 1 MB pages. Strongly
/// consistent: a listing right after a write sees it.
pub(crate) async fn query(
    client: &Client,
    table: &str,
    q: Query<'_>,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = q.start;
    loop {
        let mut request = client
            .query()
            .table_name(table)
            .consistent_read(true)
            .scan_index_forward(!q.descending)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", s(q.pk))
            .set_exclusive_start_key(start.take());
        request = match q.prefix {
            Some(prefix) => request
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":prefix", s(prefix)),
            None => request.key_condition_expression("#pk = :pk"),
        };
        if q.keys_only {
            request = request
                .projection_expression("#pk, #k2")
                .expression_attribute_names("#k2", SK);
        }
        if let Some(max) = q.max_items {
            let remaining = max.saturating_sub(items.len()).max(1);
            request = request.limit(i32::try_from(remaining).unwrap_or(i32::MAX));
        }
        let page = request
            .send()
            .await
            .map_err(|e| store_error(crate::error::failure("Query", &e)))?;
        items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(last) if q.max_items.is_none_or(|max| items.len() < max) => start = Some(last),
            _ => return Ok(items),
        }
    }
}

/// Deletes items by key, 25 a request, retrying what DynamoDB leaves unprocessed as `retry` says.
pub(crate) async fn delete_keys(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    retry: &RetryPolicy,
) -> Result<(), StoreError> {
    let requests = keys
        .into_iter()
        .map(|key| {
            DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map(|d| WriteRequest::builder().delete_request(d).build())
                .map_err(|e| StoreError::Backend {
                    detail: format!("BatchWriteItem: {e}"),
                    retryable: false,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in requests.chunks(25) {
        // Unprocessed items mean the partition is throttled: back off before retrying them.
        let mut delays = retry.delays();
        let mut pending = chunk.to_vec();
        while !pending.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, std::mem::take(&mut pending))
                .send()
                .await
                .map_err(|e| store_error(crate::error::failure("BatchWriteItem", &e)))?;
            pending = out
                .unprocessed_items
                .and_then(|mut u| u.remove(table))
                .unwrap_or_default();
            if !pending.is_empty() {
                let left = pending.len();
                delays
                    .before_retry(|tries| {
                        format!(
                            "BatchWriteItem left {left} deletes unprocessed after {tries} attempts"
                        )
                    })
                    .await?;
            }
        }
    }
    Ok(())
}
