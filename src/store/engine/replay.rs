//! Replay of an epoch's update tail in bulk (FORMAT.md §12.1): the transactions' table
//! changes (create, alter, sequence) are applied to the state one by one, as a commit would,
//! but row changes are only collected per table (a plain vector, cut now and then to the last
//! change of each key) and put into each table's rows once at the end: the last change of
//! each key, sorted, becomes the delta over the snapshot's base (one run, as the writer's
//! changes since its last compaction were; the next compaction folds them), instead of one
//! persistent map insert and one seal per change. Folding them into a new base at once cost
//! more than the rest of a restore with a tail as large as the snapshot. The per-op replay
//! (`State::apply`, then `State::seal`, per transaction) is the model the tests compare it
//! with.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use super::codec::{Op, TxHints, decode_tx_hinted};
use super::collected::TableChanges;
use super::in_place::{Declared, RowOp, parse_rows};
use super::state::{Folded, Kept, State, TableState, sample_positions};
use crate::store::rows::{Bytes, Row, RowRef, Rows, reclaim_any};

/// Where a transaction was read (a segment file and an offset), to name in an error.
pub(super) type Location = Option<(PathBuf, u64)>;

/// A state being restored from its snapshot and the transactions logged after it.
pub(super) struct Replay {
    /// The state (a placeholder while the snapshot's is [`waiting`](Replay::waiting)).
    state: State,
    /// Whether the snapshot's state is still to be attached (see [`Replay::attach`]).
    waiting: bool,
    /// Tables changed while waiting, not yet known to exist, with where each was first
    /// changed (the transactions applied meanwhile are counted in the placeholder's `seq`).
    unchecked: Vec<(u32, Location)>,
    /// Row changes not yet merged, of the tables `slots` maps to them (every id there is a
    /// table of `state`: tables are never dropped).
    changes: Vec<(u32, usize, TableChanges)>,
    /// Where in `changes` each table's are.
    slots: HashMap<u32, usize>,
    /// The table changed last and its slot (most tails change few tables, one at a time).
    last: Option<(u32, usize)>,
    /// The row ops of the transaction being applied (see [`Replay::apply_encoded`]).
    scratch: Vec<RowOp>,
    /// Its declarations.
    declared: Declared,
}

/// How [`Replay::finish_with`] merges a table's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Merge {
    /// Into the table's delta, one run, when its rows are all in their base (a restore's,
    /// from the snapshot); else into a new base when the changes are many next to the table
    /// (see [`fold`]).
    Auto,
    /// Always into a new base.
    #[cfg_attr(not(test), allow(dead_code))]
    Fold,
    /// Always into the table's delta (one run when its rows are all in their base).
    #[cfg_attr(not(test), allow(dead_code))]
    Delta,
}

impl Replay {
    /// A replay starting from `state` (the snapshot's, or an empty one).
    pub(super) fn new(state: State) -> Replay {
        Replay {
            state,
            waiting: false,
            unchecked: Vec::new(),
            changes: Vec::new(),
            slots: HashMap::new(),
            last: None,
            scratch: Vec::new(),
            declared: Vec::new(),
        }
    }

    /// A replay whose starting state (the snapshot's) is decoded meanwhile: transactions
    /// that only put and delete rows are collected with
    /// [`apply_waiting`](Self::apply_waiting) until the state comes with
    /// [`attach`](Self::attach), which checks their tables.
    pub(super) fn waiting() -> Replay {
        let mut replay = Replay::new(State::default());
        replay.waiting = true;
        replay
    }

    /// Whether the starting state is still to be [`attach`](Self::attach)ed.
    #[cfg(test)]
    fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// While [`waiting`](Self::waiting): applies encoded transaction `tx` if it only puts and
    /// deletes rows (`Ok(true)`; a table first changed here is checked at the attach, which
    /// names `at`); `Ok(false)`: it needs the state, attach it first, then
    /// [`apply_encoded`](Self::apply_encoded). Not waiting: as `apply_encoded`.
    pub(super) fn apply_waiting(
        &mut self,
        tx: &[u8],
        at: impl Fn() -> Location,
    ) -> Result<bool, String> {
        if !self.waiting {
            return self.apply_encoded(tx).map(|()| true);
        }
        let mut ops = std::mem::take(&mut self.scratch);
        let mut declared = std::mem::take(&mut self.declared);
        let parsed = parse_rows(tx, &mut ops, &mut declared).is_some();
        let result = if parsed {
            // Tables first changed here are checked at the attach, where this names.
            let from = self.unchecked.len();
            let applied = self.apply_rows(tx, &ops, &mut declared);
            if self.unchecked.len() > from {
                let here = at();
                for (_, location) in self.unchecked.iter_mut().skip(from) {
                    *location = here.clone();
                }
            }
            applied.map(|()| true)
        } else {
            Ok(false)
        };
        self.scratch = ops;
        self.declared = declared;
        result
    }

