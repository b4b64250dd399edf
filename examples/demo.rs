//! The main demo.
//!
//! Part 1, the frame layer: write a log, tear its last write as a crash would, reopen it (the
//! torn tail is cut and saved aside), keep appending, then read everything forward and walk it
//! backwards.
//!
//! Part 2, the epoch layer: a counter kept as snapshots plus updates; restore after a restart,
//! list the retained epochs, read an old one, and rewind to it.
//!
//! Run with `cargo run --release --example demo [DIR]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use statelog::backend::{Backend, FsBackend};
use statelog::epoch::{Durability, EpochLog, Options, Restored};
use statelog::frame::{LogOptions, LogReader, LogWriter, TailPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given = std::env::args().nth(1).map(PathBuf::from);
    let dir = given.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("statelog-demo-{}", std::process::id()))
    });
    let backend = FsBackend::new();
    backend.create_dir_all(&dir)?;
    let path = dir.join("demo.log");
    if backend.exists(&path)? {
        backend.remove(&path)?;
    }

    // 1. Write 1,000 entries of varied sizes, some larger than a 32 KiB block.
    let mut writer = LogWriter::create(&backend, &path, &LogOptions::default())?;
    let mut expected = Vec::new();
    for i in 0..1000u32 {
        let len = if i % 100 == 99 {
            70_000
        } else {
            (i as usize * 37) % 900
        };
        let payload: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
        writer.append(&payload)?;
        expected.push(payload);
        if i % 10 == 9 {
            writer.sync()?; // strong durability every 10 entries
        }
    }
    writer.sync()?;
    println!(
        "wrote {} entries, {} bytes, to {}",
        expected.len(),
        writer.end(),
        path.display()
    );
    drop(writer);

    // 2. A crash in the middle of the last write: its bytes reach the disk only in part.
    let handle = backend.open(&path)?;
    let len = handle.len()?;
    handle.set_len(len - 1234)?;
    println!("simulated a torn write: cut 1234 bytes from the end");

    // 3. Reopen for append: the incomplete entry is cut and its bytes kept aside.
    let (mut writer, cut) = LogWriter::open(&backend, &path, TailPolicy::TolerateTorn)?;
    if let Some(cut) = &cut {
        println!(
            "reopened: cut a torn tail of {} bytes at offset {} (saved to {})",
            cut.len,
            cut.offset,
            cut.saved_to
                .as_ref()
                .map_or("-".into(), |p| p.display().to_string())
        );
    }
    expected.pop();
    writer.append(b"written after recovery")?;
    writer.sync()?;
    expected.push(b"written after recovery".to_vec());
    drop(writer);

    // 4. Read forward (the file is sealed now, so it is memory-mapped) and check every entry.
    let started = std::time::Instant::now();
    let mut reader = LogReader::open(&backend, &path, true)?;
    let mut n = 0;
    while let Some(entry) = reader.next_entry()? {
        assert_eq!(entry.payload, expected[n].as_slice(), "entry {n}");
        n += 1;
    }
    assert_eq!(n, expected.len());
    println!(
        "read back {n} entries, all intact, in {:?}",
        started.elapsed()
    );

    // 5. Walk backwards from the end, as restore does to find the latest snapshot.
    let mut limit = reader.file_len()?;
    let mut last = Vec::new();
    while let Some(pos) = reader.last_entry_before(limit)? {
        last.push(pos.start);
        limit = pos.start;
        if last.len() == 3 {
            break;
        }
    }
    println!("the last three entries start at offsets {last:?}");

    epochs(&dir.join("store"))?;
    if given.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// A counter: the snapshot holds its value, every update adds its amount.
fn counter(r: Restored) -> Result<u64, statelog::Error> {
    let mut value = r.snapshot.map_or(0, |s| le_u64(&s));
    for update in r.updates {
        value += le_u64(&update?);
    }
    Ok(value)
}

fn le_u64(b: &[u8]) -> u64 {
    b.get(..8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
}

fn epochs(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::new());
    let (log, restored) = EpochLog::open(backend.clone(), dir, Options::default())?;
    let mut value = counter(restored)?;
    for round in 1..=5u64 {
        for _ in 0..1000 {
            log.append(&round.to_le_bytes(), Durability::Buffered)?;
            value += round;
        }
        log.sync()?;
        log.snapshot(&value.to_le_bytes())?; // a new epoch starts from the whole state
    }
    log.append(&7u64.to_le_bytes(), Durability::Strong)?;
    value += 7;
    drop(log); // a restart

    let started = std::time::Instant::now();
    let (log, restored) = EpochLog::open(backend, dir, Options::default())?;
    let epoch = restored.epoch.id;
    let restored_value = counter(restored)?;
    assert_eq!(restored_value, value);
    println!(
        "epochs: restored counter {restored_value} at epoch {epoch} in {:?}",
        started.elapsed()
    );
    let retained: Vec<u64> = log.epochs()?.iter().map(|e| e.id).collect();
    println!("epochs: retained {retained:?} (the retention policy keeps the newest 2)");
    let old = retained[1];
    println!(
        "epochs: the counter was {} at the end of epoch {old}",
        counter(log.read_epoch(old)?)?
    );
    let rewound = counter(log.truncate_to(old)?)?;
    println!(
        "epochs: rewound to epoch {old}; the counter is {rewound} again (later epochs kept aside)"
    );
    Ok(())
}
