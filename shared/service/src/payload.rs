//! What steps carry: the Schema step's plan written as typed payloads (a chunk's table, shape
//! and key range; Finalize's tables and the policy's clean-up plan) and a chunk's checksum, with
//! the step records they are written into. A leaf: the steps, the policies, the checks and the
//! driver all read it; it reads none of them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tidemark_core::ports::StoreError;
use tidemark_core::state::{RunKey, StepKind, StepRecord, StepStatus};
use tidemark_engine::copy::{Chunk, TablePlan as EnginePlan, TableShape};
use tidemark_engine::policy::incremental::SavedTrigger;

use crate::error::ServiceError;

/// The Schema step's number; chunks follow it, the Finalize step closes the list.
pub const SCHEMA_STEP: u32 = 0;

/// One table of a run, as its report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    /// `db.table` on the source.
    pub table: String,
    /// `db.table` on the destination, under the name readers use (not a shadow's).
    pub dest_table: String,
    pub chunks: u32,
    pub estimated_rows: u64,
    /// An incremental window, upserted (counted, not checksummed against the whole range).
    pub upsert: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// A Chunk step's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkPayload {
    /// `db.table` on the source (the per-table counters' name).
    pub table: String,
    pub shape: TableShape,
    pub chunk: Chunk,
    pub unique_checks_off: bool,
}

/// The Finalize step's input: what the policy's ending and a failed run's clean-up need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FinalizePayload {
    pub tables: Vec<TableEntry>,
    pub finish: Finish,
}

/// What each policy's ending needs beyond the schema plan (which the Finalize step reads from
/// the source again, so no step record has to hold DDL).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub(crate) enum Finish {
    Replica {
        replicas: Vec<String>,
    },
    Resync {
        /// Shadow and retired tables, `(database, table)`: what a failed run drops.
        working: Vec<(String, String)>,
    },
    Incremental {
        /// Tables on their first cycle, `(database, table)` on the destination.
        firsts: Vec<(String, String)>,
        everything_first: bool,
        /// Destination triggers set aside for the load.
        triggers: Vec<SavedTrigger>,
        /// Watermarks to advance once every chunk committed: `(db.table, high)`.
        marks: Vec<(String, String)>,
    },
}

impl Finish {
    /// What the clean-up of a run would remove or put back, as a user reads it: what is left
    /// when the clean-up is abandoned.
    pub(crate) fn left_behind(&self) -> Vec<String> {
        match self {
            Finish::Replica { replicas } => replicas
                .iter()
                .map(|r| format!("the half-made replica database `{r}` on the destination"))
                .collect(),
            Finish::Resync { working } => working
                .iter()
                .map(|(db, t)| format!("the working table `{db}`.`{t}` on the destination"))
                .collect(),
            Finish::Incremental { triggers, .. } => triggers
                .iter()
                .map(|t| {
                    format!(
                        "the trigger `{}`.`{}`, set aside on the destination and not restored",
                        t.database, t.name
                    )
                })
                .collect(),
        }
    }
}

/// What the Schema step's policy part hands over.
pub(crate) struct Prepared {
    pub plans: Vec<EnginePlan>,
    pub tables: Vec<TableEntry>,
    pub finish: Finish,
}

/// A new, pending step record, expiring with its run.
pub(crate) fn step(
    run: &RunKey,
    expires_at: Option<Timestamp>,
    n: u32,
    kind: StepKind,
    payload: serde_json::Value,
) -> StepRecord {
    StepRecord {
        run: run.clone(),
        n,
        kind,
        status: StepStatus::Pending,
        lease_owner: None,
        lease_until: None,
        attempts: 0,
        rows: 0,
        bytes: 0,
        checksum: None,
        error: None,
        payload,
        started_at: None,
        finished_at: None,
        queued_at: None,
        expires_at,
        version: 1,
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<serde_json::Value, ServiceError> {
    serde_json::to_value(value).map_err(|e| {
        ServiceError::Store(StoreError::Backend {
            detail: format!("a step does not encode: {e}"),
            retryable: false,
        })
    })
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(step: &StepRecord) -> Result<T, ServiceError> {
    serde_json::from_value(step.payload.clone()).map_err(|e| {
        ServiceError::Store(StoreError::Backend {
            detail: format!(
                "step {} of run {} does not decode: {e}",
                step.n,
                step.run.time_key()
            ),
            retryable: false,
        })
    })
}

/// The Finalize step of a complete plan, if the plan is complete.
pub(crate) fn finalize_of(steps: &[StepRecord]) -> Option<&StepRecord> {
    steps.iter().find(|s| s.kind == StepKind::Finalize)
}

pub(crate) fn finalize_payload(step: &StepRecord) -> Result<FinalizePayload, ServiceError> {
    decode(step)
}

/// What a Chunk step records of its checksum (as JSON in the step's `checksum`): the source's
/// rows and sum, and whether the destination's side is still to be compared (by Finalize).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StepChecksum {
    pub rows: u64,
    pub sum: String,
    #[serde(default)]
    pub pending: bool,
}
