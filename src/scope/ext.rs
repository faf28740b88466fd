use std::future::Future;

use super::{CancelScope, Within, WithinCurrent};

/// Extension trait that guards any future with a [`CancelScope`].
///
/// Import it with `use hangfree::prelude::*;`.
pub trait FutureExt: Future {
    /// Runs this future until it completes or `scope` is interrupted, whichever comes
    /// first. See [`Within`] for the exact rules (and its `# Cancel safety`).
    ///
    /// The scope's deadline is shared by everything run inside it: guarding a future
    /// costs no timer of its own. While the future is polled, `scope` is the
    /// [current](CancelScope::current) scope.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::prelude::*;
    /// use hangfree::CancelScope;
    ///
    /// # /*
    /// #[tokio::main]
    /// # */
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let scope = CancelScope::new().with_timeout(Duration::from_secs(30));
    ///
    ///     let quick = tokio::time::sleep(Duration::from_secs(1)).within(&scope).await;
    ///     assert!(quick.is_ok());
    ///
    ///     let slow = tokio::time::sleep(Duration::from_secs(60)).within(&scope).await;
    ///     assert_eq!(slow.unwrap_err().to_string(), "deadline of 30s exceeded");
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// The returned future's first poll panics outside a Tokio runtime with timers enabled
    /// if the scope has a deadline whose timer is not armed yet, as
    /// [`tokio::time::timeout`] does.
    fn within(self, scope: &CancelScope) -> Within<Self>
    where
        Self: Sized,
    {
        Within::new(self, scope)
    }

    /// Runs this future inside the [current](CancelScope::current) scope, looked up at
    /// its first poll: until it completes or that scope is interrupted, whichever comes
    /// first, as [`within`](Self::within) does. Without a current scope, it runs the
    /// future as it is and returns `Ok` with its output.
    ///
    /// This is how library code honours a budget it was never handed: a repository
    /// method or a client wrapper three calls down stops with its caller's deadline,
    /// without a parameter in every signature in between.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hangfree::prelude::*;
    /// use hangfree::{CancelScope, Interrupted};
    ///
    /// /// A library function: no scope in its signature.
    /// async fn load_invoice(id: u32) -> Result<String, Interrupted> {
    ///     let query = async move {
    ///         tokio::time::sleep(Duration::from_secs(60)).await; // a slow server
    ///         format!("invoice {id}")
    ///     };
    ///     query.within_current().await
    /// }
    ///
    /// # /*
    /// #[tokio::main]
    /// # */
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// async fn main() {
    ///     let request = CancelScope::new().with_timeout(Duration::from_secs(2));
    ///     let loaded = request.enter(load_invoice(42)).await;
    ///     assert_eq!(loaded.unwrap_err().to_string(), "deadline of 2s exceeded");
    ///
    ///     // No current scope: it simply runs.
    ///     assert_eq!(load_invoice(7).await.unwrap(), "invoice 7");
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// As for [`within`](Self::within).
    fn within_current(self) -> WithinCurrent<Self>
    where
        Self: Sized,
    {
        WithinCurrent::new(self)
    }
}

impl<F: Future + ?Sized> FutureExt for F {}
