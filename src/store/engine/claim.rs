//! The claim of stored unique indexes: when a program registers a table's unique indexes, the
//! ones the table's snapshot stored (hostile input until checked) are checked against the
//! rows they describe and brought up to date with the rows changed since (those on top of the
//! base, and those a replay folded into a new base, see [`Folded`]), at a cost of the changed
//! rows, instead of being built from every row.

use super::state::{Before, Folded, IndexState, Kept, TableState, sample_positions};
use crate::error::Result;
use crate::store::rows::{Bytes, Row, RowRef, Rows};

/// A row's unique-index keys, each with its index's slot.
pub(super) type IndexKeys = Vec<(usize, Bytes)>;

/// Whether `keys` hold index key `uk` of the index at `slot`.
pub(super) fn holds(keys: &[(usize, Bytes)], slot: usize, uk: &Bytes) -> bool {
    keys.iter().any(|(s, k)| *s == slot && k == uk)
}

/// Derives a row's unique-index keys from its encoded value.
pub(super) type Indexer<'a> = &'a (dyn Fn(&[u8]) -> Result<IndexKeys> + Send + Sync);

/// Below this many rows, index keys are derived on one thread.
const PARALLEL_INDEX_ROWS: usize = 50_000;

/// Threads to derive the index keys of `rows` rows on: every core (up to 8) for many.
pub(super) fn index_threads(rows: usize) -> usize {
    if rows < PARALLEL_INDEX_ROWS {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    }
}

/// The stored indexes named `names` (from the table's snapshot), if all are there and pass
/// the checks: one entry per row of the base they describe (the rows' base, or with
/// [`Folded`] the base before the replay's fold), and the entries of a sample of its rows
/// (see [`sample_positions`]) are the keys the program's index functions derive from them.
/// They are brought up to date with the rows changed since: a change whose index keys stay
/// the same needs nothing (its entries are trusted as an unchanged row's are); otherwise
/// the keys it keeps are checked to name its row, old entries are removed first, then new
/// ones added. `None` means: build them from the rows (which reports conflicts and
/// rows that do not decode). Either way the stored indexes are dropped.
pub(super) fn claim_stored(
    t: &mut TableState,
    names: &[String],
    indexer: Indexer<'_>,
) -> Option<Vec<IndexState>> {
    if names.is_empty() {
        return None;
    }
    let mut maps = Vec::with_capacity(names.len());
    for name in names {
        maps.push(t.stored.iter().find(|s| &s.name == name)?.clone());
    }
    // Claimed or not, they are not used again: a registration owns the indexes from now on.
    t.stored.clear();
    let folded = t.folded.take();
    let kept = t.kept.take().filter(|k| t.rows.is_on(&k.base));
    let rows = &t.rows;
    if folded.as_ref().is_some_and(|f| !rows.is_on(&f.base)) {
        // Laid out anew since the fold (not reached: that drops the stored indexes).
        return None;
    }
    // The rows the stored indexes describe: how many, and the sample to check.
    let len = folded.as_ref().map_or(rows.base_len(), |f| f.before_len);
    let sample: Vec<(&[u8], &[u8])> = match folded.as_deref() {
        Some(f) => f.sample.iter().map(|(k, v)| (&**k, &**v)).collect(),
        None => sample_positions(len)
            .filter_map(|i| rows.base_row(i))
            .map(|r| (r.key, r.value))
            .collect(),
    };
    if maps
        .iter()
        .any(|m| m.map.len() != len || m.map.delta_len() != 0)
    {
        return None;
    }
    for (key, value) in sample {
        // A row the program cannot decode (stored before a migration rewrote the table)
        // means the stored index cannot be checked: build from the rows instead, which
        // reports real errors.
        for (slot, uk) in indexer(value).ok()? {
            if maps.get(slot).and_then(|m| m.map.primary_key(&uk)) != Some(key) {
                return None;
            }
        }
    }
    let changes = changed(rows, folded.as_deref(), kept.as_deref());
    let edits = edits(&changes, &maps, indexer)?;
    for e in &edits {
        for (slot, uk) in &e.gone {
            if let Some(m) = maps.get_mut(*slot) {
                if m.map.primary_key(uk) == Some(e.key) {
                    m.map.remove(uk);
                }
            }
        }
    }
    for e in edits {
        for (slot, uk) in e.new {
            if let Some(m) = maps.get_mut(slot) {
                if m.map.primary_key(&uk).is_some_and(|pk| pk != e.key) {
                    return None; // let a full build report the conflict
                }
                m.map.insert_primary_key(uk, Bytes::new(e.key));
            }
        }
    }
    Some(maps)
}

