//! One test per structured error variant a program branches on (issue 21, item 2), each
//! checked by its fields; and transactions that return the application's own error
//! (item 1).

use statelog::{
    CheckpointStatus, Error, Index, NamedLock, Readable, Store, StoreOptions, Table, TableDef,
};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    (dir, store)
}

fn names(store: &Store) -> (Table<String, u32>, Index<String, u32, u32>) {
    let mut def = TableDef::new("names");
    let by_value = def.unique_index("value", |v: &u32| *v);
    (store.table(def).unwrap(), by_value)
}

#[test]
fn a_missing_row_names_its_table_and_key() {
    let (_dir, store) = open();
    let (t, _) = names(&store);
    let err = store.write(|tx| tx.delete(&t, "ghost")).unwrap_err();
    assert!(
        matches!(&err, Error::RowNotFound { table, key } if table == "names" && key.contains("ghost")),
        "{err:?}"
    );
    let raw = store.bytes_table("raw").unwrap();
    let err = store
        .write(|tx| tx.delete_bytes(&raw, b"k\x01"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::RowNotFound { table, key } if table == "raw" && key == "k\\x01"),
        "{err:?}"
    );
    assert!(err.to_string().contains("get"), "says what to do: {err}");
}

#[test]
fn a_missing_table_is_named() {
    let (_dir, store) = open();
    let err = store
        .read()
        .table_named::<String, u32>("nowhere")
        .unwrap_err();
    assert!(
        matches!(&err, Error::TableNotFound { table } if table == "nowhere"),
        "{err:?}"
    );
    assert!(err.to_string().contains("Store::table"), "{err}");
}

#[test]
fn an_index_missing_from_a_state_names_table_and_index() {
    let (_dir, store) = open();
    let (t, by_value) = names(&store);
    store.write(|tx| tx.insert(&t, &"a".into(), &1)).unwrap();
    store.checkpoints().save("c").unwrap();
    // A checkpoint's state has no indexes attached.
    let err = store
        .checkpoints()
        .read("c")
        .unwrap()
        .get_by(&by_value, &1)
        .unwrap_err();
    assert!(
        matches!(&err, Error::IndexNotFound { table, index } if table == "names" && index == "value"),
        "{err:?}"
    );
}

#[test]
fn no_active_checkpoint_is_its_own_error() {
    let (_dir, store) = open();
    store.checkpoints().save("c").unwrap();
    let err = store.checkpoints().active().unwrap_err();
    assert!(matches!(err, Error::NoActiveCheckpoint), "{err:?}");
    assert!(err.to_string().contains("activate"), "{err}");
}

#[test]
fn an_unknown_checkpoint_is_named() {
    let (_dir, store) = open();
    for err in [
        store.checkpoints().activate("v9").unwrap_err(),
        store.checkpoints().get("v9").unwrap_err(),
        store.checkpoints().restore("v9").unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::CheckpointNotFound { name } if name == "v9"),
            "{err:?}"
        );
    }
}

#[test]
fn a_lifecycle_violation_names_the_checkpoint_its_status_and_the_refused_action() {
    let (_dir, store) = open();
    let cps = store.checkpoints();
    cps.save("bad").unwrap();
    cps.fail("bad").unwrap();
    let err = cps.activate("bad").unwrap_err();
    assert!(
        matches!(&err, Error::CheckpointLifecycle { name, status: CheckpointStatus::Failed, action }
            if name == "bad" && action == "activated"),
        "{err:?}"
    );
    let err = cps.restore("bad").unwrap_err();
    assert!(
        matches!(&err, Error::CheckpointLifecycle { status: CheckpointStatus::Failed, action, .. }
            if action == "restored"),
        "{err:?}"
    );
    cps.save("good").unwrap();
    cps.activate("good").unwrap();
    let err = cps.delete("good").unwrap_err();
    assert!(
        matches!(&err, Error::CheckpointLifecycle { name, status: CheckpointStatus::Active, action }
            if name == "good" && action == "deleted"),
        "{err:?}"
    );
}

#[test]
fn an_epoch_not_retained_is_named() {
    let (_dir, store) = open();
    let err = store.rewind_to(999).unwrap_err();
    assert!(
        matches!(err, Error::EpochNotRetained { epoch: 999 }),
        "{err:?}"
    );
}

#[test]
fn a_rewind_that_would_change_a_checkpoint_names_the_epoch_and_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default().keep_epochs(10);
    let store = Store::open(dir.path(), options).unwrap();
    let first = store.read().position().epoch;
    store.compact().unwrap();
    store.checkpoints().save("release").unwrap();
    let err = store.rewind_to(first).unwrap_err();
    assert!(
        matches!(&err, Error::RewindRefused { epoch, checkpoints }
            if *epoch == first && checkpoints == &["release"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("Checkpoints::restore"), "{err}");
}

#[test]
fn a_directory_without_a_store_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = statelog::tools::verify_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, Error::NoStore { dir: d } if d == dir.path()),
        "{err:?}"
    );
}

