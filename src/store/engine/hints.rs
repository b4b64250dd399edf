//! The writer's side of a transaction's hints (FORMAT.md §12.1.1): which puts kept their
//! rows' unique-index keys, and the index names of their tables, declared once in each epoch
//! (and again when they change), since a restore reads one epoch only.

use std::collections::HashMap;

use super::codec::{Op, TxHints};
use super::state::State;

/// The unique-index names each table was declared with in one epoch's transactions, as the
/// writer appended them.
#[derive(Debug, Default)]
pub(super) struct Declarations {
    epoch: u64,
    tables: HashMap<u32, Vec<String>>,
}

impl Declarations {
    /// Notes the declarations of a transaction appended (after [`hints_for`]).
    pub(super) fn note(&mut self, declared: Vec<(u32, Vec<String>)>) {
        self.tables.extend(declared);
    }
}

/// The hints of a transaction of `ops` made on `work` in epoch `epoch`, whose puts at
/// `same_keys` kept their rows' unique-index keys: those positions, and the index names of
/// each of their tables that the epoch's transactions have not declared so far (or declared
/// otherwise), as `done` holds them.
pub(super) fn hints_for(
    done: &mut Declarations,
    epoch: u64,
    work: &State,
    ops: &[Op],
    same_keys: &[usize],
) -> TxHints {
    if same_keys.is_empty() {
        return TxHints::default();
    }
    if done.epoch != epoch {
        // A new epoch: a restore reads none of the declarations before it.
        done.tables.clear();
        done.epoch = epoch;
    }
    let mut declared: Vec<(u32, Vec<String>)> = Vec::new();
    let mut checked: Vec<u32> = Vec::new();
    for &i in same_keys {
        let Some(Op::Put { table, .. }) = ops.get(i) else {
            continue;
        };
        if checked.contains(table) {
            continue;
        }
        checked.push(*table);
        let names = work.tables.get(table).map(|t| t.indexes.as_slice());
        let names = names.unwrap_or_default().iter().map(|ix| &ix.name);
        // Most transactions: declared already, and nothing to copy.
        if !done
            .tables
            .get(table)
            .is_some_and(|d| d.iter().eq(names.clone()))
        {
            declared.push((*table, names.cloned().collect()));
        }
    }
    TxHints {
        declared,
        kept: same_keys.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use crate::store::engine::codec::decode_tx_hinted;
    use crate::{Durability, Store, StoreOptions, TableDef};

    #[derive(Serialize, Deserialize, Clone)]
    struct Row {
        name: String,
        n: u64,
        note: u8,
    }

    /// The hints of the transactions of the store's current epoch, in order.
    fn hints_of_epoch(store: &Store) -> Vec<super::TxHints> {
        let log = store.log();
        let updates = log.read_epoch(log.current_epoch()).expect("epoch").updates;
        let mut out = Vec::new();
        for tx in updates {
            out.push(decode_tx_hinted(&tx.expect("read")).expect("decode").1);
        }
        out
    }

    /// A put that keeps its row's name says so, the table declared in the first one of each
    /// epoch and again when the program registers other indexes; a rename, a new row and a
    /// table without unique indexes say nothing.
    #[test]
    fn declared_once_an_epoch_and_on_change() {
        let dir = tempfile::tempdir().expect("dir");
        let options = StoreOptions {
            auto_compact: false,
            ..StoreOptions::default()
        };
        let store = Store::open(dir.path(), options).expect("open");
        let mut def = TableDef::<u64, Row>::new("t");
        let _ = def.unique_index("name", |r: &Row| r.name.clone());
        let t = store.table(def).expect("table");
        let plain = store
            .table(TableDef::<u64, Row>::new("plain"))
            .expect("table");
        let row = |name: &str, n: u64| Row {
            name: name.into(),
            n,
            note: 0,
        };
        let put = |t: &crate::Table<u64, Row>, r: Row| {
            store
                .write_with(Durability::Buffered, |tx| tx.insert(t, &1, &r))
                .expect("write");
        };
        let name = vec!["name".to_string()];
        store.compact().expect("compact");
        put(&t, row("a", 0)); // new
        put(&t, row("a", 1)); // kept, declared
        put(&t, row("a", 2)); // kept
        put(&t, row("b", 2)); // renamed
        put(&plain, row("a", 0));
        put(&plain, row("a", 1));
        let got = hints_of_epoch(&store);
        let kept = |declared: Vec<(u32, Vec<String>)>| super::TxHints {
            declared,
            kept: vec![0],
        };
        let none = super::TxHints::default();
        let id = t.id;
        assert_eq!(
            got,
            vec![
                none.clone(),
                kept(vec![(id, name.clone())]),
                kept(vec![]),
                none.clone(),
                none.clone(),
                none.clone()
            ]
        );
        // A new epoch: declared again.
        store.compact().expect("compact");
        put(&t, row("b", 3));
        put(&t, row("b", 4));
        assert_eq!(
            hints_of_epoch(&store),
            vec![kept(vec![(id, name.clone())]), kept(vec![])]
        );
        // Other indexes registered: declared with them.
        let mut def = TableDef::<u64, Row>::new("t");
        let _ = def.unique_index("name", |r: &Row| r.name.clone());
        let _ = def.unique_index("n", |r: &Row| r.n.to_string());
        let t = store.table(def).expect("table");
        put(&t, row("c", 4)); // renamed
        put(
            &t,
            Row {
                note: 1,
                ..row("c", 4)
            },
        ); // kept, declared
        let both = vec!["name".to_string(), "n".to_string()];
        let got = hints_of_epoch(&store);
        assert_eq!(got.get(2..), Some(&[none, kept(vec![(id, both)])][..]));
    }
}
