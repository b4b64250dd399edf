//! Named locks: exclusion within a process and between processes, release on drop and on
//! process death, fencing numbers that grow on every acquisition, and no re-entry through a
//! shared handle (director's advisory lock let two leaders in through a reused session).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use statelog::{Error, NamedLock, Store, StoreOptions};

const CHILD_ENV: &str = "STATELOG_LOCK_CHILD";

/// Runs only as a child process: takes the lock, reports its fence and pid, then holds it
/// until stdin closes or the process is killed.
#[test]
fn child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let lock = NamedLock::try_acquire(&dir, "leader").unwrap();
    println!("held {} {}", lock.fence(), std::process::id());
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn locked(r: Result<NamedLock, Error>) -> Option<u32> {
    match r {
        Err(Error::LockHeld { holder, .. }) => holder,
        other => panic!("expected LockHeld, got {other:?}"),
    }
}

#[test]
fn exclusive_in_process_with_growing_fences() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let a = store.try_lock("leader").unwrap();
    assert_eq!((a.name(), a.fence()), ("leader", 1));
    // The same handle, a clone on another thread, and a lock taken without the store: all
    // refused while `a` is held. No re-entry through a shared handle.
    assert_eq!(locked(store.try_lock("leader")), Some(std::process::id()));
    let clone = store.clone();
    std::thread::spawn(move || assert!(clone.try_lock("leader").is_err()))
        .join()
        .unwrap();
    assert!(NamedLock::try_acquire(dir.path(), "leader").is_err());
    // Other names are independent.
    let other = store.try_lock("compactor").unwrap();
    assert_eq!(other.fence(), 1);
    drop(a);
    let b = store.try_lock("leader").unwrap();
    assert_eq!(b.fence(), 2);
    drop((b, other));
    // Fences survive reopening the store.
    drop(store);
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.try_lock("leader").unwrap().fence(), 3);
    for bad in ["", "..", "a/b", ".x"] {
        assert!(matches!(
            store.try_lock(bad),
            Err(Error::InvalidArgument(_))
        ));
    }
}

/// Many threads race for one lock over one shared handle: exactly one holds it at a time, and
/// every acquisition has a fence larger than all before it.
#[test]
fn racing_threads_never_hold_it_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let holders = std::sync::atomic::AtomicUsize::new(0);
    let fences = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..200 {
                    if let Ok(g) = store.try_lock("leader") {
                        let now = holders.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(now, 0, "two holders at once");
                        fences.lock().unwrap().push(g.fence());
                        holders.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let fences = fences.into_inner().unwrap();
    assert!(!fences.is_empty());
    let mut sorted = fences.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        fences.len(),
        "a fencing number was handed out twice"
    );
    assert_eq!(*sorted.last().unwrap(), fences.len() as u64);
}

/// Starts a process that takes the lock; returns it (the caller waits for it), its fence
/// and its pid.
#[allow(clippy::zombie_processes)] // returned to the caller, which waits for it
fn spawn_holder(dir: &Path) -> (std::process::Child, u64, u32) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            let status = child.wait();
            panic!("the child ended early: {status:?}");
        }
        // The test harness may print "test child_process ... " on the same line first.
        if let Some(rest) = line.trim().split("held ").nth(1) {
            let mut f = rest.split(' ').map(|x| x.parse::<u64>().unwrap());
            return (child, f.next().unwrap(), f.next().unwrap() as u32);
        }
    }
}

/// Two real processes: the second is refused with the holder's pid while the first holds the
/// lock; after the holder is killed with SIGKILL the lock is free and the fence grows.
#[test]
fn exclusive_between_processes_and_released_by_death() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let mine = store.try_lock("leader").unwrap();
    assert_eq!(mine.fence(), 1);
    drop(mine);
    let (mut child, fence, pid) = spawn_holder(dir.path());
    assert_eq!(fence, 2);
    assert_eq!(locked(store.try_lock("leader")), Some(pid));
    child.kill().unwrap();
    child.wait().unwrap();
    let after = store.try_lock("leader").unwrap();
    assert_eq!(after.fence(), 3);
    drop(after);
    // A holder that ends normally releases it too.
    let (mut child, fence, _) = spawn_holder(dir.path());
    assert_eq!(fence, 4);
    drop(child.stdin.take());
    child.wait().unwrap();
    assert_eq!(store.try_lock("leader").unwrap().fence(), 5);
}

