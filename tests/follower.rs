//! Followers and `changes_since`: a read-only mirror that applies the writer's commits as the
//! log grows, across segment rotation, compaction, retention, restarts and rewinds; and the
//! committed changes after a position, or a reset when the log no longer holds them. The last
//! test runs the writer in another process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use statelog::epoch::{CompactionPolicy, Options, Retention};
use statelog::{
    ChangeOp, Changes, CommitPos, Durability, Error, Follower, FollowerOptions, Readable, Store,
    StoreOptions, Table, TableDef,
};

const CHILD_ENV: &str = "STATELOG_FOLLOW_CHILD";
const CHILD_COMMITS: u64 = 3_000;

/// Small segments, frequent compaction, one retained epoch: the follower must cross all of it.
fn churning() -> StoreOptions {
    StoreOptions {
        log: Options {
            segment_bytes: 16 << 10,
            retention: Retention {
                keep_epochs: 1,
                keep_for: None,
            },
            compaction: CompactionPolicy {
                update_ratio: 1.0,
                min_update_bytes: 8 << 10,
            },
            ..Options::default()
        },
        ..StoreOptions::default()
    }
}

/// Compaction only when asked, `keep` epochs retained.
fn manual(keep: usize) -> StoreOptions {
    let mut options = churning();
    options.auto_compact = false;
    options.log.retention.keep_epochs = keep;
    options
}

fn pairs(store: &Store) -> Table<u8, u64> {
    store.table(TableDef::new("pairs")).unwrap()
}

/// One transaction writes both rows of the pair and a payload row: a reader that sees the
/// two rows differ saw half a transaction.
fn commit_pair(store: &Store, t: &Table<u8, u64>, i: u64) {
    store
        .write(|tx| {
            tx.insert(t, &0, &i)?;
            tx.insert(t, &1, &i)?;
            tx.insert(t, &((i % 200) as u8 + 2), &i)?;
            Ok(())
        })
        .unwrap();
}

/// A store with one committed pair (value `first`), and a follower of it.
fn start(
    options: StoreOptions,
    first: u64,
) -> (tempfile::TempDir, Store, Table<u8, u64>, Follower) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options).unwrap();
    let t = pairs(&store);
    commit_pair(&store, &t, first);
    let f = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    (dir, store, t, f)
}

fn follower_pairs(f: &Follower) -> Table<u8, u64> {
    f.read().table_named("pairs").unwrap()
}

fn same_rows(a: &impl Readable, b: &impl Readable, t: &Table<u8, u64>) {
    assert_eq!(a.list(t).unwrap(), b.list(t).unwrap());
}

#[test]
fn follower_applies_new_commits_when_polled() {
    let (_dir, store, t, f) = start(StoreOptions::default(), 1);
    let ft = follower_pairs(&f);
    assert_eq!(f.read().get(&ft, &0).unwrap().unwrap(), 1);
    assert_eq!(f.read().position(), store.read().position());

    for i in 2..=10 {
        commit_pair(&store, &t, i);
    }
    // Nothing moves until a poll.
    assert_eq!(f.read().get(&ft, &0).unwrap().unwrap(), 1);
    let report = f.poll().unwrap();
    assert_eq!(report.applied, 9);
    assert!(!report.reloaded);
    assert_eq!(report.pos, store.read().position());
    same_rows(&f.read(), &store.read(), &t);
    assert_eq!(f.poll().unwrap().applied, 0);
}

#[test]
fn buffered_commits_reach_followers_once_written() {
    let (_dir, store, t, f) = start(StoreOptions::default(), 1);
    store
        .write_with(Durability::Buffered, |tx| tx.insert(&t, &0, &7))
        .unwrap();
    assert_eq!(f.poll().unwrap().applied, 0, "still in the writer's buffer");
    store.sync().unwrap();
    assert_eq!(f.poll().unwrap().applied, 1);
    assert_eq!(f.read().get(&follower_pairs(&f), &0).unwrap().unwrap(), 7);
}

