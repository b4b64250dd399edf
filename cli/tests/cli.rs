//! The `statelog` command, run as a real binary: every command on stores made by the library
//! and by `apply`, exit statuses, verify's findings on damaged files, and `apply` killed
//! halfway.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde::{Deserialize, Serialize};
use statelog::{Readable, Store, StoreOptions, TableDef};

fn statelog(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statelog"))
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

fn statelog_stdin(args: &[&str], dir: &Path, input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .args(args)
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before reading its input (a locked directory): a broken pipe here
    // is not a failure of the test.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
}

/// A store made by the library: a typed table with rows, a compaction, more rows.
fn library_store(dir: &Path) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let users = store.table(TableDef::<u32, User>::new("users")).unwrap();
    let raw = store.bytes_table("raw").unwrap();
    store
        .write(|tx| {
            for i in 0..20 {
                tx.insert(
                    &users,
                    &i,
                    &User {
                        name: format!("user{i}"),
                        age: i,
                    },
                )?;
            }
            tx.put_bytes(&raw, b"k", b"v")
        })
        .unwrap();
    store.compact().unwrap();
    store
        .write(|tx| {
            tx.insert(
                &users,
                &99,
                &User {
                    name: "late".into(),
                    age: 1,
                },
            )
        })
        .unwrap();
    store.close().unwrap();
}

