//! The operator's side: packing a role version's tree for hosts.
//!
//! `edeploy pack TREE --role ROLE --version VERS --install DIR` writes,
//! under `DIR/VERS/`:
//!
//! - `ROLE-VERS.manifest`, also copied into the tree as
//!   `var/lib/edeploy/manifests/ROLE-VERS.manifest`, so a host installed
//!   from the tree can verify itself offline (the manifest leaves out its
//!   own directory);
//! - `ROLE-VERS.edeploy`, the tree as a gzip'd tar for the installer's
//!   HTTP transport (unless `--no-archive`);
//! - for each `--from FROM`, `ROLE-FROM-VERS.delta` (see
//!   [`crate::archive::delta`]), from `DIR/FROM/ROLE-FROM.manifest` and the
//!   metadata in `--metadata MDIR` (`MDIR/FROM/ROLE/VERS/`).

use super::exclude::Rules;
use super::manifest::{self, Kind, Manifest};
use super::meta::Metadata;
use crate::archive::delta;
use anyhow::{bail, Context, Result};
use flate2::write::GzEncoder;
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What to write besides the manifest.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Write `ROLE-VERS.edeploy`.
    pub archive: bool,
    /// Versions to write a delta from.
    pub from: Vec<String>,
    /// The metadata tree (`FROM/ROLE/TO/` under it).
    pub metadata: Option<PathBuf>,
}

/// Where the manifest sits inside a tree.
pub const IN_TREE: &str = "var/lib/edeploy/manifests";

/// Packs the tree at `tree`.
pub fn pack(
    out: &mut dyn Write,
    tree: &Path,
    role: &str,
    version: &str,
    install: &Path,
    opts: &Options,
) -> Result<Manifest> {
    let dir = install.join(version);
    fs::create_dir_all(&dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    // The manifest's own directory exists before the scan, so its parents
    // (`/var`, `/var/lib`...) are in the manifest like any directory.
    let in_tree = tree.join(IN_TREE);
    fs::create_dir_all(&in_tree)
        .with_context(|| format!("{}: cannot create", in_tree.display()))?;
    let skip = Rules::excluding(&[format!("/{IN_TREE}")]);
    let m = Manifest::build(tree, role, version, &skip)
        .with_context(|| format!("{}: cannot build the manifest", tree.display()))?;
    let name = manifest::file_name(role, version);
    let path = dir.join(&name);
    m.save(&path)?;
    m.save(&in_tree.join(&name))?;
    let files = m.entries.iter().filter(|e| e.kind == Kind::File).count();
    writeln!(
        out,
        "{}: {} entries, {} files",
        path.display(),
        m.entries.len(),
        files
    )?;
    if opts.archive {
        let a = dir.join(format!("{role}-{version}.edeploy"));
        write_archive(tree, &a)?;
        writeln!(out, "{}", a.display())?;
    }
    for from in &opts.from {
        let old = Manifest::load(&install.join(from).join(manifest::file_name(role, from)))
            .with_context(|| format!("the delta from {from} needs {from}'s manifest"))?;
        let mdir = opts
            .metadata
            .as_ref()
            .context("--from needs --metadata (the upgrade path's exclude and add_only)")?
            .join(from)
            .join(role)
            .join(version);
        let meta = Metadata::load(&mdir, &format!("upgrade {role} {from} -> {version}"))?;
        let dest = dir.join(delta::file_name(role, from, version));
        let idx = delta::write(&old, &m, tree, &meta, &dest)?;
        let size = fs::metadata(&dest).map(|md| md.len()).unwrap_or(0);
        writeln!(
            out,
            "{}: {} changed, {} shipped, {} deleted, {size} bytes",
            dest.display(),
            idx.changed.len(),
            idx.content.len(),
            idx.deleted.len()
        )?;
    }
    Ok(m)
}

/// Writes the whole tree as a gzip'd tar, as GNU `tar --xattrs
/// --numeric-owner` would: numeric owners, modes (setuid, setgid, sticky
/// included), mtimes, symlinks not followed, hard links as hard links,
/// character and block devices and fifos with their numbers, extended
/// attributes as PAX `SCHILY.xattr.*` records; sockets are left out.
pub fn write_archive(tree: &Path, dest: &Path) -> Result<()> {
    let tmp = dest.with_extension("edeploy-tmp");
    let f = File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let gz = GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let entries = manifest::scan(tree, &Rules::default(), false)?;
    let mut links = HashMap::new();
    for e in &entries {
        let full = tree.join(&e.path);
        append_entry(&mut tar, &full, &e.path, &mut links)
            .with_context(|| format!("{}: cannot archive", full.display()))?;
    }
    let w = tar
        .into_inner()
        .context("cannot finish the archive")?
        .finish()
        .context("cannot finish the archive")?;
    let f = w
        .into_inner()
        .map_err(|e| e.into_error())
        .context("cannot write the archive")?;
    f.sync_all().context("cannot write the archive")?;
    fs::rename(&tmp, dest).with_context(|| format!("{}: cannot rename", dest.display()))
}

/// Appends the entry for `full`, named `name` in the archive. `links`
/// maps the (device, inode) of every multiply linked non-directory
/// already written to its name there.
fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    full: &Path,
    name: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    let md = fs::symlink_metadata(full).context("cannot stat")?;
    let ft = md.file_type();
    if ft.is_socket() {
        return Ok(());
    }
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(u64::from(md.uid()));
    h.set_gid(u64::from(md.gid()));
    // A time before 1970 is written as 0.
    h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
    h.set_size(0);
    // Later names of an inode are link entries (without data or extended
    // attributes: they share the first name's). Symlinks are never
    // archived as hard links: unpacking one resolves the first name, which
    // for a symlink is wherever it points.
    if !ft.is_dir() && !ft.is_symlink() && md.nlink() > 1 {
        let key = (md.dev(), md.ino());
        if let Some(first) = links.get(&key) {
            h.set_entry_type(tar::EntryType::Link);
            tar.append_link(&mut h, name, first)
                .with_context(|| format!("cannot write the hard link to {first}"))?;
            return Ok(());
        }
        links.insert(key, name.to_string());
    }
    let attrs = xattrs(full)?;
    if !attrs.is_empty() {
        let (header, records) = xattr_header(&attrs)?;
        tar.append(&header, &records[..])
            .context("cannot write the extended attributes")?;
    }
    if ft.is_file() {
        let size = md.len();
        h.set_size(size);
        let f = File::open(full).context("cannot open")?;
        let data = Exact {
            inner: f.take(size),
            left: size,
        };
        tar.append_data(&mut h, name, data)
            .context("cannot write the file")?;
    } else if ft.is_symlink() {
        let target = fs::read_link(full).context("cannot read the link")?;
        tar.append_link(&mut h, name, &target)
            .context("cannot write the symlink")?;
    } else if ft.is_dir() {
        tar.append_data(&mut h, name, io::empty())
            .context("cannot write the directory")?;
    } else {
        if ft.is_char_device() || ft.is_block_device() {
            let rdev = md.rdev();
            h.set_device_major(libc::major(rdev))
                .context("cannot write the device's major number")?;
            h.set_device_minor(libc::minor(rdev))
                .context("cannot write the device's minor number")?;
        }
        tar.append_data(&mut h, name, io::empty())
            .context("cannot write the special file")?;
    }
    Ok(())
}

