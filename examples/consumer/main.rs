//! A queue consumer that hangfree keeps honest: its stop cannot hang, its completions
//! never let a lock expire, and a handler that goes silent gives its message back.
//!
//! `cargo run --example consumer` runs against an embedded in-process broker with
//! peek-lock semantics; `--redis-url redis://127.0.0.1:6379` runs the same consumer
//! against a Redis stream through a consumer group. `--help` lists the flags.
//!
//! What guards what:
//! - up to `--workers` handlers run at once, in a `TaskSet` with `max_in_flight`; each
//!   one inside a `CancelScope` with its own budget (`--handler-timeout`);
//! - each message's lock is a `hangfree::Lease`, kept alive by `Lease::keep_alive` while
//!   its handler beats a `deadman` pulse: a handler slower than its lock keeps it, a
//!   silent one loses it and its message goes back to the queue;
//! - completions go through a `Batcher` with `push_by(lock, lease.expires_at())`: a
//!   batch goes out before its earliest lock expires, and under load batches fill
//!   (`--strategy` selects the naive alternatives, for comparison);
//! - on SIGINT or SIGTERM: stop receiving, let handlers finish within `--grace`, abort
//!   the rest, flush completions under a bound, release what is left, report. It returns
//!   within `--grace` plus 2.5 s (see `stop`), even with hung or blocked handlers.
//!
//! Where to find what: `args` (the flags), `broker` (the trait both brokers implement),
//! `embedded` and `redis_streams` (the brokers), `consumer` (receiving and one message's
//! pipeline), `handler` (the work and its faults), `completions` (the strategies),
//! `ledger` (the books), `load` (the producer), `stop` (the signal and the bounds),
//! `progress` (stderr), `summary` (stdout and the exit code).

mod args;
mod broker;
mod completions;
mod consumer;
mod embedded;
mod handler;
mod ledger;
mod load;
mod progress;
mod redis_streams;
mod stop;
mod summary;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, TaskSet};
use tokio::sync::Notify;
use tokio::time::Instant;

use args::{Args, Load};
use broker::Broker;
use completions::Completions;
use consumer::{Consumer, Ended};
use embedded::Embedded;
use handler::Faults;
use ledger::Ledger;
use progress::Progress;
use redis_streams::RedisStreams;
use summary::Summary;

fn main() -> ExitCode {
    let args = match args::from_command_line() {
        Ok(args) => args,
        Err(usage_shown) => return usage_shown,
    };
    // An injected panic is an event of the run, not a crash: one line, no backtrace. The
    // task set catches the panic and counts it; the report names the message.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("consumer: panic: {message}");
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("consumer: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("consumer: {e:#}");
            ExitCode::FAILURE
        }
    };
    // A blocked handler (`--hang-blocking`) never returns, and dropping a runtime waits for
    // its blocking threads: this does not.
    runtime.shutdown_timeout(stop::RUNTIME_SHUTDOWN);
    code
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match &args.redis_url {
        Some(url) => {
            let name = args.consumer_name();
            let broker =
                RedisStreams::connect(url, &args.stream, &args.group, &name, args.lock).await?;
            let about = format!(
                "Redis stream {} (group {}, consumer {name})",
                args.stream, args.group
            );
            consume(Arc::new(broker), about, Duration::from_millis(1), &args).await
        }
        None => {
            let broker = Embedded::new(args.round_trip, args.lock);
            let about = format!(
                "embedded broker ({} ms round trip)",
                args.round_trip.as_millis()
            );
            consume(Arc::new(broker), about, args.round_trip, &args).await
        }
    }
}

