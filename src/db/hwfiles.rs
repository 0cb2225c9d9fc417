//! The nodes' hardware lists between HWDIR's `<sysname>.hw` files and
//! the table `edeploy_hw`, for `db import` and `db export`.
//!
//! HWDIR holds what nodes sent, so its files are read as hostile input:
//! only names the server gives a node's list (`hw::sysname`'s alphabet
//! and length) are read, others skipped with a warning; a symbolic link
//! is never followed (`O_NOFOLLOW`) and skipped with a warning, as is
//! anything but a regular file; a file is read up to MAXUPLOAD bytes and
//! checked against HWMAXLINES and HWMAXVALUE, the limits `upload.cgi`
//! applies to an uploaded list (a file over them, or not a hardware
//! list, refuses the whole import, naming it); and an import reads at
//! most [`MAX_FILES`] lists and [`MAX_TOTAL`] bytes of them.
//!
//! The export writes each node's newest list as the file backend does
//! (the same bytes: the list as kept, [`hw::to_literal`]), its mtime the
//! time the list was received, each file under a temporary name and
//! renamed; a symbolic link where a list goes is refused.

use crate::config::ServerConfig;
use crate::hw;
use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The suffix of a node's hardware list in HWDIR.
pub const SUFFIX: &str = ".hw";

/// The suffix of a list's temporary name while it is written
/// (`.<sysname>.hw.edeploy-tmp`, the file backend's).
const TMP_SUFFIX: &str = ".edeploy-tmp";

/// The most `*.hw` files an import considers (a site's nodes, with room
/// to spare): more refuses the import.
pub const MAX_FILES: usize = 100_000;

/// The most bytes of hardware lists an import holds (real lists are tens
/// of kilobytes: a hundred thousand of them fit): more refuses the
/// import.
pub const MAX_TOTAL: u64 = 4 << 30;

/// Where an import reads the lists and what a list may hold.
#[derive(Debug, Clone, PartialEq)]
pub struct HwSource {
    /// The directory of the `*.hw` files (the section's HWDIR).
    pub dir: PathBuf,
    /// The largest file, in bytes (MAXUPLOAD).
    pub max_bytes: u64,
    /// HWMAXLINES and HWMAXVALUE.
    pub limits: hw::Limits,
}

impl HwSource {
    /// `dir` with `cfg`'s limits.
    pub fn of(cfg: &ServerConfig, dir: PathBuf) -> HwSource {
        HwSource {
            dir,
            max_bytes: cfg.max_upload,
            limits: cfg.hw_limits(),
        }
    }

    /// `dir` with the default limits.
    pub fn with_defaults(dir: &Path) -> HwSource {
        HwSource::of(&ServerConfig::with_configdir(dir), dir.to_path_buf())
    }
}

