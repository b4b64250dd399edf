//! `statelog backup`: a consistent, restorable copy of the newest durable state.

use std::path::Path;

use statelog::epoch::{EpochReader, RecoveryMode};
use statelog::read_only_snapshot;

use super::common::{Fail, backend, require_store, spinner};

pub(crate) fn run(dir: &Path, dest: &Path) -> Result<i32, Fail> {
    require_store(dir)?;
    let bar = spinner("copying segments");
    let reader = EpochReader::open(backend(), dir, RecoveryMode::TolerateTornTail)?;
    let copy = reader.copy_to(dest)?;
    // The copy must restore: read it back.
    let (snap, _) = read_only_snapshot(backend(), dest, RecoveryMode::Strict, None)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!(
        "backed up {} segments ({} bytes, {} checkpoints) to {}; it restores to {} transactions",
        copy.segments,
        copy.bytes,
        copy.checkpoints,
        dest.display(),
        snap.seq()
    );
    Ok(0)
}