#[test]
fn every_command_on_a_library_store() {
    let dir = tempfile::tempdir().unwrap();
    library_store(dir.path());
    let out = statelog(&["inspect"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("users  typed u32 -> User  schema v1  21 rows"),
        "{s}"
    );
    assert!(s.contains("raw  bytes"), "{s}");
    let out = statelog(&["inspect", "--json"], dir.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(v["lock_holder_pid"], serde_json::Value::Null);
    let out = statelog(&["verify"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = statelog(&["dump", "--table", "raw"], dir.path());
    assert_eq!(
        text(&out.stdout),
        "{\"table\":\"raw\",\"key\":\"k\",\"value\":\"v\"}\n"
    );
    let out = statelog(&["dump", "--table", "users"], dir.path());
    assert_eq!(text(&out.stdout).lines().count(), 21);
    // The older epoch held 20 users.
    let out = statelog(&["dump", "--table", "users", "--epoch", "0"], dir.path());
    assert_eq!(
        text(&out.stdout).lines().count(),
        20,
        "{}",
        text(&out.stderr)
    );
    let out = statelog(&["compact"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("bytes before"));
    let out = statelog(&["rewind", "--to", "1"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = statelog(&["dump", "--table", "users"], dir.path());
    assert_eq!(text(&out.stdout).lines().count(), 21);
    let out = statelog(&["repair"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let users = store.table(TableDef::<u32, User>::new("users")).unwrap();
    assert_eq!(store.read().count(&users).unwrap(), 21);
}

/// `inspect` lists the checkpoints with the statuses and payloads of their records.
#[test]
fn inspect_lists_checkpoints_with_status_and_payload() {
    let dir = tempfile::tempdir().unwrap();
    library_store(dir.path());
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    store.checkpoints().save_with("v1", b"release 1").unwrap();
    store.checkpoints().save("v2").unwrap();
    store.write(|tx| tx.activate_checkpoint("v1")).unwrap();
    store.close().unwrap();
    drop(store);
    let out = statelog(&["inspect"], dir.path());
    let s = text(&out.stdout);
    assert!(s.contains("  v1  epoch "), "{s}");
    assert!(s.contains("active  saved"), "{s}");
    assert!(s.contains("payload \"release 1\""), "{s}");
    let out = statelog(&["inspect", "--json"], dir.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cps = v["checkpoints"].as_array().unwrap();
    assert_eq!(cps[0]["status"], "active");
    assert_eq!(cps[0]["payload_utf8"], "release 1");
    assert_eq!(cps[1]["status"], "pending");
    assert_eq!(cps[1]["payload_hex"], "");
}

/// `backup` beside a writer that holds the directory: the copy opens and holds every durable
/// row; a non-empty destination is refused with status 2.
#[test]
fn backup_beside_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    library_store(&live);
    let store = Store::open(&live, StoreOptions::default()).unwrap();
    let dest = dir.path().join("copy");
    let out = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .arg("backup")
        .args([&live, &dest])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("backed up"),
        "{}",
        text(&out.stdout)
    );
    let again = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .arg("backup")
        .args([&live, &dest])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("not empty"),
        "{}",
        text(&again.stderr)
    );
    let live_rows = text(&statelog(&["dump"], &live).stdout);
    drop(store);
    let copy = Store::open(&dest, StoreOptions::default()).unwrap();
    let copied = copy.table(TableDef::<u32, User>::new("users")).unwrap();
    assert_eq!(copy.read().count(&copied).unwrap(), 21);
    drop(copy);
    assert_eq!(text(&statelog(&["dump"], &dest).stdout), live_rows);
}

/// `dump` after `apply` gives back exactly what was applied (UTF-8 and binary keys and
/// values); a malformed line stops with status 1 unless --keep-going.
#[test]
fn dump_after_apply_round_trips_and_bad_lines_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("new");
    let mut lines = Vec::new();
    let mut want = std::collections::BTreeMap::new();
    for i in 0..50u32 {
        let key = if i % 3 == 0 {
            serde_json::json!({"hex": format!("00ff{i:02x}")})
        } else {
            serde_json::json!(format!("key{i:03}"))
        };
        let value = if i % 4 == 0 {
            serde_json::json!({"hex": "c3"})
        } else {
            serde_json::json!(format!("value {i}"))
        };
        let table = if i % 2 == 0 { "a" } else { "b" };
        lines.push(
            serde_json::json!({"ops": [{"op": "put", "table": table, "key": key, "value": value}]})
                .to_string(),
        );
        want.insert((table.to_string(), key.to_string()), value.to_string());
    }
    lines.push(
        serde_json::json!({"ops": [{"op": "del", "table": "a", "key": "key002"}]}).to_string(),
    );
    want.remove(&("a".to_string(), "\"key002\"".to_string()));
    let out = statelog_stdin(&["apply"], &store_dir, &(lines.join("\n") + "\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 51);
    let out = statelog(&["dump"], &store_dir);
    let mut got = std::collections::BTreeMap::new();
    let mut order = Vec::new();
    for line in text(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        order.push(v["table"].as_str().unwrap().to_string());
        got.insert(
            (
                v["table"].as_str().unwrap().to_string(),
                v["key"].to_string(),
            ),
            v["value"].to_string(),
        );
    }
    assert_eq!(got, want);
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "tables in name order"
    );
    // The delete raised table a's version floor: the store's bookkeeping, dumped when named.
    let out = statelog(&["dump", "--table", "@versions"], &store_dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );
    // Malformed lines.
    let input = "{\"ops\":[{\"op\":\"put\",\"table\":\"a\",\"key\":\"z\",\"value\":\"1\"}]}\nnot json\n{\"ops\":[{\"op\":\"put\",\"table\":\"a\",\"key\":\"y\",\"value\":\"2\"}]}\n";
    let out = statelog_stdin(&["apply"], &store_dir, input);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "ok 1\n");
    assert!(
        text(&out.stderr).starts_with("error 2: "),
        "{}",
        text(&out.stderr)
    );
    let out = statelog_stdin(
        &["apply", "--keep-going", "--durability", "buffered"],
        &store_dir,
        input,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "ok 1\nok 3\n");
}

#[test]
fn exit_statuses_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    // Missing directory, not a statelog directory: 2.
    for cmd in ["inspect", "verify", "dump", "compact", "repair"] {
        let out = statelog(&[cmd], &dir.path().join("missing"));
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(
            text(&out.stderr).contains("does not exist"),
            "{cmd}: {}",
            text(&out.stderr)
        );
        let out = statelog(&[cmd], dir.path());
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(
            text(&out.stderr).contains("not a statelog directory"),
            "{cmd}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"));
    }
    // A writer holds the lock: writing commands refuse with 2 and the holder's pid; reading
    // commands work beside it.
    let store_dir = dir.path().join("s");
    library_store(&store_dir);
    let store = Store::open(&store_dir, StoreOptions::default()).unwrap();
    for args in [vec!["compact"], vec!["repair"], vec!["rewind", "--to", "0"]] {
        let out = statelog(&args, &store_dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let msg = text(&out.stderr);
        assert!(
            msg.contains(&format!("locked by process {}", std::process::id())),
            "{args:?}: {msg}"
        );
    }
    let out = statelog_stdin(&["apply"], &store_dir, "{\"ops\":[]}\n");
    assert_eq!(out.status.code(), Some(2));
    for cmd in ["inspect", "verify", "dump"] {
        let out = statelog(&[cmd], &store_dir);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{cmd} beside a writer: {}",
            text(&out.stderr)
        );
    }
    let out = statelog(&["inspect"], &store_dir);
    assert!(text(&out.stdout).contains(&format!("locked by process {}", std::process::id())));
    drop(store);
    // Help shows examples.
    let out = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("Examples:"));
    let out = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .args(["verify", "--help"])
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("Example:"));
}

fn newest_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

/// A store of one epoch with many small strong commits (each synced, so later entries prove
/// earlier ones were synced).
fn applied_store(dir: &Path) {
    let lines: Vec<String> =
        (0..200).map(|i| format!("{{\"ops\":[{{\"op\":\"put\",\"table\":\"t\",\"key\":\"k{i:04}\",\"value\":\"{}\"}}]}}", "v".repeat(40))).collect();
    let out = statelog_stdin(&["apply"], dir, &(lines.join("\n") + "\n"));
    assert!(out.status.success());
}

fn findings(dir: &Path) -> (i32, Vec<serde_json::Value>) {
    let out = statelog(&["verify", "--json"], dir);
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out.stderr)));
    (
        out.status.code().unwrap(),
        v["findings"].as_array().unwrap().clone(),
    )
}

