//! Crash-safe replacement of the server's files (CMDB, state, `.orig`).
//!
//! One decision changes several files, and they must change together or
//! not at all. A [`Transaction`] first appends all the new contents, as
//! one record, to the directory's write-ahead log and makes that durable
//! with a single `fdatasync` (the commit point), then replaces each file
//! (its spare file `.NAME.edeploy-tmp` rewritten, then swapped with it;
//! the old file becomes the next spare). [`recover`], run by the next
//! request under the same lock, finishes a record a crash left unapplied
//! (roll forward); after a reboot it replays the records not yet
//! checkpointed. So after a crash at any instant, once the next
//! request has run, each file is wholly old or wholly new, and the set of
//! files is either all old or all new. See [`log`] for the format and the
//! argument.
//!
//! Single files that need no partner ([`write_atomic`]: HWDIR, logs, the
//! host client's files) are replaced with temporary file, fsync, rename
//! and directory fsync.
//!
//! Every target is checked before anything is committed ([`check_target`]):
//! a name whose spare would not fit in [`NAME_MAX`] bytes, or that holds a
//! NUL byte, is refused, and the commit writes nothing. A record that
//! still cannot be applied later, for a reason retrying cannot fix, is set
//! aside rather than retried forever ([`log`], [`set_aside`]).
//!
//! Everything here must run under the exclusive lock of [`Lock`].

use anyhow::{Context, Result};
use fs4::fs_std::FileExt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod log;

use log::Wal;
pub use log::{Base, LOG};

/// Temporary and spare files are named `.NAME.edeploy-tmp`.
const TMP_SUFFIX: &str = ".edeploy-tmp";

/// The longest file name, in bytes, of the file systems the server runs
/// on (ext4, xfs, btrfs, tmpfs).
pub const NAME_MAX: usize = 255;

/// A target of a commit that cannot be a file: refused before the commit
/// point, and a permanent failure when met in a record ([`log`]).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {why}")]
pub struct BadName {
    path: String,
    why: String,
}

/// Whether `target` can be written through its spare file: it has a file
/// name, holds no NUL byte, and `.NAME.edeploy-tmp` fits in [`NAME_MAX`].
pub fn check_target(target: &Path) -> Result<(), BadName> {
    use std::os::unix::ffi::OsStrExt;
    let bad = |why: String| BadName {
        path: target.display().to_string(),
        why,
    };
    if target.as_os_str().as_bytes().contains(&0) {
        return Err(bad("the file name holds a NUL byte".into()));
    }
    let name = match target.file_name() {
        Some(n) => n.as_bytes().len(),
        None => return Err(bad("the path ends without a file name".into())),
    };
    let spare = 1 + name + TMP_SUFFIX.len();
    if spare > NAME_MAX {
        return Err(bad(format!(
            "the file name is {name} bytes; its spare file .NAME{TMP_SUFFIX} would be {spare}, \
             over the {NAME_MAX} bytes a file name may hold"
        )));
    }
    Ok(())
}

/// A commit whose record would not fit in the write-ahead log's largest
/// size (`WALMAX`): refused before anything is written.
#[derive(Debug, thiserror::Error)]
#[error(
    "{log}: this update needs {need} bytes of the write-ahead log, more than the {cap} \
     bytes it may take (WALMAX); nothing was written"
)]
pub struct TooLarge {
    pub log: String,
    pub need: u64,
    pub cap: u64,
}

/// An exclusive `flock` on LOCKFILE. The kernel drops it when the process
/// dies, so a killed request never leaves a stale lock behind.
pub struct Lock {
    file: File,
}

