//! The `statelog` command: a thin layer over the library's tools (`statelog::tools`,
//! `read_only_snapshot`, `Store`, `EpochLog`).
//!
//! Exit status: 0 success; 1 damage found (verify) or a line refused (apply); 3 crash residue
//! only (`verify --strict`); 2 the command
//! could not run (missing directory, not a statelog directory, locked, incompatible version,
//! I/O error).

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use statelog::backend::{Backend, FsBackend};
use statelog::epoch::{EpochLog, EpochReader, Options, RecoveryMode, Retention};
use statelog::{
    BytesTable, ChangeOp, Durability, Error, Follower, FollowerOptions, Readable, Store,
    StoreOptions, read_only_snapshot, tools,
};

const EXAMPLES: &str = "Examples:
  statelog inspect ./state             what is on disk: segments, epochs, tables, lock holder
  statelog verify ./state --json       check every checksum; exit 1 on damage (crash residue: 0)
  statelog dump ./state --table users  rows as JSON lines
  echo '{\"ops\":[{\"op\":\"put\",\"table\":\"t\",\"key\":\"k\",\"value\":\"v\"}]}' | statelog apply ./state
  statelog repair ./state --dry-run    what a repair would cut
  statelog compact ./state             snapshot now, reclaim disk
  statelog rewind ./state --to 3       make retained epoch 3 current again
  statelog backup ./state ./copy       consistent copy, also while a writer runs
  statelog follow ./state              print each new transaction as a writer commits it";

#[derive(Parser)]
#[command(name = "statelog", version, about = "Inspect, verify, dump, load, repair, compact and rewind statelog store directories.", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Format version, segments, epochs, tables, durable position, lock holder.
    #[command(after_help = "Example: statelog inspect ./state --json")]
    Inspect {
        /// The store directory.
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check every checksum and structural rule of every file (read-only, safe beside a
    /// writer). Exit 0: clean (crash residue, which the next open cuts or finishes, is listed as
    /// notes); 1: damage found; 3: only crash residue, with --strict; 2: cannot run.
    #[command(after_help = "Example: statelog verify ./state && echo clean")]
    Verify {
        /// The store directory.
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Also exit 3 on crash residue (a torn tail, an unfinished intent, a temporary
        /// file), which is otherwise clean (exit 0): the next open cuts or finishes it.
        #[arg(long)]
        strict: bool,
    },
    /// Rows as JSON lines, tables in name order, rows in key order: {"table","key","value"}, key
    /// and value as strings when UTF-8, else {"hex": "..."}.
    #[command(after_help = "Example: statelog dump ./state --table users --epoch 3 > users.jsonl")]
    Dump {
        /// The store directory.
        dir: PathBuf,
        /// Only this table.
        #[arg(long)]
        table: Option<String>,
        /// A retained older epoch instead of the newest.
        #[arg(long)]
        epoch: Option<u64>,
    },
    /// Apply JSON lines from standard input, one transaction per line, into bytes tables
    /// (created on first use); prints `ok N` once line N is durable.
    #[command(after_help = "Example: statelog apply ./state < changes.jsonl
Line format: {\"ops\":[{\"op\":\"put\",\"table\":\"t\",\"key\":\"k\",\"value\":\"v\"},{\"op\":\"del\",\"table\":\"t\",\"key\":{\"hex\":\"00ff\"}}]}")]
    Apply {
        /// The store directory (created if missing).
        dir: PathBuf,
        /// Skip a malformed line instead of stopping.
        #[arg(long)]
        keep_going: bool,
        /// When lines become durable.
        #[arg(long, value_enum, default_value_t = DurabilityArg::Strong)]
        durability: DurabilityArg,
    },
    /// Cut a torn tail, or with --salvage rebuild the newest state skipping damaged records;
    /// the cut or replaced bytes are kept in `.broken` files.
    #[command(after_help = "Example: statelog repair ./state --dry-run")]
    Repair {
        /// The store directory.
        dir: PathBuf,
        /// Say what would be done, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Skip damaged records in the middle too, and write a fresh snapshot of what remains.
        #[arg(long)]
        salvage: bool,
    },
    /// Write a snapshot now and apply retention; prints bytes before and after.
    #[command(after_help = "Example: statelog compact ./state")]
    Compact {
        /// The store directory.
        dir: PathBuf,
    },
    /// Write a consistent, restorable copy of the newest durable state to a new directory
    /// (safe beside a writer in another process).
    #[command(after_help = "Example: statelog backup ./state /backups/state-2026-11-22")]
    Backup {
        /// The store directory.
        dir: PathBuf,
        /// The new directory (must not exist or must be empty).
        dest: PathBuf,
    },
    /// Print each transaction committed from now on as a JSON line (the `apply` line format,
    /// with its position), as a writer in another process commits it; safe beside it.
    #[command(
        after_help = "Line format: {\"epoch\":3,\"seq\":42,\"ops\":[{\"op\":\"put\",\"table\":\"t\",\"key\":\"k\",\"value\":\"v\"}]}\nA line {\"reset\":{\"epoch\":E,\"seq\":S}} means the log no longer holds the transactions since the last line (retention, a rewind, a restored checkpoint): the state jumped to that position.\nExample: statelog follow ./state --count 10"
    )]
    Follow {
        /// The store directory.
        dir: PathBuf,
        /// Stop after printing this many transactions.
        #[arg(long)]
        count: Option<u64>,
        /// Milliseconds between looks at the log when nothing is new.
        #[arg(long, default_value_t = 200)]
        interval_ms: u64,
    },
    /// Make a retained epoch current again; later epochs are kept aside (`.rewound`).
    #[command(after_help = "Example: statelog inspect ./state && statelog rewind ./state --to 3")]
    Rewind {
        /// The store directory.
        dir: PathBuf,
        /// The epoch to make current.
        #[arg(long)]
        to: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Strong,
    Buffered,
}

