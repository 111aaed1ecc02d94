//! The state store on one DynamoDB table (DESIGN: State), passing the same contract suite as
//! the SQLite store.
//!
//! - Shared records (task, run, step, watermark) are replaced with a `PutItem` conditional on the
//!   version the writer read; creations are conditional on the item's absence.
//! - Counters (a run's committed chunks, per-table progress) use `UpdateItem` with
//!   `ADD`, so concurrent workers never lose an increment; `ADD` to a run's `chunks_done` bumps its
//!   version too, so a writer holding an older copy of the run cannot write the count back.
//! - A run's items and precheck reports carry `expires_at` (the table's TTL attribute), set at
//!   creation; reads skip an item past it, since TTL deletes expired items only eventually.
//! - Tasks list through a key-only directory partition (`TASKS`), written in the same
//!   transaction as the task: an ordered, strongly consistent Query that reads only one page's
//!   worth of keys, where a Scan would read every run, step and counter in the table.

mod access;
mod items;
mod table;

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};
use jiff::Timestamp;
use tidemark_core::ports::{Clock, ProgressDelta, StateStore, StoreError, SystemClock};
use tidemark_core::state::{
    Page, RunKey, RunRecord, StepRecord, TableProgress, TaskRecord, Watermark,
};
use tokio::task::JoinSet;

use crate::error::{Failure, failure};
use crate::retry::RetryPolicy;
use access::{Expect, built};
use items::*;
use table::{Query, delete_keys};
pub use table::{create_table, create_table_waiting};

/// How many conditional step writes `put_steps` keeps in flight.
const PUT_STEPS_CONCURRENCY: usize = 16;
/// How many tables' counters `add_progress_many` adds to at once.
const PROGRESS_AT_ONCE: usize = 16;

/// The DynamoDB state store. Cheap to clone (the SDK client is shared).
#[derive(Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
    /// How a batch's unprocessed items are retried.
    retry: RetryPolicy,
    /// What "now" is when an item's expiry is checked.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

pub(crate) fn store_error(f: Failure) -> StoreError {
    StoreError::Backend {
        detail: f.detail,
        retryable: f.retryable,
    }
}

impl DynamoDbStore {
    /// A store on `table` (created by template.yaml on AWS, by [`create_table`] in tests).
    pub fn new(client: Client, table: impl Into<String>) -> DynamoDbStore {
        DynamoDbStore {
            client,
            table: table.into(),
            retry: crate::retry::BATCH_RETRY,
            clock: Arc::new(SystemClock),
        }
    }

    /// This store, telling expired items by `clock` (the service's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> DynamoDbStore {
        self.clock = clock;
        self
    }

    /// Those of `items` that have not expired.
    fn live(&self, items: Vec<Item>) -> Vec<Item> {
        let now = self.clock.now();
        items.into_iter().filter(|i| !expired(i, now)).collect()
    }

    /// The item of this key, unless it is absent or expired.
    async fn get_live(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let now = self.clock.now();
        Ok(self.get_item(pk, sk).await?.filter(|i| !expired(i, now)))
    }

    /// This store, retrying a batch's unprocessed items as `retry` says (tests shorten it).
    pub fn with_retry(mut self, retry: RetryPolicy) -> DynamoDbStore {
        self.retry = retry;
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }
}

/// Every item of a partition, keys only.
fn everything(pk: &str) -> Query<'_> {
    Query {
        pk,
        prefix: None,
        descending: false,
        start: None,
        max_items: None,
        keys_only: true,
    }
}

fn run_what(key: &RunKey) -> String {
    format!("run {} of task {}", key.time_key(), key.task_id)
}