impl Lock {
    pub fn exclusive(path: &Path) -> Result<Lock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(path)
            .with_context(|| format!("{}: cannot open the lock file", path.display()))?;
        file.lock_exclusive()
            .with_context(|| format!("{}: cannot lock", path.display()))?;
        Ok(Lock { file })
    }

    /// The exclusive `flock` of a directory itself (opened read-only):
    /// serialises writers of that directory without a lock file in it.
    pub fn directory(path: &Path) -> Result<Lock> {
        let file = File::open(path)
            .with_context(|| format!("{}: cannot open the directory", path.display()))?;
        file.lock_exclusive()
            .with_context(|| format!("{}: cannot lock", path.display()))?;
        Ok(Lock { file })
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

fn tmp_name(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .with_context(|| format!("{}: not a file path", target.display()))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(TMP_SUFFIX);
    Ok(target.with_file_name(tmp))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `data` to `path` and fsyncs it.
fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    let mut f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Fsyncs a directory, so renames in it survive a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("{}: cannot sync the directory", dir.display()))
}

/// Replaces one file atomically (temporary file, fsync, rename, directory
/// fsync). For a single file no journal is needed.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = tmp_name(path)?;
    write_synced(&tmp, data)?;
    fs::rename(&tmp, path).with_context(|| format!("{}: cannot replace", path.display()))?;
    sync_dir(parent(path))
}

/// New contents for several files, applied all together.
#[derive(Default)]
pub struct Transaction {
    writes: Vec<Planned>,
}

enum Planned {
    /// The old content is read at commit.
    Write(PathBuf, Vec<u8>),
    /// The caller gave the old content.
    Ready(log::Write1),
}

