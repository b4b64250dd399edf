//! `statelog apply`: JSON lines from standard input, one transaction per line, into bytes tables.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::Value;
use statelog::{BytesTable, Durability, Error, Store, StoreOptions};

use super::common::Fail;
use crate::DurabilityArg;

/// A key or value in an apply line: a string, or {"hex": "..."}.
fn parse_bytes(v: &Value) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) => {
            let h = o
                .get("hex")
                .and_then(Value::as_str)
                .ok_or("expected a string or {\"hex\": \"...\"}")?;
            if h.len() % 2 != 0 {
                return Err("odd number of hex digits".into());
            }
            (0..h.len() / 2)
                .map(|i| {
                    u8::from_str_radix(h.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
                        .map_err(|_| "not hex".to_string())
                })
                .collect()
        }
        _ => Err("expected a string or {\"hex\": \"...\"}".into()),
    }
}

enum ApplyOp {
    Put(String, Vec<u8>, Vec<u8>),
    Del(String, Vec<u8>),
}

fn parse_line(line: &str) -> Result<Vec<ApplyOp>, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let ops = v
        .get("ops")
        .and_then(Value::as_array)
        .ok_or("expected {\"ops\": [...]}")?;
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let field = |f: &str| op.get(f).ok_or(format!("op {i}: missing \"{f}\""));
            let table = field("table")?
                .as_str()
                .ok_or(format!("op {i}: table must be a string"))?
                .to_string();
            let key = parse_bytes(field("key")?).map_err(|e| format!("op {i}: key: {e}"))?;
            match field("op")?.as_str() {
                Some("put") => {
                    let value =
                        parse_bytes(field("value")?).map_err(|e| format!("op {i}: value: {e}"))?;
                    Ok(ApplyOp::Put(table, key, value))
                }
                Some("del") => Ok(ApplyOp::Del(table, key)),
                _ => Err(format!("op {i}: \"op\" must be \"put\" or \"del\"")),
            }
        })
        .collect()
}

pub(crate) fn run(dir: &Path, keep_going: bool, durability: DurabilityArg) -> Result<i32, Fail> {
    let store = Store::open(dir, StoreOptions::default())?;
    let mut tables: HashMap<String, BytesTable> = HashMap::new();
    let mut pending: Vec<usize> = Vec::new();
    let mut status = 0;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stdin = std::io::stdin();
    for (i, line) in stdin.lock().lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| Fail(format!("reading standard input: {e}"), 2))?;
        if line.trim().is_empty() {
            continue;
        }
        let refused = |reason: String| {
            eprintln!("error {n}: {reason}");
        };
        let ops = match parse_line(&line) {
            Ok(ops) => ops,
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
                                Ok(()) | Err(Error::NotFound(_)) => {}
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
