//! A waiter in a scope's signal, as the futures that wait on a scope hold it.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::Interrupted;
use super::node::Node;

/// A waiter in a scope's signal: registered while its future is pending, removed when
/// the future completes or is dropped. This is all a guarded await leaves behind, and
/// `Drop` takes it back.
pub(crate) struct Registration {
    /// The scope's node; `None` only while [`lend`](Self::lend) has lent it to the
    /// thread, when nothing else in the registration runs.
    node: Option<Arc<Node>>,
    key: Option<usize>,
}

impl Registration {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        Registration {
            node: Some(node),
            key: None,
        }
    }

    pub(crate) fn node(&self) -> Option<&Arc<Node>> {
        self.node.as_ref()
    }

    /// Runs `f` with the scope current on this thread: the registration's own handle is
    /// lent (and put back when `f` returns or unwinds), so entering costs no clone.
    pub(crate) fn lend<R>(&mut self, f: impl FnOnce() -> R) -> R {
        super::current::lend(&mut self.node, f)
    }

    /// Interrupted already, or past the deadline by the clock? Arms a lazily armed
    /// deadline first. No registration.
    pub(crate) fn check(&self) -> Option<Interrupted> {
        let node = self.node.as_ref()?;
        node.ensure_armed();
        node.check().err()
    }

    /// Registers the task's waker, or returns the interruption if it already happened.
    pub(crate) fn poll_interrupted(&mut self, cx: &mut Context<'_>) -> Poll<Interrupted> {
        let Some(node) = self.node.as_ref() else {
            return Poll::Pending;
        };
        if node.signal.register(&mut self.key, cx.waker()) {
            Poll::Pending
        } else {
            Poll::Ready(node.cause())
        }
    }

    pub(crate) fn release(&mut self) {
        if let (Some(key), Some(node)) = (self.key, self.node.as_ref()) {
            self.key = None;
            node.signal.deregister(key);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release();
    }
}
