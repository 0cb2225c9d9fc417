//! Fetching the role's file tree into `/chroot`, and copying trees.
//!
//! Over HTTP the `.edeploy` file (a gzip'd tar) is streamed through gunzip
//! and untar into a staging directory, `/chroot/.edeploy-partial`, on the
//! same filesystem as the target. Only once the whole stream is verified —
//! the tar's end, the gzip trailer (CRC-32 and length) and exactly
//! `Content-Length` bytes — are the entries moved into place, by renames.
//! A cut or corrupt download removes the staging directory and leaves
//! `/chroot` as it was: never a half-installed tree.
//!
//! Owners are numeric (the tar's uid/gid, not names looked up in the
//! installer's own `/etc/passwd`); modes, hard links, symlinks, character
//! and block devices, fifos, mtimes and extended attributes
//! (`SCHILY.xattr.*`, e.g. file capabilities) are kept.
//!
//! With rsync (no `HSERV`), `rsync -aHAX --numeric-ids` runs through the
//! seam straight into `/chroot`: rsync writes each file under a temporary
//! name and renames it, but an interrupted transfer leaves the files done
//! so far. That is a failure too; the disk is partitioned again by the
//! next attempt.

use super::console::Console;
use super::Tuning;
use crate::exec::{CmdLine, Exec};
use anyhow::{anyhow, bail, Context, Result};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, BufRead, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The staging directory's name inside the target.
pub const STAGING: &str = ".edeploy-partial";

/// Counts the bytes read and draws the progress line.
struct Progress<'a, R> {
    inner: R,
    read: u64,
    total: Option<u64>,
    name: &'a str,
    console: &'a Console,
    started: Instant,
    last_draw: Option<Instant>,
    every: Duration,
}

impl<R: Read> Progress<'_, R> {
    fn draw(&mut self, force: bool) {
        let now = Instant::now();
        if !force && self.last_draw.is_some_and(|t| now - t < self.every) {
            return;
        }
        self.last_draw = Some(now);
        let mb = |b: u64| b as f64 / 1e6;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = mb(self.read) / secs;
        let line = match self.total {
            Some(t) if t > 0 => {
                let pct = (self.read.saturating_mul(100) / t).min(100);
                let filled = (pct / 5) as usize;
                format!(
                    "edeploy: {} [{}{}] {pct:>3}% {:.1}/{:.1} MB {rate:.1} MB/s",
                    self.name,
                    "#".repeat(filled),
                    ".".repeat(20 - filled),
                    mb(self.read),
                    mb(t)
                )
            }
            _ => format!(
                "edeploy: {} {:.1} MB {rate:.1} MB/s",
                self.name,
                mb(self.read)
            ),
        };
        self.console.progress(&line);
    }
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(t) = self.total {
            if self.read > t {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("more bytes than the {t} announced"),
                ));
            }
        }
        self.draw(false);
        Ok(n)
    }
}

/// An error with its causes (`tar` puts the real one in the source).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cur = c.source();
    }
    text
}

