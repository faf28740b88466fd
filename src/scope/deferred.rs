//! A child scope (a request's) whose node is made only when something needs it.
//!
//! A server makes a scope for every request, and most requests are answered without
//! ever waiting on it: nothing registers, no timer is armed, no child is made. For them
//! a full node (its signal, its place in the parent's tree, its timer and its name's
//! text) is work done and undone for nobody, under the lock of a root that every worker
//! shares. A `Deferred` holds only what the node would be made from: the parent, the
//! deadline, and what the name is formatted from.
//!
//! # Invariants
//!
//! 1. Until the node is made, nothing can interrupt the scope but its parent (through
//!    the parent's tree or the parent's deadlines): cancelling it, waiting on it,
//!    handing out its token, hooking it, making a child of it or moving its deadline all
//!    make the node first. So its reads are the parent's phase and deadlines, plus its
//!    own deadline by the clock, and they are what the node's reads would be at the same
//!    moment: a node made then would be born with its parent's phase
//!    (`Signal::named_child`), and a child node learns of its parent's interrupt only
//!    from the walk that marks the parent first (not from the parent's tokens).
//! 2. The node is made at most once (`OnceLock`), from the same parent, deadline and
//!    name, whenever it is made: the deadline was measured when the scope was, not when
//!    the node is. A node made after the parent was interrupted is born interrupted, with
//!    the parent's cause, inherited, as a child made at the scope's creation would read.
//! 3. Making the node takes the parent's tree lock; no code runs under a tree lock that
//!    could reach a `Deferred`, so a thread waiting on the `OnceLock` never holds one.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::Interrupted;
use super::interrupted::Text;
use super::node::{Node, governed_from_above};
use crate::time::sooner;

/// What a request's scope is named after, formatted only if its node is ever made: "GET
/// /export", so that its sentences say whose budget ran out ("deadline of 2s of 'GET
/// /export' exceeded").
///
/// A concrete type, not a trait object: a handle to a deferred scope is then one thin
/// pointer, and a scope handle moved in and out of the thread's current slot on every
/// poll stays two words.
#[cfg(feature = "http")]
pub(crate) struct RequestName {
    pub(crate) method: http::Method,
    /// What `Uri::path` reads (`None` where it reads `""`): one reference count to clone.
    pub(crate) path: Option<http::uri::PathAndQuery>,
}

#[cfg(feature = "http")]
impl RequestName {
    fn text(&self) -> Text {
        match self.path.as_ref().map(http::uri::PathAndQuery::path) {
            Some(path) => Arc::from(format!("{} {path}", self.method)),
            // An authority-form request (`CONNECT host:port`) has no path.
            None => Arc::from(self.method.as_str()),
        }
    }
}

/// Without the http layer nothing makes a deferred scope.
#[cfg(not(feature = "http"))]
pub(crate) enum RequestName {}

#[cfg(not(feature = "http"))]
impl RequestName {
    fn text(&self) -> Text {
        match *self {}
    }
}

/// A child of `parent` whose deadline is `deadline` (the instant, and the budget it was
/// measured as), if it has one of its own, called by `name`; its node is made on first
/// need (invariant 1).
pub(crate) struct Deferred {
    parent: Arc<Node>,
    deadline: Option<(Instant, Duration)>,
    node: OnceLock<Arc<Node>>,
    name: RequestName,
}

// Made and read only by the http layer for now.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
impl Deferred {
    pub(crate) fn new(
        parent: Arc<Node>,
        deadline: Option<(Instant, Duration)>,
        name: RequestName,
    ) -> Self {
        Deferred {
            parent,
            deadline,
            node: OnceLock::new(),
            name,
        }
    }

    /// The node, made now if it was not (invariant 2).
    pub(crate) fn node(&self) -> &Arc<Node> {
        self.node.get_or_init(|| {
            let name = self.name.text();
            match self.deadline {
                Some((at, budget)) => {
                    Node::with_deadline(&self.parent, at, budget, budget.is_zero(), Some(name))
                }
                None => Node::named_child(&self.parent, name),
            }
        })
    }

    /// The node, if it was made.
    pub(crate) fn made(&self) -> Option<&Arc<Node>> {
        self.node.get()
    }

    /// The scope it was made from.
    pub(crate) fn parent(&self) -> &Arc<Node> {
        &self.parent
    }

    /// Interrupted? Until the node is made, only through the parent (invariant 1).
    pub(crate) fn is_interrupted(&self) -> bool {
        match self.made() {
            Some(node) => node.signal.is_interrupted(),
            // The parent's phase, as a child node reads it: not the parent's tokens,
            // which for a `from_token` root would take tokio-util's lock per request.
            None => self.parent.signal.is_marked(),
        }
    }

    /// The effective deadline: the earlier of its own and the parent's.
    pub(crate) fn deadline_at(&self) -> Option<Instant> {
        if let Some(node) = self.made() {
            return node.deadline_at();
        }
        sooner(self.deadline.map(|(at, _)| at), self.parent.deadline_at())
    }

    /// As `Node::check_at`. Without a node, `Ok` needs no node: the parent runs and no
    /// deadline has passed by the clock. Anything else makes the node, whose check fires
    /// what is due in the order it passed and reads the cause.
    pub(crate) fn check_at(&self, now: Instant) -> Result<(), Interrupted> {
        if self.made().is_none() {
            let due = |at: Instant| now >= at;
            if !self.deadline.is_some_and(|(at, _)| due(at))
                && !self.parent.signal.is_marked()
                && !self.parent.deadline_at().is_some_and(due)
            {
                return Ok(());
            }
        }
        self.node().check_at(now)
    }

    /// The name, formatted now if the node was not made (and not kept: for `Debug`).
    pub(crate) fn name(&self) -> Text {
        match self.made().and_then(|node| node.signal.name()) {
            Some(name) => name.clone(),
            None => self.name.text(),
        }
    }

    /// Whether the effective deadline is another scope's.
    pub(crate) fn inherits_deadline(&self) -> bool {
        if let Some(node) = self.made() {
            return node.inherits_deadline();
        }
        governed_from_above(self.deadline.map(|(at, _)| at), self.parent.deadline_at())
    }
}
