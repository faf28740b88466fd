//! Unit tests of the registry's protocol on plain values: a task's early
//! end, an admission before a report, an abandoned spawn, a closed registry.

use std::cell::Cell;

use super::*;
use crate::tasks::runtime::Tokio;

/// A runtime of plain values: aborts are counted per thread.
struct Plain;

thread_local! {
    static ABORTS: Cell<usize> = const { Cell::new(0) };
}

impl Runtime for Plain {
    type Abort = ();
    type Signal = ();
    type Token = ();

    fn abort(_: &()) {
        ABORTS.with(|aborts| aborts.set(aborts.get() + 1));
    }

    fn wake(_: &()) {}

    fn cancel(_: &()) {}

    fn now() -> Instant {
        Instant::now()
    }
}

fn registry() -> Registry<Plain> {
    Registry::new(8, "".into(), None)
}

#[test]
fn a_task_that_ends_before_its_handle_is_attached_is_recorded_by_its_spawner() {
    let registry = registry();
    let id = registry
        .admit("early".into(), Instant::now(), TaskKind::Async)
        .unwrap();
    registry.finish(id, Ending::Failed("lost ack".to_owned()));
    assert_eq!(registry.len(), 1, "live until its spawner attaches it");
    assert_eq!(registry.counts().failed, 0);
    assert_eq!(registry.running()[0].label(), "early");

    registry.attach(id, ());
    assert_eq!(registry.len(), 0);
    let counts = registry.counts();
    assert_eq!((counts.spawned, counts.failed), (1, 1));
    assert_eq!(registry.failures()[0].label(), "early");
    assert_eq!(registry.failures()[0].message(), "lost ack");
    assert!(registry.running().is_empty());
    assert!(!registry.holds(id));
}

#[test]
fn a_task_admitted_before_a_report_is_in_it_before_its_spawn_returns() {
    let registry = registry();
    let id = registry
        .admit("slow spawn".into(), Instant::now(), TaskKind::Async)
        .unwrap();
    registry.shut_down();
    let by = registry.next_shutdown();
    let aborting = registry.abort_all(AbortBy::Shutdown(by));
    assert_eq!((aborting.aborted, aborting.blocking), (1, 0));
    let report = registry.report(Some(by), Duration::ZERO);
    assert_eq!(report.counts().spawned, 1);
    assert_eq!(report.unresponsive()[0].id(), TaskId(id));

    // The spawn returns: the abort the set owes the task is issued now.
    let aborts = ABORTS.with(Cell::get);
    registry.attach(id, ());
    assert_eq!(ABORTS.with(Cell::get), aborts + 1);
    registry.finish(id, Ending::Aborted);
    assert_eq!(registry.counts().aborted, 1);
    assert_eq!(registry.len(), 0);
}

#[test]
fn the_aborting_shutdowns_id_fits_in_an_entrys_padding() {
    // Per live task: the id tagging an abort must not grow the entry.
    assert!(std::mem::size_of::<Entry<Tokio>>() <= 56);
}

#[test]
fn a_spawn_that_panicked_leaves_nothing_to_wait_for() {
    let registry = registry();
    let id = registry
        .admit("no runtime".into(), Instant::now(), TaskKind::Async)
        .unwrap();
    // What happens when `tokio::spawn` panics: the future, and with it
    // the ticket, is dropped; then the spawner abandons the admission.
    registry.finish(id, Ending::Aborted);
    registry.abandon(id);
    assert_eq!(registry.len(), 0);
    assert_eq!(registry.counts(), TaskCounts::default());
    assert!(!registry.holds(id));
}

#[test]
fn a_closed_registry_admits_nothing_and_counts_the_rejections() {
    let registry = registry();
    registry.close();
    let refusal = registry
        .admit("late".into(), Instant::now(), TaskKind::Async)
        .unwrap_err();
    assert_eq!((&*refusal.label, refusal.phase), ("late", Phase::Closed));
    assert_eq!(registry.len(), 0);
    let counts = registry.counts();
    assert_eq!((counts.spawned, counts.rejected), (0, 1));
}

#[test]
fn a_tracked_future_is_never_aborted_and_ends_without_an_attach() {
    let registry = registry();
    let id = registry
        .admit("serve".into(), Instant::now(), TaskKind::Tracked)
        .unwrap();
    registry.shut_down();
    let by = registry.next_shutdown();
    let aborts = ABORTS.with(Cell::get);
    let aborting = registry.abort_all(AbortBy::Shutdown(by));
    assert_eq!(aborting.tracked_futures, 1);
    assert_eq!(aborting.aborted + aborting.blocking, 0);
    assert_eq!(ABORTS.with(Cell::get), aborts, "nothing to abort");
    let report = registry.report(Some(by), Duration::ZERO);
    assert!(report.aborted().is_empty());
    assert!(report.unresponsive()[0].is_tracked_future());

    // Dropped by its caller: it was not aborted by this shutdown.
    registry.finish(id, Ending::Aborted);
    assert_eq!(registry.len(), 0);
    assert!(!registry.holds(id));
    assert_eq!(registry.counts().aborted, 1);
}

#[test]
fn the_first_failure_is_decided_once_and_settled_by_a_report_without_one() {
    let registry = registry();
    for label in ["first", "second"] {
        let id = registry
            .admit(label.into(), Instant::now(), TaskKind::Async)
            .unwrap();
        registry.attach(id, ());
        registry.finish(id, Ending::Failed(label.to_owned()));
    }
    let First::Failed(first) = registry.first_failure() else {
        panic!("a task failed");
    };
    assert_eq!(first.label(), "first");
    registry.shut_down();
    registry.report(None, Duration::ZERO);
    assert_eq!(registry.first_failure(), First::Failed(first));

    let quiet = self::registry();
    quiet.shut_down();
    quiet.report(None, Duration::ZERO);
    assert_eq!(quiet.first_failure(), First::Settled);
}
