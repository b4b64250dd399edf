//! A versioned route catalog (the seed `../shared/seeds/` 002, elastickv's `CatalogStore`):
//! key ranges routed to raft groups, saved with an optimistic check of the catalog's version
//! (bumped by exactly one per save), route ids allocated by the store, a validator that refuses
//! overlapping ranges, and a watcher in another process that applies each new catalog.
//!
//! 1. A watcher process starts: a `Follower` of the directory with a subscription to the
//!    `routes` table; it prints each catalog version it sees.
//! 2. The writer saves three catalogs, each with the version it read; a save holding a stale
//!    version is refused (`VersionMismatch`), and so is one with overlapping ranges
//!    (`Rejected`).
//! 3. The writer waits until the watcher has printed the last version, then stops it.
//! 4. The catalog is deleted and saved anew: its version goes on from where it was, so a
//!    writer holding a version from before the delete is still refused (no ABA).
//!
//! Run with `cargo run --release --example route_catalog [DIR]`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use statelog::{
    ChangeFilter, Changes, Error, Follower, FollowerOptions, Readable, Store, StoreOptions, Table,
    TableDef, TxView,
};

/// A key range `[start, end)` (an empty `end`: to the end of the key space) and its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Route {
    start: String,
    end: String,
    group: u64,
}

const CATALOG: &str = "catalog";

struct Catalog {
    store: Store,
    /// Routes by route id (never 0: ids come from the table's sequence, from 1).
    routes: Table<u64, Route>,
    /// One row, `catalog`, whose row version is the catalog's version.
    meta: Table<String, u64>,
}

/// No two ranges overlap: checked on the transaction's view before it commits.
fn no_overlaps(view: &TxView<'_>, routes: &Table<u64, Route>, _: &[u64]) -> Result<(), String> {
    let mut all: Vec<Route> = view
        .range(routes, ..)
        .map_err(|e| e.to_string())?
        .map(|r| r.map(|(_, route)| route).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    all.sort_by(|a, b| a.start.cmp(&b.start));
    for pair in all.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.end.is_empty() || a.end > b.start {
            return Err(format!(
                "[{}, {}) overlaps [{}, {})",
                a.start, a.end, b.start, b.end
            ));
        }
    }
    Ok(())
}

impl Catalog {
    fn open(dir: &Path) -> statelog::Result<Catalog> {
        let store = Store::open(dir, StoreOptions::default())?;
        let routes = store.table(TableDef::new("routes").validate(no_overlaps))?;
        let meta = store.table(TableDef::new("meta"))?;
        Ok(Catalog {
            store,
            routes,
            meta,
        })
    }

    /// The catalog's version (0: never saved) and its routes by id.
    fn load(&self) -> statelog::Result<(u64, Vec<(u64, Route)>)> {
        let snap = self.store.read();
        let version = snap.version(&self.meta, &CATALOG.to_string())?;
        let routes = snap.list(&self.routes)?;
        Ok((version, routes))
    }

    /// Replaces the routes if the catalog is still at `expected`; returns the new version
    /// (`expected + 1`; for a catalog saved anew after a delete, above all its old versions).
    /// Routes get new ids.
    fn save(&self, expected: u64, routes: &[Route]) -> statelog::Result<u64> {
        self.store.write(|tx| {
            // The check and the bump: refused unless the version is still `expected`.
            let version = tx.save(&self.meta, &CATALOG.to_string(), &(expected + 1), expected)?;
            let old: Vec<u64> = tx
                .range(&self.routes, ..)?
                .map(|r| r.map(|(id, _)| id))
                .collect::<statelog::Result<_>>()?;
            for id in old {
                tx.delete(&self.routes, &id)?;
            }
            for r in routes {
                let id = tx.next_id(&self.routes)?;
                tx.insert(&self.routes, &id, r)?;
            }
            Ok(version)
        })
    }
}

fn route(start: &str, end: &str, group: u64) -> Route {
    Route {
        start: start.into(),
        end: end.into(),
        group,
    }
}

