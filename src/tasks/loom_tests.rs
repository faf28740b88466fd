//! Loom models of the task registry (`registry.rs`): a task's admission,
//! spawn, handle attach and end, against shutdown's close, abort-all and
//! report; `wait()`'s wake against a close, the last end, a reopen and a
//! refill (`lifecycle.rs`); the first failure of tasks failing at once
//! (`failures.rs`). Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --lib --release loom`.
//!
//! tokio is invisible to loom, so the registry runs on [`Model`]: an abort
//! handle is a flag the task reads once when it ends (an abort lands, or the
//! task ends by itself first), "spawning" starts a loom thread that runs the
//! task, a `Notify` is a count of wakes (a waiter registered before a wake
//! is woken by it), and the failure policy's token is a count of cancels.
//! The shutdown is the one
//! with no grace and no abort wait, the one that waits least: whatever it
//! reports, a shutdown that waits longer reports from a later state.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use tokio::time::Instant;

use super::entry::AbortBy;
use super::failures::First;
use super::outcome::Ending;
use super::registry::Registry;
use super::report::{ShutdownReport, TaskId, TaskKind};
use super::runtime::Runtime;

/// The registry's runtime in the models.
struct Model;

/// A task's abort handle: a flag.
#[derive(Clone)]
struct Abort(Arc<AtomicBool>);

impl Abort {
    fn new() -> Self {
        Abort(Arc::new(AtomicBool::new(false)))
    }

    fn requested(&self) -> bool {
        // SeqCst: a stand-in; tokio's abort synchronizes with the task.
        self.0.load(Ordering::SeqCst)
    }
}

/// How often a signal was woken. A waiter notes the count when it
/// registers; it is woken if the count has grown since.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wakes {
    fn count(&self) -> usize {
        // SeqCst: a stand-in; `Notify` orders a registration and a wake.
        self.0.load(Ordering::SeqCst)
    }
}

/// How often the failure policy cancelled the set's token.
#[derive(Clone, Default)]
struct Cancels(Arc<AtomicUsize>);

impl Cancels {
    fn count(&self) -> usize {
        // SeqCst: a stand-in; read after every thread has joined.
        self.0.load(Ordering::SeqCst)
    }
}

impl Runtime for Model {
    type Abort = Abort;
    type Signal = Wakes;
    type Token = Cancels;

    fn abort(task: &Abort) {
        // SeqCst: see `requested`.
        task.0.store(true, Ordering::SeqCst);
    }

    fn wake(signal: &Wakes) {
        // SeqCst: see `Wakes::count`.
        signal.0.fetch_add(1, Ordering::SeqCst);
    }

    fn cancel(token: &Cancels) {
        // SeqCst: see `Cancels::count`.
        token.0.fetch_add(1, Ordering::SeqCst);
    }

    fn now() -> Instant {
        Instant::from_std(std::time::Instant::now())
    }
}

fn registry() -> Arc<Registry<Model>> {
    Arc::new(Registry::new(8, "".into(), None))
}

/// Runs a task on its own thread: it fails (so that the report names it in
/// its kept failures) unless an abort reached it first.
fn run(registry: &Arc<Registry<Model>>, id: u64, abort: Abort) -> thread::JoinHandle<()> {
    let registry = Arc::clone(registry);
    thread::spawn(move || {
        let ending = if abort.requested() {
            Ending::Aborted
        } else {
            Ending::Failed(format!("task {id}"))
        };
        registry.finish(id, ending);
    })
}

/// What `TaskSet::spawn` does: admit, spawn, attach. `Some(id)` when the
/// spawn returns `Ok`.
fn spawn(registry: &Arc<Registry<Model>>, label: &'static str) -> Option<u64> {
    let id = registry
        .admit(Cow::Borrowed(label), Model::now(), TaskKind::Async)
        .ok()?;
    let abort = Abort::new();
    let task = run(registry, id, abort.clone());
    registry.attach(id, abort);
    task.join().unwrap();
    Some(id)
}

/// What `TaskSet::shutdown(Duration::ZERO)` does with an abort wait of zero.
fn shut_down(registry: &Registry<Model>) -> ShutdownReport {
    registry.shut_down();
    let aborted_by = if registry.len() == 0 {
        None
    } else {
        let by = registry.next_shutdown();
        registry.abort_all(AbortBy::Shutdown(by));
        Some(by)
    };
    registry.report(aborted_by, Duration::ZERO)
}