/// A failure that stops the command: its message and exit status.
struct Fail(String, i32);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let msg = match &e {
            Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                format!("{} does not exist", path.display())
            }
            _ => e.to_string(),
        };
        Fail(msg, 2)
    }
}

fn main() {
    // A reader that stops early (`statelog inspect DIR | head -1`) closes the pipe: that ends
    // the command quietly, as it ends `cat`, rather than as a panic (exit 101).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(Fail(msg, code)) => {
            eprintln!("statelog: {msg}");
            code
        }
    };
    std::process::exit(code);
}

fn backend() -> Arc<dyn Backend> {
    Arc::new(FsBackend::new())
}

fn require_dir(dir: &Path) -> Result<(), Fail> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Fail(
            format!("{} does not exist or is not a directory", dir.display()),
            2,
        ))
    }
}

/// The directory must exist and hold a store (commands that write never create one, except
/// `apply`).
fn require_store(dir: &Path) -> Result<(), Fail> {
    require_dir(dir)?;
    let has_segments = std::fs::read_dir(dir)
        .map_err(|e| Fail(format!("{}: {e}", dir.display()), 2))?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".seg"));
    if has_segments {
        Ok(())
    } else {
        Err(Fail(
            format!(
                "{} holds no segments: not a statelog directory",
                dir.display()
            ),
            2,
        ))
    }
}

fn run(command: Command) -> Result<i32, Fail> {
    match command {
        Command::Inspect { dir, json } => inspect(&dir, json),
        Command::Verify { dir, json, strict } => verify(&dir, json, strict),
        Command::Dump { dir, table, epoch } => dump(&dir, table.as_deref(), epoch),
        Command::Apply {
            dir,
            keep_going,
            durability,
        } => apply(&dir, keep_going, durability),
        Command::Repair {
            dir,
            dry_run,
            salvage,
        } => repair(&dir, dry_run, salvage),
        Command::Compact { dir } => compact(&dir),
        Command::Rewind { dir, to } => rewind(&dir, to),
        Command::Backup { dir, dest } => backup(&dir, &dest),
        Command::Follow {
            dir,
            count,
            interval_ms,
        } => follow(&dir, count, interval_ms),
    }
}

fn follow(dir: &Path, count: Option<u64>, interval_ms: u64) -> Result<i32, Fail> {
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
        writeln!(out, "{line}").map_err(|e| Fail(format!("writing the output: {e}"), 2))
    };
    loop {
        if count.is_some_and(|n| printed >= n) {
            out.flush()
                .map_err(|e| Fail(format!("writing the output: {e}"), 2))?;
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
            out.flush()
                .map_err(|e| Fail(format!("writing the output: {e}"), 2))?;
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

fn time_of(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn inspect(dir: &Path, json: bool) -> Result<i32, Fail> {
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
            "checkpoints": i.checkpoints.iter().map(|c| json!({"name": c.name, "epoch": c.epoch, "status": format!("{:?}", c.status).to_lowercase(), "created_unix_s": time_of(c.created)})).collect::<Vec<_>>(),
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
        println!(
            "  {}  epoch {}  {}  saved {} (unix s)",
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

fn progress_bar(what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}").ok()?);
    bar.set_message(what.to_string());
    Some(bar)
}

/// A spinner for a long step (restore, snapshot), only when standard error is a terminal.
fn spinner(what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

fn verify(dir: &Path, json: bool, strict: bool) -> Result<i32, Fail> {
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
            "findings": report.findings.iter().map(|f| json!({
                "file": f.file.display().to_string(),
                "offset": f.offset,
                "kind": f.kind.to_string(),
                "torn_tail": f.torn_tail,
            })).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        for f in &report.findings {
            let what = if f.torn_tail {
                "note: torn tail (an unfinished write a crash leaves; a writer cuts it on open)"
            } else {
                "corruption"
            };
            println!("{}:{}: {}: {}", f.file.display(), f.offset, what, f.kind);
        }
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

fn bytes_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

fn dump(dir: &Path, table: Option<&str>, epoch: Option<u64>) -> Result<i32, Fail> {
    require_dir(dir)?;
    let (snap, _) = read_only_snapshot(backend(), dir, RecoveryMode::TolerateTornTail, epoch)?;
    let names: Vec<String> = snap
        .tables()
        .into_iter()
        .map(|t| t.name)
        .filter(|n| table.is_none_or(|t| t == n))
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

fn apply(dir: &Path, keep_going: bool, durability: DurabilityArg) -> Result<i32, Fail> {
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

fn repair(dir: &Path, dry_run: bool, salvage: bool) -> Result<i32, Fail> {
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

fn compact(dir: &Path) -> Result<i32, Fail> {
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

fn backup(dir: &Path, dest: &Path) -> Result<i32, Fail> {
    require_store(dir)?;
    let bar = spinner("copying segments");
    let reader = EpochReader::open(backend(), dir, RecoveryMode::TolerateTornTail)?;
    let copy = reader.copy_to(dest)?;
    // The copy must restore: read it back.
    let (snap, _) = read_only_snapshot(backend(), dest, RecoveryMode::Strict, None)?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!(
        "backed up {} segments ({} bytes, {} checkpoints) to {}; it restores to {} transactions",
        copy.segments,
        copy.bytes,
        copy.checkpoints,
        dest.display(),
        snap.seq()
    );
    Ok(0)
}

fn rewind(dir: &Path, to: u64) -> Result<i32, Fail> {
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
