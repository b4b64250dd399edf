//! Names in a store directory (FORMAT.md §11.1).

use std::path::{Path, PathBuf};

/// Suffix of segment files.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of files being written that are not yet part of the store.
pub const TMP_SUFFIX: &str = ".tmp";
/// Suffix given to segments cut by a rewind (kept aside, never read).
pub const REWOUND_SUFFIX: &str = ".rewound";
/// Suffix given to segments set aside by a fallback past a damaged epoch start.
pub const BROKEN_SUFFIX: &str = ".broken";
/// Name of the rewind intent file.
pub const REWIND_FILE: &str = "REWIND";
/// Frame-header tag of segment files.
pub const SEGMENT_TAG: u32 = 1;

/// The file name of segment `seq`: 16 lower-case hex digits, so names sort by number.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:016x}{SEGMENT_SUFFIX}")
}

/// The path of segment `seq` in `dir`.
pub fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(segment_name(seq))
}

/// The number of a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(SEGMENT_SUFFIX)?;
    if hex.len() != 16
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_number_and_parse_back() {
        let seqs = [0u64, 1, 9, 10, 255, 4096, u64::MAX];
        let mut names: Vec<String> = seqs.iter().map(|&s| segment_name(s)).collect();
        names.sort();
        let back: Vec<u64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
        assert_eq!(back, seqs);
        for bad in [
            "00000000000000001.seg",
            "000000000000000g.seg",
            "000000000000000A.seg",
            "0000000000000001.seg.tmp",
            "x.seg",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
