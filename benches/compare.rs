//! One comparison program: the store against SQLite (WAL mode, the settings a careful user
//! picks: prepared statements, transactions; synchronous FULL and NORMAL) and redb, on the same
//! rows, in one run. Prints the machine's limits measured in the same run, then one table of
//! figures with statelog's ratio to the best other engine.
//!
//! Run with `BENCH_DIR=/tmp cargo bench --bench compare` (default 1,000,000 rows). Options
//! after `--`: `--rows N`, `--quick` (100,000 rows), `--growth-max N` (largest size of the
//! growth workload; default the `--rows` value; 10,000, 100,000, 1,000,000 and 5,000,000 are
//! the sizes), `--mixed-secs S` (duration of each phase of the mixed workload; default 3).
//! Progress goes to standard error. Figures are recorded in BENCHMARKS.md.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use statelog::weak::{DirtySet, Flusher};
use statelog::{Durability, Readable, Store, StoreOptions, Table, TableDef};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Row {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
    created_at: i64,
}

fn row(id: u64) -> Row {
    Row {
        id,
        name: format!("node-{id:08}"),
        tags: vec![
            format!("t{}", id % 7),
            format!("r{}", id % 13),
            "prod".into(),
        ],
        score: id as f64 * 0.5,
        created_at: 1_700_000_000_000 + id as i64,
    }
}

/// Version `v` of row `id`: the same unique name, another score.
fn row_v(id: u64, v: u64) -> Row {
    let mut r = row(id);
    r.score += v as f64;
    r
}

