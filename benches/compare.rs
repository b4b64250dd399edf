//! The store against SQLite (WAL mode, the settings a careful user picks: prepared statements,
//! transactions), on the same rows, in one run. Prints one table of figures and ratios.
//!
//! Run with `cargo bench --bench store_vs_sqlite` (add `-- --rows N` for another table size;
//! default 1,000,000). Figures are recorded in BENCHMARKS.md.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
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

/// Retention of one epoch: after compaction the directory holds only the snapshot, as
/// SQLite's file holds only the current rows (the default keeps one older epoch for rewind).
fn store_options() -> StoreOptions {
    StoreOptions {
        auto_compact: false,
        log: statelog::epoch::Options {
            retention: statelog::epoch::Retention {
                keep_epochs: 1,
                keep_for: None,
            },
            ..Default::default()
        },
        ..StoreOptions::default()
    }
}

fn open_store(dir: &Path) -> (Store, Table<u64, Row>) {
    let store = Store::open(dir, store_options()).unwrap();
    let t = store
        .table(TableDef::<u64, Row>::new("rows").unique("name", |r| r.name.clone()))
        .unwrap();
    (store, t)
}

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

/// Child mode: restore the store in `dir` and report time and memory.
fn restore_child(dir: &Path) {
    let (base, _) = memory_kib();
    let t0 = Instant::now();
    let (store, t) = open_store(dir);
    let n = store.read().count(&t).unwrap();
    let took = t0.elapsed();
    let (rss, hwm) = memory_kib();
    println!(
        "{n} {} {} {}",
        took.as_secs_f64(),
        rss.saturating_sub(base),
        hwm.saturating_sub(base)
    );
}

struct Report {
    rows: Vec<(String, String, String, String)>,
}

