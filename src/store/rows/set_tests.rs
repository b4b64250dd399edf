//! Tests of `set`: [`Rows`] against a model (an ordered map) through its base, its appended
//! rows and its delta, and its bulk paths.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn row(v: u8, version: u64) -> Row {
    Row {
        value: Bytes::new(&[v]),
        version,
    }
}

/// A model of rows: key -> (the value's one byte, version).
type Model = BTreeMap<Vec<u8>, (u8, u64)>;

/// Rows whose base holds `base` (one-byte values), each at the version `version` gives
/// its value, and the model of them.
fn rows_over(base: &BTreeMap<Vec<u8>, u8>, version: impl Fn(u8) -> u64) -> (Rows, Model) {
    let mut data = Vec::new();
    let mut ranges = Vec::new();
    let mut model = Model::new();
    for (k, v) in base {
        let ka = data.len();
        data.extend_from_slice(k);
        let va = data.len();
        data.push(*v);
        ranges.push((ka, k.len(), va, 1, version(*v)));
        model.insert(k.clone(), (*v, version(*v)));
    }
    let base = Base::from_ranges(data.into(), ranges).unwrap();
    (Rows::from_base(base), model)
}

/// Checks that `rows` read as `model`: length, every row in order, gets of `probes`,
/// and the range from `lo` to `hi` (both ways of bounding it).
fn reads_as(
    rows: &Rows,
    model: &Model,
    probes: &[Vec<u8>],
    lo: &[u8],
    hi: &[u8],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(rows.len(), model.len());
    let all: Vec<(Vec<u8>, u8, u64)> = rows
        .iter()
        .map(|r| (r.key.to_vec(), r.value[0], r.version))
        .collect();
    let want: Vec<(Vec<u8>, u8, u64)> = model
        .iter()
        .map(|(k, (v, n))| (k.clone(), *v, *n))
        .collect();
    prop_assert_eq!(all, want);
    for k in model.keys().chain(probes) {
        prop_assert_eq!(
            rows.get(k).map(|r| (r.value[0], r.version)),
            model.get(k).copied()
        );
    }
    // The same asked in key order from a remembered place.
    let mut keys: Vec<&Vec<u8>> = model.keys().chain(probes).collect();
    keys.sort();
    let mut near = 0;
    for k in keys {
        prop_assert_eq!(
            rows.get_near(k, &mut near).map(|r| (r.value[0], r.version)),
            model.get(k).copied()
        );
    }
    if lo > hi {
        return Ok(());
    }
    for bounds in [
        (Bound::Included(lo.to_vec()), Bound::Excluded(hi.to_vec())),
        (Bound::Excluded(lo.to_vec()), Bound::Included(hi.to_vec())),
    ] {
        let got: Vec<Vec<u8>> = rows
            .range((as_bytes(&bounds.0), as_bytes(&bounds.1)))
            .map(|r| r.key.to_vec())
            .collect();
        let want: Vec<Vec<u8>> = model
            .range::<Vec<u8>, _>(bounds.clone())
            .map(|(k, _)| k.clone())
            .collect();
        prop_assert_eq!(&got, &want);
        // Backwards, and from both ends at once (they meet without overlap).
        let range = || rows.range((as_bytes(&bounds.0), as_bytes(&bounds.1)));
        let back: Vec<Vec<u8>> = range().rev().map(|r| r.key.to_vec()).collect();
        let mut want_back = want.clone();
        want_back.reverse();
        prop_assert_eq!(back, want_back);
        let mut both = range();
        let (mut front, mut back) = (Vec::new(), Vec::new());
        while let Some(r) = both.next() {
            front.push(r.key.to_vec());
            match both.next_back() {
                Some(r) => back.push(r.key.to_vec()),
                None => break,
            }
        }
        back.reverse();
        front.extend(back);
        prop_assert_eq!(front, want);
    }
    Ok(())
}