    /// Sets the starting state of a [`waiting`](Self::waiting) replay, under the changes
    /// collected so far (counted in its `seq`). `Err`: a table they changed does not exist
    /// (where it was first changed), as the transaction's replay on the state would have
    /// failed there.
    pub(super) fn attach(&mut self, state: State) -> Result<(), Location> {
        self.waiting = false;
        let waited = std::mem::replace(&mut self.state, state).seq;
        self.state.seq += waited;
        for (table, at) in std::mem::take(&mut self.unchecked) {
            if !self.state.tables.contains_key(&table) {
                return Err(at);
            }
        }
        for (table, rows, _) in &mut self.changes {
            if let Some(t) = self.state.tables.get(table) {
                *rows = t.rows.len();
            }
        }
        Ok(())
    }

    /// Applies one encoded transaction as [`decode_tx`] then [`apply`](Self::apply) would
    /// (an `Err` for one that does not decode or does not apply), reading the keys and
    /// values of one that only puts and deletes rows in place (no ops decoded first).
    pub(super) fn apply_encoded(&mut self, tx: &[u8]) -> Result<(), String> {
        let mut ops = std::mem::take(&mut self.scratch);
        let mut declared = std::mem::take(&mut self.declared);
        let result = match parse_rows(tx, &mut ops, &mut declared) {
            Some(()) => self.apply_rows(tx, &ops, &mut declared),
            None => decode_tx_hinted(tx).and_then(|(ops, hints)| self.apply_hinted(ops, hints)),
        };
        self.scratch = ops;
        self.declared = declared;
        result
    }

    /// [`apply`](Self::apply) of the puts and deletes `ops` read from `tx`, under the
    /// declarations `declared` (taken as their tables are changed).
    fn apply_rows(
        &mut self,
        tx: &[u8],
        ops: &[RowOp],
        declared: &mut Declared,
    ) -> Result<(), String> {
        let bytes = |r: &Range<usize>| Bytes::new(tx.get(r.clone()).unwrap_or_default());
        for (table, key, value, version, same_keys) in ops {
            let (rows, changes) = self.rows_of(*table)?;
            declare_in(changes, *table, declared);
            let row = value.as_ref().map(|v| Row {
                value: bytes(v),
                version: *version,
            });
            changes.push(bytes(key), row, *same_keys, rows);
        }
        self.state.seq += 1;
        Ok(())
    }

    /// Applies one transaction: its ops in order, each checked as [`State::apply`] checks it
    /// (a table created twice or renamed, a change of a missing table: the same errors), then
    /// counts it in `seq`. After an error the replay is abandoned (the restore fails), so no
    /// transaction is ever applied in part.
    #[cfg(test)]
    pub(super) fn apply(&mut self, ops: Vec<Op>) -> Result<(), String> {
        self.apply_hinted(ops, TxHints::default())
    }

    /// [`apply`](Self::apply) of a transaction with its hints (checked).
    pub(super) fn apply_hinted(&mut self, ops: Vec<Op>, hints: TxHints) -> Result<(), String> {
        let TxHints { mut declared, kept } = hints;
        let mut kept = kept.into_iter().peekable();
        for (i, op) in ops.into_iter().enumerate() {
            let same_keys = kept.next_if_eq(&i).is_some();
            match op {
                Op::Put {
                    table,
                    key,
                    value,
                    version,
                } => {
                    let (rows, changes) = self.rows_of(table)?;
                    declare_in(changes, table, &mut declared);
                    changes.push(key, Some(Row { value, version }), same_keys, rows);
                }
                Op::Delete { table, key } => {
                    let (rows, changes) = self.rows_of(table)?;
                    changes.push(key, None, false, rows);
                }
                other => self.state.apply(&other)?,
            }
        }
        self.state.seq += 1;
        Ok(())
    }

    /// The changes collected for table `table`, which must exist now (or be checked at the
    /// attach, while waiting), and how many rows it had when it was first changed.
    fn rows_of(&mut self, table: u32) -> Result<(usize, &mut TableChanges), String> {
        let slot = match self.last {
            Some((id, slot)) if id == table => slot,
            _ => {
                let slot = match self.slots.get(&table) {
                    Some(slot) => *slot,
                    None => {
                        let rows = match self.state.tables.get(&table) {
                            Some(t) => t.rows.len(),
                            // While waiting: checked at the attach, no cut until its size
                            // is known.
                            None if self.waiting => {
                                self.unchecked.push((table, None));
                                usize::MAX
                            }
                            None => return Err(format!("no table with id {table}")),
                        };
                        self.changes.push((table, rows, TableChanges::default()));
                        self.slots.insert(table, self.changes.len() - 1);
                        self.changes.len() - 1
                    }
                };
                self.last = Some((table, slot));
                slot
            }
        };
        self.changes
            .get_mut(slot)
            .map(|(_, rows, c)| (*rows, c))
            .ok_or_else(|| format!("no table with id {table}"))
    }