#[test]
fn follower_crosses_rotation_compaction_and_retention() {
    // Compactions at known points (one epoch kept, so retention deletes the old epoch at
    // once): an automatic one runs on its own thread, and whether it takes its snapshot
    // before or after the follower's last poll is up to the OS.
    let (_dir, store, t, f) = start(manual(1), 0);
    let ft = follower_pairs(&f);
    let first_epoch = f.read().position().epoch;
    // Polled often, compacted after a poll: every transaction is followed one by one across
    // rotations, new epochs and deleted segments, never reloaded.
    for i in 1..2_000 {
        commit_pair(&store, &t, i);
        if i % 7 == 0 {
            let r = f.poll().unwrap();
            assert!(!r.reloaded, "reloaded at {i}");
            assert_eq!(f.read().get(&ft, &0).unwrap().unwrap(), i);
            if i % 70 == 0 {
                store.compact().unwrap();
            }
        }
    }
    f.poll().unwrap();
    same_rows(&f.read(), &store.read(), &t);
    assert_eq!(f.read().position(), store.read().position());
    assert!(
        f.read().position().epoch > first_epoch + 5,
        "compactions happened"
    );

    // Fallen behind retention: the follower reloads the newest snapshot, forward.
    let before = f.read().seq();
    for i in 2_000..4_000 {
        commit_pair(&store, &t, i);
        if i % 500 == 0 {
            store.compact().unwrap();
        }
    }
    let r = f.poll().unwrap();
    assert!(r.reloaded);
    assert!(r.pos.seq > before);
    same_rows(&f.read(), &store.read(), &t);
    assert_eq!(f.read().position(), store.read().position());
}

#[test]
fn follower_survives_writer_restart() {
    let (dir, store, _, f) = start(StoreOptions::default(), 1);
    store.close().unwrap();
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let t = pairs(&store);
    commit_pair(&store, &t, 2);
    f.poll().unwrap();
    same_rows(&f.read(), &store.read(), &t);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    email: String,
    age: u32,
}

#[test]
fn follower_keeps_unique_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let def = || {
        let mut def = TableDef::<u32, User>::new("users");
        let by_email = def.unique_index("email", |u| u.email.clone());
        (def, by_email)
    };
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let users = store.table(def().0).unwrap();
    let put = |id: u32, email: &str| {
        store
            .write(|tx| {
                tx.insert(
                    &users,
                    &id,
                    &User {
                        email: email.into(),
                        age: id,
                    },
                )
            })
            .unwrap()
    };
    put(1, "a@x");
    put(2, "b@x");
    let f = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    let (fdef, by_email) = def();
    f.table(fdef).unwrap();
    let id_of = |snap: &statelog::Snapshot, email: &str| {
        snap.get_by(&by_email, email).unwrap().map(|(id, _)| id)
    };
    assert_eq!(id_of(&f.read(), "b@x"), Some(2));

    put(2, "c@x"); // moves the index key
    store.write(|tx| tx.delete(&users, &1).map(|_| ())).unwrap();
    put(3, "a@x"); // reuses a freed key
    f.poll().unwrap();
    let snap = f.read();
    assert_eq!(id_of(&snap, "b@x"), None);
    assert_eq!(id_of(&snap, "c@x"), Some(2));
    assert_eq!(id_of(&snap, "a@x"), Some(3));

    // Rebuilt after a reload (compaction while not polled, one epoch kept).
    store.compact().unwrap();
    store.compact().unwrap();
    put(4, "d@x");
    f.poll().unwrap();
    assert_eq!(id_of(&f.read(), "d@x"), Some(4));

    // A definition that does not match what is stored is refused.
    let wrong = TableDef::<u32, String>::new("users");
    assert!(matches!(
        f.table(wrong),
        Err(Error::IncompatibleSchema { .. })
    ));
}

#[test]
fn follower_goes_back_only_when_the_writer_is_rewound() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let t = pairs(&store);
    commit_pair(&store, &t, 1);
    let old_epoch = store.log().current_epoch();
    store.compact().unwrap();
    commit_pair(&store, &t, 2);
    let f = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    let ft = follower_pairs(&f);
    assert_eq!(f.read().get(&ft, &0).unwrap().unwrap(), 2);
    let pos_before = f.read().position();

    store.log().truncate_to(old_epoch).unwrap();
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let r = f.poll().unwrap();
    assert!(r.reloaded);
    assert_eq!(f.read().get(&ft, &0).unwrap().unwrap(), 1);
    assert_eq!(f.read().position(), store.read().position());
    // Changes after a position of the rewound-away history: reset.
    assert_eq!(store.changes_since(pos_before, 10).unwrap(), Changes::Reset);
}

