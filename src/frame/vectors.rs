//! FORMAT.md agrees with the code: its layout tables match the offset constants and its hex
//! test vectors are what the writer produces, byte for byte.

use std::collections::HashMap;
use std::path::Path;

use crate::format_doc::{assert_vectors_match, doc_rows, doc_vectors};

use super::format::*;
use super::writer::{LogOptions, LogWriter};
use crate::backend::FsBackend;

/// Rows `| offset | width | field |` of the table that follows `<!-- table: NAME -->`.
fn doc_table(name: &str) -> Vec<(usize, usize, String)> {
    doc_rows(name)
        .into_iter()
        .filter_map(|cells| {
            let o = cells.first()?.parse().ok()?;
            let w = cells.get(1)?.parse().ok()?;
            Some((o, w, cells.get(2)?.trim_matches('`').to_string()))
        })
        .collect()
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
    let doc = doc_vectors("vector");
    let code = code_vectors();
    assert_vectors_match("vectors", &doc, &code);
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
