//! A body read under a scope: the one rule both sides keep for a body that must not
//! outlive its request's scope ([`DeadlineBody`](super::DeadlineBody) on the server,
//! [`PropagateBody`](super::PropagateBody) on the client).
//!
//! The body first: a frame that is ready wins over the interrupt. Then the scope, by the
//! clock: a body whose frames are always ready never pends, so a look taken only when it
//! pends would never cut it, and a deadline's timer need not have run. One clock read a
//! frame, as a body timeout that moves its timer at each frame pays. A scope found over
//! then cuts the body at its next poll, unless the body has nothing left, which loses
//! nothing and ends as it would have. A body that pends waits on the scope too. A scope
//! without a deadline can only end by a cancel, which marks it: it is read without the
//! clock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame};

use crate::scope::Cancelled;
use crate::{CancelScope, Interrupted};

/// What the scope keeps between two polls of its body.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// Made at the first poll that finds the body pending.
    interrupted: Option<Cancelled>,
    /// The scope was found over right after a frame was handed on.
    over: bool,
}

/// What a poll of a body under its scope came to.
pub(super) enum Polled<D, E> {
    /// A frame to hand on, or the body's own error.
    Frame(Result<Frame<D>, E>),
    /// The body ended.
    End,
    /// The scope ended first: the caller cuts the body.
    Cut(Interrupted),
}

/// Polls `body` under `scope` (see the module docs).
pub(super) fn poll<B: Body>(
    cx: &mut Context<'_>,
    scope: &CancelScope,
    mut body: Pin<&mut B>,
    watch: &mut Watch,
) -> Poll<Polled<B::Data, B::Error>> {
    if watch.over && !body.is_end_stream() {
        if let Err(why) = scope.check() {
            return Poll::Ready(Polled::Cut(why));
        }
    }
    match body.as_mut().poll_frame(cx) {
        Poll::Ready(Some(Ok(frame))) => {
            watch.over = !body.is_end_stream() && is_over(scope);
            return Poll::Ready(Polled::Frame(Ok(frame)));
        }
        Poll::Ready(Some(Err(error))) => return Poll::Ready(Polled::Frame(Err(error))),
        Poll::Ready(None) => return Poll::Ready(Polled::End),
        Poll::Pending => {}
    }
    let wait = watch.interrupted.get_or_insert_with(|| scope.cancelled());
    Pin::new(wait).poll(cx).map(Polled::Cut)
}

/// Whether `scope` has ended: by the clock if it has a deadline, else by its mark alone.
fn is_over(scope: &CancelScope) -> bool {
    if scope.deadline().is_some() {
        scope.check().is_err()
    } else {
        scope.is_cancelled()
    }
}
