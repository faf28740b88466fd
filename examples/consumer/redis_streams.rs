//! Redis Streams as a peek-lock queue, through a consumer group.
//!
//! | peek-lock | Redis Streams |
//! |---|---|
//! | receive | `XREADGROUP GROUP <group> <name> COUNT n BLOCK 100 STREAMS <stream> >` |
//! | the lock | the entry's idle time in the group's pending entries list |
//! | lock expiry, redelivery | a second consumer, `<name>-claimer`, runs `XAUTOCLAIM` with `min-idle-time` equal to the lock |
//! | renew | a script: the owner in `XPENDING` must be us, then `XCLAIM … 0 <id> JUSTID` |
//! | complete a batch | one `XACK` with every ID |
//! | release | a script: if still ours, `XCLAIM … 0 <id> IDLE <lock> JUSTID`, claimable at once |
//!
//! `XCLAIM` checks only the idle time, never the owner: a plain `XCLAIM` to ourselves
//! would silently take back a message another consumer had already claimed, and two
//! handlers would work on it at once. The scripts run atomically on the server, so the
//! owner cannot change between the check and the claim.

use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, bail};
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Script};
use tokio::time::Instant;

use crate::broker::{Broker, Completed, Delivery, Lock};

/// How long `XREADGROUP` blocks when nothing is there.
const BLOCK: Duration = Duration::from_millis(100);
/// A reply later than this is an error (a server that stopped answering).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Renews the lock of one entry if, and only if, `owner` still holds it.
/// KEYS[1] stream; ARGV: group, owner, id. Returns 1 renewed, 0 not pending, -1 owner changed.
const RENEW: &str = r"
local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)[1]
if not entry then return 0 end
if entry[2] ~= ARGV[2] then return -1 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
";

/// Makes the entries `owner` still holds claimable at once by setting their idle time to
/// the lock. KEYS[1] stream; ARGV: group, owner, lock in ms, ids... Returns how many.
const RELEASE: &str = r"
local released = 0
for i = 4, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)[1]
  if entry and entry[2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    released = released + 1
  end
end
return released
";

pub struct RedisStreams {
    /// For `XREADGROUP … BLOCK`, which would hold up every other call on a shared
    /// connection.
    reader: MultiplexedConnection,
    /// Everything else: claims, renewals, acknowledgements.
    calls: MultiplexedConnection,
    stream: String,
    group: String,
    consumer: String,
    claimer: String,
    lock: Duration,
    /// Where the claimer's `XAUTOCLAIM` scan goes on from.
    claim_cursor: Mutex<String>,
    renew: Script,
    release: Script,
}

impl RedisStreams {
    pub async fn connect(
        url: &str,
        stream: &str,
        group: &str,
        consumer: &str,
        lock: Duration,
    ) -> anyhow::Result<RedisStreams> {
        let client = redis::Client::open(url).with_context(|| format!("bad Redis URL {url}"))?;
        let config = AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
        let reader = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        let mut calls = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .with_context(|| format!("cannot connect to {url}"))?;
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut calls)
            .await;
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                return Err(e).context("cannot create the consumer group");
            }
        }
        Ok(RedisStreams {
            reader,
            calls,
            stream: stream.to_string(),
            group: group.to_string(),
            consumer: consumer.to_string(),
            claimer: format!("{consumer}-claimer"),
            lock,
            claim_cursor: Mutex::new("0-0".to_string()),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        })
    }

    fn lock_ms(&self) -> u64 {
        self.lock.as_millis().try_into().unwrap_or(u64::MAX)
    }

    fn delivery(
        &self,
        entry: &StreamId,
        owner: &str,
        redelivered: bool,
        sent: Instant,
    ) -> Delivery {
        Delivery {
            lock: Lock {
                id: entry.id.clone(),
                token: owner.to_string(),
            },
            seq: entry.get::<u64>("seq").unwrap_or(0),
            redelivered,
            locked_until: sent + self.lock,
        }
    }

    /// The claimer's turn: entries idle for a whole lock, whoever held them, become ours.
    async fn claim(&self, max: usize) -> anyhow::Result<Vec<Delivery>> {
        let cursor = self.claim_cursor.lock().unwrap().clone();
        let sent = Instant::now();
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.claimer)
            .arg(self.lock_ms())
            .arg(&cursor)
            .arg("COUNT")
            .arg(max)
            .query_async(&mut self.calls.clone())
            .await
            .context("XAUTOCLAIM failed")?;
        *self.claim_cursor.lock().unwrap() = reply.next_stream_id.clone();
        Ok(reply
            .claimed
            .iter()
            .map(|entry| self.delivery(entry, &self.claimer, true, sent))
            .collect())
    }
}

