//! A waiter in a scope's signal, as the futures that wait on a scope hold it.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::current::Lendable;
use super::node::Node;
use super::{CancelScope, Interrupted};

/// A waiter in a scope's signal: registered while its future is pending, removed when
/// the future completes or is dropped. This is all a guarded await leaves behind, and
/// `Drop` takes it back.
///
/// It holds the future's one handle to its scope, and lends that handle to the thread
/// while the inner future is polled (`lend`): a guarded await costs one reference count,
/// not one for waiting and one for being current.
pub(crate) struct Registration {
    scope: Lendable,
    key: Option<usize>,
}

impl Registration {
    pub(crate) fn new(scope: CancelScope) -> Self {
        Registration {
            scope: Lendable::new(scope),
            key: None,
        }
    }

    /// The scope, as it is (`Debug` reads it without making a deferred scope's node).
    pub(crate) fn scope(&self) -> &CancelScope {
        self.scope.get()
    }

    /// The scope's node (made now, for a scope whose node was deferred).
    pub(crate) fn node(&self) -> &Arc<Node> {
        self.scope.get().node()
    }

    /// Runs `f` with the scope current on this thread (and puts it back, also if `f`
    /// panics).
    pub(crate) fn lend<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.scope.lend(f)
    }

    /// Interrupted already, or past the deadline by the clock? Arms a lazily armed
    /// deadline first. No registration.
    pub(crate) fn check(&self) -> Option<Interrupted> {
        let node = self.node();
        node.ensure_armed();
        node.check().err()
    }

    /// Registers the task's waker, or returns the interruption if it already happened.
    pub(crate) fn poll_interrupted(&mut self, cx: &mut Context<'_>) -> Poll<Interrupted> {
        let node = self.scope.get().node();
        if node.signal.register(&mut self.key, cx.waker()) {
            Poll::Pending
        } else {
            Poll::Ready(node.cause())
        }
    }

    pub(crate) fn release(&mut self) {
        if let Some(key) = self.key.take() {
            // Only a registered waiter has a key, and it registered with the node.
            self.scope.get().node().signal.deregister(key);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release();
    }
}