/// Whether `name` is one the server gives a node's files: not empty, at
/// most [`hw::NAME_ROOM`] bytes, only letters, digits, `_` and `-`
/// (what [`hw::sysname`] makes).
pub fn is_sysname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= hw::NAME_ROOM
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// A list read from HWDIR and checked.
#[derive(Debug)]
pub(super) struct HwRead {
    pub sysname: String,
    /// The file's mtime.
    pub received: SystemTime,
    /// The list as kept ([`hw::to_literal`]).
    pub text: String,
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub(super) struct HwFound {
    pub lists: Vec<HwRead>,
    /// The files skipped, each with why.
    pub skipped: Vec<String>,
}

/// Reads and checks every node's list in `src.dir` (none when it does
/// not exist), sorted by name.
pub(super) fn read(src: &HwSource) -> Result<HwFound> {
    let dir = &src.dir;
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HwFound::default()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot list", dir.display())),
    };
    let mut found = HwFound::default();
    let mut names = Vec::new();
    let mut seen = 0usize;
    for item in listing {
        let item = item.with_context(|| format!("{}: cannot list", dir.display()))?;
        let raw = item.file_name();
        let bytes = raw.as_bytes();
        // Hidden files are the server's spare and temporary files.
        if bytes.starts_with(b".") || !bytes.ends_with(SUFFIX.as_bytes()) {
            continue;
        }
        seen += 1;
        if seen > MAX_FILES {
            bail!(
                "{}: more than {MAX_FILES} *{SUFFIX} files; an import reads at most that many",
                dir.display()
            );
        }
        let path = item.path();
        let stem = raw
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .filter(|s| is_sysname(s));
        match stem {
            Some(s) => names.push(s.to_string()),
            None => found.skipped.push(format!(
                "{}: skipped: not a name the server gives a node's list (letters, digits, `_` \
                 and `-`, at most {} bytes, then {SUFFIX})",
                path.display(),
                hw::NAME_ROOM
            )),
        }
    }
    names.sort();
    let mut total = 0u64;
    for sysname in names {
        let path = dir.join(format!("{sysname}{SUFFIX}"));
        match read_one(&path, src)? {
            One::Skipped(why) => found
                .skipped
                .push(format!("{}: skipped: {why}", path.display())),
            One::List { received, text } => {
                total = total.saturating_add(text.len() as u64);
                if total > MAX_TOTAL {
                    bail!(
                        "{}: the hardware lists hold more than {MAX_TOTAL} bytes; an import \
                         reads at most that much",
                        dir.display()
                    );
                }
                found.lists.push(HwRead {
                    sysname,
                    received,
                    text,
                });
            }
        }
    }
    Ok(found)
}

