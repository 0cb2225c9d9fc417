//! Writing a `.edeploy` archive: a whole tree as a gzip'd tar, as GNU
//! `tar --xattrs --numeric-owner` would write it, so GNU tar lists and
//! extracts it and the unpacker ([`super::unpack`]) reads it back entry
//! for entry.

use super::manifest::{self, KeepAll};
use super::pax;
use super::place::{self, Attrs, Content, How};
use super::xattr::xattrs;
use anyhow::{Context, Result};
use flate2::write::GzEncoder;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Writes the whole tree as a gzip'd tar, as GNU `tar --xattrs
/// --numeric-owner` would: numeric owners, modes (setuid, setgid, sticky
/// included), mtimes, symlinks not followed, hard links as hard links,
/// character and block devices and fifos with their numbers, extended
/// attributes as PAX `SCHILY.xattr.*` records; sockets are left out. The
/// archive is written under its temporary name and synced before it gets
/// its own ([`place`]).
pub fn write_archive(tree: &Path, dest: &Path) -> Result<()> {
    let entries = manifest::scan(tree, &KeepAll, false)?;
    let mut fill = |f: &mut File| -> Result<()> {
        let gz = GzEncoder::new(io::BufWriter::new(f), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
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
        w.into_inner()
            .map_err(|e| e.into_error())
            .context("cannot write the archive")?;
        Ok(())
    };
    place::put(
        dest,
        Content::File(&mut fill),
        &How::durable(Attrs::default()),
    )
}

/// Appends the entry for `full`, named `name` in the archive. `links`
/// maps the (device, inode) of every multiply linked non-directory
/// already written to its name there.
pub fn append_entry<W: Write>(
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
        let (header, records) = pax::xattr_header(&attrs)?;
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
