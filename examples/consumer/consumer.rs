//! The consumer itself, written once for both brokers: receive as many messages as there
//! are free workers (plus a prefetch), run each one's pipeline in the task set, and know
//! when the run is over.
//!
//! One message's pipeline: its lock becomes a `Lease`; the handler runs inside a scope
//! (its own budget, `--handler-timeout`) and beats a deadman pulse; `Lease::keep_alive`
//! renews the lock while it beats; then the completion goes out the strategy's way, with
//! the lock's expiry as its deadline. A failed handler's message is released at once; a
//! handler that lost its lock is dropped, and its message comes back when the lock runs
//! out.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use hangfree::lease::Lease;
use hangfree::prelude::*;
use hangfree::watchdog::deadman;
use hangfree::{CancelScope, TaskSet};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::broker::{Broker, Delivery, Lock};
use crate::completions::{Completions, Handled, MAX_BATCH};
use crate::handler::{self, Fault, Faults};
use crate::ledger::Ledger;
use crate::progress::Progress;

/// Messages received ahead of free workers, waiting in the task set for a slot: a receive
/// call then brings a full batch, not one message per free worker, and the next batch is
/// already on its way while the workers handle this one (two batches, so that receiving,
/// a round trip per call, does not stop the workers). A message that waits so long that
/// its lock runs out is not lost: its keep-alive finds the lease expired, and it is
/// delivered again.
const PREFETCH: usize = 2 * MAX_BATCH;

/// How long a release at the end of a failed handler may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(1);

/// What every message's pipeline shares.
pub struct Consumer<B> {
    pub broker: Arc<B>,
    pub ledger: Arc<Ledger>,
    pub completions: Arc<Completions<B>>,
    pub handlers: TaskSet,
    pub progress: Progress,
    pub faults: Faults,
    pub name: String,
    pub workers: usize,
    pub lock: Duration,
    pub silence: Duration,
    pub work: Duration,
    pub handler_timeout: Duration,
    pub handled_log: Option<PathBuf>,
    /// Pipelines running or waiting for a worker; at most `workers + PREFETCH`.
    pub busy: AtomicUsize,
    pub slot_freed: Notify,
}

/// Why receiving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every message this run published has been handled.
    AllHandled,
    /// Nothing left in the queue, for anyone.
    Drained,
    /// The stop signal.
    Stopped,
}

/// Frees a worker slot when a pipeline ends, however it ends (also aborted).
struct Slot<B>(Arc<Consumer<B>>);

impl<B> Drop for Slot<B> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.slot_freed.notify_one();
    }
}

