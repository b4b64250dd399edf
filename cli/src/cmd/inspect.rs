//! `statelog inspect`: what is on disk (segments, epochs, tables, checkpoints, lock holder).

use std::path::Path;

use serde_json::json;
use statelog::tools;

use super::common::{Fail, backend, require_dir};

fn time_of(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A checkpoint's payload as text: quoted UTF-8, or `0x` and hex digits.
fn payload_text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
        _ => format!("0x{}", hex(payload)),
    }
}

/// Bytes as hex digits.
fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn run(dir: &Path, json: bool) -> Result<i32, Fail> {
    require_dir(dir)?;
    let i = tools::inspect(backend(), dir)?;
    if json {
        let out = json!({
            "format_version": i.format_version,
            "segments": i.segments.iter().map(|s| json!({"name": s.name, "size": s.size, "sealed": s.sealed})).collect::<Vec<_>>(),
            "epochs": i.epochs.iter().map(|e| json!({"id": e.id, "created_unix_s": time_of(e.created), "size": e.size, "segment": e.segment})).collect::<Vec<_>>(),
            "tables": i.tables.iter().map(|t| json!({"name": t.name, "kind": if t.typed {"typed"} else {"bytes"}, "key_type": t.key_type, "value_type": t.value_type, "schema_version": t.version, "rows": t.rows})).collect::<Vec<_>>(),
            "durable_position": {"segment": i.durable_end.0, "offset": i.durable_end.1},
            "lock_holder_pid": i.lock_holder,
            "checkpoints": i.checkpoints.iter().map(|c| json!({"name": c.name, "epoch": c.epoch, "status": format!("{:?}", c.status).to_lowercase(), "created_unix_s": time_of(c.created), "payload_utf8": std::str::from_utf8(&c.payload).ok(), "payload_hex": hex(&c.payload)})).collect::<Vec<_>>(),
            "other_files": i.other_files,
            "needs_recovery": i.needs_recovery,
        });
        println!("{out}");
        return Ok(0);
    }
    println!("format version {}", i.format_version);
    println!("segments:");
    for s in &i.segments {
        println!(
            "  {}  {} bytes  {}",
            s.name,
            s.size,
            if s.sealed { "sealed" } else { "active" }
        );
    }
    println!("epochs (newest first):");
    for e in &i.epochs {
        println!(
            "  epoch {}  created {} (unix s)  {} bytes  from segment {}",
            e.id,
            time_of(e.created),
            e.size,
            e.segment
        );
    }
    println!("tables:");
    for t in &i.tables {
        let kind = if t.typed {
            format!("typed {} -> {}", t.key_type, t.value_type)
        } else {
            "bytes".into()
        };
        println!(
            "  {}  {}  schema v{}  {} rows",
            t.name, kind, t.version, t.rows
        );
    }
    println!(
        "durable position: segment {} offset {}",
        i.durable_end.0, i.durable_end.1
    );
    match i.lock_holder {
        Some(pid) => println!("locked by process {pid}"),
        None => println!("not locked"),
    }
    if !i.checkpoints.is_empty() {
        println!("checkpoints:");
    }
    for c in &i.checkpoints {
        let payload = if c.payload.is_empty() {
            String::new()
        } else {
            format!("  payload {}", payload_text(&c.payload))
        };
        println!(
            "  {}  epoch {}  {}  saved {} (unix s){payload}",
            c.name,
            c.epoch,
            format!("{:?}", c.status).to_lowercase(),
            time_of(c.created)
        );
    }
    for f in &i.other_files {
        println!("other file: {f}");
    }
    for n in &i.needs_recovery {
        println!("needs recovery on open: {n}");
    }
    Ok(0)
}