#[test]
fn a_version_mismatch_names_table_key_and_versions() {
    let (_dir, store) = open();
    let (t, _) = names(&store);
    let k = "route".to_string();
    store.write(|tx| tx.save(&t, &k, &1, 0)).unwrap();
    store.write(|tx| tx.save(&t, &k, &2, 1)).unwrap();
    let err = store.write(|tx| tx.save(&t, &k, &3, 1)).unwrap_err();
    assert!(
        matches!(&err, Error::VersionMismatch { table, key, expected: 1, found: 2 }
            if table == "names" && key.contains("route")),
        "{err:?}"
    );
    assert_eq!(store.read().get(&t, "route").unwrap(), Some(2));
}

#[test]
fn a_held_named_lock_names_the_lock_and_its_holder_with_advice_for_named_locks() {
    let (dir, store) = open();
    let _held = store.try_lock("leader").unwrap();
    for err in [
        store.try_lock("leader").unwrap_err(),
        NamedLock::try_acquire(dir.path(), "leader").unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::LockHeld { name, holder: Some(pid) }
                if name == "leader" && *pid == std::process::id()),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("Store::lock"), "{msg}");
        assert!(
            !msg.contains("open read-only"),
            "directory-lock advice: {msg}"
        );
    }
}

/// The application's error type of the transaction tests.
#[derive(Debug)]
enum AppError {
    Overlap(u32),
    Store(Error),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Store(e)
    }
}

#[test]
fn an_application_error_aborts_the_transaction_and_comes_back_unchanged() {
    let (_dir, store) = open();
    let (t, _) = names(&store);
    store.write(|tx| tx.insert(&t, &"a".into(), &1)).unwrap();
    let seq = store.read().seq();
    let r = store.transact(|tx| {
        tx.insert(&t, &"b".into(), &2)?;
        tx.delete(&t, "a")?;
        Err::<(), _>(AppError::Overlap(7))
    });
    assert!(matches!(r, Err(AppError::Overlap(7))), "{r:?}");
    let snap = store.read();
    assert_eq!(snap.seq(), seq, "nothing was committed");
    assert_eq!(snap.get(&t, "a").unwrap(), Some(1));
    assert_eq!(snap.get(&t, "b").unwrap(), None);
    // The same with another durability.
    let r = store.transact_with(statelog::Durability::Buffered, |tx| {
        tx.insert(&t, &"c".into(), &3)?;
        Err::<(), _>(AppError::Overlap(8))
    });
    assert!(matches!(r, Err(AppError::Overlap(8))), "{r:?}");
    assert_eq!(store.read().get(&t, "c").unwrap(), None);
    // And a success commits and returns the closure's value.
    let n = store
        .transact(|tx| -> Result<usize, AppError> {
            tx.insert(&t, &"d".into(), &4)?;
            Ok(tx.count(&t)?)
        })
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(store.read().get(&t, "d").unwrap(), Some(4));
}

#[test]
fn a_statelog_error_in_an_application_transaction_converts_through_from() {
    let (_dir, store) = open();
    let (t, _) = names(&store);
    store.write(|tx| tx.insert(&t, &"a".into(), &1)).unwrap();
    // From a call in the closure.
    let r = store.transact(|tx| -> Result<(), AppError> {
        tx.insert(&t, &"b".into(), &2)?;
        tx.delete(&t, "missing")?;
        Ok(())
    });
    assert!(
        matches!(&r, Err(AppError::Store(Error::RowNotFound { table, .. })) if table == "names"),
        "{r:?}"
    );
    assert_eq!(store.read().get(&t, "b").unwrap(), None);
    // A unique conflict, through `?` as well.
    let r = store.transact(|tx| -> Result<bool, AppError> { Ok(tx.insert(&t, &"c".into(), &1)?) });
    assert!(
        matches!(&r, Err(AppError::Store(Error::Conflict { index, .. })) if index == "value"),
        "{r:?}"
    );
    assert_eq!(store.read().count(&t).unwrap(), 1);
}

#[test]
fn a_validator_refusal_at_commit_converts_through_from() {
    let (_dir, store) = open();
    let t = store
        .table(
            TableDef::<u32, u32>::new("small").validate(|view, t, _| match view.count(t) {
                Ok(n) if n > 1 => Err("at most one row"),
                _ => Ok(()),
            }),
        )
        .unwrap();
    store.write(|tx| tx.insert(&t, &1, &1)).unwrap();
    let r = store.transact(|tx| -> Result<bool, AppError> { Ok(tx.insert(&t, &2, &2)?) });
    assert!(
        matches!(&r, Err(AppError::Store(Error::Rejected { table, .. })) if table == "small"),
        "{r:?}"
    );
    assert_eq!(store.read().count(&t).unwrap(), 1);
}