    /// The restored state: every table's changes merged into its rows.
    pub(super) fn finish(self) -> State {
        self.finish_with(Merge::Auto)
    }

    /// [`finish`](Self::finish), merging as `how` says.
    pub(super) fn finish_with(self, how: Merge) -> State {
        let Replay {
            mut state, changes, ..
        } = self;
        for (id, _, mut changes) in changes {
            let Ok(t) = state.table_mut(id) else {
                continue; // not reached: changes are only kept for tables that exist
            };
            let (last, same_keys) = changes.take_last();
            // Kept keys are of use to the claim only under every stored index.
            let trusted = changes.kept_all_of(t.stored.iter().map(|s| &*s.name));
            let on_base = t.rows.delta_len() == 0;
            let into_base = match how {
                Merge::Auto => !on_base && fold(t, last.len()),
                Merge::Fold => true,
                Merge::Delta => false,
            };
            if into_base {
                // Stored indexes hold the entries of the old base's rows: what the fold
                // changes from them is kept for their claim (or they are dropped).
                match folded(t, last.len()) {
                    Some(mut f) => {
                        let same_keys: Vec<bool> =
                            same_keys.iter().map(|&same| same && trusted).collect();
                        let rows = fold_keeping(&t.rows, &last, &same_keys, &mut f);
                        reclaim_any(Box::new(std::mem::replace(&mut t.rows, rows)));
                        if f.fits() {
                            f.base = t.rows.base_id();
                            t.folded = Some(Arc::new(f));
                        } else {
                            t.drop_stored();
                        }
                    }
                    None => {
                        let rows = t.rows.merged(last.iter(), last.len());
                        reclaim_any(Box::new(std::mem::replace(&mut t.rows, rows)));
                        t.drop_stored();
                    }
                }
                reclaim_any(Box::new(last));
            } else {
                // Over the base the stored indexes describe: the changes that kept their
                // base rows' keys are kept for their claim.
                let keep = trusted && !t.stored.is_empty() && t.folded.is_none();
                let run = t.rows.put_changes(last, &same_keys);
                if let Some(run) = run.filter(|_| keep && on_base) {
                    let base = t.rows.base_id();
                    t.kept = Some(Arc::new(Kept { base, run }));
                }
            }
            // Freeing the collected changes (a value each) is not the restore's time.
            reclaim_any(Box::new((changes, same_keys)));
        }
        // Bases a fold did not replace get the directory the snapshot's decode left out.
        for t in state.tables.values() {
            t.rows.start_directory();
        }
        state.seal();
        state
    }
}

/// Takes the declaration of `table` out of `declared` into its `changes`, if there is one.
fn declare_in(changes: &mut TableChanges, table: u32, declared: &mut Declared) {
    if let Some(at) = declared.iter().position(|(t, _)| *t == table) {
        changes.declare(declared.swap_remove(at).1);
    }
}

/// Changed keys a table may have next to its base's rows for its stored indexes to be kept
/// through a fold (see [`folded`]): three quarters of them. A claim decodes each changed row
/// twice (before and now) where a build decodes every row once, then sorts and lays out
/// the index; on 1,000,000 rows with a unique name it was the faster one at every share
/// measured (45 % of the rows changed: 0.35 s against 1.1 s; 98 %: 1.2 s against 1.6 s), but
/// the values it keeps until the claim come near the old base's as the share grows.
fn folded_max(base_len: usize) -> usize {
    base_len / 4 * 3
}

/// What a claim of table `t`'s stored indexes will need once `count` changed keys are folded
/// into a new base (see [`fold_keeping`]): so far `t`'s base's sample rows. `None`: there are
/// no stored indexes (or they already were through a fold), or the changed keys are too
/// many.
fn folded(t: &TableState, count: usize) -> Option<Folded> {
    let before_len = t.rows.base_len();
    let keys = count.saturating_add(t.rows.delta_len());
    if t.stored.is_empty() || t.folded.is_some() || keys > folded_max(before_len) {
        return None;
    }
    let sample = sample_positions(before_len)
        .filter_map(|i| t.rows.base_row(i))
        .map(|r| (Bytes::new(r.key), Bytes::new(r.value)))
        .collect();
    Some(Folded::new(before_len, sample, keys))
}

