//! A store transaction (FORMAT.md §12.1), format 1 or 2: the decoder and the restore's
//! in-place reading of puts, deletes and hints must agree on whatever bytes, and what
//! decodes encodes to bytes that decode to the same. The input is tried as it is, and behind
//! each format byte (so that the operations and hints are reached).

use std::ops::Range;

use crate::store::{Bytes, Op, TxHints, decode_tx_hinted, encode_tx_hinted, parse_rows};

/// The input as a transaction, and behind the format bytes 1 and 2.
pub fn transaction(data: &[u8]) {
    for tx in [
        data.to_vec(),
        [&[1u8][..], data].concat(),
        [&[2u8][..], data].concat(),
    ] {
        check(&tx);
    }
}

fn check(tx: &[u8]) {
    let decoded = decode_tx_hinted(tx);
    let (mut rows, mut declared) = (Vec::new(), Vec::new());
    if parse_rows(tx, &mut rows, &mut declared).is_some() {
        let bytes = |r: &Range<usize>| Bytes::new(tx.get(r.clone()).unwrap_or_default());
        let ops: Vec<Op> = rows
            .iter()
            .map(|(table, key, value, version, _)| match value {
                Some(v) => Op::Put {
                    table: *table,
                    key: bytes(key),
                    value: bytes(v),
                    version: *version,
                },
                None => Op::Delete {
                    table: *table,
                    key: bytes(key),
                },
            })
            .collect();
        let kept = (0..rows.len())
            .filter(|i| rows.get(*i).is_some_and(|r| r.4))
            .collect();
        let hints = TxHints { declared, kept };
        assert_eq!(
            decoded,
            Ok((ops, hints)),
            "the in-place reading disagrees with the decoder"
        );
    }
    if let Ok((ops, hints)) = decoded {
        let again = encode_tx_hinted(&ops, &hints).expect("a decoded transaction encodes");
        assert_eq!(
            decode_tx_hinted(&again),
            Ok((ops, hints)),
            "a decoded transaction encodes to another one"
        );
    }
}
