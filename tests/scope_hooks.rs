//! `scope`: interrupt hooks. A hook runs exactly once when its scope is interrupted, on
//! the interrupting thread, with no lock held; dropped or disarmed in time, never. Under
//! tokio's paused clock, except where threads are the point.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::ThreadId;
use std::time::Duration;

use hangfree::{CancelScope, Cause, Interrupted};
use tokio::time::{Instant, advance, sleep};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

/// What hooks saw: each run's cause, instant (tokio's clock) and thread.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<Vec<(Interrupted, Instant, ThreadId)>>>);

impl Runs {
    fn hook(&self) -> impl FnOnce(&Interrupted) + Send + 'static {
        let runs = self.0.clone();
        move |why: &Interrupted| {
            runs.lock()
                .unwrap()
                .push((why.clone(), Instant::now(), std::thread::current().id()));
        }
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn only(&self) -> (Interrupted, Instant, ThreadId) {
        let runs = self.0.lock().unwrap();
        assert_eq!(runs.len(), 1, "ran {} times", runs.len());
        runs[0].clone()
    }
}

#[tokio::test(start_paused = true)]
async fn a_hook_runs_once_when_its_scope_is_cancelled() {
    let scope = CancelScope::new();
    let runs = Runs::default();
    let _hook = scope.on_interrupt(runs.hook());
    assert_eq!(runs.count(), 0);
    scope.cancel_with("done with it");
    scope.cancel();
    let (why, _, thread) = runs.only();
    assert_eq!(why.reason(), Some("done with it"));
    assert_eq!(
        thread,
        std::thread::current().id(),
        "on the cancelling thread"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hook_alone_makes_the_deadline_watched() {
    let start = Instant::now();
    let scope = CancelScope::new().with_timeout(5 * SECOND);
    let runs = Runs::default();
    let _hook = scope.on_interrupt(runs.hook());
    // Nothing waits on the scope: the hook's registration armed the deadline.
    sleep(4 * SECOND + 999 * MS).await;
    assert_eq!(runs.count(), 0);
    sleep(MS).await;
    let (why, at, _) = runs.only();
    assert_eq!(at, start + 5 * SECOND, "at the deadline exactly");
    assert_eq!(why.cause(), Cause::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn a_hook_on_a_child_gets_the_cause_its_ancestor_passed_down() {
    let start = Instant::now();
    let job = CancelScope::new().with_timeout(10 * SECOND);
    let table = job.child();
    let runs = Runs::default();
    let _hook = table.on_interrupt(runs.hook());
    sleep(11 * SECOND).await;
    let (why, at, _) = runs.only();
    assert_eq!(at, start + 10 * SECOND);
    assert_eq!(why.cause(), Cause::InheritedDeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn a_hook_dropped_before_the_interrupt_never_runs() {
    let scope = CancelScope::new().with_timeout(SECOND);
    let runs = Runs::default();
    let hook = scope.on_interrupt(runs.hook());
    let kept = scope.on_interrupt(runs.hook());
    drop(hook);
    sleep(2 * SECOND).await;
    assert!(scope.is_cancelled());
    assert_eq!(runs.count(), 1, "only the hook still registered ran");
    drop(kept);
}

#[tokio::test(start_paused = true)]
async fn disarm_says_whether_it_stopped_the_hook_in_time() {
    let scope = CancelScope::new();
    let runs = Runs::default();
    let stopped = scope.on_interrupt(runs.hook());
    let too_late = scope.on_interrupt(runs.hook());
    assert!(stopped.disarm(), "disarmed before the interrupt");
    scope.cancel();
    assert!(!too_late.disarm(), "it had run");
    assert_eq!(runs.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hook_on_an_already_interrupted_scope_runs_before_on_interrupt_returns() {
    let cancelled = CancelScope::new();
    cancelled.cancel_with("stopped earlier");
    let child_of_cancelled = cancelled.child();
    // Past its deadline by the clock, though no timer has run: nothing was armed.
    let overdue = CancelScope::new().with_timeout(SECOND);
    advance(2 * SECOND).await;

    for (scope, expected) in [
        (&cancelled, Cause::Cancelled),
        (&child_of_cancelled, Cause::Cancelled),
        (&overdue, Cause::DeadlineExceeded),
    ] {
        let runs = Runs::default();
        let hook = scope.on_interrupt(runs.hook());
        let (why, _, thread) = runs.only();
        assert_eq!(why.cause(), expected);
        assert_eq!(thread, std::thread::current().id());
        assert!(!hook.disarm(), "a hook that ran cannot be disarmed");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_hook_leaves_the_others_running_and_the_scope_usable() {
    let scope = CancelScope::new();
    let runs = Runs::default();
    let _before = scope.on_interrupt(runs.hook());
    let _panics = scope.on_interrupt(|_| panic!("a hook with a bug"));
    let _after = scope.on_interrupt(runs.hook());
    scope.cancel();
    assert_eq!(runs.count(), 2, "both other hooks ran");

    // Nothing is poisoned: every method still works, a new hook runs at once.
    assert!(scope.check().is_err());
    assert!(scope.token().is_cancelled());
    assert!(scope.child().is_cancelled());
    let late = Runs::default();
    let _late = scope.on_interrupt(late.hook());
    assert_eq!(late.count(), 1);
    let _also_panics = scope.on_interrupt(|_| panic!("at once, too"));
}

/// Runs `interrupt` on a thread of its own and waits for it (a real wait, bounded: a
/// hook that deadlocks on a lock held by the walk would never let it return).
fn on_another_thread(interrupt: impl FnOnce() + Send + 'static) -> ThreadId {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        interrupt();
        done.send(()).unwrap();
    });
    let id = thread.thread().id();
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the interrupt returned: no hook deadlocked");
    thread.join().unwrap();
    id
}

/// A hook that uses every kind of method on its scope, its parent and a sibling, as
/// nothing held under a lock could.
fn busy_hook(
    scope: &CancelScope,
    parent: &CancelScope,
    sibling: &CancelScope,
    runs: &Runs,
) -> hangfree::scope::InterruptHook {
    let (scope2, parent, sibling) = (scope.clone(), parent.clone(), sibling.clone());
    let record = runs.hook();
    scope.on_interrupt(move |why| {
        assert!(scope2.is_cancelled() && scope2.check().is_err());
        let _ = scope2.token();
        let child = scope2.child().with_name("made in a hook");
        assert!(child.is_cancelled());
        let _nested = parent.on_interrupt(|_| {});
        let _shield = parent.shield(SECOND);
        let _ = parent.token();
        sibling.cancel_with("cancelled from a hook");
        record(why);
    })
}

#[test]
fn hooks_run_on_the_interrupting_thread_with_no_lock_held() {
    let parent = CancelScope::new();
    let scope = parent.child();
    let sibling = parent.child();
    let runs = Runs::default();
    let _hook = busy_hook(&scope, &parent, &sibling, &runs);
    let canceller = on_another_thread({
        let parent = parent.clone();
        move || parent.cancel()
    });
    let (why, _, thread) = runs.only();
    assert_eq!(thread, canceller);
    assert_eq!(why.cause(), Cause::Cancelled);
    assert!(sibling.is_cancelled());
}

#[test]
fn a_hook_started_through_a_token_holds_no_lock_of_tokio_util_either() {
    let parent = CancelScope::new();
    let token = parent.token();
    let scope = parent.child();
    let sibling = parent.child();
    let runs = Runs::default();
    let _hook = busy_hook(&scope, &parent, &sibling, &runs);
    let canceller = on_another_thread(move || token.cancel());
    let (_, _, thread) = runs.only();
    assert_eq!(thread, canceller, "on the thread that cancelled the token");
}

#[test]
fn a_hook_started_by_a_deadline_holds_no_lock_of_the_timer_either() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let parent = CancelScope::new().with_timeout(SECOND);
        let scope = parent.child();
        let sibling = CancelScope::new();
        let runs = Runs::default();
        let _hook = busy_hook(&scope, &parent, &sibling, &runs);
        // Bounded: a deadlock in the timer's wake would end the test here.
        tokio::time::timeout(10 * SECOND, sibling.cancelled())
            .await
            .expect("the hook ran at the deadline");
        assert_eq!(runs.only().0.cause(), Cause::InheritedDeadlineExceeded);
    });
}

#[tokio::test(start_paused = true)]
async fn a_hook_keeps_its_scope_and_deadline_alive() {
    let start = Instant::now();
    let runs = Runs::default();
    let hook = {
        let scope = CancelScope::new().with_timeout(3 * SECOND);
        scope.on_interrupt(runs.hook())
    };
    sleep(10 * SECOND).await;
    assert_eq!(runs.only().1, start + 3 * SECOND);
    drop(hook);
}

#[test]
fn outside_a_runtime_the_alarm_watches_a_hooks_deadline() {
    // Real time, short: no runtime anywhere, so the alarm thread is what fires it.
    let began = std::time::Instant::now();
    let scope = CancelScope::new().with_timeout(50 * MS);
    let (ran, told) = mpsc::channel();
    let _hook = scope.on_interrupt(move |why| {
        ran.send((why.cause(), began.elapsed())).unwrap();
    });
    let (cause, at) = told
        .recv_timeout(Duration::from_secs(5))
        .expect("the hook ran without a runtime");
    assert_eq!(cause, Cause::DeadlineExceeded);
    assert!(at >= 50 * MS && at < SECOND, "ran after {at:?}");
}

/// A hook on `scope` that counts its runs.
fn counted_hook(scope: &CancelScope) -> (hangfree::scope::InterruptHook, Arc<AtomicUsize>) {
    let ran = Arc::new(AtomicUsize::new(0));
    let hook = scope.on_interrupt({
        let ran = ran.clone();
        move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
        }
    });
    (hook, ran)
}

#[test]
fn racing_cancels_run_each_hook_exactly_once_and_disarm_is_true_exactly_when_it_never_ran() {
    const ROUNDS: usize = 2_000;
    const HOOKS: usize = 8;
    for round in 0..ROUNDS {
        let root = CancelScope::new();
        let scope = root.child();
        let (hooks, runs): (Vec<_>, Vec<_>) = (0..HOOKS).map(|_| counted_hook(&scope)).unzip();
        let cancellers: Vec<_> = [root.clone(), scope.clone(), root.clone()]
            .into_iter()
            .map(|s| std::thread::spawn(move || s.cancel()))
            .collect();
        // Half the hooks are disarmed while the cancels race.
        let mut disarmed = Vec::new();
        for (i, hook) in hooks.into_iter().enumerate() {
            if i % 2 == 0 {
                disarmed.push((i, hook.disarm()));
            } else {
                drop_later(hook);
            }
        }
        for canceller in cancellers {
            canceller.join().unwrap();
        }
        for (i, stopped) in disarmed {
            let ran = runs[i].load(Ordering::SeqCst);
            assert_eq!(
                ran,
                usize::from(!stopped),
                "round {round}: hook {i} disarmed {stopped}, ran {ran} times"
            );
        }
        for (i, count) in runs.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            assert_eq!(count.load(Ordering::SeqCst), 1, "round {round}: hook {i}");
        }
        HELD.lock().unwrap().clear();
    }
}

static HELD: Mutex<Vec<hangfree::scope::InterruptHook>> = Mutex::new(Vec::new());

/// Keeps a hook registered until the round is over.
fn drop_later(hook: hangfree::scope::InterruptHook) {
    HELD.lock().unwrap().push(hook);
}

/// A thread that disarms `hooks` the moment `seen()` reads true, spinning until then. It
/// is running when this returns; joining it gives each `disarm`'s answer.
fn disarm_on_seeing(
    seen: impl Fn() -> bool + Send + 'static,
    hooks: Vec<hangfree::scope::InterruptHook>,
) -> std::thread::JoinHandle<Vec<bool>> {
    let (watching, watched) = mpsc::channel();
    let watcher = std::thread::spawn(move || {
        watching.send(()).unwrap();
        while !seen() {
            std::hint::spin_loop();
        }
        hooks.into_iter().map(|hook| hook.disarm()).collect()
    });
    watched.recv().unwrap();
    watcher
}

/// The guard of a hook often lives in the future that an interrupt stops: a query's
/// hook, armed inside the work that its table's scope guards. When that work sees the
/// table cancelled (through the root) and is dropped, the query's scope is being
/// interrupted too, by the same cancel; the walk that marks the tree may just not have
/// reached it. Dropping the guard then must not stop the hook: it runs, exactly once,
/// and `disarm` says it was too late. Here the walk has many scopes to mark under the
/// table before the query, and a thread that watches the table lets go of the guard the
/// moment it reads the table cancelled.
#[test]
fn a_hook_still_runs_when_its_guard_is_dropped_on_seeing_an_ancestor_cancelled() {
    const ROUNDS: usize = 200;
    const SIBLINGS: usize = 200;
    for round in 0..ROUNDS {
        let root = CancelScope::new();
        let table = root.child();
        let query = table.child();
        // Made after the query, so that the walk marks them before it.
        let siblings: Vec<CancelScope> = (0..SIBLINGS).map(|_| table.child()).collect();
        let (hook, ran) = counted_hook(&query);
        let watcher = disarm_on_seeing(
            {
                let table = table.clone();
                move || table.is_cancelled()
            },
            vec![hook],
        );
        root.cancel();
        let stopped_in_time = watcher.join().unwrap();
        assert_eq!(
            stopped_in_time,
            [false],
            "round {round}: disarmed after the table was seen cancelled"
        );
        assert_eq!(
            ran.load(Ordering::SeqCst),
            1,
            "round {round}: the query's hook"
        );
        assert!(query.is_cancelled());
        drop(siblings);
    }
}

/// The same when the cancel comes through the token a scope was made from: a thread that
/// watches the token lets go of the guards the moment the token reads cancelled, which
/// may be before the scope has heard of it (tokio-util marks the token, then wakes what
/// watches it).
#[test]
fn a_hook_still_runs_when_its_guard_is_dropped_on_seeing_the_scopes_token_cancelled() {
    const ROUNDS: usize = 200;
    for round in 0..ROUNDS {
        let token = tokio_util::sync::CancellationToken::new();
        let root = CancelScope::from_token(&token);
        let query = root.child();
        // One hook on the scope made from the token, one on its child.
        let (on_root, root_ran) = counted_hook(&root);
        let (on_query, query_ran) = counted_hook(&query);
        let watcher = disarm_on_seeing(
            {
                let token = token.clone();
                move || token.is_cancelled()
            },
            vec![on_root, on_query],
        );
        token.cancel();
        let stopped_in_time = watcher.join().unwrap();
        assert_eq!(
            stopped_in_time,
            [false, false],
            "round {round}: disarmed after the token was seen cancelled"
        );
        for (which, ran) in [("root", &root_ran), ("query", &query_ran)] {
            assert_eq!(
                ran.load(Ordering::SeqCst),
                1,
                "round {round}: the {which}'s hook"
            );
        }
        assert!(query.is_cancelled());
    }
}
