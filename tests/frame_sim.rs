//! Frame layer under the simulator: a crash at every operation of a 200-entry workload, in
//! every crash mode, recovers every synced entry; injected faults poison the writer and never
//! let it acknowledge what it could not make durable. Seeds are printed on failure.

mod common;

use std::path::{Path, PathBuf};

use common::{Rng, drain, opts, payload};
use statelog::Error;
use statelog::backend::{Backend, CrashMode, Fault, FaultKind, OpKind, SimBackend};
use statelog::frame::{LogReader, LogWriter, TailPolicy};

const MODES: [CrashMode; 3] = [
    CrashMode::LoseUnsynced,
    CrashMode::KeepPrefix,
    CrashMode::Sectors,
];

fn dir() -> PathBuf {
    PathBuf::from("/db")
}

fn log_path() -> PathBuf {
    dir().join("000001.log")
}

/// The workload: 200 entries of varied sizes (1 KiB blocks, so many span blocks), a sync
/// after every 1 to 5 entries. Returns the payloads and how many were acknowledged durable
/// (appended before a successful sync) when it stopped, by finishing or by an error.
fn workload(be: &SimBackend, seed: u64, write_buffer: usize) -> (Vec<Vec<u8>>, usize) {
    let mut rng = Rng(seed);
    let mut payloads = Vec::new();
    let mut acked = 0;
    let mut run = |payloads: &mut Vec<Vec<u8>>, acked: &mut usize| -> Result<(), Error> {
        be.create_dir_all(&dir()).map_err(|e| Error::Io {
            path: dir(),
            source: e,
        })?;
        let mut w = LogWriter::create(be, &log_path(), &opts(1024))?;
        w.set_write_buffer(write_buffer);
        let mut next_sync = 1 + rng.below(5);
        for i in 0..200 {
            let len = match rng.below(8) {
                0 => rng.below(5000) as usize,
                _ => rng.below(200) as usize,
            };
            let p = payload(i, len);
            payloads.push(p.clone());
            w.append(&p)?;
            next_sync -= 1;
            if next_sync == 0 {
                w.sync()?;
                *acked = payloads.len();
                next_sync = 1 + rng.below(5);
            }
        }
        w.sync()?;
        *acked = payloads.len();
        Ok(())
    };
    let _ = run(&mut payloads, &mut acked);
    (payloads, acked)
}

/// Reopens the log after a crash and checks the recovered entries: a prefix of what was
/// appended that holds every acknowledged entry; then appending works again.
/// What a recovery found, for checking that the crash loops reach the interesting cases.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    recoveries: u64,
    torn_cut: u64,
    zero_cut: u64,
    beyond_acked: u64,
}

fn check_recovery(be: &SimBackend, payloads: &[Vec<u8>], acked: usize, ctx: &str) -> Seen {
    let mut seen = Seen::default();
    if acked == 0 && !be.exists(&log_path()).unwrap() {
        return seen; // the crash came before the file was durably created
    }
    let (mut w, cut) = match LogWriter::open(be, &log_path(), TailPolicy::TolerateTorn) {
        Ok(x) => x,
        // A crash before the header was synced leaves a file with no header; nothing had been
        // acknowledged then.
        Err(Error::Corrupt { offset: 0, .. }) if acked == 0 => return seen,
        Err(e) => panic!("{ctx}: reopen failed: {e}"),
    };
    seen.recoveries = 1;
    match cut {
        Some(c) if c.zeroed => seen.zero_cut = 1,
        Some(c) => {
            assert!(!c.corrupt, "{ctx}");
            seen.torn_cut = 1;
        }
        None => {}
    }
    w.append(b"after crash").unwrap();
    w.sync().unwrap();
    drop(w);
    let out = drain(&mut LogReader::open(be, &log_path(), false).unwrap());
    assert!(
        out.error.is_none() && out.tail.is_none(),
        "{ctx}: {:?}",
        out.error
    );
    let got: Vec<Vec<u8>> = out.entries.into_iter().map(|(_, p)| p).collect();
    let (last, recovered) = got.split_last().unwrap();
    assert_eq!(last, b"after crash", "{ctx}");
    assert!(
        recovered.len() >= acked,
        "{ctx}: lost acknowledged entries ({} < {acked})",
        recovered.len()
    );
    assert!(recovered.len() <= payloads.len(), "{ctx}");
    for (i, p) in recovered.iter().enumerate() {
        assert_eq!(p, &payloads[i], "{ctx}: entry {i} differs");
    }
    seen.beyond_acked = u64::from(recovered.len() > acked);
    seen
}

fn crash_everywhere(write_buffer: usize, seed: u64) {
    let mut seen = Seen::default();
    let total = common::crash_at_every_operation(
        seed,
        |be| workload(be, seed, write_buffer),
        |be, (payloads, acked), ctx| {
            let s = check_recovery(
                be,
                payloads,
                *acked,
                &format!("buffer {write_buffer}: {ctx}"),
            );
            seen.recoveries += s.recoveries;
            seen.torn_cut += s.torn_cut;
            seen.zero_cut += s.zero_cut;
            seen.beyond_acked += s.beyond_acked;
        },
    );
    assert!(total > 50, "workload too small: {total} ops");
    eprintln!("seed {seed} buffer {write_buffer}: {total} crash points x 3 modes: {seen:?}");
    assert!(seen.recoveries > total, "{seen:?}");
    assert!(
        seen.torn_cut > 0 && seen.zero_cut > 0 && seen.beyond_acked > 0,
        "{seen:?}"
    );
}

