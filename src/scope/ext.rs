use std::future::Future;

use super::{CancelScope, Within};

/// Extension trait that guards any future with a [`CancelScope`].
///
/// Import it with `use hangfree::prelude::*;`.
pub trait FutureExt: Future {
    /// Runs this future until it completes or `scope` is interrupted, whichever comes
    /// first. See [`Within`] for the exact rules (and its `# Cancel safety`).
    ///
    /// The scope's deadline is shared by everything run inside it: guarding a future
    /// costs no timer of its own.
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
}

impl<F: Future + ?Sized> FutureExt for F {}
