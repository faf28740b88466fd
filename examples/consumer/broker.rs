//! What the consumer needs from a queue, whichever it is: the one trait both brokers
//! implement, so that the consumer is written once.
//!
//! The semantics are peek-lock: a delivery locks its message for the lock period; the
//! lock can be renewed, the message completed or released; a message whose lock runs out
//! is delivered again, to this consumer or another.

use std::future::Future;
use std::ops::RangeInclusive;

use tokio::time::Instant;

/// Which delivery of which message: what renewing, completing and releasing act on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lock {
    /// The message's ID (`m-<seq>` on the embedded broker, the entry ID on Redis).
    pub id: String,
    /// Whose lock: the embedded broker's lock token, or the Redis consumer that owns the
    /// pending entry.
    pub token: String,
}

/// One message as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub lock: Lock,
    /// The message's position in publish order, from 1 (its body).
    pub seq: u64,
    /// Delivered before: its lock ran out, or it was released.
    pub redelivered: bool,
    /// When the lock runs out, on the safe side: the receive call's start plus the lock.
    pub locked_until: Instant,
}

/// What a completion call did.
#[derive(Debug, Default)]
pub struct Completed {
    /// The messages the broker completed.
    pub completed: Vec<String>,
    /// The messages it refused because their lock had run out (they will come back).
    pub lock_lost: Vec<String>,
}

/// A queue with peek-lock semantics. Every call is one round trip.
pub trait Broker: Send + Sync + 'static {
    /// Adds messages `seqs` to the queue.
    fn publish(&self, seqs: RangeInclusive<u64>)
    -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Up to `max` messages, waiting a short moment (100 ms) when none is ready.
    fn receive(&self, max: usize) -> impl Future<Output = anyhow::Result<Vec<Delivery>>> + Send;

    /// Extends `lock` by the lock period; an error if the lock is no longer ours.
    fn renew(&self, lock: &Lock) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Completes the messages of `locks` in one call.
    fn complete(&self, locks: &[Lock]) -> impl Future<Output = anyhow::Result<Completed>> + Send;

    /// Gives the messages back for redelivery at once, without waiting for their locks to
    /// run out. Returns how many were still ours.
    fn release(&self, locks: &[Lock]) -> impl Future<Output = anyhow::Result<usize>> + Send;

    /// Messages published and not completed, by anyone: 0 means the queue is drained.
    fn outstanding(&self) -> impl Future<Output = anyhow::Result<u64>> + Send;
}
