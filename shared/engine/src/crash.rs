//! A test hook: crash points. **Not a feature** — the fault suite uses it to kill the process at a
//! named point of a run, as abruptly as `kill -9`, and then checks that a restart finishes the run
//! exactly.
//!
//! `TIDEMARK_CRASH_AT=<point>[#<nth>]` (read once, at the first point reached) makes the process
//! call [`std::process::abort`] the `nth` time (default: the first) execution reaches `<point>`,
//! one of [`POINTS`]. Nothing is flushed, no destructor runs, no transaction is ended: the servers
//! see the connections drop. Unset (always, outside tests), a point costs one initialised-`OnceLock`
//! read and a branch.
//!
//! The points (where each sits is documented at its call):
//!
//! | point | where |
//! |---|---|
//! | `chunk.mid_load` | a chunk's LOAD: some rows sent, before the load ends and commits |
//! | `chunk.before_commit` | a chunk loaded and verified, before its COMMIT |
//! | `chunk.committed` | a chunk committed, before its step is recorded done |
//! | `chunk.recorded` | a chunk's step recorded done, before the run's counters are added to |
//! | `schema.pre_data` | the Schema step: the policy's pre-data DDL applied, before the chunks are planned |
//! | `schema.planned` | the Schema step: chunks planned, before the steps are written |
//! | `schema.steps_written` | the Schema step: every step written (Finalize last), before the step is marked done |
//! | `finalize.claimed` | any policy's Finalize: every chunk done, the step claimed, before the policy's ending (and its deferred checks) |
//! | `resync.shadow_indexes` | resync's Finalize: the shadows' secondary indexes added, before the swap |
//! | `resync.swapped` | resync's Finalize: right after the swap, before the retired tables are dropped |
//! | `resync.retired_dropped` | resync's Finalize: retired tables dropped, before foreign keys, views, routines, triggers |
//! | `replica.post_data` | multi-replica's Finalize: post-data DDL applied, before `keep_replicas` drops |
//! | `incremental.triggers_set_aside` | incremental Schema step: destination triggers set aside, before the chunks are planned |
//! | `incremental.triggers_restored` | incremental Finalize: triggers restored, before the post-data DDL and the watermarks |
//! | `incremental.data_committed` | incremental Finalize: every chunk committed and post-data applied, before the watermarks move |
//! | `finalize.before_done` | any policy's Finalize: the ending done, before the step is recorded done |
//! | `step.before_ack` | the local consumer: a step handled and what follows it sent, before its message is acknowledged |
//! | `sweep.resend` | the sweep: a step whose message was lost marked queued again, before its message is sent |

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The variable that arms a crash point.
pub const VARIABLE: &str = "TIDEMARK_CRASH_AT";

/// Every crash point, in the order a run reaches them.
pub const POINTS: &[&str] = &[
    "schema.pre_data",
    "incremental.triggers_set_aside",
    "schema.planned",
    "schema.steps_written",
    "chunk.mid_load",
    "chunk.before_commit",
    "chunk.committed",
    "chunk.recorded",
    "finalize.claimed",
    "resync.shadow_indexes",
    "resync.swapped",
    "resync.retired_dropped",
    "replica.post_data",
    "incremental.triggers_restored",
    "incremental.data_committed",
    "finalize.before_done",
    "run.ended",
    "step.before_ack",
    "sweep.resend",
];

struct Armed {
    point: String,
    nth: u32,
    hits: AtomicU32,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let raw = std::env::var(VARIABLE).ok()?;
            let raw = raw.trim();
            if raw.is_empty() {
                return None;
            }
            let (point, nth) = match raw.split_once('#') {
                Some((p, n)) => (p, n.trim().parse().unwrap_or(1)),
                None => (raw, 1),
            };
            if !POINTS.contains(&point) {
                eprintln!(
                    "tidemark: {VARIABLE}={raw}: no such crash point (one of: {})",
                    POINTS.join(", ")
                );
            }
            Some(Armed {
                point: point.to_owned(),
                nth: nth.max(1),
                hits: AtomicU32::new(0),
            })
        })
        .as_ref()
}

/// A crash point: aborts the process here when [`VARIABLE`] names `point` and this is its
/// `nth` hit. Does nothing otherwise.
#[inline]
pub fn point(point: &'static str) {
    debug_assert!(POINTS.contains(&point), "crash point {point} is not listed");
    let Some(armed) = armed() else { return };
    if armed.point != point {
        return;
    }
    if armed.hits.fetch_add(1, Ordering::SeqCst) + 1 == armed.nth {
        eprintln!("tidemark: crash point {point} reached ({VARIABLE}): aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_point_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for p in super::POINTS {
            assert!(seen.insert(p), "{p} is listed twice");
            assert!(p.contains('.'), "{p}");
        }
        assert!(super::POINTS.len() >= 10);
    }
}