#[test]
fn verify_reports_damage_at_its_offset() {
    let base = tempfile::tempdir().unwrap();
    // A flipped bit in a middle record: corruption, not a torn tail.
    let d = base.path().join("flip");
    applied_store(&d);
    let seg = newest_segment(&d);
    let mut b = std::fs::read(&seg).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x08;
    std::fs::write(&seg, &b).unwrap();
    let (code, f) = findings(&d);
    assert_eq!(code, 1);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["torn_tail"], false);
    assert!(f[0]["offset"].as_u64().unwrap() <= at as u64);
    assert_eq!(f[0]["file"], seg.display().to_string());
    // A truncated tail: a torn tail.
    let d = base.path().join("cut");
    applied_store(&d);
    let seg = newest_segment(&d);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let (code, f) = findings(&d);
    assert_eq!(code, 1);
    // `apply` closed the segment cleanly, and the manifest holds its length: the unfinished
    // last entry is not crash residue but damage (FORMAT.md §11.13.4), and so is the cut;
    // only salvage repairs them.
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(f[0]["torn_tail"], false);
    assert_eq!(f[1]["torn_tail"], false);
    assert_eq!(f[1]["offset"].as_u64(), Some(len - 7));
    let out = statelog(&["repair", "--dry-run"], &d);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("needs --salvage"));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len - 7);
    let out = statelog(&["repair"], &d);
    assert!(!out.status.success());
    let out = statelog(&["repair", "--salvage"], &d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(".broken"));
    assert_eq!(findings(&d).0, 0);
    // A torn tail a crash leaves (the segment was not closed): repair cuts it, no salvage.
    let d = base.path().join("torn");
    applied_store(&d);
    std::fs::remove_file(d.join("MANIFEST")).unwrap();
    let seg = newest_segment(&d);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    // Crash residue: clean (exit 0), listed; `--strict` exits 3.
    let (code, f) = findings(&d);
    assert_eq!(code, 0);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["torn_tail"], true);
    assert_eq!(statelog(&["verify", "--strict"], &d).status.code(), Some(3));
    let out = statelog(&["inspect"], &d);
    assert!(
        text(&out.stdout).contains("needs recovery on open"),
        "{}",
        text(&out.stdout)
    );
    let out = statelog(&["verify"], &d);
    assert!(
        text(&out.stdout).contains("crash residue"),
        "{}",
        text(&out.stdout)
    );
    let out = statelog(&["repair"], &d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(".broken"));
    assert_eq!(findings(&d).0, 0);
    // A zeroed block in the middle: corruption.
    let d = base.path().join("zero");
    applied_store(&d);
    let seg = newest_segment(&d);
    let mut b = std::fs::read(&seg).unwrap();
    for x in &mut b[32 * 1024 / 8..32 * 1024 / 8 + 512] {
        *x = 0;
    }
    std::fs::write(&seg, &b).unwrap();
    let (code, f) = findings(&d);
    assert_eq!(code, 1);
    assert!(f.iter().any(|f| f["torn_tail"] == false), "{f:?}");
    // Salvage keeps everything readable and a copy of the damaged file.
    let out = statelog(&["repair", "--salvage"], &d);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("lost"));
    assert_eq!(findings(&d).0, 0);
    assert!(std::fs::read_dir(&d).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".seg.broken")
    }));
    // Garbage appended: a torn tail.
    let d = base.path().join("garbage");
    applied_store(&d);
    let seg = newest_segment(&d);
    let mut b = std::fs::read(&seg).unwrap();
    b.extend_from_slice(b"garbage garbage garbage garbage");
    std::fs::write(&seg, &b).unwrap();
    let (code, f) = findings(&d);
    assert_eq!(code, 0, "an unfinished write is crash residue");
    assert_eq!(f[0]["torn_tail"], true);
    // A missing segment in the middle of an epoch: a broken chain.
    let d = base.path().join("missing");
    {
        let opts = StoreOptions {
            log: statelog::epoch::Options {
                segment_bytes: 2048,
                ..Default::default()
            },
            ..StoreOptions::default()
        };
        let store = Store::open(&d, opts).unwrap();
        let t = store.bytes_table("t").unwrap();
        for i in 0..100u32 {
            store
                .write(|tx| tx.put_bytes(&t, &i.to_be_bytes(), &[7u8; 60]))
                .unwrap();
        }
    }
    let mut segs: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() >= 3);
    std::fs::remove_file(&segs[1]).unwrap();
    let (code, f) = findings(&d);
    assert_eq!(code, 1);
    assert!(
        f.iter()
            .any(|f| f["kind"].as_str().unwrap().contains("segment missing")),
        "{f:?}"
    );
}