#[test]
fn crash_at_every_operation_with_buffered_writes() {
    for seed in 11..15 {
        crash_everywhere(statelog::frame::DEFAULT_WRITE_BUFFER, seed);
    }
}

#[test]
fn crash_at_every_operation_with_a_write_per_entry() {
    for seed in 21..25 {
        crash_everywhere(0, seed);
    }
}

#[test]
fn crash_after_the_workload_keeps_everything() {
    for mode in MODES {
        let be = SimBackend::new(5);
        let (payloads, acked) = workload(&be, 5, 0);
        assert_eq!(acked, 200);
        be.crash(mode);
        check_recovery(&be, &payloads, acked, &format!("{mode:?}"));
    }
}

/// Runs the workload with one fault injected; checks the first error poisons the writer
/// (every later call refused) and that a reopen (after a power loss, if `crash` says so)
/// recovers every acknowledged entry. Returns whether the fault fired.
fn with_fault(fault: Fault, write_buffer: usize, crash: Option<CrashMode>) -> bool {
    let be = SimBackend::new(99);
    be.inject(fault);
    let mut rng = Rng(1);
    be.create_dir_all(&dir()).unwrap();
    let mut payloads = Vec::new();
    let mut acked = 0;
    let mut fired = false;
    match LogWriter::create(&be, &log_path(), &opts(1024)) {
        Err(_) => fired = true,
        Ok(mut w) => {
            w.set_write_buffer(write_buffer);
            for i in 0..100 {
                let p = payload(i, rng.below(3000) as usize);
                let r = w.append(&p).and_then(|_| {
                    if i % 3 == 2 {
                        w.sync().map(|_| ())
                    } else {
                        Ok(())
                    }
                });
                payloads.push(p);
                match r {
                    Ok(()) if i % 3 == 2 => acked = payloads.len(),
                    Ok(()) => {}
                    Err(e) => {
                        assert!(matches!(e, Error::Io { .. }), "{fault:?}: {e}");
                        fired = true;
                        for _ in 0..2 {
                            assert!(
                                matches!(w.append(b"x"), Err(Error::Poisoned { .. })),
                                "{fault:?}"
                            );
                            assert!(matches!(w.sync(), Err(Error::Poisoned { .. })), "{fault:?}");
                        }
                        break;
                    }
                }
            }
        }
    }
    be.clear_faults();
    if let Some(mode) = crash {
        be.crash(mode);
    }
    check_recovery(
        &be,
        &payloads,
        acked,
        &format!("{fault:?} buffer {write_buffer} crash {crash:?}"),
    );
    fired
}

#[test]
fn faults_poison_the_writer_and_lose_nothing_acknowledged() {
    for kind in [FaultKind::Eio, FaultKind::Enospc, FaultKind::ShortWrite] {
        for op in [OpKind::Write, OpKind::Sync] {
            for buffer in [0, statelog::frame::DEFAULT_WRITE_BUFFER] {
                let mut fired_any = false;
                for nth in 1..=40 {
                    for crash in [
                        None,
                        Some(CrashMode::LoseUnsynced),
                        Some(CrashMode::Sectors),
                    ] {
                        fired_any |= with_fault(Fault { op, nth, kind }, buffer, crash);
                    }
                }
                assert!(fired_any, "{kind:?} on {op:?} never fired");
            }
        }
    }
}

#[test]
fn a_full_disk_poisons_and_the_log_reopens_once_space_is_freed() {
    let be = SimBackend::new(3);
    be.create_dir_all(&dir()).unwrap();
    let mut w = LogWriter::create(&be, &log_path(), &opts(1024)).unwrap();
    w.append(b"first").unwrap();
    w.sync().unwrap();
    be.set_capacity(Some(4096));
    let err = (0..100).find_map(|i| w.append(&payload(i, 500)).and_then(|_| w.sync()).err());
    assert!(matches!(err, Some(Error::Io { .. })), "{err:?}");
    assert!(matches!(w.append(b"x"), Err(Error::Poisoned { .. })));
    drop(w);
    // Still readable while full.
    let out = drain(&mut LogReader::open(&be, &log_path(), false).unwrap());
    assert_eq!(out.entries[0].1, b"first");
    be.set_capacity(None);
    let (mut w, _) = LogWriter::open(&be, &log_path(), TailPolicy::TolerateTorn).unwrap();
    w.append(b"after").unwrap();
    w.sync().unwrap();
}

#[test]
fn read_errors_are_io_errors_not_corruption() {
    let be = SimBackend::new(4);
    be.create_dir_all(&dir()).unwrap();
    let mut w = LogWriter::create(&be, &log_path(), &opts(1024)).unwrap();
    for i in 0..10 {
        w.append(&payload(i, 2000)).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let mut r = LogReader::open(&be, &log_path(), false).unwrap();
    be.inject(Fault {
        op: OpKind::Read,
        nth: 2,
        kind: FaultKind::Eio,
    });
    let mut saw_io = false;
    for _ in 0..20 {
        match r.next_entry() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(Error::Io { path, .. }) => {
                assert_eq!(path, Path::new("/db/000001.log"));
                saw_io = true;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(saw_io);
}
