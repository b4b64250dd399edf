//! Checkpoints: named, fixed states with a status lifecycle, changed in write transactions
//! with their other changes; payloads and creation times; retention keeps them; reading and
//! restoring them, whole or some tables; rewinds that would change one are refused.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use statelog::epoch::{Options, Retention};
use statelog::{
    Changes, CheckpointStatus, Error, Follower, FollowerOptions, Index, Readable, Store,
    StoreOptions, Table, TableDef,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Config {
    name: String,
    replicas: u32,
}

fn options() -> StoreOptions {
    StoreOptions {
        log: Options {
            retention: Retention {
                keep_epochs: 1,
                keep_for: None,
            },
            ..Options::default()
        },
        auto_compact: false,
        ..StoreOptions::default()
    }
}

fn def() -> TableDef<String, Config> {
    def_by_name().0
}

/// The configs table, and its unique index on the name.
fn def_by_name() -> (TableDef<String, Config>, Index<String, Config, String>) {
    let mut def = TableDef::new("configs");
    let by_name = def.unique_index("name", |c: &Config| c.name.clone());
    (def, by_name)
}

fn set(store: &Store, t: &Table<String, Config>, key: &str, replicas: u32) {
    store
        .write(|tx| {
            tx.insert(
                t,
                &key.to_string(),
                &Config {
                    name: format!("{key}-cfg"),
                    replicas,
                },
            )
        })
        .unwrap();
}

fn replicas(r: &impl Readable, t: &Table<String, Config>, key: &str) -> u32 {
    r.get(t, &key.to_string()).unwrap().unwrap().replicas
}

fn status(store: &Store, name: &str) -> CheckpointStatus {
    store.checkpoints().get(name).unwrap().status
}

/// The options, with ten epochs retained (rewinds and old checkpoints need them).
fn keeping_ten_epochs() -> StoreOptions {
    let mut o = options();
    o.log.retention.keep_epochs = 10;
    o
}

/// Every checkpoint's name and status, in the listing's order.
fn statuses(store: &Store) -> Vec<(String, CheckpointStatus)> {
    let list = store.checkpoints().list().unwrap();
    list.into_iter().map(|c| (c.name, c.status)).collect()
}

#[test]
fn a_checkpoint_keeps_its_state_and_its_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    set(&store, &t, "web", 3);
    let v1 = store.checkpoints().save("v1").unwrap();
    assert_eq!(v1.status, CheckpointStatus::Pending);
    // Saving again is a no-op returning the same checkpoint.
    assert_eq!(store.checkpoints().save("v1").unwrap(), v1);

    set(&store, &t, "web", 5);
    // Many compactions with one epoch retained: the named epoch stays.
    for i in 0..5 {
        set(&store, &t, "db", i);
        store.compact().unwrap();
    }
    let epochs: Vec<u64> = store.log().epochs().unwrap().iter().map(|e| e.id).collect();
    assert!(epochs.contains(&v1.epoch), "{epochs:?}");
    let at_v1 = store.checkpoints().read("v1").unwrap();
    let plain: Table<String, Config> = at_v1.table_named("configs").unwrap();
    assert_eq!(replicas(&at_v1, &plain, "web"), 3);
    assert_eq!(at_v1.get(&plain, "db").unwrap().map(|c| c.replicas), None);

    // Still there after a restart.
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(store.checkpoints().get("v1").unwrap(), v1);

    // Once deleted, the next compaction's retention reclaims the epoch.
    store.checkpoints().delete("v1").unwrap();
    store.compact().unwrap();
    let epochs: Vec<u64> = store.log().epochs().unwrap().iter().map(|e| e.id).collect();
    assert_eq!(epochs.len(), 1);
    assert!(matches!(
        store.checkpoints().read("v1"),
        Err(Error::CheckpointNotFound { name }) if name == "v1"
    ));
}

