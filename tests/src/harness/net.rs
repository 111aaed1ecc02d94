//! Endpoints that fail on purpose, all on loopback: nothing here sends traffic off this machine.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    port
}

/// Accepts TCP connections and never says a word: "a host that does not answer", on loopback.
pub struct SilentListener {
    pub addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentListener {
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // Hold the connection open, unanswered, for as long as the listener lives.
                if let Ok(mut streams) = keep.lock() {
                    streams.push(stream);
                }
            }
        });
        SilentListener { addr, held }
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.held.lock().map(|s| s.len()).unwrap_or(0)
    }
}