/// The watcher process: prints `version N routes M` for each catalog it sees, until `last`.
fn watch(dir: &Path, last: u64) -> statelog::Result<()> {
    let follower = Follower::open(dir, FollowerOptions::default())?;
    let sub = follower.subscribe(ChangeFilter::tables(["meta"]));
    let _watcher = follower.watch(Duration::from_millis(5));
    println!("watching");
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen < last && Instant::now() < deadline {
        // Wait for a change to the catalog's version, then read the state that holds it.
        match sub.recv_timeout(Duration::from_millis(200)) {
            Ok(Changes::Since(_) | Changes::Reset) | Err(_) => {}
        }
        let snap = follower.read();
        let Ok(meta) = snap.table_named::<String, u64>("meta") else {
            continue;
        };
        let Ok(routes) = snap.table_named::<u64, Route>("routes") else {
            continue;
        };
        let version = snap.version(&meta, &CATALOG.to_string())?;
        if version > seen {
            seen = version;
            println!("version {version} routes {}", snap.count(&routes)?);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("watch") {
        let dir = PathBuf::from(&args[2]);
        return Ok(watch(&dir, args[3].parse()?)?);
    }
    let given = args.get(1).map(PathBuf::from);
    let dir = given.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("statelog-routes-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let catalog = Catalog::open(&dir)?;

    // 1. The watcher, in another process.
    let mut child = Command::new(std::env::current_exe()?)
        .args(["watch", &dir.display().to_string(), "3"])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let first = lines.next().ok_or("the watcher ended")??;
    assert_eq!(first, "watching");

    // 2. Three saves, each with the version it read.
    let (v0, _) = catalog.load()?;
    let v1 = catalog.save(v0, &[route("", "m", 1), route("m", "", 2)])?;
    let v2 = catalog.save(
        v1,
        &[route("", "g", 1), route("g", "m", 3), route("m", "", 2)],
    )?;
    println!("saved versions {v1} and {v2}");
    // A writer that read version 1 is refused: the catalog moved on.
    match catalog.save(v1, &[route("", "", 9)]) {
        Err(Error::VersionMismatch {
            expected, found, ..
        }) => {
            println!("a save holding version {expected} was refused (the catalog is at {found})")
        }
        other => return Err(format!("a stale save was not refused: {other:?}").into()),
    }
    // Overlapping ranges are refused by the validator, and nothing is written.
    match catalog.save(v2, &[route("", "n", 1), route("m", "", 2)]) {
        Err(Error::Rejected { reason, .. }) => println!("overlapping ranges refused: {reason}"),
        other => return Err(format!("an overlap was not refused: {other:?}").into()),
    }
    let v3 = catalog.save(v2, &[route("", "", 7)])?;
    let (version, routes) = catalog.load()?;
    assert_eq!((version, routes.len()), (v3, 1));
    assert!(
        routes.iter().all(|(id, _)| *id > 0),
        "route ids are never 0"
    );
    println!("catalog version {version}: {routes:?}");

    // 3. The watcher saw the last version.
    let mut last = String::new();
    for line in lines {
        let line = line?;
        println!("watcher: {line}");
        last = line;
        if last.starts_with(&format!("version {v3} ")) {
            break;
        }
    }
    assert_eq!(last, format!("version {v3} routes 1"));
    child.wait()?;

    // 4. A catalog deleted and saved anew does not take up its old versions (no ABA): a writer
    //    that read a version from before the delete is refused, never accepted.
    catalog
        .store
        .write(|tx| tx.delete(&catalog.meta, CATALOG).map(|_| ()))?;
    assert_eq!(catalog.load()?.0, 0);
    let v4 = catalog.save(0, &[route("", "", 8)])?;
    assert!(v4 > v3, "a new catalog's version {v4} repeats an old one");
    for stale in [v1, v3] {
        match catalog.save(stale, &[route("", "", 9)]) {
            Err(Error::VersionMismatch { found, .. }) if found == v4 => {}
            other => return Err(format!("a stale save after a delete: {other:?}").into()),
        }
    }
    println!("deleted and saved anew at version {v4}; saves holding {v1} or {v3} refused");
    catalog.store.close()?;
    if given.is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
