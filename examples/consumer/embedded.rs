//! The embedded broker: a queue in this process with peek-lock semantics, so that the
//! example runs with no services. Every call waits the configured round trip first, as a
//! network call would. A delivery locks its message for the lock period under a fresh
//! token; completing or renewing with a token whose lock ran out is refused; a message
//! whose lock ran out is ready again, and the next receive delivers it again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep, timeout_at};

use crate::broker::{Broker, Completed, Delivery, Lock};

/// How long a receive waits for a message when none is ready.
const RECEIVE_WAIT: Duration = Duration::from_millis(100);

pub struct Embedded {
    state: Mutex<State>,
    round_trip: Duration,
    lock: Duration,
    ready_now: Notify,
}

#[derive(Default)]
struct State {
    messages: HashMap<u64, Message>,
    /// Messages that can be delivered, in order.
    ready: VecDeque<u64>,
    /// Every lock handed out, by expiry; a lock completed, renewed or released since is
    /// skipped when it comes up (its token no longer matches).
    expiries: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    next_token: u64,
}

struct Message {
    deliveries: u32,
    lock: Option<(u64, Instant)>,
    done: bool,
}

fn id_of(seq: u64) -> String {
    format!("m-{seq}")
}

fn seq_of(id: &str) -> Option<u64> {
    id.strip_prefix("m-")?.parse().ok()
}

impl Embedded {
    pub fn new(round_trip: Duration, lock: Duration) -> Embedded {
        Embedded {
            state: Mutex::new(State::default()),
            round_trip,
            lock,
            ready_now: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The message of `lock`, if `lock` is its current, unexpired lock.
    fn locked<'a>(state: &'a mut State, lock: &Lock, now: Instant) -> Option<&'a mut Message> {
        let token: u64 = lock.token.parse().ok()?;
        let message = state.messages.get_mut(&seq_of(&lock.id)?)?;
        match message.lock {
            Some((held, until)) if held == token && until > now && !message.done => Some(message),
            _ => None,
        }
    }
}

impl State {
    /// Locks that ran out make their messages ready again.
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((until, seq, token))) = self.expiries.peek() {
            if until > now {
                break;
            }
            self.expiries.pop();
            let Some(message) = self.messages.get_mut(&seq) else {
                continue;
            };
            if message
                .lock
                .is_some_and(|(held, at)| held == token && at == until)
            {
                message.lock = None;
                self.ready.push_back(seq);
            }
        }
    }

    fn deliver(
        &mut self,
        max: usize,
        now: Instant,
        lock: Duration,
        locked_until: Instant,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(seq) = self.ready.pop_front() else {
                break;
            };
            let token = self.next_token;
            self.next_token += 1;
            let until = now + lock;
            let message = self.messages.get_mut(&seq).expect("ready messages exist");
            message.deliveries += 1;
            message.lock = Some((token, until));
            self.expiries.push(Reverse((until, seq, token)));
            out.push(Delivery {
                lock: Lock {
                    id: id_of(seq),
                    token: token.to_string(),
                },
                seq,
                redelivered: message.deliveries > 1,
                locked_until,
            });
        }
        out
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.expiries.peek().map(|Reverse((until, _, _))| *until)
    }
}

impl Broker for Embedded {
    async fn publish(&self, seqs: RangeInclusive<u64>) -> anyhow::Result<()> {
        let mut state = self.state();
        for seq in seqs {
            state.messages.insert(
                seq,
                Message {
                    deliveries: 0,
                    lock: None,
                    done: false,
                },
            );
            state.ready.push_back(seq);
        }
        drop(state);
        self.ready_now.notify_waiters();
        Ok(())
    }

    async fn receive(&self, max: usize) -> anyhow::Result<Vec<Delivery>> {
        let sent = Instant::now();
        let locked_until = sent + self.lock;
        sleep(self.round_trip).await;
        let give_up = Instant::now() + RECEIVE_WAIT;
        loop {
            let ready_now = self.ready_now.notified();
            let wake_at = {
                let mut state = self.state();
                let now = Instant::now();
                state.expire(now);
                let out = state.deliver(max, now, self.lock, locked_until);
                if !out.is_empty() || now >= give_up {
                    return Ok(out);
                }
                state.next_expiry().map_or(give_up, |at| at.min(give_up))
            };
            let _ = timeout_at(wake_at, ready_now).await;
        }
    }

