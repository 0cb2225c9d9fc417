//! The verified streaming unpack of a `.edeploy` archive into a target
//! directory.
//!
//! The gzip'd tar stream is inflated on one thread and unpacked on the
//! other ([`super::inflate`]) into the staging directory
//! [`STAGING`](super::place::STAGING) (`.edeploy-partial`) inside the
//! target, on the same filesystem. Only once the whole stream is verified
//! — the tar's end, the gzip trailer (CRC-32 and length), no byte after
//! it, and exactly the announced length — are the entries moved into
//! place, by renames ([`merge`]). A cut or corrupt stream removes the
//! staging directory and leaves the target as it was: never a
//! half-installed tree.
//!
//! Owners are numeric (the tar's uid/gid, not names looked up in the
//! unpacking system's own `/etc/passwd`); modes, hard links, symlinks,
//! character and block devices, fifos, mtimes and extended attributes
//! (`SCHILY.xattr.*`, e.g. file capabilities) are kept. Nothing is written
//! outside the staging directory, and nothing through a symlink: paths
//! with `..`, entries under a symlink (the archive's own, wherever it
//! points, [`super::beneath`]) and names the format reserves
//! (`.edeploy-partial`, `.NAME.edeploy-new`, [`place::check_reserved`])
//! are refused while the stream is staged, before anything moves in.

use super::beneath;
use super::check::{normal_path, Expected, Slot};
use super::inflate::{self, CHUNK};
use super::manifest::{self, Entry, Kind};
use super::pax::{self, Framing, PaxTap};
use super::place::{self, Attrs, Content, How, STAGING};
use super::xattr;
use anyhow::{anyhow, bail, Context, Result};
use filetime::FileTime;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

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

/// Counts the compressed bytes read and refuses more than announced.
struct Counted<R> {
    inner: R,
    read: u64,
    total: Option<u64>,
}

impl<R: Read> Read for Counted<R> {
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
        Ok(n)
    }
}