/// The whole run against one broker: publish, receive and handle until the run is over or
/// a signal comes, then the bounded stop.
async fn consume<B: Broker>(
    broker: Arc<B>,
    about: String,
    round_trip: Duration,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    let progress = Progress::new((args.messages > 0).then_some(args.messages));
    let ledger = Arc::new(Ledger::default());
    let completions = Completions::start(
        args.strategy,
        broker.clone(),
        ledger.clone(),
        args.lock,
        round_trip,
    )?;
    let handlers = TaskSet::builder()
        .max_in_flight(args.workers)
        .abort_wait(stop::ABORT_WAIT)
        .build();
    let consumer = Arc::new(Consumer {
        broker: broker.clone(),
        ledger: ledger.clone(),
        completions: Arc::new(completions),
        handlers: handlers.clone(),
        progress: progress.clone(),
        faults: Faults::from_args(args),
        name: args.consumer_name(),
        workers: args.workers,
        lock: args.lock,
        silence: args.silence(),
        work: args.work,
        handler_timeout: args.handler_timeout,
        handled_log: args.handled_log.clone(),
        busy: AtomicUsize::new(0),
        slot_freed: Notify::new(),
    });
    progress.line(format!(
        "consumer: {about}, strategy {}, load {}, {} message(s), lock {} ms",
        strategy_name(args),
        load_name(args),
        args.messages,
        args.lock.as_millis()
    ));

    // Listen for SIGINT/SIGTERM from here on (the first call installs the handlers).
    let _signals = hangfree::scope::shutdown_signal();
    // The job's scope: the producer and the receiver stop with its token, and the stop
    // says why in its reason.
    let job = CancelScope::new();
    let stop = job.token();
    let producer = tokio::spawn(load::publish(
        broker.clone(),
        args.load,
        args.messages,
        args.interval,
        stop.clone(),
    ));
    let mut receiving = tokio::spawn({
        let (consumer, stop) = (consumer.clone(), stop.clone());
        let published = args.messages;
        async move { consumer.receive(published, stop).await }
    });

    let ended_by = tokio::select! {
        signal = stop::signal() => {
            progress.line(format!(
                "consumer: {signal}: stopping within {} ms",
                (args.grace + stop::STOP_BOUND).as_millis()
            ));
            signal.to_string()
        }
        ended = &mut receiving => match ended {
            Ok(Ok(Ended::AllHandled)) => "every message handled".to_string(),
            Ok(Ok(Ended::Drained)) => "the queue is drained".to_string(),
            Ok(Ok(Ended::Stopped)) => "stopped".to_string(),
            Ok(Err(e)) => format!("receiving failed: {e:#}"),
            Err(e) => format!("receiving panicked: {e}"),
        },
    };

    // The stop: bounded at every step (see `stop`), and as a whole. The steps after the
    // handlers run in a shield of the job: not interrupted by the stop itself, but ended
    // `grace + CLEANUP_BOUND` after it started, whatever a step does.
    let stop_started = Instant::now();
    job.cancel_with(ended_by.clone());
    let cleanup = job.shield(args.grace + stop::CLEANUP_BOUND);
    producer.abort();
    if !receiving.is_finished() {
        let _ = tokio::time::timeout(stop::RECEIVE_BOUND, &mut receiving).await;
        receiving.abort();
    }
    let handler_report = handlers.shutdown(args.grace).await;
    // The last flush: `Batcher::shutdown` bounds itself, and the shield bounds it too.
    let unfinished = match consumer
        .completions
        .finish(stop::FLUSH_BOUND)
        .within(&cleanup)
        .await
    {
        Ok(unfinished) => unfinished,
        // The ledger still lists every message not completed: they are left for
        // redelivery below, and in the report.
        Err(cut) => completions::Unfinished {
            summary: Some(format!("the last flush was cut: {cut}")),
            ..Default::default()
        },
    };
    // What is left goes back at once, so that another consumer need not wait for the
    // locks to run out. Only locks still ours are released (the brokers check).
    let left = ledger.not_completed();
    let release = tokio::time::timeout(stop::RELEASE_BOUND, consumer.release(left));
    let _ = release.within(&cleanup).await;
    let stop_took = stop_started.elapsed();
    progress.finish();

    let summary = Summary {
        broker: about,
        strategy: strategy_name(args).to_string(),
        load: load_name(args).to_string(),
        ended_by,
        stop_took,
        grace: args.grace,
        figures: ledger.figures(),
        handlers: handler_report,
        completions: unfinished,
    };
    if args.json {
        summary.print_json(args.ids);
    } else {
        summary.print_table();
    }
    Ok(summary.exit_code())
}

fn strategy_name(args: &Args) -> &'static str {
    match args.strategy {
        args::Strategy::Each => "each",
        args::Strategy::Every100 => "every-100",
        args::Strategy::Sleep5s => "sleep-5s",
        args::Strategy::Hangfree => "hangfree",
    }
}

fn load_name(args: &Args) -> &'static str {
    match args.load {
        Load::Low => "low",
        Load::High => "high",
    }
}
