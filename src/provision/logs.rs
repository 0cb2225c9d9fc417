//! Install logs uploaded by nodes (`file` parts named `*.log.gz`).
//!
//! A log is kept as `LOGDIR/<name>`. The name comes from the client, so it
//! must be a plain file name: no `/` or `\`, no `..`, no NUL or other
//! control character, not hidden, ending in `.log.gz` with something
//! before it, and short enough for its rotated name (229 bytes). A log already there is first renamed after its own mtime
//! (UTC), `<stem>.YYYYmmddHHMMSS.log.gz`, so a node that installs again
//! does not erase the log of its previous attempt.
//!
//! What LOGDIR keeps is capped in bytes ([`Caps`]: `LOGMAXNODE` per node,
//! `LOGMAX` in all). A new log makes room by deleting the oldest logs
//! (by modification time) of the same node first, then the oldest of any
//! node; a log larger than either cap by itself is refused ([`Full`],
//! HTTP 507) with nothing changed. Only regular files whose names this
//! protocol writes (`<stem>.log.gz` and its rotated names, see
//! [`refuse_name`] and [`crate::protocol::log_stem`]) are counted or ever
//! deleted; symbolic links, hidden files and anything else are left
//! alone. Install logs are for diagnosis: the newest matter, so rotation
//! rather than refusal once the directory is full.

use crate::clock::Utc;
use crate::persist::{self, Lock};
use crate::protocol::{log_stem, rotated_log_name, LOG_SUFFIX as SUFFIX};
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

/// The bytes of install logs LOGDIR keeps (`LOGMAXNODE`, `LOGMAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// For the logs of one node (one stem: `<stem>.log.gz` and its
    /// rotated names).
    pub per_node: u64,
    /// For all the logs.
    pub total: u64,
}

impl Caps {
    /// The caps of a configuration.
    pub fn of(cfg: &crate::config::ServerConfig) -> Caps {
        Caps {
            per_node: cfg.log_max_node,
            total: cfg.log_max,
        }
    }
}

/// A log that no rotation can make room for: larger by itself than a cap.
#[derive(Debug, thiserror::Error)]
#[error("the log is {size} bytes, more than the {cap} bytes LOGDIR keeps {what} ({key}); nothing was written")]
pub struct Full {
    pub size: u64,
    pub cap: u64,
    pub what: &'static str,
    pub key: &'static str,
}

/// Saves `data` as `logdir/name` (the name must have passed
/// [`refuse_name`]), rotating an existing log first, within the default
/// caps ([`save_within`]).
pub fn save(logdir: &Path, name: &str, data: &[u8]) -> Result<SavedLog> {
    let caps = Caps::of(&crate::config::ServerConfig::with_configdir(""));
    save_within(logdir, name, data, &caps)
}