/// A file's bytes, exactly as many as its header says: a file that
/// shrinks while it is read is an error, not a corrupt archive.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file shrank while it was read ({} bytes short)",
                    self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The name GNU tar's readers accept for a PAX header (the entry it
/// describes comes next and has its own name).
const PAX_NAME: &[u8] = b"././@PaxHeader";

/// The PAX extended header (type `x`) holding `attrs` as
/// `SCHILY.xattr.NAME=VALUE` records, and its data. Each record is
/// `"LEN KEY=VALUE\n"`, LEN counting the whole record, itself included.
fn xattr_header(attrs: &[(Vec<u8>, Vec<u8>)]) -> Result<(tar::Header, Vec<u8>)> {
    let mut data = Vec::new();
    for (name, value) in attrs {
        if name.contains(&b'=') || name.contains(&0) {
            bail!(
                "the extended attribute {:?} has a name a tar record cannot hold",
                String::from_utf8_lossy(name)
            );
        }
        // " SCHILY.xattr." NAME "=" VALUE "\n"
        let rest = 1 + b"SCHILY.xattr.".len() + name.len() + 1 + value.len() + 1;
        let mut len = rest + 1;
        while rest + len.to_string().len() != len {
            len = rest + len.to_string().len();
        }
        data.extend_from_slice(len.to_string().as_bytes());
        data.extend_from_slice(b" SCHILY.xattr.");
        data.extend_from_slice(name);
        data.push(b'=');
        data.extend_from_slice(value);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..PAX_NAME.len()].copy_from_slice(PAX_NAME);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_cksum();
    Ok((h, data))
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("{}: the path holds a NUL byte", path.display()))
}

/// Whether an extended attribute call failed because the filesystem has
/// none (then the entry has none either).
fn unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTSUP)
}

/// The extended attributes of `path` (of a symlink itself, not followed),
/// sorted by name: every namespace the caller may read (`user.*`,
/// `security.*` such as file capabilities, `trusted.*` as root,
/// `system.*` ACLs).
pub fn xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = c_path(path)?;
    let list = match read_sized(|buf: &mut [u8]| {
        // SAFETY: `c` is NUL-terminated; `buf` is writable for its length
        // (a null pointer with length 0 asks for the size).
        unsafe { libc::llistxattr(c.as_ptr(), buf_ptr(buf), buf.len()) }
    }) {
        Ok(l) => l,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("{}: cannot list extended attributes", path.display()))
        }
    };
    let mut out = Vec::new();
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).context("an attribute name holds a NUL byte")?;
        let value = read_sized(|buf: &mut [u8]| {
            // SAFETY: as above; `cname` is NUL-terminated.
            unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf_ptr(buf).cast(), buf.len()) }
        });
        match value {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed since it was listed.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{}: cannot read the extended attribute {}",
                        path.display(),
                        String::from_utf8_lossy(name)
                    )
                })
            }
        }
    }
    out.sort();
    Ok(out)
}

fn buf_ptr(buf: &mut [u8]) -> *mut libc::c_char {
    if buf.is_empty() {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr().cast()
    }
}

/// Calls `f` first with an empty buffer for the size, then with a buffer
/// that large, again if the value grew in between.
fn read_sized(mut f: impl FnMut(&mut [u8]) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    loop {
        let n = f(&mut []);
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; n];
        let m = f(&mut buf);
        match usize::try_from(m) {
            Ok(m) => {
                buf.truncate(m);
                return Ok(buf);
            }
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ERANGE) {
                    return Err(e);
                }
            }
        }
    }
}
