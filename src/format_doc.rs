//! Reading FORMAT.md in tests, so its tables and hex vectors are checked against the code.

use std::collections::HashMap;

/// The on-disk contract, compiled into the tests.
pub(crate) const FORMAT_MD: &str = include_str!("../FORMAT.md");

/// The hex vectors of FORMAT.md introduced by `keyword`: a line `KEYWORD NAME` inside a code
/// block, followed by hex lines (spaces and `|` ignored) up to a blank line or the end of the
/// block.
pub(crate) fn doc_vectors(keyword: &str) -> HashMap<String, Vec<u8>> {
    let prefix = format!("{keyword} ");
    let mut out = HashMap::new();
    let mut current: Option<(String, String)> = None;
    for line in FORMAT_MD.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix(&prefix) {
            current = Some((name.trim().to_string(), String::new()));
        } else if let Some((_, hex)) = current.as_mut() {
            if t.is_empty() || t.starts_with("```") {
                let (name, hex) = current.take().unwrap_or_default();
                let old = out.insert(name.clone(), decode_hex(&hex));
                assert!(old.is_none(), "{keyword} {name} appears twice");
            } else {
                hex.extend(t.chars().filter(|c| c.is_ascii_hexdigit()));
            }
        }
    }
    out
}

/// Decodes a string of hex digits.
pub(crate) fn decode_hex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2).unwrap_or("zz"), 16).expect("hex"))
        .collect()
}

/// Bytes as lower-case hex.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The cells of the rows of the table that follows `<!-- table: NAME -->`.
pub(crate) fn doc_rows(name: &str) -> Vec<Vec<String>> {
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
        rows.push(
            t.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect(),
        );
    }
    rows
}

/// Panics with every difference between the vectors in the document and those the code
/// makes: changed bytes, vectors missing from the document, and vectors no code checks.
pub(crate) fn assert_vectors_match(
    what: &str,
    doc: &HashMap<String, Vec<u8>>,
    code: &HashMap<String, Vec<u8>>,
) {
    let mut problems = Vec::new();
    for (name, bytes) in code {
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
    problems.sort();
    assert!(
        problems.is_empty(),
        "FORMAT.md {what} drifted:\n{}",
        problems.join("\n")
    );
}