/// `rows` with `last` (the last change of each key the replay changed, in key order) merged
/// into a new base, adding to `f` every key whose row differs between the rows' base and the
/// new one (changes on top of the base before the replay included), with its value in the
/// rows' base; or, for a change that `same_keys` (beside `last`) says kept the unique-index
/// keys of the base's row, only that it did.
fn fold_keeping<'a>(
    rows: &'a Rows,
    last: &'a [(Bytes, Option<Row>)],
    same_keys: &[bool],
    f: &mut Folded,
) -> Rows {
    let value = |r: RowRef<'a>| r.value;
    let mut same_keys = same_keys.iter();
    // The changes on top of the base before the replay, merged by key with the replay's.
    let mut earlier = rows.changes().peekable();
    let merged = rows.merged_seeing(last.iter(), last.len(), |c| {
        let same = same_keys.next().copied().unwrap_or(false);
        while let Some(e) = earlier.next_if(|e| e.key < c.key) {
            f.push_change(e.key, e.before.map(value), e.now.map(value), false);
        }
        // The row a change replaces is its base row, unless changed since the base (then
        // its keys were kept from the changed row, not the base's).
        let (before, same) = match earlier.next_if(|e| e.key == c.key) {
            Some(e) => (e.before, false),
            None => (c.before, same),
        };
        f.push_change(c.key, before.map(value), c.now.map(value), same);
    });
    for e in earlier {
        f.push_change(e.key, e.before.map(value), e.now.map(value), false);
    }
    merged
}

