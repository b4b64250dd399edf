//! `statelog import-stateio` run as a real binary on the grailbio files of
//! `tests/fixtures/grailbio-stateio/`: the import, then `verify`, `dump` and `inspect` on the
//! result; damage reported as `verify` reports it, with its exit statuses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/grailbio-stateio")
        .join(name)
}

fn statelog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statelog"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn import_then_verify_dump_and_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let src = fixture("stateio_small.bin");
    let out = statelog(&["import-stateio", s(&src), s(&dir)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("stateio epoch 52 -> epoch 1: snapshot, 1 updates"),
        "{stdout}"
    );
    assert!(
        stdout.contains("imported 3 epochs, 7 entries (5 updates)"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with(": clean"), "{stdout}");

    let out = statelog(&["verify", s(&dir), "--strict"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let out = statelog(&["dump", s(&dir)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let values: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["table"], "stateio");
            (l["key"].as_str().unwrap(), l["value"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        values,
        vec![
            ("epoch", "104"),
            ("snapshot", "S2"),
            ("update/00000000000000000001", "u4"),
            ("update/00000000000000000002", "u5"),
        ]
    );
    // An older epoch: the first one, without snapshot.
    let out = statelog(&["dump", s(&dir), "--epoch", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let old = text(&out.stdout);
    assert_eq!(old.lines().count(), 3, "{old}");
    assert!(old.contains("\"u1\"") && old.contains("\"u2\"") && !old.contains("snapshot"));

    let out = statelog(&["inspect", s(&dir), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["epochs"].as_array().map(Vec::len), Some(3), "{seen}");
}

#[test]
fn damage_in_the_middle_exits_1_and_names_file_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("stateio_small.bin")).unwrap();
    bytes[26 + 20] ^= 0x40;
    let src = tmp.path().join("damaged.state");
    std::fs::write(&src, &bytes).unwrap();
    let dir = tmp.path().join("store");
    let out = statelog(&["import-stateio", s(&src), s(&dir)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:26: corruption (skipped): record checksum mismatch",
            src.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("1 findings of damage skipped"), "{stdout}");
    // What was readable is a valid store.
    let out = statelog(&["verify", s(&dir)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    // The same as JSON.
    let dir2 = tmp.path().join("store2");
    let out = statelog(&["import-stateio", s(&src), s(&dir2), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["clean"], false);
    assert_eq!(report["findings"][0]["offset"], 26);
    assert_eq!(report["findings"][0]["torn_tail"], false);
    assert_eq!(report["epochs"][0]["updates"], 1);
}

#[test]
fn a_torn_tail_is_clean_unless_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("stateio_multiblock.bin")).unwrap();
    bytes.truncate(100_000);
    let src = tmp.path().join("torn.state");
    std::fs::write(&src, &bytes).unwrap();
    let out = statelog(&["import-stateio", s(&src), s(&tmp.path().join("a"))]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(":40129: note: torn tail"), "{stdout}");
    let out = statelog(&[
        "import-stateio",
        "--strict",
        s(&src),
        s(&tmp.path().join("b")),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
}

#[test]
fn refuses_a_directory_that_is_not_empty_and_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("other"), b"x").unwrap();
    let src = fixture("stateio_small.bin");
    let out = statelog(&["import-stateio", s(&src), s(tmp.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not empty"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

    let missing = tmp.path().join("missing.state");
    let out = statelog(&["import-stateio", s(&missing), s(&tmp.path().join("new"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
}
