//! The end of a run: a table and the stop's account on stdout, or one JSON object with
//! `--json`; and the exit code.

use std::process::ExitCode;
use std::time::Duration;

use hangfree::{FailureKind, ShutdownReport, TaskInfo};

use crate::completions::Unfinished;
use crate::ledger::Figures;

/// Everything the summary says.
pub struct Summary {
    pub broker: String,
    pub strategy: String,
    pub load: String,
    pub ended_by: String,
    pub stop_took: Duration,
    pub grace: Duration,
    pub figures: Figures,
    pub handlers: ShutdownReport,
    pub completions: Unfinished,
}

/// The message ID a handler task's label names (`handle <id>`, `block <id>`).
fn id_of(label: &str) -> String {
    label
        .split_once(' ')
        .map_or(label, |(_, id)| id)
        .to_string()
}

fn ids(tasks: &[TaskInfo]) -> Vec<String> {
    tasks.iter().map(|task| id_of(task.label())).collect()
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
}

impl Summary {
    fn panicked(&self) -> Vec<String> {
        self.handlers
            .failures()
            .iter()
            .filter(|failure| failure.kind() == FailureKind::Panic)
            .map(|failure| id_of(failure.label()))
            .collect()
    }

    fn calls_per_message(&self) -> f64 {
        let f = &self.figures;
        if f.completed == 0 {
            0.0
        } else {
            f.completion_calls as f64 / f.completed as f64
        }
    }

    pub fn print_json(&self, with_ids: bool) {
        let f = &self.figures;
        let mut json = serde_json::json!({
            "broker": self.broker,
            "strategy": self.strategy,
            "load": self.load,
            "received": f.received,
            "handled": f.handled,
            "completed": f.completed,
            "failed": f.failed,
            "panicked": self.handlers.panicked(),
            "duplicates": f.duplicates,
            "completion_calls": f.completion_calls,
            "completion_calls_per_message": self.calls_per_message(),
            "completions_refused": f.completions_refused,
            "renewals": f.renewals,
            "handled_to_completed_p50_ms": ms(f.p50),
            "handled_to_completed_p99_ms": ms(f.p99),
            "messages_per_second": (f.messages_per_second * 10.0).round() / 10.0,
            "left_for_redelivery": f.left_for_redelivery,
            "aborted": ids(self.handlers.aborted()),
            "unresponsive": ids(self.handlers.unresponsive()),
            "panicked_ids": self.panicked(),
            "lost_locks": f.lost_locks.iter().map(|(id, why)| serde_json::json!({"id": id, "why": why})).collect::<Vec<_>>(),
            "completions_not_sent": self.completions.not_sent.iter().map(|lock| &lock.id).collect::<Vec<_>>(),
            "completions_outcome_unknown": self.completions.unknown,
            "ended_by": self.ended_by,
            "stop_ms": self.stop_took.as_millis() as u64,
        });
        if with_ids {
            json["completed_ids"] = serde_json::json!(f.completed_ids);
        }
        println!("{json}");
    }

    pub fn print_table(&self) {
        let f = &self.figures;
        let p = |d: Option<Duration>| ms(d).map_or("-".to_string(), |ms| format!("{ms:.1}"));
        println!();
        println!(
            "consumer: {}, strategy {}, load {}",
            self.broker, self.strategy, self.load
        );
        println!(
            "{:>9} {:>8} {:>10} {:>7} {:>11} {:>6} {:>10} {:>9} {:>9} {:>11}",
            "received",
            "handled",
            "completed",
            "failed",
            "duplicates",
            "calls",
            "calls/msg",
            "p50 ms",
            "p99 ms",
            "messages/s"
        );
        println!(
            "{:>9} {:>8} {:>10} {:>7} {:>11} {:>6} {:>10.3} {:>9} {:>9} {:>11.1}",
            f.received,
            f.handled,
            f.completed,
            f.failed,
            f.duplicates,
            f.completion_calls,
            self.calls_per_message(),
            p(f.p50),
            p(f.p99),
            f.messages_per_second
        );
        println!();
        println!(
            "stop: {}, took {:.2}s (grace {:.1}s)",
            self.ended_by,
            self.stop_took.as_secs_f64(),
            self.grace.as_secs_f64()
        );
        println!("handlers: {}", self.handlers);
        if let Some(batcher) = &self.completions.summary {
            println!("completions: {batcher}");
        }
        let list = |what: &str, ids: &[String]| {
            if !ids.is_empty() {
                println!("{what} ({}): {}", ids.len(), ids.join(", "));
            }
        };
        list("left for redelivery", &f.left_for_redelivery);
        list(
            "aborted handlers, message IDs",
            &ids(self.handlers.aborted()),
        );
        list(
            "unresponsive handlers, message IDs",
            &ids(self.handlers.unresponsive()),
        );
        list("panicked handlers, message IDs", &self.panicked());
        for (id, why) in &f.lost_locks {
            println!("lost lock: {id}: {why}");
        }
        for (id, why) in &f.failures {
            println!("failed: {id}: {why}");
        }
    }

    /// 0: nothing was lost. Every message received is in the ledger, and the ledger
    /// lists each one as completed or as left for redelivery (released, or its lock runs
    /// out, and the broker delivers it again), including those whose completion call did
    /// not answer in time. A run that could not go on (the broker unreachable) exits 1
    /// from `main` instead.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::SUCCESS
    }
}
