//! `scope`: an interrupted scope never reads as running to code that has seen it, or a
//! scope inside it, interrupted. Whatever delivered the interrupt (a cancel, the scope's
//! token, the token it was built from, its deadline), a waker woken below a scope finds
//! the scope and every scope between interrupted, from every thread.

use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause, Interrupted};
use tokio_util::sync::CancellationToken;

const SECOND: Duration = Duration::from_secs(1);

/// What a waker saw of a scope at the moment it was woken.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    is_cancelled: bool,
    check: Result<(), Cause>,
    /// `async {}.within(&scope)`, polled once.
    starts: Poll<Result<(), Cause>>,
}

fn look_at(scope: &CancelScope) -> Seen {
    let mut fresh = Box::pin(async {}.within(scope));
    let starts = fresh
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .map(|r| r.map_err(|e| e.cause()));
    Seen {
        is_cancelled: scope.is_cancelled(),
        check: scope.check().map_err(|e| e.cause()),
        starts,
    }
}

fn interrupted(cause: Cause) -> Seen {
    Seen {
        is_cancelled: true,
        check: Err(cause),
        starts: Poll::Ready(Err(cause)),
    }
}

/// A waker that, when woken, looks at some scopes and records what it saw.
struct Observer {
    scopes: Vec<CancelScope>,
    seen: Mutex<Vec<Vec<Seen>>>,
}

