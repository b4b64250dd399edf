//! `statelog compact`: a snapshot now, and retention.

use std::path::Path;

use statelog::{Store, StoreOptions};

use super::common::{Fail, require_store, spinner};

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub(crate) fn run(dir: &Path) -> Result<i32, Fail> {
    require_store(dir)?;
    let before = dir_size(dir);
    let bar = spinner("restoring and writing a snapshot");
    let store = Store::open(dir, StoreOptions::default())?;
    store.compact()?;
    store.close()?;
    drop(store);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!("{before} bytes before, {} bytes after", dir_size(dir));
    Ok(0)
}