/// Every task in `spawned` is in exactly one column of `report`, and the
/// report holds nothing else; its counters add up.
fn assert_whole_account(report: &ShutdownReport, spawned: &[u64]) {
    let unlisted = assert_account(report, spawned);
    assert!(unlisted.is_empty(), "{unlisted:?} not named in {report:?}");
    let counts = report.counts();
    assert_eq!(counts.aborted, report.aborted().len() as u64, "{report:?}");
}

/// Like [`assert_whole_account`], for a report while another shutdown also
/// aborts: a task aborted on the other's behalf is counted as aborted but
/// listed by the other report only.
fn assert_account_beside_another(report: &ShutdownReport, spawned: &[u64]) {
    let unlisted = assert_account(report, spawned);
    let counts = report.counts();
    let listed = report.aborted().len() as u64;
    assert_eq!(counts.aborted, listed + unlisted.len() as u64, "{report:?}");
}

/// Checks that no task is in two columns, that nothing else is named, and
/// that the counters add up; returns the tasks that are in no column.
fn assert_account(report: &ShutdownReport, spawned: &[u64]) -> Vec<u64> {
    let mut columns: HashMap<TaskId, Vec<&str>> = HashMap::new();
    for failure in report.failures() {
        columns.entry(failure.id()).or_default().push("failed");
    }
    for task in report.aborted() {
        columns.entry(task.id()).or_default().push("aborted");
    }
    for task in report.unresponsive() {
        columns.entry(task.id()).or_default().push("unresponsive");
    }
    let mut unlisted = Vec::new();
    for &id in spawned {
        match columns.remove(&TaskId(id)) {
            None => unlisted.push(id),
            Some(found) => assert_eq!(found.len(), 1, "task {id} is in {found:?} of {report:?}"),
        }
    }
    assert!(columns.is_empty(), "never spawned: {columns:?}");
    let counts = report.counts();
    assert_eq!(counts.spawned, spawned.len() as u64, "{report:?}");
    assert_eq!(counts.completed + counts.panicked, 0, "{report:?}");
    assert_eq!(counts.failed, report.failures().len() as u64, "{report:?}");
    let accounted = counts.failed + counts.aborted + report.unresponsive().len() as u64;
    assert_eq!(accounted, counts.spawned, "{report:?}");
    unlisted
}

/// Once every thread has joined: nothing is tracked, every task's outcome is
/// counted once, and the set was seen idle.
fn assert_settled(registry: &Registry<Model>, spawned: &[u64]) {
    assert_eq!(registry.len(), 0, "live returns to 0");
    assert!(registry.running().is_empty());
    for &id in spawned {
        assert!(!registry.holds(id), "task {id} left something behind");
    }
    let counts = registry.counts();
    assert_eq!(counts.spawned, spawned.len() as u64);
    assert_eq!(counts.failed + counts.aborted, counts.spawned);
    assert_eq!(registry.failures().len() as u64, counts.failed);
    if !spawned.is_empty() {
        assert!(registry.idle().count() > 0, "never woken");
    }
}

/// A spawn on another thread races a shutdown. Covers every interleaving of
/// the admission (fast and locked `closed` checks, the entry's insert), the
/// task's end before or after its spawner attaches the handle (the early
/// path), the attach (with its abort owed to an abort-all that ran first),
/// against close, the idle check, abort-all and the report.
#[test]
fn loom_a_spawn_racing_a_shutdown_is_in_its_report_exactly_once() {
    loom::model(|| {
        let registry = registry();
        let spawner = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || spawn(&registry, "raced"))
        };
        let report = shut_down(&registry);
        let spawned: Vec<u64> = spawner.join().unwrap().into_iter().collect();
        assert_whole_account(&report, &spawned);
        // Rejected after the report was built, perhaps.
        let rejected = registry.counts().rejected;
        assert_eq!(rejected, 1 - spawned.len() as u64);
        assert_settled(&registry, &spawned);
    });
}

/// A task spawned before the shutdown ends while it runs, next to a spawn
/// that races it. Covers a task ending while abort-all and the report read
/// the shards (the report must find it in one column, and its failure kept
/// exactly when it is counted), next to the early path of the racing spawn.
#[test]
fn loom_tasks_ending_and_admitted_during_a_shutdown_are_each_in_its_report_once() {
    loom::model(|| {
        let registry = registry();
        let first = registry
            .admit(Cow::Borrowed("running"), Model::now(), TaskKind::Async)
            .ok()
            .unwrap();
        let first_abort = Abort::new();
        registry.attach(first, first_abort.clone());
        let first_task = run(&registry, first, first_abort);
        let spawner = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || spawn(&registry, "raced"))
        };
        let report = shut_down(&registry);
        first_task.join().unwrap();
        let mut spawned = vec![first];
        spawned.extend(spawner.join().unwrap());
        assert_whole_account(&report, &spawned);
        assert_settled(&registry, &spawned);
    });
}