impl Report {
    fn add(&mut self, what: &str, ours: String, sqlite: String, ratio: String) {
        println!("{what:<48} {ours:>18} {sqlite:>18} {ratio:>10}");
        self.rows.push((what.into(), ours, sqlite, ratio));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "restore-child") {
        restore_child(Path::new(&args[i + 1]));
        return;
    }
    let rows: usize = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1_000_000);
    let work =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let mut report = Report { rows: Vec::new() };
    println!(
        "rows: {rows}; machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<48} {:>18} {:>18} {:>10}",
        "workload", "statelog", "SQLite", "ratio"
    );

    // 1. Strong single-row commits: statelog strong vs SQLite WAL synchronous=FULL.
    for threads in [1usize, 8] {
        let per = if threads == 1 { 2000 } else { 500 };
        let d = work.path().join(format!("strong{threads}"));
        let (store, t) = open_store(&d);
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let (store, t) = (store.clone(), t.clone());
                s.spawn(move || {
                    for i in 0..per {
                        let id = (th * per + i) as u64;
                        store.write(|tx| tx.insert(&t, &id, &row(id))).unwrap();
                    }
                });
            }
        });
        let ours = per_sec(threads * per, t0.elapsed());
        drop(store);
        let db = work.path().join(format!("strong{threads}.sqlite"));
        drop(open_sqlite(&db, "FULL"));
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let db = db.clone();
                s.spawn(move || {
                    let c = open_sqlite(&db, "FULL");
                    for i in 0..per {
                        sqlite_upsert(&c, &row((th * per + i) as u64));
                    }
                });
            }
        });
        let theirs = per_sec(threads * per, t0.elapsed());
        report.add(
            &format!("strong single-row commits, {threads} thread(s) /s"),
            format!("{ours:.0}"),
            format!("{theirs:.0} (FULL)"),
            format!("{:.1}x", ours / theirs),
        );
    }

    // 2. Bulk upserts in 1,000-row transactions: statelog buffered commits (durable at the
    //    next sync, like SQLite NORMAL, whose WAL commits are fsynced only at checkpoints),
    //    one final sync; SQLite synchronous=NORMAL.
    let sdir = work.path().join("bulk");
    let (store, t) = open_store(&sdir);
    let t0 = Instant::now();
    for chunk in 0..rows.div_ceil(1000) {
        store
            .write_with(Durability::Buffered, |tx| {
                for id in (chunk * 1000)..((chunk + 1) * 1000).min(rows) {
                    tx.insert(&t, &(id as u64), &row(id as u64))?;
                }
                Ok(())
            })
            .unwrap();
    }
    store.sync().unwrap();
    let ours_bulk = t0.elapsed();
    let sqlite_db = work.path().join("bulk.sqlite");
    let c = open_sqlite(&sqlite_db, "NORMAL");
    let t0 = Instant::now();
    for chunk in 0..rows.div_ceil(1000) {
        c.execute_batch("BEGIN").unwrap();
        for id in (chunk * 1000)..((chunk + 1) * 1000).min(rows) {
            sqlite_upsert(&c, &row(id as u64));
        }
        c.execute_batch("COMMIT").unwrap();
    }
    let theirs_bulk = t0.elapsed();
    report.add(
        &format!("{rows} upserts in 1,000-row transactions, rows/s"),
        format!("{:.0}", per_sec(rows, ours_bulk)),
        format!("{:.0} (NORMAL)", per_sec(rows, theirs_bulk)),
        format!(
            "{:.1}x",
            theirs_bulk.as_secs_f64() / ours_bulk.as_secs_f64()
        ),
    );

    // 3. Point gets, uniform random ids, decoded into structs.
    let gets = 500_000;
    let snap = store.read();
    let mut rng = Rng(1);
    let t0 = Instant::now();
    for _ in 0..gets {
        let id = rng.below(rows as u64);
        black_box(snap.get(&t, &id).unwrap());
    }
    let ours = per_sec(gets, t0.elapsed());
    let mut st = c
        .prepare_cached("SELECT id, name, tags, score, created_at FROM rows WHERE id = ?1")
        .unwrap();
    let mut rng = Rng(1);
    let t0 = Instant::now();
    for _ in 0..gets {
        let id = rng.below(rows as u64) as i64;
        black_box(st.query_row(params![id], sqlite_row).unwrap());
    }
    let theirs = per_sec(gets, t0.elapsed());
    drop(st);
    report.add(
        "point gets /s",
        format!("{ours:.0}"),
        format!("{theirs:.0}"),
        format!("{:.1}x", ours / theirs),
    );

    // 4. Range scans of 100 rows.
    let scans = 20_000;
    let mut rng = Rng(2);
    let t0 = Instant::now();
    for _ in 0..scans {
        let from = rng.below(rows as u64);
        let mut n = 0;
        for r in snap.range(&t, from..from + 100).unwrap() {
            black_box(r.unwrap());
            n += 1;
        }
        black_box(n);
    }
    let ours = per_sec(scans, t0.elapsed());
    let mut st = c
        .prepare_cached("SELECT id, name, tags, score, created_at FROM rows WHERE id >= ?1 AND id < ?2 ORDER BY id")
        .unwrap();
    let mut rng = Rng(2);
    let t0 = Instant::now();
    for _ in 0..scans {
        let from = rng.below(rows as u64) as i64;
        let mut n = 0;
        for r in st.query_map(params![from, from + 100], sqlite_row).unwrap() {
            black_box(r.unwrap());
            n += 1;
        }
        black_box(n);
    }
    let theirs = per_sec(scans, t0.elapsed());
    drop(st);
    report.add(
        "range scans of 100 rows /s",
        format!("{ours:.0}"),
        format!("{theirs:.0}"),
        format!("{:.1}x", ours / theirs),
    );
    drop(snap);

    // 5. Compact, then open + restore vs SQLite's SELECT of every row into structs.
    store.compact().unwrap();
    drop(store);
    drop(c);
    let c = open_sqlite(&sqlite_db, "NORMAL");
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let ours_bytes = dir_bytes(&sdir);
    let theirs_bytes = std::fs::metadata(&sqlite_db).unwrap().len()
        + std::fs::metadata(sqlite_db.with_extension("sqlite-wal")).map_or(0, |m| m.len());
    let exe = std::env::current_exe().unwrap();
    let mut restore = Vec::new();
    for _ in 0..3 {
        let out = std::process::Command::new(&exe)
            .arg("restore-child")
            .arg(&sdir)
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let f: Vec<f64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        assert_eq!(
            f.first().copied(),
            Some(rows as f64),
            "child: {line} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        restore.push((f[1], f[2], f[3]));
    }
    restore.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (secs, retained_kib, peak_kib) = restore[1];
    let mut sqlite_times = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut st = c
            .prepare("SELECT id, name, tags, score, created_at FROM rows")
            .unwrap();
        let all: Vec<Row> = st
            .query_map([], sqlite_row)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(all.len(), rows);
        sqlite_times.push(t0.elapsed().as_secs_f64());
    }
    sqlite_times.sort_by(f64::total_cmp);
    report.add(
        &format!("open + restore {rows} rows (page cache warm), s"),
        format!("{secs:.3}"),
        format!("{:.3} (SELECT *)", sqlite_times[1]),
        format!("{:.1}x", sqlite_times[1] / secs),
    );
    report.add(
        "restore memory: peak / retained (MiB)",
        format!("{:.0} / {:.0}", peak_kib / 1024.0, retained_kib / 1024.0),
        "-".into(),
        format!("{:.2}", peak_kib / retained_kib.max(1.0)),
    );
    report.add(
        "disk bytes per row after compaction",
        format!("{:.1}", ours_bytes as f64 / rows as f64),
        format!("{:.1}", theirs_bytes as f64 / rows as f64),
        format!("{:.2}", ours_bytes as f64 / theirs_bytes as f64),
    );
    let _ = report.rows.len();
}
