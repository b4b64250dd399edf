//! What the subcommands share: the error that stops a command with its exit status, the
//! directory checks, progress bars, and the JSON form of keys and values.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use statelog::Error;
use statelog::backend::{Backend, FsBackend};

/// A failure that stops the command: its message and exit status.
pub(crate) struct Fail(pub(crate) String, pub(crate) i32);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let msg = match &e {
            Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                format!("{} does not exist", path.display())
            }
            _ => e.to_string(),
        };
        Fail(msg, 2)
    }
}

pub(crate) fn backend() -> Arc<dyn Backend> {
    Arc::new(FsBackend::new())
}

pub(crate) fn require_dir(dir: &Path) -> Result<(), Fail> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Fail(
            format!("{} does not exist or is not a directory", dir.display()),
            2,
        ))
    }
}

/// The directory must exist and hold a store (commands that write never create one, except
/// `apply`).
pub(crate) fn require_store(dir: &Path) -> Result<(), Fail> {
    require_dir(dir)?;
    let has_segments = std::fs::read_dir(dir)
        .map_err(|e| Fail(format!("{}: {e}", dir.display()), 2))?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".seg"));
    if has_segments {
        Ok(())
    } else {
        Err(Fail(
            format!(
                "{} holds no segments: not a statelog directory",
                dir.display()
            ),
            2,
        ))
    }
}

pub(crate) fn progress_bar(what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}").ok()?);
    bar.set_message(what.to_string());
    Some(bar)
}

/// A spinner for a long step (restore, snapshot), only when standard error is a terminal.
pub(crate) fn spinner(what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(bar)
}

pub(crate) fn bytes_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "hex": b.iter().map(|x| format!("{x:02x}")).collect::<String>() }),
    }
}

/// Findings of `verify` (or an import) as JSON objects: file, offset, kind, torn_tail.
pub(crate) fn findings_json(findings: &[statelog::tools::Finding]) -> Vec<Value> {
    findings
        .iter()
        .map(|f| {
            json!({
                "file": f.file.display().to_string(),
                "offset": f.offset,
                "kind": f.kind.to_string(),
                "torn_tail": f.torn_tail,
            })
        })
        .collect()
}

/// Prints findings one a line, `file:offset: what: kind`; `torn` says what a torn tail means
/// to the command, `corrupt` what damage is.
pub(crate) fn print_findings(findings: &[statelog::tools::Finding], torn: &str, corrupt: &str) {
    for f in findings {
        let what = if f.torn_tail { torn } else { corrupt };
        println!("{}:{}: {}: {}", f.file.display(), f.offset, what, f.kind);
    }
}