/// Saves `data` as `logdir/name` (the name must have passed
/// [`refuse_name`]), rotating an existing log first, after deleting the
/// oldest logs the caps require (see the module's documentation). Runs
/// under the `flock` of the LOGDIR directory itself, so two uploads of the same
/// name cannot both rotate, and never under the server's LOCKFILE: the
/// cost of a log (its size, how many LOGDIR holds) is the node's to
/// decide, and decisions must not wait for it. A log larger than a cap
/// is a [`Full`] error, nothing changed.
pub fn save_within(logdir: &Path, name: &str, data: &[u8], caps: &Caps) -> Result<SavedLog> {
    let size = data.len() as u64;
    for (cap, what, key) in [
        (caps.per_node, "per node", "LOGMAXNODE"),
        (caps.total, "in all", "LOGMAX"),
    ] {
        if size > cap {
            return Err(Full {
                size,
                cap,
                what,
                key,
            }
            .into());
        }
    }
    let _lock = Lock::directory(logdir)?;
    let stem = &name[..name.len() - SUFFIX.len()];
    make_room(logdir, stem, size, caps)?;
    let target = logdir.join(name);
    let rotated = match std::fs::metadata(&target) {
        Ok(meta) => {
            let stamp = Utc::of(meta.modified().unwrap_or(std::time::UNIX_EPOCH)).compact();
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

/// One install log LOGDIR holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Kept {
    mtime: std::time::SystemTime,
    name: String,
    size: u64,
}

/// The install logs in `logdir`, as (stem, log): regular files only,
/// named as this protocol names them.
fn kept_logs(logdir: &Path) -> Result<Vec<(String, Kept)>> {
    let mut out = Vec::new();
    let dir =
        std::fs::read_dir(logdir).with_context(|| format!("{}: cannot list", logdir.display()))?;
    for entry in dir {
        let entry = entry.with_context(|| format!("{}: cannot list", logdir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_ours(&name) {
            continue;
        }
        // `DirEntry::metadata` does not follow a symbolic link.
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let stem = log_stem(&name).0.to_string();
        let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let size = meta.len();
        out.push((stem, Kept { mtime, name, size }));
    }
    Ok(out)
}

/// Whether `name` is one this protocol writes in LOGDIR: `<stem>.log.gz`
/// or a rotated `<stem>.<stamp>[-N].log.gz`, with a stem a node may use.
fn is_ours(name: &str) -> bool {
    let (stem, _) = log_stem(name);
    name.ends_with(SUFFIX) && refuse_name(&format!("{stem}{SUFFIX}")).is_none()
}

/// Deletes the oldest logs of `stem`, then the oldest of all, until a new
/// log of `size` bytes fits within `caps`.
fn make_room(logdir: &Path, stem: &str, size: u64, caps: &Caps) -> Result<()> {
    let mut logs = kept_logs(logdir)?;
    logs.sort_by(|a, b| a.1.cmp(&b.1));
    let mut node: u64 = logs
        .iter()
        .filter(|(s, _)| s == stem)
        .map(|l| l.1.size)
        .sum();
    let mut total: u64 = logs.iter().map(|l| l.1.size).sum();
    let mut gone = Vec::new();
    for (i, (s, log)) in logs.iter().enumerate() {
        if node + size <= caps.per_node {
            break;
        }
        if s == stem {
            node -= log.size;
            total -= log.size;
            gone.push(i);
        }
    }
    for (i, (_, log)) in logs.iter().enumerate() {
        if total + size <= caps.total {
            break;
        }
        if !gone.contains(&i) {
            total -= log.size;
            gone.push(i);
        }
    }
    for i in gone {
        let path = logdir.join(&logs[i].1.name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot delete", path.display())),
        }
    }
    Ok(())
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
        let first = save(dir.path(), "n.log.gz", b"one").unwrap();
        assert_eq!(first.rotated, None);
        let second = save(dir.path(), "n.log.gz", b"two").unwrap();
        let third = save(dir.path(), "n.log.gz", b"three").unwrap();
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

    fn sizes(dir: &Path) -> std::collections::BTreeMap<String, u64> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                (n, e.metadata().unwrap().len())
            })
            .collect()
    }

    /// Sets a file's mtime `age` seconds in the past.
    fn age(path: &Path, age: u64) {
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn caps_rotate_the_nodes_own_logs_first_then_the_oldest() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("logs");
        std::fs::create_dir(&dir).unwrap();
        let caps = Caps {
            per_node: 300,
            total: 500,
        };
        // Not ours: never counted, never deleted.
        std::fs::write(dir.join("state"), vec![b's'; 1000]).unwrap();
        std::fs::write(dir.join(".hidden.log.gz"), vec![b'h'; 1000]).unwrap();
        std::fs::write(t.path().join("outside.log.gz"), vec![b'o'; 1000]).unwrap();
        std::os::unix::fs::symlink(t.path().join("outside.log.gz"), dir.join("link.log.gz"))
            .unwrap();
        // Node a: 3 logs of 100 bytes, the oldest first.
        for (i, n) in [
            "a.20260101000000.log.gz",
            "a.20260102000000.log.gz",
            "a.log.gz",
        ]
        .iter()
        .enumerate()
        {
            std::fs::write(dir.join(n), vec![b'a'; 100]).unwrap();
            age(&dir.join(n), 1000 - 100 * i as u64);
        }
        std::fs::write(dir.join("b.log.gz"), vec![b'b'; 150]).unwrap();
        age(&dir.join("b.log.gz"), 2000);
        // a: 300 + 100 > 300: its oldest goes; in all 450 - 100 + 100 fits.
        let saved = save_within(&dir, "a.log.gz", &[b'A'; 100], &caps).unwrap();
        let s = sizes(&dir);
        assert!(!s.contains_key("a.20260101000000.log.gz"), "{s:?}");
        assert!(s.contains_key("a.20260102000000.log.gz"), "{s:?}");
        assert!(s.contains_key(&saved.rotated.unwrap()), "{s:?}");
        assert_eq!(s["a.log.gz"], 100);
        assert_eq!(s["b.log.gz"], 150);
        // c: in all 450 + 200 > 500: the oldest of any node (b) goes.
        save_within(&dir, "c.log.gz", &[b'c'; 200], &caps).unwrap();
        let s = sizes(&dir);
        assert!(!s.contains_key("b.log.gz"), "{s:?}");
        let ours: u64 = s
            .iter()
            .filter(|(n, _)| is_ours(n) && n.as_str() != "link.log.gz")
            .map(|(_, l)| l)
            .sum();
        assert!(ours <= caps.total, "{s:?}");
        for n in ["state", ".hidden.log.gz", "link.log.gz"] {
            assert!(s.contains_key(n), "{n} was deleted: {s:?}");
        }
        assert_eq!(
            std::fs::read(t.path().join("outside.log.gz"))
                .unwrap()
                .len(),
            1000
        );
        // Larger than a cap by itself: refused, nothing changed.
        for (data, key) in [(vec![0u8; 301], "LOGMAXNODE"), (vec![0u8; 300], "")] {
            let before = sizes(&dir);
            let r = save_within(
                &dir,
                "d.log.gz",
                &data,
                &Caps {
                    per_node: 300,
                    total: 1000,
                },
            );
            if key.is_empty() {
                assert!(r.is_ok());
                continue;
            }
            let e = r.unwrap_err();
            assert!(e.is::<Full>() && e.to_string().contains(key), "{e}");
            assert_eq!(sizes(&dir), before);
        }
    }
}
