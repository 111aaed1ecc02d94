//! Which chunks share a Chunk step. A table of several chunks gets a step per chunk, as always;
//! tables copied as one chunk share steps when there are many of them, so that an application
//! schema of hundreds of small tables pays a step's fixed costs (its claim, its records, its
//! message and its dispatch: a dozen state-store calls, each a network round trip on AWS) a few
//! dozen times, not once per table.
//!
//! The bounds: each worker still gets [`STEPS_PER_WORKER`] steps or more, so the steps' ends even
//! out across the workers (below that, no table shares a step); a step carries at most
//! [`MAX_PARTS`] tables, at most one chunk's worth of bytes (`channel.chunk_mb`: a step's work
//! stays as long as a chunk's, well inside an invocation) and at most [`MAX_PAYLOAD_BYTES`] of
//! payload (the step record stays far from DynamoDB's 400 KB item limit).

use tidemark_engine::copy::{TablePlan, by_size};

use crate::error::ServiceError;
use crate::payload::{ChunkPayload, ChunkWork, TableEntry, encode};

/// Below this many steps per worker, every one-chunk table keeps a step of its own.
pub(crate) const STEPS_PER_WORKER: usize = 16;
/// The most tables one step copies.
pub(crate) const MAX_PARTS: usize = 64;
/// The most payload one step carries, as JSON.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// One Chunk step's work and its estimated rows (steps run largest first).
pub(crate) struct StepWork {
    pub work: ChunkWork,
    pub estimated_rows: u64,
}

/// The run's Chunk steps, largest first.
pub(crate) fn chunk_steps(
    plans: &[TablePlan],
    tables: &[TableEntry],
    workers: u32,
    chunk_bytes: u64,
) -> Result<Vec<StepWork>, ServiceError> {
    let mut singles: Vec<(ChunkPayload, u64)> = Vec::new();
    let mut steps: Vec<StepWork> = Vec::new();
    for (plan, entry) in plans.iter().zip(tables) {
        for chunk in &plan.chunks {
            let payload = ChunkPayload {
                table: entry.table.clone(),
                shape: plan.shape.clone(),
                chunk: chunk.clone(),
            };
            let shareable = plan.chunks.len() == 1
                && chunk.window.is_none()
                && plan.estimated_bytes <= chunk_bytes;
            if shareable {
                singles.push((payload, plan.estimated_bytes));
            } else {
                steps.push(StepWork {
                    estimated_rows: chunk.estimated_rows,
                    work: ChunkWork::One(Box::new(payload)),
                });
            }
        }
    }
    let workers = usize::try_from(workers.max(1)).unwrap_or(1);
    let per_step = (singles.len() / (workers * STEPS_PER_WORKER)).clamp(1, MAX_PARTS);
    if per_step == 1 {
        steps.extend(singles.into_iter().map(|(payload, _)| StepWork {
            estimated_rows: payload.chunk.estimated_rows,
            work: ChunkWork::One(Box::new(payload)),
        }));
    } else {
        by_size(&mut singles, |(_, bytes)| *bytes);
        let mut batch: Vec<ChunkPayload> = Vec::new();
        let (mut bytes, mut size) = (0u64, 0usize);
        for (payload, estimated) in singles {
            let json = encode(&payload)?.to_string().len();
            let full = batch.len() >= per_step
                || bytes.saturating_add(estimated) > chunk_bytes
                || size + json > MAX_PAYLOAD_BYTES;
            if full && !batch.is_empty() {
                steps.push(batched(std::mem::take(&mut batch)));
                (bytes, size) = (0, 0);
            }
            bytes = bytes.saturating_add(estimated);
            size += json;
            batch.push(payload);
        }
        if !batch.is_empty() {
            steps.push(batched(batch));
        }
    }
    // Steps run in number order: the largest first, the short ones at the end.
    by_size(&mut steps, |s| s.estimated_rows);
    Ok(steps)
}

