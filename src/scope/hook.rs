use std::fmt;
use std::sync::Arc;

use super::node::Node;
use super::signal::{Hook, Unhooked, run_hook};

/// The guard of an interrupt hook, returned by [`CancelScope::on_interrupt`]: dropping it
/// before the scope is interrupted deregisters the hook, which then never runs.
///
/// Dropped after the scope or one of its ancestors was interrupted, it does not stop the
/// hook, even if the thread that interrupted has not run it yet (it may still be marking
/// the scopes above, or a token's cancel may not have reached the scope): the hook then
/// runs in the drop, on the dropping thread, with its scope marked first. So a guard kept in the work that an interrupt stops, and dropped
/// with it, never loses the hook that the interrupt owes.
///
/// It keeps its scope alive, with its deadline: a hook on a scope whose every other
/// handle is gone still runs when the deadline passes.
///
/// [`CancelScope::on_interrupt`]: super::CancelScope::on_interrupt
#[must_use = "dropping an `InterruptHook` deregisters its hook at once"]
pub struct InterruptHook {
    node: Arc<Node>,
    /// Its slot among the scope's waiters, while registered.
    key: Option<usize>,
}

impl InterruptHook {
    /// Registers `hook` on `node`, or runs it at once if `node` is interrupted already
    /// (by the clock too). The deadline is watched from now on.
    pub(crate) fn register(node: &Arc<Node>, hook: Hook) -> InterruptHook {
        let key = node.add_hook(hook);
        InterruptHook {
            node: node.clone(),
            key,
        }
    }

    /// Deregisters the hook. Returns `true` if it was deregistered in time, so that it
    /// will never run; `false` if it has run, is running, or will run because the scope
    /// was interrupted first (Go's `stop` for `context.AfterFunc`). Interrupted first
    /// includes through an ancestor whose interrupt has not reached this scope yet: the
    /// hook then runs here, before `disarm` returns. `false` does not wait for a hook
    /// that the interrupting thread has taken to run: it may still be on its way (see
    /// the guide, "The query that kept running on the server").
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// let scope = hangfree::CancelScope::new();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let hook = scope.on_interrupt({
    ///     let ran = ran.clone();
    ///     move |_| ran.store(true, Ordering::SeqCst)
    /// });
    /// assert!(hook.disarm(), "deregistered before any interrupt");
    /// scope.cancel();
    /// assert!(!ran.load(Ordering::SeqCst));
    ///
    /// let late = scope.on_interrupt(|_| {}); // runs at once: the scope is cancelled
    /// assert!(!late.disarm());
    /// ```
    pub fn disarm(mut self) -> bool {
        self.deregister()
    }

    fn deregister(&mut self) -> bool {
        let Some(key) = self.key.take() else {
            return false;
        };
        match self.node.signal.unhook_owned(key) {
            Unhooked::Removed => true,
            Unhooked::Taken => false,
            Unhooked::Due(hook, cause) => {
                run_hook(hook, &cause);
                false
            }
        }
    }
}

impl Drop for InterruptHook {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl fmt::Debug for InterruptHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterruptHook")
            .field("registered", &self.key.is_some())
            .field("interrupted", &self.node.signal.is_interrupted())
            .finish()
    }
}
