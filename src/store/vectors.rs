//! FORMAT.md §12 agrees with the code: its vectors are the bytes the store's encoders write,
//! and they decode back.

use std::collections::HashMap;

use super::codec::{
    Bytes, Op, TableKind, TableMeta, decode_tx, encode_key, encode_tx, encode_value,
};
use super::state::State;
use crate::format_doc::{assert_vectors_match, doc_vectors};

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

fn code_vectors() -> HashMap<String, Vec<u8>> {
    let key = Bytes::from(encode_key(&5u64).expect("key"));
    let value = Bytes::from(encode_value(&"hi".to_string()).expect("value"));
    let ops = vec![
        Op::CreateTable(meta()),
        Op::Put {
            table: 0,
            key: key.clone(),
            value,
            version: 1,
        },
        Op::Sequence { table: 0, next: 6 },
        Op::Delete { table: 0, key },
    ];
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
        "state-image".into(),
        state.encode_snapshot().expect("image"),
    );
    out
}

#[test]
fn format_md_store_vectors_match_the_code() {
    let code = code_vectors();
    assert_vectors_match("store vectors", &doc_vectors("store-vector"), &code);
    let tx = code.get("transaction").expect("vector");
    assert_eq!(decode_tx(tx).expect("decode").len(), 4);
    let image = code.get("state-image").expect("vector");
    let state = State::decode_snapshot(image).expect("decode");
    assert_eq!(state.table_by_name("t").map(|t| t.rows.len()), Some(1));
}