/// Unpacks a gzip'd tar stream into `dest` through staging (see the module
/// doc). `total` is the expected length of the compressed stream, when
/// known; `name` is shown on the progress line. Returns the bytes read.
///
/// Two threads share the work: one reads `reader` and inflates it (and
/// draws the progress line), the calling one unpacks the tar from the
/// inflated chunks it hands over, a few at a time.
pub fn unpack_verified<R: Read + Send>(
    reader: R,
    total: Option<u64>,
    dest: &Path,
    name: &str,
    console: &Console,
    tuning: &Tuning,
) -> Result<u64> {
    let staging = dest.join(STAGING);
    let result = (|| -> Result<u64> {
        if staging.symlink_metadata().is_ok() {
            fs::remove_dir_all(&staging)
                .with_context(|| format!("cannot remove {}", staging.display()))?;
        }
        fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let progress = Progress {
            inner: reader,
            read: 0,
            total,
            name,
            console,
            started: Instant::now(),
            last_draw: None,
            every: tuning.progress_every,
        };
        // Our own buffer, so that what follows the gzip stream stays in it
        // to be seen (a decoder with its own buffer would swallow it).
        let buffered = io::BufReader::with_capacity(256 * 1024, progress);
        let (mut progress, extra) = std::thread::scope(|scope| {
            let (tx, rx) = mpsc::sync_channel(CHUNKS);
            let (back_tx, back_rx) = mpsc::sync_channel(CHUNKS + 2);
            let inflater = scope.spawn(move || inflate(buffered, &tx, &back_rx));
            let unpacked = (|| -> Result<()> {
                let framing = Rc::new(RefCell::new(Framing::default()));
                let mut archive = tar::Archive::new(PaxTap {
                    inner: Chunks {
                        rx,
                        back: back_tx,
                        cur: Vec::new(),
                        pos: 0,
                        end: 0,
                    },
                    framing: Rc::clone(&framing),
                });
                archive.set_preserve_permissions(true);
                archive.set_preserve_ownerships(true);
                archive.set_preserve_mtime(true);
                // Extended attributes are set by `unpack_entries`, from the
                // records as the tap kept them.
                archive.set_unpack_xattrs(false);
                archive.set_overwrite(true);
                unpack_entries(&mut archive, &staging, name, &framing)?;
                // The tar ends before the gzip trailer: read on to the end
                // of the gzip stream, so the CRC and length are checked.
                let mut rest = archive.into_inner();
                io::copy(&mut rest, &mut io::sink())
                    .map_err(|e| anyhow!("{name}: the archive is cut or corrupt: {}", chain(&e)))?;
                Ok(())
            })();
            // The chunks' receiver is gone: an inflater still running
            // stops at its next chunk.
            let inflated = inflater
                .join()
                .map_err(|_| anyhow!("{name}: the download stopped"))?;
            unpacked?;
            match inflated {
                Ok(Some(done)) => Ok(done),
                // The error reached the unpacking side, which failed.
                Ok(None) => bail!("{name}: the download stopped"),
                Err(e) => bail!("{name}: the download failed: {}", chain(&e)),
            }
        })?;
        progress.draw(true);
        console.progress_done();
        if extra > 0 {
            bail!("{name}: data follows the end of the gzip stream");
        }
        if let Some(t) = total {
            if progress.read != t {
                bail!(
                    "{name}: the download is cut: {} of {t} bytes",
                    progress.read
                );
            }
        }
        merge(&staging, dest)?;
        fs::remove_dir(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
        Ok(progress.read)
    })();
    if result.is_err() {
        console.progress_done();
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Inflated bytes per chunk, and chunks in flight between the threads.
const CHUNK: usize = 256 * 1024;
const CHUNKS: usize = 8;

/// An inflated chunk (all `CHUNK` bytes long, the first `.1` filled), or
/// the error that ended the gzip stream.
type Chunk = io::Result<(Vec<u8>, usize)>;

/// The inflating thread: sends the gzip stream of `buffered` inflated,
/// chunk by chunk, up to the end of the gzip stream (CRC-32 and length
/// checked), reusing the chunks that come back. Returns the reader and
/// the number of bytes already buffered after the gzip stream (to be
/// refused); `None` when it stopped early: an inflate error (sent as the
/// last chunk) or nobody left to receive.
fn inflate<R: Read>(
    mut buffered: io::BufReader<R>,
    tx: &mpsc::SyncSender<Chunk>,
    back: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<Option<(R, usize)>> {
    {
        let mut gz = flate2::bufread::GzDecoder::new(&mut buffered);
        loop {
            let mut buf = back.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let mut n = 0;
            while n < CHUNK {
                match gz.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return Ok(None);
                    }
                }
            }
            if n > 0 && tx.send(Ok((buf, n))).is_err() {
                return Ok(None);
            }
            if n < CHUNK {
                break;
            }
        }
    }
    let extra = buffered.fill_buf()?.len();
    Ok(Some((buffered.into_inner(), extra)))
}

/// The unpacking side of the channel, as a reader: the inflated stream,
/// ending where the inflating thread ends (after an error it sent, the
/// unpacking has failed already).
struct Chunks {
    rx: mpsc::Receiver<Chunk>,
    /// Where used chunks go back to be refilled.
    back: mpsc::SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    end: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end {
            match self.rx.recv() {
                Ok(Ok((chunk, n))) => {
                    let used = std::mem::replace(&mut self.cur, chunk);
                    if !used.is_empty() {
                        let _ = self.back.try_send(used);
                    }
                    self.pos = 0;
                    self.end = n;
                }
                Ok(Err(e)) => return Err(e),
                Err(mpsc::RecvError) => return Ok(0),
            }
        }
        let n = buf.len().min(self.end - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Unpacks every entry of `archive` into `staging`, as
/// `tar::Archive::unpack` does (paths leaving `staging` refused,
/// directories last, deepest first, so their modes cannot get in the way)
/// plus what it leaves out: character and block devices and fifos are
/// made with `mknod` (tar-rs would write them as empty regular files),
/// extended attributes are set on every kind of entry from the records
/// `framing` kept whole (tar-rs sets them on regular files only, and
/// loses a value holding a newline byte), directories get their mtime,
/// and an mtime of 0 stays 0 (tar-rs writes 1).
///
/// Regular files, symlinks and directories whose parent directories are
/// all real directories (no symlink) are written by [`Fast`], with the
/// same checks and results as tar-rs but far fewer system calls; any
/// other entry, and one under a symlink, goes through tar-rs.
fn unpack_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    staging: &Path,
    name: &str,
    framing: &RefCell<Framing>,
) -> Result<()> {
    let corrupt = |e: io::Error| anyhow!("{name}: the archive is cut or corrupt: {}", chain(&e));
    let mut fast = Fast::new(staging);
    let mut dirs = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let pax = tapped_pax(&mut entry, framing, name)?;
        if kind.is_dir() {
            dirs.push((entry, pax));
            continue;
        }
        let dst = if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            let path = entry.path_bytes().into_owned();
            make_special(&mut entry, staging).with_context(|| {
                format!(
                    "{name}: {}: cannot unpack the {}",
                    String::from_utf8_lossy(&path),
                    if kind.is_fifo() { "fifo" } else { "device" }
                )
            })?
        } else if let Some(dst) = fast.unpack(&mut entry, name, &corrupt)? {
            if let Some(pax) = pax {
                set_xattrs(&pax, &dst).with_context(|| name.to_string())?;
            }
            continue;
        } else {
            unpack_one(&mut entry, staging, name, &corrupt)?
        };
        // A name that is only `/` or `.` components: tar-rs skips it.
        if dst == staging {
            continue;
        }
        if let Some(pax) = pax {
            set_xattrs(&pax, &dst).with_context(|| name.to_string())?;
        }
        if (kind.is_file() || kind.is_symlink()) && entry.header().mtime().ok() == Some(0) {
            let zero = filetime::FileTime::from_unix_time(0, 0);
            filetime::set_symlink_file_times(&dst, zero, zero)
                .with_context(|| format!("{}: cannot set the mtime", dst.display()))?;
        }
    }
    dirs.sort_by(|a, b| b.0.path_bytes().cmp(&a.0.path_bytes()));
    for (mut dir, pax) in dirs {
        let dst = match fast.unpack(&mut dir, name, &corrupt)? {
            Some(dst) => dst,
            None => unpack_one(&mut dir, staging, name, &corrupt)?,
        };
        if dst == staging {
            continue;
        }
        if let Some(pax) = pax {
            set_xattrs(&pax, &dst).with_context(|| name.to_string())?;
        }
        let mtime = dir.header().mtime().map_err(corrupt)?;
        let t = filetime::FileTime::from_unix_time(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
        filetime::set_symlink_file_times(&dst, t, t)
            .with_context(|| format!("{}: cannot set the mtime", dst.display()))?;
    }
    Ok(())
}

/// The short way to unpack the common entries: regular files, symlinks
/// and directories, when every parent directory of the entry inside the
/// staging directory is a real directory. Those are known once seen (an
/// unpack never turns a directory into anything else: a file, symlink or
/// device entry on a directory's path fails), so most entries cost no
/// path lookups besides their own creation, where tar-rs canonicalizes
/// the staging directory and the parent (a `readlink` per path component)
/// for every entry. The result is the same as tar-rs's with overwrite,
/// permissions, ownerships and mtimes on: an existing file or symlink is
/// replaced, never written through; owner (numeric) before mode, which
/// keeps setuid bits; an mtime of 0 stays 0.
struct Fast {
    staging: PathBuf,
    /// Real directories inside the staging directory (and itself).
    dirs: HashSet<PathBuf>,
    /// File data goes through this: whole inflated chunks.
    buf: Vec<u8>,
}

impl Fast {
    fn new(staging: &Path) -> Fast {
        Fast {
            staging: staging.to_path_buf(),
            dirs: HashSet::from([staging.to_path_buf()]),
            buf: vec![0; CHUNK],
        }
    }

    /// Unpacks `entry` when it is of a kind handled here and its parent
    /// directories are real directories (missing ones are created);
    /// returns where it went, or `None` for tar-rs to do it.
    fn unpack<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        name: &str,
        corrupt: &dyn Fn(io::Error) -> anyhow::Error,
    ) -> Result<Option<PathBuf>> {
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_symlink() || kind.is_dir()) {
            return Ok(None);
        }
        // An old header's trailing `/` makes a directory of a file entry
        // in tar-rs.
        if entry.path_bytes().ends_with(b"/") && !kind.is_dir() {
            return Ok(None);
        }
        let Some(dst) = entry
            .path()
            .ok()
            .and_then(|p| staged_path(&self.staging, &p))
        else {
            return Ok(None);
        };
        let Some(parent) = dst.parent().filter(|_| dst != self.staging) else {
            return Ok(None);
        };
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let shown = || format!("{name}: {path}");
        if !self.real_dir(parent).with_context(shown)? {
            return Ok(None);
        }
        let h = entry.header();
        let uid = h.uid().map_err(corrupt)?;
        let gid = h.gid().map_err(corrupt)?;
        let uid =
            u32::try_from(uid).map_err(|_| anyhow!("{}: the uid {uid} is too large", shown()))?;
        let gid =
            u32::try_from(gid).map_err(|_| anyhow!("{}: the gid {gid} is too large", shown()))?;
        let mode = h.mode().ok();
        let mtime = h
            .mtime()
            .ok()
            .map(|m| filetime::FileTime::from_unix_time(i64::try_from(m).unwrap_or(i64::MAX), 0));
        if kind.is_file() {
            self.file(entry, &dst, corrupt, (uid, gid), mode, mtime)
                .with_context(shown)?;
        } else if kind.is_symlink() {
            let target = match entry.link_name() {
                Ok(Some(t)) if t.iter().next().is_some() => t.into_owned(),
                _ => return Ok(None),
            };
            symlink(&target, &dst, (uid, gid), mtime).with_context(shown)?;
        } else {
            dir(&dst, (uid, gid), mode).with_context(shown)?;
            self.dirs.insert(dst.clone());
        }
        Ok(Some(dst))
    }

    /// Whether `dir` (inside the staging directory) and its parents are
    /// real directories; missing ones are created.
    fn real_dir(&mut self, dir: &Path) -> Result<bool> {
        if self.dirs.contains(dir) {
            return Ok(true);
        }
        let Ok(rel) = dir.strip_prefix(&self.staging) else {
            return Ok(false);
        };
        let mut cur = self.staging.clone();
        for c in rel.components() {
            cur.push(c);
            if self.dirs.contains(&cur) {
                continue;
            }
            match cur.symlink_metadata() {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&cur) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot create {}", cur.display()))
                    }
                },
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", cur.display())),
            }
            self.dirs.insert(cur.clone());
        }
        Ok(true)
    }

    /// A regular file: a new inode (what was there removed), the data,
    /// then mtime, owner, mode.
    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        dst: &Path,
        corrupt: &dyn Fn(io::Error) -> anyhow::Error,
        (uid, gid): (u32, u32),
        mode: Option<u32>,
        mtime: Option<filetime::FileTime>,
    ) -> Result<()> {
        let open = || {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dst)
        };
        let mut f = match open() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match fs::remove_file(dst) {
                Ok(()) => open(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => open(),
                Err(e) => Err(e),
            },
            r => r,
        }
        .with_context(|| format!("cannot create {}", dst.display()))?;
        let want = entry.size();
        let mut got = 0u64;
        loop {
            let n = entry.read(&mut self.buf).map_err(corrupt)?;
            if n == 0 {
                break;
            }
            io::Write::write_all(&mut f, &self.buf[..n])
                .with_context(|| format!("cannot write {}", dst.display()))?;
            got += n as u64;
        }
        if got != want {
            return Err(corrupt(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{got} of {want} bytes"),
            )));
        }
        if let Some(t) = mtime {
            filetime::set_file_handle_times(&f, Some(t), Some(t))
                .with_context(|| format!("{}: cannot set the mtime", dst.display()))?;
        }
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {}", dst.display()))?;
        if let Some(mode) = mode {
            f.set_permissions(fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot chmod {}", dst.display()))?;
        }
        Ok(())
    }
}

