//! `statelog dump`: rows as JSON lines.

use std::io::Write;
use std::path::Path;

use serde_json::json;
use statelog::epoch::RecoveryMode;
use statelog::{Readable, read_only_snapshot};

use super::common::{Fail, backend, bytes_json, progress_bar, require_dir};

/// The internal table of version floors.
const VERSION_FLOORS: &str = "@versions";

pub(crate) fn run(dir: &Path, table: Option<&str>, epoch: Option<u64>) -> Result<i32, Fail> {
    require_dir(dir)?;
    let (snap, _) = read_only_snapshot(backend(), dir, RecoveryMode::TolerateTornTail, epoch)?;
    let names: Vec<String> = snap
        .tables()
        .into_iter()
        .map(|t| t.name)
        .filter(|n| match table {
            Some(t) => t == n,
            // The version floors are the store's bookkeeping (FORMAT.md §12.1): shown only
            // when named, so that a dump applied to another store holds the program's rows.
            None => n != VERSION_FLOORS,
        })
        .collect();
    if let (Some(t), true) = (table, names.is_empty()) {
        return Err(Fail(format!("no table named {t}"), 2));
    }
    let bar = progress_bar("dumping");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for name in &names {
        for (k, v) in snap.raw_rows(name)? {
            let line = json!({"table": name, "key": bytes_json(k), "value": bytes_json(v)});
            if writeln!(out, "{line}").is_err() {
                return Ok(0); // the reader went away (a closed pipe)
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    let _ = out.flush();
    Ok(0)
}
