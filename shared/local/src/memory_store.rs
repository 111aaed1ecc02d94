//! The state store in memory, with the same semantics as [`crate::SqliteStore`] (both pass the
//! state-store contract suite): for fast tests of the use cases, where nothing needs to outlive
//! the process.
//!
//! Records are kept as the JSON bodies the SQLite store writes, not as typed values, so what
//! comes back is exactly what a real store gives back: fields that are never serialized (an
//! inline password) are gone, and a record that does not encode fails the same way. Items are
//! keyed by the same sort keys as SQLite's rows, so listings come out in the same order. Every
//! call holds one mutex, which makes each read-modify-write (conditional updates, counters)
//! atomic, as the SQLite store's single connection does. Items past their expiry read as
//! absent, as in the real stores (and stay until their task is deleted, as in SQLite).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tidemark_core::ports::{Clock, ProgressDelta, StateStore, StoreError, SystemClock};
use tidemark_core::state::{
    Page, RunKey, RunRecord, StepRecord, TableProgress, TaskRecord, Watermark, expired,
};

use crate::cursor::{TASKS, cursor, resume, runs_listing};

/// A versioned record, as a row of SQLite's `items` holds it.
struct Item {
    version: u64,
    body: String,
    expires_at: Option<Timestamp>,
}

impl Item {
    fn new(version: u64, body: String, expires_at: Option<Timestamp>) -> Item {
        Item {
            version,
            body,
            expires_at,
        }
    }

    /// The item unless it expired by `now`.
    fn live(&self, now: Timestamp) -> Option<&Item> {
        (!expired(self.expires_at, now)).then_some(self)
    }
}

/// Everything stored under one task id (SQLite's `TASK#<id>` partition and the `RUN#<id>#…`
/// ones), whether or not the task itself exists: prechecks, steps and watermarks may be written
/// before it, and deleting the task removes them all at once.
#[derive(Default)]
struct TaskItems {
    task: Option<Item>,
    /// By the precheck's time to the microsecond (SQLite's key): newest last.
    prechecks: BTreeMap<String, Item>,
    /// By the run's time key (to the second, as both real stores key runs).
    runs: BTreeMap<String, RunItems>,
    /// By table.
    marks: BTreeMap<String, Item>,
}

/// A run and what is stored under it; steps and progress may exist without the run record.
#[derive(Default)]
struct RunItems {
    run: Option<Item>,
    /// By the zero-padded step number of both real stores' sort keys, so order matches theirs.
    steps: BTreeMap<String, Item>,
    /// By table; counters need no version, the mutex makes each addition atomic.
    progress: BTreeMap<String, Item>,
}

/// By task id, which is the order tasks list in.
#[derive(Default)]
struct State {
    tasks: BTreeMap<String, TaskItems>,
}

impl State {
    fn task(&self, id: &str) -> Option<&TaskItems> {
        self.tasks.get(id)
    }

    fn run(&self, key: &RunKey) -> Option<&RunItems> {
        self.task(&key.task_id)?.runs.get(&key.time_key())
    }

    /// The run's items, created empty if needed (for writes only).
    fn run_mut(&mut self, key: &RunKey) -> &mut RunItems {
        self.tasks
            .entry(key.task_id.clone())
            .or_default()
            .runs
            .entry(key.time_key())
            .or_default()
    }
}

/// The state store in memory. Cheap to clone; clones share the records.
#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// What "now" is when an item's expiry is checked.
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore {
            state: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// This store, telling expired items by `clock` (the service's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> MemoryStore {
        self.clock = clock;
        self
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| backend("the memory store's lock was poisoned by a panic".into()))
    }
}

fn backend(detail: String) -> StoreError {
    StoreError::Backend {
        detail,
        retryable: false,
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| backend(format!("encode a record: {e}")))
}

fn decode<T: DeserializeOwned>(body: &str) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|e| backend(format!("a stored record does not decode: {e}")))
}

fn step_key(n: u32) -> String {
    format!("{n:08}")
}

fn run_what(key: &RunKey) -> String {
    format!("run {} of task {}", key.time_key(), key.task_id)
}

