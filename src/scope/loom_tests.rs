//! Loom models of the scope protocol in `signal.rs`: the waiter slab against an
//! interrupt, interrupt hooks registered, removed and run against interrupts, and the
//! marking of a tree against reads, registrations, new children, dropped scopes and
//! cancels that come through tokens.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --lib --release loom`. tokio-util's token
//! is invisible to loom, so the models use `TestToken`, a stand-in with the same tree
//! semantics that can be told to mark itself before waking (as tokio-util does today) or
//! to wake its children and waiters *before* it marks itself, an order tokio-util does
//! not rule out. Every model that involves a token runs in both orders.

use std::task::{Wake, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::Interrupted;
use super::loom_stand_ins::{Order, TestToken, use_order};
use super::signal::{Hook, Signal, Token, Unhooked, run_hook};
use crate::sync::Arc;

type TestSignal = Signal<TestToken>;

/// A waker that counts its wakes and checks, when woken, that every signal it watches
/// reads interrupted.
struct Observer {
    woken: AtomicUsize,
    must_be_interrupted: Vec<TestSignal>,
}

impl Wake for Observer {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        for signal in &self.must_be_interrupted {
            assert!(signal.is_interrupted(), "woken below a running scope");
        }
        self.woken.fetch_add(1, Ordering::SeqCst);
    }
}

fn observer(must_be_interrupted: &[&TestSignal]) -> std::sync::Arc<Observer> {
    std::sync::Arc::new(Observer {
        woken: AtomicUsize::new(0),
        must_be_interrupted: must_be_interrupted.iter().map(|s| (*s).clone()).collect(),
    })
}

fn woken(observer: &std::sync::Arc<Observer>) -> usize {
    observer.woken.load(Ordering::SeqCst)
}

/// What dropping their scopes does: every level leaves the tree (and loom checks that
/// nothing is left of them).
fn drop_scopes(signals: &[&TestSignal]) {
    for signal in signals {
        signal.release();
    }
}

fn cancelled() -> Interrupted {
    Interrupted::cancelled()
}

/// Cancels `signal` on a thread of its own.
fn cancel_on_another_thread(signal: &TestSignal) -> thread::JoinHandle<()> {
    let signal = signal.clone();
    thread::spawn(move || signal.interrupt(cancelled()))
}

/// Runs `f` under loom and prints how many interleavings it explored.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    loom::model(move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    println!(
        "{} interleavings",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

fn in_both_orders(f: impl Fn() + Sync + Send + Clone + 'static) {
    for order in [Order::MarkFirst, Order::WakeFirst] {
        let f = f.clone();
        model(move || {
            use_order(order);
            f();
        });
    }
}

/// A guarded future registers, refreshes with another task's waker, and refreshes with
/// the same one, while another thread interrupts: exactly the waker registered when the
/// interrupt comes is woken, once, and the slab keeps no waker afterwards.
#[test]
fn loom_waiter_register_and_refresh_against_interrupt() {
    model(|| {
        let signal: TestSignal = Signal::root();
        let (first, second) = (observer(&[]), observer(&[]));
        let interrupter = cancel_on_another_thread(&signal);
        let mut key = None;
        let a = signal.register(&mut key, &Waker::from(first.clone()));
        let b = a && signal.register(&mut key, &Waker::from(second.clone()));
        let same = b && signal.register(&mut key, &Waker::from(second.clone()));
        interrupter.join().unwrap();
        assert!(signal.is_interrupted());
        assert!(!signal.register(&mut key, &Waker::from(second.clone())));
        assert_eq!(key, None, "a refused registration clears its key");

        match (a, b, same) {
            (false, _, _) => assert_eq!(woken(&first) + woken(&second), 0),
            (true, false, _) => assert_eq!((woken(&first), woken(&second)), (1, 0)),
            (true, true, _) => assert_eq!((woken(&first), woken(&second)), (0, 1)),
        }
        assert_eq!(std::sync::Arc::strong_count(&first), 1, "waker left behind");
        assert_eq!(
            std::sync::Arc::strong_count(&second),
            1,
            "waker left behind"
        );
    });
}

