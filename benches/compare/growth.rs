//! Growth (issue 8 workload 8): restore time and disk bytes per row by size (bulk buffered
//! upserts, then compaction); and restore with and without superseded history in a retained
//! older epoch.

use std::path::Path;

use statelog::Durability;

use crate::children::restore3;
use crate::engines::statelog::{open_store, open_store_keep, statelog_bulk};
use crate::table::{Better, Report, c, cn, fmt_num, na};
use crate::util::{dir_bytes, progress};

pub fn run(wp: &Path, growth_max: usize, report: &mut Report) {
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
}
