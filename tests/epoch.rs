//! Epoch layer on real files.

mod common;

use std::sync::Arc;

use statelog::backend::{Backend, FsBackend};
use statelog::epoch::{Durability, EpochLog, Options};

fn be() -> Arc<dyn Backend> {
    Arc::new(FsBackend::new())
}

fn collect(u: statelog::epoch::Updates) -> Vec<Vec<u8>> {
    u.map(|r| r.unwrap()).collect()
}

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let (log, r) = EpochLog::open(be(), dir.path(), Options::default()).unwrap();
    assert_eq!(r.epoch.id, 0);
    assert!(r.snapshot.is_none());
    log.append(b"u1", Durability::Strong).unwrap();
    log.append(b"u2", Durability::Buffered).unwrap();
    log.snapshot(b"S1").unwrap();
    log.append(b"u3", Durability::Strong).unwrap();
    log.close().unwrap();
    let (log, r) = EpochLog::open(be(), dir.path(), Options::default()).unwrap();
    assert_eq!(r.epoch.id, 1);
    assert_eq!(r.snapshot.as_deref(), Some(&b"S1"[..]));
    assert_eq!(collect(r.updates), vec![b"u3".to_vec()]);
    let e = log.epochs().unwrap();
    assert_eq!(e.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1, 0]);
    let r0 = log.read_epoch(0).unwrap();
    assert_eq!(collect(r0.updates), vec![b"u1".to_vec(), b"u2".to_vec()]);
    let r = log.truncate_to(0).unwrap();
    assert_eq!(collect(r.updates), vec![b"u1".to_vec(), b"u2".to_vec()]);
    log.append(b"u4", Durability::Strong).unwrap();
    drop(log);
    let (_log, r) = EpochLog::open(be(), dir.path(), Options::default()).unwrap();
    assert_eq!(r.epoch.id, 0);
    assert_eq!(
        collect(r.updates),
        vec![b"u1".to_vec(), b"u2".to_vec(), b"u4".to_vec()]
    );
    println!(
        "{:?}",
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
}