proptest! {
    /// Any base and any changes behave like one ordered map: gets, length, iteration,
    /// ranges, and the same after compaction.
    #[test]
    fn rows_behave_like_an_ordered_map(
        base in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..4), 0u8..9, 0..24),
        ops in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), proptest::option::of(0u8..9)), 0..40),
        lo in proptest::collection::vec(0u8..4, 0..3),
        hi in proptest::collection::vec(0u8..4, 0..3),
    ) {
        let (mut rows, mut model) = rows_over(&base, u64::from);
        for (k, v) in &ops {
            match v {
                Some(v) => {
                    let existed = rows.insert(Bytes::new(k), row(*v, 7));
                    prop_assert_eq!(existed, model.insert(k.clone(), (*v, 7)).is_some());
                }
                None => prop_assert_eq!(rows.remove(k), model.remove(k).is_some()),
            }
        }
        for rows in [rows.clone(), rows.compacted()] {
            reads_as(&rows, &model, &[vec![9, 9]], &lo, &hi)?;
            // A range whose start is after its end is empty.
            let inverted = (Bound::Included(Bytes::new(&[3, 3])), Bound::Excluded(Bytes::new(&[1])));
            prop_assert_eq!(rows.range(inverted).count(), 0);
        }
    }
}

/// An operation on rows, for the model test of appends.
#[derive(Debug, Clone)]
enum Step {
    /// Put a key of the base's range (or near it).
    Put(Vec<u8>, u8),
    /// Remove a key of the base's range.
    Remove(Vec<u8>),
    /// Put the next key above every key so far (an append), or the `n`-th appended again.
    Append(Option<u16>, u8),
    /// Remove the `n`-th appended key.
    RemoveAppended(u16),
    /// Seal the appended rows.
    Seal,
    /// Go on with a clone (the original is dropped, as a replaced state is).
    Clone,
}

fn step() -> impl Strategy<Value = Step> {
    let key = proptest::collection::vec(0u8..4, 0..4);
    prop_oneof![
        1 => (key.clone(), 0u8..9).prop_map(|(k, v)| Step::Put(k, v)),
        1 => key.prop_map(Step::Remove),
        4 => (proptest::option::weighted(0.2, 0u16..80), 0u8..9).prop_map(|(n, v)| Step::Append(n, v)),
        1 => (0u16..80).prop_map(Step::RemoveAppended),
        1 => Just(Step::Seal),
        1 => Just(Step::Clone),
    ]
}

#[allow(
    clippy::big_endian_bytes,
    reason = "appended keys must sort as the numbers do"
)]
fn appended_key(n: u16) -> Vec<u8> {
    // Above every key of the base's range (those are at most [3, 3, 3]).
    [&[4u8][..], &n.to_be_bytes()].concat()
}

proptest! {
    /// Appends (keys above every key held), sealed into chunks or the delta, mixed with
    /// other writes, removals of appended rows and clones: the rows read as one ordered map
    /// at every step (gets, length, iteration, ranges), their changes on top of the base
    /// are what differs from it, and compaction keeps them.
    #[test]
    fn appended_rows_behave_like_an_ordered_map(
        base in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..4), 0u8..9, 0..12),
        steps in proptest::collection::vec(step(), 0..120),
        lo in prop_oneof![proptest::collection::vec(0u8..4, 0..3), (0u16..90).prop_map(appended_key)],
        hi in prop_oneof![proptest::collection::vec(0u8..4, 0..3), (0u16..90).prop_map(appended_key)],
    ) {
        let (mut rows, mut model) = rows_over(&base, |_| 1);
        let at_base = model.clone();
        let mut appended = 0u16;
        for (i, s) in steps.iter().enumerate() {
            let version = i as u64 + 2;
            match s {
                Step::Put(k, v) => {
                    let existed = rows.insert(Bytes::new(k), row(*v, version));
                    prop_assert_eq!(existed, model.insert(k.clone(), (*v, version)).is_some());
                }
                Step::Remove(k) => prop_assert_eq!(rows.remove(k), model.remove(k).is_some()),
                Step::Append(again, v) => {
                    let k = match again {
                        Some(n) if appended > 0 => appended_key(n % appended),
                        _ => {
                            appended += 1;
                            appended_key(appended - 1)
                        }
                    };
                    let existed = rows.insert(Bytes::new(&k), row(*v, version));
                    prop_assert_eq!(existed, model.insert(k, (*v, version)).is_some());
                }
                Step::RemoveAppended(n) => {
                    let k = appended_key(n % appended.max(1));
                    prop_assert_eq!(rows.remove(&k), model.remove(&k).is_some());
                }
                Step::Seal => rows.seal(),
                Step::Clone => rows = rows.clone(),
            }
            prop_assert_eq!(rows.len(), model.len());
            for k in model.keys() {
                prop_assert_eq!(rows.get(k).map(|r| (r.value[0], r.version)), model.get(k).copied());
            }
        }
        // The changes on top of the base turn the base into the rows.
        let mut rebuilt = at_base.clone();
        for c in rows.changes() {
            prop_assert_eq!(c.before.map(|r| (r.value[0], r.version)), at_base.get(c.key).copied());
            match c.now {
                Some(r) => rebuilt.insert(c.key.to_vec(), (r.value[0], r.version)),
                None => rebuilt.remove(c.key),
            };
        }
        prop_assert_eq!(&rebuilt, &model);
        let mut sealed = rows.clone();
        sealed.seal();
        let probes: Vec<Vec<u8>> = (0..appended + 2).map(appended_key).collect();
        for rows in [rows.clone(), sealed, rows.compacted()] {
            reads_as(&rows, &model, &probes, &lo, &hi)?;
        }
    }
}

