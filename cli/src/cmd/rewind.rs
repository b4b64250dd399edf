//! `statelog rewind`: make a retained epoch current again.

use std::path::Path;

use statelog::epoch::{EpochLog, Options};

use super::common::{Fail, backend, require_store};

pub(crate) fn run(dir: &Path, to: u64) -> Result<i32, Fail> {
    require_store(dir)?;
    let (log, _) = EpochLog::open(backend(), dir, Options::default())?;
    let restored = log.truncate_to(to)?;
    log.close()?;
    println!(
        "epoch {} is current again; later epochs are kept aside as .rewound files",
        restored.epoch.id
    );
    Ok(0)
}
