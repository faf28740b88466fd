//! Compile-time checks: the watchdog types are `Send`, `Sync` and `Unpin`
//! whenever what they wrap is.

use std::future::Ready;

use futures::stream::Iter;
use hangfree::watchdog::{
    Deadman, IoWatchdog, Limits, LimitsError, Progress, Pulse, StallKind, Stalled, Watch, Watchdog,
};
use tokio::io::DuplexStream;

fn send_sync_unpin<T: Send + Sync + Unpin>() {}
fn error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn public_types_are_send_sync_and_unpin() {
    send_sync_unpin::<Watchdog<Iter<std::vec::IntoIter<u8>>>>();
    send_sync_unpin::<IoWatchdog<DuplexStream>>();
    send_sync_unpin::<Watch<Ready<()>>>();
    send_sync_unpin::<Pulse>();
    send_sync_unpin::<Deadman>();
    send_sync_unpin::<Limits>();
    send_sync_unpin::<LimitsError>();
    send_sync_unpin::<Stalled>();
    send_sync_unpin::<StallKind>();
    send_sync_unpin::<Progress>();
    error::<Stalled>();
    error::<LimitsError>();
}