/// A symlink (replacing a file or symlink there), its owner and mtime.
fn symlink(
    target: &Path,
    dst: &Path,
    (uid, gid): (u32, u32),
    mtime: Option<filetime::FileTime>,
) -> Result<()> {
    let made = match std::os::unix::fs::symlink(target, dst) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(dst).and_then(|()| std::os::unix::fs::symlink(target, dst))
        }
        r => r,
    };
    made.with_context(|| format!("cannot create {}", dst.display()))?;
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid))
        .with_context(|| format!("cannot chown {}", dst.display()))?;
    if let Some(t) = mtime {
        filetime::set_symlink_file_times(dst, t, t)
            .with_context(|| format!("{}: cannot set the mtime", dst.display()))?;
    }
    Ok(())
}

/// A directory (an existing one is kept), its owner and mode; the caller
/// sets its mtime.
fn dir(dst: &Path, (uid, gid): (u32, u32), mode: Option<u32>) -> Result<()> {
    match fs::create_dir(dst) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if !dst.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                return Err(e).with_context(|| format!("cannot create {}", dst.display()));
            }
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dst.display())),
    }
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid))
        .with_context(|| format!("cannot chown {}", dst.display()))?;
    if let Some(mode) = mode {
        fs::set_permissions(dst, fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot chmod {}", dst.display()))?;
    }
    Ok(())
}