enum One {
    Skipped(&'static str),
    List { received: SystemTime, text: String },
}

/// Reads one list: never through a symbolic link, never past
/// `src.max_bytes`; refused (naming the file) when it is not a hardware
/// list `upload.cgi` would accept.
fn read_one(path: &Path, src: &HwSource) -> Result<One> {
    let name = path.display().to_string();
    // O_NONBLOCK: opening a FIFO does not wait for a writer.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(One::Skipped("a symbolic link, not followed"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(One::Skipped("removed while the import read HWDIR"))
        }
        Err(e) => return Err(e).with_context(|| format!("{name}: cannot open")),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("{name}: cannot read"))?;
    if !meta.is_file() {
        return Ok(One::Skipped("not a regular file"));
    }
    let too_big = |len: u64| {
        anyhow!(
            "{name}: {len} bytes, more than the {} bytes the server accepts of an upload \
             (MAXUPLOAD)",
            src.max_bytes
        )
    };
    if meta.len() > src.max_bytes {
        return Err(too_big(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    (&file)
        .take(src.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("{name}: cannot read"))?;
    if bytes.len() as u64 > src.max_bytes {
        return Err(too_big(bytes.len() as u64));
    }
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{name}: not valid UTF-8"))?;
    let lines = hw::parse(&text, &name).map_err(|e| anyhow!("{e}"))?;
    if lines.is_empty() {
        bail!("{name}: the hardware list is empty");
    }
    hw::check(&lines, &src.limits).map_err(|e| anyhow!("{name}: {e}"))?;
    let received = meta.modified().unwrap_or(UNIX_EPOCH);
    if !in_range(received) {
        bail!(
            "{name}: its mtime is before 1970 or after year 9999: set it (touch) and import again"
        );
    }
    Ok(One::List {
        received,
        text: hw::to_literal(&lines),
    })
}

/// The latest mtime kept: the end of year 9999 (PostgreSQL's
/// timestamps and every file system reach it).
fn latest() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(253_402_300_799)
}

/// Whether `t` is a time a list may have been received: from the epoch
/// to the end of year 9999.
fn in_range(t: SystemTime) -> bool {
    t >= UNIX_EPOCH && t <= latest()
}

/// Checks where the lists of `names` go in `dir`, before anything is
/// written: each name one the server gives a node's list, and no
/// symbolic link nor anything but a regular file at its place.
pub(super) fn check_destinations(dir: &Path, names: &[String]) -> Result<()> {
    for sysname in names {
        if !is_sysname(sysname) {
            bail!(
                "the hardware list of node {sysname:?} cannot be written: not a name the server \
                 gives a node's list"
            );
        }
        let dest = dir.join(format!("{sysname}{SUFFIX}"));
        match std::fs::symlink_metadata(&dest) {
            Ok(m) if m.file_type().is_symlink() => {
                bail!("{}: a symbolic link, not written through", dest.display())
            }
            Ok(m) if !m.is_file() => bail!("{}: not a regular file", dest.display()),
            _ => {}
        }
    }
    Ok(())
}

/// Lists written under their temporary names, renamed into place by
/// [`Staged::finish`]; whatever is left is removed when dropped.
pub(super) struct Staged {
    dir: PathBuf,
    renames: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    pub fn new(dir: &Path) -> Staged {
        Staged {
            dir: dir.to_path_buf(),
            renames: Vec::new(),
        }
    }

    /// Writes `text` as `<sysname>.hw`'s next contents, its mtime
    /// `received` (when from 1970 to year 9999), under a temporary name
    /// created anew (a link there is removed, not followed).
    pub fn add(&mut self, sysname: &str, received: SystemTime, text: &str) -> Result<()> {
        use std::io::Write;
        if !is_sysname(sysname) {
            bail!("the hardware list of node {sysname:?} cannot be written: not a node's name");
        }
        let dest = self.dir.join(format!("{sysname}{SUFFIX}"));
        let tmp = self.dir.join(format!(".{sysname}{SUFFIX}{TMP_SUFFIX}"));
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot remove", tmp.display())),
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .with_context(|| format!("{}: cannot create", tmp.display()))?;
        self.renames.push((tmp.clone(), dest));
        f.write_all(text.as_bytes())
            .with_context(|| format!("{}: cannot write", tmp.display()))?;
        if in_range(received) {
            f.set_modified(received)
                .with_context(|| format!("{}: cannot set its mtime", tmp.display()))?;
        }
        Ok(())
    }

    /// How many lists are staged.
    pub fn len(&self) -> usize {
        self.renames.len()
    }

    /// Makes the staged files durable (one `syncfs`), renames them into
    /// place and syncs the directory.
    pub fn finish(mut self) -> Result<()> {
        if self.renames.is_empty() {
            return Ok(());
        }
        let d = std::fs::File::open(&self.dir)
            .with_context(|| format!("{}: cannot open", self.dir.display()))?;
        // SAFETY: syncfs on a descriptor we own, open for the call.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d)) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("{}: cannot sync", self.dir.display()));
        }
        let renames = std::mem::take(&mut self.renames);
        for (i, (tmp, dest)) in renames.iter().enumerate() {
            if let Err(e) = std::fs::rename(tmp, dest) {
                self.renames = renames[i..].to_vec();
                return Err(e).with_context(|| format!("{}: cannot replace", dest.display()));
            }
        }
        d.sync_all()
            .with_context(|| format!("{}: cannot sync the directory", self.dir.display()))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for (tmp, _) in &self.renames {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for ok in ["kvm-test-vm-52-54-00-12-34-56", "Sé_rver-1", "unknown"] {
            assert!(is_sysname(ok), "{ok}");
        }
        let long = "a".repeat(hw::NAME_ROOM + 1);
        for bad in ["", ".hidden", "a.b", "a b", "a/b", "..", long.as_str()] {
            assert!(!is_sysname(bad), "{bad}");
        }
        assert!(is_sysname(&"a".repeat(hw::NAME_ROOM)));
    }

    #[test]
    fn times_kept() {
        assert!(in_range(UNIX_EPOCH));
        assert!(in_range(latest()));
        assert!(!in_range(UNIX_EPOCH - Duration::from_secs(1)));
        assert!(!in_range(latest() + Duration::from_micros(1)));
    }
}
