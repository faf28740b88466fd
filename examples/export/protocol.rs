//! The line protocol of one query's stream, from either source: CSV rows in key order, each
//! ending in `\n`; from the replica, then a trailer `#END <rows>`, or `#ERR <message>`
//! instead of rows. Each row is checked before it is written (a numeric key, inside the
//! range asked for, after the row before it), so a file never holds a row twice, out of
//! order, or cut short.

use std::ops::RangeInclusive;
use std::pin::Pin;

use anyhow::{Context as _, anyhow, bail};
use hangfree::watchdog::Stalled;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufWriter};

use crate::progress::Progress;

/// The bytes of one query, already behind a watchdog.
pub type Lines = Pin<Box<dyn AsyncBufRead + Send>>;

/// The rows of one query, as a source delivers them.
pub struct Rows {
    pub lines: Lines,
    /// Whether the stream ends with a `#END <rows>` trailer (the replica) or simply ends
    /// once complete (PostgreSQL, whose client reports an unfinished COPY as an error).
    pub has_trailer: bool,
}

/// What one query delivered: complete rows, all written, and the stall that ended it
/// early, if one did.
pub struct Copied {
    pub rows: u64,
    /// The first key not written yet: where a query for the rest would start.
    pub next_key: u64,
    pub stalled: Option<Stalled>,
}

impl Rows {
    /// Writes the rows, keys `keys`, to `file` as they arrive. A stall is not an error
    /// here: it ends the copy with what was written so far, and `stalled` set.
    pub async fn copy_into(
        mut self,
        keys: RangeInclusive<u64>,
        file: &mut BufWriter<tokio::fs::File>,
        progress: &Progress,
    ) -> anyhow::Result<Copied> {
        let mut copied = Copied {
            rows: 0,
            next_key: *keys.start(),
            stalled: None,
        };
        let mut line = String::new();
        loop {
            line.clear();
            let read = match self.lines.read_line(&mut line).await {
                Ok(read) => read,
                Err(e) => {
                    // The watchdog's stall travels inside the io::Error.
                    let Some(stalled) = Stalled::find_in(&e) else {
                        return Err(anyhow!(e).context("read failed"));
                    };
                    copied.stalled = Some(Stalled::clone(stalled));
                    return Ok(copied);
                }
            };
            if read == 0 {
                if self.has_trailer {
                    bail!("the connection closed before the end of the table");
                }
                return Ok(copied);
            }
            if !line.ends_with('\n') {
                bail!("truncated row at the end of the stream: {line:?}");
            }
            if let Some(count) = line.strip_prefix("#END ") {
                let count: u64 = count
                    .trim()
                    .parse()
                    .with_context(|| format!("bad trailer {line:?}"))?;
                if count != copied.rows {
                    bail!("the source says {count} rows, {} arrived", copied.rows);
                }
                return Ok(copied);
            }
            if let Some(message) = line.strip_prefix("#ERR ") {
                bail!("the source refused the query: {}", message.trim());
            }
            let key: u64 = line
                .split(',')
                .next()
                .and_then(|k| k.parse().ok())
                .with_context(|| format!("a row without a numeric key: {line:?}"))?;
            if key < copied.next_key || key > *keys.end() {
                bail!(
                    "row key {key} outside the expected {}..={}",
                    copied.next_key,
                    keys.end()
                );
            }
            file.write_all(line.as_bytes()).await?;
            copied.rows += 1;
            copied.next_key = key + 1;
            progress.advance(1);
        }
    }
}
