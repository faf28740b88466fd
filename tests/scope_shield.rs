//! `scope`: the bounded shield. A shield outlives its parent's interrupt by its grace,
//! exactly, and no longer; its own limits still apply. Under tokio's paused clock.

use std::error::Error as _;
use std::future::pending;
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause};
use tokio::time::{Instant, advance, sleep};
use tokio_test::{assert_pending, assert_ready, task};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn a_shield_is_interrupted_exactly_grace_after_its_parents_cancel() {
    let consumer = CancelScope::new();
    let flush = consumer.shield(5 * SECOND);
    let mut flushing = task::spawn(pending::<()>().within(&flush));
    assert_pending!(flushing.poll());

    advance(3 * SECOND).await;
    let t = Instant::now();
    consumer.cancel_with("service stopping (SIGTERM)");
    assert!(!flush.is_cancelled() && flush.check().is_ok());

    advance(5 * SECOND - MS).await;
    assert!(
        !flushing.is_woken(),
        "a millisecond before the grace ran out"
    );
    assert_pending!(flushing.poll());
    assert!(flush.check().is_ok());

    advance(MS).await;
    assert!(flushing.is_woken());
    let why = assert_ready!(flushing.poll()).unwrap_err();
    assert_eq!(Instant::now(), t + 5 * SECOND);
    assert_eq!(why.cause(), Cause::GraceExceeded);
    assert_eq!(why.at(), t + 5 * SECOND);
    assert_eq!(why.budget(), Some(5 * SECOND));
    assert!(why.is_deadline());
    let source = why
        .source()
        .unwrap()
        .downcast_ref::<hangfree::Interrupted>();
    assert_eq!(source, Some(&consumer.check().unwrap_err()));
    let io: std::io::Error = why.into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn after_a_deadline_the_grace_runs_from_the_deadline_itself() {
    let start = Instant::now();
    let job = CancelScope::new().with_timeout(10 * SECOND);
    let cleanup = job.shield(3 * SECOND);
    let err = pending::<()>().within(&cleanup).await.unwrap_err();
    assert_eq!(Instant::now(), start + 13 * SECOND);
    assert_eq!(err.cause(), Cause::GraceExceeded);
    let source = err
        .source()
        .unwrap()
        .downcast_ref::<hangfree::Interrupted>();
    assert_eq!(source.unwrap().cause(), Cause::DeadlineExceeded);
    assert_eq!(source.unwrap().at(), start + 10 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn a_shield_made_after_the_interrupt_ends_grace_after_the_interrupt_not_after_the_call() {
    let consumer = CancelScope::new();
    let t = Instant::now();
    consumer.cancel();
    advance(3 * SECOND).await;

    let flush = consumer.shield(5 * SECOND);
    assert_eq!(flush.deadline(), Some(t + 5 * SECOND));
    let err = pending::<()>().within(&flush).await.unwrap_err();
    assert_eq!(Instant::now(), t + 5 * SECOND, "2 s after the call");
    assert_eq!(err.cause(), Cause::GraceExceeded);

    // A grace that ran out before the call: interrupted from the start.
    let late = consumer.shield(SECOND);
    assert!(late.is_cancelled());
    let mut never = task::spawn(async { "ran" }.within(&late));
    assert_eq!(
        assert_ready!(never.poll()).unwrap_err().cause(),
        Cause::GraceExceeded
    );

    // The same with a deadline in the past: `t` is the deadline.
    let overdue = CancelScope::new().with_deadline(Instant::now() - 4 * SECOND);
    let shield = overdue.shield(10 * SECOND);
    assert_eq!(shield.deadline(), Some(Instant::now() + 6 * SECOND));
}

#[tokio::test(start_paused = true)]
async fn a_shields_deadline_is_the_latest_it_can_end() {
    let start = Instant::now();
    let job = CancelScope::new().with_timeout(10 * SECOND);
    let cleanup = job.shield(5 * SECOND);
    assert_eq!(
        cleanup.deadline(),
        Some(start + 15 * SECOND),
        "the parent's deadline plus the grace, before any interrupt"
    );
    assert_eq!(CancelScope::new().shield(SECOND).deadline(), None);
    advance(2 * SECOND).await;
    job.cancel();
    assert_eq!(cleanup.deadline(), Some(start + 7 * SECOND));
    assert_eq!(cleanup.remaining(), Some(5 * SECOND));
    assert_eq!(cleanup.child().deadline(), Some(start + 7 * SECOND));
}

#[tokio::test(start_paused = true)]
async fn a_shields_own_deadline_still_applies() {
    let start = Instant::now();
    let consumer = CancelScope::new();
    // Tighter than any grace: its own deadline ends it while the parent runs.
    let quick = consumer.shield(60 * SECOND).with_timeout(2 * SECOND);
    let err = pending::<()>().within(&quick).await.unwrap_err();
    assert_eq!(Instant::now(), start + 2 * SECOND);
    assert_eq!(err.cause(), Cause::DeadlineExceeded);
    assert!(!consumer.is_cancelled());

    // Its own deadline is later than the parent's interrupt plus the grace: it reads as
    // the earlier one, and the grace ends it.
    let start = Instant::now();
    let flush = consumer.shield(5 * SECOND).with_timeout(10 * SECOND);
    assert_eq!(flush.deadline(), Some(start + 10 * SECOND));
    advance(SECOND).await;
    consumer.cancel();
    assert_eq!(flush.deadline(), Some(start + 6 * SECOND));
    let err = pending::<()>().within(&flush).await.unwrap_err();
    assert_eq!(Instant::now(), start + 6 * SECOND);
    assert_eq!(err.cause(), Cause::GraceExceeded);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_the_grace_still_wins() {
    let consumer = CancelScope::new();
    let flush = consumer.shield(5 * SECOND);
    let mut flushing = task::spawn(pending::<()>().within(&flush));
    assert_pending!(flushing.poll());
    consumer.cancel();
    advance(2 * SECOND).await;
    flush.cancel_with("flush abandoned");
    assert!(flushing.is_woken(), "at once, not at the end of the grace");
    let why = assert_ready!(flushing.poll()).unwrap_err();
    assert_eq!(
        (why.cause(), why.reason()),
        (Cause::Cancelled, Some("flush abandoned"))
    );
    advance(10 * SECOND).await;
    assert_eq!(
        flush.check().unwrap_err(),
        why,
        "the grace's end changes nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_shield_leaves_its_parent_running() {
    let consumer = CancelScope::new().with_timeout(10 * SECOND);
    let flush = consumer.shield(SECOND);
    let inside = flush.child();
    flush.cancel();
    assert!(inside.is_cancelled());
    assert!(consumer.check().is_ok());
    inside.cancel();
    assert!(consumer.check().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_shield_is_not_interrupted_while_its_parent_runs() {
    let consumer = CancelScope::new();
    let flush = consumer.shield(SECOND);
    let done = sleep(3600 * SECOND).within(&flush).await;
    assert_eq!(done, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_shields_hooks_and_token_go_with_the_end_of_its_grace() {
    let start = Instant::now();
    let consumer = CancelScope::new();
    let flush = consumer.shield(4 * SECOND);
    let token = flush.token();
    let (ran, told) = tokio::sync::oneshot::channel();
    let _hook = flush.on_interrupt(move |why| {
        let _ = ran.send((why.cause(), Instant::now()));
    });
    consumer.cancel();
    token.cancelled().await;
    assert_eq!(Instant::now(), start + 4 * SECOND);
    assert_eq!(
        told.await.unwrap(),
        (Cause::GraceExceeded, start + 4 * SECOND)
    );
}

#[tokio::test(start_paused = true)]
async fn a_shield_keeps_its_parent_alive() {
    let start = Instant::now();
    let flush = CancelScope::new().with_timeout(SECOND).shield(SECOND);
    let err = pending::<()>().within(&flush).await.unwrap_err();
    assert_eq!(Instant::now(), start + 2 * SECOND);
    assert_eq!(err.cause(), Cause::GraceExceeded);
}