impl Broker for RedisStreams {
    async fn publish(&self, seqs: RangeInclusive<u64>) -> anyhow::Result<()> {
        let seqs: Vec<u64> = seqs.collect();
        for chunk in seqs.chunks(1000) {
            let mut pipe = redis::pipe();
            for seq in chunk {
                pipe.cmd("XADD")
                    .arg(&self.stream)
                    .arg("*")
                    .arg("seq")
                    .arg(seq)
                    .ignore();
            }
            let () = pipe
                .query_async(&mut self.calls.clone())
                .await
                .context("XADD failed")?;
        }
        Ok(())
    }

    async fn receive(&self, max: usize) -> anyhow::Result<Vec<Delivery>> {
        let claimed = self.claim(max).await?;
        if !claimed.is_empty() {
            return Ok(claimed);
        }
        let sent = Instant::now();
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.reader.clone())
            .await
            .context("XREADGROUP failed")?;
        let entries = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids);
        Ok(entries
            .map(|entry| self.delivery(&entry, &self.consumer, false, sent))
            .collect())
    }

    async fn renew(&self, lock: &Lock) -> anyhow::Result<()> {
        let renewed: i64 = self
            .renew
            .key(&self.stream)
            .arg(&self.group)
            .arg(&lock.token)
            .arg(&lock.id)
            .invoke_async(&mut self.calls.clone())
            .await
            .context("the renewal script failed")?;
        match renewed {
            1 => Ok(()),
            0 => bail!("{}: no longer pending (completed or deleted)", lock.id),
            _ => bail!("{}: claimed by another consumer", lock.id),
        }
    }

    async fn complete(&self, locks: &[Lock]) -> anyhow::Result<Completed> {
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.stream).arg(&self.group);
        for lock in locks {
            ack.arg(&lock.id);
        }
        let _acknowledged: u64 = ack
            .query_async(&mut self.calls.clone())
            .await
            .context("XACK failed")?;
        // XACK does not check the owner: each ID is done, whoever held it.
        Ok(Completed {
            completed: locks.iter().map(|lock| lock.id.clone()).collect(),
            lock_lost: Vec::new(),
        })
    }

    async fn release(&self, locks: &[Lock]) -> anyhow::Result<usize> {
        let mut released = 0;
        for owner in [&self.consumer, &self.claimer] {
            let ids: Vec<&str> = locks
                .iter()
                .filter(|lock| &lock.token == owner)
                .map(|lock| lock.id.as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let mut call = self.release.key(&self.stream);
            call.arg(&self.group).arg(owner).arg(self.lock_ms());
            for id in ids {
                call.arg(id);
            }
            let count: usize = call
                .invoke_async(&mut self.calls.clone())
                .await
                .context("the release script failed")?;
            released += count;
        }
        Ok(released)
    }

    async fn outstanding(&self) -> anyhow::Result<u64> {
        let pending: StreamPendingReply = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(&self.group)
            .query_async(&mut self.calls.clone())
            .await
            .context("XPENDING failed")?;
        let lag: redis::Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.stream)
            .query_async(&mut self.calls.clone())
            .await
            .context("XINFO GROUPS failed")?;
        Ok(pending.count() as u64 + group_lag(&lag, &self.group))
    }
}

/// The `lag` of `group` in an `XINFO GROUPS` reply: entries not yet delivered to it.
fn group_lag(reply: &redis::Value, group: &str) -> u64 {
    let redis::Value::Array(groups) = reply else {
        return 0;
    };
    for info in groups {
        let fields: Vec<(String, redis::Value)> = match info {
            redis::Value::Array(items) => items
                .chunks(2)
                .filter_map(|pair| {
                    Some((
                        redis::from_redis_value_ref::<String>(pair.first()?).ok()?,
                        pair.get(1)?.clone(),
                    ))
                })
                .collect(),
            redis::Value::Map(items) => items
                .iter()
                .filter_map(|(k, v)| {
                    Some((redis::from_redis_value_ref::<String>(k).ok()?, v.clone()))
                })
                .collect(),
            _ => continue,
        };
        let name = fields.iter().find(|(k, _)| k == "name");
        if name
            .and_then(|(_, v)| redis::from_redis_value_ref::<String>(v).ok())
            .as_deref()
            != Some(group)
        {
            continue;
        }
        return fields
            .iter()
            .find(|(k, _)| k == "lag")
            .and_then(|(_, v)| redis::from_redis_value_ref::<u64>(v).ok())
            .unwrap_or(0);
    }
    0
}
