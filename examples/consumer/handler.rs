//! The message handler, and the faults the flags inject into it. A handler beats its
//! pulse as it works; that is what keeps its message's lock alive.

use std::time::Duration;

use anyhow::bail;
use hangfree::watchdog::Pulse;
use hangfree::{TaskHandle, TaskSet};

use crate::args::Args;
use crate::broker::Delivery;

/// What a handler does with its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Returns an error.
    Fail,
    /// Panics.
    Panic,
    /// Stays pending for ever, without a heartbeat.
    Hang,
    /// Blocks its thread for ever: it cannot be aborted, only left behind.
    HangBlocking,
    /// Takes three locks' time, beating every fifth of a lock.
    Slow,
    /// Takes three locks' time, and stops beating after a quarter of a lock.
    Silent,
}

/// The faults of the flags, by publish order: the first `--fail` messages fail, the next
/// `--panic` panic, and so on, each on its first delivery only.
#[derive(Debug, Clone)]
pub struct Faults {
    bounds: Vec<(u64, Fault)>,
}

impl Faults {
    pub fn from_args(args: &Args) -> Faults {
        let mut end = 0;
        let mut bounds = Vec::new();
        for (count, fault) in [
            (args.fail, Fault::Fail),
            (args.panic, Fault::Panic),
            (args.hang, Fault::Hang),
            (args.hang_blocking, Fault::HangBlocking),
            (args.slow, Fault::Slow),
            (args.silent, Fault::Silent),
        ] {
            end += count;
            bounds.push((end, fault));
        }
        Faults { bounds }
    }

    pub fn of(&self, delivery: &Delivery) -> Fault {
        if delivery.redelivered || delivery.seq == 0 {
            return Fault::None;
        }
        self.bounds
            .iter()
            .find(|(end, _)| delivery.seq <= *end)
            .map_or(Fault::None, |(_, fault)| *fault)
    }
}

/// Handles one message: `work` of work, and the fault if it has one.
pub async fn handle(
    id: String,
    fault: Fault,
    pulse: Pulse,
    work: Duration,
    lock: Duration,
    blocking: TaskSet,
) -> anyhow::Result<()> {
    pulse.beat();
    match fault {
        Fault::None => {
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
        }
        Fault::Fail => bail!("fault injected: the handler of {id} failed"),
        Fault::Panic => panic!("fault injected: the handler of {id} panicked"),
        Fault::Hang => std::future::pending::<()>().await,
        Fault::HangBlocking => {
            // The closure never returns: nothing can abort a thread. The task set tracks it,
            // its shutdown reports it unresponsive, and `main` ends the process with
            // `Runtime::shutdown_timeout`, which does not wait for blocking threads.
            let stuck: TaskHandle<()> = blocking
                .spawn_blocking_with_handle(format!("block {id}"), || {
                    loop {
                        std::thread::park();
                    }
                })
                .map_err(|_| anyhow::anyhow!("shutting down"))?;
            stuck.await?;
        }
        Fault::Slow => {
            let step = lock / 5;
            for _ in 0..15 {
                tokio::time::sleep(step).await;
                pulse.beat();
            }
        }
        Fault::Silent => {
            tokio::time::sleep(lock / 4).await;
            pulse.beat();
            tokio::time::sleep(lock * 3).await;
        }
    }
    pulse.beat();
    Ok(())
}
