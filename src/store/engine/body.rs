//! A snapshot image's body (FORMAT.md §12.2): bincode's standard encoding of the tables, their
//! rows and their unique indexes. [`BodyRef`] serializes it through serde (the model, and the
//! uncompressed image); [`write_body`] writes the same bytes by hand, copying a table's rows
//! whole when its base's buffer holds exactly their records (after a compaction's fold, the
//! rows of every large table), instead of three serde calls per row.

use std::io::Write;

use serde::Serialize;
use serde::ser::Serializer;

use super::codec::TableMeta;
use crate::store::rows::{Rows, put_varint};

/// Bytes gathered before they are handed to the writer.
const FLUSH: usize = 1 << 16;

/// The state as its image's body holds it.
#[derive(Serialize)]
pub(super) struct BodyRef<'a> {
    pub(super) seq: u64,
    pub(super) next_table_id: u32,
    pub(super) tables: Vec<TableRef<'a>>,
}

/// One table of a [`BodyRef`].
#[derive(Serialize)]
pub(super) struct TableRef<'a> {
    pub(super) meta: &'a TableMeta,
    pub(super) next_id: u64,
    pub(super) rows: RowsRef<'a>,
    pub(super) indexes: Vec<(&'a str, PairsRef<'a>)>,
}

/// Index entries serialized in key order as a sequence of (index key, primary key).
pub(super) struct PairsRef<'a>(pub(super) &'a Rows);

impl Serialize for PairsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for r in self.0.iter() {
            seq.serialize_element(&(Raw(r.key), Raw(r.value)))?;
        }
        seq.end()
    }
}

/// Rows serialized in key order as a sequence of (key, value, version), without copying.
pub(super) struct RowsRef<'a>(pub(super) &'a Rows);

impl Serialize for RowsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for r in self.0.iter() {
            seq.serialize_element(&(Raw(r.key), Raw(r.value), r.version))?;
        }
        seq.end()
    }
}

/// Bytes serialized as a byte string.
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// What [`write_body`] folded of one table (see [`Rows::compacted`]): its rows laid out anew
/// (`None`: they needed no fold) and its indexes' entries, in the body's order; new bases
/// wait for [`Rows::start_directory`].
pub(super) struct FoldedTable {
    pub(super) rows: Option<Rows>,
    pub(super) indexes: Vec<Rows>,
}

/// Writes `body` to `w` as bincode's standard configuration serializes it (integers and
/// lengths in its variable-length form, a byte string as its length then its bytes). With
/// `fold`, each table's rows and index entries are folded as they are written (the rows'
/// records handed on as the fold lays them out, so one pass over the changes does both) and
/// returned, a [`FoldedTable`] per table; without, nothing is returned.
pub(super) fn write_body(
    body: &BodyRef<'_>,
    w: &mut dyn Write,
    fold: bool,
) -> std::io::Result<Vec<FoldedTable>> {
    if !fold {
        return write_tables(body, w, None);
    }
    // The indexes' entries are folded on a thread of their own, in the body's order, beside
    // the fold of the rows that come before them.
    let maps: Vec<&Rows> = body
        .tables
        .iter()
        .flat_map(|t| t.indexes.iter().map(|(_, pairs)| pairs.0))
        .filter(|m| m.needs_fold())
        .collect();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if !maps.is_empty() {
            s.spawn(move || {
                for m in maps {
                    let folded = m.folded_tapped(&mut |_| Ok(()));
                    if tx.send(folded).is_err() {
                        break; // the writer stopped
                    }
                }
            });
        }
        write_tables(body, w, Some(&rx))
    })
}

