//! One tracked task's entry, and the shard of the registry that holds it: what the
//! registry's protocol (`registry.rs`, whose invariants these fields serve) reads and
//! writes under a shard's lock.

use std::borrow::Cow;
use std::num::NonZeroU32;

use tokio::time::Instant;

use super::outcome::Ending;
use super::report::{TaskCounts, TaskId, TaskInfo, TaskKind};
use super::runtime::Runtime;
use super::shards::IdMap;

/// One shutdown that aborts tasks, so that its report lists its own aborts
/// (invariant 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ShutdownId(pub(super) NonZeroU32);

/// On whose behalf an abort-all runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AbortBy {
    /// A shutdown, which will report its aborts.
    Shutdown(ShutdownId),
    /// The set's last handle was dropped: no report follows.
    DroppedSet,
}

impl AbortBy {
    pub(super) fn shutdown(self) -> Option<ShutdownId> {
        match self {
            AbortBy::Shutdown(id) => Some(id),
            AbortBy::DroppedSet => None,
        }
    }
}

pub(super) struct Shard<R: Runtime> {
    pub(super) tasks: IdMap<Entry<R>>,
    /// Tasks that ended before their spawner attached their abort handle (a
    /// worker can run a task to its end before `spawn` returns). The spawner
    /// records them (invariant 3). Almost always empty.
    pub(super) finished_early: Vec<(u64, Ending)>,
    /// Set by an abort-all: tasks whose handle is attached later are
    /// aborted at once (invariant 4).
    pub(super) aborting: Option<AbortBy>,
    /// Shutdowns that aborted tasks and have not built their report yet:
    /// only their aborted tasks are listed in `aborted`.
    pub(super) collecting: Vec<ShutdownId>,
    /// Aborted tasks, each with the shutdown that aborted it, so that every
    /// report lists its own aborts (not a concurrent shutdown's).
    pub(super) aborted: Vec<(ShutdownId, TaskInfo)>,
    pub(super) counts: TaskCounts,
}

impl<R: Runtime> Default for Shard<R> {
    fn default() -> Self {
        Shard {
            tasks: IdMap::default(),
            finished_early: Vec::new(),
            aborting: None,
            collecting: Vec::new(),
            aborted: Vec::new(),
            counts: TaskCounts::default(),
        }
    }
}

pub(super) struct Entry<R: Runtime> {
    pub(super) label: Cow<'static, str>,
    pub(super) started: Instant,
    /// `None` until the spawner attaches it (invariant 3).
    pub(super) abort: Option<R::Abort>,
    pub(super) kind: TaskKind,
    /// The shutdown that aborted this task (invariant 5). Fits in the
    /// padding after `kind`: an entry stays 56 bytes.
    pub(super) aborted_by: Option<ShutdownId>,
}

impl<R: Runtime> Entry<R> {
    pub(super) fn info(&self, id: u64, now: Instant, path: &std::sync::Arc<str>) -> TaskInfo {
        TaskInfo {
            id: TaskId(id),
            label: self.label.clone(),
            path: path.clone(),
            age: now.saturating_duration_since(self.started),
            kind: self.kind,
        }
    }

    /// Its spawner is done with it (invariant 3): the abort handle is
    /// attached, or it is a tracked future, which has none.
    #[inline]
    pub(super) fn is_attached(&self) -> bool {
        self.abort.is_some() || self.kind == TaskKind::Tracked
    }
}
