//! Copy pools kept across the steps a process runs — the chunks of a local run, the messages of
//! a warm Lambda container — so that a chunk takes a session from its run's pools instead of
//! logging in again on both sides.
//!
//! A pool pair is keyed by both endpoints' [`ConnectOptions::fingerprint`] (server, user,
//! password, TLS): a rotated secret gets new pools, never a session of the old password. Idle
//! sessions close by themselves after a minute (the pools' own TTL); a pair unused for
//! [`IDLE_PAIR`] is closed when the next one is opened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidemark_engine::ConnectOptions;
use tidemark_engine::copy::CopyEndpoints;

use crate::context::Ctx;
use crate::error::ServiceError;

/// How long a pool pair nobody used stays open.
const IDLE_PAIR: Duration = Duration::from_secs(10 * 60);

type Key = (u64, u64, u32);

struct Entry {
    endpoints: Arc<CopyEndpoints>,
    last_used: Instant,
}

/// The copy pools of this process, by endpoints.
#[derive(Default)]
pub struct EndpointPools {
    pairs: Mutex<HashMap<Key, Entry>>,
}

impl EndpointPools {
    pub fn new() -> EndpointPools {
        EndpointPools::default()
    }

    /// The pools between the run's two endpoints, sized for `workers` chunks at once: the ones
    /// this process has, or new ones (each side's login checked first, so an error names it).
    pub(crate) async fn get(
        &self,
        ctx: &Ctx<'_>,
        workers: u32,
    ) -> Result<Arc<CopyEndpoints>, ServiceError> {
        let key = key(&ctx.source, &ctx.destination, workers);
        if let Some(endpoints) = self.lookup(&key) {
            return Ok(endpoints);
        }
        ctx.source_conn().await?.disconnect().await.ok();
        ctx.destination_conn().await?.disconnect().await.ok();
        let opened = Arc::new(CopyEndpoints::open(&ctx.source, &ctx.destination, workers).await?);
        let (endpoints, idle) = self.insert(key, opened);
        for pair in idle {
            pair.disconnect().await;
        }
        Ok(endpoints)
    }

    fn lookup(&self, key: &Key) -> Option<Arc<CopyEndpoints>> {
        let mut pairs = self.pairs.lock().ok()?;
        let entry = pairs.get_mut(key)?;
        entry.last_used = Instant::now();
        Some(Arc::clone(&entry.endpoints))
    }

    /// Keeps `opened` (or the pair a concurrent caller kept first) and takes out the pairs idle
    /// for too long that nobody holds, for the caller to close.
    fn insert(
        &self,
        key: Key,
        opened: Arc<CopyEndpoints>,
    ) -> (Arc<CopyEndpoints>, Vec<CopyEndpoints>) {
        let Ok(mut pairs) = self.pairs.lock() else {
            return (opened, Vec::new());
        };
        let now = Instant::now();
        let kept = Arc::clone(
            &pairs
                .entry(key)
                .or_insert_with(|| Entry {
                    endpoints: Arc::clone(&opened),
                    last_used: now,
                })
                .endpoints,
        );
        let stale: Vec<Key> = pairs
            .iter()
            .filter(|(k, e)| {
                **k != key
                    && now.duration_since(e.last_used) > IDLE_PAIR
                    && Arc::strong_count(&e.endpoints) == 1
            })
            .map(|(k, _)| *k)
            .collect();
        let mut idle = Vec::new();
        for k in stale {
            if let Some(entry) = pairs.remove(&k)
                && let Ok(endpoints) = Arc::try_unwrap(entry.endpoints)
            {
                idle.push(endpoints);
            }
        }
        drop(pairs);
        if !Arc::ptr_eq(&kept, &opened)
            && let Ok(extra) = Arc::try_unwrap(opened)
        {
            // A concurrent caller opened the same pair first: ours is closed unused.
            idle.push(extra);
        }
        (kept, idle)
    }

    /// Closes every pool (the end of a local run).
    pub async fn close(&self) {
        let pairs: Vec<Entry> = match self.pairs.lock() {
            Ok(mut pairs) => pairs.drain().map(|(_, e)| e).collect(),
            Err(_) => Vec::new(),
        };
        for entry in pairs {
            if let Ok(endpoints) = Arc::try_unwrap(entry.endpoints) {
                endpoints.disconnect().await;
            }
        }
    }
}

fn key(source: &ConnectOptions, destination: &ConnectOptions, workers: u32) -> Key {
    (
        source.fingerprint(),
        destination.fingerprint(),
        workers.max(1),
    )
}