/// `apply` killed with SIGKILL halfway keeps every transaction it reported `ok`.
#[test]
fn apply_killed_halfway_keeps_every_ok_line() {
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("s");
    let mut child = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .arg("apply")
        .arg(&store_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let feeder = std::thread::spawn(move || {
        for i in 0..100_000u32 {
            let line = format!(
                "{{\"ops\":[{{\"op\":\"put\",\"table\":\"t\",\"key\":\"k{i:06}\",\"value\":\"{i}\"}}]}}\n"
            );
            if stdin.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut acked = Vec::new();
    for line in stdout.lines() {
        let n: u32 = line.unwrap().strip_prefix("ok ").unwrap().parse().unwrap();
        acked.push(n);
        if acked.len() == 300 {
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    let _ = feeder.join();
    let (snap, _) = statelog::read_only_snapshot(
        std::sync::Arc::new(statelog::backend::FsBackend::new()),
        &store_dir,
        statelog::epoch::RecoveryMode::TolerateTornTail,
        None,
    )
    .unwrap();
    let rows: std::collections::HashMap<Vec<u8>, Vec<u8>> = snap
        .raw_rows("t")
        .unwrap()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    for n in acked {
        let i = n - 1;
        assert_eq!(
            rows.get(format!("k{i:06}").as_bytes()).map(Vec::as_slice),
            Some(i.to_string().as_bytes()),
            "line {n} was acknowledged"
        );
    }
}

/// `follow` beside a writer: started before three commits, it prints exactly those three, in
/// order, with their positions, in the `apply` line format.
#[test]
fn follow_prints_each_new_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let t = store.bytes_table("kv").unwrap();
    store.write(|tx| tx.put_bytes(&t, b"before", b"0")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .args(["follow", "--count", "3", "--interval-ms", "5"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It says where it starts once it follows; only then commit.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.starts_with("following"), "{first}");
    let seq0 = store.read().seq();
    for i in 1..=3u8 {
        store
            .write(|tx| {
                tx.put_bytes(&t, &[b'k', i], &[b'0' + i])?;
                if i == 3 {
                    tx.delete_bytes(&t, b"before")?;
                }
                Ok(())
            })
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{}", text(&out.stdout));
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["seq"], seq0 + 1 + i as u64);
        assert_eq!(line["ops"][0]["op"], "put");
        assert_eq!(line["ops"][0]["table"], "kv");
        assert_eq!(line["ops"][0]["value"], format!("{}", i + 1));
    }
    assert_eq!(lines[2]["ops"][1]["op"], "del");
    assert_eq!(lines[2]["ops"][1]["key"], "before");
}

/// A reader that stops early closes the pipe: `inspect` and `verify` end quietly (issue 21),
/// never with a panic (exit 101).
#[test]
fn a_closed_pipe_is_not_a_panic() {
    let base = tempfile::tempdir().unwrap();
    let d = base.path().join("s");
    applied_store(&d);
    for cmd in ["inspect", "verify"] {
        for _ in 0..5 {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_statelog"))
                .arg(cmd)
                .arg(&d)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            drop(child.stdout.take()); // the reader is gone before the first line
            let out = child.wait_with_output().unwrap();
            assert_ne!(out.status.code(), Some(101), "{cmd}: {}", text(&out.stderr));
            assert!(
                !text(&out.stderr).contains("panicked"),
                "{cmd}: {}",
                text(&out.stderr)
            );
        }
    }
}

/// Issue 21 (9): `apply` refuses a directory of unrelated files unless asked, and a line that
/// is not UTF-8 is refused with its number (`--keep-going` goes on after it).
#[test]
fn apply_refuses_foreign_directories_and_names_bad_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let foreign = tmp.path().join("photos");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("cat.jpg"), b"not a store").unwrap();
    let line = "{\"ops\":[{\"op\":\"put\",\"table\":\"t\",\"key\":\"k\",\"value\":\"v\"}]}\n";
    let out = statelog_stdin(&["apply"], &foreign, line);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--allow-foreign-files"));
    assert_eq!(
        std::fs::read_dir(&foreign).unwrap().count(),
        1,
        "nothing was created"
    );
    let out = statelog_stdin(&["apply", "--allow-foreign-files"], &foreign, line);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A store directory is not foreign.
    let out = statelog_stdin(&["apply"], &foreign, line);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let dir = tmp.path().join("store");
    let mut child = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .args(["apply", "--keep-going"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = line.as_bytes().to_vec();
    input.extend_from_slice(b"{\"ops\":[\xff]}\n");
    input.extend_from_slice(line.replace("\"v\"", "\"w\"").as_bytes());
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "ok 1\nok 3\n");
    assert!(
        text(&out.stderr).starts_with("error 2: not UTF-8"),
        "{}",
        text(&out.stderr)
    );
}

/// `statelog inspect DIR | head -1` and `statelog verify DIR | head -1` in a shell: the command
/// itself exits 0 (`pipefail`) and says nothing on standard error.
#[test]
fn head_of_inspect_and_verify_in_a_shell() {
    let base = tempfile::tempdir().unwrap();
    let d = base.path().join("s");
    applied_store(&d);
    for cmd in ["inspect", "verify", "dump"] {
        let script = format!(
            "set -o pipefail; \"{}\" {cmd} \"{}\" | head -1",
            env!("CARGO_BIN_EXE_statelog"),
            d.display()
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{cmd}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).lines().count(), 1, "{cmd}");
        assert_eq!(text(&out.stderr), "", "{cmd}");
    }
}

/// `follow` whose reader went away ends quietly (exit 0) at its next line, not with an error.
#[test]
fn follow_ends_quietly_when_its_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let t = store.bytes_table("kv").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .args(["follow", "--interval-ms", "5"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    assert!(first.starts_with("following"), "{first}");
    drop(child.stdout.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        store.write(|tx| tx.put_bytes(&t, b"k", b"v")).unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("follow did not end after its reader went away");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(rest, "", "nothing more on standard error");
}
