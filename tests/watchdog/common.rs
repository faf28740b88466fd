//! What the watchdog tests share: one set of time units (a test writes
//! `10 * SECOND`, `MINUTE - MS`) and the stall inside an answer.
#![allow(dead_code)]

use std::io;
use std::task::Poll;
use std::time::Duration;

use hangfree::watchdog::Stalled;

pub const MS: Duration = Duration::from_millis(1);
pub const SECOND: Duration = Duration::from_secs(1);
pub const MINUTE: Duration = Duration::from_secs(60);

/// The stall a `Watchdog` yielded; panics on anything else.
pub fn stalled<T: std::fmt::Debug>(item: Poll<Option<Result<T, Stalled>>>) -> Stalled {
    match item {
        Poll::Ready(Some(Err(stalled))) => stalled,
        other => panic!("expected a stall, got {other:?}"),
    }
}

/// The stall inside an `IoWatchdog`'s error: a `TimedOut` error whose
/// source is the `Stalled` report.
pub fn stall_of(err: &io::Error) -> &Stalled {
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    err.get_ref()
        .and_then(|source| source.downcast_ref::<Stalled>())
        .expect("the error's source is the Stalled report")
}