#[test]
fn changes_since_returns_each_transaction_then_reset_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), manual(2)).unwrap();
    let t = pairs(&store);
    let start = store.read().position();
    for i in 1..=5 {
        commit_pair(&store, &t, i);
    }
    let Changes::Since(all) = store.changes_since(start, 100).unwrap() else {
        panic!("reset");
    };
    assert_eq!(all.len(), 5);
    for (n, change) in all.iter().enumerate() {
        assert_eq!(change.pos.seq, start.seq + 1 + n as u64);
        let decoded: Vec<(u8, Option<u64>)> = change
            .ops
            .iter()
            .map(|op| op.decode(&t).unwrap().unwrap())
            .collect();
        let i = n as u64 + 1;
        assert_eq!(decoded[..2], [(0, Some(i)), (1, Some(i))]);
    }
    // A limit, and continuing from the last change.
    let Changes::Since(two) = store.changes_since(start, 2).unwrap() else {
        panic!("reset");
    };
    assert_eq!(two[..], all[..2]);
    let Changes::Since(rest) = store.changes_since(two[1].pos, 100).unwrap() else {
        panic!("reset");
    };
    assert_eq!(rest[..], all[2..]);
    assert_eq!(
        store.changes_since(store.read().position(), 10).unwrap(),
        Changes::Since(Vec::new())
    );

    // Across a compaction, and from a position at the end of the old epoch.
    let end_of_first = store.read().position();
    store.compact().unwrap();
    store.write(|tx| tx.delete(&t, &1).map(|_| ())).unwrap();
    let Changes::Since(next) = store.changes_since(start, 100).unwrap() else {
        panic!("reset");
    };
    assert_eq!(next.len(), 6);
    assert!(matches!(&next[5].ops[..], [ChangeOp::Delete { table, .. }] if table == "pairs"));
    // Two more compactions: the first epoch is gone. A position inside it resets; one at
    // its very end still continues from the epoch that started there... until that one
    // is gone too.
    store.compact().unwrap();
    assert_eq!(store.changes_since(start, 100).unwrap(), Changes::Reset);
    store.compact().unwrap();
    assert_eq!(
        store.changes_since(end_of_first, 100).unwrap(),
        Changes::Reset
    );
    let now = store.read().position();
    assert_eq!(
        store.changes_since(now, 1).unwrap(),
        Changes::Since(Vec::new())
    );

    // A position ahead of the log is an error, not silence.
    let ahead = CommitPos {
        epoch: now.epoch,
        seq: now.seq + 5,
    };
    assert!(matches!(
        store.changes_since(ahead, 1),
        Err(Error::InvalidArgument(_))
    ));

    // A follower answers the same from the files.
    let f = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    commit_pair(&store, &t, 9);
    assert_eq!(
        f.changes_since(now, 10).unwrap(),
        store.changes_since(now, 10).unwrap()
    );
}

#[test]
fn end_of_epoch_position_continues_in_the_next_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), manual(1)).unwrap();
    let t = pairs(&store);
    commit_pair(&store, &t, 1);
    let end = store.read().position();
    store.compact().unwrap(); // the epoch of `end` is deleted
    commit_pair(&store, &t, 2);
    let Changes::Since(c) = store.changes_since(end, 10).unwrap() else {
        panic!("reset");
    };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].pos, store.read().position());
}

