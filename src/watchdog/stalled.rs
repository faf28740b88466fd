//! What a watchdog says when a limit trips: [`Stalled`], which limit
//! ([`StallKind`]) and how far the source got ([`Progress`]), as a sentence
//! for an operator.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::fmt::{Elapsed, Limit};

/// Which limit tripped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StallKind {
    /// The source stayed `Pending` longer than [`Limits::idle`](super::Limits::idle)
    /// (for a [`Deadman`](super::Deadman): the heartbeats stopped).
    Idle,
    /// No first item within [`Limits::first_item`](super::Limits::first_item).
    FirstItem,
    /// The whole budget, [`Limits::total`](super::Limits::total), was spent.
    Total,
    /// Less progress than [`Limits::min_rate`](super::Limits::min_rate) in a
    /// window of waiting.
    TooSlow,
}

/// How much progress was made before a stall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Progress {
    /// Items yielded by a stream.
    Items(u64),
    /// Bytes read through an [`IoWatchdog`](super::IoWatchdog).
    BytesRead(u64),
    /// Bytes written through an [`IoWatchdog`](super::IoWatchdog).
    BytesWritten(u64),
    /// Heartbeats counted by a [`Deadman`](super::Deadman).
    Beats(u64),
}

impl Progress {
    /// The count, whatever its unit.
    ///
    /// # Examples
    ///
    /// ```
    /// use hangfree::watchdog::Progress;
    ///
    /// assert_eq!(Progress::BytesRead(10_240).count(), 10_240);
    /// ```
    pub fn count(&self) -> u64 {
        match *self {
            Progress::Items(n)
            | Progress::BytesRead(n)
            | Progress::BytesWritten(n)
            | Progress::Beats(n) => n,
        }
    }

    pub(crate) fn with_count(self, n: u64) -> Progress {
        match self {
            Progress::Items(_) => Progress::Items(n),
            Progress::BytesRead(_) => Progress::BytesRead(n),
            Progress::BytesWritten(_) => Progress::BytesWritten(n),
            Progress::Beats(_) => Progress::Beats(n),
        }
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.count();
        let plural = if n == 1 { "" } else { "s" };
        match self {
            Progress::Items(_) => write!(f, "{n} item{plural}"),
            Progress::BytesRead(_) => write!(f, "{n} byte{plural} read"),
            Progress::BytesWritten(_) => write!(f, "{n} byte{plural} written"),
            Progress::Beats(_) => write!(f, "{n} heartbeat{plural}"),
        }
    }
}

/// The error a watchdog yields when a limit trips.
///
/// It says which limit tripped ([`kind`](Self::kind)), how much progress was
/// made ([`progress`](Self::progress)), how long the watchdog had been
/// waiting ([`waited`](Self::waited)) and how far into the stream it was
/// ([`elapsed`](Self::elapsed)). Its `Display` is a sentence for an operator:
///
/// ```text
/// stalled: no data for 60s (limit 60s) after 1000 items (14m3s into the stream)
/// ```
///
/// It converts into an [`io::Error`] of kind [`io::ErrorKind::TimedOut`],
/// from which it can be downcast back.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use futures::StreamExt as _;
/// use hangfree::prelude::*;
/// use hangfree::watchdog::{Progress, StallKind, Stalled};
///
/// #[tokio::main]
/// # async fn _unused() {}
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let mut rows = futures::stream::pending::<u32>().idle_timeout(Duration::from_secs(60));
///     let stalled: Stalled = rows.next().await.unwrap().unwrap_err();
///     assert_eq!(stalled.kind(), StallKind::Idle);
///     assert_eq!(stalled.progress(), Progress::Items(0));
///
///     let err: std::io::Error = stalled.into();
///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
///     let back = err.get_ref().and_then(|e| e.downcast_ref::<Stalled>()).unwrap();
///     assert_eq!(back.kind(), StallKind::Idle);
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stalled {
    // Boxed so that `Result<Item, Stalled>` stays small: every item a
    // watchdog yields is wrapped in one.
    report: Box<Report>,
}

/// What a stall report holds, by name: built where a stall is declared and
/// turned into a [`Stalled`] by [`declare`](Report::declare).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Report {
    pub(super) kind: StallKind,
    pub(super) progress: Progress,
    pub(super) waited: Duration,
    pub(super) elapsed: Duration,
    pub(super) limit: Duration,
    /// For `TooSlow`: progress in the window that was judged, and the minimum.
    pub(super) rate: Option<(u64, u64)>,
}

impl Report {
    /// Declares the stall: the one place a `Stalled` is made, so that every
    /// stall is also emitted as a `tracing` event when that feature is on.
    pub(super) fn declare(self) -> Stalled {
        let stalled = Stalled {
            report: Box::new(self),
        };
        #[cfg(feature = "tracing")]
        tracing::warn!(
            kind = ?stalled.kind(),
            progress = stalled.progress().count(),
            waited = ?stalled.waited(),
            limit = ?stalled.limit(),
            elapsed = ?stalled.elapsed(),
            "{stalled}"
        );
        stalled
    }
}

