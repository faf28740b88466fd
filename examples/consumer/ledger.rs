//! The consumer's books: every delivery, what became of it, and the figures of the
//! summary. One mutex, touched a few times per message.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::broker::{Delivery, Lock};

#[derive(Default)]
pub struct Ledger {
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    deliveries: u64,
    duplicates: u64,
    handled: u64,
    failed: u64,
    completed: u64,
    completion_calls: u64,
    completions_refused: u64,
    renewals: u64,
    /// The latest state of every message received, by ID, with its latest lock.
    messages: BTreeMap<String, (State, Lock)>,
    handled_ids: HashSet<String>,
    latencies: Vec<Duration>,
    lost_locks: Vec<(String, String)>,
    failures: Vec<(String, String)>,
    first_receive: Option<Instant>,
    last_completion: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Received: a handler has it, or had it when it failed, panicked or lost the lock.
    Received,
    /// Handled; its completion is on its way.
    Handled,
    Completed,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct Figures {
    pub received: u64,
    pub duplicates: u64,
    pub handled: u64,
    pub failed: u64,
    pub completed: u64,
    pub completion_calls: u64,
    pub completions_refused: u64,
    pub renewals: u64,
    pub left_for_redelivery: Vec<String>,
    pub completed_ids: Vec<String>,
    pub lost_locks: Vec<(String, String)>,
    pub failures: Vec<(String, String)>,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub messages_per_second: f64,
}

impl Ledger {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn received(&self, delivery: &Delivery) {
        let mut book = self.book();
        book.deliveries += 1;
        if delivery.redelivered {
            book.duplicates += 1;
        }
        book.first_receive.get_or_insert_with(Instant::now);
        book.messages.insert(
            delivery.lock.id.clone(),
            (State::Received, delivery.lock.clone()),
        );
    }

    pub fn handled(&self, id: &str, renewals: u64) {
        let mut book = self.book();
        book.handled += 1;
        book.renewals += renewals;
        book.handled_ids.insert(id.to_string());
        if let Some((state, _)) = book.messages.get_mut(id) {
            *state = State::Handled;
        }
    }

    pub fn failed(&self, id: &str, why: String, renewals: u64) {
        let mut book = self.book();
        book.failed += 1;
        book.renewals += renewals;
        book.failures.push((id.to_string(), why));
    }

    pub fn lost_lock(&self, id: &str, why: String, renewals: u64) {
        let mut book = self.book();
        book.renewals += renewals;
        book.lost_locks.push((id.to_string(), why));
    }

    pub fn completion_call(&self) {
        self.book().completion_calls += 1;
    }

    /// The broker completed `ids`, each handled at its instant.
    pub fn completed(&self, ids: impl IntoIterator<Item = (String, Instant)>) {
        let now = Instant::now();
        let mut book = self.book();
        for (id, handled_at) in ids {
            if let Some((state, _)) = book.messages.get_mut(&id) {
                if *state != State::Completed {
                    *state = State::Completed;
                    book.completed += 1;
                    book.latencies.push(now - handled_at);
                }
            }
        }
        book.last_completion = Some(now);
    }

    /// The broker refused to complete these: their locks had run out.
    pub fn completion_refused(&self, count: usize) {
        self.book().completions_refused += count as u64;
    }

    /// The latest lock of every message not completed: what a stop releases.
    pub fn not_completed(&self) -> Vec<Lock> {
        self.book()
            .messages
            .values()
            .filter(|(state, _)| *state != State::Completed)
            .map(|(_, lock)| lock.clone())
            .collect()
    }

    /// Distinct messages handled so far.
    pub fn handled_distinct(&self) -> u64 {
        self.book().handled_ids.len() as u64
    }

    pub fn figures(&self) -> Figures {
        let book = self.book();
        let mut latencies = book.latencies.clone();
        latencies.sort();
        let percentile = |p: f64| {
            (!latencies.is_empty()).then(|| {
                let at = ((latencies.len() as f64 - 1.0) * p).round() as usize;
                latencies[at]
            })
        };
        let elapsed = match (book.first_receive, book.last_completion) {
            (Some(first), Some(last)) if last > first => (last - first).as_secs_f64(),
            _ => 0.0,
        };
        Figures {
            received: book.deliveries,
            duplicates: book.duplicates,
            handled: book.handled,
            failed: book.failed,
            completed: book.completed,
            completion_calls: book.completion_calls,
            completions_refused: book.completions_refused,
            renewals: book.renewals,
            left_for_redelivery: book
                .messages
                .iter()
                .filter(|(_, (state, _))| *state != State::Completed)
                .map(|(id, _)| id.clone())
                .collect(),
            completed_ids: book
                .messages
                .iter()
                .filter(|(_, (state, _))| *state == State::Completed)
                .map(|(id, _)| id.clone())
                .collect(),
            lost_locks: book.lost_locks.clone(),
            failures: book.failures.clone(),
            p50: percentile(0.50),
            p99: percentile(0.99),
            messages_per_second: if elapsed > 0.0 {
                book.completed as f64 / elapsed
            } else {
                0.0
            },
        }
    }
}
