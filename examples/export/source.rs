//! Where rows come from: the embedded replica over TCP, or PostgreSQL's `COPY ... TO STDOUT`.
//! Both hand back the CSV rows of a key range, already behind a watchdog.

use std::io;
use std::net::SocketAddr;

use futures::StreamExt as _;
use hangfree::prelude::*;
use hangfree::watchdog::{IoWatchdog, Limits};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::io::StreamReader;

use crate::protocol::Rows;
use crate::server_stop::ArmedStop;

pub enum Source {
    Replica { addr: SocketAddr, rows: u64 },
    Postgres { url: String },
}

/// One open `COPY` of a key range.
pub struct Copy {
    pub rows: Rows,
    /// For PostgreSQL: the query's stop on the server, armed before it started.
    pub stop: Option<ArmedStop>,
    /// For PostgreSQL: kept so that the connection lives as long as the copy.
    pub connection: Option<tokio_postgres::Client>,
}

/// A query on PostgreSQL: what it takes to stop it there.
pub struct ServerQuery {
    pub cancel: tokio_postgres::CancelToken,
    pub backend_pid: i32,
}

impl Source {
    /// The inclusive key range of `table`, and its row count.
    pub async fn key_range(&self, table: &str) -> io::Result<(u64, u64, u64)> {
        match self {
            Source::Replica { rows, .. } => Ok((1, *rows, *rows)),
            Source::Postgres { url } => {
                let client = connect(url).await?;
                let row = client
                    .query_one(
                        &format!("select coalesce(min(id), 1)::bigint, coalesce(max(id), 0)::bigint, count(*)::bigint from {table}"),
                        &[],
                    )
                    .await
                    .map_err(io::Error::other)?;
                let (first, last, count): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
                Ok((first.max(0) as u64, last.max(0) as u64, count.max(0) as u64))
            }
        }
    }

    /// Starts copying rows `first..=last` of `table`, watched by `limits`. On PostgreSQL,
    /// `arm_stop` is handed the query's backend before the query starts, so that no
    /// interrupt can find it running and unarmed.
    pub async fn open(
        &self,
        table: &str,
        first: u64,
        last: u64,
        limits: Limits,
        arm_stop: impl FnOnce(&str, ServerQuery) -> ArmedStop,
    ) -> io::Result<Copy> {
        match self {
            Source::Replica { addr, .. } => {
                let mut socket = TcpStream::connect(addr).await?;
                socket
                    .write_all(format!("COPY {table} {first} {last}\n").as_bytes())
                    .await?;
                // The byte watchdog: reads fail with `Stalled` (inside an io::Error) when
                // the replica goes quiet, and keep failing afterwards.
                let socket = IoWatchdog::new(socket, Limits::new()).read_limits(limits);
                Ok(Copy {
                    rows: Rows {
                        lines: Box::pin(BufReader::with_capacity(64 * 1024, socket)),
                        has_trailer: true,
                    },
                    stop: None,
                    connection: None,
                })
            }
            Source::Postgres { url } => {
                let client = connect(url).await?;
                let backend_pid: i32 = client
                    .query_one("select pg_backend_pid()", &[])
                    .await
                    .map_err(io::Error::other)?
                    .get(0);
                let stop = arm_stop(
                    url,
                    ServerQuery {
                        cancel: client.cancel_token(),
                        backend_pid,
                    },
                );
                let query = format!(
                    "COPY (SELECT * FROM {table} WHERE id BETWEEN {first} AND {last} ORDER BY id) TO STDOUT WITH (FORMAT csv)"
                );
                let stream = client.copy_out(&query).await.map_err(io::Error::other)?;
                // The stream watchdog: one `Err(Stalled)` when the server goes quiet, and
                // the COPY stream (with its socket) is dropped at once.
                let watched = stream.watchdog(limits).map(|item| match item {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(db)) => Err(io::Error::other(db)),
                    Err(stalled) => Err(io::Error::from(stalled)),
                });
                Ok(Copy {
                    rows: Rows {
                        lines: Box::pin(StreamReader::new(Box::pin(watched))),
                        has_trailer: false,
                    },
                    stop: Some(stop),
                    connection: Some(client),
                })
            }
        }
    }
}

/// Stops a PostgreSQL query on the server. A cancel request first; PostgreSQL may not act
/// on it while the backend is blocked writing to a client that stopped reading, so if
/// the query is still running a moment later, the backend is terminated. Run by the
/// interrupt hook of the query's scope (`server_stop`).
pub async fn stop_on_server(url: &str, query: ServerQuery) -> io::Result<&'static str> {
    let pid = query.backend_pid;
    query
        .cancel
        .cancel_query(tokio_postgres::NoTls)
        .await
        .map_err(io::Error::other)?;
    let admin = connect(url).await?;
    for _ in 0..20 {
        let active = admin
            .query(
                "select 1 from pg_stat_activity where pid = $1 and state = 'active'",
                &[&pid],
            )
            .await
            .map_err(io::Error::other)?;
        if active.is_empty() {
            return Ok("cancelled");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    admin
        .execute("select pg_terminate_backend($1)", &[&pid])
        .await
        .map_err(io::Error::other)?;
    Ok("terminated")
}

/// A client for `url`, its connection driven by a task of its own until the client is
/// dropped.
async fn connect(url: &str) -> io::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(connection);
    Ok(client)
}