/// A key whose row differs from the base the stored indexes describe: its value there and
/// its value now (`None`: no row).
type Changed<'a> = (&'a [u8], Option<&'a [u8]>, Option<&'a [u8]>);

/// The keys whose rows differ from the base the stored indexes describe, in key order: those
/// `folded` into the rows' base (their values now read from the rows), merged with those on
/// top of the rows' base (whose base value is their value before the fold too). A folded
/// row that kept its unique-index keys counts as its row in the rows' base (the same keys):
/// unchanged, unless changed since; so does a change on top of the base that the replay
/// marked as keeping its keys (`kept`), while the delta still holds that very change.
fn changed<'a>(
    rows: &'a Rows,
    folded: Option<&'a Folded>,
    kept: Option<&'a Kept>,
) -> Vec<Changed<'a>> {
    let value = |r: RowRef<'a>| r.value;
    let mut at = 0;
    let unchanged = move |key: &[u8], now: Option<&Row>| {
        kept.zip(now)
            .is_some_and(|(k, now)| k.run.holds_marked(&mut at, key, now))
    };
    let mut later = rows.changes_unless(unchanged).peekable();
    let mut out = Vec::new();
    let mut near = 0;
    for (key, before) in folded.into_iter().flat_map(Folded::changes) {
        while let Some(c) = later.next_if(|c| c.key < key) {
            out.push((c.key, c.before.map(value), c.now.map(value)));
        }
        let since = later.next_if(|c| c.key == key);
        let before = match before {
            Before::Absent => None,
            Before::Value(v) => Some(v),
            Before::SameKeys => match since {
                Some(c) => c.before.map(value),
                None => continue, // nothing to do
            },
        };
        let now = match since {
            Some(c) => c.now,
            None => rows.get_near(key, &mut near),
        };
        out.push((key, before, now.map(value)));
    }
    out.extend(later.map(|c| (c.key, c.before.map(value), c.now.map(value))));
    out
}

/// What a changed row does to the indexes: the index keys it no longer holds (removed if
/// they still name it) and those it holds anew (added).
struct Edit<'a> {
    key: &'a [u8],
    gone: IndexKeys,
    new: IndexKeys,
}

/// The edits of `changes` to the indexes `maps`, their index keys derived on every core; of
/// a change that moves some index keys, those it keeps are checked to name its row in
/// `maps`. `None`: a value does not decode, or such a kept key does not name its row.
fn edits<'a>(
    changes: &[Changed<'a>],
    maps: &[IndexState],
    indexer: Indexer<'_>,
) -> Option<Vec<Edit<'a>>> {
    let threads = index_threads(changes.len());
    let chunk = changes.len().div_ceil(threads).max(1);
    let shares: Vec<Option<Vec<Edit<'a>>>> = if threads == 1 {
        // No thread to start for a few changes.
        vec![edits_of(changes, maps, indexer)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = changes
                .chunks(chunk)
                .map(|part| s.spawn(move || edits_of(part, maps, indexer)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().ok().flatten())
                .collect()
        })
    };
    let mut all = Vec::new();
    for share in shares {
        all.extend(share?);
    }
    Some(all)
}

