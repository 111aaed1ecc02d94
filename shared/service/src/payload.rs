//! What steps carry: the Schema step's plan written as typed payloads (a chunk's table, shape
//! and key range; Finalize's tables and the policy's clean-up plan) and a chunk's checksum, with
//! the step records they are written into. A leaf: the steps, the policies, the checks and the
//! driver all read it; it reads none of them.

use base64::Engine;
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
    /// Created with its secondary indexes (a one-chunk table): Finalize adds none. Absent
    /// (false) in plans of earlier versions, whose Finalize adds them all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub indexes_inline: bool,
}

/// A Chunk step's input. Payloads of earlier versions also carry `unique_checks_off` (MariaDB's
/// bulk path for a one-chunk table, dropped: it cost the destination about twice the CPU for the
/// same time); it is ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkPayload {
    /// `db.table` on the source (the per-table counters' name).
    pub table: String,
    pub shape: TableShape,
    pub chunk: Chunk,
}

/// What a Chunk step copies: one chunk, or several small tables' chunks one after the other
/// (`{"batch": [..]}`), so the fixed costs of a step — its claim, its records, its message, its
/// dispatch — are paid once for all of them. Each part keeps its own counters, checksum and
/// errors, which name its table; a retry of the step copies only the parts not recorded done.
/// A one-chunk step's payload is the chunk's own, as earlier versions wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum ChunkWork {
    Batch { batch: Vec<ChunkPayload> },
    One(Box<ChunkPayload>),
}

impl ChunkWork {
    /// The chunks, in payload order.
    pub(crate) fn into_parts(self) -> Vec<ChunkPayload> {
        match self {
            ChunkWork::Batch { batch } => batch,
            ChunkWork::One(one) => vec![*one],
        }
    }
}

/// Where a run's record keeps its per-table caps on chunks in flight (`channel.table_workers`):
/// the Schema step writes them, the driver's dispatch reads them.
pub(crate) const TABLE_CAPS: &str = "table_workers";

/// What a done Chunk step copied, per table: `(db.table, rows, bytes, checksum)` — the step's
/// own figures for a one-chunk step, each part's for a batch. Read from the JSON without
/// decoding the shapes (Finalize reads every step of a thousand-table run).
pub(crate) fn copied_parts(step: &StepRecord) -> Vec<(String, u64, u64, Option<String>)> {
    let table = |v: &serde_json::Value| v.get("table").and_then(|t| t.as_str()).map(str::to_owned);
    match step.payload.get("batch").and_then(|b| b.as_array()) {
        Some(batch) => step
            .parts
            .iter()
            .filter_map(|p| {
                let t = table(batch.get(usize::try_from(p.index).ok()?)?)?;
                Some((t, p.rows, p.bytes, p.checksum.clone()))
            })
            .collect(),
        None => table(&step.payload)
            .map(|t| (t, step.rows, step.bytes, step.checksum.clone()))
            .into_iter()
            .collect(),
    }
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
        parts: Vec::new(),
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
    match step.payload.get(DEFLATED).and_then(|d| d.as_str()) {
        Some(packed) => {
            let json = inflate(packed).map_err(|e| not_decoded(step, &e))?;
            serde_json::from_slice(&json).map_err(|e| not_decoded(step, &e.to_string()))
        }
        None => decode(step),
    }
}

/// The Finalize step's payload as stored: its JSON, or — above [`DEFLATE_ABOVE`] bytes, a run of
/// hundreds of tables — `{"deflated": "<base64 of the deflated JSON>"}`. Table names repeat
/// (source, destination, shadow, retired): a thousand tables of 64-character names store in
/// well under DynamoDB's 400 KB item limit.
pub(crate) fn encode_finalize(
    payload: &FinalizePayload,
) -> Result<serde_json::Value, ServiceError> {
    let value = encode(payload)?;
    let json = value.to_string();
    if json.len() <= DEFLATE_ABOVE {
        return Ok(value);
    }
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut deflater, json.as_bytes())
        .and_then(|()| deflater.finish())
        .map(|packed| serde_json::json!({ DEFLATED: BASE64.encode(packed) }))
        .map_err(|e| {
            ServiceError::Store(StoreError::Backend {
                detail: format!("the Finalize step's plan does not deflate: {e}"),
                retryable: false,
            })
        })
}

