//! Real processes: a child commits strong transactions and reports each acknowledged one
//! through a pipe; the parent kills it with SIGKILL after a random delay, reopens the store
//! and checks that every acknowledged commit is there and that the state is a prefix of the
//! commits. 50 rounds by default; set `STATELOG_KILL_ROUNDS` for more. A second process that
//! opens a locked directory gets `Locked` with a clear message.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Rng;
use statelog::{Durability, Error, Readable, Store, StoreOptions, Table, TableDef};

const CHILD_ENV: &str = "STATELOG_KILL_CHILD";
const MODE_ENV: &str = "STATELOG_KILL_MODE";

fn open(dir: &Path) -> (Store, Table<u64, u64>, Table<u8, u64>) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let rows = store.table(TableDef::new("rows")).unwrap();
    let head = store.table(TableDef::new("head")).unwrap();
    (store, rows, head)
}

/// Runs only as a child process (the parent sets `STATELOG_KILL_CHILD`).
#[test]
fn child_process() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    if std::env::var(MODE_ENV).as_deref() == Ok("open-locked") {
        match Store::open(dir, StoreOptions::default()) {
            Err(e @ Error::Locked { .. }) => println!("refused: {e}"),
            Err(e) => println!("unexpected error: {e}"),
            Ok(_) => println!("unexpectedly opened"),
        }
        return;
    }
    let (store, rows, head) = open(dir);
    let start = store.read().get(&head, &0).unwrap().map_or(0, |n| n + 1);
    let mut out = std::io::stdout().lock();
    for i in start.. {
        // Every fifth commit is buffered: it is never reported, but a later strong commit
        // makes it durable too.
        let d = if i % 5 == 4 {
            Durability::Buffered
        } else {
            Durability::Strong
        };
        store
            .write_with(d, |tx| {
                tx.insert(&rows, &i, &(i * 3))?;
                tx.insert(&head, &0, &i)?;
                Ok(())
            })
            .unwrap();
        if d == Durability::Strong {
            writeln!(out, "ack {i}").unwrap();
            out.flush().unwrap();
        }
    }
}

fn spawn_child(dir: &Path, mode: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(MODE_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill_9_never_loses_an_acknowledged_commit() {
    let rounds: u64 = std::env::var("STATELOG_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("STATELOG_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(42);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed);
    let mut total_acked = 0u64;
    for round in 0..rounds {
        let mut child = spawn_child(dir.path(), "commit");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line
                    .strip_prefix("ack ")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    let _ = tx.send(n);
                }
            }
        });
        // Wait for the first acknowledgement (the child is running), then a random delay.
        let first = rx.recv_timeout(Duration::from_secs(30));
        assert!(
            first.is_ok(),
            "round {round} (seed {seed}): the child never committed"
        );
        std::thread::sleep(Duration::from_millis(rng.below(40)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let acked: Vec<u64> = first.into_iter().chain(rx.try_iter()).collect();
        let last_acked = *acked.iter().max().unwrap();
        total_acked += acked.len() as u64;
        let (store, rows, head) = open(dir.path());
        let snap = store.read();
        let n = snap.get(&head, &0).unwrap().unwrap();
        assert!(
            n >= last_acked,
            "round {round} (seed {seed}): acknowledged {last_acked}, restored up to {n}"
        );
        // A prefix of the commits: exactly rows 0..=n, each with its value.
        let all = snap.list(&rows).unwrap();
        assert_eq!(
            all.len() as u64,
            n + 1,
            "round {round} (seed {seed}): not a prefix"
        );
        for (i, (k, v)) in all.iter().enumerate() {
            assert_eq!(
                (*k, *v),
                (i as u64, i as u64 * 3),
                "round {round} (seed {seed})"
            );
        }
        drop(store);
    }
    eprintln!("{rounds} kill -9 rounds, {total_acked} acknowledged commits checked");
}

#[test]
fn a_second_process_gets_locked_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _, _) = open(dir.path());
    let t = Instant::now();
    let out = spawn_child(dir.path(), "open-locked")
        .wait_with_output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split_once("refused: ").map(|(_, msg)| msg))
        .unwrap_or_else(|| panic!("child said: {text}"));
    assert!(
        line.contains(&format!("locked by process {}", std::process::id())),
        "{line}"
    );
    assert!(line.contains(&dir.path().display().to_string()), "{line}");
    assert!(t.elapsed() < Duration::from_secs(30));
}