/// The PAX records of `entry` as the tap kept them; an error when the tap
/// and tar-rs disagree on whether the entry has any.
fn tapped_pax<R: Read>(
    entry: &mut tar::Entry<R>,
    framing: &RefCell<Framing>,
    name: &str,
) -> Result<Option<Vec<u8>>> {
    let tapped = framing
        .borrow_mut()
        .by_entry
        .remove(&entry.raw_header_position());
    let has = matches!(entry.pax_extensions(), Ok(Some(_)));
    if has != tapped.is_some() {
        bail!(
            "{name}: {}: cannot read the archive's extended headers",
            String::from_utf8_lossy(&entry.path_bytes())
        );
    }
    Ok(tapped)
}

/// `entry.unpack_in(staging)`; returns where the entry went.
fn unpack_one<R: Read>(
    entry: &mut tar::Entry<R>,
    staging: &Path,
    name: &str,
    corrupt: &dyn Fn(io::Error) -> anyhow::Error,
) -> Result<PathBuf> {
    let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let outside = || anyhow!("{name}: {shown}: a path outside the target");
    let dst = entry
        .path()
        .ok()
        .and_then(|p| staged_path(staging, &p))
        .ok_or_else(outside)?;
    if !entry.unpack_in(staging).map_err(corrupt)? {
        return Err(outside());
    }
    Ok(dst)
}

/// Where tar-rs unpacks `path` inside `staging`: leading `/` and `.`
/// components dropped; `None` with a `..` component.
fn staged_path(staging: &Path, path: &Path) -> Option<PathBuf> {
    let mut dst = staging.to_path_buf();
    for c in path.components() {
        match c {
            Component::Normal(part) => dst.push(part),
            Component::ParentDir => return None,
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
        }
    }
    Some(dst)
}

/// Makes a character or block device or a fifo entry inside `staging`
/// and returns its path: missing parent directories are created (the
/// archive's own entries for them come later), an existing parent must be
/// a directory, not a symlink; then `mknod`, owner, mode (after the
/// owner: chown clears setuid bits), mtime.
fn make_special<R: Read>(entry: &mut tar::Entry<R>, staging: &Path) -> Result<PathBuf> {
    let rel = entry.path().context("the path is not valid")?.into_owned();
    let dst = staged_path(staging, &rel)
        .filter(|d| d != staging)
        .context("a path outside the target")?;
    let mut dir = staging.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            let Component::Normal(part) = c else { continue };
            dir.push(part);
            match dir.symlink_metadata() {
                Ok(m) if m.is_dir() => {}
                Ok(_) => bail!("{} is not a directory", dir.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
            }
        }
    }
    match dst.symlink_metadata() {
        Ok(m) if m.is_dir() => bail!("{} is a directory", dst.display()),
        Ok(_) => {
            fs::remove_file(&dst).with_context(|| format!("cannot replace {}", dst.display()))?
        }
        Err(_) => {}
    }
    let h = entry.header();
    let kind = h.entry_type();
    let mode = h.mode().context("bad mode")? & 0o7777;
    let uid = u32::try_from(h.uid().context("bad uid")?).context("the uid is too large")?;
    let gid = u32::try_from(h.gid().context("bad gid")?).context("the gid is too large")?;
    let mtime = h.mtime().context("bad mtime")?;
    let (format, rdev) = if kind.is_fifo() {
        (libc::S_IFIFO, 0)
    } else {
        let major = h.device_major().context("bad major number")?;
        let minor = h.device_minor().context("bad minor number")?;
        let (Some(major), Some(minor)) = (major, minor) else {
            bail!("no device numbers in the header");
        };
        let format = if kind.is_character_special() {
            libc::S_IFCHR
        } else {
            libc::S_IFBLK
        };
        (format, libc::makedev(major, minor))
    };
    let c = std::ffi::CString::new(dst.as_os_str().as_bytes())
        .with_context(|| format!("{}: the path holds a NUL byte", dst.display()))?;
    // SAFETY: `c` is a NUL-terminated path.
    if unsafe { libc::mknod(c.as_ptr(), format | mode as libc::mode_t, rdev) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("cannot create {}", dst.display()));
    }
    std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
        .with_context(|| format!("cannot chown {}", dst.display()))?;
    fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", dst.display()))?;
    let t = filetime::FileTime::from_unix_time(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
    filetime::set_symlink_file_times(&dst, t, t)
        .with_context(|| format!("{}: cannot set the mtime", dst.display()))?;
    Ok(dst)
}

