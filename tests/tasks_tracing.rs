//! With the `tracing` feature, failures, panics, shutdown reports and a
//! dropped set are logged with labels. Its own test binary with a global
//! subscriber: a thread-local one races with other tests over tracing's
//! per-callsite interest cache.
#![cfg(feature = "tracing")]

use std::fmt::Write as _;
use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hangfree::TaskSet;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Panics with `message`; typed `()` so that the task has a `TaskOutcome`.
fn boom(message: &str) {
    panic!("{message}")
}

/// Keeps every event as "LEVEL field=value ..." text.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Collect {
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

#[tokio::test(start_paused = true)]
async fn failures_panics_reports_and_drops_are_logged_with_labels() {
    let collect = Collect::default();
    tracing::subscriber::set_global_default(collect.clone()).unwrap();

    let set = TaskSet::new();
    set.spawn("ack 1", async { Err::<(), _>("lock lost") })
        .unwrap();
    set.spawn("parse 2", async { boom("bad row") }).unwrap();
    set.spawn("hangs", pending::<()>()).unwrap();
    let report = set.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.aborted().len(), 1);

    let dropped = TaskSet::new();
    dropped.spawn("left behind", pending::<()>()).unwrap();
    dropped.spawn("left behind too", pending::<()>()).unwrap();
    let (release, released) = std::sync::mpsc::channel::<()>();
    dropped
        .spawn_blocking("blocking, left running", move || {
            // A real blocking wait is the point: it cannot be aborted.
            let _ = released.recv();
        })
        .unwrap();
    drop(dropped);
    release.send(()).unwrap();

    let lines = collect.0.lock().unwrap().clone();
    let find = |needle: &str| {
        lines
            .iter()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no event with {needle:?} in {lines:#?}"))
            .clone()
    };
    let failed = find("task failed");
    assert!(
        failed.starts_with("WARN") && failed.contains("task.label=ack 1"),
        "{failed}"
    );
    assert!(failed.contains("error=lock lost"), "{failed}");
    let panicked = find("task panicked");
    assert!(panicked.starts_with("ERROR") && panicked.contains("task.label=parse 2"));
    assert!(panicked.contains("panic=bad row"), "{panicked}");
    let shut = find("task set shut down");
    assert!(
        shut.starts_with("WARN") && shut.contains("aborted=1"),
        "{shut}"
    );
    assert!(shut.contains(r#"aborted: #3 "hangs""#), "{shut}");
    let drop_warning = find("TaskSet dropped");
    // The blocking closure is not counted as aborted: it runs on.
    assert!(drop_warning.contains("aborted=2"), "{drop_warning}");
    assert!(drop_warning.contains("blocking=1"), "{drop_warning}");
}
