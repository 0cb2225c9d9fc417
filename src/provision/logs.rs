//! Install logs uploaded by nodes (`file` parts named `*.log.gz`).
//!
//! A log is kept as `LOGDIR/<name>`. The name comes from the client, so it
//! must be a plain file name: no `/` or `\`, no `..`, no NUL or other
//! control character, not hidden, ending in `.log.gz` with something
//! before it, and short enough for its rotated name (229 bytes). A log already there is first renamed after its own mtime
//! (UTC), `<stem>.YYYYmmddHHMMSS.log.gz`, so a node that installs again
//! does not erase the log of its previous attempt.

use crate::clock::Utc;
use crate::persist::{self, Lock};
use crate::protocol::{rotated_log_name, LOG_SUFFIX as SUFFIX};
use anyhow::{Context, Result};
use std::path::Path;

/// The longest log name kept: its rotated name adds `.YYYYmmddHHMMSS-N`
/// (26 bytes, `N` up to 10 digits) within NAME_MAX.
const MAX_NAME: usize = crate::persist::NAME_MAX - 26;

/// Whether a `file` part is a log rather than a hardware list.
pub fn is_log_name(filename: Option<&str>) -> bool {
    filename.is_some_and(|f| f.ends_with(SUFFIX))
}

/// Why a log name is refused, or `None` when it can be used.
pub fn refuse_name(name: &str) -> Option<String> {
    let why = if name.is_empty() {
        "the log file name is empty"
    } else if name.contains(['/', '\\']) {
        "the log file name must not contain a directory"
    } else if name.contains("..") {
        "the log file name must not contain '..'"
    } else if name.chars().any(char::is_control) {
        "the log file name must not contain control characters"
    } else if name.starts_with('.') {
        "the log file name must not start with '.'"
    } else if !name.ends_with(SUFFIX) || name.len() == SUFFIX.len() {
        "the log file name must be NAME.log.gz"
    } else if name.len() > MAX_NAME {
        return Some(format!(
            "the log file name is {} bytes; at most {MAX_NAME} leave room for its rotated \
             name <stem>.YYYYmmddHHMMSS-N.log.gz (got {name:?})",
            name.len()
        ));
    } else {
        return None;
    };
    Some(format!("{why} (got {name:?})"))
}

/// Where a log went.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedLog {
    pub name: String,
    /// The new name of the log it replaced, if there was one.
    pub rotated: Option<String>,
}

/// Saves `data` as `logdir/name` (the name must have passed
/// [`refuse_name`]), rotating an existing log first. Runs under the
/// server's lock so two uploads of the same name cannot both rotate.
pub fn save(logdir: &Path, lockfile: &Path, name: &str, data: &[u8]) -> Result<SavedLog> {
    let _lock = Lock::exclusive(lockfile)?;
    let target = logdir.join(name);
    let rotated = match std::fs::metadata(&target) {
        Ok(meta) => {
            let stamp = Utc::of(meta.modified().unwrap_or(std::time::UNIX_EPOCH)).compact();
            let stem = &name[..name.len() - SUFFIX.len()];
            let new = free_name(logdir, stem, &stamp);
            std::fs::rename(&target, logdir.join(&new))
                .with_context(|| format!("{}: cannot rotate", target.display()))?;
            Some(new)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("{}: cannot stat", target.display())),
    };
    persist::write_atomic(&target, data)?;
    Ok(SavedLog {
        name: name.to_string(),
        rotated,
    })
}

/// `<stem>.<stamp>.log.gz`, or with `-2`, `-3`… after the stamp when a
/// log of the same second is already kept.
fn free_name(dir: &Path, stem: &str, stamp: &str) -> String {
    let mut name = rotated_log_name(stem, stamp, 0);
    let mut n = 2u32;
    while dir.join(&name).exists() {
        name = rotated_log_name(stem, stamp, n);
        n += 1;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(refuse_name("node1.log.gz"), None);
        assert_eq!(refuse_name("ProLiant-HP-CZ33.log.gz"), None);
        assert_eq!(refuse_name(&format!("{}.log.gz", "n".repeat(222))), None);
        for bad in [
            "",
            "../x.log.gz",
            "a/b.log.gz",
            "a\\b.log.gz",
            "..log.gz",
            "a..b.log.gz",
            "a\0.log.gz",
            "a\n.log.gz",
            ".log.gz",
            ".hidden.log.gz",
            "x.log",
            &format!("{}.log.gz", "n".repeat(223)),
        ] {
            assert!(refuse_name(bad).is_some(), "{bad:?} accepted");
        }
        assert!(is_log_name(Some("x.log.gz")));
        assert!(!is_log_name(Some("hw.json")));
        assert!(!is_log_name(None));
    }

    #[test]
    fn rotation_keeps_every_upload() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("lock");
        let first = save(dir.path(), &lock, "n.log.gz", b"one").unwrap();
        assert_eq!(first.rotated, None);
        let second = save(dir.path(), &lock, "n.log.gz", b"two").unwrap();
        let third = save(dir.path(), &lock, "n.log.gz", b"three").unwrap();
        let r2 = second.rotated.unwrap();
        let r3 = third.rotated.unwrap();
        assert!(r2.starts_with("n.") && r2.ends_with(".log.gz"), "{r2}");
        assert_ne!(r2, r3);
        assert_eq!(
            std::fs::read(dir.path().join("n.log.gz")).unwrap(),
            b"three"
        );
        assert_eq!(std::fs::read(dir.path().join(&r2)).unwrap(), b"one");
        assert_eq!(std::fs::read(dir.path().join(&r3)).unwrap(), b"two");
    }
}