/// The records of a PAX extended header, `"LEN KEY=VALUE\n"` each, read
/// by their length (LEN counts the whole record), so a value may hold any
/// byte, newlines included.
fn pax_records(data: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|b| *b == b' ')
            .context("a PAX record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|l| l.parse().ok())
            .context("a PAX record with a bad length")?;
        if len <= space + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            bail!("a PAX record whose length does not match");
        }
        let record = &rest[space + 1..len - 1];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .context("a PAX record without '='")?;
        out.push((&record[..eq], &record[eq + 1..]));
        rest = &rest[len..];
    }
    Ok(out)
}

/// Sets the `SCHILY.xattr.*` records of the PAX header `pax` as extended
/// attributes of `dst` (not following a symlink).
fn set_xattrs(pax: &[u8], dst: &Path) -> Result<()> {
    let records = pax_records(pax)
        .with_context(|| format!("{}: a bad PAX extended header", dst.display()))?;
    for (key, value) in records {
        if let Some(attr) = key.strip_prefix(b"SCHILY.xattr.") {
            set_xattr(dst, attr, value)?;
        }
    }
    Ok(())
}

/// Passes a tar stream through unchanged and keeps the data of its PAX
/// extended headers (type `x`) whole, by the stream position of the
/// header of the entry each describes (tar-rs 0.4 splits those records on
/// newline bytes, which breaks binary values: a file capability or an ACL
/// holding a 0x0a byte).
struct PaxTap<R> {
    inner: R,
    framing: Rc<RefCell<Framing>>,
}

impl<R: Read> Read for PaxTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.framing.borrow_mut().feed(&buf[..n]);
        Ok(n)
    }
}

/// The tap's view of the tar stream: 512-byte headers, each followed by
/// its data padded to 512 bytes, as tar-rs reads them (a GNU sparse
/// header by its extension headers; a PAX `size` record overriding the
/// next entry's size).
#[derive(Default)]
struct Framing {
    /// Stream position of the next byte.
    pos: u64,
    /// The header being read.
    block: Vec<u8>,
    /// Data and padding still to pass before the next header.
    data_left: u64,
    /// Bytes of an `x` header's data still to keep, and those kept.
    keep_left: u64,
    kept: Vec<u8>,
    /// The last `x` header's data and its `size` record, for the next
    /// entry.
    pending: Option<Vec<u8>>,
    pending_size: Option<u64>,
    /// In a GNU sparse entry's extension headers: the entry's data size.
    sparse: Option<u64>,
    /// PAX data by the position of the header it describes.
    by_entry: HashMap<u64, Vec<u8>>,
}

fn padded(size: u64) -> u64 {
    size.div_ceil(512).saturating_mul(512)
}

/// A tar header's numeric field, as tar-rs reads it: octal text up to the
/// first NUL, or base-256 (the field's last 8 bytes) when the high bit of
/// its first byte is set.
fn tar_number(field: &[u8]) -> Option<u64> {
    if field.first()? & 0x80 != 0 {
        let last: [u8; 8] = field.get(field.len().checked_sub(8)?..)?.try_into().ok()?;
        return Some(u64::from_be_bytes(last));
    }
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    let text = std::str::from_utf8(&field[..end]).ok()?;
    u64::from_str_radix(text.trim(), 8).ok()
}

impl Framing {
    fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if self.data_left > 0 {
                let n = usize::try_from(self.data_left).map_or(buf.len(), |d| d.min(buf.len()));
                if self.keep_left > 0 {
                    let k = usize::try_from(self.keep_left).map_or(n, |l| l.min(n));
                    self.kept.extend_from_slice(&buf[..k]);
                    self.keep_left -= k as u64;
                    if self.keep_left == 0 {
                        self.pax_done();
                    }
                }
                self.data_left -= n as u64;
                self.pos += n as u64;
                buf = &buf[n..];
                continue;
            }
            let n = (512 - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..n]);
            self.pos += n as u64;
            buf = &buf[n..];
            if self.block.len() == 512 {
                let block = std::mem::take(&mut self.block);
                self.header(&block, self.pos - 512);
            }
        }
    }

    fn header(&mut self, h: &[u8], at: u64) {
        if let Some(size) = self.sparse {
            // Byte 504 of an extension header: another one follows.
            if h[504] == 0 {
                self.sparse = None;
                self.data_left = padded(size);
            }
            return;
        }
        if h.iter().all(|b| *b == 0) {
            return;
        }
        // An unreadable size stops tar-rs too.
        let size = tar_number(&h[124..136]).unwrap_or(0);
        match h[156] {
            b'x' => {
                self.kept.clear();
                self.keep_left = size;
                self.data_left = padded(size);
                if size == 0 {
                    self.pax_done();
                }
            }
            b'g' | b'L' | b'K' => self.data_left = padded(size),
            kind => {
                let size = self.pending_size.take().unwrap_or(size);
                if let Some(pax) = self.pending.take() {
                    self.by_entry.insert(at, pax);
                }
                // Byte 482 of a GNU sparse header: extension headers follow.
                if kind == b'S' && h[482] != 0 {
                    self.sparse = Some(size);
                } else {
                    self.data_left = padded(size);
                }
            }
        }
    }

    fn pax_done(&mut self) {
        let data = std::mem::take(&mut self.kept);
        self.pending_size = pax_records(&data).ok().and_then(|records| {
            records
                .iter()
                .find(|(k, _)| *k == b"size")
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
        });
        self.pending = Some(data);
    }
}

