//! An embedded "replica" for the export example: a loopback TCP server that serves tables
//! as CSV, and that can go quiet mid-query while keeping the socket open, the way a server
//! that gave up on a query (a replica conflict) leaves its client waiting.
//!
//! Protocol, one request per connection: the client sends `COPY <table> <first> <last>\n`
//! (inclusive key range); the server answers with one CSV line per row in key order,
//! `id,name,amount`, then `#END <rows>`; or `#ERR <message>` for a bad request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// How a table misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The first query for the table goes quiet after 40 % of its rows.
    StallOnce,
    /// Every query for the table goes quiet before its first row.
    StallAlways,
}

#[derive(Debug, Default)]
pub struct Stats {
    /// Connections that went quiet on purpose.
    pub stalls: AtomicU64,
    /// Of those, how many the client closed (the replica saw EOF on the open socket).
    pub closed_by_client_after_stall: AtomicU64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} quiet connection(s), {} closed by the exporter",
            self.stalls.load(Ordering::SeqCst),
            self.closed_by_client_after_stall.load(Ordering::SeqCst)
        )
    }
}

pub struct Replica {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
}

struct Table {
    rows: u64,
    fault: Option<Fault>,
    queries: AtomicU32,
}

/// The row with key `id`: the same bytes on every request, so a test can check a file.
pub fn row(id: u64) -> String {
    format!("{id},customer-{id},{}\n", (id * 7919) % 100_000)
}

/// Starts the replica on 127.0.0.1 with `tables` of `rows` rows each (keys `1..=rows`).
pub async fn start(
    tables: &[String],
    rows: u64,
    faults: &HashMap<String, Fault>,
) -> std::io::Result<Replica> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(Stats::default());
    let tables: Arc<Mutex<HashMap<String, Arc<Table>>>> = Arc::new(Mutex::new(
        tables
            .iter()
            .map(|name| {
                let table = Table {
                    rows,
                    fault: faults.get(name).copied(),
                    queries: AtomicU32::new(0),
                };
                (name.clone(), Arc::new(table))
            })
            .collect(),
    ));
    let shared = stats.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let table_map = tables.clone();
            let stats = shared.clone();
            tokio::spawn(async move {
                // A failed connection is the client's business; the replica carries on.
                let _ = serve(socket, table_map, stats).await;
            });
        }
    });
    Ok(Replica { addr, stats })
}

async fn serve(
    socket: TcpStream,
    tables: Arc<Mutex<HashMap<String, Arc<Table>>>>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let (read_half, write_half) = socket.into_split();
    let mut reader = BufReader::new(read_half);
    let mut out = BufWriter::new(write_half);
    let mut request = String::new();
    reader.read_line(&mut request).await?;
    let parts: Vec<&str> = request.split_whitespace().collect();
    let parsed = match parts.as_slice() {
        ["COPY", name, first, last] => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(first), Ok(last)) => Some((name.to_string(), first, last)),
            _ => None,
        },
        _ => None,
    };
    let Some((name, first, last)) = parsed else {
        out.write_all(b"#ERR bad request\n").await?;
        return out.flush().await;
    };
    let table = tables.lock().unwrap().get(&name).cloned();
    let Some(table) = table else {
        out.write_all(format!("#ERR no table {name}\n").as_bytes())
            .await?;
        return out.flush().await;
    };
    let last = last.min(table.rows);
    let query = table.queries.fetch_add(1, Ordering::SeqCst);
    let stall_after = match table.fault {
        Some(Fault::StallOnce) if query == 0 => Some((last.saturating_sub(first) + 1) * 2 / 5),
        Some(Fault::StallAlways) => Some(0),
        _ => None,
    };
    let mut sent = 0u64;
    for id in first..=last {
        if stall_after == Some(sent) {
            return go_quiet(out, reader, &stats).await;
        }
        out.write_all(row(id).as_bytes()).await?;
        sent += 1;
    }
    out.write_all(format!("#END {sent}\n").as_bytes()).await?;
    out.flush().await
}

/// Stops sending without closing: flushes what was written, then waits for the client to
/// hang up, and only then lets the socket go.
async fn go_quiet(
    mut out: BufWriter<tokio::net::tcp::OwnedWriteHalf>,
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    stats: &Stats,
) -> std::io::Result<()> {
    out.flush().await?;
    stats.stalls.fetch_add(1, Ordering::SeqCst);
    let mut sink = [0u8; 64];
    loop {
        match reader.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    stats
        .closed_by_client_after_stall
        .fetch_add(1, Ordering::SeqCst);
    drop(out);
    Ok(())
}