/// Whether `changes` changed keys of table `t` are merged into a new base rather than put in
/// its delta one by one: when they are a sixteenth of its rows or more; but for a table with
/// stored unique indexes (which describe the base, and spare a rebuild when the table is
/// opened) only when they are as many as [`TableState::delta_is_large`] folds. Either way
/// the stored indexes stay claimable: a fold keeps what it changes (see [`folded`]).
fn fold(t: &TableState, changes: usize) -> bool {
    if t.stored.is_empty() {
        changes.saturating_mul(16) >= t.rows.len()
    } else {
        changes + t.rows.delta_len() > t.rows.base_len() / 8 + 4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::store::engine::codec::{TableKind, TableMeta, encode_tx, encode_tx_hinted};
    use crate::store::engine::state::Before;
    use crate::store::engine::state::IndexState;
    use crate::store::rows::Rows;
    use proptest::prelude::*;

    /// The replay as it was (the model): each op applied to the state, then the transaction
    /// sealed and counted. `Err` is the index of the transaction that does not fit.
    fn per_op(mut state: State, txs: &[Vec<Op>]) -> Result<State, usize> {
        for (i, ops) in txs.iter().enumerate() {
            for op in ops {
                state.apply(op).map_err(|_| i)?;
            }
            state.seal();
            state.seq += 1;
        }
        Ok(state)
    }

    /// The replay in bulk, merging as `how` says.
    fn bulk(state: State, txs: &[Vec<Op>], how: Merge) -> Result<State, usize> {
        let mut replay = Replay::new(state);
        for (i, ops) in txs.iter().enumerate() {
            replay.apply(ops.clone()).map_err(|_| i)?;
        }
        Ok(replay.finish_with(how))
    }

    /// [`bulk`], each transaction encoded and applied as a restore does
    /// ([`Replay::apply_encoded`]).
    fn bulk_encoded(state: State, txs: &[Vec<Op>], how: Merge) -> Result<State, usize> {
        let mut replay = Replay::new(state);
        for (i, ops) in txs.iter().enumerate() {
            let tx = encode_tx(ops).map_err(|_| i)?;
            replay.apply_encoded(&tx).map_err(|_| i)?;
        }
        Ok(replay.finish_with(how))
    }

    /// [`bulk_encoded`] of a replay started [`waiting`](Replay::waiting): its state attached
    /// before transaction `attach_at`, or before the first that needs it, or at the end (as
    /// a restore attaches the snapshot's state once it is decoded). A table missing at the
    /// attach fails at the transaction that first changed it.
    fn bulk_waiting(
        state: State,
        txs: &[Vec<Op>],
        how: Merge,
        attach_at: usize,
    ) -> Result<State, usize> {
        let mut replay = Replay::waiting();
        let mut state = Some(state);
        let attach = |replay: &mut Replay, state: &mut Option<State>| match state.take() {
            Some(s) => replay
                .attach(s)
                .map_err(|at| at.map_or(usize::MAX, |(_, i)| i as usize)),
            None => Ok(()),
        };
        for (i, ops) in txs.iter().enumerate() {
            if i == attach_at {
                attach(&mut replay, &mut state)?;
            }
            let tx = encode_tx(ops).map_err(|_| i)?;
            let at = || Some((PathBuf::from("tail"), i as u64));
            let applied = replay.apply_waiting(&tx, at);
            assert_never_fails_waiting(&applied, replay.is_waiting());
            if !applied.map_err(|_| i)? {
                attach(&mut replay, &mut state)?;
                replay.apply_encoded(&tx).map_err(|_| i)?;
            }
        }
        attach(&mut replay, &mut state)?;
        Ok(replay.finish_with(how))
    }

    /// A transaction applied while waiting never fails: what it cannot check waits for the
    /// attach.
    fn assert_never_fails_waiting(applied: &Result<bool, String>, waiting: bool) {
        assert!(
            applied.is_ok() || !waiting,
            "failed while waiting: {applied:?}"
        );
    }

    /// A table's rows as (key, value, version), in order.
    type RowList = Vec<(Vec<u8>, Vec<u8>, u64)>;

    /// What must be equal: the state's counters and names, and per table its metadata, next
    /// id, length and rows.
    #[derive(Debug, PartialEq)]
    struct Summary {
        seq: u64,
        next_table_id: u32,
        by_name: Vec<(String, u32)>,
        tables: Vec<(u32, TableMeta, u64, usize, RowList)>,
    }

    fn summary(s: &State) -> Summary {
        Summary {
            seq: s.seq,
            next_table_id: s.next_table_id,
            by_name: s.by_name.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            tables: s
                .tables
                .iter()
                .map(|(id, t)| {
                    let rows = t
                        .rows
                        .iter()
                        .map(|r| (r.key.to_vec(), r.value.to_vec(), r.version))
                        .collect();
                    (*id, t.meta.clone(), t.next_id, t.rows.len(), rows)
                })
                .collect(),
        }
    }

    /// Index entries in order.
    fn entries(map: &Rows) -> Vec<(Vec<u8>, Vec<u8>)> {
        map.iter()
            .map(|r| (r.key.to_vec(), r.value.to_vec()))
            .collect()
    }

    /// Checks `got` (a bulk replay) against `want` (the per-op model): equal summaries, gets
    /// of every key, and stored indexes either dropped with a new base or kept with the very
    /// base they describe.
    fn same(got: &State, want: &State, probes: &[Vec<u8>]) -> Result<(), TestCaseError> {
        prop_assert_eq!(summary(got), summary(want));
        for (id, t) in got.tables.iter() {
            let w = want
                .tables
                .get(id)
                .ok_or_else(|| TestCaseError::fail("table"))?;
            for k in probes {
                prop_assert_eq!(t.rows.get(k), w.rows.get(k));
            }
            prop_assert!(!t.rows.has_pending());
            // The directory the snapshot's decode left out is built for a base kept.
            prop_assert!(!t.rows.directory_waits());
            prop_assert!(t.indexes.is_empty());
            if t.stored.is_empty() {
                prop_assert!(t.folded.is_none());
                continue;
            }
            prop_assert_eq!(t.stored.len(), w.stored.len());
            for (a, b) in t.stored.iter().zip(&w.stored) {
                prop_assert_eq!(&a.name, &b.name);
                prop_assert_eq!(entries(&a.map), entries(&b.map));
            }
            match &t.folded {
                Some(f) => folded_leads_to(f, &t.rows, &w.rows)?,
                None => prop_assert_eq!(base_of(&t.rows), base_of(&w.rows)),
            }
        }
        Ok(())
    }

    /// A base's rows: key → (value, version).
    fn base_of(rows: &Rows) -> BTreeMap<Vec<u8>, (Vec<u8>, u64)> {
        (0..rows.base_len())
            .filter_map(|i| rows.base_row(i))
            .map(|r| (r.key.to_vec(), (r.value.to_vec(), r.version)))
            .collect()
    }

    /// Checks that `f` leads from the base of `before` (the base the stored indexes describe)
    /// to the base of `after`: its sample is the first's, its keys are increasing, and a key
    /// is there, with its value in the first base, exactly when its value differs in the two.
    fn folded_leads_to(f: &Folded, after: &Rows, before: &Rows) -> Result<(), TestCaseError> {
        prop_assert!(after.is_on(&f.base));
        prop_assert_eq!(f.before_len, before.base_len());
        let sample: Vec<(Vec<u8>, Vec<u8>)> = sample_positions(before.base_len())
            .filter_map(|i| before.base_row(i))
            .map(|r| (r.key.to_vec(), r.value.to_vec()))
            .collect();
        let kept: Vec<(Vec<u8>, Vec<u8>)> = f
            .sample
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        prop_assert_eq!(kept, sample);
        let keys: Vec<&[u8]> = f.changes().map(|(k, _)| k).collect();
        prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        prop_assert_eq!(keys.len(), f.len());
        let (old, new) = (base_of(before), base_of(after));
        let value = |m: &BTreeMap<Vec<u8>, (Vec<u8>, u64)>, k: &[u8]| m.get(k).map(|r| r.0.clone());
        let changed: BTreeMap<Vec<u8>, Option<Vec<u8>>> = old
            .keys()
            .chain(new.keys())
            .filter(|k| value(&old, k) != value(&new, k))
            .map(|k| (k.clone(), value(&old, k)))
            .collect();
        let got: BTreeMap<Vec<u8>, Option<Vec<u8>>> = f
            .changes()
            .map(|(k, before)| match before {
                Before::Absent => Ok((k.to_vec(), None)),
                Before::Value(v) => Ok((k.to_vec(), Some(v.to_vec()))),
                Before::SameKeys => Err(TestCaseError::fail("no transaction said it kept keys")),
            })
            .collect::<Result<_, _>>()?;
        prop_assert_eq!(got, changed);
        Ok(())
    }

    /// Keys: short ones (kept inline) and long ones (shared), sharing prefixes.
    fn key(n: u8) -> Bytes {
        let mut k = vec![n % 5, n / 5];
        if n % 4 == 3 {
            k.extend_from_slice(&[7; 30]);
        }
        if n % 7 == 0 {
            k.truncate(1);
        }
        Bytes::new(&k)
    }

    fn meta(id: u32, name: &str, version: u32) -> TableMeta {
        TableMeta {
            id,
            name: name.into(),
            kind: TableKind::Bytes,
            key_type: "bytes".into(),
            value_type: "bytes".into(),
            version,
        }
    }

    /// A snapshot's table: id, rows (key number → value byte, version), next id, and
    /// whether it stores a unique index.
    type SnapTable = (u32, Vec<(u8, u8, u64)>, u64, bool);

    /// Decodes the snapshot of a state holding `tables` (as a restore does), `seq` first.
    fn snapshot(tables: &[SnapTable], seq: u64) -> State {
        let mut s = State::default();
        for (id, rows, next, index) in tables {
            let _ = s.apply(&Op::CreateTable(meta(*id, &format!("t{id}"), 1)));
            for (k, v, version) in rows {
                let _ = s.apply(&Op::Put {
                    table: *id,
                    key: key(*k),
                    value: Bytes::new(&[*v]),
                    version: *version,
                });
            }
            let _ = s.apply(&Op::Sequence {
                table: *id,
                next: *next,
            });
            if *index
                && let Ok(t) = s.table_mut(*id)
                && t.indexes.is_empty()
            {
                // Entries of the rows: value → key (enough for a stored index's layout).
                let mut map = Rows::default();
                for r in t.rows.iter() {
                    map.insert_primary_key(Bytes::new(&[r.value[0], r.key[0]]), Bytes::new(r.key));
                }
                t.indexes.push(IndexState {
                    name: "ix".into(),
                    map,
                });
            }
            s.seal();
        }
        s.seq = seq;
        let image = s.encode_snapshot().expect("encode");
        State::decode_snapshot_for_replay(image).expect("decode")
    }

    fn op() -> impl Strategy<Value = Op> {
        let table = prop_oneof![8 => 0u32..3, 1 => 3u32..6];
        prop_oneof![
            8 => (table.clone(), 0u8..40, any::<u8>(), 1u64..50).prop_map(|(table, k, v, version)| Op::Put {
                table,
                key: key(k),
                value: if v % 5 == 0 { Bytes::new(&[v; 40]) } else { Bytes::new(&[v]) },
                version,
            }),
            4 => (table.clone(), 0u8..40).prop_map(|(table, k)| Op::Delete { table, key: key(k) }),
            1 => (table.clone(), 0u64..30).prop_map(|(table, next)| Op::Sequence { table, next }),
            1 => (0u32..6, 0u8..8).prop_map(|(id, n)| {
                let name = if n < 6 { format!("t{id}") } else { format!("x{n}") };
                Op::CreateTable(meta(id, &name, 1))
            }),
            1 => (table, 0u8..8).prop_map(|(id, n)| {
                let name = if n < 7 { format!("t{id}") } else { "renamed".into() };
                Op::AlterTable(meta(id, &name, u32::from(n)))
            }),
        ]
    }

    fn snap_table() -> impl Strategy<Value = SnapTable> {
        (
            0u32..3,
            proptest::collection::vec((0u8..40, any::<u8>(), 1u64..9), 0..40),
            0u64..20,
            any::<bool>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any snapshot and any tail of transactions (puts, deletes, sequences, creates and
        /// alters, keys repeated, several tables, valid or not): the bulk replay, whichever
        /// way it merges, gives the state the per-op replay gives, or fails at the same
        /// transaction.
        #[test]
        fn bulk_replay_is_per_op_replay(
            tables in proptest::collection::vec(snap_table(), 0..4),
            seq in 0u64..5,
            txs in proptest::collection::vec(proptest::collection::vec(op(), 0..6), 0..16),
            before in proptest::collection::vec(proptest::collection::vec(op(), 0..6), 0..3),
            attach_at in 0usize..18,
        ) {
            // Rows changed after the snapshot too, in some cases: a delta, appended rows.
            let start = per_op(snapshot(&tables, seq), &before)
                .unwrap_or_else(|_| snapshot(&tables, seq));
            let want = per_op(start.clone(), &txs);
            let probes: Vec<Vec<u8>> = (0..45).map(|n| key(n).to_vec()).collect();
            // A tail that fails is compared up to the failing transaction too.
            let valid = want.as_ref().err().map_or(txs.len(), |i| *i);
            let want_valid = per_op(start.clone(), &txs[..valid]);
            for (how, encoded) in [Merge::Auto, Merge::Fold, Merge::Delta]
                .into_iter()
                .flat_map(|how| [(how, false), (how, true)])
            {
                let bulk = if encoded { bulk_encoded } else { bulk };
                let got = bulk(start.clone(), &txs, how);
                match (&got, &want) {
                    (Ok(got), Ok(want)) => same(got, want, &probes)?,
                    (got, want) => prop_assert_eq!(got.as_ref().err(), want.as_ref().err()),
                }
                match (bulk(start.clone(), &txs[..valid], how), &want_valid) {
                    (Ok(got), Ok(want)) => same(&got, want, &probes)?,
                    _ => prop_assert!(false, "a prefix of valid transactions failed"),
                }
            }
            for how in [Merge::Auto, Merge::Fold, Merge::Delta] {
                match (&bulk_waiting(start.clone(), &txs, how, attach_at), &want) {
                    (Ok(got), Ok(want)) => same(got, want, &probes)?,
                    (got, want) => prop_assert_eq!(got.as_ref().err(), want.as_ref().err()),
                }
            }
        }
    }

    /// An encoded transaction with a byte changed, bytes cut off or added, or a length or an
    /// integer written in a longer form than needed.
    fn damaged(tx: Vec<u8>, how: u8, at: usize, byte: u8) -> Vec<u8> {
        let mut tx = tx;
        let at = at % tx.len().max(1);
        match how % 5 {
            0 => {
                if let Some(b) = tx.get_mut(at) {
                    *b = byte;
                }
            }
            1 => tx.truncate(at),
            2 => tx.push(byte),
            // A one-byte integer (a count, variant, table, length or version) in 3 or 9 bytes.
            3 | 4 => {
                if let Some(&b) = tx.get(at).filter(|b| **b <= 250) {
                    let long: Vec<u8> = if how % 5 == 3 {
                        [251, b, 0].to_vec()
                    } else {
                        [253, b, 0, 0, 0, 0, 0, 0, 0].to_vec()
                    };
                    tx.splice(at..=at, long);
                }
            }
            _ => {}
        }
        tx
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whatever the bytes, what the in-place read of a transaction's puts and deletes
        /// reads (with its hints) is what [`decode_tx_hinted`] decodes them to; and it reads
        /// every transaction of puts and deletes written by [`encode_tx_hinted`], hinted
        /// (some puts kept their keys, their tables declared) or not.
        #[test]
        fn rows_read_in_place_are_decoded_rows(
            ops in proptest::collection::vec(op(), 0..12),
            kept_bits in any::<u16>(),
            names in proptest::collection::vec("[a-z]{0,3}", 0..3),
            how in any::<u8>(),
            at in any::<usize>(),
            byte in any::<u8>(),
        ) {
            let kept: Vec<usize> = (0..ops.len())
                .filter(|i| kept_bits & (1 << i) != 0 && matches!(ops[*i], Op::Put { .. }))
                .collect();
            let mut declared: Vec<(u32, Vec<String>)> = Vec::new();
            for &i in &kept {
                if let Op::Put { table, .. } = &ops[i] {
                    if !declared.iter().any(|(t, _)| t == table) && kept_bits & 0x8000 == 0 {
                        declared.push((*table, names.clone()));
                    }
                }
            }
            let hints = TxHints { declared, kept };
            let tx = encode_tx_hinted(&ops, &hints).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(decode_tx_hinted(&tx), Ok((ops.clone(), hints.clone())));
            let rows_only = ops.iter().all(|op| matches!(op, Op::Put { .. } | Op::Delete { .. }));
            let (mut out, mut read_declared) = (Vec::new(), Vec::new());
            prop_assert_eq!(parse_rows(&tx, &mut out, &mut read_declared).is_some(), rows_only);
            for tx in [tx.clone(), damaged(tx, how, at, byte)] {
                if parse_rows(&tx, &mut out, &mut read_declared).is_none() {
                    continue;
                }
                let read: Vec<Op> = out
                    .iter()
                    .map(|(table, key, value, version, _)| {
                        let bytes = |r: &Range<usize>| Bytes::new(&tx[r.clone()]);
                        match value {
                            Some(v) => Op::Put { table: *table, key: bytes(key), value: bytes(v), version: *version },
                            None => Op::Delete { table: *table, key: bytes(key) },
                        }
                    })
                    .collect();
                let read_kept: Vec<usize> = (0..out.len()).filter(|i| out[*i].4).collect();
                let read_hints = TxHints { declared: read_declared.clone(), kept: read_kept };
                prop_assert_eq!(decode_tx_hinted(&tx), Ok((read, read_hints)));
            }
        }
    }

    /// A compaction gives every base a buffer of its own: the tables of a decoded snapshot
    /// share its image, and a table laid out anew must not keep the others' rows (nor its own
    /// old rows, through an index or another table still on the image) in memory.
    #[test]
    fn compaction_lays_out_bases_that_share_an_image() {
        let mut s = State::default();
        for id in 0..2u32 {
            let _ = s.apply(&Op::CreateTable(meta(id, &format!("t{id}"), 1)));
            for n in 0..3000u32 {
                let _ = s.apply(&Op::Put {
                    table: id,
                    key: Bytes::new(&n.to_le_bytes()),
                    value: Bytes::new(&[id as u8; 1024]),
                    version: 1,
                });
            }
            s.seal();
        }
        let image = s.encode_snapshot().expect("encode");
        let mut restored = State::decode_snapshot_owned(image).expect("decode");
        let shares = |s: &State, id: u32| s.tables.get(&id).map(|t| t.rows.holds_foreign_bytes());
        assert_eq!(
            (shares(&restored, 0), shares(&restored, 1)),
            (Some(true), Some(true))
        );
        // One table changes; the other has no change at all.
        let _ = restored.apply(&Op::Put {
            table: 0,
            key: Bytes::new(&7u32.to_le_bytes()),
            value: Bytes::new(b"new"),
            version: 2,
        });
        restored.seal();
        let before = summary(&restored);
        let compacted = restored.compacted();
        assert_eq!(
            (shares(&compacted, 0), shares(&compacted, 1)),
            (Some(false), Some(false))
        );
        assert_eq!(summary(&compacted), before);
        // Laid out once: a second compaction keeps the bases it finds.
        let again = compacted.compacted();
        for id in 0..2 {
            let (a, b) = (compacted.tables.get(&id), again.tables.get(&id));
            let same = a.zip(b).map(|(a, b)| a.rows.is_on(&b.rows.base_id()));
            assert_eq!(same, Some(true));
        }
    }

    /// The cases the contract names: a put then a delete of one key ends deleted, a delete of
    /// a key only in the snapshot removes it, a table created in the tail starts empty, and a
    /// change of a table the tail creates only later fails.
    #[test]
    fn named_cases() {
        let start = snapshot(&[(0, vec![(1, 1, 1), (2, 2, 1)], 1, true)], 3);
        let put = |table, k: u8, v: u8| Op::Put {
            table,
            key: key(k),
            value: Bytes::new(&[v]),
            version: 2,
        };
        let del = |table, k: u8| Op::Delete { table, key: key(k) };
        let txs = vec![
            vec![put(0, 5, 9)],
            vec![del(0, 5), del(0, 1)],
            vec![Op::CreateTable(meta(1, "t1", 1)), put(1, 3, 4)],
            vec![put(0, 2, 8), del(1, 3), put(1, 6, 6)],
        ];
        for how in [Merge::Auto, Merge::Fold, Merge::Delta] {
            let got = bulk(start.clone(), &txs, how).expect("valid");
            let s = summary(&got);
            assert_eq!(s.seq, 7);
            assert_eq!(s.next_table_id, 2);
            let rows: Vec<RowList> = s.tables.into_iter().map(|t| t.4).collect();
            assert_eq!(
                rows,
                vec![
                    vec![(key(2).to_vec(), vec![8], 2)],
                    vec![(key(6).to_vec(), vec![6], 2)]
                ]
            );
            let late = vec![
                vec![put(0, 1, 1)],
                vec![put(2, 1, 1)],
                vec![Op::CreateTable(meta(2, "t2", 1))],
            ];
            assert_eq!(bulk(start.clone(), &late, how).err(), Some(1));
            let twice = vec![vec![Op::CreateTable(meta(5, "t0", 1))]];
            assert_eq!(bulk(start.clone(), &twice, how).err(), Some(0));
            let renamed = vec![vec![], vec![Op::AlterTable(meta(0, "t9", 2))]];
            assert_eq!(bulk(start.clone(), &renamed, how).err(), Some(1));
        }
    }
}