/// The median of some measurements.
fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The median time in ms of `f(1)` ... `f(runs)`.
fn median_ms(runs: u64, mut f: impl FnMut(u64)) -> f64 {
    median_of(
        (1..=runs)
            .map(|v| {
                let t0 = Instant::now();
                f(v);
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

// ---------------------------------------------------------------------------------------------
// statelog

/// Retention of `keep_epochs` epochs; with 1, after compaction the directory holds only the
/// snapshot, as SQLite's file holds only the current rows (the default keeps one older epoch
/// for rewind).
fn store_options(keep_epochs: usize) -> StoreOptions {
    StoreOptions {
        auto_compact: false,
        log: statelog::epoch::Options {
            retention: statelog::epoch::Retention {
                keep_epochs,
                keep_for: None,
            },
            ..Default::default()
        },
        ..StoreOptions::default()
    }
}

fn open_store_keep(dir: &Path, keep_epochs: usize) -> (Store, Table<u64, Row>) {
    let store = Store::open(dir, store_options(keep_epochs)).unwrap();
    let t = store
        .table(TableDef::<u64, Row>::new("rows").unique("name", |r| r.name.clone()))
        .unwrap();
    (store, t)
}

fn open_store(dir: &Path) -> (Store, Table<u64, Row>) {
    open_store_keep(dir, 1)
}

/// Upserts version `v` of the rows `ids` in transactions of `chunk` rows.
fn statelog_bulk(
    store: &Store,
    t: &Table<u64, Row>,
    ids: Range<u64>,
    chunk: u64,
    v: u64,
    d: Durability,
) {
    let mut from = ids.start;
    while from < ids.end {
        let to = (from + chunk).min(ids.end);
        store
            .write_with(d, |tx| {
                for id in from..to {
                    tx.insert(t, &id, &row_v(id, v))?;
                }
                Ok(())
            })
            .unwrap();
        from = to;
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite

fn open_sqlite(path: &Path, synchronous: &str) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", synchronous).unwrap();
    c.busy_timeout(Duration::from_secs(30)).unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
         tags TEXT NOT NULL, score REAL NOT NULL, created_at INTEGER NOT NULL)",
    )
    .unwrap();
    c
}

fn sqlite_upsert(c: &Connection, r: &Row) {
    let mut st = c
        .prepare_cached(
            "INSERT INTO rows (id, name, tags, score, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, tags = excluded.tags, \
             score = excluded.score, created_at = excluded.created_at",
        )
        .unwrap();
    st.execute(params![
        r.id as i64,
        r.name,
        r.tags.join("\u{1f}"),
        r.score,
        r.created_at
    ])
    .unwrap();
}

fn sqlite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let tags: String = r.get(2)?;
    Ok(Row {
        id: r.get::<_, i64>(0)? as u64,
        name: r.get(1)?,
        tags: tags.split('\u{1f}').map(str::to_string).collect(),
        score: r.get(3)?,
        created_at: r.get(4)?,
    })
}

const SQLITE_GET: &str = "SELECT id, name, tags, score, created_at FROM rows WHERE id = ?1";

fn sqlite_get(c: &Connection, id: u64) -> Row {
    let mut st = c.prepare_cached(SQLITE_GET).unwrap();
    st.query_row(params![id as i64], sqlite_row).unwrap()
}

/// Upserts version `v` of the rows `ids` in transactions of `chunk` rows.
fn sqlite_bulk(c: &Connection, ids: Range<u64>, chunk: u64, v: u64) {
    let mut from = ids.start;
    while from < ids.end {
        let to = (from + chunk).min(ids.end);
        c.execute_batch("BEGIN").unwrap();
        for id in from..to {
            sqlite_upsert(c, &row_v(id, v));
        }
        c.execute_batch("COMMIT").unwrap();
        from = to;
    }
}

fn sqlite_all(c: &Connection) -> Vec<Row> {
    let mut st = c
        .prepare("SELECT id, name, tags, score, created_at FROM rows")
        .unwrap();
    st.query_map([], sqlite_row)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn sqlite_bytes(path: &Path) -> u64 {
    let wal = format!("{}-wal", path.display());
    std::fs::metadata(path).map_or(0, |m| m.len()) + std::fs::metadata(wal).map_or(0, |m| m.len())
}

fn remove_sqlite(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

// ---------------------------------------------------------------------------------------------
// redb: table `rows` id -> bincode-encoded row, table `names` name -> id for the unique name.

const REDB_ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");
const REDB_NAMES: TableDefinition<&str, u64> = TableDefinition::new("names");

fn encode(r: &Row) -> Vec<u8> {
    bincode::serde::encode_to_vec(r, bincode::config::standard()).unwrap()
}

fn decode(b: &[u8]) -> Row {
    bincode::serde::decode_from_slice(b, bincode::config::standard())
        .unwrap()
        .0
}

fn open_redb(path: &Path) -> Database {
    let db = Database::create(path).unwrap();
    let w = db.begin_write().unwrap();
    w.open_table(REDB_ROWS).unwrap();
    w.open_table(REDB_NAMES).unwrap();
    w.commit().unwrap();
    db
}

/// Inserts or replaces a row, keeping the name index exact (a name owned by another id is an
/// error; a changed name frees the old one), as statelog's unique index and SQLite's UNIQUE do.
fn redb_upsert(
    rows: &mut redb::Table<'_, u64, &[u8]>,
    names: &mut redb::Table<'_, &str, u64>,
    r: &Row,
) {
    if let Some(owner) = names.get(r.name.as_str()).unwrap() {
        assert_eq!(owner.value(), r.id, "unique name {} taken", r.name);
    }
    let bytes = encode(r);
    let old_name = rows
        .insert(r.id, bytes.as_slice())
        .unwrap()
        .map(|old| decode(old.value()).name);
    match old_name {
        Some(old) if old == r.name => {}
        Some(old) => {
            names.remove(old.as_str()).unwrap();
            names.insert(r.name.as_str(), r.id).unwrap();
        }
        None => {
            names.insert(r.name.as_str(), r.id).unwrap();
        }
    }
}

/// One write transaction upserting `rows`, with redb's default durability (Immediate).
fn redb_write(db: &Database, rows: impl IntoIterator<Item = Row>) {
    let w = db.begin_write().unwrap();
    {
        let mut t = w.open_table(REDB_ROWS).unwrap();
        let mut names = w.open_table(REDB_NAMES).unwrap();
        for r in rows {
            redb_upsert(&mut t, &mut names, &r);
        }
    }
    w.commit().unwrap();
}

/// Upserts version `v` of the rows `ids` in write transactions of `chunk` rows.
fn redb_bulk(db: &Database, ids: Range<u64>, chunk: u64, v: u64) {
    let mut from = ids.start;
    while from < ids.end {
        let to = (from + chunk).min(ids.end);
        redb_write(db, (from..to).map(|id| row_v(id, v)));
        from = to;
    }
}

fn redb_get(db: &Database, id: u64) -> Row {
    let r = db.begin_read().unwrap();
    let t = r.open_table(REDB_ROWS).unwrap();
    let v = t.get(id).unwrap().unwrap();
    decode(v.value())
}

fn redb_all(db: &Database) -> Vec<Row> {
    let r = db.begin_read().unwrap();
    let t = r.open_table(REDB_ROWS).unwrap();
    let mut all = Vec::with_capacity(t.len().unwrap() as usize);
    for e in t.iter().unwrap() {
        let (_, v) = e.unwrap();
        all.push(decode(v.value()));
    }
    all
}

// ---------------------------------------------------------------------------------------------
// Measuring helpers

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Memory of this process in KiB: (current resident, peak resident).
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Child mode `restore-child ENGINE PATH [KEEP_EPOCHS]`: open the database and bring every
/// row into memory (statelog: open, which restores the state; SQLite and redb: open and read
/// every row into a `Vec<Row>`), then print rows, seconds, retained and peak KiB over the
/// process's resident memory before opening.
fn restore_child(args: &[String]) {
    let path = Path::new(&args[1]);
    let (base, _) = memory_kib();
    let t0 = Instant::now();
    let (n, kept): (usize, Box<dyn std::any::Any>) = match args[0].as_str() {
        "statelog" => {
            let keep = args.get(2).and_then(|k| k.parse().ok()).unwrap_or(1);
            let (store, t) = open_store_keep(path, keep);
            let n = store.read().count(&t).unwrap();
            (n, Box::new((store, t)))
        }
        "sqlite" => {
            let c = open_sqlite(path, "NORMAL");
            let all = sqlite_all(&c);
            (all.len(), Box::new((c, all)))
        }
        "redb" => {
            let db = Database::open(path).unwrap();
            let all = redb_all(&db);
            (all.len(), Box::new((db, all)))
        }
        other => panic!("unknown engine {other}"),
    };
    let took = t0.elapsed();
    let (rss, hwm) = memory_kib();
    println!(
        "{n} {} {} {}",
        took.as_secs_f64(),
        rss.saturating_sub(base),
        hwm.saturating_sub(base)
    );
    drop(kept);
}

/// Child mode `bulk-child ENGINE PATH ROWS`: upsert ROWS rows in 1,000-row transactions into
/// a new database, then print seconds, resident and peak KiB over the process's resident
/// memory before opening. ENGINE: statelog-buffered (then one sync), statelog-strong,
/// sqlite-NORMAL, sqlite-FULL, redb (default durability, Immediate).
fn bulk_child(args: &[String]) {
    let path = Path::new(&args[1]);
    let rows: u64 = args[2].parse().unwrap();
    let (base, _) = memory_kib();
    let took = match args[0].as_str() {
        "statelog-buffered" | "statelog-strong" => {
            let (store, t) = open_store(path);
            let d = if args[0] == "statelog-strong" {
                Durability::Strong
            } else {
                Durability::Buffered
            };
            let t0 = Instant::now();
            statelog_bulk(&store, &t, 0..rows, 1000, 0, d);
            store.sync().unwrap();
            t0.elapsed()
        }
        "sqlite-NORMAL" | "sqlite-FULL" => {
            let c = open_sqlite(path, &args[0]["sqlite-".len()..]);
            let t0 = Instant::now();
            sqlite_bulk(&c, 0..rows, 1000, 0);
            t0.elapsed()
        }
        "redb" => {
            let db = open_redb(path);
            let t0 = Instant::now();
            redb_bulk(&db, 0..rows, 1000, 0);
            t0.elapsed()
        }
        other => panic!("unknown engine {other}"),
    };
    let (rss, hwm) = memory_kib();
    println!(
        "{} {} {}",
        took.as_secs_f64(),
        rss.saturating_sub(base),
        hwm.saturating_sub(base)
    );
}

/// Runs this program in a child mode and returns the numbers it printed.
fn child(args: &[String]) -> Vec<f64> {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe).args(args).output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "child {args:?}: {line} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    line.split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// Restores in a child three times; returns (seconds, retained KiB, peak KiB) of the median
/// run by time.
fn restore3(engine: &str, path: &Path, keep: usize, rows: usize) -> (f64, f64, f64) {
    let mut runs: Vec<(f64, f64, f64)> = (0..3)
        .map(|_| {
            let f = restore_once(engine, path, keep, rows);
            (f[1], f[2], f[3])
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[1]
}

/// One restore in a child: rows, seconds, retained KiB, peak KiB.
fn restore_once(engine: &str, path: &Path, keep: usize, rows: usize) -> Vec<f64> {
    let f = child(&[
        "restore-child".into(),
        engine.into(),
        path.display().to_string(),
        keep.to_string(),
    ]);
    assert_eq!(f.first().copied(), Some(rows as f64), "{engine}: {f:?}");
    f
}

/// Drops the kernel's page cache (root only); false if it cannot.
fn drop_caches() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

/// Restores in a child three times, each after dropping the page cache; the median seconds,
/// or `None` when the cache cannot be dropped (not root).
fn restore3_cold(engine: &str, path: &Path, keep: usize, rows: usize) -> Option<f64> {
    let mut runs = Vec::new();
    for _ in 0..3 {
        if !drop_caches() {
            return None;
        }
        runs.push(restore_once(engine, path, keep, rows)[1]);
    }
    runs.sort_by(|a, b| a.total_cmp(b));
    runs.get(1).copied()
}

/// `gets` point gets of uniform random ids below `n`, decoded into rows, from statelog (one
/// snapshot), SQLite (one connection, a prepared statement) and redb (one read transaction):
/// each engine's gets per second.
fn point_gets(
    n: u64,
    gets: usize,
    store: &Store,
    t: &Table<u64, Row>,
    conn: &Connection,
    rdb: &Database,
) -> (f64, f64, f64) {
    let ours = statelog_gets(n, gets, store, t);
    let mut rng = Rng(1);
    let t0 = Instant::now();
    for _ in 0..gets {
        black_box(sqlite_get(conn, rng.below(n)));
    }
    let theirs = per_sec(gets, t0.elapsed());
    let rtx = rdb.begin_read().unwrap();
    let rt = rtx.open_table(REDB_ROWS).unwrap();
    let mut rng = Rng(1);
    let t0 = Instant::now();
    for _ in 0..gets {
        let v = rt.get(rng.below(n)).unwrap().unwrap();
        black_box(decode(v.value()));
    }
    let redb_gets = per_sec(gets, t0.elapsed());
    (ours, theirs, redb_gets)
}

/// Statelog's part of [`point_gets`]: gets per second from one snapshot.
fn statelog_gets(n: u64, gets: usize, store: &Store, t: &Table<u64, Row>) -> f64 {
    let snap = store.read();
    let mut rng = Rng(1);
    let t0 = Instant::now();
    for _ in 0..gets {
        black_box(snap.get(t, &rng.below(n)).unwrap());
    }
    per_sec(gets, t0.elapsed())
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

const READERS: usize = 8;

type NoWriter = fn(&Barrier, &AtomicBool) -> Vec<Duration>;

/// One phase of the mixed workload: `READERS` reader threads (each `reader(index, ready,
/// stop)` sets up, waits on `ready`, then reads until `stop`, returning its count) and
/// optionally one writer (returning its commit latencies), for `secs`. Returns reads per
/// second and the writer's latencies, sorted.
fn mixed_phase<R, W>(secs: f64, reader: &R, writer: Option<&W>) -> (f64, Vec<Duration>)
where
    R: Fn(u64, &Barrier, &AtomicBool) -> u64 + Sync,
    W: Fn(&Barrier, &AtomicBool) -> Vec<Duration> + Sync,
{
    let stop = AtomicBool::new(false);
    let ready = Barrier::new(READERS + 1 + usize::from(writer.is_some()));
    std::thread::scope(|s| {
        let (stop, ready) = (&stop, &ready);
        let readers: Vec<_> = (0..READERS as u64)
            .map(|i| s.spawn(move || reader(i, ready, stop)))
            .collect();
        let w = writer.map(|w| s.spawn(move || w(ready, stop)));
        ready.wait();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let n: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
        let took = t0.elapsed();
        let mut lat = w.map(|h| h.join().unwrap()).unwrap_or_default();
        lat.sort();
        (n as f64 / took.as_secs_f64(), lat)
    })
}

/// Reads per batch between looks at the stop flag.
const BATCH: u64 = 32;

/// A reader of the mixed workload: `get` on uniform random ids below `n`, in batches, from the
/// barrier until `stop`; returns how many gets it made.
fn read_until(
    seed: u64,
    n: u64,
    ready: &Barrier,
    stop: &AtomicBool,
    mut get: impl FnMut(u64),
) -> u64 {
    let mut rng = Rng(100 + seed);
    ready.wait();
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..BATCH {
            get(rng.below(n));
        }
        k += BATCH;
    }
    k
}

/// The writer of the mixed workload: `put` commits one changed row on a random id below `n`,
/// from the barrier until `stop`; returns each commit's latency.
fn write_until(
    n: u64,
    ready: &Barrier,
    stop: &AtomicBool,
    mut put: impl FnMut(u64, Row),
) -> Vec<Duration> {
    let mut rng = Rng(999);
    let mut lat = Vec::new();
    ready.wait();
    while !stop.load(Ordering::Relaxed) {
        let id = rng.below(n);
        let r = row_v(id, lat.len() as u64 + 1);
        let t0 = Instant::now();
        put(id, r);
        lat.push(t0.elapsed());
    }
    lat
}

// ---------------------------------------------------------------------------------------------
// The table

#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

#[derive(Clone, Default)]
struct Cell {
    v: Option<f64>,
    note: String,
    /// Shown but left out of the last column's comparison (a figure that does not give the
    /// row's guarantee, such as a commit that is not durable when it returns).
    not_compared: bool,
}

fn c(v: f64) -> Cell {
    Cell {
        v: Some(v),
        note: String::new(),
        not_compared: false,
    }
}

fn cn(v: f64, note: &str) -> Cell {
    Cell {
        v: Some(v),
        note: note.into(),
        not_compared: false,
    }
}

/// A figure shown with its note but not compared (see [`Cell::not_compared`]).
fn shown(v: f64, note: &str) -> Cell {
    Cell {
        not_compared: true,
        ..cn(v, note)
    }
}

fn na() -> Cell {
    Cell::default()
}

const OTHERS: [&str; 3] = ["SQLite FULL", "SQLite NORMAL", "redb"];

struct Line {
    what: String,
    decimals: usize,
    better: Better,
    ours: Cell,
    others: [Cell; 3],
}

fn fmt_num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(i, f)| (i, f));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

impl Line {
    fn cell(&self, c: &Cell) -> String {
        match c.v {
            None => "-".into(),
            Some(v) if c.note.is_empty() => fmt_num(v, self.decimals),
            Some(v) => format!("{} ({})", fmt_num(v, self.decimals), c.note),
        }
    }

    /// How many times better statelog is than the best other engine (above 1: statelog is
    /// better), and that engine.
    fn ratio(&self) -> String {
        let Some(ours) = self.ours.v else {
            return "-".into();
        };
        let others = OTHERS
            .iter()
            .zip(&self.others)
            .filter(|(_, c)| !c.not_compared)
            .filter_map(|(name, c)| Some((*name, c.v?)));
        let best = match self.better {
            Better::Neither => None,
            Better::Higher => others.max_by(|a, b| a.1.total_cmp(&b.1)),
            Better::Lower => others.min_by(|a, b| a.1.total_cmp(&b.1)),
        };
        match best {
            None => "-".into(),
            Some((name, v)) => {
                let r = if self.better == Better::Higher {
                    ours / v
                } else {
                    v / ours
                };
                format!("{r:.2}x vs {name}")
            }
        }
    }
}

#[derive(Default)]
struct Report {
    lines: Vec<Line>,
}

impl Report {
    fn add(&mut self, what: &str, decimals: usize, better: Better, ours: Cell, others: [Cell; 3]) {
        let line = Line {
            what: what.into(),
            decimals,
            better,
            ours,
            others,
        };
        progress(&format!(
            "{what}: statelog {} | {} | {} | {} | {}",
            line.cell(&line.ours),
            line.cell(&line.others[0]),
            line.cell(&line.others[1]),
            line.cell(&line.others[2]),
            line.ratio()
        ));
        self.lines.push(line);
    }

    fn print(&self) {
        let mut table: Vec<Vec<String>> = vec![
            [
                "workload",
                "statelog",
                OTHERS[0],
                OTHERS[1],
                OTHERS[2],
                "statelog vs best other",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ];
        for l in &self.lines {
            let mut cells = vec![l.what.clone(), l.cell(&l.ours)];
            cells.extend(l.others.iter().map(|c| l.cell(c)));
            cells.push(l.ratio());
            table.push(cells);
        }
        let widths: Vec<usize> = (0..table[0].len())
            .map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap())
            .collect();
        let line = |cells: &[String]| {
            let parts: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (s, w))| {
                    if i == 0 {
                        format!("{s:<w$}")
                    } else {
                        format!("{s:>w$}")
                    }
                })
                .collect();
            println!("| {} |", parts.join(" | "));
        };
        line(&table[0]);
        // Markdown: the first column left-aligned, the figures right-aligned.
        let rule: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    "-".repeat(w + 2)
                } else {
                    format!("{}:", "-".repeat(w + 1))
                }
            })
            .collect();
        println!("|{}|", rule.join("|"));
        for r in &table[1..] {
            line(r);
        }
    }
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn progress(msg: &str) {
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[compare {t:7.1}s] {msg}");
}

// ---------------------------------------------------------------------------------------------
// Machine limits

fn machine_limits(dir: &Path) {
    progress("machine limits");
    // Sequential write bandwidth: 256 MiB in 1 MiB writes, then one fdatasync.
    let path = dir.join("seqwrite.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut rng = Rng(7);
    let chunk: Vec<u8> = (0..1 << 20).map(|_| rng.below(256) as u8).collect();
    let t0 = Instant::now();
    for _ in 0..256 {
        f.write_all(&chunk).unwrap();
    }
    f.sync_data().unwrap();
    let took = t0.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    // Let the disk settle (writeback of the removal and anything else pending), so neither
    // the fdatasync rates below nor the first workload pay for this write.
    let _ = std::process::Command::new("sync").status();
    println!(
        "sequential write, 256 MiB in 1 MiB writes + fdatasync: {:.0} MiB/s",
        256.0 / took.as_secs_f64()
    );

    // Raw fdatasync rate: 100-byte appending writes, each followed by fdatasync.
    let path = dir.join("fdatasync.bin");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let buf = [0x5au8; 100];
    let n = 2000;
    let t0 = Instant::now();
    for _ in 0..n {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    let took = t0.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    println!(
        "fdatasync after a 100-byte append: {} /s ({:.1} us each, {n} in BENCH_DIR)",
        fmt_num(per_sec(n, took), 0),
        took.as_secs_f64() * 1e6 / n as f64
    );

    // The same into space allocated beforehand (as statelog's active segment reserves it):
    // the fdatasync need not make a new file length durable each time.
    let rate = allocated_fdatasyncs(dir, n);
    println!(
        "fdatasync after a 100-byte write into allocated space: {} /s ({:.1} us each)",
        fmt_num(rate, 0),
        1e6 / rate
    );

    // crc32fast over a 1 MiB buffer.
    let reps = 2048;
    let t0 = Instant::now();
    for _ in 0..reps {
        black_box(crc32fast::hash(black_box(&chunk)));
    }
    let took = t0.elapsed();
    println!(
        "crc32fast over 1 MiB: {:.2} GiB/s",
        reps as f64 / 1024.0 / took.as_secs_f64()
    );

    // memcpy of 1 MiB.
    let mut dst = vec![0u8; chunk.len()];
    let t0 = Instant::now();
    for _ in 0..reps {
        dst.copy_from_slice(black_box(&chunk));
        black_box(&mut dst);
    }
    let took = t0.elapsed();
    println!(
        "memcpy of 1 MiB (copy_from_slice): {:.2} GiB/s",
        reps as f64 / 1024.0 / took.as_secs_f64()
    );
}

/// fdatasyncs per second, each after a 100-byte write into space allocated beforehand (`n`
/// of them, in one file in `dir`).
fn allocated_fdatasyncs(dir: &Path, n: usize) -> f64 {
    let buf = [0x5au8; 100];
    let path = dir.join("fdatasync-allocated.bin");
    let f = std::fs::File::create(&path).unwrap();
    fs2::FileExt::allocate(&f, (n * buf.len()) as u64).unwrap();
    f.sync_all().unwrap();
    let t0 = Instant::now();
    for i in 0..n {
        std::os::unix::fs::FileExt::write_all_at(&f, &buf, (i * buf.len()) as u64).unwrap();
        f.sync_data().unwrap();
    }
    let took = t0.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    per_sec(n, took)
}

/// The leanest group commit there is, with no engine: `threads` threads each append a
/// 128-byte record to one shared buffer under one mutex and wait (one condvar) until it is
/// durable; a waiter that finds no sync running writes the buffer into space allocated
/// beforehand and fdatasyncs it for everyone. With `gather`, that waiter first waits (at most
/// as long as the last sync took) until as many commits have arrived as the last sync made
/// durable, so the threads it released are in the next sync too. Returns commits per second
/// and commits per fdatasync: what any single-log engine's strong commits can reach here.
fn group_commit_floor(dir: &Path, threads: u64, per: u64, gather: bool) -> (f64, f64) {
    use std::os::unix::fs::FileExt;
    struct Group {
        buf: Vec<u8>,
        appended: u64,
        written: u64,
        durable: u64,
        syncing: bool,
        commits: u64,
        covered: u64,
        expected: u64,
        gather_until: Instant,
    }
    let path = dir.join("group-commit-floor.bin");
    let file = std::fs::File::create(&path).unwrap();
    fs2::FileExt::allocate(&file, threads * per * 128 + (1 << 20)).unwrap();
    file.sync_all().unwrap();
    let group = parking_lot::Mutex::new(Group {
        buf: Vec::new(),
        appended: 0,
        written: 0,
        durable: 0,
        syncing: false,
        commits: 0,
        covered: 0,
        expected: 0,
        gather_until: Instant::now(),
    });
    let synced = parking_lot::Condvar::new();
    let syncs = std::sync::atomic::AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (file, group, synced, syncs) = (&file, &group, &synced, &syncs);
            s.spawn(move || {
                for _ in 0..per {
                    let mut g = group.lock();
                    g.buf.extend_from_slice(&[0x5a; 128]);
                    g.appended += 128;
                    g.commits += 1;
                    g.expected = g.expected.saturating_sub(1);
                    let target = g.appended;
                    while g.durable < target {
                        if g.syncing {
                            synced.wait(&mut g);
                            continue;
                        }
                        if gather && g.expected > 0 && Instant::now() < g.gather_until {
                            let until = g.gather_until;
                            synced.wait_until(&mut g, until);
                            continue;
                        }
                        g.syncing = true;
                        let (buf, at, commits) = (std::mem::take(&mut g.buf), g.written, g.commits);
                        g.written += buf.len() as u64;
                        let upto = g.written;
                        let started = Instant::now();
                        parking_lot::MutexGuard::unlocked(&mut g, || {
                            file.write_all_at(&buf, at).unwrap();
                            file.sync_data().unwrap();
                        });
                        syncs.fetch_add(1, Ordering::Relaxed);
                        g.durable = upto;
                        g.syncing = false;
                        g.expected = commits - g.covered;
                        g.covered = commits;
                        g.gather_until = Instant::now() + started.elapsed();
                        synced.notify_all();
                    }
                }
            });
        }
    });
    let took = t0.elapsed();
    drop(file);
    std::fs::remove_file(&path).unwrap();
    let total = threads * per;
    (
        per_sec(total as usize, took),
        total as f64 / syncs.load(Ordering::Relaxed).max(1) as f64,
    )
}