/// Two waiters register, one leaves and a third takes its slot, while another thread
/// interrupts: every waiter still registered is woken once, the freed slot is reused,
/// and no waker is left behind.
#[test]
fn loom_waiter_slot_reuse_against_interrupt() {
    model(|| {
        let signal: TestSignal = Signal::root();
        let (a, b, c) = (observer(&[]), observer(&[]), observer(&[]));
        let interrupter = cancel_on_another_thread(&signal);
        let (mut ka, mut kb, mut kc) = (None, None, None);
        let a_in = signal.register(&mut ka, &Waker::from(a.clone()));
        let b_in = signal.register(&mut kb, &Waker::from(b.clone()));
        let a_slot = ka;
        if let Some(key) = ka.take() {
            signal.deregister(key);
        }
        let c_in = signal.register(&mut kc, &Waker::from(c.clone()));
        interrupter.join().unwrap();

        assert!(woken(&a) <= usize::from(a_in));
        assert_eq!(woken(&b), usize::from(b_in));
        assert_eq!(woken(&c), usize::from(c_in));
        if let (Some(freed), Some(taken)) = (a_slot, kc) {
            assert_eq!(freed, taken, "the freed slot is reused");
        }
        for key in [kb, kc].into_iter().flatten() {
            signal.deregister(key);
        }
        for waker in [&a, &b, &c] {
            assert_eq!(std::sync::Arc::strong_count(waker), 1, "waker left behind");
        }
    });
}

/// Two threads register on one level while a third interrupts it. A registration that
/// finds the waiters lock held makes the level's shards; each thread then registers
/// again, into its shard once they exist. Every waiter registered, in whichever slab, is
/// woken once; none is left behind.
#[test]
fn loom_waiters_registered_while_contended_against_interrupt() {
    model(|| {
        let signal: TestSignal = Signal::root();
        let register_twice = |signal: &TestSignal| {
            let (first, second) = (observer(&[]), observer(&[]));
            let (mut k1, mut k2) = (None, None);
            let in1 = signal.register(&mut k1, &Waker::from(first.clone()));
            let in2 = signal.register(&mut k2, &Waker::from(second.clone()));
            [(first, in1, k1), (second, in2, k2)]
        };
        let other = {
            let signal = signal.clone();
            thread::spawn(move || register_twice(&signal))
        };
        let interrupter = cancel_on_another_thread(&signal);
        let mine = register_twice(&signal);
        let theirs = other.join().unwrap();
        interrupter.join().unwrap();
        for (waker, registered, key) in mine.into_iter().chain(theirs) {
            assert_eq!(woken(&waker), usize::from(registered));
            if let Some(key) = key {
                signal.deregister(key);
            }
            assert_eq!(std::sync::Arc::strong_count(&waker), 1, "waker left behind");
        }
    });
}

/// On a level whose waiters are sharded, a registration, a refresh with another
/// task's waker and a deregistration race an interrupt: exactly the waker registered
/// when the interrupt comes is woken, once, and no waker is left behind.
#[test]
fn loom_sharded_waiters_register_and_refresh_against_interrupt() {
    model(|| {
        let signal: TestSignal = Signal::root();
        signal.contend();
        let (first, second, gone) = (observer(&[]), observer(&[]), observer(&[]));
        let leaver = {
            let signal = signal.clone();
            let gone = gone.clone();
            thread::spawn(move || {
                let mut key = None;
                signal.register(&mut key, &Waker::from(gone));
                if let Some(key) = key {
                    signal.deregister(key);
                }
            })
        };
        let interrupter = cancel_on_another_thread(&signal);
        let mut key = None;
        let a = signal.register(&mut key, &Waker::from(first.clone()));
        let b = a && signal.register(&mut key, &Waker::from(second.clone()));
        interrupter.join().unwrap();
        leaver.join().unwrap();
        match (a, b) {
            (false, _) => assert_eq!(woken(&first) + woken(&second), 0),
            (true, false) => assert_eq!((woken(&first), woken(&second)), (1, 0)),
            (true, true) => assert_eq!((woken(&first), woken(&second)), (0, 1)),
        }
        assert!(woken(&gone) <= 1);
        for waker in [&first, &second, &gone] {
            assert_eq!(std::sync::Arc::strong_count(waker), 1, "waker left behind");
        }
    });
}

