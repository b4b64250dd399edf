//! The JSON lines `statelog apply` reads, one transaction per line (README, "The `statelog`
//! command"), and a fuzz body for the parser ([`fuzz`]): lines are input from users, so the
//! parser never panics, and what it accepts means one thing.

use serde_json::{Map, Value};

/// A key or value in an apply line: a string, or {"hex": "..."}.
fn parse_bytes(v: &Value) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) => {
            let h = o
                .get("hex")
                .and_then(Value::as_str)
                .ok_or("expected a string or {\"hex\": \"...\"}")?;
            if h.len() % 2 != 0 {
                return Err("odd number of hex digits".into());
            }
            (0..h.len() / 2)
                .map(|i| {
                    u8::from_str_radix(h.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
                        .map_err(|_| "not hex".to_string())
                })
                .collect()
        }
        _ => Err("expected a string or {\"hex\": \"...\"}".into()),
    }
}

/// One operation of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOp {
    /// Put `key` = `value` in bytes table `table`.
    Put(String, Vec<u8>, Vec<u8>),
    /// Delete `key` from bytes table `table`.
    Del(String, Vec<u8>),
}

/// Parses one line: `{"ops": [{"op": "put"|"del", "table": .., "key": .., "value": ..}, ..]}`;
/// keys and values are strings or `{"hex": ".."}`. The error says what is wrong, and where.
pub fn parse_line(line: &str) -> Result<Vec<ApplyOp>, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let ops = v
        .get("ops")
        .and_then(Value::as_array)
        .ok_or("expected {\"ops\": [...]}")?;
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let field = |f: &str| op.get(f).ok_or(format!("op {i}: missing \"{f}\""));
            let table = field("table")?
                .as_str()
                .ok_or(format!("op {i}: table must be a string"))?
                .to_string();
            let key = parse_bytes(field("key")?).map_err(|e| format!("op {i}: key: {e}"))?;
            match field("op")?.as_str() {
                Some("put") => {
                    let value =
                        parse_bytes(field("value")?).map_err(|e| format!("op {i}: value: {e}"))?;
                    Ok(ApplyOp::Put(table, key, value))
                }
                Some("del") => Ok(ApplyOp::Del(table, key)),
                _ => Err(format!("op {i}: \"op\" must be \"put\" or \"del\"")),
            }
        })
        .collect()
}

/// The line that [`parse_line`] reads as `ops` (keys and values as hex objects).
pub fn to_line(ops: &[ApplyOp]) -> String {
    let hex = |b: &[u8]| {
        let mut m = Map::new();
        m.insert(
            "hex".into(),
            Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        );
        Value::Object(m)
    };
    let ops: Vec<Value> = ops
        .iter()
        .map(|op| {
            let mut m = Map::new();
            let (name, table, key, value) = match op {
                ApplyOp::Put(t, k, v) => ("put", t, k, Some(v)),
                ApplyOp::Del(t, k) => ("del", t, k, None),
            };
            m.insert("op".into(), Value::String(name.into()));
            m.insert("table".into(), Value::String(table.clone()));
            m.insert("key".into(), hex(key));
            if let Some(v) = value {
                m.insert("value".into(), hex(v));
            }
            Value::Object(m)
        })
        .collect();
    let mut line = Map::new();
    line.insert("ops".into(), Value::Array(ops));
    Value::Object(line).to_string()
}

/// The fuzz body (`fuzz/fuzz_targets/apply_lines.rs`): each line of the input (as UTF-8,
/// invalid bytes replaced) is parsed; the parser never panics, and a line it accepts,
/// written back by [`to_line`], parses to the same operations.
pub fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Ok(ops) = parse_line(line) {
            let again = to_line(&ops);
            assert_eq!(
                parse_line(&again).as_ref(),
                Ok(&ops),
                "{line:?} parsed as {ops:?}, written back as {again:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_write_back() {
        let ops = parse_line(
            r#"{"ops":[{"op":"put","table":"t","key":"k","value":{"hex":"00ff"}},{"op":"del","table":"t","key":{"hex":"6b"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![
                ApplyOp::Put("t".into(), b"k".to_vec(), vec![0, 255]),
                ApplyOp::Del("t".into(), b"k".to_vec())
            ]
        );
        assert_eq!(parse_line(&to_line(&ops)), Ok(ops));
        assert!(parse_line(r#"{"ops":[{"op":"put","table":"t","key":{"hex":"0"}}]}"#).is_err());
        assert!(parse_line("{\"ops\": 1}").is_err());
    }
}