/// The disk's parallel flush capacity: `threads` threads each write a 128-byte record into
/// space allocated beforehand in a file of its own and fdatasync it, with no sharing at all.
/// Returns fdatasyncs (= commits) per second: what a log striped over one file per
/// committer could reach at most, before any ordering between the files.
fn own_file_fdatasyncs(dir: &Path, threads: u64, per: u64) -> f64 {
    use std::os::unix::fs::FileExt;
    let paths: Vec<_> = (0..threads)
        .map(|i| dir.join(format!("own-file-{i}.bin")))
        .collect();
    let files: Vec<_> = paths
        .iter()
        .map(|p| {
            let f = std::fs::File::create(p).unwrap();
            fs2::FileExt::allocate(&f, per * 128 + 4096).unwrap();
            f.sync_all().unwrap();
            f
        })
        .collect();
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for f in &files {
            s.spawn(move || {
                for i in 0..per {
                    f.write_all_at(&[0x5a; 128], i * 128).unwrap();
                    f.sync_data().unwrap();
                }
            });
        }
    });
    let took = t0.elapsed();
    drop(files);
    for p in &paths {
        std::fs::remove_file(p).unwrap();
    }
    per_sec((threads * per) as usize, took)
}

/// What the workloads' own loops cost with no engine at all (an upper bound for every engine,
/// measured on the same rows): building the rows (what each bulk loop does per row), encoding
/// them with bincode (what a weak flush must do per row before any write), and a point get
/// from the simplest in-memory layout there is (a `Vec` indexed by id: no search, no lock).
fn engine_free_floors(rows: usize) {
    progress("floors without an engine");
    let n = rows as u64;
    let t0 = Instant::now();
    let built: Vec<Row> = (0..n).map(|id| black_box(row(id))).collect();
    let build = per_sec(rows, t0.elapsed());
    let t0 = Instant::now();
    let encoded: Vec<Vec<u8>> = built.iter().map(|r| black_box(encode(r))).collect();
    let took = t0.elapsed();
    println!(
        "building the bench's rows (every bulk loop does it), no engine: {} rows/s",
        fmt_num(build, 0)
    );
    println!(
        "encoding them with bincode, no engine: {} rows/s ({:.1} ms per 100,000 rows)",
        fmt_num(per_sec(rows, took), 0),
        took.as_secs_f64() * 1e3 * 100_000.0 / rows as f64
    );
    let gets = 2_000_000;
    let mut rng = Rng(11);
    let t0 = Instant::now();
    for _ in 0..gets {
        let id = rng.below(n) as usize;
        black_box(encoded.get(id).map(|b| decode(b)));
    }
    println!(
        "point get floor: decode a random row from a Vec<Vec<u8>> by id: {} /s",
        fmt_num(per_sec(gets, t0.elapsed()), 0)
    );
    let mut rng = Rng(11);
    let t0 = Instant::now();
    for _ in 0..gets {
        let id = rng.below(n) as usize;
        black_box(built.get(id).cloned());
    }
    println!(
        "point get floor: clone a random row from a Vec<Row> by id: {} /s",
        fmt_num(per_sec(gets, t0.elapsed()), 0)
    );
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "restore-child") {
        restore_child(&args[i + 1..]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "bulk-child") {
        bulk_child(&args[i + 1..]);
        return;
    }
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let quick = args.iter().any(|a| a == "--quick");
    let rows: usize = value("--rows")
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 100_000 } else { 1_000_000 });
    let growth_max: usize = value("--growth-max")
        .and_then(|v| v.parse().ok())
        .unwrap_or(rows);
    let mixed_secs: f64 = value("--mixed-secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let n = rows as u64;
    progress(&format!("rows {rows}, growth up to {growth_max}"));
    let work =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let wp = work.path();
    let mut report = Report::default();

    println!(
        "rows: {rows}; machine: {} cores; BENCH_DIR: {}; load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        wp.parent().map_or(wp, |p| p).display(),
        load_average()
    );
    println!();
    println!("Machine limits, measured in this run:");
    machine_limits(wp);
    println!();
    println!("Floors without an engine, measured in this run:");
    engine_free_floors(rows);
    println!();

    // Strong single-row commits: statelog strong (concurrent commits share an fsync) vs
    // SQLite WAL synchronous FULL and NORMAL (NORMAL: the WAL is fsynced only at
    // checkpoints, so commits are not durable when they return) and redb Immediate.
    for threads in [1u64, 8] {
        let per: u64 = if threads == 1 { 5000 } else { 2000 };
        let total = (threads * per) as usize;
        // 1 thread: the raw rate it is held to, measured right before and right after (the
        // disk's speed drifts between the machine limits above and this row).
        let raw_before = (threads == 1).then(|| allocated_fdatasyncs(wp, 2000));
        progress(&format!("strong commits, {threads} thread(s): statelog"));
        let d = wp.join(format!("strong{threads}"));
        let (store, t) = open_store(&d);
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let (store, t) = (&store, &t);
                s.spawn(move || {
                    for i in 0..per {
                        let id = th * per + i;
                        store.write(|tx| tx.insert(t, &id, &row(id))).unwrap();
                    }
                });
            }
        });
        let ours = per_sec(total, t0.elapsed());
        drop((store, t));
        let _ = std::fs::remove_dir_all(&d);
        let raw_around = raw_before.map(|before| (before, allocated_fdatasyncs(wp, 2000)));
        let mut sqlite = [0.0; 2];
        for (k, sync) in ["FULL", "NORMAL"].into_iter().enumerate() {
            progress(&format!(
                "strong commits, {threads} thread(s): SQLite {sync}"
            ));
            let db = wp.join(format!("strong{threads}-{sync}.sqlite"));
            drop(open_sqlite(&db, sync));
            let t0 = Instant::now();
            std::thread::scope(|s| {
                for th in 0..threads {
                    let db = &db;
                    s.spawn(move || {
                        let c = open_sqlite(db, sync);
                        for i in 0..per {
                            sqlite_upsert(&c, &row(th * per + i));
                        }
                    });
                }
            });
            sqlite[k] = per_sec(total, t0.elapsed());
            remove_sqlite(&db);
        }
        progress(&format!("strong commits, {threads} thread(s): redb"));
        let path = wp.join(format!("strong{threads}.redb"));
        let db = open_redb(&path);
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let db = &db;
                s.spawn(move || {
                    for i in 0..per {
                        redb_write(db, [row(th * per + i)]);
                    }
                });
            }
        });
        let redb = per_sec(total, t0.elapsed());
        drop(db);
        let _ = std::fs::remove_file(&path);
        report.add(
            &format!(
                "strong single-row commits, {threads} thread{}, /s",
                if threads == 1 { "" } else { "s" }
            ),
            0,
            Better::Higher,
            c(ours),
            [
                c(sqlite[0]),
                shown(sqlite[1], "not durable"),
                cn(redb, "Immediate"),
            ],
        );
        if let Some((before, after)) = raw_around {
            let raw = (before + after) / 2.0;
            report.add(
                "  fdatasync after a 100-byte write into allocated space, just before and after, /s",
                0,
                Better::Neither,
                cn(
                    raw,
                    &format!(
                        "{} before, {} after; statelog at {:.2} of it",
                        fmt_num(before, 0),
                        fmt_num(after, 0),
                        ours / raw
                    ),
                ),
                [na(), na(), na()],
            );
        }
        if threads > 1 {
            // The floor for every single-log engine, measured beside the engines.
            for gather in [false, true] {
                let how = if gather { ", gathering" } else { "" };
                progress(&format!(
                    "strong commits, {threads} threads: group commit with no engine{how}"
                ));
                let (rate, per_sync) = group_commit_floor(wp, threads, per, gather);
                report.add(
                    &format!("  group commit with no engine{how}, {threads} threads, /s"),
                    0,
                    Better::Neither,
                    cn(
                        rate,
                        &format!(
                            "{per_sync:.1} per fdatasync; {:.1}x SQLite FULL",
                            rate / sqlite[0]
                        ),
                    ),
                    [na(), na(), na()],
                );
            }
            progress(&format!(
                "strong commits, {threads} threads: each its own file, no group commit"
            ));
            let rate = own_file_fdatasyncs(wp, threads, per);
            report.add(
                &format!("  {threads} threads each fdatasyncing its own file, /s"),
                0,
                Better::Neither,
                cn(
                    rate,
                    &format!(
                        "1 write per fdatasync; {:.1}x SQLite FULL",
                        rate / sqlite[0]
                    ),
                ),
                [na(), na(), na()],
            );
        }
    }

    // Bulk upserts in 1,000-row transactions, each in a child process (time and peak memory,
    // issue 8 workload 7). statelog: buffered commits (durable at the next sync, like SQLite
    // NORMAL, whose WAL is fsynced only at checkpoints), one final sync; and strong commits
    // (each transaction fsynced, like SQLite FULL and redb's default Immediate).
    let bulk = |engine: &str, path: &Path| {
        progress(&format!("bulk {rows} upserts: {engine}"));
        let f = child(&[
            "bulk-child".into(),
            engine.into(),
            path.display().to_string(),
            rows.to_string(),
        ]);
        (rows as f64 / f[0], f[2] / 1024.0)
    };
    let sdir = wp.join("bulk");
    let (ours_bulk, ours_bulk_mem) = bulk("statelog-buffered", &sdir);
    let strong_dir = wp.join("bulk-strong");
    let (ours_strong, _) = bulk("statelog-strong", &strong_dir);
    let _ = std::fs::remove_dir_all(&strong_dir);
    let sqlite_db = wp.join("bulk.sqlite");
    let (normal_bulk, normal_mem) = bulk("sqlite-NORMAL", &sqlite_db);
    let full_db = wp.join("bulk-full.sqlite");
    let (full_bulk, full_mem) = bulk("sqlite-FULL", &full_db);
    remove_sqlite(&full_db);
    let redb_path = wp.join("bulk.redb");
    let (redb_bulk_rate, redb_mem) = bulk("redb", &redb_path);
    report.add(
        &format!(
            "{} upserts in 1,000-row transactions, rows/s",
            fmt_num(rows as f64, 0)
        ),
        0,
        Better::Higher,
        cn(ours_bulk, "buffered, final sync"),
        [
            c(full_bulk),
            c(normal_bulk),
            cn(redb_bulk_rate, "Immediate, default"),
        ],
    );
    report.add(
        "  the same, every transaction fsynced, rows/s",
        0,
        Better::Higher,
        cn(ours_strong, "strong"),
        [c(full_bulk), na(), cn(redb_bulk_rate, "Immediate")],
    );
    report.add(
        "  peak memory of the bulk load (VmHWM), MiB",
        0,
        Better::Lower,
        cn(ours_bulk_mem, "buffered"),
        [c(full_mem), c(normal_mem), c(redb_mem)],
    );

    // Point gets, uniform random ids, decoded into structs; one snapshot / read
    // transaction for all of them (SQLite: one connection, a prepared statement).
    progress("opening the bulk databases in this process");
    let (store, t) = open_store(&sdir);
    let conn = open_sqlite(&sqlite_db, "NORMAL");
    let mut rdb = Database::create(&redb_path).unwrap();
    let gets = 500_000;
    progress("point gets");
    let (ours, theirs, redb_gets) = point_gets(n, gets, &store, &t, &conn, &rdb);
    report.add(
        "point gets (uniform random ids, decoded), /s",
        0,
        Better::Higher,
        c(ours),
        [na(), c(theirs), c(redb_gets)],
    );

    // Range scans of 100 rows.
    progress("range scans");
    let scans = 20_000;
    let snap = store.read();
    let rtx = rdb.begin_read().unwrap();
    let rt = rtx.open_table(REDB_ROWS).unwrap();
    let mut rng = Rng(2);
    let t0 = Instant::now();
    for _ in 0..scans {
        let from = rng.below(n);
        let mut k = 0;
        for r in snap.range(&t, from..from + 100).unwrap() {
            black_box(r.unwrap());
            k += 1;
        }
        black_box(k);
    }
    let ours = per_sec(scans, t0.elapsed());
    let mut st = conn
        .prepare_cached(
            "SELECT id, name, tags, score, created_at FROM rows WHERE id >= ?1 AND id < ?2 \
             ORDER BY id",
        )
        .unwrap();
    let mut rng = Rng(2);
    let t0 = Instant::now();
    for _ in 0..scans {
        let from = rng.below(n) as i64;
        let mut k = 0;
        for r in st.query_map(params![from, from + 100], sqlite_row).unwrap() {
            black_box(r.unwrap());
            k += 1;
        }
        black_box(k);
    }
    let theirs = per_sec(scans, t0.elapsed());
    drop(st);
    let mut rng = Rng(2);
    let t0 = Instant::now();
    for _ in 0..scans {
        let from = rng.below(n);
        let mut k = 0;
        for e in rt.range(from..from + 100).unwrap() {
            let (_, v) = e.unwrap();
            black_box(decode(v.value()));
            k += 1;
        }
        black_box(k);
    }
    let redb_scans = per_sec(scans, t0.elapsed());
    drop(rt);
    drop(rtx);
    drop(snap);
    report.add(
        "range scans of 100 rows, /s",
        0,
        Better::Higher,
        c(ours),
        [na(), c(theirs), c(redb_scans)],
    );

    // Mixed (issue 8 workload 6): 8 readers doing point gets on uniform random ids (a
    // snapshot / read transaction per get), alone and then with 1 writer committing strong
    // single-row upserts of random ids.
    let mixed_rows = |name: &str,
                      alone: [Option<f64>; 4],
                      with: [Option<(f64, Vec<Duration>)>; 4],
                      report: &mut Report| {
        let cells = |f: &dyn Fn(usize) -> Option<f64>| -> (Cell, [Cell; 3]) {
            let cell = |i: usize| f(i).map_or_else(na, c);
            (cell(0), [cell(1), cell(2), cell(3)])
        };
        let (o, x) = cells(&|i| alone[i]);
        report.add(
            &format!("{name}: {READERS} readers alone, point gets/s"),
            0,
            Better::Higher,
            o,
            x,
        );
        // SQLite's readers alone are measured once, shown under NORMAL, and are the base of
        // both SQLite columns.
        let base = |i: usize| if i == 1 { alone[2] } else { alone[i] };
        let (o, x) = cells(&|i| Some(with[i].as_ref()?.0 / base(i)?));
        report.add(
            &format!("{name}: readers with 1 strong writer, fraction of alone"),
            2,
            Better::Higher,
            o,
            x,
        );
        let (o, x) = cells(&|i| Some(with[i].as_ref()?.1.len() as f64 / mixed_secs));
        report.add(
            &format!("{name}: writer commits/s"),
            0,
            Better::Higher,
            o,
            x,
        );
        for p in [50, 99] {
            let (o, x) = cells(&|i| Some(percentile(&with[i].as_ref()?.1, p)));
            report.add(
                &format!("{name}: writer commit latency p{p}, ms"),
                3,
                Better::Lower,
                o,
                x,
            );
        }
    };
    {
        progress("mixed: statelog");
        let reader = |i: u64, ready: &Barrier, stop: &AtomicBool| {
            read_until(i, n, ready, stop, |id| {
                black_box(store.read().get(&t, &id).unwrap());
            })
        };
        let writer = |ready: &Barrier, stop: &AtomicBool| {
            write_until(n, ready, stop, |id, r| {
                store.write(|tx| tx.insert(&t, &id, &r)).unwrap();
            })
        };
        let (alone, _) = mixed_phase(mixed_secs, &reader, None::<&NoWriter>);
        let ours = mixed_phase(mixed_secs, &reader, Some(&writer));
        // The machine's floor: the same readers beside a loop of 100-byte appends, each
        // fdatasynced, with no store at all (the cost of a thread that only syncs).
        progress("mixed: statelog readers beside a raw fdatasync loop");
        let raw_path = wp.join("mixed-fdatasync.bin");
        let raw = |ready: &Barrier, stop: &AtomicBool| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&raw_path)
                .unwrap();
            write_until(n, ready, stop, |_, _| {
                f.write_all(&[0x5a; 100]).unwrap();
                f.sync_data().unwrap();
            })
        };
        let floor = mixed_phase(mixed_secs, &reader, Some(&raw));
        std::fs::remove_file(&raw_path).unwrap();

        progress("mixed: SQLite");
        let reader = |i: u64, ready: &Barrier, stop: &AtomicBool| {
            let c = open_sqlite(&sqlite_db, "NORMAL");
            read_until(i, n, ready, stop, |id| {
                black_box(sqlite_get(&c, id));
            })
        };
        let writer = |sync: &'static str| {
            let sqlite_db = &sqlite_db;
            move |ready: &Barrier, stop: &AtomicBool| {
                let c = open_sqlite(sqlite_db, sync);
                write_until(n, ready, stop, |_, r| sqlite_upsert(&c, &r))
            }
        };
        let (sqlite_alone, _) = mixed_phase(mixed_secs, &reader, None::<&NoWriter>);
        let full = mixed_phase(mixed_secs, &reader, Some(&writer("FULL")));
        let normal = mixed_phase(mixed_secs, &reader, Some(&writer("NORMAL")));

        progress("mixed: redb");
        let reader = |i: u64, ready: &Barrier, stop: &AtomicBool| {
            read_until(i, n, ready, stop, |id| {
                black_box(redb_get(&rdb, id));
            })
        };
        let writer = |ready: &Barrier, stop: &AtomicBool| {
            write_until(n, ready, stop, |_, r| redb_write(&rdb, [r]))
        };
        let (redb_alone, _) = mixed_phase(mixed_secs, &reader, None::<&NoWriter>);
        let redb_with = mixed_phase(mixed_secs, &reader, Some(&writer));
        mixed_rows(
            "mixed",
            [Some(alone), None, Some(sqlite_alone), Some(redb_alone)],
            [Some(ours), Some(full), Some(normal), Some(redb_with)],
            &mut report,
        );
        report.add(
            "  statelog's readers beside a raw fdatasync loop, fraction of alone",
            2,
            Better::Neither,
            cn(
                floor.0 / alone,
                &format!(
                    "{} fdatasyncs/s",
                    fmt_num(floor.1.len() as f64 / mixed_secs, 0)
                ),
            ),
            [na(), na(), na()],
        );
    }

    // The same point gets after the mixed workload's updates: statelog's changes since the
    // last compaction are a tree over the base (a key filter spares most gets the tree);
    // SQLite's are pages in its WAL (checkpointed every 1,000 pages); redb's are in place.
    progress("point gets after the mixed workload's updates");
    let (ours, theirs, redb_gets) = point_gets(n, gets, &store, &t, &conn, &rdb);
    report.add(
        "point gets after the mixed workload's updates (not compacted), /s",
        0,
        Better::Higher,
        c(ours),
        [na(), c(theirs), c(redb_gets)],
    );

    // Gets as changes pile up between compactions (statelog only): 250,000 more single-row
    // updates of random ids, buffered, then the same point gets.
    progress("statelog: 250,000 single-row updates, then point gets");
    let mut rng = Rng(3);
    for i in 0..250_000u64 {
        let id = rng.below(n);
        store
            .write_with(Durability::Buffered, |tx| {
                tx.insert(&t, &id, &row_v(id, i + 2))
            })
            .unwrap();
    }
    let ours = statelog_gets(n, gets, &store, &t);
    report.add(
        "  statelog after 250,000 more single-row updates (not compacted), /s",
        0,
        Better::Neither,
        c(ours),
        [na(), na(), na()],
    );

    // Compact, then open + restore in a child process (time and memory, issue 8 workload 7):
    // statelog's open; SQLite's and redb's open + every row read into a Vec<Row>.
    progress("compacting");
    store.compact().unwrap();
    drop((store, t));
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    for _ in 0..10 {
        if !rdb.compact().unwrap() {
            break;
        }
    }
    drop(rdb);
    let ours_bytes = dir_bytes(&sdir) as f64;
    let sqlite_bytes = sqlite_bytes(&sqlite_db) as f64;
    let redb_bytes = std::fs::metadata(&redb_path).unwrap().len() as f64;
    progress("restore: statelog");
    let (secs, retained, peak) = restore3("statelog", &sdir, 1, rows);
    progress("restore: SQLite");
    let (s_secs, s_retained, s_peak) = restore3("sqlite", &sqlite_db, 1, rows);
    progress("restore: redb");
    let (r_secs, r_retained, r_peak) = restore3("redb", &redb_path, 1, rows);
    report.add(
        &format!(
            "open + restore {} rows into memory (warm cache), s",
            fmt_num(rows as f64, 0)
        ),
        3,
        Better::Lower,
        c(secs),
        [
            na(),
            cn(s_secs, "SELECT * into Vec"),
            cn(r_secs, "all into Vec"),
        ],
    );
    progress("restore after dropping caches");
    let cold = [
        restore3_cold("statelog", &sdir, 1, rows),
        restore3_cold("sqlite", &sqlite_db, 1, rows),
        restore3_cold("redb", &redb_path, 1, rows),
    ];
    match cold {
        [Some(ours), Some(sqlite), Some(redb)] => report.add(
            &format!(
                "open + restore {} rows, page cache dropped, s",
                fmt_num(rows as f64, 0)
            ),
            3,
            Better::Lower,
            c(ours),
            [
                na(),
                cn(sqlite, "SELECT * into Vec"),
                cn(redb, "all into Vec"),
            ],
        ),
        _ => report.add(
            "open + restore, page cache dropped (needs root: not measured)",
            0,
            Better::Neither,
            na(),
            [na(), na(), na()],
        ),
    }
    report.add(
        "  restore peak memory (VmHWM), MiB",
        0,
        Better::Lower,
        c(peak / 1024.0),
        [na(), c(s_peak / 1024.0), c(r_peak / 1024.0)],
    );
    report.add(
        "  restore retained memory (VmRSS), MiB",
        0,
        Better::Lower,
        c(retained / 1024.0),
        [na(), c(s_retained / 1024.0), c(r_retained / 1024.0)],
    );
    report.add(
        "  restore memory, peak / retained",
        2,
        Better::Neither,
        c(peak / retained.max(1.0)),
        [
            na(),
            c(s_peak / s_retained.max(1.0)),
            c(r_peak / r_retained.max(1.0)),
        ],
    );
    report.add(
        "disk bytes per row after compaction",
        1,
        Better::Lower,
        c(ours_bytes / rows as f64),
        [
            na(),
            cn(sqlite_bytes / rows as f64, "checkpointed"),
            cn(redb_bytes / rows as f64, "compact()"),
        ],
    );
    let _ = std::fs::remove_dir_all(&sdir);
    remove_sqlite(&sqlite_db);
    let _ = std::fs::remove_file(&redb_path);

    // Weak durability (issue 8 workload 5): mark 100,000 changed rows dirty and flush them
    // (one transaction, fsynced) vs SQLite upserting the same rows in one transaction and
    // redb in one write transaction (Immediate).
    {
        const WEAK_ROWS: u64 = 100_000;
        const WEAK_RUNS: u64 = 3;
        progress("weak flush: statelog");
        let (weak, t) = open_store(&wp.join("weak"));
        let memory: Arc<Mutex<HashMap<u64, Row>>> =
            Arc::new(Mutex::new((0..WEAK_ROWS).map(|i| (i, row(i))).collect()));
        let dirty = Arc::new(DirtySet::<u64>::new());
        let m = memory.clone();
        // The flush borrows each value under the application's lock (no copy of the row).
        let flusher =
            Flusher::new(weak.clone()).source_borrowed(&t, dirty.clone(), move |k, lend| {
                if let Some(v) = m.lock().unwrap().get(k) {
                    lend(v);
                }
            });
        // A first flush fills the table; the measured one rewrites every row, changed.
        for i in 0..WEAK_ROWS {
            dirty.mark_upsert(i);
        }
        flusher.flush().unwrap();
        // Median of WEAK_RUNS runs, each rewriting every row, changed.
        let mut runs = Vec::new();
        for v in 1..=WEAK_RUNS {
            for (i, r) in memory.lock().unwrap().iter_mut() {
                *r = row_v(*i, v);
            }
            let t0 = Instant::now();
            for i in 0..WEAK_ROWS {
                dirty.mark_upsert(i);
            }
            let flushed = flusher.flush().unwrap();
            runs.push(t0.elapsed().as_secs_f64() * 1e3);
            assert_eq!(flushed.rows(), WEAK_ROWS as usize);
        }
        let ours = median_of(runs);
        drop((flusher, weak, t));
        let mut sqlite = [0.0; 2];
        for (k, sync) in ["FULL", "NORMAL"].into_iter().enumerate() {
            progress(&format!("weak flush: SQLite {sync}"));
            let db = wp.join(format!("weak-{sync}.sqlite"));
            let c = open_sqlite(&db, sync);
            sqlite_bulk(&c, 0..WEAK_ROWS, WEAK_ROWS, 0);
            sqlite[k] = median_ms(WEAK_RUNS, |v| sqlite_bulk(&c, 0..WEAK_ROWS, WEAK_ROWS, v));
            drop(c);
            remove_sqlite(&db);
        }
        progress("weak flush: redb");
        let path = wp.join("weak.redb");
        let db = open_redb(&path);
        redb_bulk(&db, 0..WEAK_ROWS, WEAK_ROWS, 0);
        let redb_ms = median_ms(WEAK_RUNS, |v| redb_bulk(&db, 0..WEAK_ROWS, WEAK_ROWS, v));
        drop(db);
        let _ = std::fs::remove_file(&path);
        report.add(
            "weak: mark 100,000 changed rows + flush (1 fsynced txn), median of 3, ms",
            1,
            Better::Lower,
            c(ours),
            [
                cn(sqlite[0], "1 txn"),
                cn(sqlite[1], "1 txn, not fsynced"),
                cn(redb_ms, "1 txn, Immediate"),
            ],
        );
    }

    // Growth (issue 8 workload 8): restore time and disk bytes per row by size (bulk
    // buffered upserts, then compaction); and restore with and without superseded history in
    // a retained older epoch.
    for size in [10_000usize, 100_000, 1_000_000, 5_000_000] {
        if size > growth_max {
            continue;
        }
        progress(&format!("growth: {size} rows"));
        let dir = wp.join(format!("growth{size}"));
        let (store, t) = open_store(&dir);
        statelog_bulk(&store, &t, 0..size as u64, 1000, 0, Durability::Buffered);
        store.sync().unwrap();
        store.compact().unwrap();
        drop((store, t));
        let bytes = dir_bytes(&dir) as f64;
        let (secs, _, _) = restore3("statelog", &dir, 1, size);
        let _ = std::fs::remove_dir_all(&dir);
        let per_row = format!("{:.2} us/row", secs * 1e6 / size as f64);
        report.add(
            &format!("growth: open + restore {} rows, s", fmt_num(size as f64, 0)),
            3,
            Better::Neither,
            cn(secs, &per_row),
            [na(), na(), na()],
        );
        report.add(
            &format!(
                "growth: disk bytes per row at {} rows",
                fmt_num(size as f64, 0)
            ),
            1,
            Better::Neither,
            c(bytes / size as f64),
            [na(), na(), na()],
        );
    }
    {
        const HIST_ROWS: u64 = 100_000;
        const UPDATES: u64 = 10;
        let mut times = Vec::new();
        for updates in [0, UPDATES] {
            progress(&format!(
                "history: {HIST_ROWS} rows, {updates} updates each"
            ));
            let dir = wp.join(format!("history{updates}"));
            // Retention of two epochs: after the compaction the older epoch, with every
            // superseded update, stays on disk.
            let (store, t) = open_store_keep(&dir, 2);
            for v in 0..=updates {
                statelog_bulk(&store, &t, 0..HIST_ROWS, 1000, v, Durability::Buffered);
            }
            store.sync().unwrap();
            store.compact().unwrap();
            drop((store, t));
            let bytes = dir_bytes(&dir) as f64;
            let (secs, _, _) = restore3("statelog", &dir, 2, HIST_ROWS as usize);
            let _ = std::fs::remove_dir_all(&dir);
            times.push((secs, bytes));
        }
        report.add(
            "history: restore 100,000 rows written once, then compacted, s",
            3,
            Better::Neither,
            cn(
                times[0].0,
                &format!("{:.1} MiB on disk", times[0].1 / (1 << 20) as f64),
            ),
            [na(), na(), na()],
        );
        report.add(
            "history: the same after 10 updates of each row (older epoch kept), s",
            3,
            Better::Neither,
            cn(
                times[1].0,
                &format!("{:.1} MiB on disk", times[1].1 / (1 << 20) as f64),
            ),
            [na(), na(), na()],
        );
    }

    progress("done");
    println!("Engines: statelog Store (retention of one epoch, no auto-compaction); SQLite");
    println!("(bundled, WAL, prepared statements, busy_timeout); redb {REDB_VERSION} (table rows:");
    println!("u64 -> bincode row, table names: name -> id). synchronous NORMAL commits are not");
    println!(
        "durable when they return (the WAL is fsynced at checkpoints). Reads do not depend on"
    );
    println!("synchronous: SQLite's read figures are shown once, under NORMAL. The last column:");
    println!("how many times better statelog is than the best other engine in the row (above 1:");
    println!("statelog better; for times, latencies, memory and bytes lower is better), leaving");
    println!("out commits that are not durable when they return from rows of durable commits.");
    println!();
    report.print();
    println!();
    println!("load average at the end: {}", load_average());
}

/// The first three fields of /proc/loadavg (other work on the machine skews the figures).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".into(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

const REDB_VERSION: &str = "2.6";