/// A root is cancelled while another thread reads and waits on a grandchild: whoever
/// sees the grandchild interrupted (a read, a refused registration, a wake) sees the
/// child and the root interrupted too.
#[test]
fn loom_a_cancel_marks_ancestors_before_a_descendant_is_seen_interrupted() {
    model(|| {
        let root: TestSignal = Signal::root();
        let child = Signal::child(&root);
        let grandchild = Signal::child(&child);
        let cancel = cancelled();
        let canceller = {
            let (root, cancel) = (root.clone(), cancel.clone());
            thread::spawn(move || root.interrupt(cancel))
        };
        let waiter = observer(&[&root, &child]);
        let mut key = None;
        let registered = grandchild.register(&mut key, &Waker::from(waiter.clone()));
        if !registered || grandchild.is_interrupted() {
            assert!(child.is_interrupted() && root.is_interrupted());
        }
        canceller.join().unwrap();
        assert!(grandchild.is_interrupted());
        assert_eq!(woken(&waiter), usize::from(registered));
        assert_eq!(grandchild.cause(), cancel);
        drop_scopes(&[&grandchild, &child, &root]);
    });
}

/// The root's deadline fires on one thread while the child is cancelled on another:
/// whichever wins, every scope's cause is the one its parent passed down (the child's
/// own cancel, or the root's deadline, inherited), and a reader that sees the
/// grandchild interrupted sees the child interrupted.
#[test]
fn loom_racing_interrupts_pass_each_scope_its_parents_cause() {
    model(|| {
        let root: TestSignal = Signal::root();
        let child = Signal::child(&root);
        let grandchild = Signal::child(&child);
        let deadline = Interrupted::deadline(
            false,
            tokio::time::Instant::now(),
            std::time::Duration::from_secs(1),
        );
        let fire = {
            let (root, deadline) = (root.clone(), deadline.clone());
            thread::spawn(move || root.interrupt(deadline))
        };
        let own_cancel = cancelled();
        let cancel = {
            let (child, own_cancel) = (child.clone(), own_cancel.clone());
            thread::spawn(move || child.interrupt(own_cancel))
        };
        if grandchild.is_interrupted() {
            assert!(child.is_interrupted());
        }
        fire.join().unwrap();
        cancel.join().unwrap();
        assert_eq!(root.cause(), deadline);
        let child_cause = child.cause();
        assert!(child_cause == own_cancel || child_cause == deadline.inherited());
        assert_eq!(grandchild.cause(), child_cause.inherited());
        drop_scopes(&[&grandchild, &child, &root]);
    });
}

/// A child made while its parent is cancelled on another thread is interrupted either
/// way: born interrupted, or reached by the cancel.
#[test]
fn loom_a_child_made_during_a_cancel_is_interrupted() {
    model(|| {
        let root: TestSignal = Signal::root();
        let cancel = cancelled();
        let canceller = {
            let (root, cancel) = (root.clone(), cancel.clone());
            thread::spawn(move || root.interrupt(cancel))
        };
        let child = Signal::child(&root);
        let grandchild = Signal::child(&child);
        canceller.join().unwrap();
        assert!(child.is_interrupted() && grandchild.is_interrupted());
        assert_eq!(grandchild.cause(), cancel);
        drop_scopes(&[&root, &child, &grandchild]);
    });
}