/// [`write_body`]; with `folds` (folding), the folded entries of each index that needs a
/// fold come from there, in the body's order.
fn write_tables(
    body: &BodyRef<'_>,
    w: &mut dyn Write,
    folds: Option<&std::sync::mpsc::Receiver<std::io::Result<Rows>>>,
) -> std::io::Result<Vec<FoldedTable>> {
    let fold = folds.is_some();
    let mut buf = Vec::with_capacity(FLUSH + 1024);
    let mut folded = Vec::new();
    put_varint(&mut buf, body.seq);
    put_varint(&mut buf, u64::from(body.next_table_id));
    put_varint(&mut buf, body.tables.len() as u64);
    for t in &body.tables {
        bincode::serde::encode_into_std_write(t.meta, &mut buf, bincode::config::standard())
            .map_err(std::io::Error::other)?;
        put_varint(&mut buf, t.next_id);
        let rows = t.rows.0;
        put_varint(&mut buf, rows.len() as u64);
        let mut out = FoldedTable {
            rows: None,
            indexes: Vec::new(),
        };
        if fold && rows.needs_fold() {
            w.write_all(&buf)?;
            buf.clear();
            out.rows = Some(rows.folded_tapped(&mut |records| w.write_all(records))?);
        } else if let Some(records) = rows.packed_records() {
            w.write_all(&buf)?;
            buf.clear();
            w.write_all(records)?;
        } else {
            for r in rows.iter() {
                put_bytes(&mut buf, r.key);
                put_bytes(&mut buf, r.value);
                put_varint(&mut buf, r.version);
                flush_full(&mut buf, w)?;
            }
        }
        put_varint(&mut buf, t.indexes.len() as u64);
        for (name, pairs) in &t.indexes {
            let compacted = match folds {
                Some(folds) if pairs.0.needs_fold() => Some(folds.recv().map_err(|_| {
                    std::io::Error::other("the fold of an index's entries stopped")
                })??),
                Some(_) => Some(pairs.0.clone()),
                None => None,
            };
            let pairs = compacted.as_ref().unwrap_or(pairs.0);
            put_bytes(&mut buf, name.as_bytes());
            put_varint(&mut buf, pairs.len() as u64);
            for r in pairs.iter() {
                put_bytes(&mut buf, r.key);
                put_bytes(&mut buf, r.value);
                flush_full(&mut buf, w)?;
            }
            out.indexes.extend(compacted);
        }
        if fold {
            folded.push(out);
        }
    }
    w.write_all(&buf)?;
    Ok(folded)
}

