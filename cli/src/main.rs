//! The `statelog` command: a thin layer over the library's tools (`statelog::tools`,
//! `read_only_snapshot`, `Store`, `EpochLog`).
//!
//! Exit status: 0 success; 1 damage found (verify, import-stateio) or a line refused (apply); 3
//! crash residue only (`verify --strict`, `import-stateio --strict`); 2 the command
//! could not run (missing directory, not a statelog directory, locked, incompatible version,
//! I/O error).
//!
//! This file holds the command line (clap) and the dispatch; each subcommand is a file of
//! `cmd/`, and `cmd/common.rs` has what they share (the exit-status error, directory checks,
//! progress bars, the JSON form of bytes).

mod cmd;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use cmd::common::Fail;

const EXAMPLES: &str = "Examples:
  statelog inspect ./state             what is on disk: segments, epochs, tables, lock holder
  statelog verify ./state --json       check every checksum; exit 1 on damage (crash residue: 0)
  statelog dump ./state --table users  rows as JSON lines
  echo '{\"ops\":[{\"op\":\"put\",\"table\":\"t\",\"key\":\"k\",\"value\":\"v\"}]}' | statelog apply ./state
  statelog repair ./state --dry-run    what a repair would cut
  statelog compact ./state             snapshot now, reclaim disk
  statelog rewind ./state --to 3       make retained epoch 3 current again
  statelog backup ./state ./copy       consistent copy, also while a writer runs
  statelog follow ./state              print each new transaction as a writer commits it
  statelog import-stateio app.state ./state   a grailbio stateio file, epoch by epoch";

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
        /// Only this table (`@versions`, the store's version floors, is dumped only when named).
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
        /// Create a store in a directory that holds other files (refused otherwise).
        #[arg(long)]
        allow_foreign_files: bool,
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
    /// Import a grailbio stateio file into a new store directory: each stateio epoch (snapshot
    /// and updates, in order) becomes an epoch holding the bytes table `stateio` (rows
    /// `snapshot`, `epoch` and `update/N`). Damaged records are skipped and reported as
    /// `verify` reports them. Exit 0: clean (a torn tail is a note); 1: damage skipped; 3: only
    /// a torn tail, with --strict; 2: cannot run (DIR not empty, SRC missing).
    #[command(
        name = "import-stateio",
        after_help = "Example: statelog import-stateio app.state ./state && statelog dump ./state"
    )]
    ImportStateio {
        /// The stateio file.
        src: PathBuf,
        /// The new store directory (must not exist or must be empty).
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Also exit 3 on a torn tail (an unfinished last write), otherwise clean (exit 0).
        #[arg(long)]
        strict: bool,
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

fn run(command: Command) -> Result<i32, Fail> {
    match command {
        Command::Inspect { dir, json } => cmd::inspect::run(&dir, json),
        Command::Verify { dir, json, strict } => cmd::verify::run(&dir, json, strict),
        Command::Dump { dir, table, epoch } => cmd::dump::run(&dir, table.as_deref(), epoch),
        Command::Apply {
            dir,
            keep_going,
            durability,
            allow_foreign_files,
        } => cmd::apply::run(&dir, keep_going, durability, allow_foreign_files),
        Command::Repair {
            dir,
            dry_run,
            salvage,
        } => cmd::repair::run(&dir, dry_run, salvage),
        Command::Compact { dir } => cmd::compact::run(&dir),
        Command::Rewind { dir, to } => cmd::rewind::run(&dir, to),
        Command::Backup { dir, dest } => cmd::backup::run(&dir, &dest),
        Command::Follow {
            dir,
            count,
            interval_ms,
        } => cmd::follow::run(&dir, count, interval_ms),
        Command::ImportStateio {
            src,
            dir,
            json,
            strict,
        } => cmd::import_stateio::run(&src, &dir, json, strict),
    }
}
