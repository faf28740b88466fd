//! The process's stop signal as a scope: cancelled on the first SIGINT or SIGTERM, and
//! the process ended on the second.

use std::sync::OnceLock;
use std::sync::mpsc;
use std::task::Poll;

use super::CancelScope;

/// The one stop scope of the process, once a first call has installed its listener.
static STOP: OnceLock<CancelScope> = OnceLock::new();

/// The process's stop scope: a root [`CancelScope`] cancelled on the first SIGINT or
/// SIGTERM (ctrl-c where there are no Unix signals), with a reason naming the signal:
/// `cancelled: service stopping (SIGTERM)`.
///
/// Every call returns the same scope. Make it the root of what a stop must end (the job,
/// the server's request scopes), and give the parts their own deadlines below it.
///
/// A second signal ends the process at once, with exit code 130 after SIGINT or 143
/// after SIGTERM (128 plus the signal's number, as a shell reports it). Tokio never
/// restores a signal's default disposition once it listens for it: without this, a
/// process whose stop hangs would ignore every further ctrl-c.
///
/// The first call starts one thread, with a Tokio runtime of its own that listens for
/// the signals, and returns once they are caught: a signal that arrives after the call
/// cannot end the process before the scope sees it. So it works inside or outside any
/// runtime, on any flavour, and goes on working when the caller's runtime shuts down.
///
/// # Panics
///
/// If the operating system refuses the listener's thread or its signal handlers (as
/// [`std::thread::spawn`] panics when it refuses a thread).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use hangfree::prelude::*;
/// use hangfree::scope::shutdown_signal;
///
/// # async fn export_tables() {}
/// #[tokio::main]
/// async fn main() {
///     // The whole job stops on SIGTERM, and in any case after an hour.
///     let job = shutdown_signal().with_timeout(Duration::from_secs(3600));
///     if let Err(why) = export_tables().within(&job).await {
///         eprintln!("export stopped: {why}"); // "export stopped: cancelled: service stopping (SIGTERM)"
///         std::process::exit(1);
///     }
/// }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "signal")))]
pub fn shutdown_signal() -> CancelScope {
    STOP.get_or_init(|| {
        let stop = CancelScope::new();
        if let Err(refused) = listen(stop.clone()) {
            panic!("hangfree::scope::shutdown_signal: cannot listen for signals: {refused}");
        }
        stop
    })
    .clone()
}

/// Starts the listener and waits until its handlers are installed.
fn listen(stop: CancelScope) -> std::io::Result<()> {
    let (installed, done) = mpsc::channel();
    std::thread::Builder::new()
        .name("hangfree-shutdown-signal".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            {
                Ok(runtime) => runtime,
                Err(refused) => {
                    let _ = installed.send(Err(refused));
                    return;
                }
            };
            runtime.block_on(async move {
                let mut signals = match Signals::install() {
                    Ok(signals) => signals,
                    Err(refused) => {
                        let _ = installed.send(Err(refused));
                        return;
                    }
                };
                let _ = installed.send(Ok(()));
                let first = signals.next().await;
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    signal = first.name,
                    "stopping: hangfree's stop scope is cancelled; a second signal ends the process at once"
                );
                stop.cancel_with(format!("service stopping ({})", first.name));
                let second = signals.next().await;
                #[cfg(feature = "tracing")]
                tracing::error!(
                    signal = second.name,
                    exit_code = second.exit_code,
                    "second stop signal: ending the process at once"
                );
                std::process::exit(second.exit_code);
            });
        })?;
    done.recv()
        .unwrap_or_else(|_| Err(std::io::Error::other("the listener thread ended")))
}

/// One stop signal received.
struct Received {
    name: &'static str,
    exit_code: i32,
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> Received {
        std::future::poll_fn(|cx| {
            // A stream that ends (`Ready(None)`) belongs to a runtime that is shutting
            // down, which this thread's never does while it waits here.
            if let Poll::Ready(Some(())) = self.interrupt.poll_recv(cx) {
                return Poll::Ready(Received {
                    name: "SIGINT",
                    exit_code: 130,
                });
            }
            if let Poll::Ready(Some(())) = self.terminate.poll_recv(cx) {
                return Poll::Ready(Received {
                    name: "SIGTERM",
                    exit_code: 143,
                });
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(windows)]
struct Signals {
    ctrl_c: tokio::signal::windows::CtrlC,
}

#[cfg(windows)]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            ctrl_c: tokio::signal::windows::ctrl_c()?,
        })
    }

    async fn next(&mut self) -> Received {
        std::future::poll_fn(|cx| match self.ctrl_c.poll_recv(cx) {
            Poll::Ready(Some(())) => Poll::Ready(Received {
                name: "ctrl-c",
                exit_code: 130,
            }),
            _ => Poll::Pending,
        })
        .await
    }
}