/// `lsetxattr(path, name, value)`.
pub fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> Result<()> {
    let what = || {
        format!(
            "{}: cannot set the extended attribute {}",
            path.display(),
            String::from_utf8_lossy(name)
        )
    };
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).with_context(what)?;
    let n = std::ffi::CString::new(name).with_context(what)?;
    // SAFETY: both strings are NUL-terminated; `value` is readable for its
    // length.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error()).with_context(what);
    }
    Ok(())
}

/// `http://HSERV:HSERV_PORT/HPATH/VERS/ROLE-VERS.edeploy`.
pub fn http_url(hserv: &str, port: u16, hpath: &str, role: &str, vers: &str) -> String {
    let path = if hpath.is_empty() {
        String::new()
    } else {
        format!("{hpath}/")
    };
    format!("http://{hserv}:{port}/{path}{vers}/{role}-{vers}.edeploy")
}

/// Streams the tree from `url` into `dest`.
pub fn fetch_http(url: &str, dest: &Path, console: &Console, tuning: &Tuning) -> Result<u64> {
    let agent = super::server::agent(tuning);
    let resp = agent
        .get(url)
        .call()
        .map_err(|e| anyhow!("cannot fetch {url}: {e}"))?;
    let status = resp.status().as_u16();
    if status != 200 {
        bail!("cannot fetch {url}: HTTP {status}");
    }
    let total = resp.body().content_length();
    let name = url.rsplit('/').next().unwrap_or(url).to_string();
    let reader = resp.into_body().into_reader();
    unpack_verified(reader, total, dest, &name, console, tuning)
}

/// `rsync://RSERV:RSERV_PORT/RPATH/VERS/ROLE/`.
pub fn rsync_url(rserv: &str, port: u16, rpath: &str, role: &str, vers: &str) -> String {
    let path = if rpath.is_empty() {
        String::new()
    } else {
        format!("{rpath}/")
    };
    format!("rsync://{rserv}:{port}/{path}{vers}/{role}/")
}

/// `rsync -aHAX --numeric-ids URL DEST/` through the seam.
pub fn fetch_rsync(url: &str, dest: &Path, exec: &dyn Exec) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    exec.run(&CmdLine::argv([
        "rsync".to_string(),
        "-aHAX".into(),
        "--numeric-ids".into(),
        url.into(),
        format!("{}/", dest.display()),
    ]))?;
    Ok(())
}