/// Two shutdowns race a spawn. Covers the attribution of aborts: an entry
/// tagged by one abort-all and retagged by the other, aborts owed at attach,
/// and each report taking only its own aborts. Each report accounts for the
/// task once (an abort on the other's behalf is counted, and listed by the
/// other only), and its abort is listed by one report at most.
#[test]
fn loom_two_shutdowns_racing_a_spawn_each_report_it_once_and_list_its_abort_once() {
    loom::model(|| {
        let registry = registry();
        let spawner = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || spawn(&registry, "raced"))
        };
        let other = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || shut_down(&registry))
        };
        let report = shut_down(&registry);
        let other = other.join().unwrap();
        let spawned: Vec<u64> = spawner.join().unwrap().into_iter().collect();
        assert_account_beside_another(&report, &spawned);
        assert_account_beside_another(&other, &spawned);
        assert!(report.aborted().len() + other.aborted().len() <= 1);
        assert_settled(&registry, &spawned);
    });
}

/// Admits and attaches a task that the model then ends by hand.
fn admitted(registry: &Registry<Model>, label: &'static str) -> u64 {
    let id = registry
        .admit(Cow::Borrowed(label), Model::now(), TaskKind::Async)
        .ok()
        .unwrap();
    registry.attach(id, Abort::new());
    id
}

/// `wait()` registers, then reads the set's word once; from then on only a
/// wake ends it. The set is closed while its last task ends on another
/// thread (either may be what drains it), then reopened and refilled while
/// the waiter may still be about to read. Covers the close's and the end's
/// read-modify-writes in both orders, each reading the other's effect or
/// not, and the waiter's read anywhere among them: the waiter finds the set
/// drained or is woken (it is never fooled into waiting on by the refill),
/// and the set is woken drained exactly once.
#[test]
fn loom_wait_is_woken_by_whatever_drains_the_set_even_if_it_refills_before_the_waiter_looks() {
    loom::model(|| {
        let registry = registry();
        let task = admitted(&registry, "last");
        // What `wait()` does first: register (note the wakes so far).
        let registered = registry.drained().count();
        let waiter = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || registry.lifecycle().is_drained())
        };
        let ending = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || registry.finish(task, Ending::Completed))
        };
        assert!(registry.close());
        ending.join().unwrap();
        assert!(registry.reopen());
        let refill = admitted(&registry, "refill");
        let saw_drained = waiter.join().unwrap();
        let woken = registry.drained().count() > registered;
        assert!(saw_drained || woken, "wait() would hang");
        assert_eq!(registry.drained().count(), 1, "drained once, woken once");
        assert!(!registry.lifecycle().is_drained(), "refilled");
        registry.finish(refill, Ending::Completed);
        assert_eq!(registry.len(), 0);
    });
}

/// Two tasks on different shards fail at once while a shutdown reports.
/// Covers the two failures' keeps under the kept failures' lock in either
/// order, and the report's settle before, between or after them: exactly
/// one failure is ever the first (or none, settled by a report that saw no
/// failure), the report agrees with it, and the policy's cancel runs once
/// per first failure.
#[test]
fn loom_of_two_tasks_failing_at_once_exactly_one_is_the_first_failure() {
    loom::model(|| {
        let cancels = Cancels::default();
        let registry = Arc::new(Registry::<Model>::new(8, "".into(), Some(cancels.clone())));
        let first_task = admitted(&registry, "a");
        let second_task = admitted(&registry, "b");
        let failing: Vec<_> = [first_task, second_task]
            .into_iter()
            .map(|id| {
                let registry = Arc::clone(&registry);
                thread::spawn(move || registry.finish(id, Ending::Failed(format!("task {id}"))))
            })
            .collect();
        let report = shut_down(&registry);
        for task in failing {
            task.join().unwrap();
        }
        match registry.first_failure() {
            First::Failed(first) => {
                assert!([first_task, second_task].contains(&first.id().as_u64()));
                assert_eq!(cancels.count(), 1, "the policy acts once");
                assert_eq!(registry.failures()[0], first, "the first kept is the first");
                if let Some(seen) = report.failures().first() {
                    assert_eq!(*seen, first, "{report:?}");
                }
            }
            First::Settled => {
                assert!(report.failures().is_empty(), "{report:?}");
                assert_eq!(cancels.count(), 0);
            }
            First::Waiting => panic!("a shutdown reported: the first failure is decided"),
        }
        assert_eq!(registry.counts().failed, 2);
        assert!(registry.failed().count() >= 1, "first_failure() is woken");
    });
}
