//! `statelog repair`: cut a torn tail, or salvage what is readable into a fresh snapshot.

use std::path::{Path, PathBuf};

use statelog::epoch::{EpochLog, Options, RecoveryMode, Retention};
use statelog::{Store, StoreOptions, tools};

use super::common::{Fail, backend, require_store, spinner};

pub(crate) fn run(dir: &Path, dry_run: bool, salvage: bool) -> Result<i32, Fail> {
    require_store(dir)?;
    if dry_run {
        let report = tools::verify(backend(), dir, &mut |_, _| {})?;
        if report.is_pristine() {
            println!("nothing to repair");
            return Ok(0);
        }
        for n in &report.notes {
            println!("{}: would finish or remove {n}", dir.display());
        }
        for f in &report.findings {
            let action = match (f.torn_tail, salvage) {
                (true, _) => "would cut this torn tail (bytes kept in a .broken file)",
                (false, true) => {
                    "would skip the damaged records and write a fresh snapshot of the rest"
                }
                (false, false) => "corruption in the middle: needs --salvage",
            };
            println!("{}:{}: {}: {action}", f.file.display(), f.offset, f.kind);
        }
        return Ok(1);
    }
    if !salvage {
        // Opening as a writer cuts a torn tail, saving its bytes.
        let (log, restored) = EpochLog::open(backend(), dir, Options::default())?;
        match &restored.report.torn_tail {
            Some(cut) => println!(
                "cut {} bytes at offset {} ({} complete entries behind the damage); saved to {}",
                cut.len,
                cut.offset,
                cut.entries_cut,
                cut.saved_to
                    .as_ref()
                    .map_or("-".into(), |p| p.display().to_string())
            ),
            None => println!("no torn tail"),
        }
        for p in &restored.report.removed_temporary {
            println!("removed leftover {}", p.display());
        }
        let mut updates = restored.updates;
        for u in updates.by_ref() {
            if let Err(e) = u {
                println!("corruption in the middle remains: {e}; run with --salvage");
                return Ok(1);
            }
        }
        log.close()?;
        return Ok(0);
    }
    // Salvage: keep copies of the damaged segments, then rebuild the newest state from what
    // is readable and write it as a new snapshot.
    let report = tools::verify(backend(), dir, &mut |_, _| {})?;
    let mut damaged: Vec<&PathBuf> = report.findings.iter().map(|f| &f.file).collect();
    damaged.dedup();
    for f in &damaged {
        let copy = PathBuf::from(format!("{}.broken", f.display()));
        std::fs::copy(f, &copy).map_err(|e| Fail(format!("copying {}: {e}", f.display()), 2))?;
        println!("kept a copy of {} in {}", f.display(), copy.display());
    }
    // One epoch is kept: the fresh snapshot; the damaged files survive as the copies above.
    let options = StoreOptions {
        log: Options {
            recovery: RecoveryMode::Salvage,
            fall_back: true,
            retention: Retention {
                keep_epochs: 1,
                keep_for: None,
            },
            ..Options::default()
        },
        auto_compact: false,
        ..StoreOptions::default()
    };
    let bar = spinner("restoring what is readable");
    let store = Store::open(dir, options)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for l in store.lost() {
        println!("lost {}:{}..{}: {}", l.file.display(), l.from, l.to, l.kind);
    }
    for f in &store.recovery().fell_back {
        println!(
            "gave up the newest epoch ({}); set aside {} bytes",
            f.cause, f.bytes
        );
    }
    store.compact()?;
    store.close()?;
    println!("wrote a fresh snapshot of the salvaged state");
    Ok(0)
}