/// Payloads of more JSON than this are stored deflated.
pub(crate) const DEFLATE_ABOVE: usize = 32 * 1024;
const DEFLATED: &str = "deflated";
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn inflate(packed: &str) -> Result<Vec<u8>, String> {
    let bytes = BASE64.decode(packed).map_err(|e| e.to_string())?;
    let mut json = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::DeflateDecoder::new(bytes.as_slice()),
        &mut json,
    )
    .map_err(|e| e.to_string())?;
    Ok(json)
}

fn not_decoded(step: &StepRecord, e: &str) -> ServiceError {
    ServiceError::Store(StoreError::Backend {
        detail: format!(
            "step {} of run {} does not decode: {e}",
            step.n,
            step.run.time_key()
        ),
        retryable: false,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// DynamoDB's item limit is 400 KB; the adapter refuses a body past 380 KB (its margin for
    /// the key and the other attributes).
    const ITEM_BODY_LIMIT: usize = 380 * 1024;

    /// A name of `len` characters that deflate cannot shorten much (no repeats inside it).
    fn name(prefix: &str, i: usize, len: usize) -> String {
        let mut out = format!("{prefix}{i}_");
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(char::from(b'a' + (x % 26) as u8));
        }
        out
    }

    #[test]
    fn a_thousand_tables_plan_stays_far_under_dynamodbs_item_limit_and_reads_back() {
        let (db, dest) = (name("src_", 0, 64), name("dst_", 0, 64));
        let tables: Vec<TableEntry> = (0..1000)
            .map(|i| {
                let t = name("table_", i, 64);
                TableEntry {
                    table: format!("{db}.{t}"),
                    dest_table: format!("{dest}.{t}"),
                    chunks: 1,
                    estimated_rows: 500,
                    upsert: false,
                    warning: None,
                    indexes_inline: true,
                }
            })
            .collect();
        let working = (0..1000)
            .flat_map(|i| {
                let t = name("table_", i, 64);
                [
                    (
                        dest.clone(),
                        tidemark_core::policy::shadow_table_name(&dest, &t),
                    ),
                    (
                        dest.clone(),
                        tidemark_core::policy::retired_table_name(&dest, &t),
                    ),
                ]
            })
            .collect();
        let payload = FinalizePayload {
            tables,
            finish: Finish::Resync { working },
        };
        let raw = encode(&payload).expect("json").to_string().len();
        assert!(
            raw > ITEM_BODY_LIMIT,
            "the plain form ({raw} bytes) would not fit"
        );
        let run = RunKey {
            task_id: "t".into(),
            scheduled_time: jiff::Timestamp::UNIX_EPOCH,
        };
        let record = step(
            &run,
            None,
            1001,
            StepKind::Finalize,
            encode_finalize(&payload).expect("packed"),
        );
        let stored = serde_json::to_string(&record).expect("json").len();
        assert!(stored < ITEM_BODY_LIMIT / 2, "{stored} bytes stored");
        let back = finalize_payload(&record).expect("reads back");
        assert_eq!(back.tables, payload.tables);
        // A small plan is stored as it was before (earlier versions read it).
        let small = FinalizePayload {
            tables: payload.tables[..3].to_vec(),
            finish: Finish::Replica {
                replicas: vec!["r".into()],
            },
        };
        let value = encode_finalize(&small).expect("plain");
        assert!(value.get("tables").is_some() && value.get(DEFLATED).is_none());
    }

    #[test]
    fn a_step_of_several_tables_lists_the_parts_each_committed() {
        let run = RunKey {
            task_id: "t".into(),
            scheduled_time: jiff::Timestamp::UNIX_EPOCH,
        };
        let part = |table: &str| serde_json::json!({ "table": table, "shape": {}, "chunk": {}, "unique_checks_off": true });
        let mut batch = step(
            &run,
            None,
            1,
            StepKind::Chunk,
            serde_json::json!({ "batch": [part("d.a"), part("d.b"), part("d.c")] }),
        );
        batch.parts = vec![
            tidemark_core::state::PartDone {
                index: 0,
                rows: 5,
                bytes: 50,
                checksum: Some("x".into()),
            },
            tidemark_core::state::PartDone {
                index: 2,
                rows: 7,
                bytes: 70,
                checksum: None,
            },
        ];
        assert_eq!(
            copied_parts(&batch),
            [
                ("d.a".to_owned(), 5, 50, Some("x".to_owned())),
                ("d.c".to_owned(), 7, 70, None)
            ]
        );
        // A one-chunk step (every earlier version's) is its own part.
        let mut one = step(&run, None, 2, StepKind::Chunk, part("d.z"));
        (one.rows, one.bytes) = (3, 30);
        assert_eq!(copied_parts(&one), [("d.z".to_owned(), 3, 30, None)]);
    }
}