/// A grandchild hands out its first token, which makes its own, its parent's and its
/// grandparent's internal tokens on the way, while the root is cancelled on another
/// thread: the token ends up cancelled either way (made from a cancelled parent, made
/// cancelled for a marked node, or reached by the walk), and a token seen cancelled
/// means every scope up to the root reads interrupted.
#[test]
fn loom_a_token_made_during_a_cancel_ends_up_cancelled() {
    in_both_orders(|| {
        let root: TestSignal = Signal::root();
        let child = Signal::child(&root);
        let grandchild = Signal::child(&child);
        let canceller = cancel_on_another_thread(&root);
        let token = grandchild.token();
        if token.is_cancelled() {
            assert!(
                root.is_interrupted() && child.is_interrupted(),
                "token cancelled, scopes running"
            );
        }
        canceller.join().unwrap();
        assert!(
            token.is_cancelled(),
            "a token of an interrupted scope left uncancelled"
        );
        assert!(grandchild.is_interrupted());
        drop_scopes(&[&grandchild, &child, &root]);
    });
}

/// A child hands out its first token, which makes the root's internal token on the way,
/// and is dropped, while the root is cancelled on another thread: the token outlives the
/// child and is cancelled with the root, also when the root's internal token was made
/// while the cancel was settling the root.
#[test]
fn loom_a_token_made_during_a_cancel_by_a_scope_dropped_at_once_is_cancelled_with_the_root() {
    model(|| {
        let root: TestSignal = Signal::root();
        let child = Signal::child(&root);
        let canceller = cancel_on_another_thread(&root);
        let token = child.token();
        child.release();
        drop(child);
        canceller.join().unwrap();
        assert!(
            token.is_cancelled(),
            "a token outlived its scope uncancelled"
        );
        drop_scopes(&[&root]);
    });
}

/// The middle of a chain is dropped while the root is cancelled: the scope below it
/// is interrupted either way, and whoever sees it interrupted sees the root interrupted.
#[test]
fn loom_a_scope_dropped_during_a_cancel_cuts_no_descendant_off() {
    model(|| {
        let root: TestSignal = Signal::root();
        let middle = Signal::child(&root);
        let below = Signal::child(&middle);
        let canceller = cancel_on_another_thread(&root);
        middle.release();
        drop(middle);
        if below.is_interrupted() {
            assert!(root.is_interrupted());
        }
        canceller.join().unwrap();
        assert!(below.is_interrupted());
        drop_scopes(&[&below, &root]);
    });
}

/// The scope's token is cancelled by its holder on another thread: code that sees the
/// token cancelled, or a child interrupted, sees the scope interrupted, before or after
/// the bridge has run, in either order of the token.
#[test]
fn loom_a_cancel_through_the_scopes_token_is_seen_before_its_bridge_runs() {
    in_both_orders(|| {
        let scope: TestSignal = Signal::root();
        let child = Signal::child(&scope);
        let token = scope.token();
        let canceller = {
            let token = token.clone();
            thread::spawn(move || token.cancel())
        };
        if token.is_cancelled() {
            assert!(scope.is_interrupted(), "token cancelled, scope running");
        }
        if child.is_interrupted() {
            assert!(scope.is_interrupted(), "child interrupted, scope running");
        }
        canceller.join().unwrap();
        assert!(scope.is_interrupted() && child.is_interrupted());
        drop_scopes(&[&child, &scope]);
        assert_eq!(token.waiters(), 0, "the bridge outlived the scope");
    });
}

/// The token a scope was built from is cancelled on another thread: code that sees it
/// cancelled, the scope's own token cancelled, or the scope's child interrupted, sees
/// the scope interrupted, in either order of the token.
#[test]
fn loom_a_cancel_of_the_token_a_scope_was_built_from_is_seen_by_every_read() {
    in_both_orders(|| {
        let outside = TestToken::fresh();
        let scope: TestSignal = Signal::from_token(&outside);
        let child = Signal::child(&scope);
        let own = scope.token();
        let canceller = {
            let outside = outside.clone();
            thread::spawn(move || outside.cancel())
        };
        if outside.is_cancelled() || own.is_cancelled() {
            assert!(scope.is_interrupted(), "token cancelled, scope running");
        }
        if child.is_interrupted() {
            assert!(scope.is_interrupted(), "child interrupted, scope running");
        }
        canceller.join().unwrap();
        assert!(scope.is_interrupted() && child.is_interrupted());
        drop_scopes(&[&scope, &child]);
        assert_eq!(outside.waiters(), 0, "the bridge outlived the scope");
    });
}

