//! FORMAT.md §14, the command's output formats: its examples are one session, run here. Each
//! example is the code block after `<!-- cli-example: NAME -->` in FORMAT.md; the inputs are
//! fed to the command and its outputs compared with the examples byte for byte (the JSON of
//! `inspect` and `verify` after undoing the wrapping, with the creation times set to the
//! example's).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::Value;
use statelog::backend::FsBackend;
use statelog::epoch::RecoveryMode;
use statelog::{Store, StoreOptions, TableDef, read_only_snapshot};

const FORMAT_MD: &str = include_str!("../../FORMAT.md");

/// The lines of the code block after `<!-- cli-example: NAME -->`, each ending in a newline.
fn example(name: &str) -> String {
    let marker = format!("<!-- cli-example: {name} -->");
    let mut found = FORMAT_MD.match_indices(&marker);
    let (at, _) = found
        .next()
        .unwrap_or_else(|| panic!("FORMAT.md has no example {name}"));
    assert!(found.next().is_none(), "the example {name} appears twice");
    let mut lines = FORMAT_MD[at + marker.len()..].lines().skip(1);
    let fence = lines.next().unwrap_or_default();
    assert!(fence.starts_with("```"), "{name}: a code block follows");
    let mut out = String::new();
    for line in lines {
        if line.starts_with("```") {
            return out;
        }
        out.push_str(line);
        out.push('\n');
    }
    panic!("{name}: the code block does not end");
}

/// The statelog command, run in `cwd` (so paths print as the examples show them).
fn statelog(cwd: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statelog"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs one command of the `follow-session` example (`statelog ARGS` or
/// `echo 'LINE' | statelog ARGS`), which must succeed.
fn session_command(cwd: &Path, line: &str) {
    let (stdin, command) = match line.strip_prefix("echo '") {
        Some(rest) => {
            let (input, command) = rest.split_once("' | ").expect("echo 'LINE' | statelog");
            (format!("{input}\n"), command)
        }
        None => (String::new(), line),
    };
    let args: Vec<&str> = command
        .strip_prefix("statelog ")
        .expect("a statelog command")
        .split(' ')
        .collect();
    let out = statelog(cwd, &args, &stdin);
    assert!(out.status.success(), "{line}: {}", text(&out.stderr));
}

/// Sets every `created_unix_s` member in `v` to the value the same place in `like` has.
fn same_times(v: &mut Value, like: &Value) {
    match (v, like) {
        (Value::Object(m), Value::Object(l)) => {
            for (k, x) in m.iter_mut() {
                match (k.as_str(), l.get(k)) {
                    ("created_unix_s", Some(t)) => *x = t.clone(),
                    (_, Some(y)) => same_times(x, y),
                    _ => {}
                }
            }
        }
        (Value::Array(a), Value::Array(l)) => {
            for (x, y) in a.iter_mut().zip(l) {
                same_times(x, y);
            }
        }
        _ => {}
    }
}

/// The command printed the JSON of example `name`: one line without spaces, its members in
/// the example's order.
fn assert_json_example(name: &str, out: &Output) {
    let want: Value = serde_json::from_str(&example(name))
        .unwrap_or_else(|e| panic!("{name}: the example is not JSON: {e}"));
    let stdout = text(&out.stdout);
    let mut got: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{name}: the output is not JSON: {e}: {stdout}"));
    assert_eq!(stdout.lines().count(), 1, "{name}: one line");
    // Serialized again, both keep their members' order (`preserve_order`).
    assert_eq!(
        serde_json::to_string(&got).unwrap() + "\n",
        stdout,
        "{name}: the output is compact"
    );
    same_times(&mut got, &want);
    assert_eq!(
        serde_json::to_string(&got).unwrap(),
        serde_json::to_string(&want).unwrap(),
        "{name}: FORMAT.md shows other JSON than the command prints"
    );
}

/// A copy of the directory `from` in `to` (files only).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The next `n` lines `follow` prints (through `lines`), or a panic (after killing it) when
/// it ends or stalls for 30 s.
fn next_lines(lines: &Receiver<String>, n: usize, child: &mut Child) -> String {
    let mut out = String::new();
    for _ in 0..n {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => out.push_str(&line),
            Err(_) => {
                let _ = child.kill();
                panic!("follow ended or stalled after: {out}");
            }
        }
    }
    out
}

/// One test, so that no other test of this file spawns a process while a store of the
/// library is open here: a child forked then holds the directory lock's open file (its
/// `flock`) until it execs, and a command started at that moment finds the directory locked.
#[test]
fn format_md_command_output_examples_are_what_the_command_prints() {
    session();
    apply_keep_going();
}