#[test]
fn activation_demotes_the_previous_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    for (i, name) in ["v1", "v2", "v3"].iter().enumerate() {
        set(&store, &t, "web", i as u32);
        store.checkpoints().save(name).unwrap();
    }
    let c = store.checkpoints();
    assert!(matches!(c.active(), Err(Error::NoActiveCheckpoint)));
    c.activate("v1").unwrap();
    c.activate("v2").unwrap();
    assert_eq!(status(&store, "v1"), CheckpointStatus::Inactive);
    assert_eq!(status(&store, "v2"), CheckpointStatus::Active);
    assert_eq!(c.active().unwrap().name, "v2");
    // An unknown target changes nothing.
    assert!(matches!(
        c.activate("v9"),
        Err(Error::CheckpointNotFound { .. })
    ));
    assert_eq!(c.active().unwrap().name, "v2");
    // The active one cannot fail (the ambiguous-activation bug of the seed), nor be deleted.
    assert!(matches!(
        c.fail("v2"),
        Err(Error::CheckpointLifecycle {
            status: CheckpointStatus::Active,
            ..
        })
    ));
    assert!(matches!(
        c.delete("v2"),
        Err(Error::CheckpointLifecycle {
            status: CheckpointStatus::Active,
            ..
        })
    ));
    assert_eq!(c.active().unwrap().name, "v2");
    // A pending one fails, and then cannot be activated.
    c.fail("v3").unwrap();
    assert!(matches!(
        c.activate("v3"),
        Err(Error::CheckpointLifecycle {
            status: CheckpointStatus::Failed,
            ..
        })
    ));
    let active: Vec<_> = c
        .list()
        .unwrap()
        .into_iter()
        .filter(|c| c.status == CheckpointStatus::Active)
        .collect();
    assert_eq!(active.len(), 1);

    // Deleting old checkpoints removes the inactive ones only: the active one, a failed one
    // and a pending one stay, however old (issue 22: a rollout's pending snapshot and the
    // record of a failed one are not garbage).
    c.save("v4").unwrap();
    let later = SystemTime::now() + Duration::from_secs(3600);
    let gone = c.delete_older_than(later).unwrap();
    let names: Vec<_> = gone.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["v1"]);
    assert_eq!(
        statuses(&store),
        [
            ("v2".to_string(), CheckpointStatus::Active),
            ("v3".to_string(), CheckpointStatus::Failed),
            ("v4".to_string(), CheckpointStatus::Pending)
        ]
    );
    // A failed one goes when deleted by name.
    c.delete("v3").unwrap();
    assert_eq!(c.active().unwrap().name, "v2");
}

#[test]
fn restoring_a_checkpoint_moves_forward_to_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    set(&store, &t, "web", 3);
    store.checkpoints().save("good").unwrap();
    store.checkpoints().activate("good").unwrap();
    set(&store, &t, "web", 0); // a bad config
    set(&store, &t, "cache", 1);
    store.checkpoints().save("bad").unwrap();
    store.checkpoints().activate("bad").unwrap();
    let f = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    let before = store.read().position();

    let pos = store.checkpoints().restore("good").unwrap();
    assert!(pos.seq > before.seq, "seq goes on growing");
    assert_eq!(store.read().position(), pos);
    assert_eq!(replicas(&store.read(), &t, "web"), 3);
    assert!(
        store
            .read()
            .get(&t, &"cache".to_string())
            .unwrap()
            .is_none()
    );
    // Unique indexes are rebuilt on the restored state.
    assert_eq!(
        store
            .read()
            .get_by(&def_by_name().1, "web-cfg")
            .unwrap()
            .unwrap()
            .0,
        "web".to_string()
    );
    assert_eq!(store.checkpoints().active().unwrap().name, "good");
    assert_eq!(status(&store, "bad"), CheckpointStatus::Inactive);
    // The history after the checkpoint is still there.
    let at_bad = store.checkpoints().read("bad").unwrap();
    assert_eq!(
        replicas(&at_bad, &at_bad.table_named("configs").unwrap(), "web"),
        0
    );
    // A reader of changes cannot skip over a restore; a follower reloads it.
    assert_eq!(store.changes_since(before, 10).unwrap(), Changes::Reset);
    let r = f.poll().unwrap();
    assert!(r.reloaded);
    assert_eq!(r.pos, pos);
    // Writes go on from the restored state, and it survives a restart.
    set(&store, &t, "web", 4);
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    assert_eq!(replicas(&store.read(), &t, "web"), 4);
    // A failed checkpoint cannot be restored.
    set(&store, &t, "web", 9);
    store.checkpoints().save("try").unwrap();
    store.checkpoints().fail("try").unwrap();
    assert!(matches!(
        store.checkpoints().restore("try"),
        Err(Error::CheckpointLifecycle {
            status: CheckpointStatus::Failed,
            ..
        })
    ));
}

