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
//! installer's own `/etc/passwd`); modes, hard links, symlinks, mtimes and
//! extended attributes (`SCHILY.xattr.*`, e.g. file capabilities) are
//! kept.
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
use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
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
pub fn unpack_verified<R: Read>(
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
        let mut buffered = io::BufReader::with_capacity(256 * 1024, progress);
        {
            let gz = flate2::bufread::GzDecoder::new(&mut buffered);
            let mut archive = tar::Archive::new(gz);
            archive.set_preserve_permissions(true);
            archive.set_preserve_ownerships(true);
            archive.set_preserve_mtime(true);
            archive.set_unpack_xattrs(true);
            archive.set_overwrite(true);
            archive
                .unpack(&staging)
                .map_err(|e| anyhow!("{name}: the archive is cut or corrupt: {}", chain(&e)))?;
            // The tar ends before the gzip trailer: read it, so the CRC and
            // length are checked.
            let mut gz = archive.into_inner();
            io::copy(&mut gz, &mut io::sink())
                .map_err(|e| anyhow!("{name}: the archive is cut or corrupt: {}", chain(&e)))?;
        }
        let extra = buffered
            .fill_buf()
            .map_err(|e| anyhow!("{name}: the download failed: {}", chain(&e)))?
            .len();
        let mut progress = buffered.into_inner();
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

/// Moves every entry of `src` into `dst` by renames: a missing entry is
/// renamed whole; a directory present on both sides is merged and takes
/// `src`'s mode and owner; anything else in `dst` is replaced.
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
                fs::remove_dir(&s)?;
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