/// A damaged fence file is reported with its path, never treated as 0 (which would hand out
/// an old fencing number again).
#[test]
fn damaged_fence_file_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    drop(NamedLock::try_acquire(dir.path(), "leader").unwrap());
    let fence = dir.path().join("locks/leader/FENCE");
    let mut b = std::fs::read(&fence).unwrap();
    b[0] ^= 0x40;
    std::fs::write(&fence, &b).unwrap();
    match NamedLock::try_acquire(dir.path(), "leader") {
        Err(Error::Corrupt { file, .. }) => assert_eq!(file, fence),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    std::fs::write(&fence, &b[..5]).unwrap();
    assert!(matches!(
        NamedLock::try_acquire(dir.path(), "leader"),
        Err(Error::Corrupt { .. })
    ));
}

/// A waiter on another thread takes the lock once its holder drops it, after waiting.
#[test]
fn acquire_waits_for_the_holder_to_drop_it() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let held = store.try_lock("leader").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let other = store.clone();
    let waiter = std::thread::spawn(move || {
        tx.send(()).unwrap();
        let start = Instant::now();
        let lock = other.lock("leader", Duration::from_secs(10)).unwrap();
        (lock.fence(), start.elapsed())
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(held);
    let (fence, waited) = waiter.join().unwrap();
    assert_eq!(fence, 2);
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // Without the store, too.
    let a = NamedLock::acquire(dir.path(), "other", Duration::from_secs(1)).unwrap();
    assert_eq!(a.fence(), 1);
}

/// A wait that runs out is a distinct error naming the lock and this process as the holder;
/// the lock is still free to take afterwards once released.
#[test]
fn acquire_times_out_while_held() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let held = store.try_lock("leader").unwrap();
    let other = store.clone();
    let start = Instant::now();
    let err = std::thread::spawn(move || other.lock("leader", Duration::from_millis(200)))
        .join()
        .unwrap()
        .unwrap_err();
    let waited_here = start.elapsed();
    match &err {
        Error::LockTimeout {
            name,
            waited,
            holder,
        } => {
            assert_eq!(name, "leader");
            assert!(*waited >= Duration::from_millis(200), "{waited:?}");
            assert_eq!(*holder, Some(std::process::id()));
        }
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    assert!(waited_here < Duration::from_secs(5), "{waited_here:?}");
    assert!(err.to_string().contains("retry later"), "{err}");
    // A zero timeout is one try.
    assert!(matches!(
        NamedLock::acquire(dir.path(), "leader", Duration::ZERO),
        Err(Error::LockTimeout { .. })
    ));
    drop(held);
    assert_eq!(
        NamedLock::acquire(dir.path(), "leader", Duration::ZERO)
            .unwrap()
            .fence(),
        2
    );
    // A bad name fails at once, not after the timeout.
    assert!(matches!(
        store.lock("a/b", Duration::from_secs(60)),
        Err(Error::InvalidArgument(_))
    ));
}

/// A waiter in this process takes the lock once the holding process ends (here: its stdin
/// closes), and a wait that runs out names that process.
#[test]
fn acquire_waits_for_another_process() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, fence, pid) = spawn_holder(dir.path());
    assert_eq!(fence, 1);
    match NamedLock::acquire(dir.path(), "leader", Duration::from_millis(100)) {
        Err(Error::LockTimeout { holder, .. }) => assert_eq!(holder, Some(pid)),
        other => panic!("expected LockTimeout, got {other:?}"),
    }
    let path = dir.path().to_path_buf();
    let waiter =
        std::thread::spawn(move || NamedLock::acquire(&path, "leader", Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(50));
    drop(child.stdin.take());
    child.wait().unwrap();
    assert_eq!(waiter.join().unwrap().unwrap().fence(), 2);
}