/// Runs `fill` on a fresh staging directory inside `dest`, then moves
/// what it left there into `dest` ([`merge`]); the staging directory is
/// removed either way.
pub fn through_staging<T>(dest: &Path, fill: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let staging = dest.join(STAGING);
    let result = (|| -> Result<T> {
        if staging.symlink_metadata().is_ok() {
            fs::remove_dir_all(&staging)
                .with_context(|| format!("cannot remove {}", staging.display()))?;
        }
        fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        let done = fill(&staging)?;
        merge(&staging, dest)?;
        fs::remove_dir(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
        Ok(done)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Unpacks a gzip'd tar stream into `dest` through staging (see the module
/// doc). `total` is the expected length of the compressed stream, when
/// known; `name` names the archive in errors. `at_end` gets the reader
/// once the stream has been read to its end, before it is judged (the
/// installer draws its progress line there). Returns the bytes read.
pub fn unpack_verified<R: Read + Send>(
    reader: R,
    total: Option<u64>,
    dest: &Path,
    name: &str,
    at_end: impl FnOnce(&mut R),
) -> Result<u64> {
    unpack_checked(reader, total, dest, name, None, |r| {
        at_end(r);
        Ok(())
    })
}

/// [`unpack_verified`], every entry also checked against `expected` (see
/// [`check`]) while it is staged: a header that differs from the manifest
/// fails before the entry is written, a file whose SHA-256 differs once
/// written fails (and is removed), and so does a manifest entry not seen
/// by the end of the stream. `at_end` may refuse the stream too (the
/// archive's own signature); all of it before anything moves into `dest`.
pub fn unpack_checked<R: Read + Send>(
    reader: R,
    total: Option<u64>,
    dest: &Path,
    name: &str,
    mut expected: Option<&mut Expected>,
    at_end: impl FnOnce(&mut R) -> Result<()>,
) -> Result<u64> {
    through_staging(dest, |staging| {
        let counted = Counted {
            inner: reader,
            read: 0,
            total,
        };
        // Our own buffer, so that what follows the gzip stream stays in it
        // to be seen (a decoder with its own buffer would swallow it).
        let buffered = io::BufReader::with_capacity(CHUNK, counted);
        let (mut counted, extra) = std::thread::scope(|scope| {
            let (tx, back_rx, chunks) = inflate::channel();
            let inflater = scope.spawn(move || inflate::inflate(buffered, &tx, &back_rx));
            let unpacked = (|| -> Result<()> {
                let framing = Rc::new(RefCell::new(Framing::default()));
                let mut archive = tar::Archive::new(PaxTap {
                    inner: chunks,
                    framing: Rc::clone(&framing),
                });
                archive.set_preserve_permissions(true);
                archive.set_preserve_ownerships(true);
                archive.set_preserve_mtime(true);
                // Extended attributes are set by `unpack_entries`, from the
                // records as the tap kept them.
                archive.set_unpack_xattrs(false);
                archive.set_overwrite(true);
                unpack_entries(
                    &mut archive,
                    staging,
                    name,
                    &framing,
                    expected.as_deref_mut(),
                )?;
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
        let judged = at_end(&mut counted.inner);
        if extra > 0 {
            bail!("{name}: data follows the end of the gzip stream");
        }
        if let Some(t) = total {
            if counted.read != t {
                bail!("{name}: the download is cut: {} of {t} bytes", counted.read);
            }
        }
        judged?;
        if let Some(x) = expected.as_deref() {
            x.finish()?;
        }
        Ok(counted.read)
    })
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
    mut expected: Option<&mut Expected>,
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
        let pax = pax::tapped(&mut entry, framing, name)?;
        if let Ok(p) = entry.path() {
            let rel = staged_path(Path::new(""), &p).unwrap_or_default();
            place::check_reserved(&rel).with_context(|| name.to_string())?;
        }
        // A manifest that lists the attributes has them compared with the
        // header (`check_header`); for an older one, their names decide.
        if let (Some(x), Some(p)) = (expected.as_deref(), pax.as_deref()) {
            if !x.lists_xattrs() {
                let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                x.check_xattrs(&shown, &xattr_names(p))?;
            }
        }
        let mut checked =
            match expected.as_deref_mut() {
                Some(x) => check_header(x, &mut entry, pax.as_deref())?
                    .map(|(path, slot)| Checking { x, path, slot }),
                None => None,
            };
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
        } else if let Some(dst) = fast.unpack(&mut entry, name, &corrupt, checked.as_mut())? {
            if let Some(pax) = pax {
                pax::set_xattrs(&pax, &dst).with_context(|| name.to_string())?;
            }
            continue;
        } else {
            let dst = unpack_one(&mut entry, staging, name, &corrupt)?;
            if let Some(c) = checked.as_mut().filter(|_| kind.is_file()) {
                let mut buf = vec![0; manifest::HASH_BUFFER];
                let h = manifest::sha256_file(&dst, &mut buf)
                    .with_context(|| format!("{name}: {}: cannot read it back", c.path))?;
                if let Err(e) = c.x.content(&c.path, c.slot, &h) {
                    let _ = fs::remove_file(&dst);
                    return Err(e);
                }
            }
            dst
        };
        // A name that is only `/` or `.` components: tar-rs skips it.
        if dst == staging {
            continue;
        }
        if let Some(pax) = pax {
            pax::set_xattrs(&pax, &dst).with_context(|| name.to_string())?;
        }
        if (kind.is_file() || kind.is_symlink()) && entry.header().mtime().ok() == Some(0) {
            let zero = Attrs {
                mtime: Some(FileTime::from_unix_time(0, 0)),
                ..Attrs::default()
            };
            place::set(&dst, &zero)?;
        }
    }
    dirs.sort_by(|a, b| b.0.path_bytes().cmp(&a.0.path_bytes()));
    for (mut dir, pax) in dirs {
        let dst = match fast.unpack(&mut dir, name, &corrupt, None)? {
            Some(dst) => dst,
            None => unpack_one(&mut dir, staging, name, &corrupt)?,
        };
        if dst == staging {
            continue;
        }
        if let Some(pax) = pax {
            pax::set_xattrs(&pax, &dst).with_context(|| name.to_string())?;
        }
        let mtime = dir.header().mtime().map_err(corrupt)?;
        let t = Attrs {
            mtime: Some(Attrs::seconds(mtime)),
            ..Attrs::default()
        };
        place::set(&dst, &t)?;
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
/// permissions, ownerships and mtimes on, each entry put in place by
/// [`place::put`]: an existing file or symlink is replaced, never written
/// through; owner (numeric) before mode, which keeps setuid bits; an
/// mtime of 0 stays 0.
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
        checked: Option<&mut Checking>,
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
        let mut attrs = Attrs {
            owner: Some((uid, gid)),
            mode: h.mode().ok(),
            mtime: h.mtime().ok().map(Attrs::seconds),
        };
        if kind.is_file() {
            let buf = &mut self.buf;
            let want = entry.size();
            let mut hasher = checked.is_some().then(Sha256::new);
            let mut fill = |f: &mut fs::File| -> Result<()> {
                let mut got = 0u64;
                loop {
                    let n = entry.read(buf).map_err(corrupt)?;
                    if n == 0 {
                        break;
                    }
                    io::Write::write_all(f, &buf[..n])
                        .with_context(|| format!("cannot write {}", dst.display()))?;
                    if let Some(h) = hasher.as_mut() {
                        h.update(&buf[..n]);
                    }
                    got += n as u64;
                }
                if got != want {
                    return Err(corrupt(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{got} of {want} bytes"),
                    )));
                }
                Ok(())
            };
            place::put(&dst, Content::File(&mut fill), &How::staged(attrs)).with_context(shown)?;
            if let (Some(c), Some(h)) = (checked, hasher) {
                // The file is whole: its hash decides whether it stays.
                if let Err(e) = c.x.content(&c.path, c.slot, &manifest::hex(&h.finalize())) {
                    let _ = fs::remove_file(&dst);
                    return Err(e);
                }
            }
        } else if kind.is_symlink() {
            let target = match entry.link_name() {
                Ok(Some(t)) if t.iter().next().is_some() => t.into_owned(),
                _ => return Ok(None),
            };
            place::put(&dst, Content::Symlink(&target), &How::staged(attrs)).with_context(shown)?;
        } else {
            // The caller sets a directory's mtime once its entries are in.
            attrs.mtime = None;
            place::put(&dst, Content::Dir, &How::staged(attrs)).with_context(shown)?;
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
}

/// The names of the extended attributes among PAX records (a bad record
/// is refused when the attributes are set).
fn xattr_names(pax: &[u8]) -> Vec<String> {
    pax::records(pax)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix(pax::XATTR_KEY))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

/// The extended attributes among PAX records as a manifest lists them:
/// name to value in hex.
fn xattrs_listed(pax: &[u8]) -> BTreeMap<String, String> {
    pax::records(pax)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(pax::XATTR_KEY)?;
            Some((String::from_utf8_lossy(name).into_owned(), manifest::hex(v)))
        })
        .collect()
}

/// An entry being checked against the manifest: where it stands there.
struct Checking<'a> {
    x: &'a mut Expected,
    path: String,
    slot: Slot,
}

/// Checks the header of `entry` against `x`; returns its normalized path
/// and its place in the manifest when its content is still to be hashed
/// (a file), `None` when the header said all (a hard link is checked
/// against its target here).
fn check_header<R: Read>(
    x: &mut Expected,
    entry: &mut tar::Entry<R>,
    pax: Option<&[u8]>,
) -> Result<Option<(String, Slot)>> {
    let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let path = entry
        .path()
        .ok()
        .and_then(|p| normal_path(&p))
        .ok_or_else(|| anyhow!("{}: entry {shown} is not a path a manifest lists", x.what))?;
    let h = entry.header();
    let t = h.entry_type();
    let bad = |why: &str| anyhow!("{}: entry {shown}: {why}", x.what);
    if t.is_hard_link() {
        let target = entry
            .link_name()
            .ok()
            .flatten()
            .and_then(|p| normal_path(&p))
            .ok_or_else(|| bad("a hard link without a valid target"))?;
        x.hard_link(&path, &target)?;
        return Ok(None);
    }
    let kind = if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_symlink() {
        Kind::Symlink
    } else if t.is_character_special() {
        Kind::Char
    } else if t.is_block_special() {
        Kind::Block
    } else if t.is_fifo() {
        Kind::Fifo
    } else {
        return Err(bad(&format!(
            "an entry of tar type {:?}, which no manifest lists",
            t.as_byte() as char
        )));
    };
    let num = |v: io::Result<u64>, what: &str| -> Result<u32> {
        v.ok()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(&format!("a bad {what}")))
    };
    let target = if kind == Kind::Symlink {
        let t = entry
            .link_name()
            .ok()
            .flatten()
            .ok_or_else(|| bad("a symlink without a target"))?;
        Some(t.to_string_lossy().into_owned())
    } else {
        None
    };
    let rdev = if matches!(kind, Kind::Char | Kind::Block) {
        match (h.device_major(), h.device_minor()) {
            (Ok(Some(a)), Ok(Some(b))) => Some(libc::makedev(a, b)),
            _ => return Err(bad("a device without its numbers")),
        }
    } else {
        None
    };
    let found = Entry {
        path: path.clone(),
        kind,
        mode: num(h.mode().map(u64::from), "mode")? & 0o7777,
        uid: num(h.uid(), "uid")?,
        gid: num(h.gid(), "gid")?,
        size: if kind == Kind::File { entry.size() } else { 0 },
        mtime: if kind == Kind::File {
            h.mtime()
                .ok()
                .and_then(|t| i64::try_from(t).ok())
                .ok_or_else(|| bad("a bad mtime"))?
        } else {
            0
        },
        sha256: None,
        target,
        rdev,
        xattrs: pax
            .filter(|_| x.lists_xattrs())
            .map(xattrs_listed)
            .unwrap_or_default(),
    };
    let slot = x.header(&path, &found)?;
    Ok((kind == Kind::File).then_some((path, slot)))
}

/// `entry.unpack_in(staging)`, once no parent of the entry (nor of a hard
/// link's target) is a symlink; returns where the entry went.
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
    let mut rels = vec![dst.strip_prefix(staging).unwrap_or(&dst).to_path_buf()];
    if entry.header().entry_type().is_hard_link() {
        if let Ok(Some(target)) = entry.link_name() {
            rels.push(staged_path(Path::new(""), &target).ok_or_else(outside)?);
        }
    }
    for rel in rels {
        beneath::check_parent(staging, &rel).with_context(|| name.to_string())?;
    }
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
/// a directory, not a symlink; then `mknod`, owner, mode, mtime.
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
    let h = entry.header();
    let kind = h.entry_type();
    let attrs = Attrs {
        owner: Some((
            u32::try_from(h.uid().context("bad uid")?).context("the uid is too large")?,
            u32::try_from(h.gid().context("bad gid")?).context("the gid is too large")?,
        )),
        mode: Some(h.mode().context("bad mode")? & 0o7777),
        mtime: Some(Attrs::seconds(h.mtime().context("bad mtime")?)),
    };
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
    place::put(&dst, Content::Special { format, rdev }, &How::staged(attrs))?;
    Ok(dst)
}

/// Moves every entry of `src` into `dst` by renames, whatever its type
/// (files, directories, symlinks, devices, fifos): a missing entry is
/// renamed whole; a directory present on both sides is merged and takes
/// `src`'s owner, mode, extended attributes and mtime; anything else in
/// `dst` is replaced.
pub fn merge(src: &Path, dst: &Path) -> Result<()> {
    let entries = fs::read_dir(src).with_context(|| format!("cannot read {}", src.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", src.display()))?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let smeta = s
            .symlink_metadata()
            .with_context(|| format!("cannot read {}", s.display()))?;
        match d.symlink_metadata() {
            Err(_) => {}
            Ok(dmeta) if dmeta.is_dir() && smeta.is_dir() => {
                merge(&s, &d)?;
                place::set(&d, &Attrs::of(&smeta))?;
                xattr::copy_xattrs(&s, &d)?;
                fs::remove_dir(&s).with_context(|| format!("cannot remove {}", s.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Trickle;
    use std::os::unix::fs::MetadataExt;

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
        for step in [1000, 7777, 1 << 20] {
            let dest = tmp.path().join(step.to_string());
            let n = unpack_verified(
                Trickle(&bytes, step),
                Some(bytes.len() as u64),
                &dest,
                "t",
                |_| {},
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

    /// Before, an entry under the archive's own symlink to a directory
    /// inside the target was followed (tar-rs does), and one leading out
    /// was refused by tar-rs only as "outside"; now neither is followed,
    /// and the refusal names the entry and the link.
    #[test]
    fn entries_under_a_symlink_are_refused_wherever_it_points() {
        use tar::EntryType as T;
        let tmp = tempfile::tempdir().expect("tmp");
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        let target = outside.to_string_lossy().into_owned();
        for (what, link) in [("inside", "real"), ("escape", target.as_str())] {
            let dest = tmp.path().join(what);
            let bytes = gz_tar(&[
                ("real/g", T::Regular, 0o644, 9, b"g"),
                ("alias", T::Symlink, 0o777, 9, link.as_bytes()),
                ("alias/f", T::Regular, 0o644, 9, b"x"),
            ]);
            let err = unpack_verified(&bytes[..], None, &dest, "t", |_| {}).expect_err(what);
            assert!(
                format!("{err:#}").contains(
                    "t: /alias/f: alias is a symlink; an archive may not write through it"
                ),
                "{err:#}"
            );
            assert_eq!(fs::read_dir(&outside).expect("ls").count(), 0);
            assert_eq!(fs::read_dir(&dest).expect("ls").count(), 0);
        }
    }

    /// Before, an entry named `.edeploy-partial` collided with the
    /// staging directory itself and failed only when moved in, after the
    /// entries before it; now the stream is refused while staged.
    #[test]
    fn a_reserved_name_is_refused_before_anything_moves_in() {
        use tar::EntryType as T;
        let tmp = tempfile::tempdir().expect("tmp");
        for bad in [
            ".edeploy-partial",
            "x/.edeploy-partial",
            "etc/.motd.edeploy-new",
        ] {
            let dest = tmp.path().join("t");
            fs::create_dir_all(dest.join("kept")).expect("mkdir");
            fs::write(dest.join("kept/old"), "old").expect("old");
            let bytes = gz_tar(&[
                ("a", T::Regular, 0o644, 9, b"a"),
                ("kept/old", T::Regular, 0o644, 9, b"new"),
                (bad, T::Regular, 0o644, 9, b"x"),
            ]);
            let err = unpack_verified(&bytes[..], None, &dest, "t", |_| {}).expect_err(bad);
            assert!(
                format!("{err:#}").contains("is a name edeploy reserves"),
                "{err:#}"
            );
            let left: Vec<_> = fs::read_dir(&dest)
                .expect("ls")
                .map(|e| e.expect("entry").file_name())
                .collect();
            assert_eq!(left, ["kept"], "{bad}");
            assert_eq!(fs::read(dest.join("kept/old")).expect("old"), b"old");
        }
    }

    #[test]
    fn a_file_never_replaces_a_directory() {
        use tar::EntryType as T;
        let tmp = tempfile::tempdir().expect("tmp");
        let bytes = gz_tar(&[
            ("a/b", T::Regular, 0o644, 9, b"x"),
            ("a", T::Regular, 0o644, 9, b"y"),
        ]);
        let dest = tmp.path().join("t");
        assert!(unpack_verified(&bytes[..], None, &dest, "t", |_| {}).is_err());
        assert_eq!(fs::read_dir(&dest).expect("ls").count(), 0);
    }
}
