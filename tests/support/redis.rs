//! Shared set-up for the tests against a real Redis server (`.ci/services` starts one).

use std::time::{SystemTime, UNIX_EPOCH};

/// The server from `REDIS_URL`, or `None` (after saying so) when it is not set.
/// In CI (`CI` set) a missing server is a failure, not a skip: the tests that prove the
/// consumer works against a real broker must not silently stop running.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: REDIS_URL is not set, and CI is: .ci/services should have started Redis"
            );
            eprintln!("{test}: skipped, REDIS_URL is not set (run .ci/services to start a server)");
            None
        }
    }
}

/// A stream name no other test or run uses.
pub fn unique_stream(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("hangfree-test-{test}-{}-{nanos}", std::process::id())
}

pub fn connect(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("REDIS_URL parses");
    client.get_connection().expect("Redis answers")
}

/// Appends messages `seqs` to `stream` the way the example publishes them; their IDs.
pub fn add(
    connection: &mut redis::Connection,
    stream: &str,
    seqs: std::ops::RangeInclusive<u64>,
) -> Vec<String> {
    let mut pipe = redis::pipe();
    for seq in seqs {
        pipe.cmd("XADD").arg(stream).arg("*").arg("seq").arg(seq);
    }
    pipe.query(connection).expect("XADD")
}

/// The IDs pending for `consumer` in `group`.
pub fn pending_of(
    connection: &mut redis::Connection,
    stream: &str,
    group: &str,
    consumer: &str,
) -> Vec<String> {
    let reply: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(100_000)
        .arg(consumer)
        .query(connection)
        .expect("XPENDING");
    reply.into_iter().map(|(id, ..)| id).collect()
}

pub fn delete(connection: &mut redis::Connection, stream: &str) {
    let _: redis::RedisResult<()> = redis::cmd("DEL").arg(stream).query(connection);
}
