//! Shared set-up for the tests against a real PostgreSQL server.

use std::net::SocketAddr;
use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls};

/// The server from `DATABASE_URL`, or `None` (after saying so) when it is not set.
/// In CI (`CI` set) a missing database is a failure, not a skip: the tests that prove
/// the crate works against a real server must not silently stop running.
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: DATABASE_URL is not set, and CI is: .ci/services should have started PostgreSQL"
            );
            eprintln!(
                "{test}: skipped, DATABASE_URL is not set (run .ci/services to start a server)"
            );
            None
        }
    }
}

/// The server's loopback address, from the URL.
pub fn server_addr(url: &str) -> SocketAddr {
    let config: Config = url.parse().expect("DATABASE_URL parses");
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        #[allow(unreachable_patterns)]
        other => panic!("DATABASE_URL must name a TCP host, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], port)));
    assert!(
        addr.ip().is_loopback(),
        "tests only talk to a loopback server"
    );
    addr
}

/// A client connected through `via` (e.g. the freezing proxy) with the URL's credentials.
pub async fn connect_via(url: &str, via: SocketAddr) -> Client {
    let config: Config = url.parse().unwrap();
    let stream = tokio::net::TcpStream::connect(via).await.unwrap();
    let (client, connection) = config.connect_raw(stream, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A direct client, for looking at the server from the side.
pub async fn connect_direct(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The state of backend `pid` in `pg_stat_activity` (`None` once the backend is gone),
/// with its wait event.
pub async fn backend_state(admin: &Client, pid: i32) -> Option<(String, String)> {
    let rows = admin
        .query(
            "select coalesce(state, ''), coalesce(wait_event, '') from pg_stat_activity where pid = $1",
            &[&pid],
        )
        .await
        .unwrap();
    rows.first().map(|row| (row.get(0), row.get(1)))
}

/// Waits up to `within` for backend `pid` to stop running a query; returns how long it took.
pub async fn wait_not_active(admin: &Client, pid: i32, within: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        match backend_state(admin, pid).await {
            Some((state, _)) if state == "active" => {}
            _ => return Some(start.elapsed()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// The backend process id serving `client`.
pub async fn backend_pid(client: &Client) -> i32 {
    client
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Ends backend `pid` from a direct connection (leaves the server clean between tests).
pub async fn terminate(url: &str, pid: i32) {
    let admin = connect_direct(url).await;
    admin
        .execute("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
}

/// A `COPY` running through the freezing proxy: the proxy goes silent once
/// `freeze_after` bytes have reached the client.
pub struct ProxiedCopy {
    pub client: Client,
    pub pid: i32,
    pub proxy: std::sync::Arc<super::proxy::ProxyState>,
    pub copy: tokio_postgres::CopyOutStream,
}

pub async fn copy_through_proxy(url: &str, freeze_after: u64, statement: &str) -> ProxiedCopy {
    let (via, proxy) = super::proxy::start(server_addr(url), freeze_after).await;
    let client = connect_via(url, via).await;
    let pid = backend_pid(&client).await;
    let copy = client.copy_out(statement).await.unwrap();
    ProxiedCopy {
        client,
        pid,
        proxy,
        copy,
    }
}