/// Copies a directory tree from a local medium into `dest` through
/// staging, like a download.
/// Returns the special files left out (see [`copy_tree`]).
pub fn copy_verified(src: &Path, dest: &Path) -> Result<Vec<PathBuf>> {
    let staging = dest.join(STAGING);
    let result = (|| -> Result<Vec<PathBuf>> {
        if staging.symlink_metadata().is_ok() {
            fs::remove_dir_all(&staging)?;
        }
        fs::create_dir_all(&staging)?;
        let skipped = copy_tree(src, &staging)?;
        merge(&staging, dest)?;
        fs::remove_dir(&staging)?;
        Ok(skipped)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Moves every entry of `src` into `dst` by renames, whatever its type
/// (files, directories, symlinks, devices, fifos): a missing entry is
/// renamed whole; a directory present on both sides is merged and takes
/// `src`'s owner, mode, extended attributes and mtime; anything else in
/// `dst` is replaced.
pub fn merge(src: &Path, dst: &Path) -> Result<()> {
    let entries = fs::read_dir(src).with_context(|| format!("cannot read {}", src.display()))?;
    for entry in entries {
        let entry = entry?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let smeta = s.symlink_metadata()?;
        match d.symlink_metadata() {
            Err(_) => {}
            Ok(dmeta) if dmeta.is_dir() && smeta.is_dir() => {
                merge(&s, &d)?;
                std::os::unix::fs::lchown(&d, Some(smeta.uid()), Some(smeta.gid()))
                    .with_context(|| format!("cannot chown {}", d.display()))?;
                fs::set_permissions(&d, fs::Permissions::from_mode(smeta.mode() & 0o7777))
                    .with_context(|| format!("cannot chmod {}", d.display()))?;
                for (name, value) in crate::host::pack::xattrs(&s)? {
                    set_xattr(&d, &name, &value)?;
                }
                fs::remove_dir(&s)?;
                let t = filetime::FileTime::from_last_modification_time(&smeta);
                filetime::set_symlink_file_times(&d, t, t)
                    .with_context(|| format!("{}: cannot set the mtime", d.display()))?;
                continue;
            }
            Ok(dmeta) if dmeta.is_dir() => {
                fs::remove_dir_all(&d).with_context(|| format!("cannot replace {}", d.display()))?
            }
            Ok(_) if smeta.is_dir() => {
                fs::remove_file(&d).with_context(|| format!("cannot replace {}", d.display()))?
            }
            Ok(_) => {}
        }
        fs::rename(&s, &d)
            .with_context(|| format!("cannot move {} to {}", s.display(), d.display()))?;
    }
    Ok(())
}

/// Copies `src` over `dst` keeping modes (setuid included), numeric owners,
/// symlinks and hard links (within the copy) of what it creates;
/// directories already in `dst` keep their own mode and owner. A file or symlink in `dst`
/// is replaced, never written through: a symlink in the installed tree
/// must not send a file outside it. A directory of `src` that is a symlink
/// in `dst` is refused for the same reason.
/// Returns the special files (devices, fifos, sockets) left out.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<Vec<PathBuf>> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut skipped = Vec::new();
    copy_dir(src, dst, &mut links, &mut skipped)?;
    Ok(skipped)
}

fn set_owner_mode(path: &Path, meta: &fs::Metadata) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))
        .with_context(|| format!("cannot chown {}", path.display()))?;
    if !meta.file_type().is_symlink() {
        // After chown, which clears setuid bits.
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
    }
    Ok(())
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    skipped: &mut Vec<PathBuf>,
) -> Result<()> {
    let smeta = src
        .symlink_metadata()
        .with_context(|| format!("cannot read {}", src.display()))?;
    // A directory already in the target keeps its mode and owner (the
    // overlay's /root must not turn the tree's 0700 /root into 0755).
    let created = match dst.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => bail!(
            "{} is a symlink in the tree; the copy of {} would go through it",
            dst.display(),
            src.display()
        ),
        Ok(m) if !m.is_dir() => {
            fs::remove_file(dst)?;
            fs::create_dir(dst).with_context(|| format!("cannot create {}", dst.display()))?;
            true
        }
        Ok(_) => false,
        Err(_) => {
            fs::create_dir(dst).with_context(|| format!("cannot create {}", dst.display()))?;
            true
        }
    };
    let mut names: Vec<_> = fs::read_dir(src)
        .with_context(|| format!("cannot read {}", src.display()))?
        .collect::<io::Result<Vec<_>>>()?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let meta = s.symlink_metadata()?;
        let ft = meta.file_type();
        if ft.is_dir() {
            copy_dir(&s, &d, links, skipped)?;
            continue;
        }
        if let Ok(dm) = d.symlink_metadata() {
            if dm.is_dir() {
                fs::remove_dir_all(&d)?;
            } else {
                fs::remove_file(&d)?;
            }
        }
        if ft.is_symlink() {
            let target = fs::read_link(&s)?;
            std::os::unix::fs::symlink(&target, &d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            set_owner_mode(&d, &meta)?;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&key) {
                    fs::hard_link(first, &d)
                        .with_context(|| format!("cannot link {}", d.display()))?;
                    continue;
                }
                links.insert(key, d.clone());
            }
            fs::copy(&s, &d)
                .with_context(|| format!("cannot copy {} to {}", s.display(), d.display()))?;
            set_owner_mode(&d, &meta)?;
        } else {
            // Device nodes, fifos, sockets: a tree gets its /dev from
            // devtmpfs at boot; the caller says what was left out.
            skipped.push(s.clone());
        }
    }
    if created {
        set_owner_mode(dst, &smeta)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader handing out at most `n` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// A gzip'd tar of `(path, kind, mode, mtime, data or link target)`,
    /// owned by the test's own user and group.
    fn gz_tar(entries: &[(&str, tar::EntryType, u32, u64, &[u8])]) -> Vec<u8> {
        let me = fs::metadata(std::env::temp_dir()).expect("tmp");
        let (uid, gid) = (u64::from(me.uid()), u64::from(me.gid()));
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (path, kind, mode, mtime, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_mtime(*mtime);
            if kind.is_symlink() {
                h.set_size(0);
                b.append_link(&mut h, path, std::str::from_utf8(data).expect("target"))
                    .expect("link");
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).expect("entry");
            }
        }
        b.into_inner().expect("tar").finish().expect("gzip")
    }

    fn mtime(path: &Path) -> i64 {
        path.symlink_metadata().expect("stat").mtime()
    }

    #[test]
    fn files_across_chunks_keep_their_data_mode_and_mtime() {
        use tar::EntryType as T;
        let mut big = Vec::with_capacity(3 * CHUNK + 123);
        let mut x = 12345u32;
        while big.len() < 3 * CHUNK + 123 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            big.push((x >> 16) as u8);
        }
        let bytes = gz_tar(&[
            ("d/", T::Directory, 0o750, 1000, b""),
            ("d/big", T::Regular, 0o4755, 0, &big),
            ("d/empty", T::Regular, 0o600, 5, b""),
            ("d/link", T::Symlink, 0o777, 7, b"big"),
        ]);
        let tmp = tempfile::tempdir().expect("tmp");
        let quiet = Console::new(Box::new(io::sink()));
        for step in [1000, 7777, 1 << 20] {
            let dest = tmp.path().join(step.to_string());
            let n = unpack_verified(
                Trickle(&bytes, step),
                Some(bytes.len() as u64),
                &dest,
                "t",
                &quiet,
                &Tuning::default(),
            )
            .expect("unpack");
            assert_eq!(n, bytes.len() as u64);
            let d = dest.join("d");
            assert_eq!(fs::read(d.join("big")).expect("big"), big, "{step}");
            let mode = |p: &Path| p.symlink_metadata().expect("stat").mode() & 0o7777;
            assert_eq!(mode(&d.join("big")), 0o4755);
            assert_eq!(mode(&d.join("empty")), 0o600);
            assert_eq!(mode(&d), 0o750);
            assert_eq!(mtime(&d.join("big")), 0);
            assert_eq!(mtime(&d.join("empty")), 5);
            assert_eq!(mtime(&d.join("link")), 7);
            assert_eq!(mtime(&d), 1000);
            assert_eq!(
                fs::read_link(d.join("link")).expect("link"),
                Path::new("big")
            );
            assert!(!dest.join(STAGING).exists());
        }
    }

    #[test]
    fn entries_under_a_symlink_go_through_tar_rs() {
        use tar::EntryType as T;
        let tmp = tempfile::tempdir().expect("tmp");
        let quiet = Console::new(Box::new(io::sink()));
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");

        // A symlink to a directory inside the target: followed.
        let dest = tmp.path().join("inside");
        let bytes = gz_tar(&[
            ("real/g", T::Regular, 0o644, 9, b"g"),
            ("alias", T::Symlink, 0o777, 9, b"real"),
            ("alias/f", T::Regular, 0o644, 9, b"x"),
        ]);
        unpack_verified(&bytes[..], None, &dest, "t", &quiet, &Tuning::default()).expect("unpack");
        assert_eq!(fs::read(dest.join("real/f")).expect("f"), b"x");
        assert!(dest
            .join("alias")
            .symlink_metadata()
            .expect("alias")
            .file_type()
            .is_symlink());

        // One leading out of it: refused, nothing written.
        let dest = tmp.path().join("escape");
        let target = outside.to_string_lossy().into_owned();
        let bytes = gz_tar(&[
            ("out", T::Symlink, 0o777, 9, target.as_bytes()),
            ("out/f", T::Regular, 0o644, 9, b"x"),
        ]);
        let err = unpack_verified(&bytes[..], None, &dest, "t", &quiet, &Tuning::default())
            .expect_err("escape");
        assert!(format!("{err:#}").contains("outside"), "{err:#}");
        assert_eq!(fs::read_dir(&outside).expect("ls").count(), 0);
        assert_eq!(fs::read_dir(&dest).expect("ls").count(), 0);
    }

    #[test]
    fn a_file_never_replaces_a_directory() {
        use tar::EntryType as T;
        let tmp = tempfile::tempdir().expect("tmp");
        let quiet = Console::new(Box::new(io::sink()));
        let bytes = gz_tar(&[
            ("a/b", T::Regular, 0o644, 9, b"x"),
            ("a", T::Regular, 0o644, 9, b"y"),
        ]);
        let dest = tmp.path().join("t");
        assert!(unpack_verified(&bytes[..], None, &dest, "t", &quiet, &Tuning::default()).is_err());
        assert_eq!(fs::read_dir(&dest).expect("ls").count(), 0);
    }

    fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
        let mut data = Vec::new();
        for (k, v) in records {
            let rest = 1 + k.len() + 1 + v.len() + 1;
            let mut len = rest + 1;
            while rest + len.to_string().len() != len {
                len = rest + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        data
    }

    #[test]
    fn pax_records_are_read_by_length() {
        let data = pax(&[("SCHILY.xattr.user.a", b"x\n9 y=z\n"), ("k", b"")]);
        let r = pax_records(&data).expect("records");
        assert_eq!(
            r,
            [
                (&b"SCHILY.xattr.user.a"[..], &b"x\n9 y=z\n"[..]),
                (&b"k"[..], &b""[..])
            ]
        );
        for bad in [&b"5 a=b"[..], b"x a=b\n", b"3 a\n", b"99 a=b\n", b"4 ab\n"] {
            assert!(pax_records(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_tap_keeps_each_pax_header_for_its_entry() {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(120));
        // Path, data, the PAX header's data.
        type Member<'a> = (&'a str, &'a [u8], Option<Vec<u8>>);
        let entries: [Member; 4] = [
            ("a", b"one", Some(pax(&[("SCHILY.xattr.user.v", b"1\n2")]))),
            ("b", &[7u8; 1000], None),
            (&long, b"", Some(pax(&[("SCHILY.xattr.user.w", b"")]))),
            ("c", b"x", Some(Vec::new())),
        ];
        for (path, data, records) in &entries {
            if let Some(r) = records {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::XHeader);
                h.set_path("PaxHeader").expect("name");
                h.set_mode(0o644);
                h.set_size(r.len() as u64);
                h.set_cksum();
                b.append(&h, &r[..]).expect("pax");
            }
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).expect("file");
        }
        let bytes = b.into_inner().expect("tar");
        for step in [1, 7, 512, 4096] {
            let framing = Rc::new(RefCell::new(Framing::default()));
            let mut a = tar::Archive::new(PaxTap {
                inner: Trickle(&bytes, step),
                framing: Rc::clone(&framing),
            });
            let mut seen = Vec::new();
            for e in a.entries().expect("entries") {
                let mut e = e.expect("entry");
                let path = e.path().expect("path").to_string_lossy().into_owned();
                seen.push((path, tapped_pax(&mut e, &framing, "t").expect("tap")));
            }
            let want: Vec<(String, Option<Vec<u8>>)> = entries
                .iter()
                .map(|(p, _, r)| (p.to_string(), r.clone()))
                .collect();
            assert_eq!(seen, want, "reads of {step} bytes");
        }
    }
}
