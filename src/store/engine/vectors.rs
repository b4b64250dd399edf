//! FORMAT.md §12 agrees with the code: its vectors are the bytes the store's encoders write,
//! and they decode back.

use std::collections::HashMap;

use super::codec::{
    Op, TableKind, TableMeta, TxHints, decode_tx, decode_tx_hinted, encode_key, encode_tx,
    encode_tx_hinted, encode_value,
};
use super::state::{IndexState, State};
use crate::format_doc::{assert_vectors_match, doc_vectors};
use crate::store::rows::{Bytes, Rows};

fn meta() -> TableMeta {
    TableMeta {
        id: 0,
        name: "t".into(),
        kind: TableKind::Typed,
        key_type: "u64".into(),
        value_type: "String".into(),
        version: 1,
    }
}

/// The operations of the vector `transaction`.
fn code_ops() -> Vec<Op> {
    let key = Bytes::from(encode_key(&5u64).expect("key"));
    let value = Bytes::from(encode_value(&"hi".to_string()).expect("value"));
    vec![
        Op::CreateTable(meta()),
        Op::Put {
            table: 0,
            key: key.clone(),
            value,
            version: 1,
        },
        Op::Sequence { table: 0, next: 6 },
        Op::Delete { table: 0, key },
    ]
}

fn code_vectors() -> HashMap<String, Vec<u8>> {
    let ops = code_ops();
    let mut state = State::default();
    for op in ops.iter().take(2) {
        state.apply(op).expect("apply");
    }
    let mut out = HashMap::new();
    out.insert("key-u64-5".into(), encode_key(&5u64).expect("key"));
    out.insert(
        "key-str-u32".into(),
        encode_key(&("ab".to_string(), 7u32)).expect("key"),
    );
    out.insert("transaction".into(), encode_tx(&ops).expect("tx"));
    out.insert(
        "transaction-hinted".into(),
        encode_tx_hinted(&ops, &hinted()).expect("tx"),
    );
    out.insert(
        "state-image".into(),
        state.encode_image_uncompressed().expect("image"),
    );
    // The same with a unique index "u" whose key is the value: "hi" -> key 5.
    let mut indexed = state.clone();
    let mut map = Rows::default();
    map.insert_primary_key(
        Bytes::from(encode_key(&"hi".to_string()).expect("key")),
        Bytes::from(encode_key(&5u64).expect("key")),
    );
    if let Ok(t) = indexed.table_mut(0) {
        t.indexes = vec![IndexState {
            name: "u".into(),
            map,
        }];
    }
    out.insert(
        "state-image-indexed".into(),
        indexed.encode_image_uncompressed().expect("image"),
    );
    out
}

/// The hints of the vector `transaction-hinted`.
fn hinted() -> TxHints {
    TxHints {
        declared: vec![(0, vec!["u".into()])],
        kept: vec![1],
    }
}