#[test]
fn rewinds_that_would_change_a_checkpoint_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = keeping_ten_epochs();
    let store = Store::open(dir.path(), o.clone()).unwrap();
    let t = store.table(def()).unwrap();
    set(&store, &t, "web", 1);
    let first = store.log().current_epoch();
    store.compact().unwrap();
    set(&store, &t, "web", 2);
    let named = store.checkpoints().save("v2").unwrap();
    set(&store, &t, "web", 3);
    // Cutting the named epoch, or continuing it, is refused; nothing changes.
    for target in [first, named.epoch] {
        let err = store.log().truncate_to(target).unwrap_err();
        assert!(
            matches!(err, Error::RewindRefused { ref checkpoints, .. } if checkpoints == &["v2"]),
            "{err}"
        );
    }
    assert_eq!(replicas(&store.read(), &t, "web"), 3);
    drop(store);
    let store = Store::open(dir.path(), o).unwrap();
    let t = store.table(def()).unwrap();
    assert_eq!(replicas(&store.read(), &t, "web"), 3);
    // After deleting the checkpoint, the rewind is allowed.
    store.checkpoints().delete("v2").unwrap();
    store.log().truncate_to(first).unwrap();
}

#[test]
fn bad_names_and_a_damaged_registry_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    assert!(matches!(
        store.checkpoints().save(""),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        store.checkpoints().save(&"x".repeat(256)),
        Err(Error::InvalidArgument(_))
    ));
    store.checkpoints().save("ok").unwrap();
    drop(store);
    let path = dir.path().join("CHECKPOINTS");
    let mut b = std::fs::read(&path).unwrap();
    let last = b.len() - 6;
    b[last] ^= 0x10;
    std::fs::write(&path, &b).unwrap();
    // Verify reports it, naming the file; inspect refuses to guess.
    let backend = std::sync::Arc::new(statelog::backend::FsBackend::new());
    let report = statelog::tools::verify(backend.clone(), dir.path(), &mut |_, _| {}).unwrap();
    assert_eq!(report.findings.len(), 1, "{report:?}");
    assert!(report.findings[0].file.ends_with("CHECKPOINTS"));
    assert!(statelog::tools::inspect(backend, dir.path()).is_err());
    let store = Store::open(dir.path(), options()).unwrap();
    let err = store.checkpoints().list().unwrap_err();
    assert!(matches!(err, Error::Corrupt { ref file, .. } if file.ends_with("CHECKPOINTS")));
    // Retention fails safe: a compaction deletes nothing and says why.
    assert!(store.retention_error().is_none());
    store.compact().unwrap();
    assert!(store.log().epochs().unwrap().len() >= 2);
    assert!(matches!(
        store.retention_error(),
        Some(Error::Corrupt { .. })
    ));
}

