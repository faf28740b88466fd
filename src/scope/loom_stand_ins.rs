//! The stand-in token of the scope's loom models (`loom_tests.rs`): tokio-util's tree
//! semantics, in loom's primitives, with the order of a cancel chosen per model: mark
//! itself before waking (as tokio-util does today) or wake its children and waiters
//! before it marks itself, an order tokio-util does not rule out.

use std::cell::Cell;
use std::task::Waker;

use super::signal::Token;
use crate::sync::{Arc, Mutex, lock};

/// The order of the tokens made from now on, on this thread (loom runs a model's threads
/// on the test's own thread).
pub(super) fn use_order(order: Order) {
    ORDER.set(order);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// Mark the token cancelled, then cancel its children and wake its waiters.
    MarkFirst,
    /// Cancel its children and wake its waiters, then mark it cancelled.
    WakeFirst,
}

thread_local! {
    // The order new tokens get. Loom runs a model's threads on the test's own thread.
    static ORDER: Cell<Order> = const { Cell::new(Order::MarkFirst) };
}

#[derive(Clone)]
pub(super) struct TestToken(Arc<TokenNode>);

struct TokenNode {
    order: Order,
    state: Mutex<TokenState>,
}

#[derive(Default)]
struct TokenState {
    cancelled: bool,
    /// A cancel is under way: no new child or waiter can be missed by it.
    cancelling: bool,
    children: Vec<TestToken>,
    waiters: Vec<Option<Waker>>,
}

pub(super) struct TestWatch {
    token: TestToken,
    slot: usize,
}

impl Drop for TestWatch {
    fn drop(&mut self) {
        let waker = lock(&self.token.0.state)
            .waiters
            .get_mut(self.slot)
            .and_then(Option::take);
        drop(waker);
    }
}

impl TestToken {
    fn with_order(order: Order) -> Self {
        TestToken(Arc::new(TokenNode {
            order,
            state: Mutex::new(TokenState::default()),
        }))
    }

    /// Wakers still registered with this token.
    pub(super) fn waiters(&self) -> usize {
        lock(&self.0.state).waiters.iter().flatten().count()
    }
}

impl Token for TestToken {
    type Watch = TestWatch;

    fn fresh() -> Self {
        TestToken::with_order(ORDER.get())
    }

    fn child(&self) -> Self {
        let child = TestToken::with_order(self.0.order);
        let mut state = lock(&self.0.state);
        if state.cancelled || state.cancelling {
            drop(state);
            lock(&child.0.state).cancelled = true;
        } else {
            state.children.push(child.clone());
        }
        child
    }

    fn cancel(&self) {
        let (children, waiters) = {
            let mut state = lock(&self.0.state);
            if state.cancelled || state.cancelling {
                return;
            }
            state.cancelling = true;
            if self.0.order == Order::MarkFirst {
                state.cancelled = true;
            }
            (
                std::mem::take(&mut state.children),
                std::mem::take(&mut state.waiters),
            )
        };
        for child in children {
            child.cancel();
        }
        for waker in waiters.into_iter().flatten() {
            waker.wake();
        }
        lock(&self.0.state).cancelled = true;
    }

    fn is_cancelled(&self) -> bool {
        lock(&self.0.state).cancelled
    }

    fn watch(&self, waker: &Waker) -> Option<TestWatch> {
        let mut state = lock(&self.0.state);
        if state.cancelled || state.cancelling {
            return None;
        }
        state.waiters.push(Some(waker.clone()));
        Some(TestWatch {
            token: self.clone(),
            slot: state.waiters.len() - 1,
        })
    }
}
