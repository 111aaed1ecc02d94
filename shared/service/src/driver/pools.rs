//! Copy pools kept across the steps a process runs — the chunks of a local run, the messages of
//! a warm Lambda container — so that a chunk takes a session from its run's pools instead of
//! logging in again on both sides.
//!
//! A pool pair is keyed by both endpoints' place (server, user, TLS: [`ConnectOptions::
//! place_fingerprint`]) and credential: the secret's version when the password came from the
//! secret store, else the password itself, in memory ([`ConnectOptions::fingerprint`]). A
//! rotated secret gets new pools, never a session of the old password, and the pools of its
//! older version are closed (at once, or by the last step still holding them). A session idle
//! longer than the pools' `idle_ping` is pinged before use (see `tidemark_engine::copy`'s
//! `pooled`). Idle sessions close by themselves after a minute (the pools' own TTL); a pair
//! unused for [`IDLE_PAIR`] is closed when the next one is opened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidemark_engine::ConnectOptions;
use tidemark_engine::copy::{CopyEndpoints, DEFAULT_IDLE_PING};

use crate::context::Ctx;
use crate::error::ServiceError;

/// How long a pool pair nobody used stays open.
const IDLE_PAIR: Duration = Duration::from_secs(10 * 60);

/// One endpoint of a pair, as the pair is keyed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SideKey {
    place: u64,
    /// The secret the password was read from (its reference), if any.
    secret: Option<String>,
    credential: u64,
}

impl SideKey {
    fn of(options: &ConnectOptions) -> SideKey {
        SideKey {
            place: options.place_fingerprint(),
            secret: options.secret.as_ref().map(|s| s.reference.clone()),
            credential: options.fingerprint(),
        }
    }

    /// Whether this side logged in at `other`'s place with another version of its secret.
    fn rotated_in(&self, other: &SideKey) -> bool {
        self.place == other.place
            && self.secret.is_some()
            && self.secret == other.secret
            && self.credential != other.credential
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    source: SideKey,
    destination: SideKey,
    workers: u32,
}

impl Key {
    fn new(source: &ConnectOptions, destination: &ConnectOptions, workers: u32) -> Key {
        Key {
            source: SideKey::of(source),
            destination: SideKey::of(destination),
            workers: workers.max(1),
        }
    }

    /// Whether a side of this pair logged in with a version of a secret that a side of `newer`
    /// was read at since (one server can be both a source and a destination).
    fn superseded_by(&self, newer: &Key) -> bool {
        [&self.source, &self.destination]
            .into_iter()
            .any(|old| old.rotated_in(&newer.source) || old.rotated_in(&newer.destination))
    }
}

struct Entry {
    endpoints: Arc<CopyEndpoints>,
    last_used: Instant,
}

/// The copy pools of this process, by endpoints.
pub struct EndpointPools {
    pairs: Mutex<HashMap<Key, Entry>>,
    idle_ping: Duration,
}

impl Default for EndpointPools {
    fn default() -> Self {
        EndpointPools::new()
    }
}

impl EndpointPools {
    /// Pools whose sessions are pinged after [`DEFAULT_IDLE_PING`] idle.
    pub fn new() -> EndpointPools {
        EndpointPools::with_idle_ping(DEFAULT_IDLE_PING)
    }

    /// Pools whose sessions idle longer than `idle_ping` are pinged before use.
    pub fn with_idle_ping(idle_ping: Duration) -> EndpointPools {
        EndpointPools {
            pairs: Mutex::new(HashMap::new()),
            idle_ping,
        }
    }

    /// The pools between the run's two endpoints, sized for `workers` chunks at once: the ones
    /// this process has, or new ones (each side's login checked first, so an error names it).
    pub(crate) async fn get(
        &self,
        ctx: &Ctx<'_>,
        workers: u32,
    ) -> Result<Arc<CopyEndpoints>, ServiceError> {
        let key = Key::new(&ctx.source, &ctx.destination, workers);
        if let Some(endpoints) = self.lookup(&key) {
            return Ok(endpoints);
        }
        ctx.source_conn().await?.disconnect().await.ok();
        ctx.destination_conn().await?.disconnect().await.ok();
        let mut opened = CopyEndpoints::open(&ctx.source, &ctx.destination, workers).await?;
        opened.idle_ping = self.idle_ping;
        let (endpoints, idle) = self.insert(key, Arc::new(opened));
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

    /// Keeps `opened` (or the pair a concurrent caller kept first) and takes out, for the caller
    /// to close, the pairs of a secret's older version and the pairs idle for too long that
    /// nobody holds. A superseded pair a step still holds is closed when it lets go (its pools
    /// close their sessions when dropped).
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
                .entry(key.clone())
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
                    && (k.superseded_by(&key)
                        || (now.duration_since(e.last_used) > IDLE_PAIR
                            && Arc::strong_count(&e.endpoints) == 1))
            })
            .map(|(k, _)| k.clone())
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

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use tidemark_core::ports::SecretVersion;

    use super::*;

    fn options(port: u16, password: &str, secret: Option<(&str, &str)>) -> ConnectOptions {
        ConnectOptions::new("127.0.0.1", port, "dts", SecretString::from(password)).with_secret(
            secret.map(|(reference, version)| SecretVersion {
                reference: reference.into(),
                version: version.into(),
            }),
        )
    }

    #[test]
    fn a_pair_is_superseded_by_a_newer_version_of_its_own_secret_only() {
        let inline = options(2, "dest-pw", None);
        let v1 = Key::new(&options(1, "pw", Some(("arn:a", "v1"))), &inline, 4);
        let v2 = Key::new(&options(1, "pw-2", Some(("arn:a", "v2"))), &inline, 4);
        assert_ne!(v1, v2, "a new version is a new pair");
        assert!(v1.superseded_by(&v2) && v2.superseded_by(&v1));
        assert_eq!(
            v1,
            Key::new(&options(1, "pw", Some(("arn:a", "v1"))), &inline, 4),
            "the same version is the same pair"
        );
        // Another secret for the same user (another task's), another server, other workers of
        // the same version: pairs side by side.
        let other_secret = Key::new(&options(1, "pw", Some(("arn:b", "v9"))), &inline, 4);
        assert!(!v1.superseded_by(&other_secret));
        let other_place = Key::new(&options(3, "pw", Some(("arn:a", "v2"))), &inline, 4);
        assert!(!v1.superseded_by(&other_place));
        let wider = Key::new(&options(1, "pw", Some(("arn:a", "v1"))), &inline, 8);
        assert!(!v1.superseded_by(&wider));
        // Inline passwords: keyed by the password, never superseding one another.
        let changed = Key::new(
            &options(1, "pw", Some(("arn:a", "v1"))),
            &options(2, "dest-pw-2", None),
            4,
        );
        assert_ne!(v1, changed);
        assert!(!v1.superseded_by(&changed));
        // One server as both source and destination: a rotation on either side counts.
        let both = |version| {
            let side = options(1, "pw", Some(("arn:a", version)));
            Key::new(&side, &side, 1)
        };
        let mixed = Key::new(&inline, &options(1, "pw", Some(("arn:a", "v2"))), 1);
        assert!(both("v1").superseded_by(&mixed));
        assert!(!both("v2").superseded_by(&mixed));
    }
}
