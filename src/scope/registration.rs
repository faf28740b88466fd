//! A waiter in a scope's signal, as the futures that wait on a scope hold it.

use std::sync::Arc;
use std::task::{Context, Poll};

use super::Interrupted;
use super::node::Node;

/// A waiter in a scope's signal: registered while its future is pending, removed when
/// the future completes or is dropped. This is all a guarded await leaves behind, and
/// `Drop` takes it back.
pub(crate) struct Registration {
    node: Arc<Node>,
    key: Option<usize>,
}

impl Registration {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        Registration { node, key: None }
    }

    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Interrupted already, or past the deadline by the clock? Arms a lazily armed
    /// deadline first. No registration.
    pub(crate) fn check(&self) -> Option<Interrupted> {
        self.node.ensure_armed();
        self.node.check().err()
    }

    /// Registers the task's waker, or returns the interruption if it already happened.
    pub(crate) fn poll_interrupted(&mut self, cx: &mut Context<'_>) -> Poll<Interrupted> {
        if self.node.signal.register(&mut self.key, cx.waker()) {
            Poll::Pending
        } else {
            Poll::Ready(self.node.cause())
        }
    }

    pub(crate) fn release(&mut self) {
        if let Some(key) = self.key.take() {
            self.node.signal.deregister(key);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.release();
    }
}