impl Observer {
    fn new(scopes: &[&CancelScope]) -> Arc<Self> {
        Arc::new(Observer {
            scopes: scopes.iter().map(|s| (*s).clone()).collect(),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn first_look(&self) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        assert!(!seen.is_empty(), "never woken");
        seen[0].clone()
    }
}

impl Wake for Observer {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let looks = self.scopes.iter().map(look_at).collect();
        self.seen.lock().unwrap().push(looks);
    }
}

/// Polls `fut` once with `observer` as its waker; it must be pending.
fn wait_with<F: Future>(fut: F, observer: &Arc<Observer>) -> Pin<Box<F>> {
    let mut fut = Box::pin(fut);
    let waker = Waker::from(observer.clone());
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    fut
}

#[test]
fn a_waker_woken_below_a_cancelled_scope_sees_it_and_every_scope_between_interrupted() {
    let root = CancelScope::new();
    let child = root.child();
    let grandchild = child.child();
    let observer = Observer::new(&[&root, &child, &grandchild]);
    let _waiting = wait_with(pending::<()>().within(&grandchild), &observer);

    root.cancel();
    assert_eq!(
        observer.first_look(),
        vec![interrupted(Cause::Cancelled); 3],
        "what a waker woken through the grandchild saw of [root, child, grandchild]"
    );
}

#[test]
fn a_waker_of_the_scopes_token_sees_the_scope_interrupted() {
    // Cancelled by the scope...
    let scope = CancelScope::new();
    let observer = Observer::new(&[&scope]);
    let _waiting = wait_with(scope.token().cancelled_owned(), &observer);
    scope.cancel();
    assert_eq!(observer.first_look(), vec![interrupted(Cause::Cancelled)]);

    // ...or through its token, by whoever holds it.
    let scope = CancelScope::new();
    let child = scope.child();
    let token = scope.token();
    let observer = Observer::new(&[&scope]);
    let below = Observer::new(&[&scope, &child]);
    let _waiting = wait_with(token.clone().cancelled_owned(), &observer);
    let _below = wait_with(pending::<()>().within(&child), &below);
    token.cancel();
    assert_eq!(observer.first_look(), vec![interrupted(Cause::Cancelled)]);
    assert_eq!(below.first_look(), vec![interrupted(Cause::Cancelled); 2]);
}

#[test]
fn a_waker_woken_below_a_scope_built_from_a_token_sees_it_interrupted_when_the_token_is_cancelled()
{
    let shutdown = CancellationToken::new();
    let scope = CancelScope::from_token(&shutdown);
    let child = scope.child();
    let through_child = Observer::new(&[&scope, &child]);
    let through_token = Observer::new(&[&scope]);
    let _in_child = wait_with(pending::<()>().within(&child), &through_child);
    let _on_token = wait_with(scope.token().cancelled_owned(), &through_token);

    shutdown.cancel();
    assert_eq!(
        through_child.first_look(),
        vec![interrupted(Cause::Cancelled); 2]
    );
    assert_eq!(
        through_token.first_look(),
        vec![interrupted(Cause::Cancelled)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_waker_woken_below_a_scope_whose_deadline_fired_sees_it_interrupted() {
    let root = CancelScope::new().with_timeout(SECOND);
    let child = root.child();
    let observer = Observer::new(&[&root, &child]);
    let _waiting = wait_with(pending::<()>().within(&child), &observer);

    tokio::time::advance(2 * SECOND).await;
    assert_eq!(
        observer.first_look(),
        vec![
            interrupted(Cause::DeadlineExceeded),
            interrupted(Cause::InheritedDeadlineExceeded)
        ],
        "what a waker woken through the child saw of [root, child], 1 s past the deadline"
    );
}

const TASKS: usize = 1_000;
const ROUNDS: usize = 20;

/// Each of `TASKS` tasks waits in `wait_in(i)` and, once that ends, looks at `root`.
/// `interrupt` runs on another thread once every task has started. Returns how many
/// tasks saw `root` running after their own wait was interrupted.
fn tasks_that_saw_the_root_running<W, Fut>(
    rt: &tokio::runtime::Runtime,
    root: &CancelScope,
    wait_in: W,
    interrupt: impl FnOnce() + Send + 'static,
) -> usize
where
    W: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let started = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let wait = wait_in(i);
            let root = root.clone();
            let started = started.clone();
            rt.spawn(async move {
                started.fetch_add(1, Ordering::SeqCst);
                wait.await;
                let seen = look_at(&root);
                // Poll a real guarded future too, through the runtime.
                let ran = async {}.within(&root).await.is_ok();
                seen != interrupted(seen_cause(&seen)) || ran
            })
        })
        .collect();
    while started.load(Ordering::SeqCst) < TASKS {
        std::thread::yield_now();
    }
    let canceller = std::thread::spawn(interrupt);
    let mut running = 0;
    rt.block_on(async {
        for handle in handles {
            let saw_running = tokio::time::timeout(10 * SECOND, handle)
                .await
                .expect("a task was never woken")
                .unwrap();
            running += usize::from(saw_running);
        }
    });
    canceller.join().unwrap();
    running
}

/// The cause `seen` reports, or `Cancelled` if it saw none.
fn seen_cause(seen: &Seen) -> Cause {
    match seen.check {
        Err(cause) => cause,
        Ok(()) => Cause::Cancelled,
    }
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn tasks_woken_through_children_of_a_root_cancelled_on_another_thread_never_see_it_running() {
    let rt = multi_thread();
    for round in 0..ROUNDS {
        let root = CancelScope::new();
        let children: Vec<_> = (0..TASKS).map(|_| root.child().child()).collect();
        let canceller = root.clone();
        let running = tasks_that_saw_the_root_running(
            &rt,
            &root,
            |i| {
                let scope = children[i].clone();
                async move {
                    let err = pending::<()>().within(&scope).await.unwrap_err();
                    assert_eq!(err.cause(), Cause::Cancelled);
                }
            },
            move || canceller.cancel(),
        );
        assert_eq!(
            running, 0,
            "round {round}: {running} of {TASKS} tasks saw the root running after it interrupted their child"
        );
    }
}

#[test]
fn tasks_woken_by_a_scopes_token_cancelled_on_another_thread_never_see_the_scope_running() {
    let rt = multi_thread();
    for round in 0..ROUNDS {
        let root = CancelScope::new();
        let token = root.token();
        let child = root.child();
        let running = tasks_that_saw_the_root_running(
            &rt,
            &root,
            |i| {
                let token = token.clone();
                let child = child.clone();
                async move {
                    // Half wait on the token, half in a child.
                    if i % 2 == 0 {
                        token.cancelled().await;
                    } else {
                        let _ = pending::<()>().within(&child).await;
                    }
                }
            },
            {
                let token = token.clone();
                move || token.cancel()
            },
        );
        assert_eq!(
            running, 0,
            "round {round}: {running} of {TASKS} tasks saw the scope running after its token was cancelled"
        );
    }
}

#[test]
fn tasks_woken_below_a_scope_built_from_a_token_cancelled_on_another_thread_never_see_it_running() {
    let rt = multi_thread();
    for round in 0..ROUNDS {
        let shutdown = CancellationToken::new();
        let root = CancelScope::from_token(&shutdown);
        let child = root.child();
        let token = root.token();
        let running = tasks_that_saw_the_root_running(
            &rt,
            &root,
            |i| {
                let child = child.clone();
                let token = token.clone();
                let shutdown = shutdown.clone();
                async move {
                    match i % 3 {
                        0 => shutdown.cancelled().await,
                        1 => token.cancelled().await,
                        _ => {
                            let _ = pending::<()>().within(&child).await;
                        }
                    }
                }
            },
            {
                let shutdown = shutdown.clone();
                move || shutdown.cancel()
            },
        );
        assert_eq!(
            running, 0,
            "round {round}: {running} of {TASKS} tasks saw the scope running after its token's parent was cancelled"
        );
    }
}

#[test]
fn an_interrupted_scope_reads_interrupted_in_every_method() {
    let root = CancelScope::new();
    let child = root.child();
    root.cancel();
    for scope in [&root, &child] {
        let err: Interrupted = scope.check().unwrap_err();
        assert_eq!(err.cause(), Cause::Cancelled);
        assert!(scope.is_cancelled());
        assert!(scope.token().is_cancelled());
        assert_eq!(look_at(scope), interrupted(Cause::Cancelled));
    }
}
