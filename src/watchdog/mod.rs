//! Streams, readers and writers that stall are detected, ended and explained.
//!
//! A data export reads a `COPY ... TO STDOUT` stream; the server gives up on
//! the query, the client's stream never ends, and the job waits on the
//! socket for hours. A watchdog turns that silence into an error:
//!
//! ```
//! use std::time::Duration;
//! use futures::{Stream, StreamExt as _};
//! use hangfree::prelude::*;
//! use hangfree::watchdog::Limits;
//!
//! async fn export(
//!     rows: impl Stream<Item = Result<String, std::io::Error>> + Unpin,
//! ) -> Result<u64, Box<dyn std::error::Error>> {
//!     let limits = Limits::new().first_item(Duration::from_secs(900)).idle(Duration::from_secs(60));
//!     let mut rows = rows.watchdog(limits);
//!     let mut written = 0;
//!     while let Some(row) = rows.next().await {
//!         let _row = row??; // first the stall, then the database's own error
//!         written += 1; // write the row
//!     }
//!     Ok(written)
//! }
//!
//! #[tokio::main]
//! # async fn _unused() {}
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() {
//!     // One row, then the server gives up without closing the stream.
//!     let copy_out = futures::stream::iter([Ok("1,ada\n".to_string())])
//!         .chain(futures::stream::pending());
//!     let err = export(copy_out).await.unwrap_err();
//!     assert_eq!(err.to_string(), "stalled: no data for 60s (limit 60s) after 1 item (1m0s into the stream)");
//! }
//! ```
//!
//! With the watchdog the export fails after a minute of silence, with
//! `stalled: no data for 60s (limit 60s) after 1 item (1m0s into the stream)`, the
//! connection is dropped and the scheduler sees a failure.
//!
//! # The idle clock measures the source, not the consumer
//!
//! The idle clock starts when the source returns `Pending` and stops when
//! the source wakes its task (or yields). Time the consumer spends between
//! polls, including the time after the source woke and before the consumer
//! came back, never counts, so a slow consumer never causes a false stall.
//! An idle, `first_item` or `min_rate` stall is only declared right after
//! the source was polled and answered `Pending`, so an item that is ready
//! always wins. `first_item` works like `idle` before the first item;
//! `min_rate` judges progress per window of *waiting*, counting every item
//! delivered before the source next returns `Pending`. The exception is
//! `total`, a wall-clock budget from the first poll: once it is spent the
//! stream ends without another poll of the source, even if items are ready.
//!
//! On a stall the watchdog yields exactly one `Err(`[`Stalled`]`)`, drops the
//! source at once (closing its socket or returning its pooled connection)
//! and then ends with `None`. An [`IoWatchdog`] returns a
//! [`TimedOut`](std::io::ErrorKind::TimedOut) error from then on, never
//! `Ok(0)`. For work that is not a stream, [`deadman()`] gives a heartbeat.
//!
//! # Cost
//!
//! A watchdog on a source whose items are always ready reads no clock and
//! touches no timer per item. The clock is read when the source goes
//! `Pending` and when it wakes; one timer is armed then and re-armed lazily,
//! only when it fires before the deadline that currently matters. From its
//! first `Pending` on, the source is polled with a waker of the watchdog's
//! own (allocated once), which records when the source woke and passes the
//! wake on; a wait costs an uncontended lock on `Pending` and on the next
//! poll. With a `total` budget each item also checks that budget's timer
//! (while the source has never pended, one count of polls that the timer
//! zeroes when it fires; after, one call into tokio), and about once a millisecond
//! an item reads the clock (every item of a slow consumer, up to every
//! 1,024th of a fast one), since an always-ready source must still be
//! stopped when the budget is spent, even by a consumer that never lets the
//! runtime's timer run. Measured ratios are in `docs/benchmarks.md`.
//!
//! # Limits from a configuration, limits that change, and errors in a chain
//!
//! [`Limits`]' setters panic on a zero, for values written in the code; their
//! `try_` forms ([`Limits::try_idle`], ...) return a [`LimitsError`] for
//! values read from a configuration file. A protocol whose phases need
//! different limits (a handshake, then a body) changes them on the pinned
//! watchdog: [`Watchdog::set_limits`], [`IoWatchdog::set_read_limits`],
//! [`IoWatchdog::set_write_limits`]; the clocks keep running (`total`
//! counts from the first poll whatever it is changed to). An
//! [`IoWatchdog`]'s stall arrives inside an [`io::Error`](std::io::Error),
//! where `source()` does not see it: [`Stalled::find_in`] finds it in any
//! error chain, anyhow's included.
//!
//! # Comparison to tokio-stream, tokio-io-timeout and tower-http
//!
//! | their everyday call | ours | what differs |
//! |---|---|---|
//! | tokio-stream `stream.timeout(d)` | [`stream.idle_timeout(d)`](StreamExt::idle_timeout), or [`stream.watchdog(Limits::new().idle(d))`](StreamExt::watchdog) | after the limit, one `Err(Stalled)`, the source dropped, the end, where `timeout` yields `Err(Elapsed)` and keeps waiting; only the source's `Pending` time counts, not the consumer's processing; no clock read or timer reset per ready item |
//! | tokio-stream `stream.timeout_repeating(interval)` | none: a watchdog ends the stream at its first stall | `timeout_repeating` reports every silent interval and goes on |
//! | tokio-io-timeout `TimeoutReader::new(r)`, `set_timeout(Some(d))` | [`IoWatchdog::new(r, Limits::new().idle(d))`](IoWatchdog::new) | after the limit every call fails, never `Ok(0)`, and the reader is dropped |
//! | tokio-io-timeout `TimeoutWriter::new(w)`, `set_timeout(Some(d))` | [`IoWatchdog::new(w, Limits::new().idle(d))`](IoWatchdog::new) | a peer that stops reading is a stall as well |
//! | tokio-io-timeout `TimeoutStream::set_read_timeout(Some(d))` / `set_write_timeout(Some(d))` | [`.read_limits(limits)`](IoWatchdog::read_limits) / [`.write_limits(limits)`](IoWatchdog::write_limits) | `first_item`, `total` and `min_rate` as well; a stall in either direction ends both, and wakes the task on the other half of a split |
//! | tokio-io-timeout `set_read_timeout_pinned(Some(d))` / `set_write_timeout_pinned(Some(d))` on a pinned stream | [`io.as_mut().set_read_limits(limits)`](IoWatchdog::set_read_limits) / [`set_write_limits`](IoWatchdog::set_write_limits); [`Watchdog::set_limits`] on a stream | the wait measured so far counts against the new limit, where tokio-io-timeout restarts its countdown |
//! | the `TimedOut` error of tokio-io-timeout | the same kind, with the [`Stalled`] report inside: [`Stalled::find_in(&err)`](Stalled::find_in) | which limit tripped, progress made, time waited, time elapsed |
//! | tower-http `TimeoutBody::new(d, body)` | `WatchdogBody::new(body, Limits::new().idle(d))` (feature `http`) | the error is the `Stalled` report and the body is dropped at once; `min_rate` catches a drip-fed upload, which an idle limit does not |
//! | tower-http `RequestBodyTimeoutLayer::new(d)` / `ResponseBodyTimeoutLayer::new(d)` | `WatchdogBodyLayer::new().requests(limits)` / `.responses(limits)` (feature `http`) | one layer for both directions, each with its own limits |
//!
//! tokio-stream's `timeout` is the right tool when a late item is an event to
//! report and the stream should go on; a watchdog is for a source whose
//! silence means it is dead.

// The adapters, each calling its monitor; see `docs/architecture.md`.
mod deadman;
mod ext;
mod io;
mod stream;

// The monitor: the poll protocol, its state, and the rules of each limit.
mod deadline;
pub(crate) mod monitor;
mod state;
mod timer;
mod wake;
mod window;

// What the user configures and what a stall says.
mod limits;
mod stalled;

pub use deadman::{Deadman, Pulse, Watch, deadman, try_deadman};
pub use ext::StreamExt;
pub use io::IoWatchdog;
pub use limits::{Limits, LimitsError};
pub use stalled::{Progress, StallKind, Stalled};
pub use stream::Watchdog;
