//! Helpers shared by the integration tests.
#![allow(dead_code)]

#[cfg(feature = "internals")]
pub mod probe;

use std::path::Path;
use std::sync::Arc;

use statelog::Error;
use statelog::backend::Backend;
use statelog::frame::{EntryPos, LogOptions, LogReader, LogWriter, TailDamage};

/// `len` bytes that do not compress (a xorshift stream from `seed`).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// SplitMix64: a tiny deterministic generator, so a printed seed replays a failure.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// Payload `i` of length `len`: bytes that differ between entries and positions.
pub fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| ((j % 251) as u8) ^ (i as u8).wrapping_mul(31))
        .collect()
}

/// Options with a fixed file id and the given block size.
pub fn opts(block: u32) -> LogOptions {
    LogOptions {
        file_id: 0x5EED_0000_0000_0001,
        block_size: block,
        tag: 0,
    }
}

/// Writes entries of the given sizes to a new log at `path`; `sync_each` syncs after every
/// entry (so later entries carry proof that earlier ones were synced). Returns the payloads
/// and their positions.
pub fn write_log(
    be: &dyn Backend,
    path: &Path,
    block: u32,
    sizes: &[usize],
    sync_each: bool,
) -> (Vec<Vec<u8>>, Vec<EntryPos>) {
    let mut w = LogWriter::create(be, path, &opts(block)).unwrap();
    let mut payloads = Vec::new();
    let mut poss = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let p = payload(i, n);
        poss.push(w.append(&p).unwrap());
        payloads.push(p);
        if sync_each {
            w.sync().unwrap();
        }
    }
    w.sync().unwrap();
    (payloads, poss)
}

/// Everything a reader yields from `bytes`: entries until the end or the first error.
pub struct ReadOut {
    pub entries: Entries,
    pub error: Option<Error>,
    pub tail: Option<TailDamage>,
}

pub fn read_bytes(bytes: Vec<u8>, strict: bool) -> Result<ReadOut, Error> {
    let mut r = LogReader::new(Arc::new(bytes), "mem.log")?;
    r.set_strict(strict);
    Ok(drain(&mut r))
}

pub fn drain(r: &mut LogReader) -> ReadOut {
    let mut entries = Vec::new();
    loop {
        match r.next_entry() {
            Ok(Some(e)) => entries.push((e.pos, e.payload.to_vec())),
            Ok(None) => {
                return ReadOut {
                    entries,
                    error: None,
                    tail: r.tail().copied(),
                };
            }
            Err(e) => {
                return ReadOut {
                    entries,
                    error: Some(e),
                    tail: r.tail().copied(),
                };
            }
        }
    }
}

/// Reads everything, resyncing past corruption; returns the entries and the skipped ranges.
/// Entries with their positions.
pub type Entries = Vec<(EntryPos, Vec<u8>)>;

pub fn read_salvage(r: &mut LogReader) -> (Entries, Vec<(u64, u64)>) {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    loop {
        match r.next_entry() {
            Ok(Some(e)) => entries.push((e.pos, e.payload.to_vec())),
            Ok(None) => return (entries, skipped),
            Err(Error::Corrupt { .. }) => {
                let s = r.resync().unwrap().expect("resync after corruption");
                skipped.push((s.from, s.to));
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}

/// Whether the crash case (workload seed, crash point, crash mode index) should run: all of
/// them, unless `STATELOG_REPLAY=seed:op:mode` names one (as printed by a failure), which then
/// runs alone.
pub fn selected(seed: u64, op: u64, mode: usize) -> bool {
    let Ok(spec) = std::env::var("STATELOG_REPLAY") else {
        return true;
    };
    let parts: Vec<u64> = spec
        .split(':')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    parts == [seed, op, mode as u64]
}

/// Runs `workload` once to count its I/O operations, then once per operation n in each crash
/// mode, crashed after operation n; `check` verifies each recovery (its message names the case
/// and how to replay it). Returns the number of crash points.
#[cfg(feature = "internals")]
pub fn crash_at_every_operation<R>(
    seed: u64,
    workload: impl Fn(&statelog::backend::SimBackend) -> R,
    mut check: impl FnMut(&statelog::backend::SimBackend, &R, &str),
) -> u64 {
    use statelog::backend::{CrashMode, SimBackend};
    let total = {
        let be = SimBackend::new(seed);
        workload(&be);
        be.ops()
    };
    let modes = [
        CrashMode::LoseUnsynced,
        CrashMode::KeepPrefix,
        CrashMode::Sectors,
    ];
    for n in 1..=total {
        for (m, mode) in modes.into_iter().enumerate() {
            if !selected(seed, n, m) {
                continue;
            }
            let sim_seed = seed.wrapping_mul(1_000_003) ^ (n << 4) ^ m as u64;
            let be = SimBackend::new(sim_seed);
            be.crash_after(n);
            let run = workload(&be);
            be.crash(mode);
            let ctx = format!(
                "seed {seed} crash after op {n}/{total} {mode:?} sim seed {sim_seed} (replay: STATELOG_REPLAY={seed}:{n}:{m})"
            );
            check(&be, &run, &ctx);
        }
    }
    total
}

/// Store settings for simulator workloads: 1 KiB blocks, small segments, frequent compaction,
/// `keep_epochs` retained.
pub fn sim_store_options(keep_epochs: usize, segment_bytes: u64) -> statelog::StoreOptions {
    use statelog::epoch::{CompactionPolicy, Options, Retention};
    statelog::StoreOptions {
        log: Options {
            block_size: 1024,
            segment_bytes,
            retention: Retention {
                keep_epochs,
                keep_for: None,
            },
            compaction: CompactionPolicy {
                update_ratio: 2.0,
                min_update_bytes: 1024,
            },
            ..Options::default()
        },
        ..statelog::StoreOptions::default()
    }
}

/// `verify` of a directory a crash left: crash residue only, never damage (issue 26). A
/// directory the crash left without segments (or absent) has nothing to verify.
#[cfg(feature = "internals")]
pub fn assert_verify_clean(be: &statelog::backend::SimBackend, dir: &Path, ctx: &str) {
    check_verify(be, dir, ctx, statelog::tools::verify);
}

/// [`assert_verify_clean`] for a directory of the epoch layer alone (payloads are the test's
/// own bytes).
#[cfg(feature = "internals")]
pub fn assert_verify_epochs_clean(be: &statelog::backend::SimBackend, dir: &Path, ctx: &str) {
    check_verify(be, dir, ctx, statelog::tools::verify_epochs);
}

#[cfg(feature = "internals")]
type VerifyFn = fn(
    Arc<dyn Backend>,
    &Path,
    &mut dyn FnMut(usize, usize),
) -> statelog::Result<statelog::tools::VerifyReport>;

#[cfg(feature = "internals")]
fn check_verify(be: &statelog::backend::SimBackend, dir: &Path, ctx: &str, verify: VerifyFn) {
    let backend: Arc<dyn Backend> = Arc::new(be.clone());
    match verify(backend, dir, &mut |_, _| {}) {
        Ok(r) => assert!(
            r.is_clean(),
            "{ctx}: verify calls the directory a crash left damaged: {:?}",
            r.findings
        ),
        Err(Error::NoStore { .. }) => {}
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("{ctx}: verify could not run on a crashed directory: {e}"),
    }
}
