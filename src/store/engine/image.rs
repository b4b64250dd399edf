//! Store payloads made without a running store, for importers: the snapshot and transactions
//! of a store holding one bytes table, exactly as a [`Store`](crate::Store) writes them
//! (FORMAT.md §12), so that a directory an importer writes through the epoch layer opens,
//! dumps and verifies as any store.

use super::codec::{Op, TableKind, TableMeta, encode_tx};
use super::state::State;
use crate::error::Result;
use crate::store::rows::Bytes;

/// The payloads of a store holding one bytes table (id 0), in the order they are written.
#[derive(Debug)]
pub(crate) struct BytesTableImage {
    meta: TableMeta,
    /// Transactions written so far (the `seq` of a snapshot written now).
    seq: u64,
}

impl BytesTableImage {
    /// A store whose only table will be the bytes table `name`.
    pub(crate) fn new(name: &str) -> Self {
        BytesTableImage {
            meta: TableMeta {
                id: 0,
                name: name.to_string(),
                kind: TableKind::Bytes,
                key_type: "bytes".into(),
                value_type: "bytes".into(),
                version: 1,
            },
            seq: 0,
        }
    }

    fn puts(&self, rows: &[(&[u8], &[u8])]) -> Vec<Op> {
        rows.iter()
            .map(|(k, v)| Op::Put {
                table: self.meta.id,
                key: Bytes::new(k),
                value: Bytes::new(v),
                version: 1,
            })
            .collect()
    }

    /// A transaction that creates the table (in a store without snapshot) and writes `rows`.
    pub(crate) fn create_tx(&mut self, rows: &[(&[u8], &[u8])]) -> Result<Vec<u8>> {
        let mut ops = vec![Op::CreateTable(self.meta.clone())];
        ops.extend(self.puts(rows));
        self.seq += 1;
        encode_tx(&ops)
    }

    /// A transaction that writes `rows` (new keys: version 1) to the table.
    pub(crate) fn put_tx(&mut self, rows: &[(&[u8], &[u8])]) -> Result<Vec<u8>> {
        self.seq += 1;
        encode_tx(&self.puts(rows))
    }

    /// A snapshot of a state whose table holds exactly `rows`.
    pub(crate) fn snapshot(&self, rows: &[(&[u8], &[u8])]) -> Result<Vec<u8>> {
        let mut state = State::default();
        let mut ops = vec![Op::CreateTable(self.meta.clone())];
        ops.extend(self.puts(rows));
        for op in &ops {
            state
                .apply(op)
                .map_err(|e| crate::Error::InvalidArgument(format!("cannot build a state: {e}")))?;
        }
        state.seal();
        state.seq = self.seq;
        state.compacted().encode_snapshot()
    }
}