fn session() {
    let base = tempfile::tempdir().unwrap();
    let cwd = base.path();
    let state = cwd.join("state");

    // Before the session: a program's typed table `users`, in two transactions.
    {
        let store = Store::open(&state, StoreOptions::default()).unwrap();
        let users = store.table(TableDef::<u32, String>::new("users")).unwrap();
        store
            .write(|tx| {
                tx.insert(&users, &7, &"ann".to_string())?;
                tx.insert(&users, &200, &"bob".to_string())
            })
            .unwrap();
        store.close().unwrap();
    }
    let seq = || {
        let backend = std::sync::Arc::new(FsBackend::new());
        let (snap, _) =
            read_only_snapshot(backend, &state, RecoveryMode::TolerateTornTail, None).unwrap();
        snap.seq()
    };
    assert_eq!(seq(), 2);

    // apply (§14.2).
    let out = statelog(cwd, &["apply", "state"], &example("apply-input"));
    assert_eq!(
        text(&out.stdout),
        example("apply-output"),
        "apply's output; {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), example("apply-errors"), "apply's errors");
    assert_eq!(out.status.code(), Some(1));
    // Two table creations and two lines that changed something: four UPDATEs.
    assert_eq!(seq(), 6);

    // dump (§14.3).
    let out = statelog(cwd, &["dump", "state"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), example("dump"), "dump's output");

    // inspect --json (§14.5) and verify --json (§14.6).
    let out = statelog(cwd, &["inspect", "state", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_json_example("inspect-json", &out);
    let out = statelog(cwd, &["verify", "state", "--json"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_json_example("verify-json", &out);

    let segment = "0000000000000001.seg";
    copy_dir(&state, &cwd.join("torn"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(cwd.join("torn").join(segment))
        .unwrap();
    f.write_all(b"garbage!").unwrap();
    drop(f);
    let out = statelog(cwd, &["verify", "torn", "--json"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_json_example("verify-json-torn", &out);

    copy_dir(&state, &cwd.join("damaged"));
    let path = cwd.join("damaged").join(segment);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[200] ^= 1 << 6;
    std::fs::write(&path, bytes).unwrap();
    let out = statelog(cwd, &["verify", "damaged", "--json"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_json_example("verify-json-damaged", &out);

    // follow (§14.4): the session's commands, `follow` started in the background at its `&`
    // (looking at the log every 5 ms rather than 200, to be quick).
    let session = example("follow-session");
    let want = example("follow-output");
    let mut follow: Option<(Child, Receiver<String>)> = None;
    let mut got = String::new();
    for line in session.lines() {
        let line = line.strip_prefix("$ ").expect("a command");
        if let Some(cmd) = line.strip_suffix(" &") {
            let args: Vec<&str> = cmd.strip_prefix("statelog ").unwrap().split(' ').collect();
            let mut child = Command::new(env!("CARGO_BIN_EXE_statelog"))
                .args(&args)
                .args(["--interval-ms", "5"])
                .current_dir(cwd)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // It says where it starts once it follows.
            let mut err = BufReader::new(child.stderr.take().unwrap());
            let mut first = String::new();
            err.read_line(&mut first).unwrap();
            assert_eq!(first, example("follow-errors"), "follow's first message");
            let (send, lines) = channel();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            std::thread::spawn(move || {
                for line in stdout.lines() {
                    let Ok(line) = line else { break };
                    if send.send(line + "\n").is_err() {
                        break;
                    }
                }
            });
            follow = Some((child, lines));
            continue;
        }
        session_command(cwd, line);
        // The first commit beside it: wait until `follow` printed it, so the rewind after it
        // cannot cut it away before it was seen.
        if let Some((child, lines)) = follow.as_mut() {
            if got.is_empty() {
                got = next_lines(lines, 1, child);
            }
        }
    }
    let (mut child, lines) = follow.expect("the session starts follow");
    got += &next_lines(&lines, want.lines().count() - 1, &mut child);
    assert!(child.wait().unwrap().success(), "follow ends after --count");
    assert!(lines.recv().is_err(), "follow printed more");
    assert_eq!(got, want, "follow's output");
}

/// The refusal rules of §14.2 that the session does not show: with `--keep-going`, a line that
/// is not JSON is skipped, and a line naming a typed table keeps its other operations.
fn apply_keep_going() {
    let base = tempfile::tempdir().unwrap();
    let state = base.path().join("s");
    {
        let store = Store::open(&state, StoreOptions::default()).unwrap();
        store.table(TableDef::<u32, String>::new("users")).unwrap();
        store.close().unwrap();
    }
    let input = "not json\n\n{\"ops\":[{\"op\":\"put\",\"table\":\"users\",\"key\":\"x\",\"value\":\"y\"},{\"op\":\"put\",\"table\":\"b\",\"key\":\"k\",\"value\":\"v\"}]}\n{\"ops\":[]}\n";
    let out = statelog(base.path(), &["apply", "s", "--keep-going"], input);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "ok 3\nok 4\n");
    let err = text(&out.stderr);
    assert!(err.starts_with("error 1: not JSON"), "{err}");
    assert!(err.contains("error 3: "), "{err}");
    let out = statelog(base.path(), &["dump", "s"], "");
    assert_eq!(
        text(&out.stdout),
        "{\"table\":\"b\",\"key\":\"k\",\"value\":\"v\"}\n"
    );
}