    async fn renew(&self, lock: &Lock) -> anyhow::Result<()> {
        sleep(self.round_trip).await;
        let mut state = self.state();
        let now = Instant::now();
        let period = self.lock;
        let seq = seq_of(&lock.id);
        let Some(message) = Embedded::locked(&mut state, lock, now) else {
            bail!("{}: the lock has run out or was taken", lock.id);
        };
        let (token, _) = message.lock.expect("locked");
        let until = now + period;
        message.lock = Some((token, until));
        if let Some(seq) = seq {
            state.expiries.push(Reverse((until, seq, token)));
        }
        Ok(())
    }

    async fn complete(&self, locks: &[Lock]) -> anyhow::Result<Completed> {
        sleep(self.round_trip).await;
        let mut state = self.state();
        let now = Instant::now();
        let mut outcome = Completed::default();
        for lock in locks {
            match Embedded::locked(&mut state, lock, now) {
                Some(message) => {
                    message.done = true;
                    message.lock = None;
                    outcome.completed.push(lock.id.clone());
                }
                None => outcome.lock_lost.push(lock.id.clone()),
            }
        }
        Ok(outcome)
    }

    async fn release(&self, locks: &[Lock]) -> anyhow::Result<usize> {
        sleep(self.round_trip).await;
        let mut state = self.state();
        let now = Instant::now();
        let mut released = 0;
        for lock in locks {
            if let Some(message) = Embedded::locked(&mut state, lock, now) {
                message.lock = None;
                released += 1;
                if let Some(seq) = seq_of(&lock.id) {
                    state.ready.push_front(seq);
                }
            }
        }
        drop(state);
        self.ready_now.notify_waiters();
        Ok(released)
    }

    async fn outstanding(&self) -> anyhow::Result<u64> {
        let state = self.state();
        Ok(state.messages.values().filter(|m| !m.done).count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: Duration = Duration::from_secs(5);

    fn broker() -> Embedded {
        Embedded::new(Duration::from_millis(1), LOCK)
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_whose_lock_runs_out_is_delivered_again_and_its_old_lock_refused() {
        let broker = broker();
        broker.publish(1..=1).await.unwrap();
        let first = broker.receive(10).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(!first[0].redelivered);
        assert!(
            broker.receive(10).await.unwrap().is_empty(),
            "locked: not delivered twice"
        );

        tokio::time::sleep(LOCK).await;
        let again = broker.receive(10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert!(again[0].redelivered);
        assert_eq!(again[0].lock.id, "m-1");
        let refused = broker
            .complete(std::slice::from_ref(&first[0].lock))
            .await
            .unwrap();
        assert_eq!(refused.lock_lost, ["m-1"]);
        assert!(broker.renew(&first[0].lock).await.is_err());
        let done = broker
            .complete(std::slice::from_ref(&again[0].lock))
            .await
            .unwrap();
        assert_eq!(done.completed, ["m-1"]);
        assert_eq!(broker.outstanding().await.unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewed_lock_outlives_its_first_period() {
        let broker = broker();
        broker.publish(1..=1).await.unwrap();
        let delivery = broker.receive(10).await.unwrap().remove(0);
        tokio::time::sleep(LOCK - Duration::from_secs(1)).await;
        broker.renew(&delivery.lock).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(broker.receive(10).await.unwrap().is_empty(), "still locked");
        assert_eq!(
            broker.complete(&[delivery.lock]).await.unwrap().completed,
            ["m-1"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_message_is_delivered_again_at_once() {
        let broker = broker();
        broker.publish(1..=2).await.unwrap();
        let first = broker.receive(1).await.unwrap().remove(0);
        assert_eq!(
            broker
                .release(std::slice::from_ref(&first.lock))
                .await
                .unwrap(),
            1
        );
        let again = broker.receive(1).await.unwrap().remove(0);
        assert_eq!(again.lock.id, first.lock.id);
        assert!(again.redelivered);
        assert_eq!(
            broker.release(&[first.lock]).await.unwrap(),
            0,
            "an old lock releases nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_call_takes_the_round_trip() {
        let broker = Embedded::new(Duration::from_millis(7), LOCK);
        broker.publish(1..=100).await.unwrap();
        let start = Instant::now();
        let got = broker.receive(100).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(7));
        let locks: Vec<Lock> = got.into_iter().map(|d| d.lock).collect();
        broker.complete(&locks).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(14));
    }
}
