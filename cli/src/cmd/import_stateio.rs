//! `statelog import-stateio`: a grailbio stateio file into a new store directory, epoch by
//! epoch; damage in the file is skipped and reported as `verify` reports it.

use std::path::Path;

use serde_json::json;
use statelog::tools::stateio::import_stateio;

use super::common::{Fail, backend, findings_json, print_findings, spinner};

pub(crate) fn run(src: &Path, dir: &Path, json: bool, strict: bool) -> Result<i32, Fail> {
    if !src.is_file() {
        return Err(Fail(
            format!("{} does not exist or is not a file", src.display()),
            2,
        ));
    }
    let bar = spinner("importing");
    let report = import_stateio(backend(), src, dir)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let damage = report.findings.iter().filter(|f| !f.torn_tail).count();
    let torn = report.findings.len() - damage;
    let updates: u64 = report.epochs.iter().map(|e| e.updates).sum();
    if json {
        let out = json!({
            "clean": report.is_clean(),
            "residue": torn > 0 && report.is_clean(),
            "entries": report.entries,
            "records": report.records,
            "updates": updates,
            "epochs": report.epochs.iter().map(|e| json!({
                "source": e.source,
                "epoch": e.epoch,
                "snapshot": e.snapshot,
                "updates": e.updates,
            })).collect::<Vec<_>>(),
            "findings": findings_json(&report.findings),
        });
        println!("{out}");
    } else {
        print_findings(
            &report.findings,
            "note: torn tail (an unfinished write a crash leaves; not imported)",
            "corruption (skipped)",
        );
        for e in &report.epochs {
            println!(
                "stateio epoch {} -> epoch {}: {}{} updates",
                e.source,
                e.epoch,
                if e.snapshot { "snapshot, " } else { "" },
                e.updates
            );
        }
        println!(
            "imported {} epochs, {} entries ({} updates) from {} into {}: {}",
            report.epochs.len(),
            report.entries,
            updates,
            src.display(),
            dir.display(),
            match (damage, torn) {
                (0, 0) => "clean".to_string(),
                (0, _) => "clean, with a torn tail left out".to_string(),
                (d, _) => format!("{d} findings of damage skipped"),
            }
        );
    }
    Ok(if !report.is_clean() {
        1
    } else if strict && torn > 0 {
        3
    } else {
        0
    })
}
