//! A session taken from a copy pool, and how long each of a pool's sessions has been idle.
//!
//! mysql_async's pool checks a session it hands out only for a socket the server closed (one it
//! can read the close from). A session that a NAT, a proxy or the server dropped while this
//! process was not looking — a warm Lambda container's, frozen between invocations — still
//! looks open, and its next statement fails (or waits for TCP to give up). So a session idle
//! longer than a few seconds is pinged before it is handed out, and replaced if the ping fails.
//! mysql_async keeps its own idle clock private, so [`IdleClock`] times the sessions here:
//! from when a [`Session`] goes back to the pool to when the pool hands it out again.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::Conn;

/// When each session of one pool went back to it, by connection id (the server's, unique among
/// its open sessions).
#[derive(Debug, Default)]
pub(crate) struct IdleClock {
    since: Mutex<HashMap<u32, Instant>>,
    /// Entries older than this are forgotten: the pool has closed those sessions by then.
    forget_after: Duration,
}

impl IdleClock {
    pub(crate) fn new(forget_after: Duration) -> IdleClock {
        IdleClock {
            since: Mutex::new(HashMap::new()),
            forget_after,
        }
    }

    /// Session `id` went back to the pool now.
    fn returned(&self, id: u32) {
        let Ok(mut since) = self.since.lock() else {
            return;
        };
        let now = Instant::now();
        let forget_after = self.forget_after;
        since.retain(|_, at| now.duration_since(*at) <= forget_after);
        since.insert(id, now);
    }

    /// How long session `id` has been idle in the pool; `None` for a session never handed out.
    pub(crate) fn idle_for(&self, id: u32) -> Option<Duration> {
        let at = self.since.lock().ok()?.remove(&id)?;
        Some(at.elapsed())
    }
}

/// A configured session of a copy pool: a [`Conn`] (it dereferences to one) that notes when it
/// goes back to its pool, on drop.
pub struct Session {
    conn: Option<Conn>,
    clock: Arc<IdleClock>,
}

impl Session {
    pub(crate) fn new(conn: Conn, clock: &Arc<IdleClock>) -> Session {
        Session {
            conn: Some(conn),
            clock: Arc::clone(clock),
        }
    }
}

impl Deref for Session {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        // Only `drop` takes the session out.
        self.conn.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.clock.returned(conn.id());
            // Back to the pool (mysql_async's own drop).
            drop(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_idle_from_its_return_and_forgotten_once_taken_or_old() {
        let clock = IdleClock::new(Duration::from_millis(50));
        assert_eq!(clock.idle_for(7), None, "never handed out");
        clock.returned(7);
        std::thread::sleep(Duration::from_millis(5));
        let idle = clock.idle_for(7).expect("returned");
        assert!(idle >= Duration::from_millis(5), "{idle:?}");
        assert_eq!(clock.idle_for(7), None, "taken again: not idle");
        clock.returned(8);
        std::thread::sleep(Duration::from_millis(60));
        clock.returned(9);
        assert_eq!(clock.idle_for(8), None, "closed by the pool long ago");
        assert!(clock.idle_for(9).is_some());
    }
}
