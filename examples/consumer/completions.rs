//! How completions reach the broker: the four strategies of `--strategy`, behind one
//! `complete` and one bounded `finish`.
//!
//! - `each`: the handler awaits one completion call for its message;
//! - `every-100`: a call once 100 completions have gathered (under low load they never
//!   do, and the locks run out meanwhile);
//! - `sleep-5s`: a loop that sends whatever has gathered every 5 s (longer than a short
//!   lock; a round trip per 5 s under high load, however many messages);
//! - `hangfree`: a `Batcher`, flushed when 100 have gathered, when the oldest has waited
//!   `max_delay`, or before the earliest lock in the batch expires, whichever comes first.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hangfree::batch::{Batcher, FlushError};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::args::Strategy;
use crate::broker::{Broker, Lock};
use crate::ledger::Ledger;

/// The service's limit on IDs per completion call.
pub const MAX_BATCH: usize = 100;
/// `sleep-5s`: the loop's period.
const SLEEP_PERIOD: Duration = Duration::from_secs(5);

/// A message handled, waiting for its completion.
#[derive(Debug, Clone)]
pub struct Handled {
    pub lock: Lock,
    pub handled_at: Instant,
}

/// What `finish` could not complete.
#[derive(Debug, Default)]
pub struct Unfinished {
    /// Completions never sent, or refused: their messages come back.
    pub not_sent: Vec<Lock>,
    /// Completions in a call that did not answer in time: whether they were applied is
    /// unknown, so they are listed as left for redelivery too.
    pub unknown: usize,
    pub summary: Option<String>,
}

pub struct Completions<B> {
    broker: Arc<B>,
    ledger: Arc<Ledger>,
    how: How,
}

enum How {
    Each,
    Every100 {
        gathered: Mutex<Vec<Handled>>,
    },
    Sleep5s {
        gathered: Arc<Mutex<Vec<Handled>>>,
        sender: Mutex<Option<JoinHandle<()>>>,
    },
    Hangfree {
        batcher: Batcher<Handled>,
    },
}

fn take(gathered: &Mutex<Vec<Handled>>) -> Vec<Handled> {
    std::mem::take(&mut *gathered.lock().unwrap_or_else(PoisonError::into_inner))
}

/// One completion call for `batch`, its outcome in the ledger. Returns the locks the
/// broker refused or that the call failed for.
async fn send<B: Broker>(
    broker: &B,
    ledger: &Ledger,
    batch: Vec<Handled>,
) -> anyhow::Result<Vec<Lock>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    ledger.completion_call();
    let locks: Vec<Lock> = batch.iter().map(|h| h.lock.clone()).collect();
    let outcome = broker.complete(&locks).await?;
    ledger.completion_refused(outcome.lock_lost.len());
    let handled_at = |id: &String| {
        batch
            .iter()
            .find(|h| &h.lock.id == id)
            .map(|h| h.handled_at)
    };
    ledger.completed(
        outcome
            .completed
            .iter()
            .filter_map(|id| Some((id.clone(), handled_at(id)?))),
    );
    Ok(batch
        .into_iter()
        .filter(|h| outcome.lock_lost.contains(&h.lock.id))
        .map(|h| h.lock)
        .collect())
}