/// Saving a name that exists: a retry while nothing changed returns the checkpoint; after a
/// commit it is refused with `CheckpointExists` and nothing is written; `save_replacing`
/// names the new state instead (never the active checkpoint) (issue 22 item 2).
#[test]
fn saving_an_existing_name_refuses_other_data_or_replaces_when_asked() {
    use statelog::Readable;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let b = store.bytes_table("b").unwrap();
    let c = store.checkpoints();
    store.write(|tx| tx.put_bytes(&b, b"k", b"1")).unwrap();
    let first = c.save("snap").unwrap();
    assert_eq!(c.save("snap").unwrap(), first, "a retry");
    let epoch = store.log().current_epoch();
    store.write(|tx| tx.put_bytes(&b, b"k", b"2")).unwrap();
    match c.save("snap") {
        Err(Error::CheckpointExists { name }) => assert_eq!(name, "snap"),
        other => panic!("saved over another state: {other:?}"),
    }
    assert_eq!(
        store.log().current_epoch(),
        epoch,
        "a refused save wrote a snapshot"
    );
    assert_eq!(c.get("snap").unwrap(), first);
    let replaced = c.save_replacing("snap").unwrap();
    assert_ne!(replaced.epoch, first.epoch);
    assert_eq!(c.list().unwrap().len(), 1);
    assert_eq!(
        c.read("snap").unwrap().get_bytes(&b, b"k").unwrap(),
        Some(b"2".to_vec())
    );
    // The active checkpoint is never replaced.
    c.activate("snap").unwrap();
    store.write(|tx| tx.put_bytes(&b, b"k", b"3")).unwrap();
    assert!(c.save_replacing("snap").is_err());
    assert_eq!(c.get("snap").unwrap().epoch, replaced.epoch);
    // And it all holds after a reopen.
    store.close().unwrap();
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let c = store.checkpoints();
    assert_eq!(c.list().unwrap().len(), 1);
    assert_eq!(c.active().unwrap().epoch, replaced.epoch);
}

/// Checkpoint lifecycle changes in a write transaction commit with its other changes, or
/// not at all; one checkpoint at most is active (issue 22 item 2).
#[test]
fn lifecycle_changes_commit_with_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    let applied = store.apply_log::<String>("applied").unwrap();
    for (i, name) in ["v1", "v2", "v3"].iter().enumerate() {
        set(&store, &t, "web", i as u32);
        store.checkpoints().save(name).unwrap();
    }
    store.checkpoints().activate("v1").unwrap();
    // The activation and the apply-log entry commit together.
    let id = store
        .write(|tx| {
            tx.activate_checkpoint("v2")?;
            assert_eq!(
                tx.checkpoints()?
                    .iter()
                    .map(|c| c.status)
                    .collect::<Vec<_>>(),
                [
                    CheckpointStatus::Inactive,
                    CheckpointStatus::Active,
                    CheckpointStatus::Pending
                ]
            );
            tx.append(&applied, &"v2".to_string())
        })
        .unwrap();
    assert_eq!(id, 1);
    assert_eq!(store.checkpoints().active().unwrap().name, "v2");
    assert_eq!(status(&store, "v1"), CheckpointStatus::Inactive);
    // A transaction that fails changes neither.
    let failed = store.write(|tx| {
        tx.activate_checkpoint("v3")?;
        tx.append(&applied, &"v3".to_string())?;
        Err::<(), _>(Error::InvalidArgument("the rollout failed".into()))
    });
    assert!(failed.is_err());
    assert_eq!(store.checkpoints().active().unwrap().name, "v2");
    assert_eq!(store.read().count(&applied).unwrap(), 1);
    // A refused change leaves the transaction usable: it goes on and commits.
    store
        .write(|tx| {
            assert!(matches!(
                tx.activate_checkpoint("v9"),
                Err(Error::CheckpointNotFound { .. })
            ));
            assert!(matches!(
                tx.fail_checkpoint("v2"),
                Err(Error::CheckpointLifecycle {
                    status: CheckpointStatus::Active,
                    ..
                })
            ));
            tx.fail_checkpoint("v3")?;
            tx.append(&applied, &"v3 failed".to_string()).map(|_| ())
        })
        .unwrap();
    assert_eq!(status(&store, "v3"), CheckpointStatus::Failed);
    assert_eq!(store.read().count(&applied).unwrap(), 2);
    // Activated twice in one transaction: the last one wins, one is active.
    store
        .write(|tx| {
            tx.activate_checkpoint("v1")?;
            tx.activate_checkpoint("v2")
        })
        .unwrap();
    // All of it holds after a reopen.
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    assert_eq!(
        statuses(&store),
        [
            ("v1".to_string(), CheckpointStatus::Inactive),
            ("v2".to_string(), CheckpointStatus::Active),
            ("v3".to_string(), CheckpointStatus::Failed)
        ]
    );
    let applied = store.apply_log::<String>("applied").unwrap();
    assert_eq!(store.read().count(&applied).unwrap(), 2);
    // A follower reads the same statuses (they are rows of the log).
    let f = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    assert!(f.read().tables().iter().any(|t| t.name == "@checkpoints"));
}