/// Concurrent: a writer thread commits while a watcher applies; readers never see half a
/// transaction or a state older than one they saw.
#[test]
fn watcher_publishes_whole_transactions_in_order() {
    let (_dir, store, t, f) = start(churning(), 0);
    let ft = follower_pairs(&f);
    let watcher = f.watch(Duration::from_millis(1));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, t, done) = (store.clone(), t.clone(), done.clone());
        std::thread::spawn(move || {
            for i in 1..=3_000 {
                commit_pair(&store, &t, i);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut last = 0;
    let mut seen = 0u64;
    loop {
        let finished = done.load(Ordering::SeqCst);
        let snap = f.read();
        let a = snap.get(&ft, &0).unwrap().unwrap();
        assert_eq!(a, snap.get(&ft, &1).unwrap().unwrap(), "half a transaction");
        assert!(a >= last, "went back from {last} to {a}");
        if a != last {
            seen += 1;
        }
        last = a;
        if finished && a == 3_000 {
            break;
        }
        if let Some(e) = watcher.last_error() {
            panic!("poll failed: {e}");
        }
        std::thread::yield_now();
    }
    writer.join().unwrap();
    assert!(seen > 1, "the follower moved while the writer wrote");
    drop(watcher);
    same_rows(&f.read(), &store.read(), &t);
}

/// Runs only as a child process: commits `CHILD_COMMITS` pairs with churning options, printing
/// "done" at the end.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&dir), churning()).unwrap();
    let t = pairs(&store);
    for i in 1..=CHILD_COMMITS {
        commit_pair(&store, &t, i);
    }
    store.close().unwrap();
    println!("done");
}

#[test]
fn follower_of_a_writer_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), churning()).unwrap();
        commit_pair(&store, &pairs(&store), 0);
    }
    let f = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    let ft = follower_pairs(&f);
    let first_epoch = f.read().position().epoch;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Reads to the end (closing the pipe early would fail the child's last writes).
    let reader = std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
            .collect();
        lines.iter().any(|l| l.contains("done"))
    });
    let (mut last, mut moves) = (0, 0);
    while !reader.is_finished() {
        f.poll().unwrap();
        let snap = f.read();
        let a = snap.get(&ft, &0).unwrap().unwrap();
        assert_eq!(a, snap.get(&ft, &1).unwrap().unwrap(), "half a transaction");
        assert!(a >= last, "went back from {last} to {a}");
        moves += u64::from(a != last);
        last = a;
    }
    assert!(reader.join().unwrap(), "the child finished");
    assert!(child.wait().unwrap().success());
    f.poll().unwrap();
    let snap = f.read();
    assert_eq!(snap.get(&ft, &0).unwrap().unwrap(), CHILD_COMMITS);
    assert!(moves > 1, "followed while the other process wrote");
    assert!(
        snap.position().epoch > first_epoch + 5,
        "across compactions"
    );
    let store = Store::open(dir.path(), churning()).unwrap();
    same_rows(&snap, &store.read(), &pairs(&store));
}

/// `poll_changes` returns exactly what `changes_since` reads from the log, read once.
#[test]
fn poll_changes_returns_what_it_applied() {
    let (_dir, store, t, f) = start(StoreOptions::default(), 1);
    let from = f.read().position();
    for i in 2..=4 {
        commit_pair(&store, &t, i);
    }
    let (report, changes) = f.poll_changes().unwrap();
    assert_eq!(report.applied, 3);
    assert!(!report.reloaded);
    assert_eq!(
        Changes::Since(changes),
        store.changes_since(from, 10).unwrap()
    );
    let (report, changes) = f.poll_changes().unwrap();
    assert_eq!(report.applied, 0);
    assert!(changes.is_empty());
}

/// The newest segment file of `dir`.
fn newest_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

/// Flips a byte of the first occurrence of `marker` in `file`; returns its offset.
fn flip_marker(file: &Path, marker: &[u8]) -> u64 {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the marker is in the file");
    bytes[at + 2] ^= 0x40;
    std::fs::write(file, &bytes).unwrap();
    at as u64
}

/// Damage in the middle of the log stops a follower with an error naming the file and an
/// offset at or before the damage, on every poll, until the writer compacts: the follower
/// then reloads the new epoch's snapshot and goes on (issue 22 item 6).
#[test]
fn a_follower_reports_damage_then_reloads_past_it_after_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = manual(2);
    options.log.segment_bytes = 1 << 20;
    let store = Store::open(dir.path(), options).unwrap();
    let t = store.bytes_table("t").unwrap();
    for i in 0..20u32 {
        store
            .write(|tx| tx.put_bytes(&t, &i.to_le_bytes(), b"value"))
            .unwrap();
    }
    let follower = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    store
        .write(|tx| tx.put_bytes(&t, b"damaged", b"MARKER-MARKER-MARKER"))
        .unwrap();
    for i in 20..30u32 {
        store
            .write(|tx| tx.put_bytes(&t, &i.to_le_bytes(), b"value"))
            .unwrap();
    }
    let seg = newest_segment(dir.path());
    let at = flip_marker(&seg, b"MARKER-MARKER-MARKER");
    for _ in 0..2 {
        match follower.poll() {
            Err(Error::Corrupt { file, offset, .. }) => {
                assert_eq!(file, seg);
                assert!(offset <= at, "offset {offset} after the damage at {at}");
            }
            other => panic!("damage not reported: {other:?}"),
        }
    }
    assert_eq!(follower.read().count(&t).unwrap(), 20);
    // The writer's memory has every row: its next epoch starts past the damage.
    store.compact().unwrap();
    let report = follower.poll().unwrap();
    assert!(report.reloaded);
    assert_eq!(report.pos, store.read().position());
    assert_eq!(follower.read().count(&t).unwrap(), 31);
    assert_eq!(
        follower
            .read()
            .get_bytes(&t, b"damaged")
            .unwrap()
            .as_deref(),
        Some(&b"MARKER-MARKER-MARKER"[..])
    );
    // And follows commits again.
    store.write(|tx| tx.put_bytes(&t, b"after", b"x")).unwrap();
    assert_eq!(follower.poll().unwrap().applied, 1);
}

