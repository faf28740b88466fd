//! `IoWatchdog` on real sockets on loopback, on the real clock (the point is
//! a real connection that goes quiet): a server sends 1 MiB and then stops
//! sending, keeping the connection open.

use std::time::Duration;

use hangfree::watchdog::{IoWatchdog, Limits, StallKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;

#[path = "watchdog/common.rs"]
mod common;
use common::{MS, SECOND, stall_of};

const MIB: usize = 1024 * 1024;
const IDLE: Duration = Duration::from_millis(300);

#[tokio::test]
async fn a_silent_server_is_detected_in_time_and_sees_the_connection_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.write_all(&vec![b'r'; MIB]).await.unwrap();
        socket.flush().await.unwrap();
        // Keep the connection open and wait for the client to hang up.
        let outcome = socket.read(&mut [0; 1]).await;
        let _ = closed_tx.send((outcome.map_err(|e| e.kind()), Instant::now()));
    });

    let socket = TcpStream::connect(address).await.unwrap();
    let mut client = IoWatchdog::new(socket, Limits::new().idle(IDLE));
    let mut buf = vec![0; 64 * 1024];
    let mut received = 0;
    let mut last_byte = Instant::now();
    let err = loop {
        match client.read(&mut buf).await {
            Ok(0) => panic!("a stalled connection must never look like end of file"),
            Ok(n) => {
                received += n;
                last_byte = Instant::now();
            }
            Err(err) => break err,
        }
    };
    let detected = Instant::now() - last_byte;
    assert_eq!(received, MIB);
    assert!(
        detected >= IDLE && detected <= 800 * MS,
        "stall detected {detected:?} after the last byte"
    );
    let stall = stall_of(&err);
    assert_eq!(stall.kind(), StallKind::Idle);
    assert_eq!(stall.progress().count(), MIB as u64);

    // The watchdog dropped the socket when it reported the stall (the
    // client value is still alive here), so the server sees the close.
    let (outcome, seen_at) = tokio::time::timeout(5 * SECOND, closed_rx)
        .await
        .expect("the server saw the connection closed")
        .unwrap();
    assert!(matches!(outcome, Ok(0) | Err(_)), "{outcome:?}");
    assert!(seen_at >= last_byte + IDLE);
    let err = client.read(&mut buf).await.unwrap_err();
    assert_eq!(stall_of(&err).kind(), StallKind::Idle);
}