/// A dropped scope whose token was handed out relays a cancel of that token to its
/// child, which a task waits on meanwhile: the wait ends, and once the child is dropped
/// too, nothing of the relay is left.
#[test]
fn loom_a_relay_delivers_its_tokens_cancel() {
    in_both_orders(|| {
        let relay: TestSignal = Signal::root();
        let token = relay.token();
        let child = Signal::child(&relay);
        relay.release(); // its scope is dropped; its child lives on
        let canceller = {
            let token = token.clone();
            thread::spawn(move || token.cancel())
        };
        let waiter = observer(&[&child]);
        let mut key = None;
        let registered = child.register(&mut key, &Waker::from(waiter.clone()));
        canceller.join().unwrap();
        assert!(
            child.is_interrupted(),
            "the relay did not deliver the cancel"
        );
        assert_eq!(woken(&waiter), usize::from(registered));
        drop_scopes(&[&child]);
        drop(child);
        assert_eq!(relay.handles(), 1, "the relay stayed in the tree");
        assert_eq!(token.waiters(), 0, "the relay's bridge stayed registered");
    });
}

/// The relay's last child is dropped while the relay's token is cancelled: either way
/// the relay leaves the tree with its bridge.
#[test]
fn loom_a_relay_leaves_with_its_last_child() {
    in_both_orders(|| {
        let relay: TestSignal = Signal::root();
        let token = relay.token();
        let child = Signal::child(&relay);
        relay.release();
        let canceller = {
            let token = token.clone();
            thread::spawn(move || token.cancel())
        };
        let seen = child.is_interrupted();
        child.release();
        canceller.join().unwrap();
        if seen {
            assert!(relay.is_interrupted());
        }
        drop(child);
        assert_eq!(relay.handles(), 1, "the relay stayed in the tree");
        assert_eq!(token.waiters(), 0, "the relay's bridge stayed registered");
    });
}

/// A hook that counts its runs, and uses its scope and the scope's parent from inside
/// (reads that lock, a new child, a new hook), as a hook run under a lock could not.
fn counting_hook(scope: &TestSignal, parent: &TestSignal) -> (Hook, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let (scope, parent, counted) = (scope.clone(), parent.clone(), runs.clone());
    let hook: Hook = Box::new(move |why: &Interrupted| {
        assert!(scope.is_interrupted(), "a hook ran on a running scope");
        assert_eq!(
            &scope.cause(),
            why,
            "a hook got another cause than its scope's"
        );
        drop(Signal::child(&scope));
        drop(Signal::child(&parent));
        if let Err(late) = parent.add_hook(Box::new(|_| {})) {
            drop(late);
        }
        counted.fetch_add(1, Ordering::SeqCst);
    });
    (hook, runs)
}

/// A [`counting_hook`] registered on the running `scope`: its key and its run count.
fn registered_counting_hook(scope: &TestSignal, parent: &TestSignal) -> (usize, Arc<AtomicUsize>) {
    let (hook, runs) = counting_hook(scope, parent);
    let key = scope
        .add_hook(hook)
        .ok()
        .expect("registered on a running scope");
    (key, runs)
}

/// Two hooks are registered on a child while another thread cancels the parent, and one
/// of them is removed again: the kept one runs exactly once (at once, if the scope
/// refused it), the removed one once or never, `unhook` (`InterruptHook::disarm`) is
/// `true` exactly when it never runs. Hooks run with the scope marked and no lock held.
#[test]
fn loom_a_hook_runs_once_or_never_and_unhook_says_which() {
    model(|| {
        let parent: TestSignal = Signal::root();
        let scope = Signal::child(&parent);
        let (kept, kept_runs) = counting_hook(&scope, &parent);
        let (removed, removed_runs) = counting_hook(&scope, &parent);
        let canceller = cancel_on_another_thread(&parent);
        let register = |hook: Hook| match scope.add_hook(hook) {
            Ok(key) => Some(key),
            Err(refused) => {
                run_hook(refused, &scope.cause());
                None
            }
        };
        let _kept = register(kept);
        let stopped = register(removed).map(|key| scope.unhook(key));
        canceller.join().unwrap();
        assert_eq!(kept_runs.load(Ordering::SeqCst), 1, "the kept hook");
        let ran = removed_runs.load(Ordering::SeqCst);
        match stopped {
            Some(stopped) => assert_eq!(ran, usize::from(!stopped), "unhook said {stopped}"),
            None => assert_eq!(ran, 1, "a refused hook runs at once"),
        }
        drop_scopes(&[&scope, &parent]);
    });
}

