//! A loopback TCP proxy that can go silent: after `freeze_after` bytes have gone from the
//! server to the client, it stops forwarding in both directions but keeps both sockets
//! open. That is the half-open connection a dead replica, a NAT timeout or a dropped route
//! leaves behind: neither side is told anything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What a test can see of the proxy.
#[derive(Debug, Default)]
pub struct ProxyState {
    /// Bytes forwarded from the server to the client so far.
    pub to_client: AtomicU64,
    /// Set when the proxy went silent.
    pub frozen: AtomicBool,
    /// Notified when the proxy goes silent.
    pub frozen_now: Notify,
    /// Set when the client side of a proxied connection was closed by the client.
    pub client_closed: AtomicBool,
    /// When the proxy went silent (after forwarding its last bytes to the client).
    pub frozen_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Starts the proxy in front of `server`; returns the address clients connect to.
pub async fn start(server: SocketAddr, freeze_after: u64) -> (SocketAddr, Arc<ProxyState>) {
    assert!(
        server.ip().is_loopback(),
        "the proxy only talks to loopback"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(ProxyState::default());
    let shared = state.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(server).await.unwrap();
            tokio::spawn(pipe(client, server, shared.clone(), freeze_after));
        }
    });
    (addr, state)
}

async fn pipe(client: TcpStream, server: TcpStream, state: Arc<ProxyState>, freeze_after: u64) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();

    let upstream = {
        let state = state.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        state.client_closed.store(true, Ordering::SeqCst);
                        return;
                    }
                    Ok(n) => n,
                };
                if state.frozen.load(Ordering::SeqCst) {
                    // Silent: swallow what the client says, forward nothing.
                    continue;
                }
                if server_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    };
    let downstream = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let sent = state.to_client.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
            if sent >= freeze_after {
                *state.frozen_at.lock().unwrap() = Some(std::time::Instant::now());
                state.frozen.store(true, Ordering::SeqCst);
                state.frozen_now.notify_waiters();
                // Keep the sockets open, read nothing more from the server.
                std::future::pending::<()>().await;
            }
        }
    };
    // The upstream half keeps running after a freeze so that a client close is seen.
    tokio::join!(upstream, downstream);
}