impl<B: Broker> Completions<B> {
    /// `round_trip` is what one completion call may take, on the safe side: the margin
    /// kept before a lock expires.
    pub fn start(
        strategy: Strategy,
        broker: Arc<B>,
        ledger: Arc<Ledger>,
        lock: Duration,
        round_trip: Duration,
    ) -> anyhow::Result<Self> {
        let how = match strategy {
            Strategy::Each => How::Each,
            Strategy::Every100 => How::Every100 {
                gathered: Mutex::new(Vec::new()),
            },
            Strategy::Sleep5s => {
                let gathered = Arc::new(Mutex::new(Vec::new()));
                let sender = tokio::spawn({
                    let (gathered, broker, ledger) =
                        (gathered.clone(), broker.clone(), ledger.clone());
                    async move {
                        loop {
                            tokio::time::sleep(SLEEP_PERIOD).await;
                            let batch = take(&gathered);
                            let _ = send(&*broker, &ledger, batch).await;
                        }
                    }
                });
                How::Sleep5s {
                    gathered,
                    sender: Mutex::new(Some(sender)),
                }
            }
            Strategy::Hangfree => {
                // Low latency under low load; the margin is what a call may take, and the
                // batch goes out that long before its earliest lock runs out.
                let max_delay = (lock / 4).min(Duration::from_millis(200));
                let margin = (round_trip * 10).max(lock / 10).min(max_delay);
                let (flush_broker, flush_ledger) = (broker.clone(), ledger.clone());
                let batcher = Batcher::builder()
                    .max_items(MAX_BATCH)
                    .max_delay(max_delay)
                    .deadline_margin(margin)
                    .max_in_flight(4)
                    .capacity(MAX_BATCH * 20)
                    .build(move |batch: Vec<Handled>| {
                        let (broker, ledger) = (flush_broker.clone(), flush_ledger.clone());
                        async move {
                            match send(&*broker, &ledger, batch.clone()).await {
                                Ok(_refused) => Ok(()),
                                Err(e) => Err(FlushError::new(batch, e)),
                            }
                        }
                    })?;
                How::Hangfree { batcher }
            }
        };
        Ok(Completions {
            broker,
            ledger,
            how,
        })
    }

    /// Completes `handled` the strategy's way; `lock_expires_at` is when its lock runs
    /// out (used by `hangfree` only: the others do not look).
    pub async fn complete(&self, handled: Handled, lock_expires_at: Instant) {
        match &self.how {
            How::Each => {
                let _ = send(&*self.broker, &self.ledger, vec![handled]).await;
            }
            How::Every100 { gathered } => {
                let full = {
                    let mut gathered = gathered.lock().unwrap_or_else(PoisonError::into_inner);
                    gathered.push(handled);
                    (gathered.len() >= MAX_BATCH).then(|| std::mem::take(&mut *gathered))
                };
                if let Some(batch) = full {
                    let _ = send(&*self.broker, &self.ledger, batch).await;
                }
            }
            How::Sleep5s { gathered, .. } => {
                gathered
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(handled);
            }
            How::Hangfree { batcher } => {
                // Refused only once the batcher is shut down: the message is then left
                // for redelivery, and the ledger still lists it.
                let _ = batcher.push_by(handled, lock_expires_at).await;
            }
        }
    }

    /// The stop's last step: sends what is still gathered, waiting `bound` at most.
    pub async fn finish(&self, bound: Duration) -> Unfinished {
        match &self.how {
            How::Hangfree { batcher } => {
                let report = batcher.shutdown(bound).await;
                Unfinished {
                    not_sent: report
                        .unflushed()
                        .iter()
                        .map(|h| h.lock.clone())
                        .chain(
                            report
                                .failed()
                                .iter()
                                .flat_map(|f| f.items().iter().map(|h| h.lock.clone())),
                        )
                        .collect(),
                    unknown: report.unknown_items() as usize,
                    summary: Some(report.to_string()),
                }
            }
            How::Each => Unfinished::default(),
            How::Every100 { gathered } => self.send_rest(take(gathered), bound).await,
            How::Sleep5s { gathered, sender } => {
                if let Some(sender) = sender.lock().unwrap_or_else(PoisonError::into_inner).take() {
                    sender.abort();
                }
                self.send_rest(take(gathered), bound).await
            }
        }
    }

    async fn send_rest(&self, rest: Vec<Handled>, bound: Duration) -> Unfinished {
        let locks: Vec<Lock> = rest.iter().map(|h| h.lock.clone()).collect();
        match tokio::time::timeout(bound, send(&*self.broker, &self.ledger, rest)).await {
            Ok(Ok(refused)) => Unfinished {
                not_sent: refused,
                ..Unfinished::default()
            },
            Ok(Err(_)) => Unfinished {
                not_sent: locks,
                ..Unfinished::default()
            },
            Err(_elapsed) => Unfinished {
                unknown: locks.len(),
                ..Unfinished::default()
            },
        }
    }
}
