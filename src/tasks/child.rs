//! Nested sets: [`TaskSet::child`]. A child is a set of its own (its
//! spawns, counters, waits and failure policy are its own) that stops with
//! its parent: the parent's token is its token's parent, the parent's
//! shutdown shuts it down within the same grace and reports its tasks with
//! its label path, and dropping the parent aborts its tasks.
//!
//! A parent keeps its children as weak references (`state.rs`): a child
//! whose handles are gone and whose tasks have all ended is forgotten;
//! while a task of it runs (an unresponsive one, say) its parent still
//! reports it.
//!
//! A child made while its parent shuts down is either listed by that
//! shutdown or made shut down itself: the shutdown shuts the parent down
//! before it lists the children, and a child is added under the list's
//! lock after reading the parent's phase there.

use std::borrow::Cow;
use std::sync::Arc;

use super::lifecycle::Phase;
use super::set::TaskSet;
use crate::sync::lock;

impl TaskSet {
    /// A child set labelled `label`, stopped with this one, like a nested
    /// subsystem of tokio-graceful-shutdown: its [`token`](Self::token) is a
    /// child of this set's; this set's [`shutdown`](Self::shutdown) shuts it
    /// down too, within the same grace and abort wait, and lists its tasks
    /// in the same report, each with its label path
    /// ([`TaskInfo::path`](super::TaskInfo::path): `consumer/handlers` for a
    /// child `handlers` of a child `consumer`); dropping this set's last
    /// handle aborts the child's tasks too.
    ///
    /// Otherwise it is a set of its own, made with the default settings
    /// (use [`TaskSetBuilder::child_of`](super::TaskSetBuilder::child_of)
    /// for others): its `len`, `running`, `counts`, `failures`, `close`,
    /// `wait`, `wait_idle` and `first_failure` are about its own tasks, not
    /// its parent's, and its parent's are not about its tasks. A failure in
    /// it cancels its own token under
    /// [`FailurePolicy::CancelToken`](super::FailurePolicy::CancelToken), not
    /// its parent's.
    ///
    /// Keep a handle to the parent for as long as the child is used: when
    /// the parent's last handle is dropped, the child is shut down and its
    /// tasks are aborted, as the parent's are (so
    /// `set.child("a").child("b")` gives a `b` that is shut down already, its
    /// parent `a` gone with the statement). A child does not keep its parent
    /// alive, so that a task of the parent holding a child makes no cycle.
    ///
    /// A child of a set whose shutdown has begun is made shut down (its
    /// spawns are rejected). Labels are joined with `/` as they are.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::TaskSet;
    ///
    /// #[tokio::main]
    /// # async fn _hidden() {}
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let service = TaskSet::new();
    ///     let consumer = service.child("consumer");
    ///     let handlers = consumer.child("handlers");
    ///     for n in 0..17 {
    ///         handlers.spawn(format!("msg {n}"), async {}).unwrap();
    ///     }
    ///     handlers.spawn("msg 17", std::future::pending::<()>()).unwrap();
    ///
    ///     let report = service.shutdown(Duration::from_secs(5)).await;
    ///     assert_eq!(report.completed(), 17);
    ///     let stuck = &report.aborted()[0];
    ///     assert_eq!((stuck.path(), stuck.label()), ("consumer/handlers", "msg 17"));
    ///     assert_eq!(stuck.to_string(), r#"consumer/handlers #18 "msg 17", age 5s"#);
    ///     assert!(handlers.is_closed());
    /// }
    /// ```
    pub fn child(&self, label: impl Into<Cow<'static, str>>) -> TaskSet {
        TaskSet::builder().child_of(self, label).build()
    }

    /// The label path of a child of this set labelled `label`.
    pub(super) fn child_path(&self, label: &str) -> Arc<str> {
        let path = self.state().registry.path();
        if path.is_empty() {
            label.into()
        } else {
            format!("{path}/{label}").into()
        }
    }

    /// Makes `child` (just built) a child of this set: listed for this set's
    /// shutdown and drop, or shut down at once if this set's shutdown has
    /// begun.
    pub(super) fn adopt(&self, child: &TaskSet) {
        let state = self.state();
        let mut children = lock(&state.children);
        // Under the list's lock, after a shutdown's phase change, or before
        // its listing (see the module docs).
        if state.registry.lifecycle().phase() == Phase::ShutDown {
            drop(children);
            child.state().shut_down();
            return;
        }
        // Forget the children that are gone before the list would grow:
        // amortized, for a parent that makes a child per request.
        if children.len() == children.capacity() {
            children.retain(|weak| weak.strong_count() > 0);
        }
        children.push(Arc::downgrade(child.state()));
    }
}
