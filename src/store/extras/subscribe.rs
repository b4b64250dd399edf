//! Subscriptions: committed changes pushed to a channel as they become durable, filtered by
//! table, from a store ([`Store::subscribe`]) or a follower
//! ([`Follower::subscribe`](crate::Follower::subscribe)).

use std::collections::BTreeSet;
use std::sync::mpsc::{Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError, channel};
use std::time::Duration;

use super::changes::{Change, Changes, change_named};
use crate::store::engine::{CommitPos, Logged, Sink, Store};

/// Which tables' changes a subscription receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// `None`: every table.
    tables: Option<BTreeSet<String>>,
}

impl ChangeFilter {
    /// Every table's changes.
    pub fn all() -> ChangeFilter {
        ChangeFilter { tables: None }
    }

    /// Only the changes to the tables named.
    pub fn tables<S: Into<String>>(names: impl IntoIterator<Item = S>) -> ChangeFilter {
        ChangeFilter {
            tables: Some(names.into_iter().map(Into::into).collect()),
        }
    }

    /// Whether changes to `table` pass.
    pub fn admits(&self, table: &str) -> bool {
        self.tables.as_ref().is_none_or(|t| t.contains(table))
    }

    /// `change` with only the row changes that pass; `None` if none does.
    fn apply(&self, mut change: Change) -> Option<Change> {
        change.ops.retain(|op| self.admits(op.table()));
        (!change.ops.is_empty()).then_some(change)
    }
}

/// A stream of committed changes (see [`Store::subscribe`]). Each message is
/// [`Changes::Since`] with the changes made durable together, oldest first (never empty), or
/// [`Changes::Reset`] when the state jumped (a checkpoint restored, a follower reloaded):
/// take a new snapshot then. Receiving ends (`Err`) once the store or follower is gone.
/// Messages wait without bound until received: drop a subscription no longer read, which
/// unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: Receiver<Changes>,
    start: CommitPos,
}

impl Subscription {
    /// The position after which changes are delivered: every commit after it that passes the
    /// filter comes, none before. Pair it with `changes_since` to catch up from older one.
    pub fn start(&self) -> CommitPos {
        self.start
    }

    /// Waits for the next message.
    pub fn recv(&self) -> Result<Changes, RecvError> {
        self.rx.recv()
    }

    /// Waits up to `timeout` for the next message.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Changes, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }

    /// The next message, if one is waiting.
    pub fn try_recv(&self) -> Result<Changes, TryRecvError> {
        self.rx.try_recv()
    }

    /// Messages as they come, until the source is gone.
    pub fn iter(&self) -> std::sync::mpsc::Iter<'_, Changes> {
        self.rx.iter()
    }

    /// The channel underneath.
    pub fn into_receiver(self) -> Receiver<Changes> {
        self.rx
    }
}

impl IntoIterator for Subscription {
    type Item = Changes;
    type IntoIter = std::sync::mpsc::IntoIter<Changes>;
    fn into_iter(self) -> Self::IntoIter {
        self.rx.into_iter()
    }
}

/// The sending end of a subscription.
pub(crate) struct Subscriber {
    tx: Sender<Changes>,
    filter: ChangeFilter,
    /// Commits up to this `seq` are not delivered (they came before the subscription).
    after: u64,
}

impl Subscriber {
    /// A subscriber of the commits after `start`, and its subscription.
    pub(crate) fn new(filter: ChangeFilter, start: CommitPos) -> (Subscriber, Subscription) {
        let (tx, rx) = channel();
        let sub = Subscriber {
            tx,
            filter,
            after: start.seq,
        };
        (sub, Subscription { rx, start })
    }

    /// Sends the changes that pass the filter (nothing if none does); `false` once the
    /// subscription is dropped.
    pub(crate) fn send(&mut self, changes: &[Change]) -> bool {
        let passed: Vec<Change> = changes
            .iter()
            .filter(|c| c.pos.seq > self.after)
            .filter_map(|c| self.filter.apply(c.clone()))
            .collect();
        if let Some(last) = changes.last() {
            self.after = self.after.max(last.pos.seq);
        }
        passed.is_empty() || self.tx.send(Changes::Since(passed)).is_ok()
    }

    /// Tells of a jump of the state (every change after it is new, whatever its `seq`);
    /// `false` once the subscription is dropped.
    pub(crate) fn send_reset(&mut self) -> bool {
        self.after = 0;
        self.tx.send(Changes::Reset).is_ok()
    }
}

impl Sink for Subscriber {
    fn deliver(&mut self, durable: &[Logged]) -> bool {
        let changes: Vec<Change> = durable
            .iter()
            .filter(|l| l.commit.seq > self.after)
            .map(|l| change_named(l.commit, l.ops.clone(), &l.names))
            .collect();
        self.send(&changes)
    }

    fn reset(&mut self) -> bool {
        self.send_reset()
    }
}

impl Store {
    /// Subscribes to the changes committed from now on to the tables `filter` admits: each
    /// is sent once durable (a strong commit when its fsync returns, a buffered one with the
    /// next strong commit or [`sync`](Store::sync)), in commit order, after the state holding
    /// it is published, so a subscriber never sees a change that a crash could undo. No sleep
    /// loop: block on [`Subscription::recv`]. Commits made durable by the last handle's drop
    /// are not sent; [`close`](Store::close) sends them.
    ///
    /// ```
    /// use statelog::{ChangeFilter, Changes, Store, StoreOptions};
    ///
    /// # fn main() -> statelog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = Store::open(dir.path(), StoreOptions::default())?;
    /// let users = store.bytes_table("users")?;
    /// let logs = store.bytes_table("logs")?;
    /// let sub = store.subscribe(ChangeFilter::tables(["users"]));
    /// store.write(|tx| {
    ///     tx.put_bytes(&users, b"u1", b"ann")?;
    ///     tx.put_bytes(&logs, b"l1", b"login")
    /// })?;
    /// let Ok(Changes::Since(changes)) = sub.recv() else { panic!() };
    /// assert_eq!(changes[0].ops.len(), 1);
    /// assert_eq!(changes[0].ops[0].table(), "users");
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscribe(&self, filter: ChangeFilter) -> Subscription {
        let mut w = self.shared.writer.lock();
        let start = CommitPos {
            epoch: w.head.epoch,
            seq: w.head.seq,
        };
        let (sub, subscription) = Subscriber::new(filter, start);
        w.feed.add(Box::new(sub));
        subscription
    }
}