/// `restore_tables` brings back the named tables only: an apply log of 7 entries keeps them
/// (issue 22: `restore("v2")` took it back to 1); ids never go back; unique indexes are
/// rebuilt; the whole-store restore still takes everything back.
#[test]
fn restoring_named_tables_keeps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let (d, by_name) = def_by_name();
    let t = store.table(d).unwrap();
    let applied = store.apply_log::<String>("applied").unwrap();
    set(&store, &t, "web", 2);
    store
        .write(|tx| tx.append(&applied, &"v2".to_string()))
        .unwrap();
    store.checkpoints().save("v2").unwrap();
    for i in 3..9u32 {
        set(&store, &t, "web", i);
        set(&store, &t, &format!("extra{i}"), i);
        store
            .write(|tx| tx.append(&applied, &format!("v{i}")))
            .unwrap();
    }
    let later = store.bytes_table("later").unwrap();
    store.write(|tx| tx.put_bytes(&later, b"k", b"v")).unwrap();
    assert_eq!(store.read().count(&applied).unwrap(), 7);
    let before = store.read().position();

    // An unknown table changes nothing.
    assert!(matches!(
        store
            .checkpoints()
            .restore_tables("v2", &["configs", "nope"]),
        Err(Error::TableNotFound { .. })
    ));
    assert!(
        store
            .checkpoints()
            .restore_tables("v2", &["@checkpoints"])
            .is_err()
    );
    assert_eq!(store.read().position(), before);

    let pos = store
        .checkpoints()
        .restore_tables("v2", &["configs", "later"])
        .unwrap();
    assert!(pos.seq > before.seq);
    let r = store.read();
    assert_eq!(replicas(&r, &t, "web"), 2);
    assert_eq!(r.count(&t).unwrap(), 1);
    assert_eq!(r.count(&later).unwrap(), 0, "created after the checkpoint");
    assert_eq!(
        r.count(&applied).unwrap(),
        7,
        "the apply log keeps its entries"
    );
    assert_eq!(
        r.get_by(&by_name, "web-cfg").unwrap().unwrap().0,
        "web".to_string()
    );
    assert!(r.get_by(&by_name, "extra5-cfg").unwrap().is_none());
    // The restore is not an activation.
    assert_eq!(status(&store, "v2"), CheckpointStatus::Pending);
    // Ids go on; the change feed cannot skip the restore.
    assert_eq!(
        store
            .write(|tx| tx.append(&applied, &"restored v2".to_string()))
            .unwrap(),
        8
    );
    assert_eq!(store.changes_since(before, 10).unwrap(), Changes::Reset);
    // It survives a reopen.
    drop(r);
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    let applied = store.apply_log::<String>("applied").unwrap();
    assert_eq!(replicas(&store.read(), &t, "web"), 2);
    assert_eq!(store.read().count(&applied).unwrap(), 8);
    // The whole-store restore takes the apply log back too, ids still going on.
    store.checkpoints().restore("v2").unwrap();
    assert_eq!(store.read().count(&applied).unwrap(), 1);
    assert_eq!(store.checkpoints().active().unwrap().name, "v2");
    assert_eq!(
        store
            .write(|tx| tx.append(&applied, &"again".to_string()))
            .unwrap(),
        9
    );
}

