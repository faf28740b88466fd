//! A guarded call that times out, a child scope that inherits its parent's deadline, a
//! library call that honours its caller's budget without being handed it, and a stop that
//! gives the last flush a bounded grace.
//!
//! Run with `cargo run --example scope`. Real time, well under a second.

use std::time::Duration;

use hangfree::prelude::*;
use hangfree::{CancelScope, Cause};
use tokio::time::{Instant, sleep};

/// Stands in for a query whose server has gone quiet: it answers after `after`.
async fn query(name: &str, after: Duration) -> String {
    sleep(after).await;
    format!("{name}: 42 rows")
}

#[tokio::main]
async fn main() {
    let start = Instant::now();
    let ms = |d: Duration| d.as_millis();

    // 1. A call that fits in its budget, and one that does not.
    let job = CancelScope::new().with_timeout(Duration::from_millis(300));
    match query("orders", Duration::from_millis(50))
        .within(&job)
        .await
    {
        Ok(rows) => println!("[{:>4} ms] ok: {rows}", ms(start.elapsed())),
        Err(why) => println!("[{:>4} ms] unexpected: {why}", ms(start.elapsed())),
    }
    match query("customers", Duration::from_secs(3600))
        .within(&job)
        .await
    {
        Ok(rows) => println!("[{:>4} ms] unexpected: {rows}", ms(start.elapsed())),
        Err(why) => println!(
            "[{:>4} ms] interrupted as promised: {why}",
            ms(start.elapsed())
        ),
    }

    // 2. A child asks for more time than its parent has left: it gets the parent's deadline.
    let parent = CancelScope::new().with_timeout(Duration::from_millis(200));
    let child = parent.child().with_timeout(Duration::from_secs(10));
    println!(
        "child asked for 10s, has {} ms left (its parent's deadline)",
        child.remaining().map_or(0, ms)
    );
    let step = Instant::now();
    let result = query("invoices", Duration::from_secs(60))
        .within(&child)
        .await;
    match result {
        Err(why) if why.cause() == Cause::InheritedDeadlineExceeded => println!(
            "[{:>4} ms] child stopped after {} ms: {why}",
            ms(start.elapsed()),
            ms(step.elapsed())
        ),
        other => {
            eprintln!("unexpected outcome: {other:?}");
            std::process::exit(1);
        }
    }

    // 3. Cancelling a child leaves its parent alone.
    let parent = CancelScope::new();
    let child = parent.child();
    child.cancel();
    println!(
        "child cancelled: {}, parent cancelled: {}",
        child.is_cancelled(),
        parent.is_cancelled()
    );

    // 4. Library code honours the current scope, named, without a parameter; a hook says
    //    when the budget ran out.
    let request = CancelScope::new()
        .with_name("GET /invoices")
        .with_timeout(Duration::from_millis(100));
    let _told = request.on_interrupt(|why| println!("hook: {why}"));
    let step = Instant::now();
    match request.enter(library_call()).await {
        Err(why) => println!(
            "[{:>4} ms] library call stopped after {} ms: {why}",
            ms(start.elapsed()),
            ms(step.elapsed())
        ),
        Ok(rows) => {
            eprintln!("unexpected: {rows}");
            std::process::exit(1);
        }
    }

    // 5. A stop with a reason; the last flush runs on under a shield, for 50 ms at most.
    let consumer = CancelScope::new();
    let flush = consumer.shield(Duration::from_millis(50));
    consumer.cancel_with("service stopping");
    let step = Instant::now();
    let flushed = query("acknowledgements", Duration::from_secs(60))
        .within(&flush)
        .await;
    match flushed {
        Err(why) if why.cause() == Cause::GraceExceeded => println!(
            "[{:>4} ms] flush given up after {} ms: {why} ({})",
            ms(start.elapsed()),
            ms(step.elapsed()),
            consumer.check().unwrap_err()
        ),
        other => {
            eprintln!("unexpected outcome: {other:?}");
            std::process::exit(1);
        }
    }
}

/// A library function: it takes no scope, and stops with its caller's.
async fn library_call() -> Result<String, hangfree::Interrupted> {
    query("invoices", Duration::from_secs(60))
        .within_current()
        .await
}
