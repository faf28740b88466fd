//! A `tracing` subscriber that keeps every event as a line of text, for tests that check
//! what is logged. Install it as the global default in a test binary of its own: a
//! thread-local subscriber races with other tests over tracing's per-callsite interest
//! cache.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Keeps every event as "LEVEL field=value ...".
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    /// Installs a new collector as the process's global subscriber.
    pub fn install() -> Events {
        let events = Events::default();
        tracing::subscriber::set_global_default(events.clone())
            .expect("the only global subscriber of this test binary");
        events
    }

    /// Every event so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The events whose text contains `matching`, taken out of the collection.
    pub fn take(&self, matching: &str) -> Vec<String> {
        let mut lines = self.0.lock().unwrap();
        let (taken, rest) = lines.drain(..).partition(|line| line.contains(matching));
        *lines = rest;
        taken
    }
}

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Events {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