/// A watcher keeps polling after damage (reporting it, backing off) and catches up by itself
/// once the writer compacts.
#[test]
fn a_watcher_reports_damage_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = manual(2);
    options.log.segment_bytes = 1 << 20;
    let store = Store::open(dir.path(), options).unwrap();
    let t = store.bytes_table("t").unwrap();
    store.write(|tx| tx.put_bytes(&t, b"a", b"1")).unwrap();
    let follower = Follower::open(dir.path(), FollowerOptions::default()).unwrap();
    let watcher = follower.watch(Duration::from_millis(2));
    store
        .write(|tx| tx.put_bytes(&t, b"b", b"MARKER-MARKER-MARKER"))
        .unwrap();
    // Damage what the watcher may not have read yet (or has: it is then past it).
    let seg = newest_segment(dir.path());
    flip_marker(&seg, b"MARKER-MARKER-MARKER");
    store.write(|tx| tx.put_bytes(&t, b"c", b"3")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut saw_error = false;
    while std::time::Instant::now() < deadline {
        if let Some(e) = watcher.last_error() {
            assert!(matches!(e, Error::Corrupt { .. }), "{e}");
            saw_error = true;
            break;
        }
        if follower.read().count(&t).unwrap() == 3 {
            break; // read both before the damage
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    store.compact().unwrap();
    store.write(|tx| tx.put_bytes(&t, b"d", b"4")).unwrap();
    while follower.read().count(&t).unwrap() != 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not catch up (error seen: {saw_error})"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    same_rows_bytes(&follower.read(), &store.read(), &t);
}

fn same_rows_bytes(a: &impl Readable, b: &impl Readable, t: &statelog::BytesTable) {
    let ra: Vec<(Vec<u8>, Vec<u8>)> = a.range_bytes(t, ..).unwrap().collect();
    let rb: Vec<(Vec<u8>, Vec<u8>)> = b.range_bytes(t, ..).unwrap().collect();
    assert_eq!(ra, rb);
}

/// A follower's derived view (DbCache's OnReload) is computed from each state it publishes
/// and published with it, across a writer's compaction and a reload; a failing view keeps
/// the last good pair published and is reported (issue 22 item 6).
#[test]
fn a_followers_derived_view_is_published_with_its_state() {
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), manual(2)).unwrap();
    let t = pairs(&store);
    commit_pair(&store, &t, 1);
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    let options = FollowerOptions {
        view: Some(statelog::DerivedView::new(
            move |snap: &statelog::Snapshot| {
                if f.load(Ordering::SeqCst) {
                    return Err(Error::InvalidArgument("view refused".into()));
                }
                let Ok(t) = snap.table_named::<u8, u64>("pairs") else {
                    return Ok(0u64);
                };
                snap.range(&t, ..)?
                    .map(|r| r.map(|(_, v)| v))
                    .sum::<statelog::Result<u64>>()
            },
        )),
    };
    let follower = Follower::open(dir.path(), options).unwrap();
    let t_f = follower_pairs(&follower);
    let check = |f: &Follower| {
        let snap = f.read();
        let sum: u64 = snap.range(&t_f, ..).unwrap().map(|r| r.unwrap().1).sum();
        assert_eq!(
            *snap.view::<u64>().unwrap(),
            sum,
            "a state without its view"
        );
        sum
    };
    check(&follower);
    for i in 2..20 {
        commit_pair(&store, &t, i);
        if i == 10 {
            store.compact().unwrap();
        }
        follower.poll().unwrap();
        check(&follower);
    }
    // A failing view: the last good state and view stay published, and the error is kept.
    let before = check(&follower);
    fail.store(true, Ordering::SeqCst);
    commit_pair(&store, &t, 40);
    follower.poll().unwrap();
    assert_eq!(check(&follower), before);
    assert!(matches!(
        follower.view_error(),
        Some(Error::InvalidArgument(_))
    ));
    // Once the view works again, the next poll publishes the newest state with its view.
    fail.store(false, Ordering::SeqCst);
    commit_pair(&store, &t, 41);
    follower.poll().unwrap();
    assert!(check(&follower) > before);
    same_rows(&follower.read(), &store.read(), &t_f);
}