/// [`edits`] of some changes, on one thread.
fn edits_of<'a>(
    changes: &[Changed<'a>],
    maps: &[IndexState],
    indexer: Indexer<'_>,
) -> Option<Vec<Edit<'a>>> {
    let keys = |v: Option<&[u8]>| v.map_or(Ok(Vec::new()), indexer).ok();
    let names = |slot: usize, uk: &[u8], key: &[u8]| {
        maps.get(slot).and_then(|m| m.map.primary_key(uk)) == Some(key)
    };
    let mut out = Vec::new();
    for &(key, before, now) in changes {
        if before == now {
            continue; // changed, and back again
        }
        let (before, now) = (keys(before)?, keys(now)?);
        if before == now {
            // Most changes: the same index keys, whose entries the stored indexes hold as
            // they hold those of the rows that did not change (trusted past the sample: not
            // looked up, a random probe each, which cost more than both decodes).
            continue;
        }
        let gone = before
            .iter()
            .filter(|(slot, uk)| !holds(&now, *slot, uk))
            .cloned()
            .collect();
        let mut new = Vec::new();
        for (slot, uk) in now {
            if !holds(&before, slot, &uk) {
                new.push((slot, uk));
            } else if !names(slot, &uk, key) {
                return None;
            }
        }
        out.push(Edit { key, gone, new });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    use crate::error::Error;
    use crate::store::engine::codec::{Op, TableKind, TableMeta, TxHints};
    use crate::store::engine::replay::{Merge, Replay};
    use crate::store::engine::state::{Before, State};
    use crate::store::engine::txn::{TableIndexes, build_indexes};

    /// Keys: short ones (kept inline) and long ones (shared).
    fn key(n: u8) -> Bytes {
        let mut k = vec![n];
        if n % 4 == 3 {
            k.extend_from_slice(&[7; 30]);
        }
        Bytes::new(&k)
    }

    /// A row's value: its name and its alias (each unique in the table), and a filler byte
    /// (changing it changes no index key).
    fn value(name: u8, alias: u8, filler: u8) -> Bytes {
        Bytes::new(&[name, alias, filler])
    }

    /// Two unique indexes, on the name and on the alias; a value shorter than two bytes does
    /// not decode.
    fn indexes() -> TableIndexes {
        TableIndexes {
            table: 0,
            names: vec!["name".into(), "alias".into()],
            indexer: Arc::new(|v: &[u8]| match v {
                [name, alias, ..] => Ok(vec![
                    (0, Bytes::new(&[b'n', *name])),
                    (1, Bytes::new(&[b'a', *alias])),
                ]),
                _ => Err(Error::InvalidArgument("short value".into())),
            }),
        }
    }

    fn meta() -> TableMeta {
        TableMeta {
            id: 0,
            name: "t".into(),
            kind: TableKind::Bytes,
            key_type: "bytes".into(),
            value_type: "bytes".into(),
            version: 1,
        }
    }

    /// A row's value: (name, alias, filler).
    type Value = (u8, u8, u8);

    /// A row: key number → its value.
    type Model = BTreeMap<u8, Value>;

    /// The state a restore decodes from the snapshot of table 0 holding `rows`, with its
    /// unique indexes stored (`corrupt`: two rows' entries in the name index swapped).
    fn snapshot(rows: &Model, corrupt: bool) -> State {
        let mut s = State::default();
        s.apply(&Op::CreateTable(meta())).expect("create");
        for (k, (name, alias, filler)) in rows {
            let put = Op::Put {
                table: 0,
                key: key(*k),
                value: value(*name, *alias, *filler),
                version: 1,
            };
            s.apply(&put).expect("put");
        }
        s.seal();
        let ix = indexes();
        let t = s.table_mut(0).expect("table");
        build_indexes(t, ix.names.clone(), &ix.indexer).expect("unique");
        if corrupt && let Some(names) = t.indexes.first_mut() {
            let mut entries: Vec<(Bytes, Bytes)> = names
                .map
                .iter()
                .map(|r| (Bytes::new(r.key), Bytes::new(r.value)))
                .collect();
            if let [a, b, ..] = entries.as_mut_slice() {
                std::mem::swap(&mut a.1, &mut b.1);
            }
            names.map = Rows::default();
            for (k, pk) in entries {
                names.map.insert_primary_key(k, pk);
            }
            names.map.seal();
            names.map = names.map.compacted();
        }
        State::decode_snapshot_owned(s.encode_snapshot().expect("encode")).expect("decode")
    }

    /// A change to the rows.
    #[derive(Debug, Clone)]
    enum Step {
        Put(u8, u8, u8, u8),
        Delete(u8),
        /// A put of the row's name and alias (if it has a row) with another filler.
        Touch(u8, u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..20, 0u8..20, 0u8..20, 0u8..3).prop_map(|(k, n, a, f)| Step::Put(k, n, a, f)),
            1 => (0u8..20).prop_map(Step::Delete),
            3 => (0u8..20, 0u8..3).prop_map(|(k, f)| Step::Touch(k, f)),
        ]
    }

    /// The op of `step` if a registered index lets it through (its name and alias are no
    /// other row's; `force`: even if not), applied to `model`.
    fn op_of(model: &mut Model, step: &Step, force: bool) -> Option<Op> {
        match *step {
            Step::Touch(k, filler) => {
                let (name, alias, _) = model.get(&k).copied()?;
                op_of(model, &Step::Put(k, name, alias, filler), force)
            }
            Step::Put(k, name, alias, filler) => {
                let taken = model
                    .iter()
                    .any(|(o, (n, a, _))| *o != k && (*n == name || *a == alias));
                if taken && !force {
                    return None;
                }
                model.insert(k, (name, alias, filler));
                Some(Op::Put {
                    table: 0,
                    key: key(k),
                    value: value(name, alias, filler),
                    version: 2,
                })
            }
            Step::Delete(k) => {
                model.remove(&k);
                Some(Op::Delete {
                    table: 0,
                    key: key(k),
                })
            }
        }
    }

    /// Index names a writer declares (FORMAT.md §12.1.1): both, one, none, or both with
    /// one the replay's indexes do not have.
    fn declared(which: u8) -> Vec<String> {
        let names: &[&str] = match which % 5 {
            0 => &["name", "alias"],
            1 => &["name"],
            2 => &["alias"],
            3 => &[],
            _ => &["alias", "name", "other"],
        };
        names.iter().map(|n| n.to_string()).collect()
    }

    /// Whether a row going from `old` to `new` keeps its keys in the indexes named `names`.
    fn keeps(old: Option<Value>, new: Option<Value>, names: &[String]) -> bool {
        let (Some(old), Some(new)) = (old, new) else {
            return false;
        };
        names.iter().all(|n| match n.as_str() {
            "name" => old.0 == new.0,
            "alias" => old.1 == new.1,
            _ => true,
        })
    }

    /// The tail's transactions (one op each) with their hints: a put says it kept its keys
    /// when `marks` picks it and it did, under the names declared then (`first`, then from
    /// op `switch` on `second` if any), each declared with the first put that says so.
    fn hinted(
        steps: &[(Op, Option<Value>, Option<Value>)],
        marks: u32,
        first: u8,
        second: Option<(usize, u8)>,
    ) -> Vec<(Op, TxHints)> {
        let mut names = declared(first);
        let mut fresh = true;
        let mut out = Vec::new();
        for (i, (op, old, new)) in steps.iter().enumerate() {
            if let Some((at, which)) = second.filter(|(at, _)| *at == i) {
                let _ = at;
                names = declared(which);
                fresh = true;
            }
            let mut hints = TxHints::default();
            if marks & (1 << (i % 32)) != 0 && keeps(*old, *new, &names) {
                hints.kept.push(0);
                if fresh {
                    hints.declared.push((0, names.clone()));
                    fresh = false;
                }
            }
            out.push((op.clone(), hints));
        }
        out
    }

    /// Index entries in order.
    fn entries(map: &Rows) -> Vec<(Vec<u8>, Vec<u8>)> {
        map.iter()
            .map(|r| (r.key.to_vec(), r.value.to_vec()))
            .collect()
    }

    /// The table's unique indexes set up by a registration on `state` (a claim, or a build
    /// when it fails) and built from the rows alone: equal entries, or both a conflict. Also
    /// returns what the claim alone gave.
    fn claimed_is_built(state: &State) -> Result<Option<Vec<IndexState>>, TestCaseError> {
        let ix = indexes();
        let mut claimed = state.clone();
        let got = ix.rebuild(&mut claimed);
        let mut built = state.clone();
        let t = built.table_mut(0).map_err(TestCaseError::fail)?;
        t.drop_stored();
        let want = build_indexes(t, ix.names.clone(), &ix.indexer);
        match (got, want) {
            (Ok(()), Ok(())) => {
                let (a, b) = (claimed.tables.get(&0), built.tables.get(&0));
                let entries_of = |t: Option<&TableState>| -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
                    t.map(|t| t.indexes.iter().map(|i| entries(&i.map)).collect())
                        .unwrap_or_default()
                };
                prop_assert_eq!(entries_of(a), entries_of(b));
                prop_assert!(a.is_some_and(|t| t.stored.is_empty() && t.folded.is_none()));
            }
            (Err(Error::Conflict { .. }), Err(Error::Conflict { .. })) => {}
            (got, want) => prop_assert!(false, "claimed: {:?}, built: {:?}", got, want),
        }
        let mut direct = state.clone();
        let t = direct.table_mut(0).map_err(TestCaseError::fail)?;
        Ok(claim_stored(t, &ix.names, &*ix.indexer))
    }

    /// `ops` applied one by one, each transaction sealed (as commits do).
    fn apply_each(state: &mut State, ops: &[Op]) {
        for op in ops {
            state.apply(op).expect("op");
            state.seal();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// A table restored from a snapshot with stored unique indexes and a tail of changes
        /// (rows renamed, deleted, names moving from row to row, changes before the snapshot
        /// was taken as a base and after the replay), replayed whichever way (folded into a
        /// new base or not): the indexes a registration claims are those a build from the
        /// rows gives; a conflict in the rows, or a corrupt stored index, falls back to the
        /// build (which reports the conflict); and sound stored indexes over conflict-free rows
        /// are claimed, not built.
        #[test]
        fn a_claim_after_a_replay_is_a_build(
            rows in proptest::sample::subsequence((0u8..16).collect::<Vec<_>>(), 0..16),
            names in Just((0u8..20).collect::<Vec<_>>()).prop_shuffle(),
            aliases in Just((0u8..20).collect::<Vec<_>>()).prop_shuffle(),
            before in proptest::collection::vec(step(), 0..6),
            tail in proptest::collection::vec(step(), 0..24),
            after in proptest::collection::vec(step(), 0..6),
            conflict in proptest::option::weighted(0.15, (0u8..20, 0u8..20, any::<bool>())),
            corrupt in proptest::bool::weighted(0.1),
            marks in any::<u32>(),
            first in 0u8..5,
            second in proptest::option::of((0usize..24, 0u8..5)),
        ) {
            let mut model: Model = rows
                .iter()
                .zip(names.iter().zip(&aliases))
                .map(|(k, (n, a))| (*k, (*n, *a, 0)))
                .collect();
            let start = snapshot(&model, corrupt);
            let corrupt = corrupt && model.len() >= 2;
            let ops = |steps: &[Step], model: &mut Model| -> Vec<Op> {
                steps.iter().filter_map(|s| op_of(model, s, false)).collect()
            };
            let before = ops(&before, &mut model);
            // Each tail op with its row before and after.
            let mut tail: Vec<_> = tail
                .iter()
                .filter_map(|s| {
                    let k = match s { Step::Put(k, ..) | Step::Delete(k) | Step::Touch(k, _) => *k };
                    let old = model.get(&k).copied();
                    let op = op_of(&mut model, s, false)?;
                    Some((op, old, model.get(&k).copied()))
                })
                .collect();
            if let Some((k, other, alias)) = conflict {
                // A row takes the name (or the alias) of another.
                let held = model.get(&other).copied();
                if let Some((name, a, _)) = held.filter(|_| k != other) {
                    let step = if alias { Step::Put(k, 99, a, 0) } else { Step::Put(k, name, 98, 0) };
                    let old = model.get(&k).copied();
                    if let Some(op) = op_of(&mut model, &step, true) {
                        tail.push((op, old, model.get(&k).copied()));
                    }
                }
            }
            let tail = hinted(&tail, marks, first, second);
            let after = ops(&after, &mut model);
            let mut unique = BTreeMap::new();
            let valid = model.values().all(|(n, a, _)| {
                unique.insert((0, *n), ()).is_none() && unique.insert((1, *a), ()).is_none()
            });
            for how in [Merge::Auto, Merge::Fold, Merge::Delta] {
                let mut state = start.clone();
                apply_each(&mut state, &before);
                let mut replay = Replay::new(state);
                for (op, hints) in &tail {
                    replay
                        .apply_hinted(vec![op.clone()], hints.clone())
                        .map_err(TestCaseError::fail)?;
                }
                let mut state = replay.finish_with(how);
                apply_each(&mut state, &after);
                let kept = state.tables.get(&0).is_some_and(|t| !t.stored.is_empty());
                let claimed = claimed_is_built(&state)?;
                if corrupt || !valid {
                    prop_assert!(claimed.is_none());
                } else if kept {
                    prop_assert!(claimed.is_some());
                }
            }
        }
    }

    /// A table larger than the sample a claim checks, and a tail folded into a new base that
    /// renames rows, deletes some, adds one and changes others keeping every index key
    /// (those are not looked up in the stored indexes): the indexes claimed are those a
    /// build gives.
    #[test]
    fn a_claim_past_the_sample_is_a_build() {
        let model: Model = (0..200u8).map(|k| (k, (k, k, 0))).collect();
        let mut replay = Replay::new(snapshot(&model, false));
        for k in 0..200u8 {
            let op = match k % 5 {
                0 => Some(Op::Put {
                    table: 0,
                    key: key(k),
                    value: value(200 + k / 5, k, 0),
                    version: 2,
                }),
                1 => Some(Op::Delete {
                    table: 0,
                    key: key(k),
                }),
                2 => Some(Op::Put {
                    table: 0,
                    key: key(k),
                    value: value(k, k, 1),
                    version: 2,
                }),
                _ => None,
            };
            replay.apply(op.into_iter().collect()).expect("apply");
        }
        let put = Op::Put {
            table: 0,
            key: key(240),
            value: value(250, 250, 0),
            version: 2,
        };
        replay.apply(vec![put]).expect("apply");
        let state = replay.finish_with(Merge::Fold);
        assert!(sample_positions(model.len()).count() < model.len());
        let ix = indexes();
        let mut s = state.clone();
        let t = s.table_mut(0).expect("table");
        let claimed = claim_stored(t, &ix.names, &*ix.indexer).expect("claimed");
        let mut built = state.clone();
        let t = built.table_mut(0).expect("table");
        t.drop_stored();
        build_indexes(t, ix.names.clone(), &ix.indexer).expect("unique");
        let got: Vec<_> = claimed.iter().map(|i| entries(&i.map)).collect();
        let want: Vec<_> = t.indexes.iter().map(|i| entries(&i.map)).collect();
        assert_eq!(got, want);
        assert_eq!(got.first().map(Vec::len), Some(161));
    }

    /// A tail folded into a new base with a row renamed, one deleted, names moving from row to
    /// row, a new row and a change that keeps every index key: the stored indexes are claimed
    /// and up to date. A row taking another's name falls back to the build, which reports
    /// the conflict, and so do stored indexes whose base was laid out anew since the fold.
    #[test]
    fn named_cases() {
        let model: Model = (1..=12u8).map(|k| (k, (9 + k, 49 + k, 0))).collect();
        let start = snapshot(&model, false);
        let put = |k: u8, name: u8, alias: u8, filler: u8| Op::Put {
            table: 0,
            key: key(k),
            value: value(name, alias, filler),
            version: 2,
        };
        let tail = [
            put(1, 30, 50, 0), // renamed: name 10 → 30
            Op::Delete {
                table: 0,
                key: key(2),
            },
            put(3, 10, 52, 0),  // takes row 1's old name
            put(13, 12, 70, 0), // a new row, with row 3's old name
            put(4, 13, 53, 7),  // only the filler changes
            put(5, 11, 54, 0),  // takes the deleted row's name
        ];
        let replay = |extra: Option<Op>| {
            let mut replay = Replay::new(start.clone());
            for op in tail.iter().cloned().chain(extra) {
                replay.apply(vec![op]).expect("apply");
            }
            replay.finish_with(Merge::Fold)
        };
        let state = replay(None);
        let t = state.tables.get(&0).expect("table");
        let f = t.folded.as_deref().expect("kept through the fold");
        assert_eq!(f.len(), 6);
        assert_eq!(f.before_len, 12);
        let claimed = claimed_is_built(&state).expect("same").expect("claimed");
        let pk = |slot: usize, k: &[u8]| {
            claimed
                .get(slot)
                .and_then(|ix| ix.map.primary_key(k))
                .map(<[u8]>::to_vec)
        };
        assert_eq!(pk(0, &[b'n', 10]), Some(key(3).to_vec()));
        assert_eq!(pk(0, &[b'n', 11]), Some(key(5).to_vec()));
        assert_eq!(pk(0, &[b'n', 12]), Some(key(13).to_vec()));
        assert_eq!(pk(0, &[b'n', 13]), Some(key(4).to_vec()));
        assert_eq!(pk(0, &[b'n', 14]), None);
        assert_eq!(pk(0, &[b'n', 30]), Some(key(1).to_vec()));
        assert_eq!(pk(1, &[b'a', 51]), None);
        assert_eq!(pk(1, &[b'a', 70]), Some(key(13).to_vec()));
        // One entry per row.
        assert_eq!(claimed.first().map(|ix| ix.map.len()), Some(12));

        // Row 14 takes row 4's name.
        let state = replay(Some(put(14, 13, 71, 0)));
        assert!(state.tables.get(&0).is_some_and(|t| t.folded.is_some()));
        assert!(claimed_is_built(&state).expect("same").is_none());
        let mut s = state.clone();
        assert!(matches!(
            indexes().rebuild(&mut s),
            Err(Error::Conflict { .. })
        ));

        // Hinted: row 6's filler changes and row 7's too, each said to keep its keys under
        // both indexes (declared with row 6's); row 9 renamed. Rows 6 and 7 are folded as
        // keeping their keys (their before values not kept); then row 7 is renamed on top
        // of the fold, and the claim follows.
        let both = vec!["name".to_string(), "alias".to_string()];
        let hints = |kept: bool, names: Option<&Vec<String>>| TxHints {
            declared: names.map(|n| vec![(0, n.clone())]).unwrap_or_default(),
            kept: if kept { vec![0] } else { Vec::new() },
        };
        let txs = vec![
            (put(6, 15, 55, 1), hints(true, Some(&both))),
            (put(7, 16, 56, 1), hints(true, None)),
            (put(9, 40, 58, 0), hints(false, None)),
        ];
        let same_keys_after = |txs: Vec<(Op, TxHints)>| {
            let mut hinted = Replay::new(start.clone());
            for (op, h) in txs {
                hinted.apply_hinted(vec![op], h).expect("apply");
            }
            let state = hinted.finish_with(Merge::Fold);
            let f = state
                .tables
                .get(&0)
                .and_then(|t| t.folded.clone())
                .expect("folded");
            let same: Vec<Vec<u8>> = f
                .changes()
                .filter(|(_, b)| *b == Before::SameKeys)
                .map(|(k, _)| k.to_vec())
                .collect();
            (state, same)
        };
        let (mut state, same) = same_keys_after(txs.clone());
        assert_eq!(same, vec![key(6).to_vec(), key(7).to_vec()]);
        apply_each(&mut state, &[put(7, 31, 56, 1)]);
        let claimed = claimed_is_built(&state).expect("same").expect("claimed");
        let name_of = |k: &[u8]| {
            claimed
                .first()
                .and_then(|ix| ix.map.primary_key(k))
                .map(<[u8]>::to_vec)
        };
        assert_eq!(name_of(&[b'n', 31]), Some(key(7).to_vec()));
        assert_eq!(name_of(&[b'n', 16]), None);
        assert_eq!(name_of(&[b'n', 40]), Some(key(9).to_vec()));
        // Row 8 said to keep its keys under a declaration of the name alone: nothing said
        // of the table's rows is trusted (the alias index is stored), and the claim decodes.
        let mut txs = txs;
        txs.push((put(8, 17, 80, 1), hints(true, Some(&vec!["name".into()]))));
        let (state, same) = same_keys_after(txs);
        assert!(same.is_empty());
        let claimed = claimed_is_built(&state).expect("same").expect("claimed");
        let alias_of = |k: &[u8]| {
            claimed
                .get(1)
                .and_then(|ix| ix.map.primary_key(k))
                .map(<[u8]>::to_vec)
        };
        assert_eq!(alias_of(&[b'a', 80]), Some(key(8).to_vec()));
        assert_eq!(alias_of(&[b'a', 57]), None);

        // The rows laid out on another base after the fold: their folded changes no longer
        // lead there.
        let mut state = replay(None);
        let t = state.table_mut(0).expect("table");
        t.rows = t.rows.merged(std::iter::empty(), 0);
        assert!(claimed_is_built(&state).expect("same").is_none());
    }
}
