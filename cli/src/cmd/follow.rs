//! `statelog follow`: each transaction a writer in another process commits, as a JSON line.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};
use statelog::{ChangeOp, Follower, FollowerOptions};

use super::common::{Fail, backend, bytes_json, require_store};

pub(crate) fn run(dir: &Path, count: Option<u64>, interval_ms: u64) -> Result<i32, Fail> {
    require_store(dir)?;
    let f = Follower::open_with(backend(), dir, FollowerOptions::default())?;
    let pos = f.read().position();
    eprintln!(
        "following {} from epoch {} seq {}",
        dir.display(),
        pos.epoch,
        pos.seq
    );
    let mut printed = 0u64;
    let mut out = std::io::stdout().lock();
    let write = |out: &mut std::io::StdoutLock<'_>, line: Value| {
        writeln!(out, "{line}").map_err(output_error)
    };
    loop {
        if count.is_some_and(|n| printed >= n) {
            out.flush().map_err(output_error)?;
            return Ok(0);
        }
        // Each poll reads only what was appended since the last one.
        let (report, changes) = f.poll_changes()?;
        if report.reloaded {
            let at = changes.first().map_or(report.pos, |c| statelog::CommitPos {
                epoch: c.pos.epoch,
                seq: c.pos.seq.saturating_sub(1),
            });
            write(
                &mut out,
                json!({"reset": {"epoch": at.epoch, "seq": at.seq}}),
            )?;
        }
        if changes.is_empty() {
            out.flush().map_err(output_error)?;
            std::thread::sleep(std::time::Duration::from_millis(interval_ms));
            continue;
        }
        for c in changes {
            if count.is_some_and(|n| printed >= n) {
                break;
            }
            let ops: Vec<Value> = c
                .ops
                .iter()
                .map(|op| match op {
                    ChangeOp::Put {
                        table, key, value, ..
                    } => json!({"op": "put", "table": table, "key": bytes_json(key), "value": bytes_json(value)}),
                    ChangeOp::Delete { table, key } => {
                        json!({"op": "del", "table": table, "key": bytes_json(key)})
                    }
                })
                .collect();
            write(
                &mut out,
                json!({"epoch": c.pos.epoch, "seq": c.pos.seq, "ops": ops}),
            )?;
            printed += 1;
        }
    }
}

/// A failed write of the output. A reader that stopped early (`statelog follow DIR | head -1`)
/// closed the pipe: that ends the command quietly, as it ends `cat`.
fn output_error(e: std::io::Error) -> Fail {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    Fail(format!("writing the output: {e}"), 2)
}
