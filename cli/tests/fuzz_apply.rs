//! The `apply_lines` fuzz body (`fuzz/fuzz_targets/apply_lines.rs`, run for long with
//! `fuzz/run.sh apply_lines SECONDS`) over its committed corpus and over inputs made from it by
//! a deterministic generator (bytes flipped, inserted and deleted, corpus lines spliced), so
//! CI runs it without cargo-fuzz.

use std::path::PathBuf;

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/apply_lines");
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn apply_lines_over_its_corpus_and_mutations() {
    let files = corpus();
    assert!(!files.is_empty(), "no corpus for apply_lines");
    for (path, bytes) in &files {
        eprintln!("{}", path.display());
        statelog_cli::apply_line::fuzz(bytes);
    }
    let mut x = 0x5eed_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let (_, base) = &files[(next() % files.len() as u64) as usize];
        let mut b = base.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % (b.len() as u64 + 1)) as usize;
            match next() % 4 {
                0 if at < b.len() => b[at] = next() as u8,
                1 => b.insert(at, next() as u8),
                2 if at < b.len() => {
                    b.remove(at);
                }
                _ => {
                    let (_, other) = &files[(next() % files.len() as u64) as usize];
                    let from = (next() % (other.len() as u64 + 1)) as usize;
                    b.splice(at..at, other[from..].iter().copied());
                }
            }
        }
        statelog_cli::apply_line::fuzz(&b);
    }
}