#[test]
fn format_md_store_vectors_match_the_code() {
    let code = code_vectors();
    assert_vectors_match("store vectors", &doc_vectors("store-vector"), &code);
    let tx = code.get("transaction").expect("vector");
    assert_eq!(decode_tx(tx).expect("decode").len(), 4);
    let hinted_tx = code.get("transaction-hinted").expect("vector");
    let (ops, hints) = decode_tx_hinted(hinted_tx).expect("decode");
    assert_eq!(decode_tx(hinted_tx), decode_tx(tx));
    assert_eq!((ops.len(), hints), (4, hinted()));
    let image = code.get("state-image").expect("vector");
    let state = State::decode_snapshot(image).expect("decode");
    assert_eq!(state.table_by_name("t").map(|t| t.rows.len()), Some(1));
    let image = code.get("state-image-indexed").expect("vector");
    let state = State::decode_snapshot(image).expect("decode");
    let stored = state
        .table_by_name("t")
        .map(|t| t.stored.clone())
        .unwrap_or_default();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].map.len(), 1);
    // Format 1 images (no indexes), as earlier builds wrote them, are still read.
    let v1 = doc_vectors("store-read-vector");
    let old = v1
        .get("state-image-v1")
        .expect("FORMAT.md has the format 1 image");
    let state = State::decode_snapshot(old).expect("decode");
    let t = state.table_by_name("t").expect("table");
    assert_eq!(t.rows.len(), 1);
    assert!(t.stored.is_empty());
    // Format 3: the state-image body in one LZ4 block of literals only.
    let packed = v1
        .get("state-image-lz4")
        .expect("FORMAT.md has the compressed image");
    let state = State::decode_snapshot(packed).expect("decode");
    let plain = State::decode_snapshot(code.get("state-image").expect("vector")).expect("decode");
    assert_eq!(
        state.encode_image_uncompressed().expect("image"),
        plain.encode_image_uncompressed().expect("image")
    );
    // Format 4: the same block, streamed.
    let streamed = v1
        .get("state-image-v4")
        .expect("FORMAT.md has the format 4 image");
    let state = State::decode_snapshot(streamed).expect("decode");
    assert_eq!(
        state.encode_image_uncompressed().expect("image"),
        plain.encode_image_uncompressed().expect("image")
    );
    assert_eq!(State::snapshot_seq(streamed), Ok(0));
    // What the writer writes (format 4) decodes to the same state.
    let written = plain.encode_snapshot().expect("image");
    assert_eq!(written.first(), Some(&4));
    let back = State::decode_snapshot(&written).expect("decode");
    assert_eq!(
        back.encode_image_uncompressed().expect("image"),
        plain.encode_image_uncompressed().expect("image")
    );
}

/// Hints that break FORMAT.md §12.1.1's rules are refused; a kept bit with no declaration
/// is well formed.
#[test]
fn hints_that_break_the_rules_are_refused() {
    let tx = encode_tx_hinted(&code_ops(), &hinted()).expect("tx");
    let trailer = [0x01, 0x00, 0x01, 0x01, 0x75, 0x01, 0x02];
    let ops = tx.get(..tx.len() - trailer.len()).expect("ops");
    let with = |hints: &[u8]| [ops, hints].concat();
    assert_eq!(with(&trailer), tx);
    assert!(decode_tx_hinted(&with(&[0x00, 0x01, 0x02])).is_ok());
    for bad in [
        &[0x01, 0x00, 0x01, 0x01, 0x75, 0x01, 0x01][..], // a bit on CreateTable
        &[0x01, 0x00, 0x01, 0x01, 0x75, 0x01, 0x12],     // a bit past the 4 ops
        &[0x01, 0x00, 0x01, 0x01, 0x75, 0x02, 0x02, 0x00], // a bitmap too long
        &[0x01, 0x00, 0x01, 0x01, 0x75, 0x00],           // and too short
        &[0x01, 0x01, 0x01, 0x01, 0x75, 0x01, 0x02],     // table 1 has no kept put
        &[0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02],     // table 0 declared twice
        &[0x01, 0x00, 0x01, 0x01, 0x75, 0x01, 0x02, 0x00], // a byte after the hints
        &[0x01, 0x00, 0x01, 0x01, 0xff, 0x01, 0x02],     // a name not UTF-8
        &[],                                             // no hints at all
    ] {
        assert!(decode_tx_hinted(&with(bad)).is_err(), "{bad:02x?}");
    }
}

/// A count or length past the transaction's bytes is refused before the decoder allocates
/// for it (a table name of 741,689,690 bytes in a 20-byte transaction: the fuzz target
/// `transaction` found the decoder allocating it).
#[test]
fn lengths_past_the_bytes_are_refused() {
    let name_too_long = [
        0x01, 0x04, 0x00, 0x3f, 0xfc, 0x5a, 0x49, 0x35, 0x2c, 0x04, 0x2d, 0x03, 0x87, 0x61,
    ];
    assert!(decode_tx(&name_too_long).is_err());
    let ops_too_many = [0x01, 0xfc, 0xff, 0xff, 0xff, 0x0f, 0x03, 0x00, 0x00];
    assert!(decode_tx(&ops_too_many).is_err());
    let names_too_many = [0x02, 0x00, 0xfc, 0xff, 0xff, 0xff, 0x0f, 0x00];
    assert!(decode_tx_hinted(&names_too_many).is_err());
}
