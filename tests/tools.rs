//! The file-system shortcuts of the tools: `inspect_dir` and `verify_dir`.

use statelog::{Store, StoreOptions};

#[test]
fn inspect_and_verify_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let t = store.bytes_table("t").unwrap();
    store.write(|tx| tx.put_bytes(&t, b"k", b"v")).unwrap();
    drop(store);
    let seen = statelog::tools::inspect_dir(dir.path()).unwrap();
    assert_eq!(seen.tables.len(), 1);
    assert_eq!(seen.tables[0].rows, 1);
    let report = statelog::tools::verify_dir(dir.path()).unwrap();
    assert!(report.is_pristine(), "{report:?}");
    assert!(report.entries > 0);

    let missing = dir.path().join("missing");
    assert!(statelog::tools::inspect_dir(&missing).is_err());
    assert!(statelog::tools::verify_dir(&missing).is_err());
}
