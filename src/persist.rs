//! Crash-safe replacement of the server's files (CMDB, state, `.orig`).
//!
//! One decision changes several files, and they must change together or
//! not at all. A [`Transaction`] writes every new file to a temporary name
//! in the target's directory and fsyncs it, then records the planned
//! renames in a journal (itself written to a temporary name, fsynced and
//! renamed into place), then renames each file and fsyncs the directory,
//! then removes the journal. [`recover`], run by the next request under the
//! same lock, finishes the renames of a journal left by a crash (roll
//! forward) and deletes temporary files no journal speaks for (roll back).
//! So after a crash at any instant each file is wholly old or wholly new,
//! and the set of files is either all old or all new.
//!
//! Everything here must run under the exclusive lock of [`Lock`].

use anyhow::{Context, Result};
use fs4::fs_std::FileExt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal's name inside the directory it protects.
pub const JOURNAL: &str = ".edeploy-journal";
/// Temporary files are named `.NAME.edeploy-tmp`.
const TMP_SUFFIX: &str = ".edeploy-tmp";

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

/// New contents for several files of one directory, applied all together.
#[derive(Default)]
pub struct Transaction {
    writes: Vec<(PathBuf, Vec<u8>)>,
}

/// A pause between the renames, for tests that kill the process there.
fn test_delay() {
    if let Some(ms) = std::env::var("EDEPLOY_TEST_COMMIT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

impl Transaction {
    pub fn new() -> Transaction {
        Transaction::default()
    }

    /// Plans `path` to hold `data` once [`commit`](Self::commit) runs.
    pub fn write(&mut self, path: impl Into<PathBuf>, data: impl Into<Vec<u8>>) {
        self.writes.push((path.into(), data.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Applies every write, journaled in `dir` (all paths must be in `dir`).
    pub fn commit(self, dir: &Path) -> Result<()> {
        match self.writes.len() {
            0 => return Ok(()),
            1 => return write_atomic(&self.writes[0].0, &self.writes[0].1),
            _ => {}
        }
        let mut renames = Vec::with_capacity(self.writes.len());
        for (path, data) in &self.writes {
            let tmp = tmp_name(path)?;
            write_synced(&tmp, data)?;
            renames.push((tmp, path.clone()));
        }
        let journal = dir.join(JOURNAL);
        let listed: Vec<(String, String)> = renames
            .iter()
            .map(|(t, p)| (t.display().to_string(), p.display().to_string()))
            .collect();
        let body = serde_json::to_vec(&listed).context("cannot encode the journal")?;
        write_atomic(&journal, &body)?;
        for (i, (tmp, path)) in renames.iter().enumerate() {
            if i > 0 {
                test_delay();
            }
            fs::rename(tmp, path).with_context(|| format!("{}: cannot replace", path.display()))?;
        }
        sync_dir(dir)?;
        fs::remove_file(&journal)
            .with_context(|| format!("{}: cannot remove the journal", journal.display()))?;
        sync_dir(dir)
    }
}

/// Finishes or undoes what a crashed request left in `dir`. Returns the
/// number of files it completed.
pub fn recover(dir: &Path) -> Result<usize> {
    let journal = dir.join(JOURNAL);
    let mut done = 0;
    match fs::read(&journal) {
        Ok(body) => {
            // The journal is renamed into place whole, so it always parses;
            // if it does not, the disk lied and an operator must look.
            let renames: Vec<(String, String)> = serde_json::from_slice(&body)
                .with_context(|| format!("{}: unreadable journal", journal.display()))?;
            for (tmp, path) in renames {
                if Path::new(&tmp).exists() {
                    fs::rename(&tmp, &path)
                        .with_context(|| format!("{path}: cannot finish an interrupted update"))?;
                    done += 1;
                }
            }
            sync_dir(dir)?;
            fs::remove_file(&journal)
                .with_context(|| format!("{}: cannot remove the journal", journal.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("{}: cannot read", journal.display()));
        }
    }
    // Temporary files of a request that died before its journal existed.
    let entries = fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(done)
}