impl Stalled {
    /// Which limit tripped.
    pub fn kind(&self) -> StallKind {
        self.report.kind
    }

    /// Progress made before the stall: items, bytes read, bytes written or
    /// heartbeats.
    pub fn progress(&self) -> Progress {
        self.report.progress
    }

    /// How long the watchdog had been waiting on the source when it gave up
    /// (for [`StallKind::TooSlow`]: the length of the window judged; for
    /// [`StallKind::Total`]: the current wait, zero if the source was not
    /// being waited on).
    pub fn waited(&self) -> Duration {
        self.report.waited
    }

    /// Time from the first poll to the stall.
    pub fn elapsed(&self) -> Duration {
        self.report.elapsed
    }

    /// The configured limit that tripped (for [`StallKind::TooSlow`]: the
    /// window).
    pub fn limit(&self) -> Duration {
        self.report.limit
    }

    /// Finds a `Stalled` anywhere in an error chain: `error` itself, each
    /// [`source`](Error::source) below it, and inside the payload of every
    /// [`io::Error`] on the way.
    ///
    /// An [`IoWatchdog`](super::IoWatchdog) returns its stall as an
    /// `io::Error` whose payload is the `Stalled`, and `io::Error`'s
    /// `source()` skips its payload. So once that error is wrapped (in
    /// anyhow's context, in a `thiserror` variant, in another `io::Error`),
    /// a walk of `source()` misses the stall: anyhow's `chain()` and
    /// `downcast_ref` among them. `find_in` does not.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use anyhow::Context as _;
    /// use tokio::io::AsyncReadExt;
    /// use hangfree::watchdog::{IoWatchdog, Limits, StallKind, Stalled};
    ///
    /// async fn download(peer: tokio::io::DuplexStream) -> anyhow::Result<Vec<u8>> {
    ///     let mut body = IoWatchdog::new(peer, Limits::new().idle(Duration::from_secs(30)));
    ///     let mut bytes = Vec::new();
    ///     body.read_to_end(&mut bytes).await.context("downloading the report")?;
    ///     Ok(bytes)
    /// }
    ///
    /// #[tokio::main]
    /// # async fn _unused() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let (client, _server) = tokio::io::duplex(1024); // a server that sends nothing
    ///     let err = download(client).await.unwrap_err();
    ///
    ///     // anyhow looks at each `source()`, and `io::Error` hides its payload:
    ///     assert!(err.chain().all(|cause| cause.downcast_ref::<Stalled>().is_none()));
    ///     // `find_in` looks inside it.
    ///     let stalled = Stalled::find_in(err.as_ref()).expect("the stall is in the chain");
    ///     assert_eq!(stalled.kind(), StallKind::Idle);
    /// }
    /// ```
    pub fn find_in<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a Stalled> {
        crate::error_chain::find(error)
    }

    fn context(&self) -> &'static str {
        match self.report.progress {
            Progress::Beats(_) => "the work",
            _ => "the stream",
        }
    }
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let elapsed = Elapsed(self.report.elapsed);
        let context = self.context();
        let progress = self.report.progress;
        f.write_str("stalled: ")?;
        match self.report.kind {
            StallKind::Idle => {
                let what = match progress {
                    Progress::BytesWritten(_) => "the peer accepted no data",
                    Progress::Beats(_) => "no heartbeat",
                    _ => "no data",
                };
                // The wait measured, then the limit it was held to: under
                // real time the one overshoots the other by the timer's
                // tick and the scheduler's delay.
                write!(
                    f,
                    "{what} for {} (limit {}) after {progress}",
                    Limit(self.report.waited),
                    Limit(self.report.limit)
                )?;
            }
            StallKind::FirstItem => {
                let what = match progress {
                    Progress::BytesWritten(_) => "the peer accepted nothing",
                    _ => "nothing arrived",
                };
                write!(f, "{what} within the first {}", Limit(self.report.limit))?;
            }
            StallKind::Total => {
                write!(
                    f,
                    "the whole budget of {} was spent after {progress}",
                    Limit(self.report.limit)
                )?;
            }
            StallKind::TooSlow => {
                let (got, min) = self.report.rate.unwrap_or_default();
                let window = Limit(self.report.limit);
                write!(
                    f,
                    "too slow, {} in {window} of waiting, below the minimum of {} per {window}",
                    progress.with_count(got),
                    progress.with_count(min),
                )?;
            }
        }
        write!(f, " ({elapsed} into {context})")
    }
}

impl Error for Stalled {}

impl From<Stalled> for io::Error {
    fn from(stalled: Stalled) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, stalled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_in_its_unit() {
        assert_eq!(Progress::Items(1).to_string(), "1 item");
        assert_eq!(Progress::BytesRead(10_240).to_string(), "10240 bytes read");
        assert_eq!(Progress::BytesWritten(2).to_string(), "2 bytes written");
        assert_eq!(Progress::Beats(3).to_string(), "3 heartbeats");
    }
}
