//! Fetching the role's file tree into `/chroot`: the transports and the
//! progress line.
//!
//! Over HTTP the `.edeploy` file is streamed straight into the verified
//! unpack of [`crate::archive::unpack`]: staged in `/chroot/.edeploy-partial`
//! and moved into place only once the whole stream is verified, so a cut
//! or corrupt download leaves `/chroot` as it was. A `.edeploy` file on a
//! medium goes the same way, without the network.
//!
//! Entry by entry, the stream is checked against the tree's signed
//! manifest, and as a whole against the archive's own signature when the
//! server has one ([`fetch_http_checked`]; what is fetched and judged
//! before is in [`super::signed`]).
//!
//! With rsync (no `HSERV`), `rsync -aHAX --numeric-ids` runs through the
//! seam ([`fetch_rsync`]): into the staging directory when the tree is
//! checked against its manifest ([`super::signed::install_rsync`]), else
//! straight into `/chroot`, where an interrupted transfer leaves the
//! files done so far. That is a failure too; the disk is partitioned
//! again by the next attempt.

use super::console::Console;
use super::Tuning;
use crate::archive::check::Expected;
use crate::archive::unpack;
use crate::exec::{CmdLine, Exec};
use crate::trust::Trusted;
use anyhow::{bail, Context, Result};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
        self.draw(false);
        Ok(n)
    }
}

/// Unpacks a gzip'd tar stream into `dest` as
/// [`unpack::unpack_verified`] does, drawing the progress line on
/// `console` (`name` is shown on it). Returns the bytes read.
pub fn unpack_verified<R: Read + Send>(
    reader: R,
    total: Option<u64>,
    dest: &Path,
    name: &str,
    console: &Console,
    tuning: &Tuning,
) -> Result<u64> {
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
    let result = unpack::unpack_verified(progress, total, dest, name, |p| {
        p.draw(true);
        console.progress_done();
    });
    if result.is_err() {
        console.progress_done();
    }
    result
}

/// Streams the tree from `url` into `dest`, unchecked (`edeploy-init
/// --fetch` without a manifest).
pub fn fetch_http(url: &str, dest: &Path, console: &Console, tuning: &Tuning) -> Result<u64> {
    fetch_http_checked(url, dest, console, tuning, None, None)
}

/// The archive's own signature, checked as its bytes stream by.
pub struct ArchiveSignature {
    /// The `.minisig` text.
    pub text: String,
    pub trusted: Trusted,
    /// The archive's file name, which the signature must name.
    pub name: String,
}

/// Streams the tree from `url` into `dest`, every entry checked against
/// `expected` when given ([`unpack::unpack_checked`]), the whole stream
/// against `signature` when given: the compressed bytes are copied, as
/// they are read, to a thread that hashes them for minisign; the
/// signature is judged once the stream has ended, before anything moves
/// into `dest`.
pub fn fetch_http_checked(
    url: &str,
    dest: &Path,
    console: &Console,
    tuning: &Tuning,
    expected: Option<&mut Expected>,
    signature: Option<ArchiveSignature>,
) -> Result<u64> {
    let resp = super::server::get(url, tuning)?;
    let status = resp.status().as_u16();
    if status != 200 {
        bail!("cannot fetch {url}: HTTP {status}");
    }
    let total = resp.body().content_length();
    let name = url.rsplit('/').next().unwrap_or(url).to_string();
    let reader = resp.into_body().into_reader();
    std::thread::scope(|scope| {
        let (tx, verifier) = match signature {
            Some(sig) => {
                let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(16);
                let handle = scope.spawn(move || {
                    let fed = Fed {
                        rx,
                        cur: Vec::new(),
                        pos: 0,
                    };
                    sig.trusted
                        .verify_reader(url, fed, &sig.text, Some(&sig.name))
                        .map(|v| v.key)
                });
                (Some(tx), Some(handle))
            }
            None => (None, None),
        };
        let tee = Tee { inner: reader, tx };
        let progress = Progress {
            inner: tee,
            read: 0,
            total,
            name: &name,
            console,
            started: Instant::now(),
            last_draw: None,
            every: tuning.progress_every,
        };
        let result = unpack::unpack_checked(progress, total, dest, &name, expected, |p| {
            p.draw(true);
            console.progress_done();
            // The end of the stream: the hashing thread gets its end.
            p.inner.tx = None;
            match verifier.map(|h| h.join()) {
                None => Ok(()),
                Some(Ok(Ok(key))) => {
                    console.say(&format!("{url}: signed by key {key}"));
                    Ok(())
                }
                Some(Ok(Err(e))) => Err(e.into()),
                Some(Err(_)) => bail!("{url}: the signature check stopped"),
            }
        });
        if result.is_err() {
            console.progress_done();
        }
        result
    })
}

/// Copies what it reads to `tx` (while someone listens).
struct Tee<R> {
    inner: R,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(tx) = &self.tx {
                if tx.send(buf[..n].to_vec()).is_err() {
                    self.tx = None;
                }
            }
        }
        Ok(n)
    }
}

/// Reads what a [`Tee`] sends, to its end. minisign's check asks for
/// `Seek` but only reads.
struct Fed {
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for Fed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(v) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Seek for Fed {
    fn seek(&mut self, _: SeekFrom) -> io::Result<u64> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a stream being downloaded",
        ))
    }
}

/// `rsync -aHAX --numeric-ids URL DEST/` through the seam.
pub fn fetch_rsync(url: &str, dest: &Path, exec: &dyn Exec) -> Result<()> {
    fetch_rsync_with(url, dest, exec, true)
}

/// [`fetch_rsync`]; without `xattrs`, the tree's ACLs and extended
/// attributes are left on the server (`-aH`, not `-aHAX`): what a signed
/// manifest does not list, and so cannot vouch for.
pub fn fetch_rsync_with(url: &str, dest: &Path, exec: &dyn Exec, xattrs: bool) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    exec.run(&CmdLine::argv([
        "rsync".to_string(),
        if xattrs { "-aHAX" } else { "-aH" }.into(),
        "--numeric-ids".into(),
        url.into(),
        format!("{}/", dest.display()),
    ]))?;
    Ok(())
}
