//! The feed of committed transactions to subscribers: each waits here until it is durable,
//! then goes to every subscriber (`extras` turns it into changes and filters them).

use std::collections::{HashMap, VecDeque};

use super::codec::Op;
use super::read::CommitPos;
use super::state::State;
use crate::epoch::Position;

/// A committed transaction: where it is, what it did, and the names of the tables it
/// changed (not the state it made: a subscriber must not hold states alive).
pub(crate) struct Logged {
    pub(crate) commit: CommitPos,
    pub(crate) ops: Vec<Op>,
    pub(crate) names: HashMap<u32, String>,
}

impl Logged {
    /// The transaction `ops` that made `after`, at `commit`.
    pub(crate) fn new(commit: CommitPos, ops: &[Op], after: &State) -> Logged {
        Logged {
            commit,
            ops: ops.to_vec(),
            names: table_names(ops, after),
        }
    }
}

/// Where the feed delivers.
pub(crate) trait Sink: Send {
    /// Takes transactions now durable, oldest first; `false` once the subscriber is gone.
    fn deliver(&mut self, durable: &[Logged]) -> bool;
    /// The state jumped (a checkpoint restore): `false` once the subscriber is gone.
    fn reset(&mut self) -> bool;
}

/// Transactions waiting for their fsync, and the subscribers they go to.
#[derive(Default)]
pub(crate) struct Feed {
    waiting: VecDeque<(Position, Logged)>,
    sinks: Vec<Box<dyn Sink>>,
}

impl Feed {
    /// Whether anyone listens (nothing is kept otherwise).
    pub(crate) fn active(&self) -> bool {
        !self.sinks.is_empty()
    }

    pub(crate) fn add(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// A transaction that ends at `pos` in the log was committed.
    pub(crate) fn push(&mut self, pos: Position, logged: Logged) {
        self.waiting.push_back((pos, logged));
    }

    /// Delivers every transaction that ends at or before `durable`.
    pub(crate) fn deliver(&mut self, durable: Position) {
        let ready = self.waiting.partition_point(|(p, _)| *p <= durable);
        if ready == 0 {
            return;
        }
        let batch: Vec<Logged> = self.waiting.drain(..ready).map(|(_, l)| l).collect();
        self.sinks.retain_mut(|s| s.deliver(&batch));
        if self.sinks.is_empty() {
            self.waiting.clear();
        }
    }

    /// The state jumped: transactions not yet durable were synced before, so none waits;
    /// tells every subscriber.
    pub(crate) fn reset(&mut self) {
        self.waiting.clear();
        self.sinks.retain_mut(|s| s.reset());
    }
}

/// The names, in the state `after` them, of the tables whose rows `ops` put or delete.
pub(crate) fn table_names(ops: &[Op], after: &State) -> HashMap<u32, String> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Put { table, .. } | Op::Delete { table, .. } => Some(*table),
            _ => None,
        })
        .filter_map(|id| after.tables.get(&id).map(|t| (id, t.meta.name.clone())))
        .collect()
}