#[async_trait]
impl StateStore for DynamoDbStore {
    #[tracing::instrument(skip_all, fields(task_id = %task.id), err)]
    async fn create_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let item = record_item(task_pk(&task.id), TASK_SK.into(), task.version, task)?;
        let put_task = built(
            "TransactWriteItems",
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .build(),
        )?;
        let put_entry = built(
            "TransactWriteItems",
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(key(DIRECTORY_PK, directory_sk(&task.id))))
                .build(),
        )?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_task).build())
            .transact_items(TransactWriteItem::builder().put(put_entry).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let duplicate = matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(t))
                        if t.cancellation_reasons()
                            .iter()
                            .any(|r| r.code() == Some("ConditionalCheckFailed"))
                );
                if duplicate {
                    Err(StoreError::Conflict {
                        what: format!("task {}", task.id),
                    })
                } else {
                    Err(store_error(failure("TransactWriteItems", &e)))
                }
            }
        }
    }

    async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.get_record(task_pk(id), TASK_SK.into()).await
    }

    async fn list_tasks(
        &self,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<TaskRecord>, StoreError> {
        let (entries, next) = self
            .page(DIRECTORY_PK, DIRECTORY_PREFIX, false, limit, next)
            .await?;
        let ids = entries
            .iter()
            .map(|e| {
                string_attr(e, SK).map(|sk| sk.trim_start_matches(DIRECTORY_PREFIX).to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items: self.batch_get_tasks(&ids).await?,
            next,
        })
    }

    #[tracing::instrument(skip_all, fields(task_id = %task.id), err)]
    async fn update_task(&self, task: &TaskRecord) -> Result<u64, StoreError> {
        let mut record = task.clone();
        record.version = task.version + 1;
        let item = record_item(task_pk(&task.id), TASK_SK.into(), record.version, &record)?;
        self.replace(item, task.version, format!("task {}", task.id))
            .await
    }

    #[tracing::instrument(skip_all, fields(task_id = %id), err)]
    async fn delete_task(&self, id: &str) -> Result<(), StoreError> {
        let pk = task_pk(id);
        let task_items = self.query(everything(&pk)).await?;
        // Runs' partitions first, while the run items that lead to them still exist: a delete
        // that fails half-way can be repeated and still finds everything.
        for item in &task_items {
            if let Some(run_pk) = run_pk_of(id, string_attr(item, SK)?) {
                let run_items = self.query(everything(&run_pk)).await?;
                delete_keys(
                    &self.client,
                    &self.table,
                    Self::keys_of(&run_items)?,
                    &self.retry,
                )
                .await?;
            }
        }
        let (task_item, others): (Vec<Item>, Vec<Item>) =
            Self::keys_of(&task_items)?.into_iter().partition(|k| {
                k.get(SK)
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|s| s == TASK_SK)
            });
        delete_keys(&self.client, &self.table, others, &self.retry).await?;
        // The task and its directory entry last, so a task stays listed until all else is gone.
        let mut last = task_item;
        last.push(key(DIRECTORY_PK, directory_sk(id)));
        delete_keys(&self.client, &self.table, last, &self.retry).await
    }

    async fn put_precheck(
        &self,
        task_id: &str,
        at: Timestamp,
        expires_at: Option<Timestamp>,
        report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let item = record_item(task_pk(task_id), precheck_sk(at), 1, &(at, report))?;
        let item = with_expiry(item, expires_at);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| store_error(failure("PutItem", &e)))?;
        Ok(())
    }

    async fn latest_precheck(
        &self,
        task_id: &str,
    ) -> Result<Option<(Timestamp, serde_json::Value)>, StoreError> {
        let pk = task_pk(task_id);
        let newest = self
            .query(Query {
                pk: &pk,
                prefix: Some("PRECHECK#"),
                descending: true,
                start: None,
                max_items: Some(1),
                keys_only: false,
            })
            .await?;
        self.live(newest).first().map(decode_body).transpose()
    }

    #[tracing::instrument(skip_all, fields(task_id = %run.key.task_id, run = %run.key.time_key()), err)]
    async fn create_run(&self, run: &RunRecord) -> Result<bool, StoreError> {
        let mut item = record_item(
            task_pk(&run.key.task_id),
            run_sk(&run.key),
            run.version,
            run,
        )?;
        item.insert(CHUNKS_DONE.to_owned(), n(run.chunks_done));
        self.put_if(with_expiry(item, run.expires_at), Expect::Absent)
            .await
    }

    async fn get_run(&self, key: &RunKey) -> Result<Option<RunRecord>, StoreError> {
        self.get_live(task_pk(&key.task_id), run_sk(key))
            .await?
            .map(|i| Self::run_from(&i))
            .transpose()
    }

    async fn list_runs(
        &self,
        task_id: &str,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<RunRecord>, StoreError> {
        let (items, next) = self
            .page(&task_pk(task_id), "RUN#", true, limit, next)
            .await?;
        // A page may come out short where expired runs were: the cursor still goes on.
        Ok(Page {
            items: self
                .live(items)
                .iter()
                .map(Self::run_from)
                .collect::<Result<_, _>>()?,
            next,
        })
    }

    #[tracing::instrument(skip_all, fields(task_id = %run.key.task_id, run = %run.key.time_key()), err)]
    async fn update_run(&self, run: &RunRecord) -> Result<u64, StoreError> {
        let mut record = run.clone();
        record.version = run.version + 1;
        let mut item = record_item(
            task_pk(&run.key.task_id),
            run_sk(&run.key),
            record.version,
            &record,
        )?;
        // The count the writer read at this version is the current one (an increment would have
        // moved the version), so writing it back loses nothing.
        item.insert(CHUNKS_DONE.to_owned(), n(run.chunks_done));
        let item = with_expiry(item, run.expires_at);
        self.replace(item, run.version, run_what(&run.key)).await
    }

    async fn increment_chunks_done(&self, key: &RunKey) -> Result<u32, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(task_pk(&key.task_id), run_sk(key))))
            .update_expression("ADD #done :one, #v :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#done", CHUNKS_DONE)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            Ok(out) => number_attr(&out.attributes.unwrap_or_default(), CHUNKS_DONE),
            Err(e) => {
                let f = failure("UpdateItem", &e);
                if f.is("ConditionalCheckFailedException") {
                    Err(StoreError::NotFound {
                        what: run_what(key),
                    })
                } else {
                    Err(store_error(f))
                }
            }
        }
    }

    #[tracing::instrument(skip_all, fields(steps = steps.len()), err)]
    async fn put_steps(&self, steps: &[StepRecord]) -> Result<(), StoreError> {
        let mut writes = JoinSet::new();
        for step in steps {
            let item = record_item(run_pk(&step.run), step_sk(step.n), step.version, step)?;
            let item = with_expiry(item, step.expires_at);
            if writes.len() >= PUT_STEPS_CONCURRENCY
                && let Some(done) = writes.join_next().await
            {
                joined(done)?;
            }
            let store = self.clone();
            // An existing step is someone's claimed work: never overwrite it.
            writes.spawn(async move { store.put_if(item, Expect::Absent).await });
        }
        while let Some(done) = writes.join_next().await {
            joined(done)?;
        }
        Ok(())
    }

    async fn get_step(&self, run: &RunKey, n: u32) -> Result<Option<StepRecord>, StoreError> {
        self.get_live(run_pk(run), step_sk(n))
            .await?
            .map(|i| decode_body(&i))
            .transpose()
    }

    async fn list_steps(&self, run: &RunKey) -> Result<Vec<StepRecord>, StoreError> {
        let pk = run_pk(run);
        let items = self
            .query(Query {
                pk: &pk,
                prefix: Some("STEP#"),
                descending: false,
                start: None,
                max_items: None,
                keys_only: false,
            })
            .await?;
        self.live(items).iter().map(decode_body).collect()
    }

    #[tracing::instrument(skip_all, fields(task_id = %step.run.task_id, step = step.n), err)]
    async fn update_step(&self, step: &StepRecord) -> Result<u64, StoreError> {
        let mut record = step.clone();
        record.version = step.version + 1;
        let item = record_item(run_pk(&step.run), step_sk(step.n), record.version, &record)?;
        let item = with_expiry(item, step.expires_at);
        let what = format!("step {} of {}", step.n, run_what(&step.run));
        self.replace(item, step.version, what).await
    }

    async fn add_progress(
        &self,
        run: &RunKey,
        table: &str,
        delta: &ProgressDelta,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let values = [
            delta.rows,
            delta.bytes,
            u64::from(delta.chunks_done),
            delta.elapsed_ms,
            u64::from(delta.verified),
            u64::from(delta.mismatched),
        ];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(run_pk(run), progress_sk(table))))
            .expression_attribute_names("#tbl", TABLE)
            .expression_attribute_values(":tbl", s(table));
        let mut adds = Vec::new();
        for (i, (name, value)) in COUNTERS.iter().zip(values).enumerate() {
            adds.push(format!("#c{i} :c{i}"));
            request = request
                .expression_attribute_names(format!("#c{i}"), *name)
                .expression_attribute_values(format!(":c{i}"), n(value));
        }
        // The expiry is the run's, set by the first addition and never moved.
        let mut set = String::from("#tbl = :tbl");
        if let Some(at) = expires_at {
            set.push_str(", #exp = if_not_exists(#exp, :exp)");
            request = request
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(":exp", n(at.as_second()));
        }
        request
            .update_expression(format!("SET {set} ADD {}", adds.join(", ")))
            .send()
            .await
            .map_err(|e| store_error(failure("UpdateItem", &e)))?;
        Ok(())
    }

    /// Each table's counters are an item of their own, added to atomically; they are written
    /// [`PROGRESS_AT_ONCE`] at a time rather than one after the other.
    async fn add_progress_many(
        &self,
        run: &RunKey,
        deltas: &[(String, ProgressDelta)],
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        use futures_util::StreamExt;
        let mut pending = deltas.iter();
        let mut writes = futures_util::stream::FuturesUnordered::new();
        loop {
            while writes.len() < PROGRESS_AT_ONCE {
                let Some((table, delta)) = pending.next() else {
                    break;
                };
                writes.push(self.add_progress(run, table, delta, expires_at));
            }
            match writes.next().await {
                Some(written) => written?,
                None => return Ok(()),
            }
        }
    }

    async fn list_progress(&self, run: &RunKey) -> Result<Vec<TableProgress>, StoreError> {
        let pk = run_pk(run);
        let items = self
            .query(Query {
                pk: &pk,
                prefix: Some("TABLE#"),
                descending: false,
                start: None,
                max_items: None,
                keys_only: false,
            })
            .await?;
        self.live(items)
            .iter()
            .map(|i| {
                Ok(TableProgress {
                    table: string_attr(i, TABLE)?.to_owned(),
                    rows: number_attr(i, COUNTERS[0])?,
                    bytes: number_attr(i, COUNTERS[1])?,
                    chunks_done: number_attr(i, COUNTERS[2])?,
                    elapsed_ms: number_attr(i, COUNTERS[3])?,
                    verified: number_attr(i, COUNTERS[4])?,
                    mismatched: number_attr(i, COUNTERS[5])?,
                })
            })
            .collect()
    }

    async fn get_watermark(
        &self,
        task_id: &str,
        table: &str,
    ) -> Result<Option<Watermark>, StoreError> {
        self.get_record(task_pk(task_id), mark_sk(table)).await
    }

    #[tracing::instrument(skip_all, fields(task_id = %mark.task_id, table = %mark.table), err)]
    async fn put_watermark(&self, mark: &Watermark) -> Result<u64, StoreError> {
        let mut record = mark.clone();
        record.version = mark.version + 1;
        let item = record_item(
            task_pk(&mark.task_id),
            mark_sk(&mark.table),
            record.version,
            &record,
        )?;
        let what = format!("the watermark of {}", mark.table);
        if mark.version == 0 {
            if self.put_if(item, Expect::Absent).await? {
                Ok(1)
            } else {
                Err(StoreError::Conflict { what })
            }
        } else {
            self.replace(item, mark.version, what).await
        }
    }
}

fn joined(
    done: Result<Result<bool, StoreError>, tokio::task::JoinError>,
) -> Result<(), StoreError> {
    match done {
        Ok(result) => result.map(|_| ()),
        Err(e) => Err(StoreError::Backend {
            detail: format!("a step write was cancelled or panicked: {e}"),
            retryable: false,
        }),
    }
}
