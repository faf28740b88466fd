//! A watchdog leaves nothing behind: heap bytes are counted by a global
//! allocator across a million watched polls that go `Pending` (arming the
//! timer) and a million short-lived watchdogs.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use hangfree::prelude::*;
use hangfree::watchdog::{IoWatchdog, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

const OPERATIONS: u64 = 1_000_000;
const LIMIT: Duration = Duration::from_secs(60);

/// Alternates `Pending` (waking itself at once) and an item: every other
/// poll makes the watchdog start its idle clock and arm its timer.
struct Blinking {
    left: u64,
    ready: bool,
}

impl Stream for Blinking {
    type Item = u64;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        self.left -= 1;
        Poll::Ready(Some(self.left))
    }
}

fn live() -> isize {
    alloc::live()
}

#[tokio::test]
async fn a_million_watched_pendings_and_a_million_watchdogs_leave_the_heap_where_it_was() {
    alloc::count_this_thread();
    // Warm up the runtime, the timer wheel and the allocator's caches.
    let limits = Limits::new()
        .idle(LIMIT)
        .total(100 * LIMIT)
        .min_rate(1, LIMIT);
    for _ in 0..1000 {
        let mut s = Blinking {
            left: 1,
            ready: false,
        }
        .watchdog(limits);
        while s.next().await.is_some() {}
    }

    // One long-lived watchdog: a million `Pending`s, each arming or
    // re-using the one timer.
    let before = live();
    let mut long = Blinking {
        left: OPERATIONS,
        ready: false,
    }
    .watchdog(limits);
    let mut items = 0;
    while let Some(item) = long.next().await {
        item.unwrap();
        items += 1;
        if items == OPERATIONS / 2 {
            let growth = live() - before;
            assert!(growth < 4096, "{growth} bytes live half way");
        }
    }
    assert_eq!(items, OPERATIONS);
    drop(long);
    let growth = live() - before;
    assert!(
        growth < 4096,
        "{growth} bytes still live after a million pendings"
    );

    // A million watchdogs, each arming a timer and dropping it.
    let before = live();
    for _ in 0..OPERATIONS {
        let mut s = Blinking {
            left: 1,
            ready: false,
        }
        .watchdog(limits);
        while s.next().await.is_some() {}
    }
    let growth = live() - before;
    assert!(
        growth < 4096,
        "{growth} bytes still live after a million watchdogs"
    );
}

#[tokio::test(start_paused = true)]
async fn stalled_readers_leave_nothing_behind() {
    alloc::count_this_thread();
    let run = || async {
        let (client, mut server) = tokio::io::duplex(64);
        server.write_all(b"partial").await.unwrap();
        let mut reader = IoWatchdog::new(client, Limits::new().idle(LIMIT));
        assert!(reader.read_to_end(&mut Vec::new()).await.is_err());
        assert!(reader.read(&mut [0; 8]).await.is_err());
    };
    for _ in 0..100 {
        run().await;
    }
    let before = live();
    for _ in 0..10_000 {
        run().await;
    }
    let growth = live() - before;
    assert!(
        growth < 4096,
        "{growth} bytes still live after 10,000 stalls"
    );
}