/// The version a write at `expected` stores; a version at the maximum cannot move on (where
/// SQLite would overflow).
fn next_version(expected: u64) -> Result<u64, StoreError> {
    expected
        .checked_add(1)
        .ok_or_else(|| backend(format!("version {expected} cannot be incremented")))
}

/// Replaces an item whose stored version is `expected` with `body`, stored at `expected + 1`.
fn replace(
    item: Option<&mut Item>,
    expected: u64,
    body: String,
    what: impl FnOnce() -> String,
) -> Result<u64, StoreError> {
    match item {
        None => Err(StoreError::NotFound { what: what() }),
        Some(item) if item.version != expected => Err(StoreError::Conflict { what: what() }),
        Some(item) => {
            item.version = next_version(expected)?;
            item.body = body;
            Ok(item.version)
        }
    }
}

/// Turns up to `limit + 1` (key, body) pairs into a page, as the SQLite store does: the extra
/// one only says that there is a next page.
fn page<'a, T: DeserializeOwned>(
    rows: impl Iterator<Item = (&'a String, &'a Item)>,
    limit: u32,
    listing: &str,
) -> Result<Page<T>, StoreError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut rows: Vec<(&String, &Item)> = rows.take(limit.saturating_add(1)).collect();
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = match (more, rows.last()) {
        (true, Some((key, _))) => Some(cursor(listing, key)),
        _ => None,
    };
    let items = rows
        .iter()
        .map(|(_, item)| decode(&item.body))
        .collect::<Result<Vec<T>, _>>()?;
    Ok(Page { items, next })
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn create_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        let body = encode(task)?;
        let mut state = self.state()?;
        let slot = &mut state.tasks.entry(task.id.clone()).or_default().task;
        if slot.is_some() {
            return Err(StoreError::Conflict {
                what: format!("task {}", task.id),
            });
        }
        *slot = Some(Item::new(task.version, body, None));
        Ok(())
    }

    async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let state = self.state()?;
        let item = state.task(id).and_then(|t| t.task.as_ref());
        item.map(|i| decode(&i.body)).transpose()
    }

    async fn list_tasks(
        &self,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<TaskRecord>, StoreError> {
        let after = resume(next, TASKS)?;
        let state = self.state()?;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let tasks = state
            .tasks
            .range::<String, _>((start, Bound::Unbounded))
            .filter_map(|(id, items)| items.task.as_ref().map(|t| (id, t)));
        page(tasks, limit, TASKS)
    }

    async fn update_task(&self, task: &TaskRecord) -> Result<u64, StoreError> {
        let mut record = task.clone();
        record.version = next_version(task.version)?;
        let body = encode(&record)?;
        let mut state = self.state()?;
        let item = state.tasks.get_mut(&task.id).and_then(|t| t.task.as_mut());
        replace(item, task.version, body, || format!("task {}", task.id))
    }

    async fn delete_task(&self, id: &str) -> Result<(), StoreError> {
        // Everything under the task hangs off its entry, runs' steps and progress included even
        // where the run record is missing (as SQLite deletes every `RUN#<id>#` partition).
        self.state()?.tasks.remove(id);
        Ok(())
    }

    async fn put_precheck(
        &self,
        task_id: &str,
        at: Timestamp,
        expires_at: Option<Timestamp>,
        report: &serde_json::Value,
    ) -> Result<(), StoreError> {
        // Microseconds in the key, as SQLite's: two prechecks in one second must not overwrite
        // each other, two in one microsecond do.
        let key = at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        let body = encode(&(at, report))?;
        let mut state = self.state()?;
        let task = state.tasks.entry(task_id.to_owned()).or_default();
        task.prechecks.insert(key, Item::new(1, body, expires_at));
        Ok(())
    }

    async fn latest_precheck(
        &self,
        task_id: &str,
    ) -> Result<Option<(Timestamp, serde_json::Value)>, StoreError> {
        let state = self.state()?;
        let newest = state
            .task(task_id)
            .and_then(|t| t.prechecks.last_key_value())
            .and_then(|(_, item)| item.live(self.clock.now()));
        newest.map(|item| decode(&item.body)).transpose()
    }

    async fn create_run(&self, run: &RunRecord) -> Result<bool, StoreError> {
        let body = encode(run)?;
        let mut state = self.state()?;
        let slot = &mut state.run_mut(&run.key).run;
        if slot.is_some() {
            return Ok(false);
        }
        *slot = Some(Item::new(run.version, body, run.expires_at));
        Ok(true)
    }

    async fn get_run(&self, key: &RunKey) -> Result<Option<RunRecord>, StoreError> {
        let state = self.state()?;
        let item = state.run(key).and_then(|r| r.run.as_ref());
        let item = item.and_then(|i| i.live(self.clock.now()));
        item.map(|i| decode(&i.body)).transpose()
    }

    async fn list_runs(
        &self,
        task_id: &str,
        limit: u32,
        next: Option<&str>,
    ) -> Result<Page<RunRecord>, StoreError> {
        let listing = runs_listing(task_id);
        let after = resume(next, &listing)?;
        let state = self.state()?;
        let Some(task) = state.task(task_id) else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        // Newest first: the time key sorts in time order, so walk it backwards.
        let end = after.map_or(Bound::Unbounded, Bound::Excluded);
        let now = self.clock.now();
        let runs = task
            .runs
            .range::<String, _>((Bound::Unbounded, end))
            .rev()
            .filter_map(|(time, items)| items.run.as_ref()?.live(now).map(|r| (time, r)));
        page(runs, limit, &listing)
    }

    async fn update_run(&self, run: &RunRecord) -> Result<u64, StoreError> {
        let mut record = run.clone();
        record.version = next_version(run.version)?;
        let body = encode(&record)?;
        let mut state = self.state()?;
        let item = state
            .tasks
            .get_mut(&run.key.task_id)
            .and_then(|t| t.runs.get_mut(&run.key.time_key()))
            .and_then(|r| r.run.as_mut());
        replace(item, run.version, body, || run_what(&run.key))
    }

    async fn increment_chunks_done(&self, key: &RunKey) -> Result<u32, StoreError> {
        let mut state = self.state()?;
        let item = state
            .tasks
            .get_mut(&key.task_id)
            .and_then(|t| t.runs.get_mut(&key.time_key()))
            .and_then(|r| r.run.as_mut())
            .ok_or_else(|| StoreError::NotFound {
                what: run_what(key),
            })?;
        let mut run: RunRecord = decode(&item.body)?;
        run.chunks_done = run.chunks_done.saturating_add(1);
        // The version moves too, so a writer holding the old record cannot overwrite the count.
        run.version = next_version(item.version)?;
        item.body = encode(&run)?;
        item.version = run.version;
        Ok(run.chunks_done)
    }

    async fn put_steps(&self, steps: &[StepRecord]) -> Result<(), StoreError> {
        // Encoded first, so a step that does not encode leaves none written (SQLite's
        // transaction).
        let items = steps
            .iter()
            .map(|s| Ok((s, encode(s)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut state = self.state()?;
        for (step, body) in items {
            // An existing step is someone's claimed work: never overwrite it.
            state
                .run_mut(&step.run)
                .steps
                .entry(step_key(step.n))
                .or_insert(Item::new(step.version, body, step.expires_at));
        }
        Ok(())
    }

    async fn get_step(&self, run: &RunKey, n: u32) -> Result<Option<StepRecord>, StoreError> {
        let state = self.state()?;
        let item = state.run(run).and_then(|r| r.steps.get(&step_key(n)));
        let item = item.and_then(|i| i.live(self.clock.now()));
        item.map(|i| decode(&i.body)).transpose()
    }

    async fn list_steps(&self, run: &RunKey) -> Result<Vec<StepRecord>, StoreError> {
        let state = self.state()?;
        let now = self.clock.now();
        let steps = state.run(run).map(|r| r.steps.values());
        steps
            .into_iter()
            .flatten()
            .filter_map(|i| i.live(now))
            .map(|i| decode(&i.body))
            .collect()
    }

    async fn update_step(&self, step: &StepRecord) -> Result<u64, StoreError> {
        let mut record = step.clone();
        record.version = next_version(step.version)?;
        let body = encode(&record)?;
        let mut state = self.state()?;
        let item = state
            .tasks
            .get_mut(&step.run.task_id)
            .and_then(|t| t.runs.get_mut(&step.run.time_key()))
            .and_then(|r| r.steps.get_mut(&step_key(step.n)));
        replace(item, step.version, body, || {
            format!("step {} of run {}", step.n, step.run.time_key())
        })
    }

    async fn add_progress(
        &self,
        run: &RunKey,
        table: &str,
        delta: &ProgressDelta,
        expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        let counters = &mut state.run_mut(run).progress;
        // The expiry is set by the first addition and never moved.
        let (mut progress, expires_at) = match counters.get(table) {
            Some(item) => (decode::<TableProgress>(&item.body)?, item.expires_at),
            None => (
                TableProgress {
                    table: table.to_owned(),
                    ..TableProgress::default()
                },
                expires_at,
            ),
        };
        // Saturating: a counter at its maximum stays there rather than panic.
        progress.rows = progress.rows.saturating_add(delta.rows);
        progress.bytes = progress.bytes.saturating_add(delta.bytes);
        progress.chunks_done = progress.chunks_done.saturating_add(delta.chunks_done);
        progress.elapsed_ms = progress.elapsed_ms.saturating_add(delta.elapsed_ms);
        progress.verified = progress.verified.saturating_add(delta.verified);
        progress.mismatched = progress.mismatched.saturating_add(delta.mismatched);
        counters.insert(
            table.to_owned(),
            Item::new(1, encode(&progress)?, expires_at),
        );
        Ok(())
    }

    async fn list_progress(&self, run: &RunKey) -> Result<Vec<TableProgress>, StoreError> {
        let state = self.state()?;
        let now = self.clock.now();
        let counters = state.run(run).map(|r| r.progress.values());
        counters
            .into_iter()
            .flatten()
            .filter_map(|i| i.live(now))
            .map(|i| decode(&i.body))
            .collect()
    }

    async fn get_watermark(
        &self,
        task_id: &str,
        table: &str,
    ) -> Result<Option<Watermark>, StoreError> {
        let state = self.state()?;
        let item = state.task(task_id).and_then(|t| t.marks.get(table));
        item.map(|i| decode(&i.body)).transpose()
    }

    async fn put_watermark(&self, mark: &Watermark) -> Result<u64, StoreError> {
        let mut record = mark.clone();
        record.version = next_version(mark.version)?;
        let body = encode(&record)?;
        let what = || format!("the watermark of {}", mark.table);
        let mut state = self.state()?;
        if mark.version == 0 {
            let marks = &mut state.tasks.entry(mark.task_id.clone()).or_default().marks;
            if marks.contains_key(&mark.table) {
                return Err(StoreError::Conflict { what: what() });
            }
            marks.insert(mark.table.clone(), Item::new(1, body, None));
            Ok(1)
        } else {
            let item = state
                .tasks
                .get_mut(&mark.task_id)
                .and_then(|t| t.marks.get_mut(&mark.table));
            replace(item, mark.version, body, what)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RunKey {
        RunKey {
            task_id: "tsk-1".into(),
            scheduled_time: Timestamp::from_second(1_790_000_000).expect("time"),
        }
    }

    #[tokio::test]
    async fn clones_share_the_records() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        let a2 = a.clone();
        a.add_progress(&key(), "shop.orders", &ProgressDelta::default(), None)
            .await
            .expect("add");
        assert_eq!(a2.list_progress(&key()).await.expect("list").len(), 1);
        assert!(b.list_progress(&key()).await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn a_poisoned_lock_is_a_backend_error_not_a_panic() {
        let store = MemoryStore::new();
        let state = Arc::clone(&store.state);
        let _ = std::thread::spawn(move || {
            let _held = state.lock();
            panic!("a caller panics while holding the lock");
        })
        .join();
        let err = store.get_task("tsk-1").await.expect_err("poisoned");
        assert!(
            matches!(
                err,
                StoreError::Backend {
                    retryable: false,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