impl<B: Broker> Consumer<B> {
    /// Receives until `stop` is cancelled or the run is over. `published` is how many
    /// messages this run publishes; 0 means "until the queue is drained". A receive call
    /// in flight when `stop` comes is let finish (it is short) and what it brought is
    /// released, so that no message is taken off the queue and forgotten.
    pub async fn receive(
        self: &Arc<Self>,
        published: u64,
        stop: CancellationToken,
    ) -> anyhow::Result<Ended> {
        loop {
            if stop.is_cancelled() {
                return Ok(Ended::Stopped);
            }
            if published > 0 && self.ledger.handled_distinct() >= published {
                return Ok(Ended::AllHandled);
            }
            let busy = self.busy.load(Ordering::SeqCst);
            let free = (self.workers + PREFETCH).saturating_sub(busy);
            // A round trip for a handful of messages is a waste while workers have work
            // queued: receive again when a worker is idle or a full batch fits.
            if free == 0 || (busy >= self.workers && free < MAX_BATCH) {
                let freed = self.slot_freed.notified();
                tokio::select! {
                    () = freed => {}
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
            let deliveries = self.broker.receive(free.min(MAX_BATCH)).await?;
            if deliveries.is_empty() {
                if published == 0
                    && self.busy.load(Ordering::SeqCst) == 0
                    && self.broker.outstanding().await? == 0
                {
                    return Ok(Ended::Drained);
                }
                continue;
            }
            for delivery in deliveries {
                self.ledger.received(&delivery);
                if stop.is_cancelled() {
                    self.release(vec![delivery.lock]).await;
                    continue;
                }
                self.start(delivery);
            }
        }
    }

    fn start(self: &Arc<Self>, delivery: Delivery) {
        self.busy.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(self.clone());
        let label = format!("handle {}", delivery.lock.id);
        let me = self.clone();
        let lock = delivery.lock.clone();
        let pipeline = async move {
            let _slot = slot;
            me.pipeline(delivery).await
        };
        if self.handlers.spawn(label, pipeline).is_err() {
            // Shutting down: the message goes back to the queue.
            let me = self.clone();
            tokio::spawn(async move { me.release(vec![lock]).await });
        }
    }

    async fn pipeline(self: Arc<Self>, delivery: Delivery) -> anyhow::Result<()> {
        let id = delivery.lock.id.clone();
        let fault = self.faults.of(&delivery);
        if fault != Fault::None {
            self.progress
                .line(format!("{id}: fault injected: {fault:?}"));
        }
        let lease = Lease::new(delivery.locked_until, self.lock);
        let (pulse, deadman) = deadman(self.silence);
        let renew = {
            let (broker, lock) = (self.broker.clone(), delivery.lock.clone());
            move || {
                let (broker, lock) = (broker.clone(), lock.clone());
                async move { broker.renew(&lock).await }
            }
        };
        // The handler's own budget, which may be longer than a lock; it does not watch the
        // stop signal: in-flight handlers may finish within the stop's grace.
        let budget = CancelScope::new().with_timeout(self.handler_timeout);
        let work = handler::handle(
            id.clone(),
            fault,
            pulse,
            self.work,
            self.lock,
            self.handlers.clone(),
        )
        .within(&budget);
        let outcome = lease.keep_alive(deadman, renew, work).await;
        let renewals = lease.renewals();
        match outcome {
            Ok(Ok(Ok(()))) => {
                let handled_at = Instant::now();
                self.ledger.handled(&id, renewals);
                self.log_handled(&id);
                self.progress.handled();
                let handled = Handled {
                    lock: delivery.lock,
                    handled_at,
                };
                self.completions.complete(handled, lease.expires_at()).await;
                Ok(())
            }
            Ok(Ok(Err(failed))) => {
                self.ledger.failed(&id, format!("{failed:#}"), renewals);
                self.progress.line(format!(
                    "{id}: handler failed: {failed:#}; released for redelivery"
                ));
                self.release(vec![delivery.lock]).await;
                Err(failed)
            }
            Ok(Err(interrupted)) => {
                let why = format!("handler stopped: {interrupted}");
                self.ledger.failed(&id, why.clone(), renewals);
                self.progress
                    .line(format!("{id}: {why}; released for redelivery"));
                self.release(vec![delivery.lock]).await;
                Err(anyhow!(why))
            }
            Err(lost) => {
                let why = lost.to_string();
                self.ledger.lost_lock(&id, why.clone(), renewals);
                self.progress
                    .line(format!("{id}: {why}; it will be delivered again"));
                Err(anyhow!(why))
            }
        }
    }

    /// Gives messages back at once; if that fails, their locks run out and they come back
    /// anyway.
    pub async fn release(&self, locks: Vec<Lock>) {
        if locks.is_empty() {
            return;
        }
        match tokio::time::timeout(RELEASE_TIMEOUT, self.broker.release(&locks)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => self
                .progress
                .line(format!("release failed ({e:#}); the locks will run out")),
            Err(_) => self
                .progress
                .line("release timed out; the locks will run out"),
        }
    }

    fn log_handled(&self, id: &str) {
        let Some(path) = &self.handled_log else {
            return;
        };
        // One write per line, appended: lines from several processes never interleave.
        let line = format!("{id} {}\n", self.name);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = written {
            self.progress
                .line(format!("cannot append to {}: {e}", path.display()));
        }
    }
}
