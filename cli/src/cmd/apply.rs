//! `statelog apply`: JSON lines from standard input, one transaction per line, into bytes tables.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::path::Path;

use statelog::{BytesTable, Durability, Error, Store, StoreOptions};

use statelog_cli::apply_line::{ApplyOp, parse_line};

use super::common::Fail;
use crate::DurabilityArg;

/// The longest line read (a transaction's entry is at most 1 GiB; a longer line is refused
/// before it is read whole).
const MAX_LINE: u64 = 1 << 30;

/// Refuses a directory that holds files but no store (no segment): a mistyped path must not
/// scatter a store among unrelated files.
fn check_target(dir: &Path, allow_foreign: bool) -> Result<(), Fail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(()); // missing: created
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if allow_foreign || names.is_empty() || names.iter().any(|n| n.ends_with(".seg")) {
        return Ok(());
    }
    Err(Fail(
        format!(
            "{} holds {} file(s) but no statelog store (no .seg file); choose an empty or new \
             directory, or pass --allow-foreign-files to create a store among them",
            dir.display(),
            names.len()
        ),
        2,
    ))
}

/// Reads the next line (without its end of line) into `buf`: `Ok(false)` at the end of the
/// input; `Err(reason)` for a line over [`MAX_LINE`] bytes (skipped to its end).
fn next_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Result<bool, String>> {
    buf.clear();
    let n = input.by_ref().take(MAX_LINE + 1).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(Ok(false));
    }
    if buf.last() != Some(&b'\n') && n as u64 > MAX_LINE {
        // Skip the rest of the line without keeping it.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let m = input.by_ref().take(1 << 20).read_until(b'\n', &mut rest)?;
            if m == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
        return Ok(Err(format!("the line is longer than {MAX_LINE} bytes")));
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(Ok(true))
}

pub(crate) fn run(
    dir: &Path,
    keep_going: bool,
    durability: DurabilityArg,
    allow_foreign: bool,
) -> Result<i32, Fail> {
    check_target(dir, allow_foreign)?;
    let store = Store::open(dir, StoreOptions::default())?;
    let mut tables: HashMap<String, BytesTable> = HashMap::new();
    let mut pending: Vec<usize> = Vec::new();
    let mut status = 0;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut buf = Vec::new();
    let mut n = 0usize;
    loop {
        n += 1;
        let read = next_line(&mut input, &mut buf)
            .map_err(|e| Fail(format!("reading standard input at line {n}: {e}"), 2))?;
        let refused = |reason: String| {
            eprintln!("error {n}: {reason}");
        };
        let line = match read {
            Ok(false) => break,
            Ok(true) => std::str::from_utf8(&buf).map_err(|e| format!("not UTF-8: {e}")),
            Err(reason) => Err(reason),
        };
        let parsed = line.and_then(|line| {
            if line.trim().is_empty() {
                Ok(None)
            } else {
                parse_line(line).map(Some)
            }
        });
        let ops = match parsed {
            Ok(None) => continue,
            Ok(Some(ops)) => ops,
            Err(reason) => {
                refused(reason);
                status = 1;
                if keep_going {
                    continue;
                }
                break;
            }
        };
        for op in &ops {
            let name = match op {
                ApplyOp::Put(t, ..) | ApplyOp::Del(t, _) => t,
            };
            if !tables.contains_key(name) {
                match store.bytes_table(name) {
                    Ok(t) => {
                        tables.insert(name.clone(), t);
                    }
                    Err(e @ (Error::IncompatibleSchema { .. } | Error::InvalidArgument(_))) => {
                        refused(e.to_string());
                        status = 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if status == 1 && !keep_going {
            break;
        }
        let d = match durability {
            DurabilityArg::Strong => Durability::Strong,
            DurabilityArg::Buffered => Durability::Buffered,
        };
        let committed = store.write_with(d, |tx| {
            for op in &ops {
                match op {
                    ApplyOp::Put(t, k, v) => {
                        if let Some(t) = tables.get(t) {
                            tx.put_bytes(t, k, v)?;
                        }
                    }
                    ApplyOp::Del(t, k) => {
                        if let Some(t) = tables.get(t) {
                            match tx.delete_bytes(t, k) {
                                Ok(()) | Err(Error::RowNotFound { .. }) => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
            }
            Ok(())
        });
        committed?;
        pending.push(n);
        if matches!(durability, DurabilityArg::Strong) || pending.len() >= 1000 {
            if matches!(durability, DurabilityArg::Buffered) {
                store.sync()?;
            }
            for p in pending.drain(..) {
                writeln!(out, "ok {p}").map_err(|e| Fail(e.to_string(), 2))?;
            }
            out.flush().map_err(|e| Fail(e.to_string(), 2))?;
        }
    }
    store.sync()?;
    for p in pending.drain(..) {
        writeln!(out, "ok {p}").map_err(|e| Fail(e.to_string(), 2))?;
    }
    out.flush().map_err(|e| Fail(e.to_string(), 2))?;
    store.close()?;
    Ok(status)
}
