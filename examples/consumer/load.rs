//! The producer: `--load low` publishes one message every `--interval`, `--load high`
//! all of them at once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::args::Load;
use crate::broker::Broker;

pub async fn publish<B: Broker>(
    broker: Arc<B>,
    load: Load,
    messages: u64,
    interval: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    if messages == 0 {
        return Ok(());
    }
    match load {
        Load::High => broker.publish(1..=messages).await,
        Load::Low => {
            for seq in 1..=messages {
                if stop.is_cancelled() {
                    break;
                }
                broker.publish(seq..=seq).await?;
                if seq < messages {
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
            Ok(())
        }
    }
}