/// A checkpoint has a payload (bytes or a serde value) and a creation time, both kept over a
/// reopen; a retry with another payload is refused (issue 22 item 2).
#[test]
fn payload_and_creation_time_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    let c = store.checkpoints();
    let start = SystemTime::now() - Duration::from_secs(1);
    let saved = c.save_with("v1", b"release 1").unwrap();
    assert_eq!(saved.payload, b"release 1");
    assert_eq!(c.save_with("v1", b"release 1").unwrap(), saved, "a retry");
    assert!(matches!(
        c.save_with("v1", b"release 1b"),
        Err(Error::CheckpointExists { .. })
    ));
    // A retry after lifecycle changes of other checkpoints is still a retry: only their
    // records were written since.
    c.activate("v1").unwrap();
    assert_eq!(
        c.save_with("v1", b"release 1").unwrap().payload,
        b"release 1"
    );
    set(&store, &t, "web", 2);
    let config = Config {
        name: "web".into(),
        replicas: 2,
    };
    c.save_value("v2", &config).unwrap();
    assert_eq!(c.payload_value::<Config>("v2").unwrap(), config);
    assert!(matches!(
        c.payload_value::<Config>("v1"),
        Err(Error::InvalidArgument(_))
    ));
    // Replaced: the new state and payload, a pending status.
    set(&store, &t, "web", 3);
    c.save_replacing_with("v2", b"v2 again").unwrap();
    assert_eq!(c.get("v2").unwrap().payload, b"v2 again");
    // The payload changes in a transaction, the status stays.
    store
        .write(|tx| tx.set_checkpoint_payload("v1", b"release 1, proven"))
        .unwrap();
    assert!(matches!(
        store.write(|tx| tx.set_checkpoint_payload("v9", b"")),
        Err(Error::CheckpointNotFound { .. })
    ));
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    let list = store.checkpoints().list().unwrap();
    let end = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].payload, b"release 1, proven");
    assert_eq!(list[0].status, CheckpointStatus::Active);
    assert_eq!(list[1].payload, b"v2 again");
    for c in &list {
        assert!(start <= c.created && c.created <= end, "{c:?}");
    }
    // The tools (`statelog inspect`) read the same statuses and payloads.
    let inspected = statelog::tools::inspect_dir(dir.path()).unwrap();
    assert_eq!(inspected.checkpoints, list);
    // Deleting removes the record too: a new save of the name starts over.
    store.checkpoints().delete("v2").unwrap();
    let again = store.checkpoints().save("v2").unwrap();
    assert!(again.payload.is_empty());
    assert_eq!(again.status, CheckpointStatus::Pending);
}