fn as_bytes(b: &Bound<Vec<u8>>) -> Bound<Bytes> {
    match b {
        Bound::Included(k) => Bound::Included(Bytes::new(k)),
        Bound::Excluded(k) => Bound::Excluded(Bytes::new(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A table filled by appends in transactions of 1 to 600 rows (sealed after each, as
/// commits do) keeps few chunks, reads every row, and new keys skip the searches.
#[allow(clippy::big_endian_bytes, reason = "keys must sort as the numbers do")]
#[test]
fn bulk_appends_make_few_chunks() {
    let mut rows = Rows::default();
    let mut next = 0u64;
    for tx in 0..300u64 {
        for _ in 0..(1 + tx * 7 % 600) {
            assert!(!rows.insert(Bytes::new(&next.to_be_bytes()), row(1, next)));
            next += 1;
        }
        rows.seal();
        assert!(!rows.has_pending());
    }
    assert_eq!(rows.len(), next as usize);
    assert!(rows.tail.len() + rows.recent.len() + rows.delta.len() == next as usize);
    assert!(
        rows.tail.chunks().len() <= 7 * 4,
        "{} chunks",
        rows.tail.chunks().len()
    );
    for id in (0..next).step_by(101) {
        assert_eq!(rows.get(&id.to_be_bytes()).map(|r| r.version), Some(id));
    }
    let keys: Vec<u64> = rows
        .iter()
        .map(|r| u64::from_be_bytes(r.key.try_into().unwrap()))
        .collect();
    assert_eq!(keys, (0..next).collect::<Vec<_>>());
}

proptest! {
    /// A sorted run put on any base and delta, merged into a new base or (small, or not
    /// sorted) inserted row by row, gives the rows an insert of each would.
    #[test]
    fn sorted_runs_put_like_inserts(
        base in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..4), 0u8..9, 0..24),
        ops in proptest::collection::vec((proptest::collection::vec(0u8..4, 0..4), proptest::option::of(0u8..9)), 0..20),
        run in proptest::collection::btree_map(proptest::collection::vec(0u8..4, 0..4), 0u8..9, 0..24),
        min in 0usize..30,
        shuffle in any::<bool>(),
    ) {
        let (mut rows, _) = rows_over(&base, |_| 1);
        for (k, v) in &ops {
            match v {
                Some(v) => {
                    rows.insert(Bytes::new(k), row(*v, 2));
                }
                None => {
                    rows.remove(k);
                }
            }
        }
        let mut want = rows.clone();
        let mut items: Vec<(Bytes, Row)> =
            run.iter().map(|(k, v)| (Bytes::new(k), row(*v, 3))).collect();
        if shuffle {
            items.reverse();
        }
        for (k, r) in &items {
            want.insert(k.clone(), r.clone());
        }
        rows.put_sorted_from(items, min);
        prop_assert_eq!(rows.len(), want.len());
        let got: Vec<(Vec<u8>, u8, u64)> =
            rows.iter().map(|r| (r.key.to_vec(), r.value[0], r.version)).collect();
        let expected: Vec<(Vec<u8>, u8, u64)> =
            want.iter().map(|r| (r.key.to_vec(), r.value[0], r.version)).collect();
        prop_assert_eq!(got, expected);
        for k in run.keys().chain(base.keys()) {
            prop_assert_eq!(rows.get(k).map(|r| r.value[0]), want.get(k).map(|r| r.value[0]));
        }
    }
}
