//! What an interrupt or a release leaves for after every lock of the scope tree is
//! released (`signal.rs`, invariant 8 and the deadlock-safety rules): wakes, hooks, then
//! drops.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Waker;

use super::interrupted::Interrupted;
use super::token::Token;
use crate::sync::Arc;

/// What an interrupt hands to a hook: the cause of the node it was registered on.
pub(crate) type Hook = Box<dyn FnOnce(&Interrupted) + Send>;

/// What must happen after every lock is released: wakes, hooks, then drops. `S` is the
/// tree's handle type (`Signal<K>`), named by `signal.rs`, so that this file need not
/// import it.
pub(crate) struct Later<K: Token, S> {
    pub(crate) wakers: Vec<Waker>,
    pub(crate) hooks: Vec<(Hook, Interrupted)>,
    pub(crate) watches: Vec<K::Watch>,
    pub(crate) tokens: Vec<Arc<K>>,
    pub(crate) signals: Vec<S>,
}

impl<K: Token, S> Default for Later<K, S> {
    fn default() -> Self {
        Later {
            wakers: Vec::new(),
            hooks: Vec::new(),
            watches: Vec::new(),
            tokens: Vec::new(),
            signals: Vec::new(),
        }
    }
}

impl<K: Token, S> Later<K, S> {
    pub(crate) fn run(self) {
        for waker in self.wakers {
            waker.wake();
        }
        for (hook, cause) in self.hooks {
            run_hook(hook, &cause);
        }
    }
}

/// Runs an interrupt hook, catching its panic (invariant 8): a panicking hook must not
/// keep the hooks after it from running, nor unwind into whatever interrupted the scope
/// (a timer, a token's cancel, another scope's hook).
pub(crate) fn run_hook(hook: Hook, cause: &Interrupted) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook(cause))) {
        note_hook_panic(&*panic, cause);
        // A payload whose own drop panics must not unwind from here either.
        if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(panic))) {
            std::mem::forget(again);
        }
    }
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
fn note_hook_panic(panic: &(dyn std::any::Any + Send), cause: &Interrupted) {
    #[cfg(feature = "tracing")]
    {
        let message = crate::panic::panic_message(panic);
        tracing::error!(panic = %message, interrupted = %cause, "hangfree interrupt hook panicked");
    }
}