/// A directory whose registry holds the statuses (written before checkpoint records
/// existed) reads with the same statuses; new lifecycle changes go to records, and one
/// checkpoint at most is active.
#[test]
fn a_registry_without_records_keeps_its_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let o = keeping_ten_epochs();
    let store = Store::open(dir.path(), o.clone()).unwrap();
    let t = store.table(def()).unwrap();
    // The log's own registry calls write what older versions wrote: pins with statuses.
    set(&store, &t, "web", 1);
    let e1 = store.log().current_epoch();
    store.compact().unwrap();
    let e2 = store.log().current_epoch();
    store.compact().unwrap();
    let log = store.log();
    log.name_epoch("old", e1).unwrap();
    log.name_epoch("older", e2).unwrap();
    log.change_checkpoints(&statelog::epoch::CheckpointChange::Activate("old".into()))
        .unwrap();
    drop(store);
    let store = Store::open(dir.path(), o).unwrap();
    assert!(
        store
            .read()
            .tables()
            .iter()
            .all(|t| t.name != "@checkpoints")
    );
    let c = store.checkpoints();
    assert_eq!(c.active().unwrap().name, "old");
    assert_eq!(status(&store, "older"), CheckpointStatus::Pending);
    // A new checkpoint activated in a transaction demotes the old active one.
    c.save("new").unwrap();
    store.write(|tx| tx.activate_checkpoint("new")).unwrap();
    assert_eq!(c.active().unwrap().name, "new");
    assert_eq!(status(&store, "old"), CheckpointStatus::Inactive);
    // Garbage collection by status: the old one is inactive now, the pending one stays.
    let gone = c
        .delete_older_than(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        gone.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["old"]
    );
    let left: Vec<_> = c.list().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(left, ["older", "new"]);
}

/// A record whose pin is gone (a crash between a delete's two steps, made here with the log's
/// own registry call) is ignored, and deleted by the next lifecycle change.
#[test]
fn a_record_without_its_pin_is_ignored_then_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let c = store.checkpoints();
    c.save_with("gone", b"x").unwrap();
    c.save("kept").unwrap();
    let records = |store: &Store| {
        store
            .read()
            .tables()
            .into_iter()
            .find(|t| t.name == "@checkpoints")
            .map_or(0, |t| t.rows)
    };
    assert_eq!(records(&store), 2);
    store
        .log()
        .change_checkpoints(&statelog::epoch::CheckpointChange::Delete("gone".into()))
        .unwrap();
    let names: Vec<_> = c.list().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["kept"]);
    assert!(matches!(
        c.activate("gone"),
        Err(Error::CheckpointNotFound { .. })
    ));
    c.activate("kept").unwrap();
    assert_eq!(records(&store), 1);
    // Saved again, the name starts over: pending, no payload of the old one.
    let again = c.save("gone").unwrap();
    assert_eq!(again.status, CheckpointStatus::Pending);
    assert!(again.payload.is_empty());
    // No program opens the records as a table of its own.
    assert!(matches!(
        store.table(TableDef::<String, Vec<u8>>::new("@checkpoints")),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        store.bytes_table("@checkpoints"),
        Err(Error::InvalidArgument(_))
    ));
}

