//! FORMAT.md agrees with the code: its layout tables match the offset constants and its hex
//! test vectors are what the writer produces, byte for byte.

use std::collections::HashMap;
use std::path::Path;

use super::format::*;
use super::writer::{LogOptions, LogWriter};
use crate::backend::FsBackend;

const FORMAT_MD: &str = include_str!("../../FORMAT.md");

/// The hex vectors of FORMAT.md: a line `vector NAME` inside a code block, followed by hex
/// lines (spaces and `|` ignored) up to a blank line or the end of the block.
fn doc_vectors() -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut current: Option<(String, String)> = None;
    for line in FORMAT_MD.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("vector ") {
            current = Some((name.trim().to_string(), String::new()));
        } else if let Some((_, hex)) = current.as_mut() {
            if t.is_empty() || t.starts_with("```") {
                let (name, hex) = current.take().unwrap_or_default();
                out.insert(name, decode_hex(&hex));
            } else {
                hex.extend(t.chars().filter(|c| c.is_ascii_hexdigit()));
            }
        }
    }
    out
}

fn decode_hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2).unwrap_or("zz"), 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Rows `| offset | width | field |` of the table that follows `<!-- table: NAME -->`.
fn doc_table(name: &str) -> Vec<(usize, usize, String)> {
    let marker = format!("<!-- table: {name} -->");
    let start = FORMAT_MD.find(&marker).expect("table marker in FORMAT.md");
    let mut rows = Vec::new();
    for line in FORMAT_MD
        .get(start + marker.len()..)
        .unwrap_or("")
        .lines()
        .skip(1)
    {
        let t = line.trim();
        if !t.starts_with('|') {
            if rows.is_empty() {
                continue;
            }
            break;
        }
        let cells: Vec<&str> = t.trim_matches('|').split('|').map(str::trim).collect();
        let (Some(o), Some(w), Some(f)) = (cells.first(), cells.get(1), cells.get(2)) else {
            continue;
        };
        if let (Ok(o), Ok(w)) = (o.parse(), w.parse()) {
            rows.push((o, w, f.trim_matches('`').to_string()));
        }
    }
    rows
}

/// The vectors, made by the code: a file with id 0x0123456789abcdef, holding "hello", an
/// empty entry, and (with 1 KiB blocks) a 1,100-byte entry that needs two records.
fn code_vectors() -> HashMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let be = FsBackend::new();
    let opts = |block_size| LogOptions {
        file_id: 0x0123_4567_89ab_cdef,
        block_size,
        tag: 0,
    };
    let mut out = HashMap::new();
    let path = dir.path().join("a.log");
    let mut w = LogWriter::create(&be, &path, &opts(DEFAULT_BLOCK_SIZE)).expect("create");
    let hello = w.append(b"hello").expect("append");
    let empty = w.append(b"").expect("append");
    w.sync().expect("sync");
    let after = w.append(b"!").expect("append");
    w.sync().expect("sync");
    drop(w);
    let bytes = std::fs::read(&path).expect("read");
    let slice = |a: u64, b: u64| bytes.get(a as usize..b as usize).unwrap_or(&[]).to_vec();
    out.insert("file-header".into(), slice(0, FILE_HEADER_LEN as u64));
    out.insert("record-hello".into(), slice(hello.start, hello.end));
    out.insert("record-empty".into(), slice(empty.start, empty.end));
    out.insert("record-after-sync".into(), slice(after.start, after.end));

    let path = dir.path().join("b.log");
    let mut w = LogWriter::create(&be, &path, &opts(1024)).expect("create");
    let payload: Vec<u8> = (0..1100u32).map(|i| (i % 251) as u8).collect();
    let big = w.append(&payload).expect("append");
    w.sync().expect("sync");
    drop(w);
    let bytes = std::fs::read(&path).expect("read");
    let slice = |a: u64, b: u64| bytes.get(a as usize..b as usize).unwrap_or(&[]).to_vec();
    assert_eq!((big.start, big.end), (32, 1024 + 11 + 127));
    out.insert("header-1k".into(), slice(0, FILE_HEADER_LEN as u64));
    out.insert("first-record-header".into(), slice(32, 32 + 11));
    out.insert("first-record-mark".into(), slice(43, 51));
    out.insert("last-record-header".into(), slice(1024, 1024 + 11));
    out
}

#[test]
fn format_md_vectors_match_the_code() {
    let doc = doc_vectors();
    let code = code_vectors();
    let mut problems = Vec::new();
    for (name, bytes) in &code {
        match doc.get(name) {
            Some(d) if d == bytes => {}
            Some(d) => problems.push(format!("{name}: doc {} code {}", hex(d), hex(bytes))),
            None => problems.push(format!(
                "{name}: missing from FORMAT.md; code {}",
                hex(bytes)
            )),
        }
    }
    for name in doc.keys() {
        if !code.contains_key(name) {
            problems.push(format!("{name}: in FORMAT.md but not checked by the code"));
        }
    }
    assert!(
        problems.is_empty(),
        "FORMAT.md vectors drifted:\n{}",
        problems.join("\n")
    );
    // The vectors decode with the reader's rules too.
    let header = FileHeader::decode(code.get("file-header").expect("vector"), Path::new("v"))
        .expect("decode");
    assert_eq!(
        header,
        FileHeader::new(0x0123_4567_89ab_cdef, DEFAULT_BLOCK_SIZE, 0)
    );
}

#[test]
fn format_md_tables_match_the_constants() {
    let header: Vec<(usize, usize, String)> = vec![
        (MAGIC_OFFSET, MAGIC.len(), "magic".into()),
        (VERSION_OFFSET, 2, "version".into()),
        (FLAGS_OFFSET, 2, "flags".into()),
        (BLOCK_SIZE_OFFSET, 4, "block_size".into()),
        (FILE_ID_OFFSET, 8, "file_id".into()),
        (TAG_OFFSET, 4, "tag".into()),
        (HEADER_CRC_OFFSET, 4, "header_crc".into()),
    ];
    assert_eq!(doc_table("file-header"), header);
    let last = header.last().map_or(0, |(o, w, _)| o + w);
    assert_eq!(last, FILE_HEADER_LEN);
    let record: Vec<(usize, usize, String)> = vec![
        (REC_CRC_OFFSET, 4, "crc".into()),
        (REC_TYPE_OFFSET, 1, "type".into()),
        (REC_LEN_OFFSET, 2, "length".into()),
        (REC_BACK_OFFSET, 4, "back_offset".into()),
    ];
    assert_eq!(doc_table("record-header"), record);
    assert_eq!(
        record.last().map_or(0, |(o, w, _)| o + w),
        RECORD_HEADER_LEN
    );
}
