//! `statelog verify`: every checksum and structural rule of every file, read-only.

use std::path::Path;

use serde_json::json;
use statelog::tools;

use super::common::{Fail, backend, findings_json, print_findings, progress_bar, require_dir};

pub(crate) fn run(dir: &Path, json: bool, strict: bool) -> Result<i32, Fail> {
    require_dir(dir)?;
    let bar = progress_bar("verifying");
    let mut progress = |done: usize, total: usize| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    };
    let report = tools::verify(backend(), dir, &mut progress)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json {
        let out = json!({
            "clean": report.is_clean(),
            "residue": !report.is_pristine() && report.is_clean(),
            "notes": report.notes,
            "files": report.files,
            "entries": report.entries,
            "writer_running": report.writer_running,
            "findings": findings_json(&report.findings),
        });
        println!("{out}");
    } else {
        print_findings(
            &report.findings,
            "note: torn tail (an unfinished write a crash leaves; a writer cuts it on open)",
            "corruption",
        );
        for n in &report.notes {
            println!("{}: note: {n}", dir.display());
        }
        let damage = report.findings.iter().filter(|f| !f.torn_tail).count();
        let residue = report.findings.len() - damage + report.notes.len();
        println!(
            "{} files, {} entries checked: {}",
            report.files,
            report.entries,
            match (damage, residue) {
                (0, 0) => "clean".to_string(),
                (0, r) => format!("clean, with {r} notes of crash residue the next open handles"),
                (d, _) => format!("{d} findings of damage"),
            }
        );
    }
    Ok(if !report.is_clean() {
        1
    } else if strict && !report.is_pristine() {
        3
    } else {
        0
    })
}