/// A hook's owner lets go of it (`InterruptHook`'s drop: `unhook_owned`) as soon as it
/// sees its scope's parent marked by a cancel of the root that another thread makes, as
/// a guarded future dropped by that cancel would, whether or not the walk has reached
/// the scope yet: the hook still runs, exactly once, with its scope marked (invariant
/// 12).
#[test]
fn loom_a_hook_let_go_of_on_seeing_its_ancestor_marked_still_runs() {
    model(|| {
        let root: TestSignal = Signal::root();
        let parent = Signal::child(&root);
        let scope = Signal::child(&parent);
        let (key, runs) = registered_counting_hook(&scope, &parent);
        let canceller = cancel_on_another_thread(&root);
        while !parent.is_marked() {
            thread::yield_now();
        }
        let removed = match scope.unhook_owned(key) {
            Unhooked::Removed => true,
            Unhooked::Taken => false,
            Unhooked::Due(hook, cause) => {
                run_hook(hook, &cause);
                false
            }
        };
        canceller.join().unwrap();
        assert!(!removed, "a hook removed after its parent was seen marked");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop_scopes(&[&scope, &parent, &root]);
    });
}

/// The same when the cancel comes through the token the root was built from: the owner
/// lets go of a hook on the root and one on its child as soon as it sees the token
/// cancelled, maybe before the root's bridge has run. Both hooks run, exactly once, in
/// either order of the token.
#[test]
fn loom_hooks_let_go_of_on_seeing_the_roots_token_cancelled_still_run() {
    in_both_orders(|| {
        let outside = TestToken::fresh();
        let root: TestSignal = Signal::from_token(&outside);
        let child = Signal::child(&root);
        let (on_root, root_runs) = registered_counting_hook(&root, &child);
        let (on_child, child_runs) = registered_counting_hook(&child, &root);
        let canceller = {
            let outside = outside.clone();
            thread::spawn(move || outside.cancel())
        };
        while !outside.is_cancelled() {
            thread::yield_now();
        }
        for (scope, key) in [(&root, on_root), (&child, on_child)] {
            match scope.unhook_owned(key) {
                Unhooked::Removed => panic!("a hook removed after the token was seen cancelled"),
                Unhooked::Taken => {}
                Unhooked::Due(hook, cause) => run_hook(hook, &cause),
            }
        }
        canceller.join().unwrap();
        assert_eq!(root_runs.load(Ordering::SeqCst), 1, "the root's hook");
        assert_eq!(child_runs.load(Ordering::SeqCst), 1, "the child's hook");
        drop_scopes(&[&child, &root]);
        assert_eq!(outside.waiters(), 0, "the bridge outlived the scope");
    });
}

/// Two interrupts race (the parent's cancel, the child's own) while a hook stays
/// registered on the child: it runs exactly once, with the cause the child kept.
#[test]
fn loom_a_hook_runs_exactly_once_when_interrupts_race() {
    model(|| {
        let parent: TestSignal = Signal::root();
        let scope = Signal::child(&parent);
        let (key, runs) = registered_counting_hook(&scope, &parent);
        let from_parent = cancel_on_another_thread(&parent);
        let own = cancel_on_another_thread(&scope);
        from_parent.join().unwrap();
        own.join().unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!scope.unhook(key), "a hook that ran cannot be removed");
        drop_scopes(&[&scope, &parent]);
    });
}
