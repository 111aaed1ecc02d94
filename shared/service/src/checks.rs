//! Chunk checks that Finalize runs: where nothing reads the loaded tables before the run ends
//! (resync's shadows, a new replica), a chunk commits once its rows are stored, records the
//! source's side of its checksum on its step, and Finalize compares every chunk's destination
//! side while the indexes are built (a MariaDB index build keeps one core busy; the checks use
//! another). Incremental chunks write live tables and compare before they commit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tidemark_core::Policy;
use tidemark_core::ports::StoreError;
use tidemark_core::state::{StepKind, StepStatus};
use tidemark_engine::copy::{Checksum, CopyEndpoints, check_committed};

use crate::context::Ctx;
use crate::error::ServiceError;
use crate::payload::{ChunkPayload, ChunkWork, StepChecksum, decode};

/// Whether a policy's chunks commit before the destination's side of their checksum is
/// compared, leaving the comparison to Finalize, which runs it while the tables' secondary
/// indexes are built (a MariaDB index build keeps one core busy; the checks use the others).
/// Resync loads shadow tables and multi-replica new databases: nothing reads either before
/// Finalize, which compares every chunk before the swap (or before the replica is complete), and
/// a mismatch fails the run, whose clean-up drops them. Incremental writes the live tables: its
/// chunks compare before they commit.
pub(crate) fn defers_check(policy: &Policy) -> bool {
    !matches!(policy, Policy::Incremental(_))
}

/// Finalize's half of a deferred check (see [`defers_check`]): every done chunk whose
/// destination side is still to be compared is checksummed on the destination, as committed, and
/// compared with the source's side its step recorded. One session checks while `builds` (the
/// index builds this runs beside) is unfinished — a build keeps a core busy, and more checks
/// would only slow it down (measured: Finalize 0.68 s with one, 0.77-0.86 s with four, on the
/// 2-core benchmark) — then `channel.workers` sessions take what is left. Reads only, so a
/// Finalize run again checks again. A mismatch fails the step, and with it the run.
pub(crate) async fn check_deferred(
    ctx: &Ctx<'_>,
    builds: impl std::future::Future<Output = ()>,
) -> Result<(), ServiceError> {
    let steps = ctx.store.list_steps(ctx.key).await?;
    let mut pending: Vec<(ChunkPayload, Checksum)> = Vec::new();
    for s in steps
        .iter()
        .filter(|s| s.kind == StepKind::Chunk && s.status == StepStatus::Done)
    {
        let parts = decode::<ChunkWork>(s)?.into_parts();
        if s.parts.is_empty() {
            // One chunk: its checksum is the step's own.
            if let (Some(source), Some(part)) = (
                pending_check(s.checksum.as_deref()),
                parts.into_iter().next(),
            ) {
                pending.push((part, source));
            }
            continue;
        }
        for done in &s.parts {
            let part = usize::try_from(done.index).ok().and_then(|i| parts.get(i));
            if let (Some(source), Some(part)) = (pending_check(done.checksum.as_deref()), part) {
                pending.push((part.clone(), source));
            }
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let workers = ctx.spec().channel.workers.max(1);
    let endpoints = CopyEndpoints::open(&ctx.source, &ctx.destination, workers).await?;
    let queue = Mutex::new(pending.iter());
    let failed = AtomicBool::new(false);
    let lane = || async {
        let mut conn = endpoints.destination_conn().await?;
        loop {
            if failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            let next = queue.lock().map_err(|_| poisoned())?.next();
            let Some((payload, source)) = next else {
                return Ok(());
            };
            let form = endpoints.destination_digest;
            if let Err(e) =
                check_committed(&mut conn, &payload.shape, &payload.chunk, form, source).await
            {
                failed.store(true, Ordering::Relaxed);
                return Err(ServiceError::from(e));
            }
        }
    };
    let first = lane();
    let rest = async {
        builds.await;
        let lanes: Vec<_> = (1..workers).map(|_| lane()).collect();
        crate::bounded::run_at_most(lanes.len(), lanes).await
    };
    let (first, rest) = tokio::join!(first, rest);
    endpoints.disconnect().await;
    first.and(rest)?;
    tracing::debug!(task = %ctx.key.task_id, run = %ctx.key.time_key(), chunks = pending.len(), ms = started.elapsed().as_millis() as u64, "every chunk's deferred check matched");
    Ok(())
}

/// The source's side of a done chunk's checksum (as its step recorded it) when its destination
/// side is still to be compared. A record that does not parse (an older format) was compared
/// before its commit.
fn pending_check(checksum: Option<&str>) -> Option<Checksum> {
    let recorded: StepChecksum = serde_json::from_str(checksum?).ok()?;
    recorded.pending.then_some(Checksum {
        rows: recorded.rows,
        sum: recorded.sum,
    })
}

fn poisoned() -> ServiceError {
    ServiceError::Store(StoreError::Backend {
        detail: "a check queue's lock was poisoned".into(),
        retryable: false,
    })
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use tidemark_core::state::{RunKey, StepRecord};

    use super::*;
    use crate::payload::step;

    fn done_chunk(checksum: Option<&str>) -> StepRecord {
        let run = RunKey {
            task_id: "t".into(),
            scheduled_time: Timestamp::UNIX_EPOCH,
        };
        let mut s = step(&run, None, 1, StepKind::Chunk, serde_json::json!({}));
        s.status = StepStatus::Done;
        s.checksum = checksum.map(str::to_owned);
        s
    }

    #[test]
    fn only_a_recorded_pending_check_is_left_to_finalize() {
        let pending = StepChecksum {
            rows: 3,
            sum: "12345678901".into(),
            pending: true,
        };
        let text = serde_json::to_string(&pending).expect("json");
        assert_eq!(
            pending_check(done_chunk(Some(&text)).checksum.as_deref()),
            Some(Checksum {
                rows: 3,
                sum: "12345678901".into()
            })
        );
        let compared = serde_json::to_string(&StepChecksum {
            pending: false,
            ..pending
        })
        .expect("json");
        assert_eq!(
            pending_check(done_chunk(Some(&compared)).checksum.as_deref()),
            None
        );
        // Verification off, and the format of records written before checks could be deferred
        // (compared before their commit).
        assert_eq!(pending_check(done_chunk(None).checksum.as_deref()), None);
        assert_eq!(
            pending_check(
                done_chunk(Some(r#"Checksum { rows: 3, sum: "1" }"#))
                    .checksum
                    .as_deref()
            ),
            None
        );
        // Written without the flag: compared before its commit.
        assert_eq!(
            pending_check(
                done_chunk(Some(r#"{"rows":3,"sum":"1"}"#))
                    .checksum
                    .as_deref()
            ),
            None
        );
    }

    #[test]
    fn only_incremental_chunks_compare_before_their_commit() {
        let spec = |policy: serde_json::Value| -> Policy {
            serde_json::from_value(policy).expect("a policy")
        };
        assert!(defers_check(&spec(serde_json::json!({ "mode": "resync" }))));
        assert!(defers_check(&spec(
            serde_json::json!({ "mode": "multi_replica", "keep_replicas": 2 })
        )));
        assert!(!defers_check(&spec(
            serde_json::json!({ "mode": "incremental" })
        )));
    }
}
