//! A message consumer that completes messages in the background, fire and
//! forget, and must still stop on time: one completion hangs forever, one
//! fails, one panics. `shutdown` returns after its grace period and says
//! exactly what happened.
//!
//! ```sh
//! cargo run --example tasks
//! ```

use std::time::Duration;

use hangfree::TaskSet;

/// Stands in for a broker call that completes one message.
async fn complete(message: u32) -> Result<(), String> {
    match message {
        7 => std::future::pending().await, // the broker never answers
        13 => Err("lock for message 13 expired".to_owned()),
        21 => panic!("malformed lock token in message 21"),
        _ => {
            tokio::time::sleep(Duration::from_millis(u64::from(message))).await;
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() {
    let completions = TaskSet::builder().max_in_flight(16).build();
    let stop = completions.token();

    // The consumer loop: receive, process, complete in the background.
    for message in 0..40 {
        completions
            .spawn_waiting(format!("complete message {message}"), complete(message))
            .await
            .expect("the set is open until shutdown");
    }

    // A cooperative background task that stops when shutdown begins.
    completions
        .spawn("renew locks", async move {
            stop.cancelled().await;
        })
        .expect("the set is open until shutdown");

    println!("before shutdown: {completions}");
    for task in completions.running() {
        println!("  running: {task}");
    }

    let report = completions.shutdown(Duration::from_millis(500)).await;
    println!("{report}");
    assert_eq!(report.aborted().len(), 1, "message 7 hung and was aborted");
    assert_eq!((report.failed(), report.panicked()), (1, 1));
}
