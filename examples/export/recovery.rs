//! Segment recovery: which key range to fetch next when queries stall. First the whole
//! table in one query. After its first stall, the rest of it in [`SEGMENTS`] key ranges,
//! one after another. A range that stalls again is resumed after its last complete row;
//! [`ATTEMPTS_PER_SEGMENT`] stalls in a row fail the table.
//!
//! [`Plan`] only decides; the table's export runs the queries and tells it what happened.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// After a stall, the rest of the table is fetched in this many key ranges, one by one.
pub const SEGMENTS: u64 = 4;
/// A segment that stalls this many times in a row fails its table.
pub const ATTEMPTS_PER_SEGMENT: u32 = 2;

pub struct Plan {
    /// Ranges not started yet, in key order.
    waiting: VecDeque<(u64, u64)>,
    /// The range being fetched, if one is.
    current: Option<Attempt>,
    /// Whether the table has been cut into segments (after its first stall).
    split: bool,
}

/// The rest of a range: keys `from..=last`, after `attempts` queries for it.
struct Attempt {
    from: u64,
    last: u64,
    attempts: u32,
}

/// What a stall leads to.
pub enum AfterStall {
    /// The rest of the table, keys `keys`, is now waiting in `segments` ranges.
    Split {
        keys: RangeInclusive<u64>,
        segments: usize,
    },
    /// The same range is asked for again, from its first missing key.
    Resume,
    /// The range stalled `attempts` times in a row: the table cannot be completed.
    GiveUp {
        keys: RangeInclusive<u64>,
        attempts: u32,
    },
}

impl Plan {
    /// A table with keys `first..=last`.
    pub fn new(first: u64, last: u64) -> Plan {
        Plan {
            waiting: VecDeque::from([(first, last)]),
            current: None,
            split: false,
        }
    }

    /// The keys the next query asks for, or `None` once every range has arrived.
    pub fn next_query(&mut self) -> Option<RangeInclusive<u64>> {
        loop {
            if let Some(attempt) = &mut self.current {
                // A stall after a range's last row leaves nothing to ask for.
                if attempt.from <= attempt.last {
                    attempt.attempts += 1;
                    return Some(attempt.from..=attempt.last);
                }
            }
            let (from, last) = self.waiting.pop_front()?;
            self.current = Some(Attempt {
                from,
                last,
                attempts: 0,
            });
        }
    }

    /// The query from [`next_query`](Self::next_query) delivered all its rows.
    pub fn arrived(&mut self) {
        self.current = None;
    }

    /// The query from [`next_query`](Self::next_query) stalled; every key before
    /// `next_key` was written.
    pub fn stalled(&mut self, next_key: u64) -> AfterStall {
        let Some(attempt) = &mut self.current else {
            unreachable!("a stall reported with no query asked for");
        };
        attempt.from = next_key;
        let keys = attempt.from..=attempt.last;
        if !self.split {
            self.split = true;
            self.waiting.extend(segments(&keys, SEGMENTS));
            self.current = None;
            return AfterStall::Split {
                keys,
                segments: self.waiting.len(),
            };
        }
        if attempt.attempts >= ATTEMPTS_PER_SEGMENT {
            return AfterStall::GiveUp {
                keys,
                attempts: attempt.attempts,
            };
        }
        AfterStall::Resume
    }
}

/// `keys` cut into at most `count` consecutive ranges.
fn segments(keys: &RangeInclusive<u64>, count: u64) -> Vec<(u64, u64)> {
    let (lo, hi) = (*keys.start(), *keys.end());
    if lo > hi {
        return Vec::new();
    }
    let size = (hi - lo + 1).div_ceil(count);
    (0..count)
        .map(|i| (lo + i * size, (lo + (i + 1) * size - 1).min(hi)))
        .filter(|(a, b)| a <= b)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_table_is_asked_for_once_when_nothing_stalls() {
        let mut plan = Plan::new(1, 100);
        assert_eq!(plan.next_query(), Some(1..=100));
        plan.arrived();
        assert_eq!(plan.next_query(), None);
    }

    #[test]
    fn the_first_stall_cuts_the_rest_of_the_table_into_segments() {
        let mut plan = Plan::new(1, 100);
        plan.next_query();
        let AfterStall::Split { keys, segments } = plan.stalled(41) else {
            panic!("the first stall splits the table");
        };
        assert_eq!((keys, segments), (41..=100, 4));
        let mut asked = Vec::new();
        while let Some(keys) = plan.next_query() {
            asked.push(keys);
            plan.arrived();
        }
        assert_eq!(asked, [41..=55, 56..=70, 71..=85, 86..=100]);
    }

    /// Keys 1..=100 after the whole-table query stalled before key 41, and the first
    /// segment, 41..=55, asked for.
    fn in_the_first_segment() -> Plan {
        let mut plan = Plan::new(1, 100);
        plan.next_query();
        plan.stalled(41);
        assert_eq!(plan.next_query(), Some(41..=55));
        plan
    }

    #[test]
    fn a_segment_that_stalls_again_resumes_then_gives_up() {
        let mut plan = in_the_first_segment();
        assert!(matches!(plan.stalled(50), AfterStall::Resume));
        assert_eq!(plan.next_query(), Some(50..=55));
        let AfterStall::GiveUp { keys, attempts } = plan.stalled(52) else {
            panic!("a second stall in a row gives up");
        };
        assert_eq!((keys, attempts), (52..=55, ATTEMPTS_PER_SEGMENT));
    }

    #[test]
    fn a_stall_after_a_segments_last_row_moves_on_to_the_next_segment() {
        let mut plan = in_the_first_segment();
        assert!(matches!(plan.stalled(56), AfterStall::Resume));
        assert_eq!(plan.next_query(), Some(56..=70));
    }

    #[test]
    fn an_empty_table_asks_for_nothing() {
        let mut plan = Plan::new(1, 0);
        assert_eq!(plan.next_query(), None);
    }
}