fn batched(mut batch: Vec<ChunkPayload>) -> StepWork {
    let estimated_rows = batch.iter().map(|p| p.chunk.estimated_rows).sum();
    let work = match (batch.len(), batch.pop()) {
        (1, Some(one)) => ChunkWork::One(Box::new(one)),
        (_, last) => {
            batch.extend(last);
            ChunkWork::Batch { batch }
        }
    };
    StepWork {
        work,
        estimated_rows,
    }
}

#[cfg(test)]
mod tests {
    use tidemark_engine::copy::{Chunk, KeyRange, TableCopySpec, TableShape};

    use super::*;

    /// A table of `chunks` chunks of `rows` rows each, `bytes` in all.
    fn table(name: &str, chunks: u32, rows: u64, bytes: u64) -> (TablePlan, TableEntry) {
        let spec = TableCopySpec::same_names("d", name);
        let plan = TablePlan {
            shape: TableShape {
                spec,
                columns: Vec::new(),
                key: None,
                key_warning: None,
                auto_increment: false,
            },
            chunks: (0..chunks)
                .map(|index| Chunk {
                    source_db: "d".into(),
                    source_table: name.into(),
                    index,
                    range: KeyRange::default(),
                    estimated_rows: rows,
                    window: None,
                })
                .collect(),
            dest_was_empty: true,
            estimated_bytes: bytes,
        };
        let entry = TableEntry {
            table: format!("d.{name}"),
            dest_table: format!("d.{name}"),
            chunks,
            estimated_rows: rows * u64::from(chunks),
            upsert: false,
            warning: None,
            indexes_inline: chunks == 1,
        };
        (plan, entry)
    }

    fn steps_of(tables: &[(TablePlan, TableEntry)], workers: u32, chunk: u64) -> Vec<Vec<String>> {
        let (plans, entries): (Vec<_>, Vec<_>) = tables.iter().cloned().unzip();
        chunk_steps(&plans, &entries, workers, chunk)
            .expect("steps")
            .into_iter()
            .map(|s| s.work.into_parts().into_iter().map(|p| p.table).collect())
            .collect()
    }

    #[test]
    fn few_small_tables_keep_a_step_each() {
        // 20 tables, one worker: fewer than 16 steps a worker would be left to share.
        let tables: Vec<_> = (0..20)
            .map(|i| table(&format!("t{i}"), 1, 200, 20_000))
            .collect();
        let steps = steps_of(&tables, 1, 64 << 20);
        assert_eq!(steps.len(), 20);
        assert!(steps.iter().all(|s| s.len() == 1));
    }

    #[test]
    fn many_small_tables_share_steps_and_every_table_is_in_exactly_one() {
        let mut tables: Vec<_> = (0..400)
            .map(|i| table(&format!("t{i}"), 1, 2000, 200_000))
            .collect();
        // A big table keeps a step per chunk.
        tables.push(table("big", 5, 100_000, 5 * (64 << 20)));
        let steps = steps_of(&tables, 2, 64 << 20);
        // 400 / (2 workers x 16) = 12 tables a step: 34 steps, and the big table's 5.
        assert_eq!(steps.len(), 34 + 5, "{steps:?}");
        assert!(steps.iter().all(|s| s.len() <= 12));
        let mut seen: Vec<&String> = steps.iter().flatten().collect();
        seen.sort();
        let before = seen.len();
        seen.dedup();
        assert_eq!((before, seen.len()), (405, 401));
        // Largest first: the big table's chunks lead.
        assert!(steps[..5].iter().all(|s| s == &vec!["d.big".to_owned()]));
    }

    #[test]
    fn a_step_carries_at_most_a_chunks_worth_of_bytes() {
        // 1,000 tables of 10 MB with 64 MB chunks: 6 tables a step at most.
        let tables: Vec<_> = (0..1000)
            .map(|i| table(&format!("t{i}"), 1, 1000, 10 << 20))
            .collect();
        let steps = steps_of(&tables, 2, 64 << 20);
        assert!(steps.iter().all(|s| s.len() <= 6), "{:?}", steps[0]);
        assert_eq!(steps.iter().map(Vec::len).sum::<usize>(), 1000);
    }
}
