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

/// A loopback TCP proxy to a server that can forget its connections the way a NAT (or a Lambda
/// container frozen while its server closed the session) does: after [`SeveringProxy::sever`]
/// every connection made before it is cut on the server's side while its client hears nothing,
/// until it sends something and gets a reset. Connections made after it are forwarded as usual.
/// It lives on the runtime of the test that starts it.
pub struct SeveringProxy {
    pub port: u16,
    state: Arc<ProxyState>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    generation: std::sync::atomic::AtomicU64,
    severed: tokio::sync::Notify,
}

impl SeveringProxy {
    /// A proxy on a free loopback port to `127.0.0.1:target`.
    pub async fn start(target: u16) -> SeveringProxy {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(ProxyState::default());
        let shared = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let born = shared.generation.load(std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(forward(client, target, born, Arc::clone(&shared)));
            }
        });
        SeveringProxy {
            port,
            state,
            accept,
        }
    }

    /// Cuts every connection made so far, silently for its client.
    pub fn sever(&self) {
        self.state
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.state.severed.notify_waiters();
    }
}

impl Drop for SeveringProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn forward(
    mut client: tokio::net::TcpStream,
    target: u16,
    born: u64,
    state: Arc<ProxyState>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut upstream) = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, target)).await
    else {
        return;
    };
    let (mut from_client, mut from_server) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        // Made before the generation is read, so a sever in between still wakes it.
        let severed = state.severed.notified();
        if state.generation.load(std::sync::atomic::Ordering::SeqCst) != born {
            break;
        }
        tokio::select! {
            read = client.read(&mut from_client) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if upstream.write_all(&from_client[..n]).await.is_err() { return },
            },
            read = upstream.read(&mut from_server) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if client.write_all(&from_server[..n]).await.is_err() { return },
            },
            () = severed => {}
        }
    }
    // The server sees its client go; the client hears nothing until it speaks, then a reset.
    drop(upstream);
    let _ = client.read(&mut from_client).await;
    let _ = client.set_zero_linger();
}