/// A byte string: its length, then its bytes.
fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Hands `buf` to `w` once it holds [`FLUSH`] bytes or more.
fn flush_full(buf: &mut Vec<u8>, w: &mut dyn Write) -> std::io::Result<()> {
    if buf.len() >= FLUSH {
        w.write_all(buf)?;
        buf.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::store::engine::codec::{Op, TableKind};
    use crate::store::engine::state::{IndexState, State};
    use crate::store::rows::Bytes;

    /// A table: its rows (key, value, version; lengths past 250 take a longer length form),
    /// whether they are folded into one base, then deleted (by position), and whether it has
    /// an index.
    type Table = (Vec<(Vec<u8>, Vec<u8>, u64)>, bool, Vec<usize>, bool);

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..4),
            prop::collection::vec(any::<u8>(), 0..max),
        ]
    }

    fn table() -> impl Strategy<Value = Table> {
        (
            prop::collection::vec((bytes(300), bytes(600), any::<u64>()), 0..40),
            any::<bool>(),
            prop::collection::vec(0usize..40, 0..4),
            any::<bool>(),
        )
    }

    fn state_of(tables: &[Table], seq: u64) -> State {
        let mut s = State::default();
        for (n, (rows, fold, deletes, index)) in tables.iter().enumerate() {
            let id = n as u32 + 1;
            let _ = s.apply(&Op::CreateTable(TableMeta {
                id,
                name: format!("t{id}"),
                kind: TableKind::Bytes,
                key_type: "bytes".into(),
                value_type: "bytes".into(),
                version: 1,
            }));
            for (k, v, version) in rows {
                let _ = s.apply(&Op::Put {
                    table: id,
                    key: Bytes::new(k),
                    value: Bytes::new(v),
                    version: *version,
                });
            }
            s.seal();
            let Ok(t) = s.table_mut(id) else { continue };
            if *fold {
                t.rows = t.rows.merged(std::iter::empty(), 0);
            }
            for at in deletes {
                let key = t.rows.iter().nth(*at).map(|r| Bytes::new(r.key));
                if let Some(key) = key {
                    t.rows.remove(&key);
                }
            }
            if *index {
                let mut map = Rows::default();
                for r in t.rows.iter() {
                    map.insert_primary_key(Bytes::new(r.value), Bytes::new(r.key));
                }
                map.seal();
                if *fold {
                    // Entries folded into a base, then changed: they need a fold too.
                    map = map.merged(std::iter::empty(), 0);
                    for at in deletes {
                        let key = map.iter().nth(*at / 2).map(|r| Bytes::new(r.key));
                        if let Some(key) = key {
                            map.remove(&key);
                        }
                    }
                }
                t.indexes.push(IndexState {
                    name: "by value".into(),
                    map,
                });
            }
            s.seal();
        }
        s.seq = seq;
        s
    }

    proptest! {
        /// The body written by hand is the body serde writes, whether a table's rows are
        /// copied whole (folded, nothing deleted since) or written row by row.
        #[test]
        fn written_by_hand_as_serde_writes_it(
            tables in prop::collection::vec(table(), 0..4),
            seq in any::<u64>(),
        ) {
            let state = state_of(&tables, seq);
            let body = state.image_ref();
            let mut written = Vec::new();
            write_body(&body, &mut written, false).expect("write");
            let serde = bincode::serde::encode_to_vec(&body, bincode::config::standard())
                .expect("serde");
            prop_assert_eq!(written, serde);
        }
    }

    /// The image written while folding, and the state it returns: the image of the state
    /// as it was, and the state [`State::compacted`] gives.
    fn folded_as_compacted(state: &State) {
        let mut image = Vec::new();
        let folded = state
            .write_snapshot_folded(&mut |b| {
                image.extend_from_slice(b);
                Ok(())
            })
            .expect("folded");
        assert_eq!(image, state.encode_snapshot().expect("image"));
        let compacted = state.compacted();
        assert_eq!(folded.tables.len(), compacted.tables.len());
        for ((id, f), (cid, c)) in folded.tables.iter().zip(compacted.tables.iter()) {
            assert_eq!(id, cid);
            let rows = |r: &Rows| {
                r.iter()
                    .map(|r| (r.key.to_vec(), r.value.to_vec(), r.version))
                    .collect::<Vec<_>>()
            };
            assert_eq!(rows(&f.rows), rows(&c.rows));
            assert_eq!(f.rows.delta_len(), c.rows.delta_len());
            assert_eq!(
                f.rows.packed_records().is_some(),
                c.rows.packed_records().is_some()
            );
            assert_eq!(f.indexes.len(), c.indexes.len());
            for (a, b) in f.indexes.iter().zip(&c.indexes) {
                assert_eq!(rows(&a.map), rows(&b.map));
                assert_eq!(a.map.delta_len(), b.map.delta_len());
            }
        }
        assert_eq!(folded.encode_snapshot().expect("image"), image);
    }

    proptest! {
        #[test]
        fn folding_as_written_is_compacting(
            tables in prop::collection::vec(table(), 0..4),
        ) {
            folded_as_compacted(&state_of(&tables, 3));
        }
    }

    /// A state large enough that its image is compressed on other threads, with changes
    /// on top of a folded base in one table and not in the other.
    #[test]
    fn a_large_state_folds_as_it_is_written() {
        let rows = |n: u32, len: usize| {
            (0..n)
                .map(|i| {
                    (
                        format!("{i:08}").into_bytes(),
                        vec![(i % 251) as u8; len],
                        u64::from(i),
                    )
                })
                .collect::<Vec<_>>()
        };
        let deletes = (0..40).map(|i| i * 37).collect();
        let state = state_of(
            &[
                (rows(20_000, 100), true, deletes, true),
                (rows(3_000, 10), false, vec![], false),
            ],
            5,
        );
        let first = state.tables.values().next();
        assert!(first.is_some_and(|t| t.rows.needs_fold()));
        assert!(first.is_some_and(|t| t.indexes.iter().all(|ix| ix.map.needs_fold())));
        folded_as_compacted(&state);
    }

    /// The packed path is taken: a folded table's rows are one byte string, as serde writes
    /// them row by row.
    #[test]
    fn folded_rows_are_copied_whole() {
        let rows = (0..300u32)
            .map(|i| {
                (
                    format!("{i:08}").into_bytes(),
                    vec![7; i as usize],
                    u64::from(i) << 20,
                )
            })
            .collect();
        let state = state_of(&[(rows, true, vec![], false)], 9);
        let t = state.tables.values().next().expect("table");
        assert!(t.rows.packed_records().is_some());
        let body = state.image_ref();
        let mut written = Vec::new();
        write_body(&body, &mut written, false).expect("write");
        let serde =
            bincode::serde::encode_to_vec(&body, bincode::config::standard()).expect("serde");
        assert_eq!(written, serde);
    }
}