/// A pause of `EDEPLOY_TEST_COMMIT_DELAY_MS` between the renames, for
/// tests that kill the process there (feature `test-hooks`).
#[cfg(feature = "test-hooks")]
fn test_delay() {
    if let Some(ms) = std::env::var("EDEPLOY_TEST_COMMIT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Without the feature `test-hooks`, no pause.
#[cfg(not(feature = "test-hooks"))]
fn test_delay() {}

impl Transaction {
    pub fn new() -> Transaction {
        Transaction::default()
    }

    /// Plans `path` to hold `data` once [`commit`](Self::commit) runs.
    pub fn write(&mut self, path: impl Into<PathBuf>, data: impl Into<Vec<u8>>) {
        self.writes.push(Planned::Write(path.into(), data.into()));
    }

    /// [`write`](Self::write) of a file whose current content `old` the
    /// caller read under the lock it commits under: spares reading it
    /// again.
    pub fn write_over(&mut self, path: impl Into<PathBuf>, data: impl Into<Vec<u8>>, old: &[u8]) {
        let w = log::Write1::over(path.into(), data.into(), Some(old));
        self.writes.push(Planned::Ready(w));
    }

    /// Plans `path`, whose current content is `base` (of CRC-32
    /// `base_crc`, read under the lock it commits under), to hold `base`
    /// with the bytes in `range` replaced by `mid` (`new_crc`: the CRC-32
    /// of the result). The new content is written from those pieces and
    /// logged as a splice: a large file changed in one place is neither
    /// gathered into a new buffer nor compared with its old content. A
    /// range outside `base` is an error.
    pub fn write_edit(
        &mut self,
        path: impl Into<PathBuf>,
        (base, base_crc): (Base, u32),
        range: std::ops::Range<usize>,
        (mid, new_crc): (Vec<u8>, u32),
    ) -> Result<()> {
        let w = log::Write1::edit(path.into(), (base, base_crc), range, (mid, new_crc))?;
        self.writes.push(Planned::Ready(w));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Applies every write, through the log of `dir` (see [`log`]), the
    /// log taking at most [`log::DEFAULT_MAX`] bytes.
    pub fn commit(self, dir: &Path) -> Result<()> {
        self.commit_within(dir, log::DEFAULT_MAX)
    }

    /// Applies every write, through the log of `dir` (see [`log`]), the
    /// log taking at most `cap` bytes (`WALMAX`). A target that fails
    /// [`check_target`], or a record that would not fit in `cap` bytes
    /// ([`TooLarge`]), is an error before anything is written.
    pub fn commit_within(self, dir: &Path, cap: u64) -> Result<()> {
        self.commit_opened(dir, cap, None)
    }

    /// [`commit_within`](Self::commit_within), through the log `opened`
    /// holds when it holds one.
    fn commit_opened(self, dir: &Path, cap: u64, mut opened: Option<&mut Recovered>) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        for w in &self.writes {
            let path = match w {
                Planned::Write(p, _) => p.as_path(),
                Planned::Ready(w) => w.path(),
            };
            check_target(path)?;
        }
        let writes = self
            .writes
            .into_iter()
            .map(|w| match w {
                Planned::Write(p, d) => log::Write1::new(p, d),
                Planned::Ready(w) => Ok(w),
            })
            .collect::<Result<Vec<_>>>()?;
        let room = log::record_size(&writes);
        if !log::fits(room, cap) {
            return Err(TooLarge {
                log: dir.join(LOG).display().to_string(),
                need: log::needed(room),
                cap,
            }
            .into());
        }
        let mut log = match opened.as_mut().and_then(|r| r.log.take()) {
            Some(log) => log,
            None => Wal::open_recovered(dir, room, cap)?,
        };
        log.commit(&writes, cap)?;
        if let Some(r) = opened {
            r.log = Some(log);
        }
        Ok(())
    }

    /// [`commit_within`](Self::commit_within) through the log `recovered`
    /// holds open: the log of its directory, recovered under the lock the
    /// caller still holds ([`recover_open`]), so neither opened nor read
    /// again. A commit that fails closes it: a later commit opens and
    /// recovers the log afresh.
    pub fn commit_recovered(self, recovered: &mut Recovered, cap: u64) -> Result<()> {
        let dir = recovered.dir.clone();
        self.commit_opened(&dir, cap, Some(recovered))
    }
}

/// The write-ahead log of a directory as [`recover_open`] left it, open
/// for the commits that follow under the same lock
/// ([`Transaction::commit_recovered`]).
pub struct Recovered {
    dir: PathBuf,
    /// `None`: the directory has no log yet, or a commit through it failed.
    log: Option<Wal>,
}

/// [`recover`], the log kept open for [`Transaction::commit_recovered`]
/// under the same lock.
pub fn recover_open(dir: &Path) -> Result<Recovered> {
    let log = match Wal::open(dir)? {
        Some(mut log) => {
            log.recover()?;
            Some(log)
        }
        None => None,
    };
    Ok(Recovered {
        dir: dir.to_path_buf(),
        log,
    })
}

/// Finishes what a crashed request left in `dir`: the log's unfinished
/// records (see [`log`]). Returns the number of files it completed.
///
/// Spare files (`.NAME.edeploy-tmp`) stay: each holds the previous
/// version of its file and takes the next one ([`log`]'s `replace`), and
/// one a crash left half-written is overwritten by the next write. Not
/// listing the directory also keeps each request's cost independent of
/// how many files it holds (HWDIR is CONFIGDIR by default).
pub fn recover(dir: &Path) -> Result<usize> {
    match Wal::open(dir)? {
        Some(mut log) => log.recover(),
        None => Ok(0),
    }
}

/// Whether a committed update of `dir` is not applied yet, so that its
/// files may disagree until the next request finishes it. Read-only.
pub fn pending(dir: &Path) -> Result<bool> {
    match Wal::open_readonly(dir)? {
        Some(log) => log.pending(),
        None => Ok(false),
    }
}

/// A record of the log that could not be applied and was set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// The copy of the log that holds it (`DIR/.edeploy-log.failed-<stamp>`).
    pub file: PathBuf,
    /// The file it could not write and why.
    pub reason: String,
}

/// The records of `dir`'s log set aside so far, oldest first (read from
/// `DIR/.edeploy-log.set-aside`, which the operator removes once they are
/// dealt with). Read-only.
pub fn set_aside(dir: &Path) -> Result<Vec<SetAside>> {
    let notes = dir.join(log::SET_ASIDE);
    let text = match fs::read(&notes) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read", notes.display())),
    };
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(file, reason)| SetAside {
            file: dir.join(file),
            reason: reason.to_string(),
        })
        .collect())
}
