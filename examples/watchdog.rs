//! A database export whose server gives up mid-stream without closing it.
//!
//! Without a watchdog this job would wait on the socket for ever; with one it
//! fails after a minute of silence, says why, and lets go of the connection.
//! The clock is tokio's paused clock, so the minute passes instantly.
//!
//! Run: `cargo run --example watchdog`

use std::time::Duration;

use futures::{Stream, StreamExt as _};
use hangfree::prelude::*;
use hangfree::watchdog::Limits;

/// Stands in for a `COPY ... TO STDOUT` stream: the query thinks for two
/// minutes, sends 1,000 rows, and then the server terminates the query
/// without ending the stream.
fn copy_out() -> impl Stream<Item = Result<String, std::io::Error>> {
    futures::stream::once(tokio::time::sleep(Duration::from_secs(120)))
        .flat_map(|()| futures::stream::iter((0..1000).map(|id| Ok(format!("{id},row {id}\n")))))
        .chain(futures::stream::pending())
}

async fn export() -> Result<u64, Box<dyn std::error::Error>> {
    let limits = Limits::new()
        .first_item(Duration::from_secs(15 * 60))
        .idle(Duration::from_secs(60))
        .total(Duration::from_secs(2 * 3600));
    let mut rows = copy_out().boxed().watchdog(limits);
    let mut written = 0;
    while let Some(row) = rows.next().await {
        let _row = row??; // the stall first, then the database's own error
        written += 1;
    }
    Ok(written)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(export()) {
        Ok(rows) => println!("export finished: {rows} rows"),
        // A real job returns this error from `main` (a non-zero exit), so its
        // scheduler sees the failure; the example just shows it.
        Err(err) => println!("export failed: {err}"),
    }
}