/// A restore does not bring back versions a key had (no ABA through a restore): a restored
/// row that differs from the current one gets a version above every version of its table,
/// whole-store and per table; a row the restore removes raises the floor too.
#[test]
fn a_restore_never_brings_back_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    let other = store.bytes_table("other").unwrap();
    set(&store, &t, "a", 1); // version 1
    set(&store, &t, "same", 1); // version 1, unchanged through the restores
    store.checkpoints().save("v1").unwrap();
    set(&store, &t, "a", 2); // 2
    set(&store, &t, "a", 3); // 3
    set(&store, &t, "new", 1); // 1, removed by the restore
    store.checkpoints().restore("v1").unwrap();
    let snap = store.read();
    assert_eq!(replicas(&snap, &t, "a"), 1);
    let (_, version) = snap.get_versioned(&t, "a").unwrap().unwrap();
    assert_eq!(version, 4, "above the 3 the row had");
    assert_eq!(
        snap.version(&t, "same").unwrap(),
        1,
        "the same row keeps its version"
    );
    assert!(snap.get(&t, "new").unwrap().is_none());
    // A writer holding version 3 (or 1, from before the checkpoint) is refused.
    let cfg = |key: &str, r| Config {
        name: format!("{key}-cfg"),
        replicas: r,
    };
    for stale in [1, 3] {
        let r = store.write(|tx| tx.save(&t, &"a".to_string(), &cfg("a", 9), stale));
        assert!(
            matches!(r, Err(Error::VersionMismatch { found: 4, .. })),
            "{r:?}"
        );
    }
    // The removed row's key starts above the table's top too.
    let v = store
        .write(|tx| tx.save(&t, &"new".to_string(), &cfg("new", 1), 0))
        .unwrap();
    assert_eq!(v, 4);
    // Per table: the same, and the other tables keep their rows and versions.
    store.write(|tx| tx.put_bytes(&other, b"k", b"1")).unwrap();
    set(&store, &t, "a", 5); // 5
    store.checkpoints().save("v2").unwrap();
    set(&store, &t, "a", 6); // 6
    store.write(|tx| tx.put_bytes(&other, b"k", b"2")).unwrap();
    store
        .checkpoints()
        .restore_tables("v2", &["configs"])
        .unwrap();
    let snap = store.read();
    assert_eq!(replicas(&snap, &t, "a"), 5);
    assert_eq!(snap.version(&t, "a").unwrap(), 7);
    assert_eq!(
        snap.get_bytes(&other, b"k").unwrap().as_deref(),
        Some(&b"2"[..])
    );
    // And after a reopen.
    drop(snap);
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    assert_eq!(store.read().version(&t, "a").unwrap(), 7);
    store.write(|tx| tx.delete(&t, "a")).unwrap();
    let v = store
        .write(|tx| tx.save(&t, &"a".to_string(), &cfg("a", 1), 0))
        .unwrap();
    assert_eq!(v, 8);
    // The floors are not restored on their own.
    assert!(matches!(
        store.checkpoints().restore_tables("v2", &["@versions"]),
        Err(Error::InvalidArgument(_))
    ));
}

/// A restore with changes of the caller's: committed in the same snapshot, or, when the
/// closure or a validator refuses, nothing restored and nothing written.
#[test]
fn a_restore_commits_the_callers_changes_with_it_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    let log = store.apply_log::<String>("applied").unwrap();
    let guarded = store
        .table(TableDef::<u32, u32>::new("guarded").validate(|view, t, _| {
            match view.get(t, &0).map_err(|e| e.to_string())? {
                Some(v) if v > 10 => Err(format!("{v} is over 10")),
                _ => Ok(()),
            }
        }))
        .unwrap();
    set(&store, &t, "a", 1);
    store.checkpoints().save("v1").unwrap();
    set(&store, &t, "a", 2);
    let epoch = store.log().current_epoch();
    // The closure fails: nothing restored, no snapshot written.
    let r = store.checkpoints().restore_then("v1", |tx| {
        tx.append(&log, &"back".to_string())?;
        Err::<(), _>(Error::InvalidArgument("changed my mind".into()))
    });
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    // A validator refuses: the same.
    let r = store
        .checkpoints()
        .restore_tables_then("v1", &["configs"], |tx| tx.insert(&guarded, &0, &11));
    assert!(matches!(r, Err(Error::Rejected { .. })), "{r:?}");
    assert_eq!(store.log().current_epoch(), epoch);
    assert_eq!(replicas(&store.read(), &t, "a"), 2);
    assert_eq!(store.read().count(&log).unwrap(), 0);
    // Accepted: both, and after a reopen.
    let (pos, id) = store
        .checkpoints()
        .restore_then("v1", |tx| tx.append(&log, &"back to v1".to_string()))
        .unwrap();
    assert_eq!(store.read().position(), pos);
    drop(store);
    let store = Store::open(dir.path(), options()).unwrap();
    let t = store.table(def()).unwrap();
    let log = store.apply_log::<String>("applied").unwrap();
    assert_eq!(replicas(&store.read(), &t, "a"), 1);
    assert_eq!(
        store.read().entry(&log, id).unwrap().as_deref(),
        Some("back to v1")
    );
    assert_eq!(status(&store, "v1"), CheckpointStatus::Active);
}
